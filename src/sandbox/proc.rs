//! Child processes of the sandbox: free ports, unprivileged users, and
//! making sure servers die with us.

use super::{err, SandboxError};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A free loopback port below Linux's ephemeral range: the one rule for
/// every sandbox server, the Kubernetes API test server's.
pub fn free_port() -> Result<u16, SandboxError> {
    kube_testserver::free_port().map_err(|e| err(e.to_string()))
}

/// Uid/gid that servers run as: PostgreSQL refuses to run as root, so as
/// root we use `nobody`.
pub fn service_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        Some((65534, 65534))
    } else {
        None
    }
}

pub fn chown_tree(path: &Path, ids: Option<(u32, u32)>) -> Result<(), SandboxError> {
    let Some((uid, gid)) = ids else { return Ok(()) };
    let walk = |p: &Path| {
        std::os::unix::fs::lchown(p, Some(uid), Some(gid))
            .map_err(|e| err(format!("chown {}: {e}", p.display())))
    };
    walk(path)?;
    if path.is_dir() {
        for entry in
            std::fs::read_dir(path).map_err(|e| err(format!("read {}: {e}", path.display())))?
        {
            let entry = entry.map_err(|e| err(e.to_string()))?;
            chown_tree(&entry.path(), ids)?;
        }
    }
    Ok(())
}

/// Spawns a server that dies with this thread's process (PDEATHSIG) and
/// runs as the service user when we are root.
pub fn spawn(
    cmd: &mut Command,
    log: &Path,
    ids: Option<(u32, u32)>,
) -> Result<Child, SandboxError> {
    let logf =
        std::fs::File::create(log).map_err(|e| err(format!("create {}: {e}", log.display())))?;
    let logf2 = logf.try_clone().map_err(|e| err(e.to_string()))?;
    cmd.stdout(logf)
        .stderr(logf2)
        .stdin(std::process::Stdio::null());
    if let Some((uid, gid)) = ids {
        cmd.uid(uid).gid(gid);
    }
    // SAFETY: prctl is async-signal-safe and touches only this child.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.spawn()
        .map_err(|e| err(format!("cannot start {program}: {e}")))
}

/// Asks a child to stop with `sig`, then kills it if it lingers.
pub fn stop(child: &mut Child, sig: i32, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    // SAFETY: kill on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
    let start = Instant::now();
    while start.elapsed() < grace {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

pub fn which(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
