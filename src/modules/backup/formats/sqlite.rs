//! SQLite databases: the header (page size, page count: a cut file is
//! caught here), `PRAGMA integrity_check` through the sqlite3 program
//! opened `immutable=1` (nothing is written next to the backup), and the
//! WAL state: a database in WAL mode whose -wal file is not empty has
//! committed transactions that the main file alone does not contain.

use std::path::Path;
use std::process::Command;

pub struct Header {
    pub page_size: u64,
    pub pages: u64,
    pub wal_mode: bool,
}

pub fn header(head: &[u8]) -> Option<Header> {
    if head.len() < 100 || !head.starts_with(b"SQLite format 3\0") {
        return None;
    }
    let be32 = |o: usize| u32::from_be_bytes([head[o], head[o + 1], head[o + 2], head[o + 3]]);
    let ps = u16::from_be_bytes([head[16], head[17]]) as u64;
    let page_size = if ps == 1 { 65536 } else { ps };
    // The in-header page count is valid only when the change counter and
    // "version-valid-for" agree (written by SQLite 3.7.0 or later).
    let pages = if be32(24) == be32(92) {
        be32(28) as u64
    } else {
        0
    };
    Some(Header {
        page_size,
        pages,
        wal_mode: head[18] == 2 || head[19] == 2,
    })
}

/// The header against the file's real size.
pub fn judge_size(h: &Header, bytes: u64) -> Result<String, String> {
    if h.page_size < 512 || !h.page_size.is_power_of_two() {
        return Err(format!("invalid page size {} in the header", h.page_size));
    }
    if h.pages > 0 && bytes < h.pages * h.page_size {
        return Err(format!(
            "the header says {} pages of {} bytes ({} bytes), the file has {bytes}: it is truncated",
            h.pages,
            h.page_size,
            h.pages * h.page_size
        ));
    }
    if !bytes.is_multiple_of(h.page_size) {
        return Err(format!(
            "{bytes} bytes is not a whole number of {}-byte pages: truncated or damaged",
            h.page_size
        ));
    }
    Ok(format!(
        "{} pages of {} bytes",
        bytes / h.page_size,
        h.page_size
    ))
}

fn uri(path: &Path) -> String {
    let mut s = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => s.push_str("%25"),
            '?' => s.push_str("%3f"),
            '#' => s.push_str("%23"),
            c => s.push(c),
        }
    }
    s.push_str("?immutable=1");
    s
}

/// `PRAGMA integrity_check` with the sqlite3 program.
pub fn integrity_check(path: &Path) -> Result<String, String> {
    let out = Command::new("sqlite3")
        .args(["-batch", "-bail"])
        .arg(uri(path))
        .arg("PRAGMA integrity_check;")
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                "the sqlite3 program is not installed (apt-get install sqlite3): integrity not checked".to_string()
            } else {
                format!("running sqlite3 failed: {e}")
            }
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if out.status.success() && stdout == "ok" {
        return Ok("PRAGMA integrity_check: ok".into());
    }
    let problems: Vec<&str> = stdout.lines().chain(stderr.lines()).take(5).collect();
    Err(format!("PRAGMA integrity_check: {}", problems.join("; ")))
}

/// WAL mode and the -wal/-shm files beside the database.
pub fn wal_state(path: &Path, h: &Header) -> Result<String, String> {
    let side = |suffix: &str| {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        std::fs::metadata(std::path::PathBuf::from(p))
            .ok()
            .map(|m| m.len())
    };
    let mode = if h.wal_mode {
        "wal"
    } else {
        "rollback journal"
    };
    match side("-wal") {
        Some(n) if n > 0 => Err(format!(
            "journal mode {mode}; a -wal file of {n} bytes lies beside it: committed transactions that the file alone does not hold (back up with `sqlite3 DB \".backup FILE\"` or VACUUM INTO, or checkpoint first)"
        )),
        Some(_) => Ok(format!("journal mode {mode}; the -wal file beside it is empty")),
        None => Ok(format!("journal mode {mode}; no -wal file beside it: the file is self-contained")),
    }
}
