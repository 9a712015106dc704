//! The audit log: append-only JSON lines, one per event. A mutation writes
//! an `intent` record before it touches anything (and is refused when that
//! write fails) and an `outcome` record after.

use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub struct Audit {
    path: PathBuf,
    run_id: String,
    /// Looked up at the first record: without $USER (cron, containers) it
    /// is an NSS lookup (nsswitch.conf, nscd, /etc/passwd), a tenth of an
    /// empty run's start-up, and most runs write no record.
    user: std::sync::OnceLock<String>,
    host: String,
    script: String,
    /// Records this run appended: a run that wrote any says its run id.
    written: std::sync::atomic::AtomicUsize,
}

pub fn default_path() -> PathBuf {
    crate::config::state_dir().join("audit.jsonl")
}

pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Who runs opsh: $USER, else the account of the effective uid.
pub fn current_user() -> String {
    if let Some(u) = std::env::var("USER").ok().filter(|u| !u.is_empty()) {
        return u;
    }
    // SAFETY: getpwuid returns a pointer into static storage or null; we copy
    // the name out immediately and never keep the pointer.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if !pw.is_null() && !(*pw).pw_name.is_null() {
            return std::ffi::CStr::from_ptr((*pw).pw_name)
                .to_string_lossy()
                .into_owned();
        }
    }
    format!("uid:{}", unsafe { libc::geteuid() })
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it or we stop at its end.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

impl Audit {
    pub fn new(path: PathBuf, script: &str) -> Audit {
        Audit {
            path,
            run_id: format!("{:016x}", fastrand::u64(..)),
            user: std::sync::OnceLock::new(),
            host: hostname(),
            script: script.to_string(),
            written: Default::default(),
        }
    }

    /// How many records this run appended.
    pub fn written(&self) -> usize {
        self.written.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records under another run's id: what a run does after it ends
    /// (notifications, metrics) belongs to its timeline.
    pub fn continuing(path: PathBuf, script: &str, run_id: &str) -> Audit {
        Audit {
            run_id: run_id.to_string(),
            ..Audit::new(path, script)
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Appends one record. The common fields are added here; `fields` must
    /// already be redacted.
    pub fn append(&self, fields: Value) -> std::io::Result<()> {
        let mut rec = json!({
            "ts": timestamp(SystemTime::now()),
            "run_id": self.run_id,
            "user": self.user.get_or_init(current_user),
            "host": self.host,
            "pid": std::process::id(),
            "script": self.script,
        });
        if let (Some(obj), Value::Object(extra)) = (rec.as_object_mut(), fields) {
            obj.extend(extra);
        }
        let mut line = serde_json::to_string(&rec)?;
        line.push('\n');
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        // One write call per record keeps concurrent writers' lines whole.
        f.write_all(line.as_bytes())?;
        f.sync_data()?;
        self.written
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_names_who_ran_opsh() {
        let dir = std::env::temp_dir().join(format!("opsh-audit-{}", fastrand::u32(..)));
        let path = dir.join("audit.jsonl");
        let audit = Audit::new(path.clone(), "check.rhai");
        audit.append(json!({"phase": "intent"})).unwrap();
        audit.append(json!({"phase": "outcome"})).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let users: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["user"].clone())
            .collect();
        let who = Value::String(current_user());
        assert_eq!(users, vec![who.clone(), who]);
        assert_eq!(audit.written(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
