//! pg.dump and pg.restore: pg_dump and pg_restore (psql for plain SQL)
//! from the PostgreSQL bin directory, the password only in the child's
//! PGPASSWORD. Both are mutations: a dump writes files, a restore writes a
//! database; their plans read the server and the archive and change nothing.

use super::conn::one;
use crate::dispatch::{Call, OpError, Plan};
use crate::modules::backup::compress::Compression;
use crate::modules::backup::formats::{self, pgarchive, sql, Format};
use crate::modules::backup::opts::human_bytes;
use crate::modules::backup::tools::{self, Conn};
use crate::modules::backup::{checksum, restore};
use crate::registry::{field, opt, req, Primitive, Ty, STRINGS};
use crate::value::map_of;
use rhai::{Array, Dynamic, Map};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

struct DumpReq {
    path: PathBuf,
    format: &'static str,
    schemas: Vec<String>,
    jobs: Option<i64>,
    overwrite: bool,
}

fn dump_req(call: &Call) -> Result<DumpReq, OpError> {
    let path = PathBuf::from(call.str("path")?);
    let o = call.opts("opts")?;
    let format = match o.str("format")?.as_deref() {
        None | Some("custom") => "custom",
        Some("directory") => "directory",
        Some("tar") => "tar",
        Some("plain") => "plain",
        Some(other) => {
            return Err(OpError::bad_input(format!("unknown dump format `{other}`"))
                .with_hint("one of: custom (default), directory, tar, plain"))
        }
    };
    let jobs = o.int("jobs")?;
    if jobs.is_some() && format != "directory" {
        return Err(OpError::bad_input("`jobs` needs format: \"directory\" (pg_dump dumps in parallel only into a directory archive)"));
    }
    if jobs.is_some_and(|j| !(1..=64).contains(&j)) {
        return Err(OpError::bad_input("`jobs` must be between 1 and 64"));
    }
    let overwrite = o.bool("overwrite")?;
    if path.exists() && !overwrite {
        return Err(
            OpError::bad_input(format!("{} already exists", path.display()))
                .with_hint("choose a new name (e.g. with the date in it), or pass overwrite: true"),
        );
    }
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(d) if !d.is_dir() => {
            return Err(OpError::bad_input(format!(
                "the directory {} does not exist",
                d.display()
            )))
        }
        _ => {}
    }
    Ok(DumpReq {
        path,
        format,
        schemas: o.strings("schema")?.unwrap_or_default(),
        jobs,
        overwrite,
    })
}

fn source(call: &mut Call, schemas: &[String]) -> Result<Map, OpError> {
    let schemas: Array = schemas.iter().map(|s| Dynamic::from(s.clone())).collect();
    let all = schemas.is_empty();
    one(
        call,
        "select current_database() as database, pg_database_size(current_database()) as bytes,
                pg_size_pretty(pg_database_size(current_database())) as size,
                (select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
                  where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema')
                    and n.nspname not like 'pg_toast%' and ($2 or n.nspname = any($1::text[])))::int8 as tables",
        &vec![Dynamic::from_array(schemas), Dynamic::from_bool(all)],
        "reading the database to dump failed",
    )
}

fn g(m: &Map, k: &str) -> Dynamic {
    m.get(k).cloned().unwrap_or(Dynamic::UNIT)
}

pub const DUMP: Primitive = Primitive::mutate("dump", plan_dump, dump)
    .params(&[
        req("target", Ty::Str).target(),
        req("path", Ty::Str),
        opt(
            "opts",
            Ty::Record(&[
                field("format", Ty::Str).doc("\"custom\" (default), \"directory\", \"tar\" or \"plain\""),
                field("schema", STRINGS).doc("dump only these schemas (seed runbooks back up per schema)"),
                field("jobs", Ty::Int).doc("parallel dump, 1 to 64 (directory format only)"),
                field("overwrite", Ty::Bool).doc("replace an existing path (refused otherwise)"),
            ]),
        ),
    ])
    .returns(Ty::Record(&[
        field("path", Ty::Str),
        field("format", Ty::Str),
        field("database", Ty::Str),
        field("tables", Ty::Int),
        field("bytes", Ty::Int),
        field("size", Ty::Str),
        field("duration_ms", Ty::Int),
        field("sha256", Ty::Str).doc("of the file; () for a directory archive"),
        field("sidecar", Ty::Str).doc("the PATH.sha256 file written beside it"),
    ]))
    .doc("pg_dump a target's database to `path` and write the `PATH.sha256` sidecar.\n\
          pg_dump comes from the PostgreSQL bin directory (OPSH_PG_BINDIR, the newest /usr/lib/postgresql/N/bin, or PATH); the password reaches it only through PGPASSWORD. A failed dump leaves no partial file.\n\
          A mutation (it writes files): --dry-run says what it would write, from the database's real size and tables; it is audited; on a protected target it asks first. No per-call timeout: a dump takes as long as it takes (the run timeout and Ctrl-C still end it).")
    .example(r#"let d = pg.dump("staging", "/backups/app.dump", #{format: "custom"}); print(`${d.size} in ${d.duration_ms} ms`)"#)
    .unbounded();

fn plan_dump(call: &mut Call) -> Result<Plan, OpError> {
    let r = dump_req(call)?;
    let src = source(call, &r.schemas)?;
    let scope = if r.schemas.is_empty() {
        String::new()
    } else {
        format!(" (schemas {})", r.schemas.join(", "))
    };
    let mut details = src.clone();
    details.insert("path".into(), r.path.display().to_string().into());
    details.insert("format".into(), r.format.into());
    details.insert(
        "sidecar".into(),
        format!("{}.sha256", r.path.display()).into(),
    );
    Ok(Plan {
        summary: format!(
            "would write a {} dump of database {}{scope}, {} tables, {}, to {} and its .sha256 sidecar{}",
            r.format,
            g(&src, "database"),
            g(&src, "tables"),
            g(&src, "size"),
            r.path.display(),
            if r.overwrite && r.path.exists() { ", replacing the existing one" } else { "" }
        ),
        details,
    })
}

fn remove_path(p: &Path) {
    if p.is_dir() {
        let _ = std::fs::remove_dir_all(p);
    } else {
        let _ = std::fs::remove_file(p);
    }
}

fn total_bytes(p: &Path) -> u64 {
    if p.is_dir() {
        std::fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    } else {
        std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
    }
}

fn dump(call: &mut Call) -> Result<Dynamic, OpError> {
    let r = dump_req(call)?;
    let src = source(call, &r.schemas)?;
    let t = call.target()?;
    let conn = Conn::new(&t.url, None)?;
    if r.overwrite {
        remove_path(&r.path);
    }
    let mut cmd = tokio::process::Command::new(tools::pg_program("pg_dump")?);
    cmd.arg(format!("--format={}", r.format))
        .arg("--file")
        .arg(&r.path);
    for s in &r.schemas {
        cmd.arg(format!("--schema={s}"));
    }
    if let Some(j) = r.jobs {
        cmd.arg(format!("--jobs={j}"));
    }
    conn.apply(&mut cmd);
    let started = Instant::now();
    let label = format!("pg_dump of {}", t.name);
    let done = match tools::run_watching(call, cmd, "pg_dump", &label, Some(&r.path)) {
        Ok(d) => d,
        Err(e) => {
            remove_path(&r.path);
            return Err(e);
        }
    };
    let ms = started.elapsed().as_millis() as i64;
    if !done.ok {
        // A partial dump must not pass for a backup.
        remove_path(&r.path);
        return Err(OpError::failed(format!("pg_dump of {} failed", t.display()))
            .with_cause(tools::tail(&done.stderr, 3))
            .with_hint("the partial output was removed; check the role may read every table of the dump"));
    }
    let (side, digest) = checksum::write_sidecar(&r.path).map_err(|e| {
        OpError::failed(format!(
            "the dump was written but its .sha256 sidecar was not ({})",
            r.path.display()
        ))
        .with_cause(e)
    })?;
    let bytes = total_bytes(&r.path);
    Ok(Dynamic::from_map(map_of([
        ("path", r.path.display().to_string().into()),
        ("format", r.format.into()),
        ("database", g(&src, "database")),
        ("tables", g(&src, "tables")),
        ("bytes", Dynamic::from_int(bytes as i64)),
        ("size", human_bytes(bytes).into()),
        ("duration_ms", Dynamic::from_int(ms)),
        ("sha256", digest.map(Dynamic::from).unwrap_or(Dynamic::UNIT)),
        ("sidecar", side.display().to_string().into()),
    ])))
}

/// What a restore would bring: the dump's format, compression, TOC.
struct Dump {
    path: PathBuf,
    format: Format,
    compression: Compression,
    tables: Vec<String>,
    entries: usize,
    describe: String,
}

fn inspect(path: &Path) -> Result<Dump, OpError> {
    let bad = |msg: String| OpError::bad_input(msg);
    let meta = std::fs::metadata(path)
        .map_err(|e| OpError::bad_input(format!("cannot read {}", path.display())).with_cause(e))?;
    let (format, compression) = if meta.is_dir() {
        (formats::detect_dir(path), Compression::None)
    } else {
        let mut head = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(512).read_to_end(&mut head))
            .map_err(|e| {
                OpError::failed(format!("cannot read {}", path.display())).with_cause(e)
            })?;
        let c = Compression::detect(&head);
        if c == Compression::None {
            (formats::detect(&head), c)
        } else {
            let mut inner = Vec::new();
            crate::modules::backup::compress::open(path, c)
                .and_then(|r| r.take(512).read_to_end(&mut inner))
                .map_err(|e| {
                    OpError::failed(format!("cannot decompress {}", path.display())).with_cause(e)
                })?;
            (formats::detect(&inner), c)
        }
    };
    if format.is_pg_archive() && compression == Compression::None {
        let toc = pgarchive::list(path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
        return Ok(Dump {
            path: path.to_path_buf(),
            describe: format!(
                "{} of database {} made {} by pg_dump {}",
                format.describe(),
                toc.dbname.as_deref().unwrap_or("?"),
                toc.created.as_deref().unwrap_or("?"),
                toc.dump_version.as_deref().unwrap_or("?")
            ),
            format,
            compression,
            tables: toc.tables,
            entries: toc.entries,
        });
    }
    if format == Format::Sql {
        let info = crate::modules::backup::compress::open(path, compression)
            .and_then(|r| sql::scan(&mut std::io::BufReader::new(r)))
            .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
        if info.switches_database {
            return Err(bad(format!("{} switches database (\\connect or CREATE DATABASE): pg.restore restores into the one database it is given", path.display()))
                .with_hint("dump without --create, or run it with psql yourself"));
        }
        info.judge().map_err(|e| {
            bad(format!("{}: {e}", path.display())).with_hint("check it with backup.verify first")
        })?;
        return Ok(Dump {
            path: path.to_path_buf(),
            describe: format!(
                "a plain SQL dump{} by pg_dump {}",
                if compression == Compression::None {
                    String::new()
                } else {
                    format!(" ({})", compression.name())
                },
                info.dump_version.as_deref().unwrap_or("?")
            ),
            format,
            compression,
            tables: info.tables,
            entries: info.lines as usize,
        });
    }
    Err(bad(format!(
        "{} is {}{}: pg.restore takes pg_dump archives (custom, directory, tar) and plain SQL dumps",
        path.display(),
        format.describe(),
        if compression == Compression::None { String::new() } else { format!(" inside {}", compression.name()) }
    )))
}

struct RestoreReq {
    dump: Dump,
    database: Option<String>,
    extra: Vec<String>,
    keep_owners: bool,
    clean: bool,
}

fn restore_req(call: &Call) -> Result<RestoreReq, OpError> {
    let path = PathBuf::from(call.str("path")?);
    let o = call.opts("opts")?;
    let dump = inspect(&path)?;
    let archive = dump.format.is_pg_archive();
    let mut extra = Vec::new();
    let clean = o.bool("clean")?;
    let only_archive = |k: &str| {
        OpError::bad_input(format!(
            "option `{k}` works only for pg_dump archives, not plain SQL dumps"
        ))
    };
    if clean {
        if !archive {
            return Err(only_archive("clean"));
        }
        extra.extend(["--clean".to_string(), "--if-exists".to_string()]);
    }
    if let Some(j) = o.int("jobs")? {
        if !archive {
            return Err(only_archive("jobs"));
        }
        extra.push(format!("--jobs={j}"));
    }
    for s in o.strings("schema")?.unwrap_or_default() {
        if !archive {
            return Err(only_archive("schema"));
        }
        extra.push(format!("--schema={s}"));
    }
    if o.bool("data_only")? {
        if !archive {
            return Err(only_archive("data_only"));
        }
        extra.push("--data-only".into());
    }
    if o.bool("single_transaction")? {
        extra.push("--single-transaction".into());
    }
    Ok(RestoreReq {
        dump,
        database: o.str("database")?,
        extra,
        keep_owners: o.bool("owners")?,
        clean,
    })
}

pub const RESTORE: Primitive = Primitive::mutate("restore", plan_restore, restore)
    .params(&[
        req("path", Ty::Str),
        req("target", Ty::Str).target(),
        opt(
            "opts",
            Ty::Record(&[
                field("database", Ty::Str).doc("default: the target's"),
                field("clean", Ty::Bool).doc("drop existing objects first (archives only)"),
                field("jobs", Ty::Int).doc("parallel restore (archives only)"),
                field("schema", STRINGS).doc("restore only these schemas (archives only)"),
                field("data_only", Ty::Bool).doc("archives only"),
                field("single_transaction", Ty::Bool).doc("all or nothing"),
                field("owners", Ty::Bool).doc("keep ownership and grants; by default --no-owner --no-acl"),
            ]),
        ),
    ])
    .returns(Ty::Record(&[
        field("path", Ty::Str),
        field("format", Ty::Str),
        field("database", Ty::Str),
        field("tables", Ty::Int).doc("tables in the dump"),
        field("duration_ms", Ty::Int),
    ]))
    .doc("Restore a dump into an existing database on a target: pg_restore --exit-on-error for archives, psql ON_ERROR_STOP for plain SQL (gzip/zstd too); stops at the first error.\n\
          A dump that switches database (\\connect, pg_dump --create) is refused.\n\
          A guarded mutation: --dry-run reads the archive's table of contents and the database and says what would be restored where and which tables exist already; confirmation on protected targets; audited. No per-call timeout.")
    .example(r#"pg.restore("/backups/app.dump", "staging", #{database: "app_restored", clean: true})"#)
    .unbounded();

fn plan_restore(call: &mut Call) -> Result<Plan, OpError> {
    let r = restore_req(call)?;
    let t = call.target()?;
    let names: Array = r
        .dump
        .tables
        .iter()
        .map(|s| Dynamic::from(s.clone()))
        .collect();
    let db = match &r.database {
        Some(d) => d.clone(),
        None => Conn::new(&t.url, None)?.database,
    };
    let state = one(
        call,
        "select current_database() as current,
                (select count(*) from pg_database where datname = $2)::int8 as exists,
                (select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
                  where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema')
                    and n.nspname not like 'pg_toast%')::int8 as tables,
                (select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
                  where c.relkind in ('r', 'p') and format('%s.%s', n.nspname, c.relname) = any($1::text[]))::int8 as conflicts",
        &vec![Dynamic::from_array(names), Dynamic::from(db.clone())],
        "reading the database to restore into failed",
    )?;
    let exists = state
        .get("exists")
        .and_then(|v| v.as_int().ok())
        .unwrap_or(0)
        > 0;
    if !exists {
        return Err(OpError::bad_input(format!("the database {db} does not exist on {}", t.display()))
            .with_hint("create it first (pg.exec(\"create database ...\")); pg.restore does not create databases"));
    }
    let same_db = state.get("current").map(|v| v.to_string()) == Some(db.clone());
    let now = if same_db {
        let conflicts = g(&state, "conflicts").as_int().unwrap_or(0);
        format!(
            "; it has {} tables now{}",
            g(&state, "tables"),
            if conflicts > 0 {
                format!(
                    ", {conflicts} of them in the archive too ({})",
                    if r.clean {
                        "clean: true drops them first"
                    } else {
                        "the restore stops at the first conflict unless clean: true"
                    }
                )
            } else {
                String::new()
            }
        )
    } else {
        String::new()
    };
    Ok(Plan {
        summary: format!(
            "would restore {} tables ({} entries) from {} ({}) into database {db} on {}{now}",
            r.dump.tables.len(),
            r.dump.entries,
            r.dump.path.display(),
            r.dump.describe,
            t.display()
        ),
        details: map_of([
            ("path", r.dump.path.display().to_string().into()),
            ("format", r.dump.format.name().into()),
            ("database", db.into()),
            (
                "tables",
                Dynamic::from_array(
                    r.dump
                        .tables
                        .iter()
                        .map(|s| Dynamic::from(s.clone()))
                        .collect(),
                ),
            ),
            (
                "existing_tables",
                if same_db {
                    g(&state, "tables")
                } else {
                    Dynamic::UNIT
                },
            ),
        ]),
    })
}

fn restore(call: &mut Call) -> Result<Dynamic, OpError> {
    let r = restore_req(call)?;
    let t = call.target()?;
    let conn = Conn::new(&t.url, r.database.as_deref())?;
    let started = Instant::now();
    let done = restore::restore_into(
        call,
        &conn,
        &r.dump.path,
        &r.dump.format,
        r.dump.compression,
        &r.extra,
        r.keep_owners,
    )?;
    let ms = started.elapsed().as_millis() as i64;
    if !done.ok {
        return Err(OpError::failed(format!(
            "restoring {} into {} on {} stopped at the first error",
            r.dump.path.display(),
            conn.database,
            t.display()
        ))
        .with_cause(tools::tail(&done.stderr, 3))
        .with_hint("what ran before the error stays in the database (unless single_transaction: true); clean: true drops existing objects first"));
    }
    Ok(Dynamic::from_map(map_of([
        ("path", r.dump.path.display().to_string().into()),
        ("format", r.dump.format.name().into()),
        ("database", conn.database.clone().into()),
        ("tables", Dynamic::from_int(r.dump.tables.len() as i64)),
        ("duration_ms", Dynamic::from_int(ms)),
    ])))
}
