//! `opsh ARGS...`: parse the command line, start logging, run the command,
//! and render its error, once.

use crate::args::Command;
use crate::commands;
use crate::context::Context;
use crate::error::CliError;
use crate::exit;
use std::ffi::OsString;
use std::io::IsTerminal;

/// Runs opsh with `args` (the program name first) and returns the exit code.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let argv: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match crate::args::parse(&argv) {
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
        Some(Command::Version) => commands::version::run(),
        Some(Command::Completions { shell }) => commands::version::completions(shell),
        Some(Command::Man) => commands::version::man(),
        None if std::io::stdin().is_terminal() => commands::repl::run(ctx),
        None => commands::run::stdin(ctx),
    }
}
