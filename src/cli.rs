//! Command line: parse arguments, run the command, turn the outcome into an
//! exit code. Errors are rendered once, here.

use crate::audit::Audit;
use crate::config::{Config, Kind};
use crate::diagnostic::Renderer;
use crate::engine::{self, Sources};
use crate::output::{ColorChoice, Format, Output};
use crate::session::{Options, Session};
use crate::{exit, help, registry};
use clap::{Args, Parser, Subcommand, ValueEnum};
use rhai::{Dynamic, Map, Scope};
use serde_json::json;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "opsh",
    version,
    about = "A scriptable operations shell: runbooks as versioned, testable scripts",
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Report what mutating primitives would do, reading real state, and change nothing.
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// Do not ask for confirmation on protected targets.
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
    /// How `show` renders values.
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub output: OutputArg,
    #[arg(long, value_enum, default_value = "auto", global = true)]
    pub color: ColorArg,
    /// Config file (default: $XDG_CONFIG_HOME/opsh/config.toml; env OPSH_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Audit log (default: $XDG_STATE_HOME/opsh/audit.jsonl; env OPSH_AUDIT_LOG).
    #[arg(long, global = true, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Stop the whole run after this long, e.g. "10m" (in the console: each entry).
    #[arg(long, global = true, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Per-primitive-call timeout (default 30s, or `[defaults] timeout`).
    #[arg(long, global = true, value_parser = parse_duration)]
    pub call_timeout: Option<Duration>,
    /// Stop a script after this many Rhai operations (runaway loops).
    #[arg(long, global = true)]
    pub max_operations: Option<u64>,
    /// The default target of a kind for this run, e.g. `pg=prod-1` (repeatable).
    #[arg(long = "target", global = true, value_name = "KIND=NAME")]
    pub targets: Vec<String>,
    /// Logs on stderr: text or json (one object per line).
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub log_format: crate::logging::LogFormat,
    /// More log detail: -v info, -vv debug (every primitive call). Default warn; OPSH_LOG=LEVEL overrides.
    #[arg(long, short = 'v', action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(flatten)]
    pub unattended: Unattended,
}

/// Flags for cron, CronJobs and fleets (docs/unattended.md).
#[derive(Args, Debug, Clone)]
pub struct Unattended {
    /// Run under this lock: a second run with the same lock exits 75 at once.
    /// Default: a `// opsh: lock=NAME` line in the script's header comment.
    #[arg(long, global = true, value_name = "NAME")]
    pub lock: Option<String>,
    /// Ignore the script's header lock.
    #[arg(long, global = true, conflicts_with = "lock")]
    pub no_lock: bool,
    /// Write a JSON run report here (docs/unattended.md).
    #[arg(long, global = true, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Notify this `[notify.NAME]` target or webhook URL (repeatable).
    #[arg(long, global = true, value_name = "TARGET")]
    pub notify: Vec<String>,
    /// When to notify.
    #[arg(long, value_enum, default_value = "failure", global = true)]
    pub notify_on: crate::unattended::NotifyOn,
    /// Push opsh_run_* metrics to the default Pushgateway after the run.
    #[arg(long, global = true)]
    pub push_metrics: bool,
    /// Run the script once per target of KIND whose name matches GLOB, e.g. `pg:prod-*`.
    #[arg(long, global = true, value_name = "KIND:GLOB")]
    pub each_target: Option<String>,
    /// With --each-target: how many targets run at once.
    #[arg(long, global = true, default_value_t = 4)]
    pub concurrency: usize,
    /// With --each-target: start no new target after this many failures.
    #[arg(long, global = true)]
    pub max_failures: Option<usize>,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum OutputArg {
    Text,
    Json,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum ColorArg {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a script (`-` reads it from stdin).
    Run(RunArgs),
    /// Compile scripts without running them and report every problem found.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run runbook tests: every `fn test_*()` in tests/runbooks/*_test.rhai.
    Test(TestArgs),
    /// List primitives, or describe one: `opsh help pg.query`.
    Help {
        name: Option<String>,
        /// Print the whole reference as Markdown (docs/reference.md).
        #[arg(long)]
        markdown: bool,
    },
    /// Run jobs on cron schedules from a TOML file, for places without cron
    /// (a container); each job runs as `opsh run` under its lock and timeout.
    Schedule { file: PathBuf },
    /// Start ephemeral PostgreSQL and Redis servers on free loopback ports,
    /// and the monitoring stack (Prometheus, Alertmanager, Pushgateway,
    /// exporters) when it is installed.
    Sandbox {
        #[command(subcommand)]
        command: Option<SandboxCommand>,
    },
}

#[derive(Subcommand, Debug)]
pub enum SandboxCommand {
    /// Run a script against a fresh sandbox, then tear it down.
    Run {
        #[command(flatten)]
        args: RunArgs,
        /// Also start Prometheus, Alertmanager, the Pushgateway and the
        /// exporters (adds ~6 s: Prometheus's first scrape of every target).
        #[arg(long)]
        monitoring: bool,
    },
}

#[derive(Args, Debug, Clone, Default)]
pub struct RunArgs {
    pub file: PathBuf,
    /// Script argument, reaching the script as `args.KEY` (repeatable).
    #[arg(long = "arg", short = 'a', value_name = "KEY=VALUE")]
    pub args: Vec<String>,
    /// Record every primitive call (arguments, result; secrets masked) to FILE.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Answer primitive calls from a recording; report calls that differ; plan mutations.
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,
    /// Run only these checks (checks stdlib; names or `prefix*`, repeatable or comma-separated).
    #[arg(long, value_name = "CHECK", value_delimiter = ',')]
    pub only: Vec<String>,
    /// Skip these checks (checks stdlib; names or `prefix*`).
    #[arg(long, value_name = "CHECK", value_delimiter = ',')]
    pub skip: Vec<String>,
}

/// `opsh test`.
#[derive(Args, Debug, Clone, Default)]
pub struct TestArgs {
    /// Test files or directories (default: tests/runbooks).
    pub paths: Vec<PathBuf>,
    /// Also write a JUnit XML report to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Only tests whose name contains this.
    #[arg(long)]
    pub filter: Option<String>,
    /// Run against a fresh sandbox (PostgreSQL, Redis, Kubernetes API): unstubbed calls reach it.
    #[arg(long)]
    pub sandbox: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 30s, 5m, 1h)"))
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return code;
        }
    };
    let g = cli.global.clone();
    // A scheduler's job starts and ends are its output: info by default.
    let verbose = match cli.command {
        Some(Command::Schedule { .. }) => g.verbose.max(1),
        _ => g.verbose,
    };
    crate::logging::init(g.log_format, verbose);
    match cli.command {
        Some(Command::Run(a)) => run_file(&g, &a, None),
        Some(Command::Check { files }) => check(&g, &files),
        Some(Command::Test(a)) => crate::testing::cli::main(&g, &a),
        Some(Command::Help { name, markdown }) => help_cmd(&g, name.as_deref(), markdown),
        Some(Command::Sandbox { command }) => sandbox_cmd(&g, command),
        Some(Command::Schedule { file }) => crate::schedule::main(&g, &file),
        None => {
            if std::io::stdin().is_terminal() {
                repl(&g)
            } else {
                run_file(
                    &g,
                    &RunArgs {
                        file: PathBuf::from("-"),
                        ..Default::default()
                    },
                    None,
                )
            }
        }
    }
}

fn color_choice(g: &Global) -> ColorChoice {
    match g.color {
        ColorArg::Auto => ColorChoice::Auto,
        ColorArg::Always => ColorChoice::Always,
        ColorArg::Never => ColorChoice::Never,
    }
}

pub(crate) fn output(g: &Global) -> Output {
    let format = match g.output {
        OutputArg::Text => Format::Text,
        OutputArg::Json => Format::Json,
    };
    Output::new(format, color_choice(g))
}

fn help_cmd(g: &Global, name: Option<&str>, markdown: bool) -> i32 {
    let color = output(g).color;
    if markdown {
        print!("{}", help::reference_markdown());
        return exit::OK;
    }
    match name {
        None => {
            print!("{}", help::overview(color));
            exit::OK
        }
        Some(n) => match help::lookup(n, color) {
            Ok(text) => {
                print!("{text}");
                exit::OK
            }
            Err(e) => {
                eprintln!("error: {e}");
                exit::USAGE
            }
        },
    }
}

/// `--arg key=value`: ints, floats, bools and JSON arrays/maps are typed;
/// everything else is a string.
pub fn parse_args(pairs: &[String]) -> Result<Map, String> {
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

pub(crate) fn load_config(g: &Global) -> Result<Config, i32> {
    Config::load(g.config.as_deref()).map_err(|e| {
        eprintln!("error: {}", e.message);
        if let Some(h) = e.hint {
            eprintln!("   = hint: {h}");
        }
        exit::ERROR
    })
}

fn read_script(file: &Path) -> Result<(String, String), String> {
    if file == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| format!("cannot read the script from stdin: {e}"))?;
        return Ok(("<stdin>".into(), s));
    }
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read script {}: {e}", file.display()))?;
    Ok((file.display().to_string(), text))
}

pub(crate) fn audit_path(g: &Global, cfg: &Config) -> PathBuf {
    g.audit_log
        .clone()
        .or_else(|| {
            std::env::var_os("OPSH_AUDIT_LOG")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .or_else(|| cfg.audit.path.clone())
        .unwrap_or_else(crate::audit::default_path)
}

/// `--target pg=prod-1`: make NAME the default target of KIND.
fn apply_targets(g: &Global, cfg: &mut Config) -> Result<(), String> {
    for t in &g.targets {
        let (k, name) = t
            .split_once('=')
            .ok_or_else(|| format!("--target {t:?} is not KIND=NAME"))?;
        let kind = Kind::parse(k.trim()).ok_or_else(|| {
            format!(
                "--target {t:?}: unknown kind {k:?} (kinds: {})",
                Kind::ALL.map(Kind::name).join(", ")
            )
        })?;
        cfg.set_default(kind, name.trim());
    }
    Ok(())
}

/// Runs one script file. `prepare` adjusts the config first (the sandbox
/// registers its targets that way). Around the script: the lock, logs, and
/// the after-run report, metrics and notifications (src/unattended.rs).
pub fn run_file(g: &Global, a: &RunArgs, prepare: Option<&dyn Fn(&mut Config)>) -> i32 {
    let mut cfg = match load_config(g) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Some(f) = prepare {
        f(&mut cfg);
    }
    if let Err(e) = apply_targets(g, &mut cfg) {
        eprintln!("error: {e}");
        return exit::USAGE;
    }
    if let Some(spec) = &g.unattended.each_target {
        return fleet(g, &cfg, spec);
    }
    let args = match parse_args(&a.args) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let (name, text) = match read_script(&a.file) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::ERROR;
        }
    };
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
    let (code, error, session) = match &lock {
        Some(Err(e)) => {
            eprintln!("error: {e}");
            match e {
                crate::lock::LockError::Held { .. } => {
                    eprintln!("   = hint: another run is still going; this one did nothing (exit 75). A lock left by a killed run on this host is taken over automatically");
                    (exit::LOCKED, Some(e.to_string()), None)
                }
                crate::lock::LockError::Io(_) => (exit::ERROR, Some(e.to_string()), None),
            }
        }
        _ => {
            tracing::info!(script = %name, lock = lock_name.as_deref(), dry_run = g.dry_run, "run started");
            execute(g, a, cfg.clone(), &name, &text, args.clone())
        }
    };
    match &error {
        None => tracing::info!(script = %name, exit = code, "run ended"),
        Some(e) => crate::log_failure!(script = %name, exit = code, error = %e, "run failed"),
    }
    let after = crate::unattended::After {
        report: g.unattended.report.clone(),
        notify: g.unattended.notify.clone(),
        notify_on: g.unattended.notify_on,
        push_metrics: g.unattended.push_metrics,
        dry_run: g.dry_run,
        format: output(g).format,
        color: color_choice(g),
        audit_path: audit_path(g, &cfg),
    };
    let finished = crate::unattended::Finished {
        script: name,
        args: &args,
        lock: lock_name,
        started,
        code,
        error,
        journal: session.as_ref().map(|s| &s.journal),
    };
    crate::unattended::finish(&after, &cfg, &finished);
    drop(lock);
    code
}

fn fleet(g: &Global, cfg: &Config, spec: &str) -> i32 {
    let (kind, pattern) = match crate::fleet::parse_spec(spec) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let targets = crate::fleet::matching(&cfg.target_names(kind), &pattern);
    if targets.is_empty() {
        eprintln!(
            "error: --each-target {spec}: no configured {} target matches {pattern:?}",
            kind.name()
        );
        eprintln!(
            "   = hint: configured: {}",
            cfg.target_names(kind).join(", ")
        );
        return exit::USAGE;
    }
    let _lock = match &g.unattended.lock {
        None => None,
        Some(l) => match crate::lock::acquire(l, spec) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("error: {e}");
                return match e {
                    crate::lock::LockError::Held { .. } => exit::LOCKED,
                    crate::lock::LockError::Io(_) => exit::ERROR,
                };
            }
        },
    };
    let plan = crate::fleet::Plan {
        kind,
        targets,
        concurrency: g.unattended.concurrency,
        max_failures: g.unattended.max_failures.unwrap_or(usize::MAX),
        report: g.unattended.report.clone(),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return exit::ERROR;
        }
    };
    let cancel = crate::cancel::Cancel::default();
    cancel.install_signal_handlers(&rt);
    if let Some(t) = g.timeout {
        let _ = cancel.arm_timeout(&rt, t);
    }
    let argv: Vec<String> = std::env::args().skip(1).collect();
    crate::fleet::run(&plan, &argv, &cancel)
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

/// The session options of the global flags and `[defaults]`, the same for
/// `opsh run`, the REPL and `opsh test`.
pub(crate) fn options(g: &Global, cfg: &Config, script: &str, args: Map) -> Options {
    let call_timeout = g
        .call_timeout
        .or_else(|| {
            cfg.defaults
                .timeout
                .as_deref()
                .and_then(|t| humantime::parse_duration(t).ok())
        })
        .unwrap_or(Duration::from_secs(30));
    Options {
        dry_run: g.dry_run,
        yes: g.yes,
        call_timeout,
        max_operations: g
            .max_operations
            .or(cfg.defaults.max_operations)
            .unwrap_or(100_000_000),
        args,
        script: script.to_string(),
    }
}

/// Compiles and runs the script: (exit code, why it failed, the session).
fn execute(
    g: &Global,
    a: &RunArgs,
    cfg: Config,
    name: &str,
    text: &str,
    mut args: Map,
) -> (i32, Option<String>, Option<Arc<Session>>) {
    let attach = match crate::record::Attach::prepare(
        a.record.as_deref(),
        a.replay.as_deref(),
        name,
        &mut args,
    ) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return (exit::ERROR, Some(e), None);
        }
    };
    let audit = Audit::new(audit_path(g, &cfg), name);
    let opts = options(g, &cfg, name, args);
    let out = output(g);
    let session = match Session::new(opts, cfg, out, audit) {
        Ok(mut s) => {
            s.only = a.only.clone();
            s.skip = a.skip.clone();
            attach.install(&s);
            Arc::new(s)
        }
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return (
                exit::ERROR,
                Some(format!("cannot start the runtime: {e}")),
                None,
            );
        }
    };
    session.cancel.install_signal_handlers(&session.rt);
    if let Some(t) = g.timeout {
        let _ = session.cancel.arm_timeout(&session.rt, t);
    }
    let base = match a.file.parent() {
        Some(p) if a.file != Path::new("-") && !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let base = base.canonicalize().unwrap_or(base);
    let sources = Arc::new(Sources::default());
    sources.insert(name, text);
    let engine = engine::build(session.clone(), sources.clone(), base);
    let renderer = Renderer {
        sources: &sources,
        color: session.out.err_color,
    };

    let mut ast = match engine.compile(text) {
        Ok(ast) => ast,
        Err(e) => {
            eprint!("{}", renderer.parse_error(name, &e));
            return (
                exit::ERROR,
                Some(format!("does not compile: {e}")),
                Some(session),
            );
        }
    };
    ast.set_source(name);
    let ast = Arc::new(ast);
    session.set_script(ast.clone());
    let mut scope = Scope::new();
    let (code, why) = match engine.run_ast_with_scope(&mut scope, &ast) {
        Ok(()) => (exit::OK, None),
        Err(err) => {
            let reason = session.cancel.reason();
            let code = crate::diagnostic::exit_code(&err, reason);
            let quiet = crate::diagnostic::is_exit(&err);
            if !quiet {
                eprint!("{}", renderer.eval_error(name, &err));
            }
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
            (code, why)
        }
    };
    // --record writes its file; --replay reports differences (exit 1).
    let code = crate::record::finish(&session, code);
    (code, why, Some(session))
}

/// `opsh` on a terminal: the interactive console, with the same session
/// (config, audit, dry-run, timeouts) that `opsh run` builds.
fn repl(g: &Global) -> i32 {
    let cfg = match load_config(g) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let opts = options(g, &cfg, "repl", Map::new());
    let audit = Audit::new(audit_path(g, &cfg), "repl");
    match Session::new(opts, cfg, output(g), audit) {
        Ok(s) => crate::repl::run(Arc::new(s), g.timeout),
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            exit::ERROR
        }
    }
}

/// `opsh check`: syntax (Rhai stops at the first syntax error of a file),
/// unknown primitives, and imports that do not resolve or compile.
fn check(g: &Global, files: &[PathBuf]) -> i32 {
    let color = output(g).err_color;
    let modules: Vec<&str> = registry::value_modules().map(|m| m.name).collect();
    let mut problems = 0;
    for file in files {
        let (name, text) = match read_script(file) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("error: {e}");
                problems += 1;
                continue;
            }
        };
        let sources = Sources::default();
        sources.insert(&name, &text);
        let renderer = Renderer {
            sources: &sources,
            color,
        };
        let engine = check_engine();
        if let Err(e) = engine.compile(&text) {
            eprint!("{}", renderer.parse_error(&name, &e));
            problems += 1;
        }
        let scan = engine::scan::scan(&text, &modules);
        for r in &scan.calls {
            if let Some(p) = registry::find(&r.module, &r.name) {
                let min = p.params.iter().filter(|x| !x.optional).count();
                let max = p.params.len();
                if let Some(n) = r.args.filter(|n| *n < min || *n > max) {
                    let wanted = match (min, max) {
                        (a, b) if a == b => format!("{a}"),
                        (a, b) => format!("{a} to {b}"),
                    };
                    eprint!(
                        "{}",
                        renderer.custom(
                            &format!(
                                "{}.{} takes {wanted} argument(s), this call passes {n}",
                                r.module, r.name
                            ),
                            &name,
                            r.line,
                            r.col,
                            &p.signature()
                        )
                    );
                    problems += 1;
                }
                continue;
            }
            {
                let names = registry::module(&r.module)
                    .map(|m| m.primitives.iter().map(|p| p.name).collect::<Vec<_>>())
                    .unwrap_or_default();
                let hint = registry::suggest(&r.name, names.iter().copied())
                    .map(|s| format!("did you mean {}.{s}?", r.module))
                    .unwrap_or_else(|| format!("{} has: {}", r.module, names.join(", ")));
                eprint!(
                    "{}",
                    renderer.custom(
                        &format!("unknown primitive {}.{}", r.module, r.name),
                        &name,
                        r.line,
                        r.col,
                        &hint
                    )
                );
                problems += 1;
            }
        }
        let base = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let base = base.canonicalize().unwrap_or(base.to_path_buf());
        let resolver = engine::resolver::Resolver::new(base, Arc::new(Sources::default()));
        for (path, line, col) in &scan.imports {
            match resolver.locate(Some(&name), path) {
                Ok((mname, mtext)) => {
                    if let Err(e) = engine.compile(&mtext) {
                        sources.insert(&mname, &mtext);
                        eprint!("{}", renderer.parse_error(&mname, &e));
                        problems += 1;
                    }
                }
                Err(msg) => {
                    eprint!(
                        "{}",
                        renderer.custom(
                            &msg,
                            &name,
                            *line,
                            *col,
                            "imports resolve from the stdlib and the script's directory"
                        )
                    );
                    problems += 1;
                }
            }
        }
    }
    if problems == 0 {
        eprintln!("ok: {} file(s) checked", files.len());
        exit::OK
    } else {
        eprintln!("{problems} problem(s) found");
        exit::ERROR
    }
}

/// An engine that knows every primitive's name and arity but can run none:
/// enough to compile. Building a Session is cheap (no connections).
fn check_engine() -> rhai::Engine {
    let session = Session::new(
        Options::default(),
        Config::default(),
        Output::new(Format::Text, ColorChoice::Never),
        Audit::new(PathBuf::from("/dev/null"), "check"),
    );
    match session {
        Ok(s) => engine::build(
            Arc::new(s),
            Arc::new(Sources::default()),
            PathBuf::from("."),
        ),
        Err(_) => rhai::Engine::new(),
    }
}

#[cfg(feature = "sandbox")]
fn sandbox_cmd(g: &Global, command: Option<SandboxCommand>) -> i32 {
    let services = match &command {
        Some(SandboxCommand::Run { monitoring, .. }) => crate::sandbox::Services {
            monitoring: *monitoring,
            ..Default::default()
        },
        None => crate::sandbox::Services::all_available(),
    };
    let sb = match crate::sandbox::Sandbox::start(services) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot start the sandbox: {e}");
            return exit::ERROR;
        }
    };
    let targets = sb.targets();
    match command {
        Some(SandboxCommand::Run { args: a, .. }) => {
            let prepare = |cfg: &mut Config| {
                for (kind, url) in &targets {
                    cfg.add_target(*kind, "sandbox", url, false);
                    cfg.set_default(*kind, "sandbox");
                }
            };
            eprintln!("sandbox: {}", sb.describe());
            run_file(g, &a, Some(&prepare))
        }
        None => serve_sandbox(&sb, &targets),
    }
}

/// Without the `sandbox` feature (the container image's build) the command
/// stays in the CLI and its help, so a user learns why it does nothing.
#[cfg(not(feature = "sandbox"))]
fn sandbox_cmd(_: &Global, _: Option<SandboxCommand>) -> i32 {
    without_sandbox("`opsh sandbox`")
}

/// `opsh sandbox` and `opsh test --sandbox` in a build without the
/// `sandbox` feature: a usage error that says what to build instead.
#[cfg(not(feature = "sandbox"))]
pub(crate) fn without_sandbox(what: &str) -> i32 {
    eprintln!("error: this opsh was built without the sandbox feature; {what} needs a build with it (its default features: `cargo build --release`)");
    exit::USAGE
}

/// `opsh sandbox`: announce the servers to other opsh processes (target
/// `sandbox`), print how to reach them, and wait for Ctrl-C or SIGTERM.
#[cfg(feature = "sandbox")]
fn serve_sandbox(_sb: &crate::sandbox::Sandbox, targets: &[(Kind, String)]) -> i32 {
    let file = crate::config::sandbox_state_file();
    let mut t = serde_json::Map::new();
    for (k, u) in targets {
        t.insert(k.name().into(), u.clone().into());
    }
    let announce = json!({"pid": std::process::id(), "targets": t});
    if let Some(d) = file.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    let _ = std::fs::write(&file, announce.to_string());
    println!("opsh sandbox is up. Other opsh processes see it as the target `sandbox`:");
    for (k, u) in targets {
        println!("  export {}={u}", k.env_var());
    }
    if _sb.monitoring.is_none() {
        println!("  (no monitoring stack: install prometheus, prometheus-alertmanager, prometheus-pushgateway and the exporters to get one)");
    }
    println!("  e.g. opsh run script.rhai  with  pg.connect(\"sandbox\")\nPress Ctrl-C to stop and remove it.");
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::ERROR;
        }
    };
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut i), Ok(mut t)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            tokio::select! { _ = i.recv() => {}, _ = t.recv() => {} }
        }
    });
    let _ = std::fs::remove_file(&file);
    eprintln!("\nsandbox: stopping");
    exit::OK
}
