//! One file per subcommand. Each takes the `Context` of the global flags and
//! returns the exit code, or the `CliError` that `crate::run` renders.

pub mod check;
pub mod help;
pub mod repl;
pub mod run;
pub mod sandbox;
pub mod schedule;
pub mod test;
