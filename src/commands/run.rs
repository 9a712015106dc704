//! `opsh run FILE` (and `opsh` with a script on stdin): one script in one
//! session, under its lock, followed by the report, metrics and
//! notifications (src/unattended.rs). With `--each-target`, the fleet
//! parent instead: the script once per target, in child processes
//! (src/fleet.rs).

use crate::args::RunArgs;
use crate::config::Config;
use crate::context::{self, Context};
use crate::diagnostic::Renderer;
use crate::engine::{self, Sources};
use crate::error::CliError;
use crate::exit;
use crate::lock::LockError;
use crate::session::Session;
use rhai::{Dynamic, Map, Scope};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

pub fn run(ctx: &Context, a: &RunArgs) -> Result<i32, CliError> {
    run_prepared(ctx, a, None)
}

/// `opsh` with a script piped in.
pub fn stdin(ctx: &Context) -> Result<i32, CliError> {
    let a = RunArgs {
        file: PathBuf::from("-"),
        ..Default::default()
    };
    run(ctx, &a)
}

/// `prepare` adjusts the config before `--target` applies: the sandbox
/// registers its servers that way.
pub fn run_prepared(
    ctx: &Context,
    a: &RunArgs,
    prepare: Option<&dyn Fn(&mut Config)>,
) -> Result<i32, CliError> {
    let g = &ctx.global;
    let mut cfg = ctx.config()?;
    if let Some(f) = prepare {
        f(&mut cfg);
    }
    ctx.apply_targets(&mut cfg)?;
    if let Some(spec) = &g.unattended.each_target {
        return fleet(ctx, &cfg, spec);
    }
    let args = parse_args(&a.args).map_err(CliError::usage)?;
    let (name, text) = context::read_script(&a.file)?;
    let lock_name = match g.unattended.no_lock {
        true => None,
        false => g
            .unattended
            .lock
            .clone()
            .or_else(|| crate::lock::from_header(&text)),
    };
    let started = std::time::SystemTime::now();
    let lock = lock_name.as_deref().map(|l| crate::lock::acquire(l, &name));
    // A run that could not take its lock still reports and notifies: a job
    // skipped again and again is a hung job someone should hear about.
    let ran = match &lock {
        Some(Err(e)) => {
            let err = match e {
                LockError::Held { .. } => lock_error(e).with_hint("another run is still going; this one did nothing (exit 75). A lock left by a killed run on this host is taken over automatically"),
                LockError::Io(_) => lock_error(e),
            };
            Ran::not_started(err, e.to_string())
        }
        _ => {
            tracing::info!(script = %name, lock = lock_name.as_deref(), dry_run = g.dry_run, "run started");
            execute(ctx, a, cfg.clone(), &name, &text, args.clone())
        }
    };
    match &ran.why {
        None => tracing::info!(script = %name, exit = ran.code, "run ended"),
        Some(e) => {
            crate::log_failure!(script = %name, exit = ran.code, error = %e, "run failed")
        }
    }
    let after = crate::unattended::After {
        report: g.unattended.report.clone(),
        notify: g.unattended.notify.clone(),
        notify_on: g.unattended.notify_on,
        push_metrics: g.unattended.push_metrics,
        dry_run: g.dry_run,
        format: ctx.output().format,
        color: ctx.color_choice(),
        audit_path: ctx.audit_path(&cfg),
    };
    let finished = crate::unattended::Finished {
        script: name,
        args: &args,
        lock: lock_name,
        started,
        code: ran.code,
        error: ran.why.clone(),
        journal: ran.session.as_ref().map(|s| &s.journal),
    };
    crate::unattended::finish(&after, &cfg, &finished);
    drop(lock);
    ran.into_result()
}

/// How a run ended.
struct Ran {
    code: i32,
    /// What the operator reads on stderr; `crate::run` renders it.
    error: Option<CliError>,
    /// Why it failed in one line, for logs, the report and notifications.
    why: Option<String>,
    session: Option<Arc<Session>>,
}

impl Ran {
    /// The script did not start.
    fn not_started(error: CliError, why: String) -> Ran {
        Ran {
            code: error.code(),
            error: Some(error),
            why: Some(why),
            session: None,
        }
    }

    fn into_result(self) -> Result<i32, CliError> {
        match self.error {
            Some(e) => Err(e.with_code(self.code)),
            None => Ok(self.code),
        }
    }
}

/// A lock that could not be taken (the run's or the fleet parent's).
fn lock_error(e: &LockError) -> CliError {
    match e {
        LockError::Held { .. } => CliError::new(exit::LOCKED, e.to_string()),
        LockError::Io(_) => CliError::failed(e.to_string()),
    }
}

/// Compiles and runs the script.
fn execute(ctx: &Context, a: &RunArgs, cfg: Config, name: &str, text: &str, mut args: Map) -> Ran {
    let attach = match crate::record::Attach::prepare(
        a.record.as_deref(),
        a.replay.as_deref(),
        name,
        &mut args,
    ) {
        Ok(x) => x,
        Err(e) => return Ran::not_started(CliError::failed(e.clone()), e),
    };
    let opts = ctx.options(&cfg, name, args);
    let session = match ctx.session(opts, cfg) {
        Ok(mut s) => {
            s.only = a.only.clone();
            s.skip = a.skip.clone();
            attach.install(&s);
            Arc::new(s)
        }
        Err(e) => {
            let why = e.to_string();
            return Ran::not_started(e, why);
        }
    };
    session.cancel.install_signal_handlers(&session.rt);
    if let Some(t) = ctx.global.timeout {
        let _ = session.cancel.arm_timeout(&session.rt, t);
    }
    let sources = Arc::new(Sources::default());
    sources.insert(name, text);
    let engine = engine::build(
        session.clone(),
        sources.clone(),
        context::script_base(&a.file),
    );
    let renderer = Renderer {
        sources: &sources,
        color: session.out.err_color,
    };

    let mut ast = match engine.compile(text) {
        Ok(ast) => ast,
        Err(e) => {
            return Ran {
                code: exit::ERROR,
                error: Some(CliError::rendered(
                    exit::ERROR,
                    renderer.parse_error(name, &e),
                )),
                why: Some(format!("does not compile: {e}")),
                session: Some(session),
            };
        }
    };
    ast.set_source(name);
    let ast = Arc::new(ast);
    session.set_script(ast.clone());
    let mut scope = Scope::new();
    let (code, error, why) = match engine.run_ast_with_scope(&mut scope, &ast) {
        Ok(()) => (exit::OK, None, None),
        Err(err) => {
            let reason = session.cancel.reason();
            let code = crate::diagnostic::exit_code(&err, reason);
            // `exit(n)` ends the script on purpose: nothing to show.
            let quiet = crate::diagnostic::is_exit(&err);
            let error = (!quiet).then(|| CliError::rendered(code, renderer.eval_error(name, &err)));
            if let Some(r) = reason {
                let _ = session.audit.append(
                    json!({"event": "run", "outcome": "interrupted", "reason": r.describe()}),
                );
            }
            let why = match reason {
                Some(r) => Some(r.describe().to_string()),
                None if quiet => (code != exit::OK).then(|| format!("exit({code})")),
                None => Some(one_line(&err)),
            };
            (code, error, why)
        }
    };
    // --record writes its file; --replay reports differences (exit 1).
    let code = crate::record::finish(&session, code);
    Ran {
        code,
        error,
        why,
        session: Some(session),
    }
}

/// One line saying why a run failed, for logs, reports and notifications.
fn one_line(err: &rhai::EvalAltResult) -> String {
    use crate::dispatch::PrimitiveError;
    let s = match crate::diagnostic::leaf(err) {
        rhai::EvalAltResult::ErrorRuntime(v, _) if v.is::<PrimitiveError>() => {
            v.clone().cast::<PrimitiveError>().to_string()
        }
        rhai::EvalAltResult::ErrorRuntime(v, _) => v.to_string(),
        other => other.to_string(),
    };
    crate::redact::redact(s.lines().next().unwrap_or(""))
}

/// `--each-target KIND:GLOB`: the parent takes the lock, then runs the
/// script once per matching target as a child `opsh run`.
fn fleet(ctx: &Context, cfg: &Config, spec: &str) -> Result<i32, CliError> {
    let g = &ctx.global;
    let (kind, pattern) = crate::fleet::parse_spec(spec).map_err(CliError::usage)?;
    let targets = cfg.matching_targets(kind, &pattern);
    if targets.is_empty() {
        return Err(CliError::usage(format!(
            "--each-target {spec}: no configured {} target matches {pattern:?}",
            kind.name()
        ))
        .with_hint(format!("configured: {}", cfg.target_names(kind).join(", "))));
    }
    let _lock = match &g.unattended.lock {
        None => None,
        Some(l) => Some(crate::lock::acquire(l, spec).map_err(|e| lock_error(&e))?),
    };
    let plan = crate::fleet::Plan {
        kind,
        targets,
        concurrency: g.unattended.concurrency,
        max_failures: g.unattended.max_failures.unwrap_or(usize::MAX),
        report: g.unattended.report.clone(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the runtime: {e}")))?;
    let cancel = crate::cancel::Cancel::default();
    cancel.install_signal_handlers(&rt);
    if let Some(t) = g.timeout {
        let _ = cancel.arm_timeout(&rt, t);
    }
    let child_args = crate::fleet::child_args(&ctx.argv, &crate::args::fleet_parent_flags());
    Ok(crate::fleet::run(&plan, &child_args, &cancel))
}

/// `--arg key=value`: ints, floats, bools and JSON arrays/maps are typed;
/// everything else is a string.
fn parse_args(pairs: &[String]) -> Result<Map, String> {
    let mut m = Map::new();
    for p in pairs {
        let Some((k, v)) = p.split_once('=') else {
            return Err(format!("--arg {p:?} is not KEY=VALUE"));
        };
        let k = k.trim();
        if k.is_empty() || !k.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Err(format!("--arg key {k:?} must be letters, digits and _"));
        }
        let value = if let Ok(i) = v.parse::<i64>() {
            Dynamic::from_int(i)
        } else if let Ok(f) = v.parse::<f64>().map_err(|_| ()).and_then(|f| {
            if v.chars().any(|c| c.is_ascii_digit()) {
                Ok(f)
            } else {
                Err(())
            }
        }) {
            Dynamic::from_float(f)
        } else if v == "true" || v == "false" {
            Dynamic::from_bool(v == "true")
        } else if v.starts_with('[') || v.starts_with('{') {
            serde_json::from_str::<serde_json::Value>(v)
                .map(|j| crate::value::from_json(&j))
                .map_err(|e| format!("--arg {k}: invalid JSON: {e}"))?
        } else {
            v.into()
        };
        m.insert(k.into(), value);
    }
    Ok(m)
}
