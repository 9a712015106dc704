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
    /// Stop the whole run after this long, e.g. "10m".
    #[arg(long, global = true, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Per-primitive-call timeout (default 30s, or `[defaults] timeout`).
    #[arg(long, global = true, value_parser = parse_duration)]
    pub call_timeout: Option<Duration>,
    /// Stop a script after this many Rhai operations (runaway loops).
    #[arg(long, global = true)]
    pub max_operations: Option<u64>,
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
    match cli.command {
        Some(Command::Run(a)) => run_file(&g, &a, None),
        Some(Command::Check { files }) => check(&g, &files),
        Some(Command::Test(a)) => crate::testing::cli::main(&g, &a),
        Some(Command::Help { name, markdown }) => help_cmd(&g, name.as_deref(), markdown),
        Some(Command::Sandbox { command }) => sandbox_cmd(&g, command),
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

/// Runs one script file. `prepare` adjusts the config first (the sandbox
/// registers its targets that way).
pub fn run_file(g: &Global, a: &RunArgs, prepare: Option<&dyn Fn(&mut Config)>) -> i32 {
    let mut cfg = match load_config(g) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Some(f) = prepare {
        f(&mut cfg);
    }
    let mut args = match parse_args(&a.args) {
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
    let attach = match crate::record::Attach::prepare(
        a.record.as_deref(),
        a.replay.as_deref(),
        &name,
        &mut args,
    ) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::ERROR;
        }
    };
    let call_timeout = g
        .call_timeout
        .or_else(|| {
            cfg.defaults
                .timeout
                .as_deref()
                .and_then(|t| humantime::parse_duration(t).ok())
        })
        .unwrap_or(Duration::from_secs(30));
    let max_operations = g
        .max_operations
        .or(cfg.defaults.max_operations)
        .unwrap_or(100_000_000);
    let audit = Audit::new(audit_path(g, &cfg), &name);
    let opts = Options {
        dry_run: g.dry_run,
        yes: g.yes,
        call_timeout,
        max_operations,
        args,
        script: name.clone(),
    };
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
            return exit::ERROR;
        }
    };
    session.cancel.install_signal_handlers(&session.rt);
    if let Some(t) = g.timeout {
        session.cancel.arm_timeout(&session.rt, t);
    }
    let base = match a.file.parent() {
        Some(p) if a.file != Path::new("-") && !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let base = base.canonicalize().unwrap_or(base);
    let sources = Arc::new(Sources::default());
    sources.insert(&name, &text);
    let engine = engine::build(session.clone(), sources.clone(), base);
    let renderer = Renderer {
        sources: &sources,
        color: session.out.err_color,
    };

    let mut ast = match engine.compile(&text) {
        Ok(ast) => ast,
        Err(e) => {
            eprint!("{}", renderer.parse_error(&name, &e));
            return exit::ERROR;
        }
    };
    ast.set_source(name.as_str());
    let ast = Arc::new(ast);
    session.set_script(ast.clone());
    let mut scope = Scope::new();
    let code = match engine.run_ast_with_scope(&mut scope, &ast) {
        Ok(()) => exit::OK,
        Err(err) => {
            let reason = session.cancel.reason();
            let code = crate::diagnostic::exit_code(&err, reason);
            if !crate::diagnostic::is_exit(&err) {
                eprint!("{}", renderer.eval_error(&name, &err));
            }
            if let Some(r) = reason {
                let _ = session.audit.append(
                    json!({"event": "run", "outcome": "interrupted", "reason": r.describe()}),
                );
            }
            code
        }
    };
    crate::record::finish(&session, code)
}

/// `opsh` on a terminal: the interactive console, with the same session
/// (config, audit, dry-run, timeouts) that `opsh run` builds.
fn repl(g: &Global) -> i32 {
    let cfg = match load_config(g) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let call_timeout = g
        .call_timeout
        .or_else(|| {
            cfg.defaults
                .timeout
                .as_deref()
                .and_then(|t| humantime::parse_duration(t).ok())
        })
        .unwrap_or(Duration::from_secs(30));
    let opts = Options {
        dry_run: g.dry_run,
        yes: g.yes,
        call_timeout,
        max_operations: g
            .max_operations
            .or(cfg.defaults.max_operations)
            .unwrap_or(100_000_000),
        args: Map::new(),
        script: "repl".into(),
    };
    let audit = Audit::new(audit_path(g, &cfg), "repl");
    match Session::new(opts, cfg, output(g), audit) {
        Ok(s) => crate::repl::run(Arc::new(s)),
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
            if registry::find(&r.module, &r.name).is_none() {
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

/// `opsh sandbox`: announce the servers to other opsh processes (target
/// `sandbox`), print how to reach them, and wait for Ctrl-C or SIGTERM.
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
