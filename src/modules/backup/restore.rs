//! The proof: restore a PostgreSQL dump into a scratch database that this
//! call creates, compare it with the archive, run the script's sanity
//! queries, drop it. Only a database this call created (by name, and by
//! the comment it put on it) is ever restored into or dropped.

use super::checks::{Check, Report, VerifyOpts};
use super::compress::{self, Compression};
use super::formats::Format;
use super::tools::{self, Conn, Finished};
use crate::config::{Kind, Target};
use crate::dispatch::{Call, OpError};
use crate::modules::pg::conn::{one, pg_error, run_utility};
use crate::modules::pg::decode;
use rhai::{Array, Dynamic, Map};
use sqlx::{Connection, PgConnection, Row};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;
use std::time::Instant;

const PREFIX: &str = "opsh_verify_";

fn scratch_name() -> String {
    let now = super::opts::rfc3339(super::opts::unix_secs(std::time::SystemTime::now()));
    let stamp: String = now.chars().filter(|c| c.is_ascii_digit()).collect();
    let rand: String = (0..6).map(|_| fastrand::lowercase()).collect();
    format!("{PREFIX}{stamp}_{rand}")
}

/// The marker put on the scratch database; `prim` is the primitive making it.
fn comment(prim: &str, path: &Path) -> String {
    format!(
        "opsh {prim} scratch database for {}; dropped when the check ends",
        path.display()
    )
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `schema.table` as pg_dump writes it in COPY (each part a plain or a
/// double-quoted identifier); anything else is not put into SQL.
fn safe_qualified(s: &str) -> bool {
    let mut rest = s;
    let mut parts = 0;
    loop {
        if let Some(r) = rest.strip_prefix('"') {
            let mut end = None;
            let b = r.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'"' {
                    if b.get(i + 1) == Some(&b'"') {
                        i += 2;
                        continue;
                    }
                    end = Some(i);
                    break;
                }
                i += 1;
            }
            let Some(e) = end else { return false };
            rest = &r[e + 1..];
        } else {
            let n = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
                .unwrap_or(rest.len());
            if n == 0 {
                return false;
            }
            rest = &rest[n..];
        }
        parts += 1;
        match rest.strip_prefix('.') {
            Some(r) => rest = r,
            None => return rest.is_empty() && parts <= 2,
        }
    }
}

/// Runs pg_restore (archives) or psql (plain SQL, compressed or not) into
/// the database `conn` names, stopping at the first error.
pub fn restore_into(
    call: &Call,
    conn: &Conn,
    path: &Path,
    format: &Format,
    compression: Compression,
    extra: &[String],
    keep_owners: bool,
) -> Result<Finished, OpError> {
    if format.is_pg_archive() {
        let mut cmd = tokio::process::Command::new(tools::pg_program("pg_restore")?);
        cmd.arg("--exit-on-error");
        if !keep_owners {
            cmd.args(["--no-owner", "--no-acl"]);
        }
        cmd.args(extra);
        conn.apply(&mut cmd);
        cmd.arg(path);
        return tools::run(call, cmd, "pg_restore");
    }
    let mut cmd = tokio::process::Command::new(tools::pg_program("psql")?);
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1"]).args(extra);
    conn.apply(&mut cmd);
    if compression == Compression::None {
        cmd.arg("-f").arg(path);
        return tools::run(call, cmd, "psql");
    }
    // A compressed dump streams into psql's stdin through a pipe a thread
    // feeds with the decompressed SQL. std's pipe is close-on-exec, so psql
    // inherits only the read end as its stdin: were the write end inherited
    // too, psql would never see the end of its input.
    let (rd, wr) = std::io::pipe()
        .map_err(|e| OpError::failed("cannot create a pipe for psql").with_cause(e))?;
    let src = compress::open(path, compression)
        .map_err(|e| OpError::failed(format!("cannot read {}", path.display())).with_cause(e))?;
    std::thread::spawn(move || {
        let (mut src, mut wr) = (src, wr);
        let _ = std::io::copy(&mut src, &mut wr);
    });
    let mut cmd = cmd;
    cmd.stdin(std::process::Stdio::from(rd));
    // tools::run sets stdin to null; spawn here instead.
    run_with_stdin(call, cmd)
}

fn run_with_stdin(call: &Call, mut cmd: tokio::process::Command) -> Result<Finished, OpError> {
    cmd.kill_on_drop(true)
        .env("TZ", "UTC")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let _rt = call.session.rt.enter();
    let child = cmd
        .spawn()
        .map_err(|e| OpError::failed("cannot run psql").with_cause(e))?;
    drop(cmd);
    let out = call.block_on(async move {
        child
            .wait_with_output()
            .await
            .map_err(|e| OpError::failed("psql failed").with_cause(e))
    })?;
    Ok(Finished {
        ok: out.status.success(),
        stderr: crate::redact::redact(String::from_utf8_lossy(&out.stderr).trim()),
    })
}

fn db_exists(call: &mut Call, name: &str) -> Result<Option<String>, OpError> {
    let m = one(
        call,
        "select count(*)::int8 as n, max(shobj_description(oid, 'pg_database')) as comment from pg_database where datname = $1",
        &vec![Dynamic::from(name.to_string())],
        "looking up the scratch database failed",
    )?;
    let n = m.get("n").and_then(|v| v.as_int().ok()).unwrap_or(0);
    Ok((n > 0).then(|| {
        m.get("comment")
            .filter(|c| c.is_string())
            .map(|c| c.to_string())
            .unwrap_or_default()
    }))
}

async fn scratch_conn(t: &Target, url: &str) -> Result<PgConnection, OpError> {
    let opts = sqlx::postgres::PgConnectOptions::from_str(url)
        .map_err(|e| {
            OpError::bad_input("invalid PostgreSQL URL")
                .with_cause(crate::redact::redact(&e.to_string()))
        })?
        .application_name("opsh");
    PgConnection::connect_with(&opts)
        .await
        .map_err(|e| pg_error(e, t, "connecting to the scratch database failed"))
}

pub fn verify_restore(call: &mut Call, o: &VerifyOpts, r: &mut Report) -> Result<(), OpError> {
    let format = r.format.clone();
    let restorable = matches!(format, Some(ref f) if f.is_pg_archive() || *f == Format::Sql);
    if !restorable {
        r.checks.push(Check::new(
            "restore",
            Err(format!(
                "not attempted: only PostgreSQL dumps can be restored, this is {}",
                format
                    .map(|f| f.describe())
                    .unwrap_or_else(|| "not readable".into())
            )),
        ));
        return Ok(());
    }
    if !r.ok() {
        r.checks.push(Check::new(
            "restore",
            Err("not attempted: the file failed the checks above".into()),
        ));
        return Ok(());
    }
    if r.sql.as_ref().is_some_and(|s| s.switches_database) {
        r.checks.push(Check::new("restore", Err("not attempted: the dump switches database (\\connect or CREATE DATABASE, e.g. pg_dump --create or pg_dumpall), so it would leave the scratch database".into())));
        return Ok(());
    }
    let target = o.target.clone().unwrap_or_default();
    let t = call.session.resolve(Kind::Pg, Some(&target))?;
    call.set_target(t.clone());
    let prim = call.prim.full_name();
    // The restore creates, fills and drops a database on that server: a
    // change a protected target must confirm, as `opsh help` says of every
    // mutation. Dispatch cannot see this target (it is an option, and
    // backup has no target kind), so it is asked here, before anything.
    if t.protected && !call.session.yes {
        crate::dispatch::confirm(
            call.session,
            &format!("{prim} (restore)"),
            &t.display(),
            &call.args,
        )?;
    }
    // The live database to compare with resolves before anything is made.
    let compare = o
        .compare
        .as_ref()
        .map(|c| call.session.resolve(Kind::Pg, Some(c)))
        .transpose()?;
    let name = match &o.scratch_db {
        Some(n) => {
            if !n.starts_with(PREFIX) {
                return Err(OpError::refused(format!(
                    "{prim} restores only into a scratch database it creates, named {PREFIX}...; it will not use `{n}`"
                ))
                .with_hint(format!("give a new name starting with {PREFIX}, or leave scratch_db out; pg.restore restores into an existing database")));
            }
            n.clone()
        }
        None => scratch_name(),
    };
    if db_exists(call, &name)?.is_some() {
        return Err(OpError::refused(format!(
            "the database {name} already exists on {}: {prim} restores only into a database it creates itself",
            t.display()
        ))
        .with_hint("leave scratch_db out to get a fresh name"));
    }
    run_utility(
        call,
        &format!("CREATE DATABASE {}", quote_ident(&name)),
        "creating the scratch database failed",
    )?;
    let marker = comment(&prim, &r.path);
    let created = run_utility(
        call,
        &format!(
            "COMMENT ON DATABASE {} IS {}",
            quote_ident(&name),
            quote_literal(&marker)
        ),
        "marking the scratch database failed",
    );
    let result = created
        .and_then(|_| restore_and_compare(call, o, r, &t, &name, &marker))
        .and_then(|restored| match restored {
            Some(counts) => completeness(call, o, r, &counts, compare.as_ref()),
            None => Ok(()),
        });
    // Dropped whatever happened above, but only the database made here.
    let cleanup = if o.keep {
        Ok(format!(
            "kept {name} as asked (keep: true): drop it when done"
        ))
    } else {
        match db_exists(call, &name) {
            Ok(Some(c)) if c == marker => run_utility(
                call,
                &format!("DROP DATABASE {} WITH (FORCE)", quote_ident(&name)),
                "dropping the scratch database failed",
            )
            .map(|_| format!("dropped the scratch database {name}"))
            .map_err(|e| {
                format!(
                    "{}: {} (drop {name} by hand)",
                    e.message,
                    e.cause.unwrap_or_default()
                )
            }),
            Ok(Some(_)) => Err(format!(
                "{name} no longer carries opsh's marker: not dropped"
            )),
            Ok(None) => Ok(format!("{name} is already gone")),
            Err(e) => Err(format!("{} (drop {name} by hand)", e.message)),
        }
    };
    r.info.insert("scratch_db".into(), name.clone().into());
    result?;
    r.checks.push(Check::new("cleanup", cleanup));
    Ok(())
}

fn restore_and_compare(
    call: &mut Call,
    o: &VerifyOpts,
    r: &mut Report,
    t: &Target,
    name: &str,
    marker: &str,
) -> Result<Option<Restored>, OpError> {
    // The guard itself: the database about to receive the dump is the one
    // this call created and marked.
    match db_exists(call, name)? {
        Some(c) if c == marker => {}
        _ => {
            return Err(OpError::refused(format!(
                "{name} is not the scratch database this call created: not restoring into it"
            )))
        }
    }
    let conn = Conn::new(&t.url, Some(name))?;
    let format = r.format.clone().unwrap_or(Format::Sql);
    let started = Instant::now();
    let done = restore_into(call, &conn, &r.path, &format, r.compression, &[], false)?;
    let ms = started.elapsed().as_millis();
    let program = if format.is_pg_archive() {
        "pg_restore --exit-on-error"
    } else {
        "psql ON_ERROR_STOP"
    };
    if !done.ok {
        r.checks.push(Check::new(
            "restore",
            Err(format!(
                "{program} stopped at the first error: {}",
                tools::tail(&done.stderr, 3)
            )),
        ));
        return Ok(None);
    }
    r.checks.push(Check::new(
        "restore",
        Ok(format!(
            "restored into the scratch database {name} on {} in {ms} ms ({program})",
            t.display()
        )),
    ));
    let mut url = url::Url::parse(&t.url)
        .map_err(|e| OpError::bad_input("invalid PostgreSQL URL").with_cause(e))?;
    url.set_path(&format!("/{name}"));
    let url = url.to_string();
    let want_tables = match (&r.toc, &r.sql) {
        (Some(toc), _) => toc.tables.len(),
        (None, Some(s)) => s.tables.len(),
        _ => 0,
    };
    let copies: Vec<(String, u64)> = r.sql.as_ref().map(|s| s.copies.clone()).unwrap_or_default();
    let data: BTreeSet<String> = copies.iter().map(|(t, _)| t.clone()).collect();
    let sanity = o.sanity.clone();
    let t2 = t.clone();
    let results = call.block_on(async move {
        let mut c = scratch_conn(&t2, &url).await?;
        let tables: i64 = sqlx::query_scalar(
            "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
             where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema')
               and n.nspname not like 'pg_toast%'",
        )
        .fetch_one(&mut c)
        .await
        .map_err(|e| pg_error(e, &t2, "counting restored tables failed"))?;
        // Every plain table with its rows, named as pg_dump names it in COPY.
        let all = table_counts(&mut c)
            .await
            .map_err(|e| pg_error(e, &t2, "counting restored rows failed"))?;
        let mut counts = Vec::new();
        for (ident, want) in &copies {
            if let Some(n) = all.get(ident) {
                counts.push((ident.clone(), *want, Ok(*n)));
                continue;
            }
            if !safe_qualified(ident) {
                counts.push((
                    ident.clone(),
                    *want,
                    Err("not a plain qualified name; not counted".to_string()),
                ));
                continue;
            }
            let got: Result<i64, String> =
                sqlx::query_scalar(&format!("select count(*) from {ident}"))
                    .fetch_one(&mut c)
                    .await
                    .map_err(|e| e.to_string());
            counts.push((ident.clone(), *want, got));
        }
        let mut sanity_out = Vec::new();
        for item in &sanity {
            sanity_out.push(run_sanity(&mut c, item).await);
        }
        let _ = c.close().await;
        Ok((tables, counts, sanity_out, all))
    });
    let (tables, counts, sanity_out, all) = match results {
        Ok(v) => v,
        Err(e) => {
            r.checks.push(Check::new(
                "restore_tables",
                Err(format!("{}: {}", e.message, e.cause.unwrap_or_default())),
            ));
            return Ok(None);
        }
    };
    r.checks.push(Check::new(
        "restore_tables",
        if tables as usize == want_tables {
            Ok(format!("{tables} tables restored, as in the archive"))
        } else {
            Err(format!(
                "{tables} tables restored, the archive has {want_tables}"
            ))
        },
    ));
    let mut bad = Vec::new();
    let mut total = 0u64;
    let mut restored_rows = Map::new();
    for (ident, want, got) in &counts {
        total += want;
        match got {
            Ok(n) if *n as u64 == *want => {
                restored_rows.insert(ident.as_str().into(), Dynamic::from_int(*n));
            }
            Ok(n) => {
                restored_rows.insert(ident.as_str().into(), Dynamic::from_int(*n));
                bad.push(format!(
                    "{ident}: {n} rows restored, the archive has {want}"
                ));
            }
            Err(e) => bad.push(format!("{ident}: {e}")),
        }
    }
    r.info
        .insert("restored_rows".into(), Dynamic::from_map(restored_rows));
    r.checks.push(Check::new(
        "restore_rows",
        if bad.is_empty() {
            Ok(format!(
                "{} tables, {total} rows: every table has the rows the archive holds",
                counts.len()
            ))
        } else {
            Err(bad.join("; "))
        },
    ));
    for (label, res) in sanity_out {
        r.checks.push(Check::new(format!("sanity: {label}"), res));
    }
    Ok(Some(Restored { rows: all, data }))
}

/// What the scratch database held: rows per plain table, and the tables
/// the archive has a data entry (a COPY block) for.
struct Restored {
    rows: BTreeMap<String, i64>,
    data: BTreeSet<String>,
}

/// Rows per plain table, by `schema.table` quoted as pg_dump quotes it.
async fn table_counts(c: &mut PgConnection) -> Result<BTreeMap<String, i64>, sqlx::Error> {
    let names: Vec<String> = sqlx::query_scalar(
        "select format('%I.%I', n.nspname, c.relname) from pg_class c
         join pg_namespace n on n.oid = c.relnamespace
         where c.relkind = 'r' and n.nspname not in ('pg_catalog', 'information_schema')
           and n.nspname not like 'pg_toast%' order by 1",
    )
    .fetch_all(&mut *c)
    .await?;
    let mut out = BTreeMap::new();
    for t in names {
        // `t` comes from format('%I.%I'): quoted by the server itself.
        let n: i64 = sqlx::query_scalar(&format!("select count(*) from {t}"))
            .fetch_one(&mut *c)
            .await?;
        out.insert(t, n);
    }
    Ok(out)
}

/// What a dump cannot prove by itself: that every table's rows are in it.
/// Tables without a data entry, `min_rows` per table, and row counts
/// against a live database (`compare`).
fn completeness(
    call: &mut Call,
    o: &VerifyOpts,
    r: &mut Report,
    got: &Restored,
    live: Option<&Target>,
) -> Result<(), OpError> {
    let excused: BTreeSet<&str> = o.no_data.iter().map(String::as_str).collect();
    let missing: Vec<&String> = got.rows.keys().filter(|t| !got.data.contains(*t)).collect();
    let unexpected: Vec<&&String> = missing
        .iter()
        .filter(|t| !excused.contains(t.as_str()))
        .collect();
    r.checks.push(Check::new(
        "restore_data",
        if unexpected.is_empty() {
            Ok(match missing.len() {
                0 => format!("every one of the {} tables has a data entry", got.rows.len()),
                n => format!(
                    "{} of {} tables have a data entry; {n} without one, as `no_data` allows: {}",
                    got.rows.len() - n,
                    got.rows.len(),
                    missing.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
                ),
            })
        } else {
            Err(format!(
                "the archive holds no data for {}: restored empty (dumped with --exclude-table-data, or a table left out); list tables meant to be empty in `no_data`",
                unexpected.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
            ))
        },
    ));
    for (table, want) in &o.min_rows {
        // An int: checked with the other options, before the restore.
        let want = want.as_int().unwrap_or(i64::MAX);
        r.checks.push(Check::new(
            format!("min_rows: {table}"),
            match got.rows.get(table.as_str()) {
                Some(n) if *n >= want => Ok(format!("{n} rows restored, at least {want}")),
                Some(n) => Err(format!("{n} rows restored, fewer than the {want} expected")),
                None => Err(format!(
                    "no table {table} in the restored database (name it as schema.table)"
                )),
            },
        ));
    }
    let Some(t) = live else {
        return Ok(());
    };
    let t = t.clone();
    let counted = call.block_on(async {
        let mut c = scratch_conn(&t, &t.url).await?;
        // Only read: a read-only transaction, rolled back.
        sqlx::raw_sql("BEGIN READ ONLY")
            .execute(&mut c)
            .await
            .map_err(|e| pg_error(e, &t, "comparing with the live database failed"))?;
        let counts = table_counts(&mut c)
            .await
            .map_err(|e| pg_error(e, &t, "counting the live database's rows failed"));
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut c).await;
        let _ = c.close().await;
        counts
    });
    let check = "compare";
    let live_rows = match counted {
        Ok(v) => v,
        Err(e) => {
            r.checks.push(Check::new(
                check,
                Err(format!("{}: {}", e.message, e.cause.unwrap_or_default())),
            ));
            return Ok(());
        }
    };
    let tol = o.tolerance_pct;
    let mut bad = Vec::new();
    for (table, n) in &live_rows {
        match got.rows.get(table) {
            None => bad.push(format!("{table}: in the live database, not in the backup")),
            Some(m) => {
                let off = (*m - *n).unsigned_abs() as f64;
                if off > *n as f64 * tol / 100.0 {
                    bad.push(format!(
                        "{table}: {m} rows restored, {n} live (more than {tol}% apart)"
                    ));
                }
            }
        }
    }
    let extra: Vec<&String> = got
        .rows
        .keys()
        .filter(|k| !live_rows.contains_key(*k))
        .collect();
    let (restored, total): (i64, i64) = (got.rows.values().sum(), live_rows.values().sum());
    r.checks.push(Check::new(
        check,
        if bad.is_empty() {
            Ok(format!(
                "{} tables within {tol}% of the live database on {} ({restored} rows restored, {total} live){}",
                live_rows.len(),
                t.display(),
                if extra.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; only in the backup: {}",
                        extra.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    )
                }
            ))
        } else {
            Err(format!("against the live database on {}: {}", t.display(), bad.join("; ")))
        },
    ));
    Ok(())
}

fn same(a: &Dynamic, b: &Dynamic) -> bool {
    if let (Ok(x), Ok(y)) = (a.as_int(), b.as_int()) {
        return x == y;
    }
    let num = |d: &Dynamic| d.as_int().map(|i| i as f64).or_else(|_| d.as_float()).ok();
    if let (Some(x), Some(y)) = (num(a), num(b)) {
        return x == y;
    }
    crate::value::to_json(a) == crate::value::to_json(b)
}

/// One `#{sql, expect, name}`: a scalar `expect` is compared with the
/// first column of the first row; an array with all rows (as maps).
async fn run_sanity(c: &mut PgConnection, item: &Dynamic) -> (String, Result<String, String>) {
    let Some(m) = item.read_lock::<Map>().map(|m| m.clone()) else {
        return (
            "?".into(),
            Err("each sanity item must be a map #{sql, expect}".into()),
        );
    };
    let sql = m.get("sql").map(|s| s.to_string()).unwrap_or_default();
    let label = m
        .get("name")
        .map(|s| s.to_string())
        .unwrap_or_else(|| sql.chars().take(60).collect());
    if sql.is_empty() {
        return (label, Err("the sanity item has no `sql`".into()));
    }
    let rows = match sqlx::query(&sql).fetch_all(&mut *c).await {
        Ok(rows) => rows,
        Err(e) => return (label, Err(format!("the query failed: {e}"))),
    };
    let expect = m.get("expect").cloned().unwrap_or(Dynamic::UNIT);
    if expect.is_array() {
        let got: Array = rows
            .iter()
            .map(|r| Dynamic::from_map(decode::row_to_map(r)))
            .collect();
        let got = Dynamic::from_array(got);
        return if crate::value::to_json(&got) == crate::value::to_json(&expect) {
            (label, Ok(format!("{} rows as expected", rows.len())))
        } else {
            (
                label,
                Err(format!(
                    "expected {}, got {}",
                    crate::value::to_json(&expect),
                    crate::value::to_json(&got)
                )),
            )
        };
    }
    let got = rows
        .first()
        .and_then(|r| r.try_get_raw(0).ok().map(decode::value))
        .unwrap_or(Dynamic::UNIT);
    if same(&got, &expect) {
        (label, Ok(format!("got {got} as expected")))
    } else {
        (label, Err(format!("expected {expect}, got {got}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names() {
        assert!(safe_qualified("public.t"));
        assert!(safe_qualified("\"My Schema\".\"odd \"\"name\"\"\""));
        assert!(!safe_qualified("public.t; drop table x"));
        assert!(!safe_qualified("a.b.c"));
        assert!(scratch_name().starts_with(PREFIX));
    }
}
