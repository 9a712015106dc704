//! backup.verify: the file checks (exists, size, age, checksum,
//! compression, format and its integrity) as one report, then the
//! optional restore into a scratch database (restore.rs).

use super::compress::{self, Compression};
use super::formats::{self, pgarchive, pgcustom, rdb, sql, sqlite, Format};
use super::opts::{display, human_bytes, human_duration, rfc3339, unix_secs};
use super::{checksum, restore};
use crate::dispatch::{Call, ErrorKind, OpError, Plan};
use crate::registry::{field, opt, req, Field, Primitive, Ty};
use crate::value::map_of;
use rhai::{Array, Dynamic, Map};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

impl Check {
    pub fn new(name: impl Into<String>, r: Result<String, String>) -> Check {
        let (passed, detail) = match r {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        Check {
            name: name.into(),
            passed,
            detail,
        }
    }
}

#[derive(Clone)]
pub enum ChecksumMode {
    /// Verify a sidecar when there is one.
    Auto,
    Required,
    Skip,
    Digest(String),
}

#[derive(Clone)]
pub struct VerifyOpts {
    pub max_age: Option<Duration>,
    pub min_size: u64,
    pub checksum: ChecksumMode,
    pub format: Option<String>,
    pub restore: bool,
    pub target: Option<String>,
    pub sanity: Array,
    pub fail: bool,
    pub scratch_db: Option<String>,
    pub keep: bool,
    /// with restore: a live database to compare row counts with.
    pub compare: Option<String>,
    pub tolerance_pct: f64,
    /// with restore: at least this many rows per table.
    pub min_rows: Map,
    /// with restore: tables the archive may hold no data for.
    pub no_data: Vec<String>,
}

const VERIFY_OPTS: &[Field] = &[
    field("max_age", Ty::Duration).doc("the age check: the file is at most this old, e.g. \"26h\""),
    field("min_size", Ty::Size).doc("the size check: at least this big; default 1 byte (an empty file fails)"),
    field("checksum", Ty::OneOf(&[Ty::Bool, Ty::Str])).doc(
        "true: a sidecar is required; false: not checked; a SHA-256 digest (64 hex digits): the expected one; \
         default: the sidecar is verified when there is one",
    ),
    field("format", Ty::Str)
        .doc("the format expected: pg_custom, pg_directory, pg_tar, sql, sqlite or rdb"),
    field("restore", Ty::Bool).doc("restore a PostgreSQL dump into a scratch database (needs `target`)"),
    field("target", Ty::Str).doc("with restore: the PostgreSQL server (a pg target name or URL)"),
    field("sanity", Ty::List(&Ty::Record(&[
        field("sql", Ty::Str),
        field("expect", Ty::Any)
            .doc("the first column of the first row; an array: every row, as maps"),
        field("name", Ty::Str).doc("the check's name; default the start of the SQL"),
    ])))
    .doc(
        "with restore: #{sql, expect, name} queries run on the restored database, each a check; \
         `expect` is the first column of the first row, or (an array) every row as maps",
    ),
    field("fail", Ty::Bool).doc("fail the script when a check fails; default true"),
    field("scratch_db", Ty::Str)
        .doc("with restore: the scratch database's name (it must start with opsh_verify_ and not exist)"),
    field("keep", Ty::Bool).doc("with restore: keep the scratch database instead of dropping it"),
    field("compare", Ty::Str).doc(
        "with restore: a live database (a pg target name or URL) whose tables' row counts the restored ones must match within `tolerance_pct`; only read",
    ),
    field("tolerance_pct", Ty::Float)
        .doc("with compare: how far a restored table's rows may be from the live count, in percent; default 10"),
    field("min_rows", Ty::Map)
        .doc("with restore: per table (schema.table), the fewest rows the restored table may have, e.g. #{\"public.users\": 1000}"),
    field("no_data", Ty::List(&Ty::Str)).doc(
        "with restore: tables (schema.table) the archive may hold no data for (dumped with --exclude-table-data on purpose)",
    ),
];

fn parse(call: &Call) -> Result<(PathBuf, VerifyOpts), OpError> {
    let path = PathBuf::from(call.str("path")?);
    let o = call.opts("opts")?;
    let checksum = match o.get("checksum") {
        None => ChecksumMode::Auto,
        Some(d) => match d.as_bool() {
            Ok(true) => ChecksumMode::Required,
            Ok(false) => ChecksumMode::Skip,
            Err(_) => {
                let s = d.to_string();
                if s.len() != 64 || !s.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(OpError::bad_input(
                        "option `checksum` must be true, false or a SHA-256 digest (64 hex digits)",
                    ));
                }
                ChecksumMode::Digest(s)
            }
        },
    };
    let format = o.str("format")?;
    if let Some(f) = &format {
        if !formats::NAMES.contains(&f.as_str()) {
            return Err(OpError::bad_input(format!("unknown format `{f}`"))
                .with_hint(format!("one of: {}", formats::NAMES.join(", "))));
        }
    }
    let restore = o.bool("restore")?;
    let target = o.str("target")?;
    let with_restore = ["compare", "tolerance_pct", "min_rows", "no_data"];
    if let Some(k) = with_restore.iter().find(|k| o.contains_key(**k)) {
        if !restore {
            return Err(OpError::bad_input(format!(
                "option `{k}` compares a restored database: it needs `restore: true`"
            )));
        }
    }
    let min_rows = o.map("min_rows")?.unwrap_or_default();
    if let Some((t, v)) = min_rows.iter().find(|(_, v)| !v.is_int()) {
        return Err(OpError::bad_input(format!(
            "min_rows.{t} must be an int (the fewest rows the table may have), got {}",
            crate::value::type_name(v)
        )));
    }
    let tolerance_pct = match o.get("tolerance_pct") {
        None => 10.0,
        Some(d) => d
            .as_float()
            .or_else(|_| d.as_int().map(|i| i as f64))
            .map_err(|_| OpError::bad_input("option `tolerance_pct` must be a number"))?,
    };
    if !(0.0..=100.0).contains(&tolerance_pct) {
        return Err(OpError::bad_input(format!(
            "option `tolerance_pct` must be between 0 and 100, got {tolerance_pct}"
        )));
    }
    if restore && target.is_none() {
        return Err(OpError::bad_input("`restore: true` needs `target`: the PostgreSQL server to restore on (a pg target name or URL)")
            .with_hint("e.g. #{restore: true, target: \"restore-test\"}; opsh creates and drops a scratch database there"));
    }
    Ok((
        path,
        VerifyOpts {
            max_age: o.duration("max_age")?,
            min_size: o.size("min_size")?.unwrap_or(1),
            checksum,
            format,
            restore,
            target,
            sanity: o.array("sanity")?.unwrap_or_default(),
            fail: o.opt_bool("fail")?.unwrap_or(true),
            scratch_db: o.str("scratch_db")?,
            keep: o.bool("keep")?,
            compare: o.str("compare")?,
            tolerance_pct,
            min_rows,
            no_data: o.strings("no_data")?.unwrap_or_default(),
        },
    ))
}

/// Everything found about the file, for the report and for a restore.
pub struct Report {
    pub path: PathBuf,
    pub checks: Vec<Check>,
    pub format: Option<Format>,
    pub compression: Compression,
    pub bytes: u64,
    pub mtime: Option<i64>,
    pub age_s: Option<u64>,
    pub info: Map,
    pub toc: Option<pgarchive::Toc>,
    pub sql: Option<sql::SqlInfo>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    fn push(&mut self, name: &str, r: Result<String, String>) -> bool {
        let c = Check::new(name, r);
        let passed = c.passed;
        self.checks.push(c);
        passed
    }

    pub fn to_dynamic(&self) -> Dynamic {
        let checks: Array = self
            .checks
            .iter()
            .map(|c| {
                Dynamic::from_map(map_of([
                    ("check", c.name.clone().into()),
                    ("passed", Dynamic::from_bool(c.passed)),
                    ("detail", c.detail.clone().into()),
                ]))
            })
            .collect();
        let opt_int = |v: Option<i64>| v.map(Dynamic::from_int).unwrap_or(Dynamic::UNIT);
        Dynamic::from_map(map_of([
            ("path", display(&self.path).into()),
            ("ok", Dynamic::from_bool(self.ok())),
            (
                "format",
                self.format
                    .as_ref()
                    .map(|f| Dynamic::from(f.name().to_string()))
                    .unwrap_or(Dynamic::UNIT),
            ),
            ("compression", self.compression.name().into()),
            ("bytes", Dynamic::from_int(self.bytes as i64)),
            ("size", human_bytes(self.bytes).into()),
            (
                "mtime",
                self.mtime
                    .map(|t| rfc3339(t).into())
                    .unwrap_or(Dynamic::UNIT),
            ),
            ("age_s", opt_int(self.age_s.map(|a| a as i64))),
            ("info", Dynamic::from_map(self.info.clone())),
            ("checks", Dynamic::from_array(checks)),
        ]))
    }

    pub fn failure(&self) -> OpError {
        let failed: Vec<String> = self
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        OpError::new(
            ErrorKind::CheckFailed,
            format!(
                "backup {} failed {} of {} checks: {}",
                self.path.display(),
                failed.len(),
                self.checks.len(),
                failed.join("; ")
            ),
        )
    }
}

fn dir_bytes(p: &Path) -> (u64, usize) {
    std::fs::read_dir(p)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok().filter(|m| m.is_file()))
        .fold((0, 0), |(b, n), m| (b + m.len(), n + 1))
}

fn read_head(path: &Path, n: usize) -> std::io::Result<Vec<u8>> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = Vec::with_capacity(n);
    f.by_ref().take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The checks that read only the file. Blocking: run off the runtime.
pub fn file_checks(path: &Path, o: &VerifyOpts) -> Report {
    let mut r = Report {
        path: path.to_path_buf(),
        checks: Vec::new(),
        format: None,
        compression: Compression::None,
        bytes: 0,
        mtime: None,
        age_s: None,
        info: Map::new(),
        toc: None,
        sql: None,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            r.push("exists", Err(format!("{}: {e}", path.display())));
            return r;
        }
    };
    let is_dir = meta.is_dir();
    let (bytes, files) = if is_dir {
        dir_bytes(path)
    } else {
        (meta.len(), 1)
    };
    r.bytes = bytes;
    if let Ok(m) = meta.modified() {
        r.mtime = Some(unix_secs(m));
        r.age_s = Some(super::opts::age_secs(m));
    }
    let when = r.mtime.map(rfc3339).unwrap_or_else(|| "?".into());
    r.push(
        "exists",
        Ok(if is_dir {
            format!("directory with {files} files, {bytes} bytes, modified {when}")
        } else {
            format!("file of {bytes} bytes, modified {when}")
        }),
    );
    r.push(
        "size",
        if bytes == 0 {
            Err("empty: 0 bytes".into())
        } else if bytes < o.min_size {
            Err(format!(
                "{bytes} bytes ({}), below min_size {} ({})",
                human_bytes(bytes),
                o.min_size,
                human_bytes(o.min_size)
            ))
        } else {
            Ok(format!(
                "{bytes} bytes ({}) >= min_size {}",
                human_bytes(bytes),
                o.min_size
            ))
        },
    );
    if let (Some(max), Some(age)) = (o.max_age, r.age_s) {
        let msg = format!("modified {} ago ({when})", human_duration(age));
        r.push(
            "age",
            if age <= max.as_secs() {
                Ok(format!(
                    "{msg}, within max_age {}",
                    human_duration(max.as_secs())
                ))
            } else {
                Err(format!(
                    "{msg}, older than max_age {}",
                    human_duration(max.as_secs())
                ))
            },
        );
    }
    checksum_check(&mut r, path, o);
    if bytes == 0 {
        return r;
    }
    if is_dir {
        let f = formats::detect_dir(path);
        if f == Format::PgDirectory {
            dir_compression(&mut r, path);
        }
        format_checks(&mut r, path, f, o);
        return r;
    }
    let head = match read_head(path, 512) {
        Ok(h) => h,
        Err(e) => {
            r.push(
                "format",
                Err(format!("cannot read {}: {e}", path.display())),
            );
            return r;
        }
    };
    r.compression = Compression::detect(&head);
    if r.compression == Compression::None {
        let f = formats::detect(&head);
        format_checks(&mut r, path, f, o);
    } else {
        compressed(&mut r, path, o);
    }
    r
}

fn checksum_check(r: &mut Report, path: &Path, o: &VerifyOpts) {
    let res = match &o.checksum {
        ChecksumMode::Skip => return,
        ChecksumMode::Digest(d) if path.is_dir() => {
            let _ = d;
            Err("a digest cannot be given for a directory archive: use its DIR.sha256 sidecar".into())
        }
        ChecksumMode::Digest(d) => checksum::verify_digest(path, d),
        mode => match checksum::find(path) {
            Some(exp) => checksum::verify(path, &exp),
            None if matches!(mode, ChecksumMode::Required) => Err(format!(
                "no checksum sidecar ({}.sha256 or a SHA256SUMS entry) and `checksum: true` requires one",
                path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
            )),
            None => Ok("no checksum sidecar (FILE.sha256 or SHA256SUMS): not verified".into()),
        },
    };
    r.push("checksum", res);
}

/// Every .gz member of a directory archive, named when one is damaged.
fn dir_compression(r: &mut Report, dir: &Path) {
    let files = checksum::dir_files(dir).unwrap_or_default();
    let mut total = 0u64;
    let mut n = 0;
    for f in files.iter().filter(|f| f.ends_with(".gz")) {
        let p = dir.join(f);
        let res = compress::open(&p, Compression::Gzip)
            .map_err(|e| (0, e))
            .and_then(|mut rd| compress::drain(&mut rd));
        match res {
            Ok(b) => {
                total += b;
                n += 1;
            }
            Err((at, e)) => {
                r.push(
                    "compression",
                    Err(format!(
                        "{f}: {}",
                        compress::describe(Compression::Gzip, at, &e)
                    )),
                );
                return;
            }
        }
    }
    if n > 0 {
        r.compression = Compression::Gzip;
        r.push(
            "compression",
            Ok(format!(
                "{n} gzip data files streamed to the end ({total} bytes), CRC-32 ok"
            )),
        );
    }
}

/// A gzip/zstd file: stream it to the end; a plain SQL dump inside is
/// checked in the same pass.
fn compressed(r: &mut Report, path: &Path, o: &VerifyOpts) {
    let c = r.compression;
    let mut rd = match compress::open(path, c) {
        Ok(rd) => rd,
        Err(e) => {
            r.push("compression", Err(format!("cannot read: {e}")));
            return;
        }
    };
    let mut head = Vec::new();
    if let Err(e) = rd.by_ref().take(512).read_to_end(&mut head) {
        let at = rd.count;
        r.push("compression", Err(compress::describe(c, at, &e)));
        return;
    }
    let inner = formats::detect(&head);
    let ok_detail = |n: u64| {
        format!(
            "{} stream read to the end: {n} bytes decompressed, {} ok",
            c.name(),
            if c == Compression::Gzip {
                "CRC-32"
            } else {
                "checksums"
            }
        )
    };
    if inner == Format::Sql {
        let mut chained = BufReader::new(std::io::Cursor::new(head).chain(&mut rd));
        let scanned = sql::scan(&mut chained);
        drop(chained);
        match scanned {
            Ok(info) => {
                r.push("compression", Ok(ok_detail(rd.count)));
                if expect_format(r, &inner, o) {
                    sql_info(r, info);
                }
            }
            Err(e) => {
                r.push("compression", Err(compress::describe(c, rd.count, &e)));
            }
        }
        return;
    }
    match compress::drain(&mut rd) {
        Ok(n) => r.push("compression", Ok(ok_detail(n))),
        Err((at, e)) => r.push("compression", Err(compress::describe(c, at, &e))),
    };
    if expect_format(r, &inner, o) {
        r.info.insert(
            "note".into(),
            format!(
                "{} inside {}: decompress it to check the format itself",
                inner.describe(),
                c.name()
            )
            .into(),
        );
    }
}

/// The format check; false when the format is wrong or unknown.
fn expect_format(r: &mut Report, found: &Format, o: &VerifyOpts) -> bool {
    r.format = Some(found.clone());
    let inside = if r.compression == Compression::None || *found == Format::PgDirectory {
        String::new()
    } else {
        format!(" inside {}", r.compression.name())
    };
    let known = formats::NAMES.contains(&found.name());
    let res = match &o.format {
        Some(want) if want != found.name() => Err(format!(
            "wrong format: expected {want}, found {}{inside}",
            found.describe()
        )),
        _ if !known => Err(format!("unrecognised format: {}", found.describe())),
        _ => Ok(format!("{}{inside}", found.describe())),
    };
    r.push("format", res)
}

fn format_checks(r: &mut Report, path: &Path, f: Format, o: &VerifyOpts) {
    if !expect_format(r, &f, o) {
        return;
    }
    match f {
        Format::PgCustom => pg_custom(r, path),
        Format::PgDirectory | Format::PgTar => pg_archive(r, path),
        Format::Sql => {
            let res = std::fs::File::open(path)
                .and_then(|fh| sql::scan(&mut BufReader::with_capacity(1 << 16, fh)));
            match res {
                Ok(info) => sql_info(r, info),
                Err(e) => {
                    r.push("sql_dump", Err(format!("reading failed: {e}")));
                }
            }
        }
        Format::Sqlite => sqlite_checks(r, path),
        Format::Rdb => {
            let res = rdb::read(path).map_err(|e| format!("reading failed: {e}"));
            let res = res.and_then(|info| {
                r.info
                    .insert("rdb_version".into(), Dynamic::from_int(info.version as i64));
                info.judge()
            });
            r.push("rdb", res);
        }
        _ => {}
    }
}

/// A custom-format archive is read natively (formats/pgcustom.rs): the
/// header, the TOC and every data block, without pg_restore.
fn pg_custom(r: &mut Report, path: &Path) {
    match pgcustom::read(path) {
        Ok(Some(scan)) => {
            toc_info(r, &scan.toc);
            table_rows(r, &scan.data);
            r.info
                .insert("data_blocks".into(), Dynamic::from_int(scan.blocks as i64));
            r.info.insert(
                "large_objects".into(),
                Dynamic::from_int(scan.large_objects as i64),
            );
            r.push("archive", Ok(scan.toc.summary(&scan.data)));
            r.sql = Some(scan.data);
            r.toc = Some(scan.toc);
        }
        // lz4 data blocks: pg_restore reads them.
        Ok(None) => pg_archive(r, path),
        Err(e) => {
            r.push("archive", Err(e));
        }
    }
}

fn toc_info(r: &mut Report, toc: &pgarchive::Toc) {
    let s = |v: &Option<String>| v.clone().map(Dynamic::from).unwrap_or(Dynamic::UNIT);
    r.info.insert("database".into(), s(&toc.dbname));
    r.info
        .insert("pg_dump_version".into(), s(&toc.dump_version));
    r.info
        .insert("server_version".into(), s(&toc.server_version));
    r.info.insert("created".into(), s(&toc.created));
    r.info
        .insert("archive_compression".into(), s(&toc.compression));
    r.info
        .insert("toc_entries".into(), Dynamic::from_int(toc.entries as i64));
    r.info
        .insert("tables".into(), Dynamic::from_int(toc.tables.len() as i64));
    r.info.insert(
        "data_entries".into(),
        Dynamic::from_int(toc.data.len() as i64),
    );
}

fn pg_archive(r: &mut Report, path: &Path) {
    let toc = match pgarchive::list(path) {
        Ok(t) => t,
        Err(e) => {
            r.push("archive", Err(e));
            return;
        }
    };
    toc_info(r, &toc);
    match pgarchive::read_data(path) {
        Ok(data) => {
            table_rows(r, &data);
            let res = match data.judge() {
                Ok(_) => Ok(toc.summary(&data)),
                Err(e) => Err(format!("pg_restore's script of the archive: {e}")),
            };
            r.push("archive", res);
            r.sql = Some(data);
        }
        Err(e) => {
            r.push("archive", Err(e));
        }
    }
    r.toc = Some(toc);
}

fn table_rows(r: &mut Report, info: &sql::SqlInfo) {
    let m: Map = info
        .copies
        .iter()
        .map(|(t, n)| (t.as_str().into(), Dynamic::from_int(*n as i64)))
        .collect();
    r.info
        .insert("rows".into(), Dynamic::from_int(info.rows() as i64));
    r.info.insert("table_rows".into(), Dynamic::from_map(m));
}

fn sql_info(r: &mut Report, info: sql::SqlInfo) {
    let s = |v: &Option<String>| v.clone().map(Dynamic::from).unwrap_or(Dynamic::UNIT);
    r.info
        .insert("pg_dump_version".into(), s(&info.dump_version));
    r.info
        .insert("server_version".into(), s(&info.server_version));
    r.info
        .insert("tables".into(), Dynamic::from_int(info.tables.len() as i64));
    table_rows(r, &info);
    r.push("sql_dump", info.judge());
    r.sql = Some(info);
}

fn sqlite_checks(r: &mut Report, path: &Path) {
    let head = read_head(path, 100).unwrap_or_default();
    let Some(h) = sqlite::header(&head) else {
        r.push(
            "sqlite_header",
            Err("the 100-byte SQLite header is incomplete".into()),
        );
        return;
    };
    r.info
        .insert("page_size".into(), Dynamic::from_int(h.page_size as i64));
    r.info
        .insert("pages".into(), Dynamic::from_int(h.pages as i64));
    r.info.insert(
        "journal_mode".into(),
        (if h.wal_mode { "wal" } else { "rollback" }).into(),
    );
    if !r.push("sqlite_header", sqlite::judge_size(&h, r.bytes)) {
        return;
    }
    r.push("sqlite_integrity", sqlite::integrity_check(path));
    r.push("sqlite_wal", sqlite::wal_state(path, &h));
}

/// The file checks off the runtime's threads, so Ctrl-C still ends the
/// call at once while a large file is being read.
fn run_file_checks(call: &Call, path: &Path, o: &VerifyOpts) -> Result<Report, OpError> {
    let (p, oo) = (path.to_path_buf(), o.clone());
    call.block_on(async move {
        tokio::task::spawn_blocking(move || file_checks(&p, &oo))
            .await
            .map_err(|e| OpError::failed("the backup checks stopped unexpectedly").with_cause(e))
    })
}

/// The report `Report::to_dynamic` makes.
const REPORT: Ty = Ty::Record(&[
    field("path", Ty::Str),
    field("ok", Ty::Bool).doc("every check passed"),
    field("format", Ty::Str).doc(
        "pg_custom, pg_directory, pg_tar, sql, sqlite, rdb, or tar, empty, unknown; \
         () when the file could not be read",
    ),
    field("compression", Ty::Str).doc("none, gzip or zstd"),
    field("bytes", Ty::Int).doc("a directory archive: the sum of its files"),
    field("size", Ty::Str).doc("bytes, human-readable (\"1.5 KiB\")"),
    field("mtime", Ty::Str).doc("modification time, RFC 3339, UTC; () when the file is missing"),
    field("age_s", Ty::Int).doc("seconds since the modification time; () when the file is missing"),
    field("info", Ty::Record(INFO))
        .doc("what the format check read; each key only for the formats it names"),
    field("checks", Ty::Rows(CHECK)),
]);

const CHECK: &[Field] = &[
    field("check", Ty::Str).doc("exists, size, age, checksum, compression, format, archive, sql_dump, sqlite_*, rdb, restore, restore_tables, restore_rows, restore_data, min_rows: TABLE, compare, sanity: NAME, cleanup"),
    field("passed", Ty::Bool),
    field("detail", Ty::Str).doc("what was found, or why it failed"),
];

const INFO: &[Field] = &[
    field("database", Ty::Str).doc("PostgreSQL archive: the database dumped"),
    field("pg_dump_version", Ty::Str).doc("PostgreSQL archive or SQL dump"),
    field("server_version", Ty::Str).doc("PostgreSQL archive or SQL dump: the server dumped"),
    field("created", Ty::Str).doc("PostgreSQL archive: when pg_dump wrote it"),
    field("archive_compression", Ty::Str).doc("PostgreSQL archive: its own compression"),
    field("toc_entries", Ty::Int).doc("PostgreSQL archive"),
    field("tables", Ty::Int).doc("PostgreSQL archive or SQL dump"),
    field("data_entries", Ty::Int).doc("PostgreSQL archive: table data entries"),
    field("rows", Ty::Int).doc("PostgreSQL archive or SQL dump: rows in its COPY data"),
    field("table_rows", Ty::Map)
        .doc("PostgreSQL archive or SQL dump: rows per table, by schema.table"),
    field("rdb_version", Ty::Int).doc("Redis RDB"),
    field("page_size", Ty::Int).doc("SQLite"),
    field("pages", Ty::Int).doc("SQLite"),
    field("journal_mode", Ty::Str).doc("SQLite: wal or rollback"),
    field("note", Ty::Str).doc("a compressed file whose inner format is not checked: why"),
    field("scratch_db", Ty::Str).doc("with restore: the scratch database's name"),
    field("restored_rows", Ty::Map).doc("with restore: rows per table in the scratch database"),
];

pub fn plan_verify(call: &mut Call) -> Result<Plan, OpError> {
    let (path, o) = parse(call)?;
    let mut r = run_file_checks(call, &path, &o)?;
    if o.fail && !r.ok() {
        return Err(r.failure());
    }
    let summary = if o.restore {
        let target = o.target.clone().unwrap_or_default();
        let t = call
            .session
            .resolve(crate::config::Kind::Pg, Some(&target))?;
        r.info.insert("restore_target".into(), t.display().into());
        let compare = match &o.compare {
            Some(c) => format!(
                " and with the live database {}",
                call.session
                    .resolve(crate::config::Kind::Pg, Some(c))?
                    .display()
            ),
            None => String::new(),
        };
        format!(
            "{} checks passed; would restore {} into a new scratch database on {}{}, compare it with the archive{compare} and drop it",
            r.checks.iter().filter(|c| c.passed).count(),
            path.display(),
            t.display(),
            if t.protected {
                " (a protected target: the real run asks for confirmation)"
            } else {
                ""
            }
        )
    } else {
        format!(
            "{} of {} checks passed for {}",
            r.checks.iter().filter(|c| c.passed).count(),
            r.checks.len(),
            path.display()
        )
    };
    let details = r.to_dynamic().try_cast::<Map>().unwrap_or_default();
    Ok(Plan { summary, details })
}

pub const VERIFY: Primitive = Primitive::mutate("verify", plan_verify, verify)
    .params(&[req("path", Ty::Str), opt("opts", Ty::Record(VERIFY_OPTS))])
    .returns(REPORT)
    .doc("Check a backup and return a report with one row per check. Fails the script (like fail()) when a check fails, unless `fail: false`.\n\
          Checks: exists; size (>= `min_size`, default 1 byte: an empty file fails); age (<= `max_age`, e.g. \"26h\"); checksum (the `FILE.sha256` sidecar or a `SHA256SUMS` file beside it; `checksum: true` requires one, a hex string gives the digest); compression (gzip and zstd streamed to the end); format (detected; `format` names the one expected: pg_custom, pg_directory, pg_tar, sql, sqlite, rdb) and its integrity: PostgreSQL archives are read to the end (database, pg_dump version, creation time, tables, data entries, rows per table): custom-format archives natively (header, TOC, every data block inflated and its COPY rows counted), directory and tar archives (and lz4-compressed custom ones) with pg_restore, plain SQL dumps need their header and completion footer, SQLite gets PRAGMA integrity_check and its WAL state, Redis RDB files their magic, version and CRC64.\n\
          `restore: true` with `target` (a pg target name or URL) restores a PostgreSQL dump into a scratch database opsh creates (opsh_verify_...), stops at the first error, compares tables and row counts with the archive, reports tables the archive holds no data for (`no_data` lists the expected ones), checks `min_rows` per table, compares row counts with a live database (`compare`, within `tolerance_pct`), runs `sanity: [#{sql, expect}]`, and drops it. It never restores into a database it did not create. A dump alone cannot prove it is complete (a table emptied before the dump restores cleanly): `compare` and `min_rows` check it against what should be there. A mutation: --dry-run runs the file checks and says what it would restore; on a protected restore target it asks for confirmation; it is audited (target: the path).")
    .example(r#"let r = backup.verify("/backups/app.dump", #{max_age: "26h", min_size: 1024, fail: false}); show(r.checks)"#)
    .unbounded();

pub fn verify(call: &mut Call) -> Result<Dynamic, OpError> {
    let (path, o) = parse(call)?;
    let mut r = run_file_checks(call, &path, &o)?;
    if o.restore {
        restore::verify_restore(call, &o, &mut r)?;
    } else {
        // Reading a file changes nothing; only the scratch restore does.
        call.changed_nothing();
    }
    if o.fail && !r.ok() {
        return Err(r.failure());
    }
    Ok(r.to_dynamic())
}
