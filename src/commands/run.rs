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
use rhai::{Map, Scope};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

pub fn run(ctx: &Context, a: &RunArgs) -> Result<i32, CliError> {
    run_prepared(ctx, a, None)
}

/// `opsh run --help`: opsh's options; `opsh run FILE --help`: the script's
/// description and the arguments it declares.
pub(crate) fn help(file: Option<&std::path::Path>, sandbox: bool) -> Result<i32, CliError> {
    let Some(file) = file else {
        let mut cmd = <crate::args::Cli as clap::CommandFactory>::command();
        cmd.build();
        let sub = match sandbox {
            true => cmd
                .find_subcommand_mut("sandbox")
                .and_then(|s| s.find_subcommand_mut("run")),
            false => cmd.find_subcommand_mut("run"),
        };
        if let Some(sub) = sub {
            crate::stdio::out(format_args!("{}", sub.render_help()));
        }
        return Ok(exit::OK);
    };
    let (name, text) = context::read_script(file)?;
    let help = script_help(&name, &text)?;
    match sandbox {
        true => crate::stdio::out(format_args!(
            "{}",
            help.replacen("opsh run", "opsh sandbox run", 1)
        )),
        false => crate::stdio::out(format_args!("{help}")),
    }
    Ok(exit::OK)
}

/// A script's help, or where its declaration is wrong.
pub fn script_help(name: &str, text: &str) -> Result<String, CliError> {
    crate::script_args::help(name, text).map_err(|e| decl_error(name, &e))
}

/// A broken `//! args:` block: a script bug (exit 2), found before it runs.
fn decl_error(name: &str, e: &crate::script_args::DeclError) -> CliError {
    CliError::failed(format!(
        "{name}:{}:{}: bad argument declaration: {}",
        e.line, e.col, e.message
    ))
    .with_hint(format!(
        "`opsh check {name}` shows it in context; docs/scripting.md#arguments describes the form"
    ))
}

/// The script's `args` from the command line (or, with `--replay` and no
/// `--arg`, the recording's), checked against its declaration.
fn script_args(a: &RunArgs, name: &str, text: &str) -> Result<Map, CliError> {
    use crate::script_args::{self as sa, Given};
    let decl = sa::declaration(text).map_err(|e| decl_error(name, &e))?;
    let mut given = sa::split_pairs(&a.args).map_err(CliError::usage)?;
    if given.is_empty() {
        if let Some(rec) = a
            .replay
            .as_deref()
            .and_then(|p| crate::record::load(p).ok())
        {
            given = rec
                .args
                .into_iter()
                .map(|(k, v)| (k.to_string(), Given::Value(v)))
                .collect();
        }
    }
    sa::resolve(name, decl.as_ref(), given)
        .map_err(|e| CliError::usage(e.message).with_hint(e.hint))
}

/// `opsh` with a script piped in.
pub fn stdin(ctx: &Context) -> Result<i32, CliError> {
    let a = RunArgs {
        file: Some(PathBuf::from("-")),
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
    if a.help {
        return help(a.file.as_deref(), prepare.is_some());
    }
    let file = a
        .file
        .as_deref()
        .ok_or_else(|| CliError::usage("opsh run needs a script file (`-` reads stdin)"))?;
    let mut cfg = ctx.config()?;
    if let Some(f) = prepare {
        f(&mut cfg);
    }
    ctx.apply_targets(&mut cfg)?;
    if let Some(spec) = &g.unattended.each_target {
        // Checked once here rather than failing in every child; stdin is
        // left for the children.
        if file != std::path::Path::new("-") {
            let (name, text) = context::read_script(file)?;
            script_args(a, &name, &text)?;
        }
        return fleet(ctx, &cfg, spec);
    }
    let (name, text) = context::read_script(file)?;
    let args = script_args(a, &name, &text)?;
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
    // The id `opsh timeline` takes, for the runs it has something to say
    // about; --quiet keeps stderr to warnings and errors.
    if let Some(s) = ran
        .session
        .as_ref()
        .filter(|s| s.audit.written() > 0 && !ctx.global.quiet)
    {
        crate::stdio::errln(format_args!(
            "opsh: run {id} wrote {n} audit record{s} to {path} (opsh timeline {id})",
            id = s.audit.run_id(),
            n = s.audit.written(),
            s = if s.audit.written() == 1 { "" } else { "s" },
            path = s.audit.path().display()
        ));
    }
    match &ran.why {
        None => tracing::info!(script = %name, exit = ran.code, "run ended"),
        Some(e) => {
            crate::log_failure!(script = %name, exit = ran.code, error = %e, "run failed")
        }
    }
    // Why the run failed comes first, then what happened after it (the
    // report, notifications and their warnings): printed here, once.
    let ran = ran.print_error();
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
        run_id: ran.session.as_ref().map(|s| s.audit.run_id().to_string()),
    };
    crate::unattended::finish(&after, &cfg, &finished);
    drop(lock);
    ran.into_result()
}

/// How a run ended.
struct Ran {
    code: i32,
    /// What the operator reads on stderr, printed before the end-of-run
    /// work (`print_error`).
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

    /// Prints the error (the exit code stays).
    fn print_error(mut self) -> Ran {
        if let Some(e) = self.error.take() {
            crate::stdio::err(format_args!("{}", e.render()));
        }
        self
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
            s.args_declared = matches!(crate::script_args::declaration(text), Ok(Some(_)));
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
    // Connecting overlaps building the engine and compiling. A replay
    // answers from its recording: nothing to connect to.
    if a.replay.is_none() {
        crate::modules::prewarm(&session, text);
    }
    let sources = Arc::new(Sources::default());
    sources.insert(name, text);
    let file = a.file.clone().unwrap_or_else(|| PathBuf::from("-"));
    let engine = engine::build_for(
        session.clone(),
        sources.clone(),
        context::script_base(&file),
        text,
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
            let error = (!quiet).then(|| {
                CliError::rendered(code, renderer.eval_error_in(name, &err, Some(&scope)))
            });
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
    // The process ends after this run: freeing the engine's thousands of
    // functions one by one is start-up time spent at the end.
    std::mem::forget(engine);
    let (code, error, why) = after_changes(&session, code, error, why);
    // --record writes its file; --replay reports differences (exit 1).
    let (code, unsaved) = crate::record::finish(&session, code);
    let error = match (error, unsaved) {
        (Some(e), Some(u)) => Some(CliError::rendered(
            code,
            format!("{}{}", e.render(), u.render()),
        )),
        (e, u) => e.or(u),
    };
    let why = why.or_else(|| error.as_ref().map(|e| e.to_string()));
    Ran {
        code,
        error,
        why,
        session: Some(session),
    }
}

/// Exit 3 promises that nothing was changed: a run that stopped after a
/// change exits 4 (5 when a change's outcome is unknown) and lists what it
/// changed; a refused item of `parallel` that the script went past still
/// fails the run (3, or 4 after changes).
fn after_changes(
    session: &Session,
    code: i32,
    error: Option<CliError>,
    why: Option<String>,
) -> (i32, Option<CliError>, Option<String>) {
    // `exit(n)` is the script's own decision about its code.
    if error.is_none() && code != exit::OK {
        return (code, error, why);
    }
    let changes = session.changes();
    let refused = session.swallowed_refusals();
    let changed = changes.iter().any(|c| c.known);
    let unknown = changes.iter().any(|c| !c.known);
    let (mut code, mut error, mut why) = (code, error, why);
    if code == exit::OK && !refused.is_empty() {
        code = if changed {
            exit::PARTIAL
        } else {
            exit::REFUSED
        };
        let msg = format!(
            "{} refused inside parallel()/for_each_target: {}",
            match refused.len() {
                1 => "1 call was".to_string(),
                n => format!("{n} calls were"),
            },
            refused.join("; ")
        );
        why = Some(msg.clone());
        error = Some(CliError::new(code, msg).with_hint(
            "the items' rows say which; re-run with --yes if the change is intended, or try it first with --dry-run",
        ));
    }
    let stopped = exit::after_changes(code, changed, unknown);
    if stopped != code || (code != exit::OK && !changes.is_empty()) {
        let mut list = String::from("changes made before the run stopped:\n");
        for c in &changes {
            list.push_str(&format!("  - {}\n", c.line));
        }
        error = Some(match error {
            Some(e) => CliError::rendered(stopped, format!("{}{list}", e.render())),
            None => CliError::rendered(stopped, list),
        });
        code = stopped;
    }
    (code, error, why)
}

/// One line saying why a run failed, for logs, reports and notifications.
fn one_line(err: &rhai::EvalAltResult) -> String {
    use crate::dispatch::PrimitiveError;
    let s = match crate::diagnostic::leaf(err) {
        rhai::EvalAltResult::ErrorRuntime(v, _) if v.is::<PrimitiveError>() => {
            v.clone().cast::<PrimitiveError>().to_string()
        }
        rhai::EvalAltResult::ErrorRuntime(v, _) => v.to_string(),
        rhai::EvalAltResult::ErrorPropertyNotFound(p, pos) => format!("no field {p} ({pos})"),
        rhai::EvalAltResult::ErrorTerminated(v, _)
            if v.is::<crate::engine::memory::MemoryExceeded>() =>
        {
            v.clone()
                .cast::<crate::engine::memory::MemoryExceeded>()
                .to_string()
        }
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
    if !g.dry_run {
        crate::policy::admit_fleet(cfg, kind, &targets).map_err(|e| {
            CliError::new(crate::exit::REFUSED, e)
                .with_hint("narrow the KIND:GLOB, or raise max_targets in [limits] deliberately")
        })?;
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
