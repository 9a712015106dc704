//! The state behind `opsh test` stubs, `calls()`, and `--record/--replay`,
//! and the one hook `dispatch::invoke` runs for every primitive call. A call
//! is answered, in order, by a stub (test mode), the replayed recording, or
//! the real primitive; test mode never lets an unstubbed call through unless
//! the tests run against a sandbox (`opsh test --sandbox`).

use crate::dispatch::{Call, ErrorKind, OpError};
use crate::record::{Recorder, Replay};
use crate::registry::Class;
use crate::value::map_of;
use rhai::{Dynamic, FnPtr};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

pub enum Stub {
    Value(Dynamic),
    /// One value per call; the last repeats once they run out.
    Seq(Vec<Dynamic>, usize),
    /// With the script that defined it: a closure is found by name there,
    /// even when a runbook (another script) makes the call.
    Func(FnPtr, std::sync::Arc<rhai::AST>),
    Error(String),
}

/// One call as `calls()` returns it.
#[derive(Clone)]
pub struct Logged {
    pub primitive: String,
    /// A call of a `Class::Show` primitive: what the test captured.
    pub shown: bool,
    pub target: Option<String>,
    pub args: Vec<Dynamic>,
    pub result: Result<Dynamic, String>,
}

#[derive(Default)]
pub struct Hooks {
    test: AtomicBool,
    real: AtomicBool,
    /// Answer every unstubbed system call with a value of its declared
    /// result type (the examples test).
    synthesize: AtomicBool,
    stubs: Mutex<HashMap<String, Stub>>,
    calls: Mutex<Vec<Logged>>,
    pub recorder: Mutex<Option<Recorder>>,
    pub replay: Mutex<Option<Replay>>,
}

impl Hooks {
    pub fn set_test_mode(&self, on: bool, real: bool) {
        self.test.store(on, Ordering::Relaxed);
        self.real.store(real, Ordering::Relaxed);
    }

    pub fn set_synthesize(&self, on: bool) {
        self.synthesize.store(on, Ordering::Relaxed);
    }

    pub fn test_mode(&self) -> bool {
        self.test.load(Ordering::Relaxed)
    }

    /// Fresh stubs and call log, for the next test.
    pub fn reset(&self) {
        if let Ok(mut s) = self.stubs.lock() {
            s.clear();
        }
        if let Ok(mut c) = self.calls.lock() {
            c.clear();
        }
        if let Ok(mut r) = self.replay.lock() {
            *r = None;
        }
    }

    pub fn stub(&self, name: String, stub: Stub) {
        if let Ok(mut s) = self.stubs.lock() {
            s.insert(name, stub);
        }
    }

    /// Calls of one primitive (or all, for None), in order.
    pub fn calls(&self, name: Option<&str>) -> Vec<Logged> {
        self.calls
            .lock()
            .map(|c| {
                c.iter()
                    .filter(|l| name.is_none_or(|n| l.primitive == n))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Everything `show` was given since the last reset (test mode).
    pub fn shows(&self) -> Vec<Dynamic> {
        self.calls(None)
            .into_iter()
            .filter(|l| l.shown)
            .filter_map(|l| l.args.into_iter().next())
            .collect()
    }

    fn next_stub(&self, name: &str) -> Option<Stub> {
        let mut stubs = self.stubs.lock().ok()?;
        match stubs.get_mut(name)? {
            Stub::Value(v) => Some(Stub::Value(v.clone())),
            Stub::Seq(values, next) => {
                let v = values.get(*next).or(values.last()).cloned()?;
                *next += 1;
                Some(Stub::Value(v))
            }
            Stub::Func(f, ast) => Some(Stub::Func(f.clone(), ast.clone())),
            Stub::Error(m) => Some(Stub::Error(m.clone())),
        }
    }
}

/// Called by dispatch before a primitive runs: Some(answer) replaces the
/// real call.
pub fn intercept(call: &mut Call) -> Option<Result<Dynamic, OpError>> {
    let hooks = &call.session.hooks;
    let class = call.prim.class;
    if class == Class::Control {
        return None;
    }
    let name = call.prim.full_name();
    let test = hooks.test_mode();
    if test {
        if let Some(stub) = hooks.next_stub(&name) {
            return Some(answer_stub(call, stub));
        }
        if class == Class::Show {
            return Some(Ok(Dynamic::UNIT));
        }
    }
    if class == Class::Show {
        return None;
    }
    let replaying = hooks.replay.lock().map(|r| r.is_some()).unwrap_or(false);
    if let Class::Handle { narrows } = class {
        let offline = replaying || (test && !hooks.real.load(Ordering::Relaxed));
        return offline.then(|| Ok(offline_handle(call, narrows)));
    }
    if let Some(answer) = crate::record::replay_answer(call, class == Class::System) {
        return Some(answer);
    }
    if !test || hooks.real.load(Ordering::Relaxed) {
        return None;
    }
    match class {
        // Tests do not wait.
        Class::Wait => Some(Ok(Dynamic::UNIT)),
        Class::Local => None,
        _ if hooks.synthesize.load(Ordering::Relaxed) => Some(Ok(call.prim.returns.sample())),
        _ if call.prim.mutates() => Some(Ok(unapplied(call, "test mode: not stubbed, not applied"))),
        _ => Some(Err(OpError::refused(format!("{name} is not stubbed in this test"))
            .with_hint(format!("stub it, e.g. stub(\"{name}\", value) or stub(\"{name}\", |arg| ...); or run the tests against a sandbox with opsh test --sandbox")))),
    }
}

/// Called by dispatch after every call (stubbed, replayed or real).
pub fn observe(call: &Call, result: &Result<Dynamic, OpError>) {
    let class = call.prim.class;
    if class == Class::Control {
        return;
    }
    let hooks = &call.session.hooks;
    if hooks.test_mode() {
        if let Ok(mut c) = hooks.calls.lock() {
            c.push(Logged {
                primitive: call.prim.full_name(),
                shown: class == Class::Show,
                target: call.handle_target().map(str::to_string),
                args: call.args.clone(),
                result: match result {
                    Ok(v) => Ok(v.clone()),
                    Err(e) => Err(e.message.clone()),
                },
            });
        }
    }
    if !matches!(class, Class::Show | Class::Handle { .. }) {
        crate::record::record_call(call, result);
    }
}

/// `pg.connect("staging")` -> a handle on "staging"; `k8s.context("prod").ns("web")`
/// -> a handle on "prod/web". Nothing is contacted.
fn offline_handle(call: &Call, narrows: bool) -> Dynamic {
    let name = call.args.first().map(|a| a.to_string()).unwrap_or_default();
    let target = match (narrows, call.handle_target()) {
        (true, Some(t)) => format!("{t}/{name}"),
        _ => name,
    };
    Dynamic::from(crate::engine::Handle {
        module: call.prim.module.name,
        target: Some(target),
    })
}

/// What an unapplied mutation returns: the shape of a dry-run plan.
pub fn unapplied(call: &Call, why: &str) -> Dynamic {
    let target = call.handle_target().unwrap_or("default").to_string();
    if !call.session.hooks.test_mode() {
        call.session
            .out
            .note(&format!("[{why}] {} on {target}", call.prim.full_name()));
    }
    Dynamic::from_map(map_of([
        ("dry_run", Dynamic::TRUE),
        ("primitive", call.prim.full_name().into()),
        ("target", target.into()),
        ("action", why.into()),
    ]))
}

fn answer_stub(call: &Call, stub: Stub) -> Result<Dynamic, OpError> {
    match stub {
        Stub::Value(v) => Ok(v),
        // next_stub resolves sequences to values.
        Stub::Seq(values, _) => Ok(values.into_iter().next().unwrap_or_default()),
        Stub::Error(m) => Err(OpError::failed(m).with_hint("this failure is stubbed by the test")),
        Stub::Func(f, ast) => {
            // A stub may name every declared parameter (|name, fallback|)
            // while the script passes fewer: pad with () and retry.
            let mut args = call.args.clone();
            let mut r = f.call::<Dynamic>(call.engine, &ast, args.clone());
            let arity_miss = matches!(&r, Err(e) if matches!(&**e,
                rhai::EvalAltResult::ErrorFunctionNotFound(sig, _) if sig.starts_with(f.fn_name())));
            if arity_miss && args.len() < call.prim.params.len() {
                args.resize(call.prim.params.len(), Dynamic::UNIT);
                r = f.call::<Dynamic>(call.engine, &ast, args);
            }
            r.map_err(|e| {
                let msg = match crate::diagnostic::leaf(&e) {
                    rhai::EvalAltResult::ErrorRuntime(v, _) => v.to_string(),
                    other => other.to_string(),
                };
                OpError::new(ErrorKind::Failed, msg).with_hint("raised by the test's stub")
            })
        }
    }
}
