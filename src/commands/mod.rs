//! One file per subcommand. Each takes the `Context` of the global flags and
//! returns the exit code, or the `CliError` that `crate::run` renders.

pub mod approve;
pub mod check;
pub mod help;
pub mod plan;
pub mod repl;
pub mod run;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod schedule;
pub mod test;
pub mod timeline;
pub mod version;

/// `opsh sandbox` and `opsh test --sandbox` in a build without the
/// `sandbox` feature (the container image): a usage error that says what
/// to build instead. The commands stay in the CLI, so every build parses
/// the same command line and the docs' commands get this answer rather
/// than "unrecognized subcommand".
#[cfg(not(feature = "sandbox"))]
pub(crate) fn without_sandbox(what: &str) -> crate::error::CliError {
    crate::error::CliError::usage(format!(
        "this opsh was built without the sandbox feature; {what} needs a build with it (its default features: `cargo build --release`)"
    ))
}
