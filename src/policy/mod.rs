//! Change control at the one place every mutation passes (dispatch):
//! freeze windows, blast-radius limits, and the refusal of empty selectors.
//! Dispatch calls [`admit`] once, after a dry run has returned and before
//! the confirmation prompt; primitives whose size is only known from what
//! they read (rows, keys, sessions, pods) ask [`limit`] for their ceiling.
//! docs/change-control.md is the user's view.

pub mod freeze;
pub mod limits;

pub use freeze::Freeze;
pub use limits::{over, Applied, Limit, Limits, LimitsConfig};

use crate::config::Target;
use crate::dispatch::{Call, OpError};
use rhai::{Dynamic, Map};
use serde_json::json;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;

/// `[limits]` and `[[freeze]]` of the config.
#[derive(Debug, Default, Clone)]
pub struct Policy {
    pub limits: LimitsConfig,
    pub freeze: Vec<Freeze>,
    /// `[plan] ttl`: how long a plan may wait to be applied (default 1h).
    pub plan_ttl: Option<String>,
    /// `[[approval]]` rules.
    pub approval: Vec<ApprovalRule>,
    /// `[approvals]`: the shared key approvals are signed with.
    pub approvals: ApprovalsConfig,
}

/// `[[approval]] targets = ["pg:prod*"], required = 2`
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRule {
    pub targets: Vec<String>,
    pub required: i64,
}

#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsConfig {
    pub key_file: Option<std::path::PathBuf>,
    pub key_env: Option<String>,
}

#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanConfig {
    pub ttl: Option<String>,
}

/// How freeze windows and limits name a target: `pg:prod`, `kube:staging`.
pub fn identity(t: &Target) -> String {
    format!("{}:{}", t.kind.name(), t.name)
}

/// A glob over `kind:name` (`pg:prod*`, `kube:*`, `*`).
pub fn target_matches(glob: &str, identity: &str) -> bool {
    crate::fleet::glob_match(glob, identity)
}

static BREAK_GLASS: OnceLock<String> = OnceLock::new();

/// `--break-glass "reason"`: set once, when the command line is read.
pub fn set_break_glass(reason: &str) -> Result<(), String> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(
            "--break-glass needs a reason, e.g. --break-glass \"INC-123: primary disk full\""
                .into(),
        );
    }
    let _ = BREAK_GLASS.set(crate::redact::redact(reason));
    Ok(())
}

pub fn break_glass() -> Option<&'static str> {
    BREAK_GLASS.get().map(String::as_str)
}

/// Real mutations admitted in this process (one run; the console: one session).
static MUTATIONS: AtomicI64 = AtomicI64::new(0);

/// What an admitted mutation adds to its audit records.
#[derive(Debug, Default)]
pub struct Admitted {
    /// The freeze window this call passed through with --break-glass.
    pub broke: Option<(String, String)>,
}

impl Admitted {
    /// `fields` of an audit record, with the break-glass if any.
    pub fn audit(&self, mut fields: serde_json::Value) -> serde_json::Value {
        if let (Some((window, reason)), Some(o)) = (&self.broke, fields.as_object_mut()) {
            o.insert("break_glass".into(), json!(reason));
            o.insert("freeze".into(), json!(window));
        }
        fields
    }
}

/// The ceiling of `l` for the call's target, if configured.
pub fn limit(call: &mut Call, l: Limit) -> Result<Option<Applied>, OpError> {
    let t = match call.prim.module.target {
        Some(_) => Some(call.target()?),
        None => None,
    };
    Ok(limits_of(call, t.as_ref(), l))
}

fn limits_of(call: &Call, t: Option<&Target>, l: Limit) -> Option<Applied> {
    let cfg = call.session.config.read().ok()?;
    cfg.policy.limits.for_target(t, l)
}

/// A script's own `max` option and the configured limit together: the
/// script may lower the ceiling, never raise it above the config's.
pub fn ceiling(own: Option<i64>, configured: Option<Applied>, default: i64, opt: &str) -> Applied {
    match (own, configured) {
        (Some(n), Some(c)) if c.value < n => c,
        (Some(n), _) => Applied {
            value: n,
            from: format!("option `{opt}`"),
        },
        (None, Some(c)) => c,
        (None, None) => Applied {
            value: default,
            from: format!("the default `{opt}`"),
        },
    }
}

/// Parameters and options whose value selects what a mutation acts on: an
/// empty one must never mean "everything".
const SELECTORS: [&str; 6] = [
    "selector",
    "pattern",
    "matchers",
    "filter",
    "keys",
    "label_selector",
];

fn empty(d: &Dynamic) -> bool {
    if d.is_string() {
        return d.to_string().trim().is_empty();
    }
    if let Some(a) = d.read_lock::<rhai::Array>() {
        return a.is_empty();
    }
    if let Some(m) = d.read_lock::<Map>() {
        return m.is_empty();
    }
    false
}

fn empty_selector(call: &Call) -> Option<String> {
    for (i, p) in call.prim.params.iter().enumerate() {
        let Some(v) = call.args.get(i).filter(|d| !d.is_unit()) else {
            continue;
        };
        if SELECTORS.contains(&p.name) && empty(v) {
            return Some(format!("argument `{}`", p.name));
        }
        if let Some(m) = v.read_lock::<Map>() {
            for (k, v) in m.iter() {
                if SELECTORS.contains(&k.as_str()) && !v.is_unit() && empty(v) {
                    return Some(format!("option `{k}`"));
                }
            }
        }
    }
    None
}

/// Every check that does not need the primitive's own reads. Err: the
/// mutation is refused (exit 3) and nothing was changed.
pub fn admit(call: &mut Call, target: Option<&Target>) -> Result<Admitted, OpError> {
    let name = call.prim.full_name();
    if let Some(what) = empty_selector(call) {
        return Err(OpError::refused(format!(
            "{name}: {what} is empty, and an empty selector never means \"everything\"; nothing was changed"
        ))
        .with_hint("name what to act on; to act on everything, say so explicitly (e.g. the pattern \"*\") after a --dry-run"));
    }
    let mut admitted = Admitted::default();
    if let Some(t) = target {
        let id = identity(t);
        let now = chrono::Utc::now();
        let windows: Vec<(String, chrono::DateTime<chrono::Utc>, Option<String>)> = {
            let cfg = call.session.config.read().map_err(|_| {
                OpError::failed("the config lock is poisoned")
                    .with_hint("this is a bug in opsh; please report it")
            })?;
            cfg.policy
                .freeze
                .iter()
                .filter(|f| f.covers(&id))
                .filter_map(|f| {
                    f.open_until(now)
                        .map(|u| (f.name.clone(), u, f.reason.clone()))
                })
                .collect()
        };
        if let Some((window, until, why)) = windows.into_iter().next() {
            let until = until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            match break_glass() {
                Some(reason) => {
                    call.session.out.note(&format!(
                        "warning: {name} on {} inside freeze window `{window}` (until {until}): break-glass: {reason}",
                        t.display()
                    ));
                    admitted.broke = Some((window, reason.to_string()));
                }
                None => {
                    let why = why.map(|w| format!(" ({w})")).unwrap_or_default();
                    return Err(OpError::refused(format!(
                        "{name} on {id} refused: freeze window `{window}`{why} is in force until {until}; nothing was changed"
                    ))
                    .with_hint("wait until the window ends, or if this cannot wait re-run with --break-glass \"reason\" (the reason is audited)"));
                }
            }
        }
        if name == "k8s.scale" {
            if let (Some(n), Some(a)) = (
                call.opt_int("replicas")?,
                limits_of(call, Some(t), Limit::MinAvailable),
            ) {
                if n < a.value {
                    return Err(over(
                        &format!(
                            "{name} to {n} replicas on {id} would leave fewer than {} available",
                            a.value
                        ),
                        &a,
                        "nothing was changed",
                    ));
                }
            }
        }
    }
    if let Some(a) = limits_of(call, target, Limit::MaxMutations) {
        let done = MUTATIONS.load(Ordering::SeqCst);
        if done >= a.value {
            return Err(over(
                &format!("{name} would be mutation {} of this run", done + 1),
                &a,
                "this one was not made",
            ));
        }
    }
    MUTATIONS.fetch_add(1, Ordering::SeqCst);
    Ok(admitted)
}

/// Pods deleted or restarted in this run, against `max_pods`.
static PODS: AtomicI64 = AtomicI64::new(0);

/// Counts `n` more pods replaced by this run; refuses (before the change)
/// when that would pass `max_pods`.
pub fn pods(call: &mut Call, n: i64, what: &str) -> Result<(), OpError> {
    let Some(max) = limit(call, Limit::MaxPods)? else {
        return Ok(());
    };
    let before = PODS.load(Ordering::SeqCst);
    if before + n > max.value {
        let so_far = if before > 0 {
            format!(" ({before} already in this run)")
        } else {
            String::new()
        };
        return Err(over(
            &format!("{what} would replace {n} pods{so_far}"),
            &max,
            "nothing was changed",
        ));
    }
    PODS.fetch_add(n, Ordering::SeqCst);
    Ok(())
}

/// `--each-target`: refuses a fleet run over `max_targets` before any child starts.
pub fn admit_fleet(
    cfg: &crate::config::Config,
    kind: crate::config::Kind,
    targets: &[String],
) -> Result<(), String> {
    let limits = &cfg.policy.limits;
    let applied = targets
        .iter()
        .filter_map(|t| limits.for_identity(&format!("{}:{t}", kind.name()), Limit::MaxTargets))
        .min_by_key(|a| a.value);
    match applied {
        Some(a) if targets.len() as i64 > a.value => Err(format!(
            "this fleet run would act on {} targets, over the limit {} = {}; nothing was run",
            targets.len(),
            a.from,
            a.value
        )),
        _ => Ok(()),
    }
}
