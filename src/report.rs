//! `--report FILE`: what a run did, as one JSON document (docs/unattended.md
//! and docs/report.schema.json describe it). The session's `Journal`
//! collects checks (`record_checks`, called by `checks::report`) and
//! mutations (dispatch) while the script runs.

use serde::Serialize;
use serde_json::Value;
use std::sync::Mutex;

pub const VERSION: i64 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: String,
    pub status: String,
    pub value: Value,
    pub detail: Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct Mutation {
    pub primitive: String,
    pub target: String,
    /// "real" or "dry-run".
    pub mode: String,
    /// "ok", "error", "refused", "planned" (dry-run), or for a stopped
    /// call "applied", "not_applied" or "unknown" (docs/audit.md).
    pub outcome: String,
    pub error: Option<String>,
    pub duration_ms: u64,
}

#[derive(Default)]
pub struct Journal {
    checks: Mutex<Vec<Check>>,
    mutations: Mutex<Vec<Mutation>>,
}

impl Journal {
    pub fn check(&self, c: Check) {
        if let Ok(mut v) = self.checks.lock() {
            v.push(c);
        }
    }

    pub fn mutation(&self, m: Mutation) {
        if let Ok(mut v) = self.mutations.lock() {
            v.push(m);
        }
    }

    pub fn checks(&self) -> Vec<Check> {
        self.checks.lock().map(|v| v.clone()).unwrap_or_default()
    }

    pub fn mutations(&self) -> Vec<Mutation> {
        self.mutations.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub version: i64,
    pub script: String,
    /// The `--arg`s, secrets masked.
    pub args: Value,
    pub host: String,
    pub pid: u32,
    pub lock: Option<String>,
    /// `--each-target` runs: the target this run had as its default.
    pub target: Option<String>,
    pub dry_run: bool,
    /// `--break-glass "reason"`: mutations were let through freeze windows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<String>,
    pub started_at: String,
    pub ended_at: String,
    pub duration_seconds: f64,
    pub exit_code: i32,
    /// The exit code's name in `opsh help exit-codes` ("ok", "check failed"...).
    pub status: String,
    pub success: bool,
    /// One line: why the run failed.
    pub error: Option<String>,
    pub checks: Vec<Check>,
    pub mutations: Vec<Mutation>,
}

pub fn status_name(code: i32) -> String {
    crate::exit::TABLE
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|(_, n, _)| n.to_string())
        .unwrap_or_else(|| format!("exit {code}"))
}

/// Masks secret-looking keys and known secrets in the `--arg` map.
pub fn redacted_args(args: &rhai::Map) -> Value {
    let obj = args
        .iter()
        .map(|(k, v)| {
            let j = if crate::redact::is_secret_key(k) {
                Value::String(crate::redact::MASK.into())
            } else {
                match crate::value::to_json(v) {
                    Value::String(s) => Value::String(crate::redact::redact(&s)),
                    other => other,
                }
            };
            (k.to_string(), j)
        })
        .collect();
    Value::Object(obj)
}

impl Report {
    pub fn write(&self, path: &std::path::Path) -> std::io::Result<()> {
        let body = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d)?;
        }
        // Write then rename, so a reader never sees half a report.
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        std::fs::write(&tmp, body + "\n")?;
        std::fs::rename(&tmp, path)
    }

    /// A short text for notifications.
    pub fn summary(&self) -> String {
        let failed: Vec<&str> = self
            .checks
            .iter()
            .filter(|c| c.status == "FAIL")
            .map(|c| c.check.as_str())
            .collect();
        let mut s = format!(
            "opsh {}{} on {}: {} (exit {}) after {:.1}s",
            self.script,
            self.target
                .as_deref()
                .map(|t| format!(" [{t}]"))
                .unwrap_or_default(),
            self.host,
            self.status,
            self.exit_code,
            self.duration_seconds
        );
        if let Some(e) = &self.error {
            s.push_str(&format!("\nerror: {e}"));
        }
        if !failed.is_empty() {
            s.push_str(&format!("\nfailed checks: {}", failed.join(", ")));
        }
        s
    }
}
