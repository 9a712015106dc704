//! `opsh test [PATH...]`: runbook tests (src/testing/), a fresh session per
//! test file, in test mode; with `--sandbox`, against fresh servers.

use crate::args::TestArgs;
use crate::context::Context;
use crate::error::CliError;
use crate::output::Format;
use crate::session::Options;
use std::sync::Arc;
use std::time::Instant;

pub fn run(ctx: &Context, a: &TestArgs) -> Result<i32, CliError> {
    #[cfg(not(feature = "sandbox"))]
    if a.sandbox {
        return Err(super::without_sandbox("`opsh test --sandbox`"));
    }
    #[cfg_attr(not(feature = "sandbox"), allow(unused_mut))]
    let mut cfg = ctx.config()?;
    let files = crate::testing::discover(&a.paths).map_err(CliError::failed)?;
    if files.is_empty() {
        return Err(CliError::failed("no *_test.rhai files found"));
    }
    // Held for the whole run: dropping it stops the servers.
    #[cfg(feature = "sandbox")]
    let _sandbox = match a.sandbox {
        true => Some(sandbox(&mut cfg)?),
        false => None,
    };
    let started = Instant::now();
    let mut outcomes = Vec::new();
    for file in &files {
        let name = file.display().to_string();
        // Tests never stop at a confirmation prompt.
        let opts = Options {
            yes: true,
            ..ctx.options(&cfg, &name, rhai::Map::new())
        };
        let session = Arc::new(ctx.session(opts, cfg.clone())?);
        session.hooks.set_test_mode(true, a.sandbox);
        session.cancel.install_signal_handlers(&session.rt);
        outcomes.extend(crate::testing::run_file(file, session, a.filter.as_deref()));
    }
    let ms = (started.elapsed().as_secs_f64() * 1e3).round();
    let json = matches!(ctx.output().format, Format::Json);
    crate::testing::report(&outcomes, json, a.junit.as_deref(), ms)
}

/// PostgreSQL, Redis and the Kubernetes API test server, as the default
/// targets of their kinds.
#[cfg(feature = "sandbox")]
fn sandbox(cfg: &mut crate::config::Config) -> Result<crate::sandbox::Sandbox, CliError> {
    let sb = crate::sandbox::Sandbox::start(crate::sandbox::Services::default())
        .map_err(|e| CliError::failed(format!("cannot start the sandbox: {e}")))?;
    crate::context::use_sandbox(cfg, &sb.targets());
    Ok(sb)
}
