//! pg_dump custom, directory and tar archives, read with pg_restore: its
//! `--list` gives the table of contents (database, versions, creation
//! time, entries), and restoring to a script (`-f -`) reads every data
//! block to the end, decompressing it, which is where a cut or damaged
//! archive fails. The script is scanned as it streams by for rows per table.

use super::sql::{self, SqlInfo};
use std::io::BufReader;
use std::path::Path;
use std::process::{Command, Stdio};

#[derive(Debug, Default, Clone)]
pub struct Toc {
    pub dbname: Option<String>,
    pub created: Option<String>,
    pub format: Option<String>,
    pub compression: Option<String>,
    pub archive_version: Option<String>,
    pub server_version: Option<String>,
    pub dump_version: Option<String>,
    pub entries: usize,
    /// `schema.name` of TABLE entries.
    pub tables: Vec<String>,
    /// `schema.name` of TABLE DATA entries.
    pub data: Vec<String>,
}

fn pg_restore() -> Result<std::path::PathBuf, String> {
    crate::modules::backup::tools::pg_program("pg_restore").map_err(|e| {
        format!(
            "{}{}",
            e.message,
            e.hint.map(|h| format!(" ({h})")).unwrap_or_default()
        )
    })
}

/// "2024-05-01 10:00:00 UTC" -> "2024-05-01T10:00:00Z".
fn iso(created: &str) -> String {
    match created.strip_suffix(" UTC") {
        Some(t) if t.len() == 19 => format!("{}Z", t.replacen(' ', "T", 1)),
        _ => created.to_string(),
    }
}

/// `schema name owner` after the entry's description.
fn qualified(rest: &str) -> String {
    let parts: Vec<&str> = rest.split(' ').collect();
    if parts.len() >= 3 {
        format!("{}.{}", parts[0], parts[1..parts.len() - 1].join(" "))
    } else {
        rest.to_string()
    }
}

/// pg_restore's own words, or how it died: it can crash on a damaged
/// tar header rather than report it.
fn failure(status: std::process::ExitStatus, stderr: &str) -> String {
    use std::os::unix::process::ExitStatusExt;
    let msg = stderr.trim().replace('\n', "; ");
    match (status.signal(), msg.is_empty()) {
        (Some(sig), _) => format!(
            "pg_restore crashed (signal {sig}) on the damaged archive{}",
            if msg.is_empty() {
                String::new()
            } else {
                format!(": {msg}")
            }
        ),
        (None, true) => format!("pg_restore failed ({status}) without a message"),
        (None, false) => msg,
    }
}

pub fn parse_list(text: &str) -> Toc {
    let mut toc = Toc::default();
    for line in text.lines() {
        if let Some(h) = line.strip_prefix(';') {
            let h = h.trim();
            let field = |k: &str| h.strip_prefix(k).map(|v| v.trim().to_string());
            if let Some(v) = field("Archive created at") {
                toc.created = Some(iso(&v));
            } else if let Some(v) = field("dbname:") {
                toc.dbname = Some(v);
            } else if let Some(v) = field("Format:") {
                toc.format = Some(v);
            } else if let Some(v) = field("Compression:") {
                toc.compression = Some(v);
            } else if let Some(v) = field("Dump Version:") {
                toc.archive_version = Some(v);
            } else if let Some(v) = field("Dumped from database version:") {
                toc.server_version = Some(v);
            } else if let Some(v) = field("Dumped by pg_dump version:") {
                toc.dump_version = Some(v);
            }
            continue;
        }
        // "215; 1259 16385 TABLE public t opsh"
        let Some((_, rest)) = line.split_once("; ") else {
            continue;
        };
        toc.entries += 1;
        let mut it = rest.splitn(3, ' ');
        let (_, _, desc) = (it.next(), it.next(), it.next().unwrap_or(""));
        if let Some(r) = desc.strip_prefix("TABLE DATA ") {
            toc.data.push(qualified(r));
        } else if let Some(r) = desc.strip_prefix("TABLE ") {
            toc.tables.push(qualified(r));
        }
    }
    toc
}

pub fn list(path: &Path) -> Result<Toc, String> {
    let out = Command::new(pg_restore()?)
        .arg("--list")
        .arg(path)
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run pg_restore: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "pg_restore --list cannot read the table of contents: {}",
            failure(out.status, &String::from_utf8_lossy(&out.stderr))
        ));
    }
    Ok(parse_list(&String::from_utf8_lossy(&out.stdout)))
}

/// Reads every data block: `pg_restore -f -`, its SQL scanned as it streams.
pub fn read_data(path: &Path) -> Result<SqlInfo, String> {
    let mut child = Command::new(pg_restore()?)
        .args(["-f", "-"])
        .arg(path)
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run pg_restore: {e}"))?;
    let stderr = child.stderr.take();
    // Drain stderr on its own thread so a chatty pg_restore cannot block.
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            use std::io::Read;
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let scanned = match child.stdout.take() {
        Some(out) => sql::scan(&mut BufReader::with_capacity(1 << 16, out)),
        None => Ok(SqlInfo::default()),
    };
    let status = child.wait().map_err(|e| format!("pg_restore: {e}"))?;
    let err = err_thread.join().unwrap_or_default();
    if !status.success() {
        return Err(format!(
            "pg_restore could not read the archive to the end: {}",
            failure(status, &err)
        ));
    }
    scanned.map_err(|e| format!("reading pg_restore's output failed: {e}"))
}

impl Toc {
    pub fn summary(&self, data: &SqlInfo) -> String {
        format!(
            "database {}, pg_dump {}, created {}, {} TOC entries, {} tables, {} data entries, {} rows; every data block read",
            self.dbname.as_deref().unwrap_or("?"),
            self.dump_version.as_deref().unwrap_or("?"),
            self.created.as_deref().unwrap_or("?"),
            self.entries,
            self.tables.len(),
            self.data.len(),
            data.rows()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_list() {
        let text = ";\n; Archive created at 2025-01-02 03:04:05 UTC\n;     dbname: app\n;     TOC Entries: 9\n;     Compression: gzip\n;     Dump Version: 1.14-0\n;     Format: CUSTOM\n;     Dumped from database version: 15.2\n;     Dumped by pg_dump version: 15.2\n;\n; Selected TOC Entries:\n;\n215; 1259 16385 TABLE public accounts opsh\n216; 1259 16390 TABLE public my table opsh\n3339; 0 16385 TABLE DATA public accounts opsh\n3340; 2606 16391 CONSTRAINT public accounts accounts_pkey opsh\n";
        let toc = parse_list(text);
        assert_eq!(toc.dbname.as_deref(), Some("app"));
        assert_eq!(toc.created.as_deref(), Some("2025-01-02T03:04:05Z"));
        assert_eq!(toc.dump_version.as_deref(), Some("15.2"));
        assert_eq!(toc.entries, 4);
        assert_eq!(toc.tables, vec!["public.accounts", "public.my table"]);
        assert_eq!(toc.data, vec!["public.accounts"]);
    }
}
