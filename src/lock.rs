//! `--lock NAME`: one run of a job at a time. The lock is a file in the
//! state dir created with O_EXCL, holding who took it (pid, host, start,
//! script). A lock whose holder died on this host is stale and taken over;
//! the check-and-take-over is serialised by flock on a guard file, so two
//! runs racing for the same stale lock cannot both win.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    /// RFC 3339, for people.
    pub started: String,
    /// Unix seconds, for "held for 3m".
    pub started_unix: u64,
    pub script: String,
    /// The holder's start time in clock ticks since boot (/proc/PID/stat),
    /// so a recycled pid is not mistaken for the holder.
    #[serde(default)]
    pub proc_start: Option<u64>,
}

#[derive(Debug)]
pub enum LockError {
    /// Someone else runs this job now.
    Held { name: String, holder: Box<Holder> },
    /// The lock cannot be created or read (permissions, bad name...).
    Io(String),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Held { name, holder } => {
                let now = unix_now();
                let held = std::time::Duration::from_secs(now.saturating_sub(holder.started_unix));
                write!(
                    f,
                    "lock {name:?} is held by pid {} on {} since {} (for {}), running {}",
                    holder.pid,
                    holder.host,
                    holder.started,
                    humantime::format_duration(held),
                    holder.script
                )
            }
            LockError::Io(m) => f.write_str(m),
        }
    }
}

/// A held lock; dropping it releases it.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    me: Holder,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn dir() -> PathBuf {
    crate::config::state_dir().join("locks")
}

pub fn path_of(name: &str) -> PathBuf {
    dir().join(format!("{name}.lock"))
}

pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The per-script default: a `// opsh: lock=NAME` line among the comment
/// lines at the top of the script.
pub fn from_header(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .take_while(|l| l.is_empty() || l.starts_with("//"))
        .filter_map(|l| l.trim_start_matches('/').trim().strip_prefix("opsh:"))
        .flat_map(|rest| rest.split_whitespace())
        .find_map(|kv| kv.strip_prefix("lock=").map(str::to_string))
}

/// Start time of a process in clock ticks since boot (field 22 of
/// /proc/PID/stat); None off Linux or when the process is gone.
fn proc_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count from its closing paren.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

impl Holder {
    fn me(script: &str) -> Holder {
        let now = SystemTime::now();
        Holder {
            pid: std::process::id(),
            host: crate::audit::hostname(),
            started: humantime::format_rfc3339_seconds(now).to_string(),
            started_unix: unix_now(),
            script: script.to_string(),
            proc_start: proc_start(std::process::id()),
        }
    }

    /// Stale: on this host, and the process is gone (or its pid now belongs
    /// to a process that started at another time). A holder on another host
    /// is never judged from here.
    pub fn is_stale(&self) -> bool {
        if self.host != crate::audit::hostname() {
            return false;
        }
        if !crate::proc::alive(self.pid) {
            return true;
        }
        match (self.proc_start, proc_start(self.pid)) {
            (Some(recorded), Some(now)) => recorded != now,
            _ => false,
        }
    }
}

/// Holds an exclusive flock on `NAME.lock.guard` while alive.
struct Guard(std::fs::File);

impl Guard {
    fn take(path: &Path) -> std::io::Result<Guard> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        // SAFETY: a valid open fd; flock blocks only while another opsh
        // inspects the same lock, which takes microseconds.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Guard(f))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // SAFETY: the fd is still open.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

fn read_holder(path: &Path) -> Option<Holder> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn create(path: &Path, me: &Holder) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    let body = serde_json::to_string(me).map_err(std::io::Error::other)?;
    f.write_all(body.as_bytes())?;
    f.sync_all()
}

/// Takes the lock `name` for `script`, taking over a stale one.
pub fn acquire(name: &str, script: &str) -> Result<RunLock, LockError> {
    if !valid_name(name) {
        return Err(LockError::Io(format!(
            "invalid lock name {name:?}: use letters, digits, '_', '-' and '.'"
        )));
    }
    let dir = dir();
    std::fs::create_dir_all(&dir).map_err(|e| {
        LockError::Io(format!(
            "cannot create the lock directory {}: {e}",
            dir.display()
        ))
    })?;
    let path = path_of(name);
    let me = Holder::me(script);
    let _guard = Guard::take(&dir.join(format!("{name}.lock.guard")))
        .map_err(|e| LockError::Io(format!("cannot lock {}: {e}", path.display())))?;
    match create(&path, &me) {
        Ok(()) => return Ok(RunLock { path, me }),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(LockError::Io(format!(
                "cannot create the lock file {}: {e}",
                path.display()
            )))
        }
    }
    match read_holder(&path) {
        Some(holder) if !holder.is_stale() => Err(LockError::Held {
            name: name.to_string(),
            holder: Box::new(holder),
        }),
        previous => {
            // Stale (or unreadable: a run killed while writing it). Under the
            // guard nobody else can be replacing it at the same time.
            if let Some(h) = &previous {
                tracing::info!(lock = name, pid = h.pid, host = %h.host, since = %h.started, "taking over a stale lock");
                crate::stdio::errln(format_args!(
                    "warning: lock {name:?} was left by pid {} on {} (since {}), which is no longer running: taking it over",
                    h.pid, h.host, h.started
                ));
            }
            let _ = std::fs::remove_file(&path);
            create(&path, &me).map_err(|e| {
                LockError::Io(format!(
                    "cannot take over the lock file {}: {e}",
                    path.display()
                ))
            })?;
            Ok(RunLock { path, me })
        }
    }
}

impl RunLock {
    pub fn holder(&self) -> &Holder {
        &self.me
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Only remove the file if it is still ours (never someone's takeover).
        if read_holder(&self.path).is_some_and(|h| h == self.me) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_the_lock() {
        let s = "// daily check\n// opsh: lock=daily-check\n\nlet x = 1;\n// opsh: lock=late";
        assert_eq!(from_header(s).as_deref(), Some("daily-check"));
        assert_eq!(from_header("let x = 1;\n// opsh: lock=a"), None);
    }

    #[test]
    fn names_are_file_safe() {
        assert!(valid_name("pg-backup.prod_1"));
        assert!(!valid_name("../etc"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(""));
    }

    #[test]
    fn own_process_is_not_stale_and_dead_pid_is() {
        let me = Holder::me("x");
        assert!(!me.is_stale());
        let dead = Holder {
            pid: 999_999_999,
            ..me.clone()
        };
        assert!(dead.is_stale());
        let elsewhere = Holder {
            host: "another-host.invalid".into(),
            ..dead
        };
        assert!(!elsewhere.is_stale());
    }
}
