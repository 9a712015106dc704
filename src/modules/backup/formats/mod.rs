//! What a backup is, from its first bytes (after decompression), and the
//! integrity check of each kind: pgarchive (pg_dump custom, directory and
//! tar archives), sql (plain dumps), sqlite, rdb (Redis).

pub mod pgarchive;
pub mod pgcustom;
pub mod rdb;
pub mod sql;
pub mod sqlite;

use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    PgCustom,
    PgDirectory,
    PgTar,
    Sql,
    Sqlite,
    Rdb,
    /// A tar file that pg_dump did not write.
    Tar,
    Empty,
    /// What its first bytes look like.
    Unknown(String),
}

pub const NAMES: &[&str] = &[
    "pg_custom",
    "pg_directory",
    "pg_tar",
    "sql",
    "sqlite",
    "rdb",
];

impl Format {
    pub fn name(&self) -> &'static str {
        match self {
            Format::PgCustom => "pg_custom",
            Format::PgDirectory => "pg_directory",
            Format::PgTar => "pg_tar",
            Format::Sql => "sql",
            Format::Sqlite => "sqlite",
            Format::Rdb => "rdb",
            Format::Tar => "tar",
            Format::Empty => "empty",
            Format::Unknown(_) => "unknown",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Format::PgCustom => "a PostgreSQL custom-format archive (pg_dump -Fc)".into(),
            Format::PgDirectory => "a PostgreSQL directory-format archive (pg_dump -Fd)".into(),
            Format::PgTar => "a PostgreSQL tar-format archive (pg_dump -Ft)".into(),
            Format::Sql => "a plain SQL dump".into(),
            Format::Sqlite => "an SQLite database".into(),
            Format::Rdb => "a Redis RDB file".into(),
            Format::Tar => {
                "a tar file that pg_dump did not write (its first member is not toc.dat)".into()
            }
            Format::Empty => "empty".into(),
            Format::Unknown(head) => format!("not a format opsh knows (it starts with {head})"),
        }
    }

    pub fn is_pg_archive(&self) -> bool {
        matches!(self, Format::PgCustom | Format::PgDirectory | Format::PgTar)
    }
}

/// The format of a file's (decompressed) first bytes.
pub fn detect(head: &[u8]) -> Format {
    if head.is_empty() {
        return Format::Empty;
    }
    if head.starts_with(b"PGDMP") {
        return Format::PgCustom;
    }
    if head.starts_with(b"SQLite format 3\0") {
        return Format::Sqlite;
    }
    if head.starts_with(b"REDIS") {
        return Format::Rdb;
    }
    if head.len() >= 262 && &head[257..262] == b"ustar" {
        let name_end = head[..100].iter().position(|&b| b == 0).unwrap_or(100);
        return if &head[..name_end] == b"toc.dat" {
            Format::PgTar
        } else {
            Format::Tar
        };
    }
    if sql::looks_like_sql(head) {
        return Format::Sql;
    }
    Format::Unknown(preview(head))
}

/// A directory is a backup when it is a pg_dump directory archive.
pub fn detect_dir(path: &Path) -> Format {
    if path.join("toc.dat").is_file() {
        Format::PgDirectory
    } else {
        Format::Unknown("a directory without toc.dat".into())
    }
}

fn preview(head: &[u8]) -> String {
    let n = head.len().min(16);
    let text: String = head[..n]
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    let hex: Vec<String> = head[..n.min(8)]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{} \"{text}\"", hex.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects() {
        assert_eq!(detect(b"PGDMP\x01\x0f"), Format::PgCustom);
        assert_eq!(detect(b"SQLite format 3\0...."), Format::Sqlite);
        assert_eq!(detect(b"REDIS0011"), Format::Rdb);
        assert_eq!(
            detect(b"--\n-- PostgreSQL database dump\n--\n"),
            Format::Sql
        );
        assert_eq!(detect(b""), Format::Empty);
        assert!(matches!(detect(b"\x00\x01hello"), Format::Unknown(_)));
    }
}
