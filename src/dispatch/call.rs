//! One primitive invocation, as its implementation sees it. Arguments are
//! read by the names their declaration gives them; dispatch has already
//! checked them against the declared types, so the accessors only convert.

use super::{ErrorKind, OpError};
use crate::config::Target;
use crate::registry::Prim;
use crate::session::Session;
use crate::value::type_name;
use rhai::{Array, Dynamic, Map};
use std::future::Future;
use std::time::Duration;

pub struct Call<'a> {
    pub prim: Prim,
    pub session: &'a Session,
    /// The engine running the script, for primitives that call back into
    /// script functions (`parallel`).
    pub engine: &'a rhai::Engine,
    pub args: Vec<Dynamic>,
    pub(super) handle_target: Option<String>,
    pub(super) target: Option<Target>,
    pub(super) deadline: Option<tokio::time::Instant>,
    /// Fields a mutation adds to its audit outcome record (a planner
    /// estimate beside the real count).
    pub(super) audit_extra: serde_json::Map<String, serde_json::Value>,
    /// Set by a mutation that found nothing to change (`changed_nothing`).
    pub(super) unchanged: bool,
}

impl<'a> Call<'a> {
    /// The target this call talks to: the handle's, or the module's default.
    pub fn target(&mut self) -> Result<Target, OpError> {
        if let Some(t) = &self.target {
            return Ok(t.clone());
        }
        let kind = self.prim.module.target.ok_or_else(|| {
            OpError::failed(format!(
                "{} does not talk to a target",
                self.prim.full_name()
            ))
        })?;
        let t = self.session.resolve(kind, self.handle_target.as_deref())?;
        self.target = Some(t.clone());
        Ok(t)
    }

    /// Adds a field to this mutation's audit outcome record (already
    /// free of secrets: it is written as given).
    pub fn audit_field(&mut self, key: &str, value: serde_json::Value) {
        self.audit_extra.insert(key.to_string(), value);
    }

    /// A real mutation that found nothing to change (no session matched,
    /// no key existed, nothing to remove) says so: its line is still
    /// printed, but it is not one of the run's changes, so a run that then
    /// stops is "refused" (3: nothing was changed) or "error", not
    /// "partial", and lists no change it did not make.
    pub fn changed_nothing(&mut self) {
        self.unchanged = true;
    }

    /// The target the script named (`pg.connect("staging")`), if any.
    pub fn handle_target(&self) -> Option<&str> {
        self.handle_target.as_deref()
    }

    /// Replaces the target, for primitives whose argument names it (`connect`).
    pub fn set_target(&mut self, t: Target) {
        self.target = Some(t);
    }

    /// The argument of the declared parameter `name`; None when it was not
    /// passed or is `()`.
    pub fn value(&self, name: &str) -> Result<Option<&Dynamic>, OpError> {
        let (i, _) = self.prim.param(name).ok_or_else(|| {
            // A primitive asking for a parameter it did not declare is a bug
            // in opsh, not in the script: say so rather than guess.
            OpError::failed(format!(
                "{} reads an undeclared parameter `{name}`",
                self.prim.full_name()
            ))
            .with_hint("this is a bug in opsh; please report it")
        })?;
        Ok(self.args.get(i).filter(|d| !d.is_unit()))
    }

    fn required(&self, name: &str) -> Result<&Dynamic, OpError> {
        self.value(name)?.ok_or_else(|| {
            OpError::bad_input(format!("argument `{name}` is required"))
                .with_hint(format!("signature: {}", self.prim.signature()))
        })
    }

    fn wrong(&self, name: &str, expected: &str, got: &Dynamic) -> OpError {
        OpError::bad_input(format!(
            "argument `{name}` must be {expected}, got {} ({})",
            type_name(got),
            crate::redact::redact(&got.to_string())
        ))
        .with_hint(format!("signature: {}", self.prim.signature()))
    }

    pub fn str(&self, name: &str) -> Result<String, OpError> {
        let d = self.required(name)?;
        as_str(d).ok_or_else(|| self.wrong(name, "a string", d))
    }

    pub fn opt_str(&self, name: &str) -> Result<Option<String>, OpError> {
        match self.value(name)? {
            None => Ok(None),
            Some(d) => as_str(d)
                .map(Some)
                .ok_or_else(|| self.wrong(name, "a string", d)),
        }
    }

    pub fn int(&self, name: &str) -> Result<i64, OpError> {
        let d = self.required(name)?;
        d.as_int().map_err(|_| self.wrong(name, "an int", d))
    }

    pub fn opt_int(&self, name: &str) -> Result<Option<i64>, OpError> {
        match self.value(name)? {
            None => Ok(None),
            Some(d) => d
                .as_int()
                .map(Some)
                .map_err(|_| self.wrong(name, "an int", d)),
        }
    }

    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, OpError> {
        match self.value(name)? {
            None => Ok(None),
            Some(d) => d
                .as_bool()
                .map(Some)
                .map_err(|_| self.wrong(name, "true or false", d)),
        }
    }

    /// An options map; empty when not passed.
    pub fn opts(&self, name: &str) -> Result<Opts, OpError> {
        match self.value(name)? {
            None => Ok(Opts(Map::new())),
            Some(d) => d
                .read_lock::<Map>()
                .map(|m| Opts(m.clone()))
                .ok_or_else(|| self.wrong(name, "a map like #{key: value}", d)),
        }
    }

    /// An array; empty when not passed.
    pub fn array(&self, name: &str) -> Result<Array, OpError> {
        match self.value(name)? {
            None => Ok(Array::new()),
            Some(d) => d
                .read_lock::<Array>()
                .map(|a| a.clone())
                .ok_or_else(|| self.wrong(name, "an array like [1, \"a\"]", d)),
        }
    }

    /// A string or an array of strings, as a list; None when not passed.
    pub fn strings(&self, name: &str) -> Result<Option<Vec<String>>, OpError> {
        match self.value(name)? {
            None => Ok(None),
            Some(d) => strings(d)
                .map(Some)
                .ok_or_else(|| self.wrong(name, "a string or an array of strings", d)),
        }
    }

    pub fn opt_duration(&self, name: &str) -> Result<Option<Duration>, OpError> {
        match self.value(name)? {
            None => Ok(None),
            Some(d) => crate::value::parse_duration(d)
                .map(Some)
                .map_err(|e| OpError::bad_input(format!("argument `{name}`: {e}"))),
        }
    }

    /// When this call's per-call timeout expires, if it has one: for a
    /// primitive that handles its own stop (pg.exec learns whether its
    /// statement committed instead of dropping it).
    pub fn deadline(&self) -> Option<tokio::time::Instant> {
        self.deadline
    }

    /// Runs a future on the session's runtime under this call's deadline and
    /// the run's cancellation. Every network wait of a primitive goes here.
    pub fn block_on<T>(&self, fut: impl Future<Output = Result<T, OpError>>) -> Result<T, OpError> {
        // On the heap: a client's connect future is tens of kilobytes (redis-rs:
        // ~50 KB), copied at each layer down to the runtime's poll and
        // faulted into the stack of every `parallel` worker thread.
        let fut = Box::pin(fut);
        let cancel = self.session.cancel.clone();
        let deadline = self.deadline;
        self.session.rt.block_on(async move {
            let timed = async {
                match deadline {
                    Some(d) => match tokio::time::timeout_at(d, fut).await {
                        Ok(r) => r,
                        Err(_) => Err(self.timed_out()),
                    },
                    None => fut.await,
                }
            };
            tokio::select! {
                r = timed => r,
                reason = cancel.cancelled() => Err(stopped(reason)),
            }
        })
    }

    /// The error of a call that ran past its deadline (--call-timeout).
    pub fn timed_out(&self) -> OpError {
        OpError::new(
            ErrorKind::Timeout,
            format!(
                "timed out after {}",
                humantime::format_duration(self.session.call_timeout)
            ),
        )
        .with_hint(format!(
            "raise the per-call timeout with --call-timeout, or check why {} is slow",
            self.prim.full_name()
        ))
    }
}

/// The error of a call the run's cancellation stopped (Ctrl-C, SIGTERM,
/// --timeout).
pub fn stopped(reason: crate::cancel::Reason) -> OpError {
    let mut e = OpError::failed(reason.describe());
    e.cancelled = Some(reason);
    e
}

fn as_str(d: &Dynamic) -> Option<String> {
    d.is_string().then(|| d.to_string())
}

fn strings(d: &Dynamic) -> Option<Vec<String>> {
    if d.is_string() {
        return Some(vec![d.to_string()]);
    }
    d.read_lock::<Array>()?.iter().map(as_str).collect()
}

/// An options map (`#{limit: 10, older_than: "5m"}`) whose keys and types
/// dispatch has checked against the declaration. Absent keys and `()`
/// values read as None.
#[derive(Debug, Clone, Default)]
pub struct Opts(pub Map);

impl std::ops::Deref for Opts {
    type Target = Map;
    fn deref(&self) -> &Map {
        &self.0
    }
}

impl Opts {
    pub fn get(&self, k: &str) -> Option<&Dynamic> {
        self.0.get(k).filter(|d| !d.is_unit())
    }

    fn wrong(k: &str, expected: &str) -> OpError {
        OpError::bad_input(format!("option `{k}` must be {expected}"))
    }

    pub fn str(&self, k: &str) -> Result<Option<String>, OpError> {
        self.get(k)
            .map(|d| as_str(d).ok_or_else(|| Self::wrong(k, "a string")))
            .transpose()
    }

    pub fn int(&self, k: &str) -> Result<Option<i64>, OpError> {
        self.get(k)
            .map(|d| d.as_int().map_err(|_| Self::wrong(k, "an int")))
            .transpose()
    }

    /// A flag: false when absent.
    pub fn bool(&self, k: &str) -> Result<bool, OpError> {
        self.opt_bool(k).map(|b| b.unwrap_or(false))
    }

    pub fn opt_bool(&self, k: &str) -> Result<Option<bool>, OpError> {
        self.get(k)
            .map(|d| d.as_bool().map_err(|_| Self::wrong(k, "true or false")))
            .transpose()
    }

    pub fn strings(&self, k: &str) -> Result<Option<Vec<String>>, OpError> {
        self.get(k)
            .map(|d| strings(d).ok_or_else(|| Self::wrong(k, "a string or an array of strings")))
            .transpose()
    }

    pub fn duration(&self, k: &str) -> Result<Option<Duration>, OpError> {
        self.get(k)
            .map(|d| {
                crate::value::parse_duration(d)
                    .map_err(|e| OpError::bad_input(format!("option `{k}`: {e}")))
            })
            .transpose()
    }

    pub fn size(&self, k: &str) -> Result<Option<u64>, OpError> {
        self.get(k)
            .map(|d| {
                crate::value::parse_size(d)
                    .map_err(|e| OpError::bad_input(format!("option `{k}`: {e}")))
            })
            .transpose()
    }

    pub fn map(&self, k: &str) -> Result<Option<Map>, OpError> {
        self.get(k)
            .map(|d| {
                d.read_lock::<Map>()
                    .map(|m| m.clone())
                    .ok_or_else(|| Self::wrong(k, "a map"))
            })
            .transpose()
    }

    pub fn array(&self, k: &str) -> Result<Option<Array>, OpError> {
        self.get(k)
            .map(|d| {
                d.read_lock::<Array>()
                    .map(|a| a.clone())
                    .ok_or_else(|| Self::wrong(k, "an array"))
            })
            .transpose()
    }
}
