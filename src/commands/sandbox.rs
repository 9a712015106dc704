//! `opsh sandbox`: ephemeral servers on loopback ports, announced to other
//! opsh processes as the target `sandbox` until Ctrl-C; `opsh sandbox run
//! FILE`: `opsh run` against a fresh sandbox, torn down after.

use crate::args::SandboxCommand;
use crate::config::{Config, Kind};
use crate::context::{self, Context};
use crate::error::CliError;
use crate::exit;
use crate::sandbox::{Sandbox, Services};

pub fn run(
    ctx: &Context,
    command: Option<SandboxCommand>,
    monitoring: bool,
) -> Result<i32, CliError> {
    // Help starts no servers.
    if let Some(SandboxCommand::Run { args, .. }) = &command {
        if args.help {
            return super::run::help(args.file.as_deref(), true);
        }
    }
    // One announced sandbox per state file: a second would take over the
    // `sandbox` target and delete the first one's announcement on exit.
    if command.is_none() {
        if let Some(pid) = crate::config::running_sandbox() {
            return Err(CliError::failed(format!(
                "an opsh sandbox is already running (pid {pid}, announced in {})",
                crate::config::sandbox_state_file().display()
            ))
            .with_hint(
                "use it (target `sandbox`), stop it first, or run a private one with `opsh sandbox run FILE` (or another XDG_STATE_HOME)",
            ));
        }
    }
    let services = match &command {
        Some(SandboxCommand::Run { .. }) => Services {
            monitoring,
            ..Default::default()
        },
        None if monitoring => Services {
            monitoring,
            ..Default::default()
        },
        None => Services::all_available(),
    };
    let sb = Sandbox::start(services)
        .map_err(|e| CliError::failed(format!("cannot start the sandbox: {e}")))?;
    let targets = sb.targets();
    match command {
        Some(SandboxCommand::Run { args, .. }) => {
            let prepare = |cfg: &mut Config| context::use_sandbox(cfg, &targets);
            crate::stdio::errln(format_args!("sandbox: {}", sb.describe()));
            super::run::run_prepared(ctx, &args, Some(&prepare))
        }
        None => serve(&sb, &targets),
    }
}

/// Announces the servers to other opsh processes (target `sandbox`),
/// prints how to reach them, and waits for Ctrl-C or SIGTERM.
fn serve(sb: &Sandbox, targets: &[(Kind, String)]) -> Result<i32, CliError> {
    let file = crate::config::announce_sandbox(targets).map_err(|e| {
        CliError::failed(format!(
            "cannot announce the sandbox in {}: {e}",
            crate::config::sandbox_state_file().display()
        ))
    })?;
    crate::stdio::outln(format_args!(
        "opsh sandbox is up. Other opsh processes see it as the target `sandbox`:"
    ));
    for (k, u) in targets {
        crate::stdio::outln(format_args!("  export {}={u}", k.env_var()));
    }
    if sb.monitoring.is_none() {
        crate::stdio::outln(format_args!("  (no monitoring stack: install prometheus, prometheus-alertmanager, prometheus-pushgateway and the exporters to get one)"));
    }
    crate::stdio::outln(format_args!("  e.g. opsh run script.rhai  with  pg.connect(\"sandbox\")\nPress Ctrl-C to stop and remove it."));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(e.to_string()))?;
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut i), Ok(mut t)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            tokio::select! { _ = i.recv() => {}, _ = t.recv() => {} }
        }
    });
    crate::config::withdraw_sandbox(&file);
    crate::stdio::errln(format_args!("\nsandbox: stopping"));
    Ok(exit::OK)
}
