//! `opsh plan FILE --out plan.json` and `opsh apply plan.json`: a script's
//! mutations planned from real state and written down, then made exactly
//! as written, each only while the state it was planned from still holds.

use crate::args::{PlanArgs, RunArgs};
use crate::context::{self, Context};
use crate::dispatch::PrimitiveError;
use crate::engine::{self, Sources};
use crate::error::CliError;
use crate::exit;
use crate::value::{from_json, to_json};
use rhai::EvalAltResult;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// When a later step of `opsh apply` fails after earlier ones were made.
const PARTIAL: i32 = exit::PARTIAL;

/// user@host: who planned, who applied, who approved.
pub fn identity() -> String {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        // SAFETY: geteuid has no preconditions and cannot fail.
        .unwrap_or_else(|| format!("uid:{}", unsafe { libc::geteuid() }));
    format!("{user}@{}", crate::audit::hostname())
}

fn plan_ttl(cfg: &crate::config::Config) -> Result<Duration, CliError> {
    match cfg.policy.plan_ttl.as_deref() {
        None => Ok(Duration::from_secs(3600)),
        Some(t) => humantime::parse_duration(t).map_err(|e| {
            CliError::usage(format!(
                "[plan] ttl = {t:?} in the config is not a duration: {e}"
            ))
            .with_hint("write e.g. ttl = \"30m\"")
        }),
    }
}

pub fn plan(ctx: &Context, a: &PlanArgs) -> Result<i32, CliError> {
    let cfg = ctx.config()?;
    let ttl = plan_ttl(&cfg)?;
    let (name, text) = context::read_script(&a.file)?;
    crate::plan::start_recording();
    let mut global = ctx.global.clone();
    global.dry_run = true;
    let planning = Context {
        global,
        argv: ctx.argv.clone(),
    };
    let ra = RunArgs {
        file: Some(a.file.clone()),
        args: a.args.clone(),
        ..RunArgs::default()
    };
    let code = crate::commands::run::run(&planning, &ra)?;
    if code != exit::OK {
        return Err(CliError::new(
            code,
            format!("the script did not finish planning (exit {code}); no plan was written"),
        ));
    }
    let steps = crate::plan::recorded();
    let now = chrono::Utc::now();
    let expires = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1));
    let secs =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let args: Vec<String> = a.args.iter().map(|s| crate::redact::redact(s)).collect();
    let mut doc = json!({
        "opsh_plan": crate::plan::VERSION,
        "script": {"name": name, "text": text, "sha256": crate::plan::sha256_hex(text.as_bytes())},
        "args": args,
        "planned_by": identity(),
        "planned_at": secs(now),
        "expires_at": secs(expires),
        "mutations": steps,
    });
    crate::plan::seal(&mut doc);
    let body = serde_json::to_string_pretty(&doc)
        .map_err(|e| CliError::failed(format!("cannot encode the plan: {e}")))?;
    std::fs::write(&a.out, format!("{body}\n")).map_err(|e| {
        CliError::failed(format!("cannot write the plan to {}: {e}", a.out.display()))
    })?;
    if ctx.output().format == crate::output::Format::Json {
        crate::stdio::out(format_args!("{doc}\n"));
        return Ok(exit::OK);
    }
    crate::stdio::out(format_args!("{}", summary(&doc, &a.out)));
    Ok(exit::OK)
}

fn summary(doc: &Value, path: &Path) -> String {
    let steps = doc["mutations"].as_array().cloned().unwrap_or_default();
    let mut s = format!(
        "plan {} ({} mutation{}) by {} at {}, expires {}\nscript {} sha256 {}\n",
        path.display(),
        steps.len(),
        if steps.len() == 1 { "" } else { "s" },
        doc["planned_by"].as_str().unwrap_or("?"),
        doc["planned_at"].as_str().unwrap_or("?"),
        doc["expires_at"].as_str().unwrap_or("?"),
        doc["script"]["name"].as_str().unwrap_or("?"),
        doc["script"]["sha256"].as_str().unwrap_or("?"),
    );
    for (i, st) in steps.iter().enumerate() {
        s.push_str(&format!(
            "  {}. {} on {}: {}\n",
            i + 1,
            st["primitive"].as_str().unwrap_or("?"),
            step_target(st),
            st["summary"].as_str().unwrap_or("")
        ));
    }
    if steps.is_empty() {
        s.push_str("  (no mutations: applying it changes nothing)\n");
    }
    s.push_str(&format!("review it, then: opsh apply {}\n", path.display()));
    s
}

fn step_target(st: &Value) -> String {
    match (st["kind"].as_str(), st["target"].as_str()) {
        (Some(k), Some(t)) => format!("{k}:{t}"),
        _ => "-".into(),
    }
}

pub fn read(path: &Path) -> Result<Value, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("cannot read the plan {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        CliError::new(
            exit::REFUSED,
            format!("{} is not a plan file: {e}", path.display()),
        )
        .with_hint("make one with `opsh plan SCRIPT --out plan.json`")
    })
}

fn refused(msg: impl Into<String>) -> CliError {
    CliError::new(exit::REFUSED, msg)
}

fn message(err: &EvalAltResult) -> String {
    if let EvalAltResult::ErrorRuntime(d, _) = err {
        if let Some(pe) = d.clone().try_cast::<PrimitiveError>() {
            let mut s = pe.to_string();
            if let Some(h) = pe.hint {
                s.push_str(&format!(" (hint: {h})"));
            }
            return s;
        }
    }
    err.to_string()
}

pub fn apply(ctx: &Context, path: &Path) -> Result<i32, CliError> {
    let doc = read(path)?;
    crate::plan::verify(&doc, chrono::Utc::now()).map_err(|e| {
        refused(format!("{}: {e}; nothing was applied", path.display()))
            .with_hint("make a new plan with `opsh plan`")
    })?;
    let mut cfg = ctx.config()?;
    ctx.apply_targets(&mut cfg)?;
    crate::commands::approve::check_approvals(&cfg, &doc)
        .map_err(|e| refused(format!("{}: {e}; nothing was applied", path.display())))?;
    let digest = doc["digest"].as_str().unwrap_or_default().to_string();
    let script = format!("apply {}", path.display());
    let mut opts = ctx.options(&cfg, &script, rhai::Map::new());
    opts.dry_run = false;
    let session = Arc::new(ctx.session(opts, cfg)?);
    session.cancel.install_signal_handlers(&session.rt);
    if let Some(t) = ctx.global.timeout {
        let _ = session.cancel.arm_timeout(&session.rt, t);
    }
    let engine = engine::build(
        session.clone(),
        Arc::new(Sources::default()),
        std::path::PathBuf::from("."),
    );
    let _ = session.audit.append(json!({
        "event": "apply", "phase": "start", "plan": digest,
        "planned_by": doc["planned_by"], "script_sha256": doc["script"]["sha256"],
    }));
    let steps = doc["mutations"].as_array().cloned().unwrap_or_default();
    let n = steps.len();
    for (i, st) in steps.iter().enumerate() {
        let name = st["primitive"].as_str().unwrap_or_default();
        let at = format!("step {}/{n} {name} on {}", i + 1, step_target(st));
        let done = if i == 0 {
            "nothing was changed".to_string()
        } else {
            format!("steps 1-{i} were applied, the rest not")
        };
        let code_for = |c: i32| if i == 0 { c } else { PARTIAL };
        let prim = crate::registry::lookup(name)
            .ok_or_else(|| refused(format!("{at}: no such primitive in this opsh; {done}")))?;
        if st["secret_args"].as_bool() != Some(false) {
            return Err(CliError::new(code_for(exit::REFUSED), format!("{at}: its arguments held a secret, which the plan records masked, so it cannot be replayed; {done}"))
                .with_hint("pass secrets through the target's config (password_env, bearer_env) rather than as arguments"));
        }
        let mut args: Vec<rhai::Dynamic> = st["args"]
            .as_array()
            .map(|a| a.iter().map(from_json).collect())
            .unwrap_or_default();
        let handle = st["target"].as_str().map(str::to_string);
        // The state now, read as the plan read it.
        session.set_dry_run(true);
        let now = crate::dispatch::invoke(&engine, &session, prim, handle.clone(), args.clone())
            .map_err(|e| {
                CliError::new(
                    code_for(crate::diagnostic::exit_code(&e, session.cancel.reason())),
                    format!("{at}: re-reading its state failed: {}; {done}", message(&e)),
                )
            })?;
        let drifted = crate::plan::drift(&st["preconditions"], &to_json(&now));
        if !drifted.is_empty() {
            let what: Vec<String> = drifted
                .iter()
                .map(|(k, was, is)| format!("{k} was {was} when planned, is {is} now"))
                .collect();
            let _ = session.audit.append(json!({"event": "apply", "phase": "drift", "plan": digest, "step": i + 1, "drift": what}));
            return Err(CliError::new(
                code_for(exit::REFUSED),
                format!(
                    "{at}: the state drifted since the plan ({}); {done}",
                    what.join(", ")
                ),
            )
            .with_hint("someone else changed it: make a new plan from the current state"));
        }
        crate::plan::pin(name, &mut args, &st["preconditions"]);
        session.set_dry_run(false);
        let _result =
            crate::dispatch::invoke(&engine, &session, prim, handle, args).map_err(|e| {
                CliError::new(
                    code_for(crate::diagnostic::exit_code(&e, session.cancel.reason())),
                    format!("{at}: {}; {done}", message(&e)),
                )
            })?;
        crate::stdio::errln(format_args!(
            "applied {at}: {}",
            st["summary"].as_str().unwrap_or("")
        ));
    }
    let _ = session
        .audit
        .append(json!({"event": "apply", "phase": "end", "plan": digest, "steps": n}));
    crate::stdio::out(format_args!(
        "applied {n} of {n} mutations of {}\n",
        path.display()
    ));
    Ok(exit::OK)
}
