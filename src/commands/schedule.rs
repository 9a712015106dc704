//! `opsh schedule FILE`: the scheduler of src/schedule.rs, its jobs run as
//! child `opsh run` processes that inherit the scheduler's config, audit
//! log and log format.

use crate::args::Global;
use crate::context::Context;
use crate::error::CliError;
use crate::logging::LogFormat;
use crate::schedule::Schedule;
use std::ffi::OsString;
use std::path::Path;

pub fn run(ctx: &Context, file: &Path) -> Result<i32, CliError> {
    let sched = Schedule::load(file).map_err(CliError::usage)?;
    crate::schedule::run(sched, &inherited(&ctx.global))
        .map_err(|e| CliError::failed(format!("cannot start the runtime: {e}")))
}

/// The scheduler's own flags that each job gets too.
fn inherited(g: &Global) -> Vec<OsString> {
    let mut v: Vec<OsString> = Vec::new();
    if let Some(p) = &g.config {
        v.extend(["--config".into(), p.into()]);
    }
    if let Some(p) = &g.audit_log {
        v.extend(["--audit-log".into(), p.into()]);
    }
    if g.log_format == LogFormat::Json {
        v.extend(["--log-format".into(), "json".into()]);
    }
    v
}
