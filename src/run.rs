//! `opsh ARGS...`: parse the command line, start logging, run the command,
//! and render its error, once.

use crate::args::{Cli, Command};
use crate::commands;
use crate::context::Context;
use crate::error::CliError;
use crate::exit;
use std::ffi::OsString;
use std::io::IsTerminal;

/// Runs opsh with `args` (the program name first) and returns the exit code.
/// A panic anywhere on the way is a bug in opsh: the hook says so and where,
/// and the run ends with `exit::INTERNAL` instead of Rust's 101.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    install_panic_hook();
    let argv: Vec<OsString> = args.into_iter().map(Into::into).collect();
    // Unwinding (rather than exiting in the hook) runs the destructors that
    // release a --lock and stop sandbox servers.
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_argv(argv)))
        .unwrap_or(exit::INTERNAL);
    // A panic on another thread (a `parallel` worker, a runtime task) was
    // reported by the hook; the run may have gone on, but it ends as what
    // it was: a bug.
    if PANICKED.load(std::sync::atomic::Ordering::SeqCst) {
        return exit::INTERNAL;
    }
    code
}

static PANICKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Replaces Rust's panic message (and 101) with one that says this is
/// opsh's fault, where it happened, and what to do; secrets are masked in
/// it like everywhere else. Writes never fail loudly: stderr may be gone.
pub fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            use std::io::Write;
            PANICKED.store(true, std::sync::atomic::Ordering::SeqCst);
            let what = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            let at = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_else(|| "unknown place".into());
            let thread = std::thread::current();
            let text = format!(
                "error: internal error, please report: {} (at {at}, thread {})\n   = hint: this is a bug in opsh, not in the script; opsh exits with {} (see `{}`); report it with the command line and this message\n",
                crate::redact::redact_nonblocking(&what),
                thread.name().unwrap_or("unnamed"),
                exit::INTERNAL,
                "opsh help exit-codes",
            );
            let _ = std::io::stderr().write_all(text.as_bytes());
        }));
    });
}

fn run_argv(mut argv: Vec<OsString>) -> i32 {
    // Only debug builds (the integration tests) can be made to panic on
    // purpose, to prove the hook is the one that reports it.
    #[cfg(debug_assertions)]
    match std::env::var("OPSH_DEBUG_PANIC").as_deref() {
        Ok("thread") => {
            let _ = std::thread::Builder::new()
                .name("debug-panic".into())
                .spawn(|| panic!("OPSH_DEBUG_PANIC=thread: a deliberate panic off the main thread"))
                .map(|t| t.join());
        }
        Ok(_) => panic!("OPSH_DEBUG_PANIC is set: a deliberate panic to test the panic hook"),
        Err(_) => {}
    }
    // `opsh run FILE` and `opsh FILE.rhai` build an engine: it starts now,
    // beside the parse and everything else before the script compiles.
    if argv.get(1).is_some_and(|a| {
        a == "run"
            || std::path::Path::new(a)
                .extension()
                .is_some_and(|e| e == "rhai")
    }) {
        crate::engine::prebuild();
    }
    let mut parsed = crate::args::parse(&argv);
    // `opsh FILE.rhai ...` is `opsh run FILE.rhai ...`.
    if let Ok(Cli {
        command: Some(Command::Script(words)),
        ..
    }) = &parsed
    {
        match script_word(&argv, words) {
            Ok(at) => {
                argv.insert(at, "run".into());
                parsed = crate::args::parse(&argv);
            }
            Err(e) => {
                crate::stdio::err(format_args!("{}", e.render()));
                return e.code();
            }
        }
    }
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            // clap renders its own usage errors, and --help and --version.
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return code;
        }
    };
    // A scheduler's job starts and ends are its output: info by default.
    let verbose = match cli.command {
        Some(Command::Schedule { .. }) => cli.global.verbose.max(1),
        _ => cli.global.verbose,
    };
    crate::logging::init(cli.global.log_format, verbose);
    if let Some(reason) = &cli.global.break_glass {
        if let Err(e) = crate::policy::set_break_glass(reason) {
            crate::stdio::err(format_args!("error: {e}\n"));
            return exit::USAGE;
        }
    }
    let ctx = Context {
        global: cli.global,
        argv: argv.into_iter().skip(1).collect(),
    };
    match run_command(&ctx, cli.command) {
        Ok(code) => code,
        Err(e) => {
            crate::stdio::err(format_args!("{}", e.render()));
            e.code()
        }
    }
}

/// Where in `argv` the script of `opsh FILE.rhai` is, or why the word is
/// not a command and not a script.
fn script_word(argv: &[OsString], words: &[OsString]) -> Result<usize, CliError> {
    let word = words.first().cloned().unwrap_or_default();
    let path = std::path::Path::new(&word);
    let is_script = path.extension().is_some_and(|e| e == "rhai") || path.is_file();
    let at = argv.iter().skip(1).position(|a| *a == word).map(|i| i + 1);
    match at {
        Some(at) if is_script => Ok(at),
        _ => {
            let w = word.to_string_lossy();
            let cmd = <Cli as clap::CommandFactory>::command();
            let names: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
            let hint = match crate::registry::suggest(&w, names.iter().copied()) {
                Some(s) => format!("did you mean `opsh {s}`?"),
                None => format!(
                    "commands: {}; a script runs as `opsh run FILE` or `opsh FILE.rhai`",
                    names.join(", ")
                ),
            };
            Err(CliError::usage(format!("unknown command or script {w:?}")).with_hint(hint))
        }
    }
}

fn run_command(ctx: &Context, command: Option<Command>) -> Result<i32, CliError> {
    match command {
        Some(Command::Run(a)) => commands::run::run(ctx, &a),
        Some(Command::Check { files }) => commands::check::run(ctx, &files),
        Some(Command::Test(a)) => commands::test::run(ctx, &a),
        Some(Command::Help { name, markdown }) => {
            commands::help::run(ctx, name.as_deref(), markdown)
        }
        #[cfg(feature = "sandbox")]
        Some(Command::Sandbox {
            command,
            monitoring,
        }) => commands::sandbox::run(ctx, command, monitoring),
        #[cfg(not(feature = "sandbox"))]
        Some(Command::Sandbox { .. }) => Err(commands::without_sandbox("`opsh sandbox`")),
        Some(Command::Schedule { file }) => commands::schedule::run(ctx, &file),
        Some(Command::Timeline(a)) => commands::timeline::run(ctx, &a),
        Some(Command::Plan(a)) => commands::plan::plan(ctx, &a),
        Some(Command::Apply { plan }) => commands::plan::apply(ctx, &plan),
        Some(Command::Approve { plan }) => commands::approve::approve(ctx, &plan),
        // Rewritten to `run` before this (see `run`).
        Some(Command::Script(words)) => Err(CliError::usage(format!(
            "unknown command {:?}",
            words
                .first()
                .map(|w| w.to_string_lossy())
                .unwrap_or_default()
        ))),
        Some(Command::Version) => commands::version::run(),
        Some(Command::Completions { shell }) => commands::version::completions(shell),
        Some(Command::Man) => commands::version::man(),
        None if std::io::stdin().is_terminal() => commands::repl::run(ctx),
        None => commands::run::stdin(ctx),
    }
}
