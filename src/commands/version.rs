//! `opsh version`, `opsh completions SHELL` and `opsh man`: what a package
//! or an operator's shell setup needs from the binary itself.

use crate::error::CliError;
use crate::exit;
use std::io::Write;

/// `opsh --version`: the version, commit and build date on one line.
pub const SHORT: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("OPSH_COMMIT"),
    " ",
    env!("OPSH_BUILD_DATE"),
    ")"
);

pub fn run() -> Result<i32, CliError> {
    let features = if cfg!(feature = "sandbox") {
        "sandbox"
    } else {
        "(none)"
    };
    println!("opsh {}", env!("CARGO_PKG_VERSION"));
    println!("commit:   {}", env!("OPSH_COMMIT"));
    println!("built:    {}", env!("OPSH_BUILD_DATE"));
    println!("features: {features}");
    Ok(exit::OK)
}

pub fn completions(shell: clap_complete::Shell) -> Result<i32, CliError> {
    let mut cmd = crate::args::command();
    // Into memory first: clap_complete panics when its writer fails (a
    // closed pipe), a write of our own reports it.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "opsh", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)
        .and_then(|()| out.flush())
        .map_err(|e| CliError::failed(format!("cannot write the completion script: {e}")))?;
    Ok(exit::OK)
}

pub fn man() -> Result<i32, CliError> {
    let cmd = crate::args::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut page)
        .map_err(|e| CliError::failed(format!("cannot render the man page: {e}")))?;
    let mut out = std::io::stdout().lock();
    out.write_all(&page)
        .map_err(|e| CliError::failed(format!("cannot write the man page: {e}")))?;
    Ok(exit::OK)
}
