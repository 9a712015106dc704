//! `opsh ARGS...`: parse the command line, start logging, run the command,
//! and render its error, once.

use crate::args::{Cli, Command};
use crate::commands;
use crate::context::Context;
use crate::error::CliError;
use crate::exit;
use clap::Parser;
use std::ffi::OsString;
use std::io::IsTerminal;

/// Runs opsh with `args` (the program name first) and returns the exit code.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let mut argv: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let mut parsed = Cli::try_parse_from(&argv);
    // `opsh FILE.rhai ...` is `opsh run FILE.rhai ...`.
    if let Ok(Cli {
        command: Some(Command::Script(words)),
        ..
    }) = &parsed
    {
        match script_word(&argv, words) {
            Ok(at) => {
                argv.insert(at, "run".into());
                parsed = Cli::try_parse_from(&argv);
            }
            Err(e) => {
                eprint!("{}", e.render());
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
    let ctx = Context {
        global: cli.global,
        argv: argv.into_iter().skip(1).collect(),
    };
    match run_command(&ctx, cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprint!("{}", e.render());
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
        Some(Command::Sandbox { command }) => commands::sandbox::run(ctx, command),
        #[cfg(not(feature = "sandbox"))]
        Some(Command::Sandbox { .. }) => Err(commands::without_sandbox("`opsh sandbox`")),
        Some(Command::Schedule { file }) => commands::schedule::run(ctx, &file),
        Some(Command::Timeline(a)) => commands::timeline::run(ctx, &a),
        // Rewritten to `run` before this (see `run`).
        Some(Command::Script(words)) => Err(CliError::usage(format!(
            "unknown command {:?}",
            words
                .first()
                .map(|w| w.to_string_lossy())
                .unwrap_or_default()
        ))),
        None if std::io::stdin().is_terminal() => commands::repl::run(ctx),
        None => commands::run::stdin(ctx),
    }
}
