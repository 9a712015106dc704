//! `opsh` on a terminal: the interactive console (src/repl/), with the same
//! session (config, audit, dry-run, timeouts) that `opsh run` builds.

use crate::context::Context;
use crate::error::CliError;
use std::sync::Arc;

pub fn run(ctx: &Context) -> Result<i32, CliError> {
    let cfg = ctx.config()?;
    let opts = ctx.options(&cfg, "repl", rhai::Map::new());
    let session = ctx.session(opts, cfg)?;
    crate::repl::run(Arc::new(session), ctx.global.timeout)
}
