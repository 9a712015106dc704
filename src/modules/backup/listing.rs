//! The backups in a directory: what counts as one, newest first.

use super::opts::{age_secs, human_bytes, rfc3339, unix_secs};
use crate::dispatch::{Call, OpError};
use crate::registry::{field, opt, req, Field, Primitive, Ty};
use crate::value::map_of;
use rhai::{Array, Dynamic};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub path: PathBuf,
    pub is_dir: bool,
    pub bytes: u64,
    pub mtime: i64,
    pub age_s: u64,
}

impl Entry {
    pub fn to_dynamic(&self) -> Dynamic {
        Dynamic::from_map(map_of([
            ("name", self.name.clone().into()),
            ("path", self.path.display().to_string().into()),
            ("kind", (if self.is_dir { "dir" } else { "file" }).into()),
            ("bytes", Dynamic::from_int(self.bytes as i64)),
            ("size", human_bytes(self.bytes).into()),
            ("mtime", rfc3339(self.mtime).into()),
            ("age_s", Dynamic::from_int(self.age_s as i64)),
        ]))
    }
}

/// One backup, as `Entry::to_dynamic` makes it: the columns of
/// `backup.list`, in the order a table shows them.
pub const ENTRY: &[Field] = &[
    field("name", Ty::Str),
    field("kind", Ty::Str).doc("\"file\", or \"dir\" for a pg_dump directory archive"),
    field("bytes", Ty::Int).doc("a directory archive: the sum of its files"),
    field("size", Ty::Str).doc("bytes, human-readable (\"1.5 KiB\")"),
    field("mtime", Ty::Str).doc("modification time, RFC 3339, UTC"),
    field("age_s", Ty::Int).doc("seconds since the modification time"),
    field("path", Ty::Str),
];

/// The options of `backup.list` and `backup.latest`.
const LIST_OPTS: Ty = Ty::Record(&[PATTERN]);

/// Shared with `backup.retention`.
pub const PATTERN: Field =
    field("pattern", Ty::Str).doc("a glob on the name (`*`, `?`); default every entry");

/// The one glob matcher (`*`, `?`), shared with `--each-target`.
pub use crate::fleet::glob_match as glob;

/// Sidecars and SQLite's companions are never backups themselves.
fn companion(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with(".sha256")
        || name == "SHA256SUMS"
        || name.ends_with("-wal")
        || name.ends_with("-shm")
        || name.ends_with("-journal")
}

pub fn scan(dir: &Path, pattern: Option<&str>) -> Result<Vec<Entry>, OpError> {
    let rd = std::fs::read_dir(dir).map_err(|e| {
        OpError::failed(format!("cannot list {}", dir.display()))
            .with_cause(e)
            .with_hint("check the directory exists and is readable")
    })?;
    let mut v = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if companion(&name) || pattern.is_some_and(|p| !glob(p, &name)) {
            continue;
        }
        let Ok(meta) = std::fs::metadata(e.path()) else {
            continue;
        };
        let path = e.path();
        let bytes = if meta.is_dir() {
            if !path.join("toc.dat").is_file() {
                continue;
            }
            std::fs::read_dir(&path)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|f| f.metadata().ok().filter(|m| m.is_file()))
                .map(|m| m.len())
                .sum()
        } else if meta.is_file() {
            meta.len()
        } else {
            continue;
        };
        let Ok(m) = meta.modified() else { continue };
        v.push(Entry {
            name,
            path,
            is_dir: meta.is_dir(),
            bytes,
            mtime: unix_secs(m),
            age_s: age_secs(m),
        });
    }
    // Newest first; the name breaks ties so the order is stable.
    v.sort_by(|a, b| b.mtime.cmp(&a.mtime).then_with(|| b.name.cmp(&a.name)));
    Ok(v)
}

/// The directory and the `pattern` option.
fn args(call: &Call) -> Result<(PathBuf, Option<String>), OpError> {
    let dir = PathBuf::from(call.str("dir")?);
    Ok((dir, call.opts("opts")?.str("pattern")?))
}

pub const LIST: Primitive = Primitive::read("list", list)
    .params(&[req("dir", Ty::Str), opt("opts", LIST_OPTS)])
    .returns(Ty::Rows(ENTRY))
    .doc("Backups in a directory, newest first.\n\
          Checksum sidecars, SQLite -wal/-shm files and hidden files are not backups; a directory counts only when it is a pg_dump directory archive (it has a toc.dat).")
    .example(r#"show(backup.list("/backups", #{pattern: "app-*.dump"}))"#);

pub fn list(call: &mut Call) -> Result<Dynamic, OpError> {
    let (dir, pattern) = args(call)?;
    let v = scan(&dir, pattern.as_deref())?;
    Ok(Dynamic::from_array(
        v.iter().map(Entry::to_dynamic).collect::<Array>(),
    ))
}

pub const LATEST: Primitive = Primitive::read("latest", latest)
    .params(&[req("dir", Ty::Str), opt("opts", LIST_OPTS)])
    .returns(Ty::OneOf(&[Ty::Record(ENTRY), Ty::Unit]))
    .doc("The newest backup in a directory (the first of backup.list), or () when none matches `pattern`.")
    .example(r#"let b = backup.latest("/backups", #{pattern: "*.dump"}); if b == () { fail("no backup") }"#);

pub fn latest(call: &mut Call) -> Result<Dynamic, OpError> {
    let (dir, pattern) = args(call)?;
    Ok(scan(&dir, pattern.as_deref())?
        .first()
        .map(Entry::to_dynamic)
        .unwrap_or(Dynamic::UNIT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*.dump", "app-2025.dump"));
        assert!(glob("app-????.dump", "app-2025.dump"));
        assert!(!glob("*.dump", "app.dump.sha256"));
        assert!(glob("*", "x"));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
    }
}
