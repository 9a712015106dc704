//! Plain SQL dumps (pg_dump -Fp, pg_dumpall), and the SQL that pg_restore
//! prints for an archive: one streaming pass that finds the header, the
//! completion footer pg_dump writes last, the tables, and the rows of each
//! COPY block (one line per row: COPY text format escapes newlines).

use std::io::BufRead;

pub const HEADER: &str = "-- PostgreSQL database dump";
pub const FOOTER: &str = "-- PostgreSQL database dump complete";
const CLUSTER_HEADER: &str = "-- PostgreSQL database cluster dump";
const CLUSTER_FOOTER: &str = "-- PostgreSQL database cluster dump complete";

pub fn looks_like_sql(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&head[..head.len().min(512)]);
    let t = text.trim_start();
    ["--", "SET ", "CREATE ", "BEGIN", "\\", "SELECT ", "INSERT "]
        .iter()
        .any(|p| t.starts_with(p))
        && head.iter().take(512).all(|&b| b != 0)
}

#[derive(Debug, Default, Clone)]
pub struct SqlInfo {
    /// The header line found in the first lines, if any.
    pub header: Option<String>,
    pub cluster: bool,
    pub footer: bool,
    pub server_version: Option<String>,
    pub dump_version: Option<String>,
    /// `schema.table` of each CREATE TABLE.
    pub tables: Vec<String>,
    /// The COPY target as written (already quoted) and its rows.
    pub copies: Vec<(String, u64)>,
    /// The dump ends inside this COPY block, after this many rows.
    pub open_copy: Option<(String, u64)>,
    /// `\connect` or CREATE DATABASE: restoring it would leave the database
    /// it is run in.
    pub switches_database: bool,
    pub lines: u64,
}

impl SqlInfo {
    pub fn rows(&self) -> u64 {
        self.copies.iter().map(|(_, n)| n).sum()
    }

    /// Ok(summary) when the dump is complete, Err(what is wrong).
    pub fn judge(&self) -> Result<String, String> {
        if let Some((t, n)) = &self.open_copy {
            return Err(format!(
                "the dump ends inside the COPY data of {t} after {n} rows: it is truncated"
            ));
        }
        let footer = if self.cluster { CLUSTER_FOOTER } else { FOOTER };
        if self.header.is_none() {
            return Err(format!(
                "no pg_dump header (\"{HEADER}\") in the first lines: not written by pg_dump, or its start is damaged"
            ));
        }
        if !self.footer {
            return Err(format!(
                "no completion footer \"{footer}\" at the end: the dump is truncated or pg_dump did not finish"
            ));
        }
        Ok(format!(
            "header and completion footer present; {} tables, {} COPY blocks, {} rows{}",
            self.tables.len(),
            self.copies.len(),
            self.rows(),
            self.dump_version
                .as_ref()
                .map(|v| format!("; pg_dump {v}"))
                .unwrap_or_default()
        ))
    }
}

/// The COPY target of `COPY public.t (a, b) FROM stdin;`.
pub fn copy_target(line: &str) -> Option<String> {
    let rest = line.strip_prefix("COPY ")?;
    if !line.trim_end().ends_with("FROM stdin;") {
        return None;
    }
    let end = rest.find(" (").or_else(|| rest.find(" FROM"))?;
    Some(rest[..end].to_string())
}

fn create_table_name(line: &str) -> Option<String> {
    let rest = line
        .strip_prefix("CREATE TABLE ")
        .or_else(|| line.strip_prefix("CREATE UNLOGGED TABLE "))?;
    let end = rest.find([' ', '(']).unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

/// One pass over SQL text. I/O errors (a broken compressed stream) stop it.
pub fn scan(r: &mut impl BufRead) -> std::io::Result<SqlInfo> {
    let mut info = SqlInfo::default();
    let mut line = Vec::with_capacity(256);
    let mut copy: Option<(String, u64)> = None;
    // The footer must be among the last lines; keep the latest position.
    let mut footer_line: Option<u64> = None;
    let mut last_content: u64 = 0;
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        info.lines += 1;
        if let Some((_, n)) = copy.as_mut() {
            if line == b"\\.\n" || line == b"\\." {
                if let Some(done) = copy.take() {
                    info.copies.push(done);
                }
            } else {
                *n += 1;
            }
            last_content = info.lines;
            continue;
        }
        let text = String::from_utf8_lossy(&line);
        let t = text.trim_end();
        if t.is_empty() || t == "--" {
            continue;
        }
        // pg_dump 15.14+ ends with `\unrestrict KEY` after the footer.
        if !t.starts_with("\\unrestrict") {
            last_content = info.lines;
        }
        if info.lines <= 10 && info.header.is_none() && (t == HEADER || t == CLUSTER_HEADER) {
            info.cluster = t == CLUSTER_HEADER;
            info.header = Some(t.to_string());
        }
        if t == FOOTER || t == CLUSTER_FOOTER {
            footer_line = Some(info.lines);
        } else if let Some(v) = t.strip_prefix("-- Dumped from database version ") {
            info.server_version.get_or_insert_with(|| v.to_string());
        } else if let Some(v) = t.strip_prefix("-- Dumped by pg_dump version ") {
            info.dump_version.get_or_insert_with(|| v.to_string());
        } else if let Some(target) = copy_target(t) {
            copy = Some((target, 0));
        } else if let Some(name) = create_table_name(t) {
            info.tables.push(name);
        } else if t.starts_with("\\connect") || t.starts_with("CREATE DATABASE ") {
            info.switches_database = true;
        }
    }
    info.open_copy = copy;
    info.footer = footer_line.is_some_and(|f| f >= last_content);
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n-- Dumped from database version 15.2\n-- Dumped by pg_dump version 15.2\nCREATE TABLE public.t (\n    id integer\n);\nCOPY public.t (id) FROM stdin;\n1\n2\n3\n\\.\n\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc\n\n";

    #[test]
    fn complete_dump() {
        let info = scan(&mut DUMP.as_bytes()).unwrap();
        assert!(info.header.is_some());
        assert!(info.footer);
        assert_eq!(info.tables, vec!["public.t"]);
        assert_eq!(info.copies, vec![("public.t".to_string(), 3)]);
        assert!(info.judge().is_ok(), "{:?}", info.judge());
    }

    #[test]
    fn truncated_dump() {
        let cut = &DUMP[..DUMP.find("\n2\n").unwrap() + 1];
        let info = scan(&mut cut.as_bytes()).unwrap();
        let e = info.judge().unwrap_err();
        assert!(
            e.contains("inside the COPY data of public.t after 1 rows"),
            "{e}"
        );
        let cut = &DUMP[..DUMP
            .find("--\n-- PostgreSQL database dump complete")
            .unwrap()];
        let e = scan(&mut cut.as_bytes()).unwrap().judge().unwrap_err();
        assert!(e.contains("no completion footer"), "{e}");
    }

    #[test]
    fn footer_must_be_last() {
        let text = format!("{DUMP}CREATE TABLE public.more (id int);\n");
        let info = scan(&mut text.as_bytes()).unwrap();
        assert!(!info.footer);
    }
}
