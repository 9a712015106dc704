//! Backups: prove a backup file is whole and restorable, list them, and
//! apply a retention policy. This file is the module's one declaration
//! list; the code lives by concern: checks (the verify report), checksum,
//! compress, formats (pg archives, SQL, SQLite, Redis RDB), restore (the
//! scratch-database restore), listing, retention, tools (the PostgreSQL
//! client programs).

mod checks;
pub(crate) mod checksum;
pub(crate) mod compress;
pub(crate) mod formats;
mod listing;
pub(crate) mod opts;
pub(crate) mod restore;
mod retention;
pub(crate) mod tools;

use crate::registry::{opt, req, ModuleDecl, Primitive, Ty};

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "backup",
    doc: "Backup files: prove one is whole and restorable (checksum, compression, format, a real restore into a scratch database), list them, apply a retention policy.",
    target: None,
    primitives: &[
        Primitive::mutate("verify", checks::plan_verify, checks::verify)
            .params(&[req("path", Ty::Str), opt("opts", Ty::Map)])
            .returns(Ty::Map)
            .doc("Check a backup and return #{path, ok, format, bytes, age_s, mtime, info, checks}, each check as #{check, passed, detail}. Fails the script (like fail()) when a check fails, unless `fail: false`.\n\
                  Checks: exists; size (>= `min_size`, default 1 byte: an empty file fails); age (<= `max_age`, e.g. \"26h\"); checksum (the `FILE.sha256` sidecar or a `SHA256SUMS` file beside it; `checksum: true` requires one, a hex string gives the digest); compression (gzip and zstd streamed to the end); format (detected; `format` names the one expected: pg_custom, pg_directory, pg_tar, sql, sqlite, rdb) and its integrity: PostgreSQL archives are read to the end with pg_restore (database, pg_dump version, creation time, tables, data entries, rows per table), plain SQL dumps need their header and completion footer, SQLite gets PRAGMA integrity_check and its WAL state, Redis RDB files their magic, version and CRC64.\n\
                  `restore: true` with `target` (a pg target name or URL) restores a PostgreSQL dump into a scratch database opsh creates (opsh_verify_...), stops at the first error, compares tables and row counts with the archive, runs `sanity: [#{sql, expect}]`, and drops it. It never restores into a database it did not create. A mutation: --dry-run runs the file checks and says what it would restore; it is audited (target: the path).")
            .example(r#"let r = backup.verify("/backups/app.dump", #{max_age: "26h", min_size: 1024, fail: false}); show(r.checks)"#)
            .unbounded(),
        Primitive::read("list", listing::list)
            .params(&[req("dir", Ty::Str), opt("opts", Ty::Map)])
            .returns(Ty::Rows(&[]))
            .doc("Backups in a directory, newest first: name, path, kind (file or dir), bytes, size, mtime, age_s.\n\
                  `pattern` is a glob on the name (`*`, `?`; default every entry). Checksum sidecars, SQLite -wal/-shm files and hidden files are not backups; a directory counts only when it is a pg_dump directory archive (it has a toc.dat).")
            .example(r#"show(backup.list("/backups", #{pattern: "app-*.dump"}))"#),
        Primitive::read("latest", listing::latest)
            .params(&[req("dir", Ty::Str), opt("opts", Ty::Map)])
            .returns(Ty::OneOf(&[Ty::Map, Ty::Unit]))
            .doc("The newest backup in a directory (the first of backup.list), or () when none matches `pattern`.")
            .example(r#"let b = backup.latest("/backups", #{pattern: "*.dump"}); if b == () { fail("no backup") }"#),
        Primitive::mutate("retention", retention::plan, retention::apply)
            .params(&[req("dir", Ty::Str), opt("opts", Ty::Map)])
            .returns(Ty::Map)
            .doc("Apply a retention policy: keep the newest backup of each of the last `keep_daily` days, `keep_weekly` weeks (Monday to Sunday) and `keep_monthly` months (UTC, by modification time), remove the rest, with their .sha256 sidecars. Returns #{kept, removed, bytes_freed}.\n\
                  `pattern` selects the backups as in backup.list. The newest backup is always kept, and a policy that keeps nothing is refused. A mutation: --dry-run lists what would be removed and deletes nothing; the target shown for confirmation and in the audit log is the directory.")
            .example(r#"backup.retention("/backups", #{pattern: "app-*.dump", keep_daily: 7, keep_weekly: 4, keep_monthly: 6})"#),
    ],
};
