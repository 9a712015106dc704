//! The one place every primitive call passes. Everything that is true for
//! every primitive happens here: arguments checked against the declaration,
//! target resolution, dry-run, confirmation on protected targets, audit,
//! per-call timeout and cancellation, and the conversion of failures into script errors. Stubs
//! (`opsh test`) and record/replay hook in here too, through
//! `testing::hooks::{intercept, observe}`.

mod call;
mod error;

pub use call::{stopped, Call, Opts};
pub use error::{
    kind_name, root_cause, Applied, ErrorKind, ExitCode, Known, OpError, PrimitiveError,
};

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
        audit_extra: Default::default(),
        unchanged: false,
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
    // Scripts have one integer type (Rhai's `only_i64`): an i32 or a u64
    // would reach them as an opaque value with no arithmetic. Checked in
    // debug builds, which every test runs.
    #[cfg(debug_assertions)]
    if let Some(ty) = foreign_number(&result) {
        panic!(
            "{} returned a {ty}: convert it to INT (i64) or FLOAT",
            prim.full_name()
        );
    }
    Ok(result)
}

/// The first number in `v` (or in its arrays and maps) of a Rust type
/// scripts have no operators for.
#[cfg(debug_assertions)]
fn foreign_number(v: &Dynamic) -> Option<&'static str> {
    macro_rules! foreign {
        ($($t:ty),*) => {
            $(if v.is::<$t>() { return Some(stringify!($t)); })*
        };
    }
    foreign!(i8, i16, i32, i128, isize, u8, u16, u32, u64, u128, usize, f32);
    if let Some(a) = v.read_lock::<rhai::Array>() {
        return a.iter().find_map(foreign_number);
    }
    if let Some(m) = v.read_lock::<rhai::Map>() {
        return m.values().find_map(foreign_number);
    }
    None
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
    let identity = match &target {
        Some(t) => identity(call, t)?,
        None => serde_json::Value::Null,
    };
    let place = place(target.as_ref(), &identity, &target_display);
    let args_json = audit_args(&call.args, prim);
    let record = |phase: &str, mode: &str, outcome: &str, extra: serde_json::Value| {
        let mut v = json!({
            "event": "primitive",
            "phase": phase,
            "primitive": prim.full_name(),
            "target": target_display,
            "identity": identity,
            "args": args_json,
            "mode": mode,
            "outcome": outcome,
        });
        if let (Some(o), serde_json::Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        session.audit.append(v)
    };
    let failure = |e: &OpError, ms: u64| {
        json!({
            "duration_ms": ms,
            "error": redact(&e.message),
            "cause": e.cause.as_deref().map(redact),
        })
    };

    if session.dry_run() {
        let started = Instant::now();
        let planned = plan(call);
        // A dry run changes nothing, so an unwritable audit log does not stop it.
        let ms = started.elapsed().as_millis() as u64;
        let p = match planned {
            Ok(p) => p,
            Err(e) => {
                let mut extra = failure(&e, ms);
                if e.kind == ErrorKind::Refused {
                    extra["reason"] = json!(redact(&e.message));
                }
                let _ = record("plan", "dry-run", outcome_of_error(&e), extra);
                return Err(e);
            }
        };
        let _ = record(
            "plan",
            "dry-run",
            "ok",
            json!({
                "plan": redact(&p.summary),
                "estimate": payload(&Dynamic::from_map(p.details.clone())),
                "duration_ms": ms,
            }),
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
        if !session.quiet {
            session.out.note(&format!(
                "[dry-run] {} on {}: {}",
                prim.full_name(),
                target_display,
                redact(&p.summary)
            ));
        }
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
                json!({"reason": redact(&e.message), "how": "change control"}),
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

    let confirmation = match target.as_ref().is_some_and(|t| t.protected) {
        false => serde_json::Value::Null,
        true if session.yes => confirmed("--yes"),
        true => match confirm(session, &prim.full_name(), &target_display, &call.args) {
            Ok(()) => confirmed("typed"),
            Err(e) => {
                let how = match e.cancelled {
                    Some(r) => format!("the prompt was ended: {}", r.describe()),
                    None => "no terminal to ask on, or not confirmed".to_string(),
                };
                let _ = record(
                    "refused",
                    "real",
                    "refused",
                    json!({"reason": redact(&e.message), "how": how, "protected": true}),
                );
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
        },
    };

    if let Err(e) = record(
        "intent",
        "real",
        "pending",
        admitted.audit(json!({"confirmation": confirmation})),
    ) {
        return Err(OpError::refused(format!("the audit log {} cannot be written, so no mutation is made", session.audit.path().display()))
            .with_cause(e)
            .with_hint("fix its directory's permissions, or choose another file with --audit-log or OPSH_AUDIT_LOG"));
    }
    let started = Instant::now();
    let mut result = apply(call);
    let ms = started.elapsed().as_millis() as u64;
    let mut extra = serde_json::Value::Object(std::mem::take(&mut call.audit_extra));
    extra["duration_ms"] = json!(ms);
    let (outcome, line) = match &mut result {
        Ok(v) => {
            extra["result"] = payload(v);
            extra["changed"] = json!(!call.unchanged);
            ("ok", Some((says(call, v, &place), true)))
        }
        Err(e) => {
            if let (Some(o), serde_json::Value::Object(f)) = (extra.as_object_mut(), failure(e, ms))
            {
                o.extend(f);
            }
            if let Some(r) = e.cancelled {
                extra["interrupted"] = json!(r.describe());
            }
            // An interrupt with nothing else known: the request may have
            // been in flight, so its effect is unknown, not "interrupted".
            if e.known.is_none() && e.cancelled.is_some() {
                *e = e.clone().with_applied(
                    Applied::Unknown,
                    "interrupted before its answer arrived: the request may or may not have reached the target",
                    None,
                );
            }
            if e.kind == ErrorKind::OutcomeUnknown && e.known.is_none() {
                let why = redact(&e.message);
                *e = e.clone().with_applied(Applied::Unknown, why, None);
            }
            match e.known.as_deref().cloned() {
                Some(Known {
                    applied: a,
                    why,
                    result: landed,
                }) => {
                    extra["why"] = json!(redact(&why));
                    if let Some(v) = &landed {
                        extra["result"] = payload(v);
                    }
                    let line = match a {
                        Applied::Yes => Some((
                            format!(
                                "{} ({})",
                                says(call, landed.as_ref().unwrap_or(&Dynamic::UNIT), &place),
                                redact(&why)
                            ),
                            true,
                        )),
                        Applied::Unknown => Some((
                            format!(
                                "{} in {place}: outcome unknown ({})",
                                prim.full_name(),
                                redact(&why)
                            ),
                            false,
                        )),
                        Applied::No => None,
                    };
                    (a.outcome(), line)
                }
                None => {
                    if e.kind == ErrorKind::Refused {
                        extra["reason"] = json!(redact(&e.message));
                    }
                    (outcome_of_error(e), None)
                }
            }
        }
    };
    let written = record("outcome", "real", outcome, extra);
    let error = result.as_ref().err().map(|e| redact(&e.message));
    journal(session, prim, &target_display, "real", outcome, error, ms);
    if let Some((line, known)) = line {
        // `opsh test --sandbox` reports its tests, not each change they make.
        // A generic "done" line for a call that changed nothing (a backup
        // read, not restored) would only be noise.
        let said = !call.unchanged || call.prim.says.is_some();
        if said && !session.quiet && !session.hooks.test_mode() {
            session.out.note(&line);
        }
        if !call.unchanged {
            session.record_change(line, known);
        }
    }
    if let Err(e) = written {
        session.out.note(&format!(
            "warning: could not write the audit outcome record: {e}"
        ));
    }
    result
}

/// The audit outcome of a mutation that failed before anything is known
/// to have been sent.
fn outcome_of_error(e: &OpError) -> &'static str {
    match e.kind {
        ErrorKind::Refused => "refused",
        ErrorKind::OutcomeUnknown => "unknown",
        _ => "error",
    }
}

/// The `confirmation` of an intent record: who let a change to a protected
/// target through, when, and how.
fn confirmed(how: &str) -> serde_json::Value {
    json!({
        "how": how,
        "by": crate::audit::current_user(),
        "at": crate::audit::timestamp(std::time::SystemTime::now()),
    })
}

/// A result as the audit log keeps it: secrets masked, and bounded, since
/// one record must stay one reasonable line.
fn payload(v: &Dynamic) -> serde_json::Value {
    const MAX: usize = 16 * 1024;
    let j = scrub_json(to_json(v), None);
    let size = serde_json::to_string(&j).map(|s| s.len()).unwrap_or(0);
    if size <= MAX {
        return j;
    }
    // Too big: keep the scalars (counts, from/to) and the size of the rest.
    match j {
        serde_json::Value::Object(o) => {
            let mut kept: serde_json::Map<String, serde_json::Value> = o
                .into_iter()
                .map(|(k, v)| match v {
                    serde_json::Value::Array(a) => (k, json!({"items": a.len()})),
                    serde_json::Value::Object(m) => (k, json!({"keys": m.len()})),
                    serde_json::Value::String(s) if s.len() > 1024 => {
                        (k, json!({"chars": s.chars().count()}))
                    }
                    other => (k, other),
                })
                .collect();
            kept.insert("truncated_from_bytes".into(), json!(size));
            serde_json::Value::Object(kept)
        }
        serde_json::Value::Array(a) => json!({"items": a.len(), "truncated_from_bytes": size}),
        _ => json!({"truncated_from_bytes": size}),
    }
}

/// The resolved identity of a target, for the audit log: what a reviewer
/// needs to know which server, database and account a change went to.
/// URLs lose their password; a Kubernetes target is asked its client
/// (server, context, namespace, user).
fn identity(call: &mut Call, t: &Target) -> Result<serde_json::Value, OpError> {
    // Stubs and replay answer before dispatch gets here, so this is a
    // real call: its client is made now and reused by the primitive.
    if t.kind == crate::config::Kind::Kube {
        return crate::modules::k8s::identity(call);
    }
    let Ok(u) = url::Url::parse(&t.url) else {
        return Ok(json!({"target": t.display()}));
    };
    let path = u.path().trim_start_matches('/');
    let mut v = json!({
        "name": t.name,
        "scheme": u.scheme(),
        "host": u.host_str(),
        "port": u.port_or_known_default(),
        "user": (!u.username().is_empty()).then(|| u.username()),
    });
    match t.kind {
        crate::config::Kind::Pg => {
            v["database"] = json!((!path.is_empty()).then_some(path));
            // A URL with no user or host takes them from libpq's variables.
            if u.username().is_empty() {
                v["user"] = json!(std::env::var("PGUSER").ok());
            }
        }
        crate::config::Kind::Redis => {
            v["db"] = json!(path.parse::<i64>().unwrap_or(0));
        }
        _ => v["path"] = json!((!path.is_empty()).then_some(path)),
    }
    Ok(v)
}

/// Where a change happened, as its line says it: `app@sandbox`,
/// `redis sandbox/0`, `kind-opsh/default`.
fn place(t: Option<&Target>, identity: &serde_json::Value, display: &str) -> String {
    let Some(t) = t else {
        return display.to_string();
    };
    // A target named by its URL or by an environment variable
    // (DATABASE_URL) is shown by its address.
    let unnamed = t.name == redact(&t.url)
        || t.name == t.kind.env_var()
        || t.name.chars().all(|c| c.is_ascii_uppercase() || c == '_');
    let name = if t.kind.info().shows_url && unnamed {
        format!(
            "{}:{}",
            identity["host"].as_str().unwrap_or("localhost"),
            identity["port"]
        )
    } else {
        t.name.clone()
    };
    match t.kind {
        crate::config::Kind::Pg => match identity["database"].as_str() {
            Some(db) => format!("{db}@{name}"),
            None => name,
        },
        crate::config::Kind::Redis => format!("redis {name}/{}", identity["db"]),
        crate::config::Kind::Kube => {
            match (identity["context"].as_str(), identity["namespace"].as_str()) {
                (Some(c), Some(n)) => format!("{c}/{n}"),
                _ => t.name.clone(),
            }
        }
        _ => display.to_string(),
    }
}

/// The one line a real mutation prints: the primitive's own words for its
/// outcome when it declares them, else its name.
fn says(call: &Call, result: &Dynamic, place: &str) -> String {
    match call.prim.says {
        Some(f) => format!("{} in {place}", redact(&f(call, result))),
        None => format!("{}: done in {place}", call.prim.full_name()),
    }
}

/// "1 row", "3 rows": `n` (a number as text) with its noun.
pub fn counted(n: &str, noun: &str) -> String {
    match n {
        "1" => format!("1 {noun}"),
        _ => format!("{n} {noun}s"),
    }
}

/// A field of a result map as text, for `SaysFn`s: "?" when absent.
pub fn said(v: &Dynamic, key: &str) -> String {
    v.read_lock::<Map>()
        .and_then(|m| m.get(key).filter(|d| !d.is_unit()).map(|d| d.to_string()))
        .unwrap_or_else(|| "?".into())
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
        // The person who pressed Ctrl-C needs to know what became of the
        // change in flight, in the console as in a run.
        if let Some(Known { applied, why, .. }) = e.known.as_deref() {
            let known = match applied {
                Applied::Yes => "applied",
                Applied::No => "not applied",
                Applied::Unknown => "outcome unknown",
            };
            return Box::new(EvalAltResult::ErrorTerminated(
                Dynamic::from(format!(
                    "{}; {} {known}: {}",
                    reason.describe(),
                    call.prim.full_name(),
                    redact(why)
                )),
                Position::NONE,
            ));
        }
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
