//! The one place every primitive call passes. Everything that is true for
//! every primitive happens here: arguments checked against the declaration,
//! target resolution, dry-run, confirmation on protected targets, audit,
//! per-call timeout and cancellation, and the conversion of failures into script errors. Stubs
//! (`opsh test`) and record/replay hook in here too, through
//! `testing::hooks::{intercept, observe}`.

mod call;
mod error;

pub use call::{Call, Opts};
pub use error::{kind_name, root_cause, ErrorKind, ExitCode, OpError, PrimitiveError};

use crate::cancel::Reason;
use crate::config::Target;
use crate::redact::redact;
use crate::registry::{CallTimeout, Effect, Prim};
use crate::session::Session;
use crate::value::to_json;
use rhai::{Dynamic, EvalAltResult, Map, Position};
use serde_json::json;
use std::io::{BufRead, IsTerminal, Write};
use std::time::Instant;

/// What a mutation would do, computed from the target's real current state.
pub struct Plan {
    /// One line: "would terminate 3 sessions on staging".
    pub summary: String,
    pub details: Map,
}

/// A JSON value with secrets masked: values under secret-looking keys, and
/// every known secret inside strings.
pub fn scrub_json(v: serde_json::Value, key: Option<&str>) -> serde_json::Value {
    use serde_json::Value;
    if key.is_some_and(crate::redact::is_secret_key) && !v.is_null() {
        return Value::String(crate::redact::MASK.into());
    }
    match v {
        Value::String(s) => Value::String(redact(&s)),
        Value::Array(a) => Value::Array(a.into_iter().map(|x| scrub_json(x, None)).collect()),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, x)| {
                    let v = scrub_json(x, Some(&k));
                    (k, v)
                })
                .collect(),
        ),
        other => other,
    }
}

/// A call's arguments by parameter name, secrets masked (audit, recordings).
pub fn audit_args(args: &[Dynamic], prim: Prim) -> serde_json::Value {
    let scrub = scrub_json;
    let obj: serde_json::Map<String, serde_json::Value> = args
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let name = prim.params.get(i).map(|p| p.name).unwrap_or("arg");
            (name.to_string(), scrub(to_json(a), Some(name)))
        })
        .collect();
    serde_json::Value::Object(obj)
}

/// Entry point from the engine: runs one primitive call end to end.
pub fn invoke(
    engine: &rhai::Engine,
    session: &Session,
    prim: Prim,
    handle_target: Option<String>,
    args: Vec<Dynamic>,
) -> Result<Dynamic, Box<EvalAltResult>> {
    if let Some(reason) = session.cancel.reason() {
        return Err(terminated(reason));
    }
    let deadline = match prim.timeout {
        // --call-timeout 0s: no limit, as --timeout 0s.
        CallTimeout::Default if session.call_timeout.is_zero() => None,
        CallTimeout::Default => Some(tokio::time::Instant::now() + session.call_timeout),
        CallTimeout::Unbounded => None,
    };
    tracing::debug!(primitive = %prim.full_name(), target = handle_target.as_deref().map(redact), "call");
    // A declared script's `args` reaches primitives (`show(args)`) as a map.
    let args = args.into_iter().map(crate::script_args::plain).collect();
    let mut call = Call {
        prim,
        session,
        engine,
        args,
        handle_target,
        target: None,
        deadline,
    };
    // Before stubs, replay or the primitive: a test catches a runbook
    // passing a wrong option, and nothing is contacted for a typo.
    if let Err(e) = prim.check_args(&call.args) {
        let e = OpError::bad_input(e.message).hint_opt(e.hint);
        return Err(to_script_error(&call, e));
    }
    let result = match crate::testing::hooks::intercept(&mut call) {
        Some(answer) => answer,
        None => match &prim.effect {
            Effect::Read(run) => run(&mut call),
            Effect::Mutate { plan, apply } => mutate(&mut call, *plan, *apply),
        },
    };
    crate::testing::hooks::observe(&call, &result);
    let mut result = result.map_err(|e| to_script_error(&call, e))?;
    prim.returns.complete(&mut result);
    Ok(result)
}

fn mutate(
    call: &mut Call,
    plan: crate::registry::PlanFn,
    apply: crate::registry::RunFn,
) -> Result<Dynamic, OpError> {
    let session = call.session;
    let prim = call.prim;
    let kind = prim.module.target;
    // A mutation with a target parameter (`pg.dump(target, path)`) acts on
    // the target that argument names: confirmation and audit must see that
    // one, not the module's default.
    if let (Some(kind), Some(i)) = (kind, prim.target_param()) {
        if let Some(name) = call
            .args
            .get(i)
            .filter(|a| a.is_string())
            .map(|a| a.to_string())
        {
            let t = session.resolve(kind, Some(&name))?;
            call.set_target(t);
        }
    }
    let target = match kind {
        Some(_) => Some(call.target()?),
        None => None,
    };
    let target_display = target
        .as_ref()
        .map(Target::display)
        .or_else(|| {
            call.args
                .first()
                .filter(|a| a.is_string())
                .map(|a| redact(&a.to_string()))
        })
        .unwrap_or_else(|| "-".into());
    let args_json = audit_args(&call.args, prim);
    let record = |phase: &str, mode: &str, outcome: &str, extra: serde_json::Value| {
        let mut v = json!({
            "event": "primitive",
            "phase": phase,
            "primitive": prim.full_name(),
            "target": target_display,
            "args": args_json,
            "mode": mode,
            "outcome": outcome,
        });
        if let (Some(o), serde_json::Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        session.audit.append(v)
    };

    if session.dry_run() {
        let started = Instant::now();
        let p = plan(call)?;
        // A dry run changes nothing, so an unwritable audit log does not stop it.
        let ms = started.elapsed().as_millis() as u64;
        let _ = record(
            "plan",
            "dry-run",
            "ok",
            json!({"plan": redact(&p.summary), "duration_ms": ms}),
        );
        journal(
            session,
            prim,
            &target_display,
            "dry-run",
            "planned",
            None,
            ms,
        );
        session.out.note(&format!(
            "[dry-run] {} on {}: {}",
            prim.full_name(),
            target_display,
            redact(&p.summary)
        ));
        crate::plan::observe(prim, target.as_ref(), &call.args, &p);
        let mut m = p.details;
        m.insert("dry_run".into(), Dynamic::TRUE);
        m.insert("primitive".into(), prim.full_name().into());
        m.insert("target".into(), target_display.into());
        m.insert("action".into(), redact(&p.summary).into());
        return Ok(Dynamic::from_map(m));
    }

    // Freeze windows, limits, empty selectors: refused before anyone is
    // asked to confirm, and before anything is touched.
    let admitted = match crate::policy::admit(call, target.as_ref()) {
        Ok(a) => a,
        Err(e) => {
            let _ = record(
                "refused",
                "real",
                "refused",
                json!({"error": redact(&e.message)}),
            );
            journal(
                session,
                prim,
                &target_display,
                "real",
                "refused",
                Some(redact(&e.message)),
                0,
            );
            return Err(e);
        }
    };

    if target.as_ref().is_some_and(|t| t.protected) && !session.yes {
        if let Err(e) = confirm(session, &prim.full_name(), &target_display, &call.args) {
            journal(
                session,
                prim,
                &target_display,
                "real",
                "refused",
                Some(e.message.clone()),
                0,
            );
            return Err(e);
        }
    }

    if let Err(e) = record("intent", "real", "pending", admitted.audit()) {
        return Err(OpError::refused(format!("the audit log {} cannot be written, so no mutation is made", session.audit.path().display()))
            .with_cause(e)
            .with_hint("fix its directory's permissions, or choose another file with --audit-log or OPSH_AUDIT_LOG"));
    }
    let started = Instant::now();
    let result = apply(call);
    let ms = started.elapsed().as_millis() as u64;
    let outcome = match &result {
        Ok(_) => record("outcome", "real", "ok", json!({"duration_ms": ms})),
        Err(e) => {
            let what = if e.cancelled.is_some() {
                "interrupted"
            } else {
                "error"
            };
            record(
                "outcome",
                "real",
                what,
                json!({"duration_ms": ms, "error": redact(&e.message), "cause": e.cause.as_deref().map(redact)}),
            )
        }
    };
    let error = result.as_ref().err().map(|e| redact(&e.message));
    let what = match &result {
        Ok(_) => "ok",
        Err(e) if e.cancelled.is_some() => "interrupted",
        Err(_) => "error",
    };
    journal(session, prim, &target_display, "real", what, error, ms);
    if let Err(e) = outcome {
        session.out.note(&format!(
            "warning: could not write the audit outcome record: {e}"
        ));
    }
    result
}

/// Logs a mutation and records it for `--report`.
fn journal(
    session: &Session,
    prim: Prim,
    target: &str,
    mode: &str,
    outcome: &str,
    error: Option<String>,
    ms: u64,
) {
    match &error {
        None => {
            tracing::info!(primitive = %prim.full_name(), target, mode, outcome, duration_ms = ms, "mutation")
        }
        Some(e) => {
            crate::log_failure!(primitive = %prim.full_name(), target, mode, outcome, duration_ms = ms, error = %e, "mutation failed")
        }
    }
    session.journal.mutation(crate::report::Mutation {
        primitive: prim.full_name(),
        target: target.to_string(),
        mode: mode.into(),
        outcome: outcome.into(),
        error,
        duration_ms: ms,
    });
}

pub(crate) fn confirm(
    session: &Session,
    prim: &str,
    target: &str,
    args: &[Dynamic],
) -> Result<(), OpError> {
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if !interactive {
        return Err(OpError::refused(format!("{prim} on protected target {target} needs confirmation, and there is no terminal to ask on"))
            .with_hint("re-run with --yes if this change is intended, or try it first with --dry-run"));
    }
    let shown: Vec<String> = args.iter().map(|a| redact(&a.to_string())).collect();
    let mut err = std::io::stderr();
    let _ = write!(
        err,
        "\n{prim}({}) on PROTECTED target {target}\nType `yes` to continue: ",
        shown.join(", ")
    );
    let _ = err.flush();
    let not_confirmed = || {
        OpError::refused(format!(
            "{prim} on protected target {target}: not confirmed"
        ))
    };
    // Wait for the answer without blocking in read(2), so that Ctrl-C or
    // --timeout ends the prompt at once. The terminal is in line mode here,
    // so stdin turns readable only when a whole line has been typed.
    loop {
        if let Some(reason) = session.cancel.reason() {
            let _ = writeln!(err);
            let mut e = not_confirmed();
            e.cancelled = Some(reason);
            return Err(e);
        }
        let mut fd = libc::pollfd {
            fd: libc::STDIN_FILENO,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for the duration of the call.
        let ready = unsafe { libc::poll(&mut fd, 1, 50) };
        if ready > 0 {
            break;
        }
        if ready < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Err(not_confirmed());
        }
    }
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    if line.trim() == "yes" {
        Ok(())
    } else {
        Err(not_confirmed())
    }
}

pub fn terminated(reason: Reason) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorTerminated(
        Dynamic::from(reason.describe().to_string()),
        Position::NONE,
    ))
}

fn to_script_error(call: &Call, e: OpError) -> Box<EvalAltResult> {
    if let Some(reason) = e.cancelled.or_else(|| call.session.cancel.reason()) {
        return terminated(reason);
    }
    if let ErrorKind::Exit(code) = e.kind {
        return Box::new(EvalAltResult::ErrorTerminated(
            Dynamic::from(ExitCode(code)),
            Position::NONE,
        ));
    }
    let pe = PrimitiveError {
        primitive: call.prim.full_name(),
        target: call.target.as_ref().map(Target::display),
        kind: e.kind,
        message: redact(&e.message),
        cause: e.cause.as_deref().map(redact),
        hint: e.hint.as_deref().map(redact),
    };
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(pe),
        Position::NONE,
    ))
}
