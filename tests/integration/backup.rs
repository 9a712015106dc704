//! backup.verify against real dumps: pg_dump from the sandbox PostgreSQL in
//! every format, damaged by the test in the ways backups really break; an
//! SQLite database made by sqlite3; an RDB written by the sandbox
//! redis-server. Restores go into scratch databases on the sandbox server,
//! and the tests check the server afterwards.

use crate::support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const FORMATS: [(&str, &str); 4] = [
    ("custom", "app.dump"),
    ("directory", "app.dir"),
    ("tar", "app.tar"),
    ("plain", "app.sql"),
];

/// 500 + 2000 + 30 rows over two schemas.
fn seed(url: &str) {
    pg_exec(
        url,
        "create table accounts(id int primary key, name text not null);
         insert into accounts select g, 'account ' || g from generate_series(1, 500) g;
         create table events(id bigint, account int references accounts(id), payload text);
         insert into events select g, 1 + g % 500, repeat(md5(g::text), 3) from generate_series(1, 2000) g;
         create schema billing;
         create table billing.invoices(id int primary key, cents int);
         insert into billing.invoices select g, g * 100 from generate_series(1, 30) g;",
    );
}

/// A seeded sandbox PostgreSQL (kept alive by the returned Sandbox), its
/// URL, and an Env with an empty `backups` directory.
fn seeded() -> (Sandbox, String, Env, PathBuf) {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    seed(&url);
    let env = Env::new();
    let dir = env.dir("backups");
    (sb, url, env, dir)
}

/// One pg.dump to `path` with the options `opts` (a Rhai map body).
fn pg_dump(env: &Env, url: &str, path: &Path, opts: &str) {
    env.script(&format!(
        "pg.dump(\"{url}\", \"{}\", #{{{opts}}})",
        path.display()
    ))
    .run()
    .assert_code(0);
}

/// Dumps the sandbox database in every format into `dir` with pg.dump.
fn dump_all(env: &Env, url: &str, dir: &Path) -> Vec<Value> {
    std::fs::create_dir_all(dir).unwrap();
    let mut script = String::new();
    for (format, name) in FORMATS {
        script.push_str(&format!(
            "print(json.stringify(pg.dump(\"{url}\", \"{}\", #{{format: \"{format}\"}})));\n",
            dir.join(name).display()
        ));
    }
    let r = env.script(&script).run();
    r.assert_code(0);
    r.json_lines()
}

/// backup.verify(path, opts + fail: false) for each item, in one run.
fn verify_many(env: &Env, items: &[(PathBuf, &str)]) -> Vec<Value> {
    let mut script = String::new();
    for (p, opts) in items {
        let sep = if opts.trim().is_empty() { "" } else { ", " };
        script.push_str(&format!(
            "print(json.stringify(backup.verify(\"{}\", #{{fail: false{sep}{opts}}})));\n",
            p.display()
        ));
    }
    let r = env.script(&script).run();
    r.assert_code(0);
    r.json_lines()
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report:#}"))
}

/// Asserts that `name` failed with a detail containing `needle`.
#[track_caller]
fn assert_failed(report: &Value, name: &str, needle: &str) {
    let c = check(report, name);
    assert_eq!(c["passed"], false, "{name} should fail: {report:#}");
    let detail = c["detail"].as_str().unwrap();
    assert!(
        detail.contains(needle),
        "{name}: {detail:?} lacks {needle:?}"
    );
    assert_eq!(report["ok"], false);
}

fn failed_names(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["check"].as_str().unwrap().to_string())
        .collect()
}

fn copy(src: &Path, dst: &Path) {
    if src.is_dir() {
        std::fs::create_dir_all(dst).unwrap();
        for e in std::fs::read_dir(src).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    } else {
        std::fs::copy(src, dst).unwrap();
    }
    let side = |p: &Path| PathBuf::from(format!("{}.sha256", p.display()));
    // The sidecar names the file it covers: rename the entries.
    if let Ok(text) = std::fs::read_to_string(side(src)) {
        let from = src.file_name().unwrap().to_string_lossy().into_owned();
        let to = dst.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::write(side(dst), text.replace(&from, &to)).unwrap();
    }
}

fn flip(p: &Path, at: usize) {
    let mut b = std::fs::read(p).unwrap();
    b[at] ^= 0xff;
    std::fs::write(p, b).unwrap();
}

fn truncate(p: &Path, keep: usize) {
    let b = std::fs::read(p).unwrap();
    std::fs::write(p, &b[..keep]).unwrap();
}

fn len(p: &Path) -> usize {
    std::fs::metadata(p).unwrap().len() as usize
}

/// The largest gzip data file of a directory archive.
fn biggest_gz(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "gz"))
        .max_by_key(|p| len(p))
        .unwrap()
}

#[test]
fn every_format_verifies_and_restores_with_the_source_row_counts() {
    let sb = sandbox(&[Pg]);
    let pg = sb.pg();
    let url = pg.url();
    seed(&url);
    let env = Env::new();
    let dir = env.path("backups");
    let made = dump_all(&env, &url, &dir);
    for d in &made {
        assert!(d["bytes"].as_i64().unwrap() > 1000, "{d}");
        assert_eq!(d["tables"], 3);
        assert!(Path::new(d["sidecar"].as_str().unwrap()).is_file());
    }
    let sanity = r#"restore: true, target: "URL", max_age: "1h", checksum: true, min_size: "1KB",
        sanity: [#{sql: "select count(*) from billing.invoices", expect: 30},
                 #{name: "richest", sql: "select max(cents) as cents from billing.invoices", expect: [#{cents: 3000}]}]"#
        .replace("URL", &url);
    let items: Vec<(PathBuf, &str)> = FORMATS
        .iter()
        .map(|(_, n)| (dir.join(n), sanity.as_str()))
        .collect();
    let reports = verify_many(&env, &items);
    let source_rows = [
        (
            "public.accounts",
            pg_scalar(&url, "select count(*) from accounts"),
        ),
        (
            "public.events",
            pg_scalar(&url, "select count(*) from events"),
        ),
        (
            "billing.invoices",
            pg_scalar(&url, "select count(*) from billing.invoices"),
        ),
    ];
    for (r, (format, _)) in reports.iter().zip(FORMATS) {
        assert_eq!(r["ok"], true, "{format}: {r:#}");
        for (table, n) in source_rows {
            assert_eq!(
                r["info"]["table_rows"][table], n,
                "{format} archive rows of {table}"
            );
            assert_eq!(
                r["info"]["restored_rows"][table], n,
                "{format} restored rows of {table}"
            );
        }
        assert!(check(r, "restore_rows")["detail"]
            .as_str()
            .unwrap()
            .contains("3 tables, 2530 rows"));
        assert_eq!(
            check(r, "restore_tables")["detail"],
            "3 tables restored, as in the archive"
        );
        assert_eq!(check(r, "sanity: richest")["passed"], true);
        assert!(check(r, "cleanup")["detail"]
            .as_str()
            .unwrap()
            .starts_with("dropped the scratch database opsh_verify_"));
        let expected = if format == "plain" {
            "sql_dump"
        } else {
            "archive"
        };
        assert_eq!(check(r, expected)["passed"], true);
    }
    let custom = &reports[0];
    assert_eq!(custom["format"], "pg_custom");
    assert_eq!(custom["info"]["database"], "postgres");
    assert_eq!(custom["info"]["tables"], 3);
    assert_eq!(custom["info"]["data_entries"], 3);
    assert!(custom["info"]["pg_dump_version"]
        .as_str()
        .unwrap()
        .starts_with(char::is_numeric));
    assert!(custom["info"]["created"].as_str().unwrap().ends_with('Z'));
    assert_eq!(reports[1]["format"], "pg_directory");
    assert_eq!(reports[2]["format"], "pg_tar");
    assert_eq!(reports[3]["format"], "sql");
    // Every scratch database is gone; the source is as it was.
    assert_eq!(
        pg_scalar(
            &url,
            "select count(*) from pg_database where datname like 'opsh_verify_%'"
        ),
        0
    );
    assert_eq!(pg_scalar(&url, "select count(*) from accounts"), 500);
    // The password never reaches the output or the audit log.
    let audit = env.audit_text();
    assert!(audit.contains("\"primitive\":\"pg.dump\""));
    assert!(!audit.contains(&pg.password), "password in the audit log");
}

#[test]
fn damaged_backups_are_reported_precisely_in_every_format() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    seed(&url);
    let env = Env::new();
    let good = env.path("good");
    dump_all(&env, &url, &good);
    let bad = env.dir("bad");
    let mut items: Vec<(PathBuf, &str)> = Vec::new();
    let mut add = |name: &str, opts: &'static str| {
        items.push((bad.join(name), opts));
    };
    for (format, name) in FORMATS {
        let src = good.join(name);
        let ext = Path::new(name)
            .extension()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        // Truncated: the second half is gone.
        let t = bad.join(format!("truncated-{format}.{ext}"));
        copy(&src, &t);
        if format == "directory" {
            let gz = biggest_gz(&t);
            truncate(&gz, len(&gz) / 2);
        } else {
            truncate(&t, len(&t) / 2);
        }
        add(t.file_name().unwrap().to_str().unwrap(), "");
        // One corrupted byte, well inside the data.
        let c = bad.join(format!("corrupt-{format}.{ext}"));
        copy(&src, &c);
        match format {
            "directory" => {
                let gz = biggest_gz(&c);
                flip(&gz, len(&gz) / 2);
            }
            "custom" => flip(&c, len(&c) - 300),
            _ => flip(&c, len(&c) / 2),
        }
        add(c.file_name().unwrap().to_str().unwrap(), "");
        // Checksum mismatch: the file is fine, its sidecar disagrees.
        let m = bad.join(format!("mismatch-{format}.{ext}"));
        copy(&src, &m);
        let side = PathBuf::from(format!("{}.sha256", m.display()));
        let text = std::fs::read_to_string(&side).unwrap();
        let first = text.chars().next().unwrap();
        let other = if first == '0' { '1' } else { '0' };
        std::fs::write(&side, format!("{other}{}", &text[1..])).unwrap();
        add(m.file_name().unwrap().to_str().unwrap(), "");
        // Aged: modified three days ago.
        let a = bad.join(format!("aged-{format}.{ext}"));
        copy(&src, &a);
        let old = SystemTime::now() - Duration::from_secs(3 * 86_400);
        let f = std::fs::File::open(&a).unwrap();
        f.set_modified(old).unwrap();
        add(a.file_name().unwrap().to_str().unwrap(), "max_age: \"26h\"");
    }
    std::fs::write(bad.join("empty.dump"), b"").unwrap();
    add("empty.dump", "");
    std::fs::copy(good.join("app.sql"), bad.join("wrong.dump")).unwrap();
    add("wrong.dump", "format: \"pg_custom\"");
    std::fs::write(
        bad.join("noise.dump"),
        b"\x00\x01\x02garbage that is no backup",
    )
    .unwrap();
    add("noise.dump", "");
    let reports = verify_many(&env, &items);
    let by_name = |n: &str| {
        reports
            .iter()
            .find(|r| r["path"].as_str().unwrap().ends_with(n))
            .unwrap_or_else(|| panic!("no report for {n}"))
    };

    // Truncated.
    let r = by_name("truncated-custom.dump");
    assert_failed(r, "checksum", "sha256 mismatch");
    assert_failed(
        r,
        "archive",
        "the archive ends early (truncated): end of file in the data of TABLE DATA public.",
    );
    let r = by_name("truncated-directory.dir");
    assert_failed(
        r,
        "checksum",
        "sha256 mismatch for truncated-directory.dir/",
    );
    assert_failed(r, "compression", "gzip stream ends early (truncated)");
    let r = by_name("truncated-tar.tar");
    assert_failed(r, "checksum", "sha256 mismatch");
    assert_failed(r, "archive", "it is truncated");
    let r = by_name("truncated-plain.sql");
    assert_failed(r, "checksum", "sha256 mismatch");
    assert_failed(
        r,
        "sql_dump",
        "the dump ends inside the COPY data of public.events",
    );

    // One corrupted byte.
    let r = by_name("corrupt-custom.dump");
    assert_failed(r, "checksum", "sha256 mismatch");
    assert_failed(r, "archive", "could not uncompress data");
    let r = by_name("corrupt-directory.dir");
    assert_failed(r, "checksum", "sha256 mismatch for corrupt-directory.dir/");
    assert_failed(r, "compression", "gzip stream is corrupt");
    let r = by_name("corrupt-tar.tar");
    assert_eq!(failed_names(r), vec!["checksum"], "{r:#}");
    assert_failed(
        r,
        "checksum",
        "sha256 mismatch: corrupt-tar.tar.sha256 says ",
    );
    // A byte inside row data is still valid SQL: only the checksum sees it.
    let r = by_name("corrupt-plain.sql");
    assert_eq!(failed_names(r), vec!["checksum"], "{r:#}");

    // Checksum mismatch only.
    for (format, name) in FORMATS {
        let ext = Path::new(name)
            .extension()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let r = by_name(&format!("mismatch-{format}.{ext}"));
        assert_eq!(failed_names(r), vec!["checksum"], "{format}: {r:#}");
        let needle = if format == "directory" {
            "sha256 mismatch for mismatch-directory.dir/".to_string()
        } else {
            format!("sha256 mismatch: mismatch-{format}.{ext}.sha256 says ")
        };
        assert_failed(r, "checksum", &needle);
        // Aged only.
        let r = by_name(&format!("aged-{format}.{ext}"));
        assert_eq!(failed_names(r), vec!["age"], "{format}: {r:#}");
        assert_failed(r, "age", "older than max_age 1day 2h");
    }

    let r = by_name("empty.dump");
    assert_eq!(failed_names(r), vec!["size"], "{r:#}");
    assert_failed(r, "size", "empty: 0 bytes");
    let r = by_name("wrong.dump");
    assert_failed(
        r,
        "format",
        "wrong format: expected pg_custom, found a plain SQL dump",
    );
    let r = by_name("noise.dump");
    assert_failed(
        r,
        "format",
        "unrecognised format: not a format opsh knows (it starts with 00 01 02",
    );

    // Without fail: false the script fails like fail(): exit 1, the checks named.
    env.script(&format!(
        "backup.verify(\"{}\")",
        bad.join("empty.dump").display()
    ))
    .run()
    .assert_code(1)
    .assert_stderr_contains("failed 1 of 3 checks: size: empty: 0 bytes");
}

#[test]
fn a_restore_never_touches_a_database_it_did_not_create() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    seed(&url);
    pg_exec(&url, "create database app");
    pg_exec(&url, "create database opsh_verify_taken");
    let app = sb.pg().url_for("app");
    pg_exec(
        &app,
        "create table keep(id int); insert into keep values (1), (2)",
    );
    let env = Env::new();
    let dir = env.path("b");
    dump_all(&env, &url, &dir);
    let dump = dir.join("app.dump");
    for (scratch, needle) in [
        ("app", "it will not use `app`"),
        ("opsh_verify_taken", "already exists"),
    ] {
        let script = format!(
            "backup.verify(\"{}\", #{{restore: true, target: \"{url}\", scratch_db: \"{scratch}\"}})",
            dump.display()
        );
        env.script(&script)
            .run()
            .assert_code(3)
            .assert_stderr_contains(needle);
    }
    // `app` is exactly as it was: one table, two rows, nothing restored.
    assert_eq!(
        pg_scalar(&app, "select count(*) from pg_tables where schemaname not in ('pg_catalog', 'information_schema')"),
        1
    );
    assert_eq!(pg_scalar(&app, "select count(*) from keep"), 2);
    let taken = sb.pg().url_for("opsh_verify_taken");
    assert_eq!(
        pg_scalar(
            &taken,
            "select count(*) from pg_tables where schemaname = 'public'"
        ),
        0
    );
    // A dry run of a restoring verify creates nothing.
    env.script(&format!(
        "let p = backup.verify(\"{}\", #{{restore: true, target: \"{url}\"}}); print(p.action)",
        dump.display()
    ))
    .flag("--dry-run")
    .run()
    .assert_code(0)
    .assert_stdout_contains("would restore");
    assert_eq!(
        pg_scalar(
            &url,
            "select count(*) from pg_database where datname like 'opsh_verify_%'"
        ),
        1
    );
}

#[test]
fn pg_dump_dry_run_writes_nothing_and_pg_restore_fills_a_database() {
    let sb = sandbox(&[Pg]);
    let pg = sb.pg();
    let url = pg.url();
    seed(&url);
    pg_exec(&url, "create database restored");
    let env = Env::new();
    let out = env.path("one.dump");
    env.script(&format!(
        "let p = pg.dump(\"{url}\", \"{}\"); print(p.action)",
        out.display()
    ))
    .flag("--dry-run")
    .run()
    .assert_code(0)
    .assert_stdout_contains("would write a custom dump of database postgres")
    .assert_stdout_contains("3 tables");
    assert!(!out.exists());
    env.script(&format!(
        "pg.dump(\"{url}\", \"{p}\", #{{schema: \"billing\"}});
             let r = pg.restore(\"{p}\", \"{url}\", #{{database: \"restored\"}});
             print(r.database);",
        p = out.display()
    ))
    .run()
    .assert_code(0)
    .assert_stdout("restored\n");
    assert!(out.is_file());
    assert_eq!(
        pg_scalar(
            &pg.url_for("restored"),
            "select count(*) from billing.invoices"
        ),
        30
    );
    // Restoring again conflicts: the dry run says so and changes nothing.
    env.script(&format!(
        "print(pg.restore(\"{}\", \"{}\").action)",
        out.display(),
        pg.url_for("restored")
    ))
    .flag("--dry-run")
    .run()
    .assert_code(0)
    .assert_stdout_contains("would restore 1 tables")
    .assert_stdout_contains("1 of them in the archive too");
    // ...and the real run stops at the first error.
    env.script(&format!(
        "pg.restore(\"{}\", \"{}\")",
        out.display(),
        pg.url_for("restored")
    ))
    .run()
    .assert_code(2)
    .assert_stderr_contains("stopped at the first error")
    .assert_stderr_contains("already exists")
    .assert_output_lacks(&pg.password);
    let audit = env.audit_text();
    assert!(audit.contains("\"primitive\":\"pg.restore\""));
    assert!(!audit.contains(&pg.password));
}

fn sqlite3(db: &Path, sql: &str) {
    let out = std::process::Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("sqlite3 (apt-get install sqlite3)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_corrupted_sqlite_database_fails_integrity_check() {
    let env = Env::new();
    let db = env.path("hive.db");
    sqlite3(
        &db,
        "pragma journal_mode = wal; create table metrics(id integer primary key, score real, note text);
         with recursive n(i) as (select 1 union all select i + 1 from n where i < 3000)
         insert into metrics select i, i % 100, hex(randomblob(40)) from n;
         create index metrics_score on metrics(score);",
    );
    let corrupt = env.path("corrupt.db");
    std::fs::copy(&db, &corrupt).unwrap();
    // Scribble over the middle of a b-tree page; the size stays the same.
    let mut b = std::fs::read(&corrupt).unwrap();
    let page = 4096 * 5;
    for x in &mut b[page + 8..page + 200] {
        *x = 0x5a;
    }
    std::fs::write(&corrupt, &b).unwrap();
    let cut = env.path("cut.db");
    std::fs::write(&cut, &std::fs::read(&db).unwrap()[..4096 * 3]).unwrap();
    let walled = env.path("walled.db");
    std::fs::copy(&db, &walled).unwrap();
    std::fs::write(env.path("walled.db-wal"), vec![1u8; 4096]).unwrap();
    let reports = verify_many(
        &env,
        &[
            (db.clone(), "format: \"sqlite\""),
            (corrupt, ""),
            (cut, ""),
            (walled, ""),
        ],
    );
    assert_eq!(reports[0]["ok"], true, "{:#}", reports[0]);
    assert_eq!(reports[0]["info"]["journal_mode"], "wal");
    assert_eq!(
        check(&reports[0], "sqlite_integrity")["detail"],
        "PRAGMA integrity_check: ok"
    );
    assert_failed(&reports[1], "sqlite_integrity", "PRAGMA integrity_check: ");
    assert_eq!(failed_names(&reports[1]), vec!["sqlite_integrity"]);
    assert_failed(&reports[2], "sqlite_header", "it is truncated");
    assert_failed(
        &reports[3],
        "sqlite_wal",
        "a -wal file of 4096 bytes lies beside it",
    );
    // Nothing was written next to the backups.
    assert!(!env.path("hive.db-wal").exists());
    assert!(!env.path("hive.db-shm").exists());
}

#[test]
fn an_rdb_saved_by_redis_verifies_and_a_corrupted_copy_does_not() {
    let sb = sandbox(&[Redis]);
    let redis = sb.redis();
    let env = Env::new();
    env.script("redis.set(\"greeting\", \"hello\"); redis.set(\"count\", \"42\");")
        .redis(&redis.url())
        .run()
        .assert_code(0);
    // SAVE: the server writes dir/dump.rdb.
    let _: () = redis_query(&redis.url(), &["SAVE"]);
    let saved = redis.log.parent().unwrap().join("dump.rdb");
    assert!(saved.is_file(), "SAVE wrote no {}", saved.display());
    let good = env.path("dump.rdb");
    std::fs::copy(&saved, &good).unwrap();
    let bad = env.path("bad.rdb");
    std::fs::copy(&saved, &bad).unwrap();
    flip(&bad, 20);
    let cut = env.path("cut.rdb");
    std::fs::copy(&saved, &cut).unwrap();
    truncate(&cut, len(&cut) - 5);
    let reports = verify_many(&env, &[(good, ""), (bad, ""), (cut, "")]);
    assert_eq!(reports[0]["ok"], true, "{:#}", reports[0]);
    assert_eq!(reports[0]["format"], "rdb");
    assert!(check(&reports[0], "rdb")["detail"]
        .as_str()
        .unwrap()
        .contains("CRC64"));
    assert_failed(&reports[1], "rdb", "CRC64 mismatch: the file says ");
    assert_failed(
        &reports[2],
        "rdb",
        "no EOF marker (0xFF) before the checksum",
    );
}

#[test]
fn retention_dry_run_deletes_nothing_and_a_real_run_deletes_exactly_the_plan() {
    let env = Env::new();
    let dir = env.dir("backups");
    let now = SystemTime::now();
    let mut all = Vec::new();
    for i in 0..40u64 {
        let p = dir.join(format!("app-{i:02}.dump"));
        std::fs::write(&p, vec![b'x'; 100 + i as usize]).unwrap();
        std::fs::write(format!("{}.sha256", p.display()), "x").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(now - Duration::from_secs(i * 86_400 + 60))
            .unwrap();
        all.push(p);
    }
    std::fs::write(dir.join("notes.txt"), "not a dump").unwrap();
    let script = format!(
        "let r = backup.retention(\"{}\", #{{pattern: \"app-*.dump\", keep_daily: 7, keep_weekly: 4, keep_monthly: 3}});
         print(json.stringify(r));",
        dir.display()
    );
    let r = env.script(&script).flag("--dry-run").run();
    r.assert_code(0);
    let plan: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    let remove: Vec<String> = plan["remove"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert!(remove.len() >= 25 && remove.len() <= 30, "{remove:?}");
    assert!(!remove.contains(&"app-00.dump".to_string()));
    assert!(
        all.iter().all(|p| p.exists()),
        "a dry run deleted something"
    );
    let r = env.script(&script).run();
    r.assert_code(0);
    let done: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    let removed: Vec<String> = done["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(removed, remove);
    for p in &all {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let side = PathBuf::from(format!("{}.sha256", p.display()));
        assert_eq!(p.exists(), !remove.contains(&name), "{name}");
        assert_eq!(side.exists(), !remove.contains(&name), "{name}.sha256");
    }
    assert!(dir.join("notes.txt").exists());
    let audit = env.audit();
    let rec = audit
        .iter()
        .find(|a| a["primitive"] == "backup.retention" && a["phase"] == "intent")
        .unwrap();
    assert_eq!(rec["target"], dir.display().to_string());
    // list and latest see what is left, newest first.
    let list = format!(
        "let l = backup.list(\"{d}\", #{{pattern: \"*.dump\"}}); print(l.len()); print(l[0].name); print(backup.latest(\"{d}\", #{{pattern: \"*.dump\"}}).name); print(backup.latest(\"{d}\", #{{pattern: \"*.nope\"}}) == ());",
        d = dir.display()
    );
    let r = env.script(&list).run();
    r.assert_code(0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines,
        vec![
            (40 - remove.len()).to_string().as_str(),
            "app-00.dump",
            "app-00.dump",
            "true"
        ]
    );
}

#[test]
fn a_misspelled_or_mistyped_option_is_refused_before_anything_is_removed() {
    let env = Env::new();
    let dir = env.dir("backups");
    let old = dir.join("app-old.dump");
    std::fs::write(&old, "x").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(90 * 86_400))
        .unwrap();
    std::fs::write(dir.join("app-new.dump"), "x").unwrap();
    // Without the typo this policy would remove app-old.dump.
    env.script(&format!(
        "backup.retention(\"{}\", #{{keep_dayly: 1}})",
        dir.display()
    ))
    .run()
    .assert_code(2)
    .assert_stderr_contains("backup.retention failed: unknown option `keep_dayly`")
    .assert_stderr_contains("did you mean `keep_daily`?");
    env.script(&format!(
        "backup.retention(\"{}\", #{{keep_daily: \"1\"}})",
        dir.display()
    ))
    .run()
    .assert_code(2)
    .assert_stderr_contains("option `keep_daily` must be an int, got string (\"1\")");
    assert!(old.exists(), "a refused call removed a backup");
}

#[test]
fn the_backup_verify_script_passes_a_good_backup_and_fails_a_stale_one() {
    let (_sb, url, env, dir) = seeded();
    pg_dump(&env, &url, &dir.join("app-1.dump"), "");
    let script = repo_path("scripts/backup_verify.rhai");
    let verify = || env.opsh(["run", &script]).script_arg("dir", dir.display());
    verify()
        .script_arg("pattern", "*.dump")
        .script_arg("restore_target", &url)
        .script_arg("min_tables", 3)
        .script_arg("require_checksum", true)
        .run()
        .assert_code(0)
        .assert_stdout_contains("restore_rows")
        .assert_stdout_contains("at least 3 tables")
        .assert_stdout_contains("failed");
    std::fs::File::open(dir.join("app-1.dump"))
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(2 * 86_400))
        .unwrap();
    verify()
        .run()
        .assert_code(1)
        .assert_stdout_contains("older than max_age 1day 2h");
    env.opsh(["run", &script])
        .script_arg("dir", env.dir("none").display())
        .run()
        .assert_code(1)
        .assert_stdout_contains("no backup matching *");
}

/// `pg_dump | zstd` and `pg_dump | gzip`, made with the real CLIs as cron
/// jobs make them: streamed to the end, the SQL inside checked in the same
/// pass, restored through a pipe into psql; a cut-off or damaged stream is
/// named as such.
#[test]
fn compressed_plain_dumps_verify_and_restore() {
    let (_sb, url, env, dir) = seeded();
    pg_dump(&env, &url, &dir.join("app.sql"), "format: \"plain\"");
    let sh = |cmd: &str| {
        let ok = std::process::Command::new("sh")
            .args(["-c", cmd])
            .current_dir(&dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "{cmd}");
    };
    sh("zstd -q -19 -o app.sql.zst app.sql && gzip -9 -c app.sql > app.sql.gz");
    for name in ["app.sql.zst", "app.sql.gz"] {
        copy(&dir.join(name), &dir.join(format!("cut-{name}")));
        truncate(
            &dir.join(format!("cut-{name}")),
            len(&dir.join(name)) * 2 / 3,
        );
        copy(&dir.join(name), &dir.join(format!("bad-{name}")));
        flip(&dir.join(format!("bad-{name}")), len(&dir.join(name)) / 2);
    }
    let restore = format!("restore: true, target: \"{url}\", format: \"sql\"");
    let items: Vec<(PathBuf, &str)> = vec![
        (dir.join("app.sql.zst"), restore.as_str()),
        (dir.join("app.sql.gz"), restore.as_str()),
        (dir.join("cut-app.sql.zst"), ""),
        (dir.join("cut-app.sql.gz"), ""),
        (dir.join("bad-app.sql.zst"), ""),
        (dir.join("bad-app.sql.gz"), ""),
    ];
    let reports = verify_many(&env, &items);
    for (r, kind) in reports[..2].iter().zip(["zstd", "gzip"]) {
        assert_eq!(r["ok"], true, "{r:#}");
        assert_eq!(r["format"], "sql", "{r:#}");
        assert!(
            check(r, "compression")["detail"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{kind} stream read to the end")),
            "{r:#}"
        );
        assert_eq!(r["info"]["restored_rows"]["public.events"], 2000, "{r:#}");
        assert_eq!(r["info"]["restored_rows"]["billing.invoices"], 30, "{r:#}");
    }
    assert_failed(
        &reports[2],
        "compression",
        "zstd stream ends early (truncated)",
    );
    assert_failed(
        &reports[3],
        "compression",
        "gzip stream ends early (truncated)",
    );
    assert_failed(&reports[4], "compression", "zstd stream is corrupt");
    assert_failed(&reports[5], "compression", "gzip stream is corrupt");
    // No scratch database is left behind.
    assert_eq!(
        pg_scalar(
            &url,
            "select count(*) from pg_database where datname like 'opsh_verify_%'"
        ),
        0
    );
}

/// Issue 22 (15): a restore trusted the archive's own row counts, so a dump
/// made with --exclude-table-data, or of a table emptied just before, passed.
/// Now tables without a data entry fail (unless `no_data` names them),
/// `min_rows` checks per table, and `compare` counts a live database.
#[test]
fn a_restore_reports_missing_data_and_compares_with_the_live_database() {
    let (_sb, url, env, dir) = seeded();
    let pg_dump_bin = opsh::pgbin::find("pg_dump").expect("pg_dump");
    let excluded = dir.join("no-events.dump");
    let out = std::process::Command::new(&pg_dump_bin)
        .args(["-Fc", "--exclude-table-data=public.events", "-f"])
        .arg(&excluded)
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A table emptied just before the dump, refilled after.
    pg_exec(&url, "create table invoices_copy as select * from billing.invoices; delete from billing.invoices;");
    let emptied = dir.join("emptied.dump");
    pg_dump(&env, &url, &emptied, "");
    pg_exec(
        &url,
        "insert into billing.invoices select * from invoices_copy; drop table invoices_copy;",
    );

    let restore = format!(r#"restore: true, target: "{url}""#);
    let reports = verify_many(
        &env,
        &[
            (excluded.clone(), restore.as_str()),
            (
                excluded.clone(),
                &format!(r#"{restore}, no_data: ["public.events"]"#),
            ),
            (
                emptied.clone(),
                &format!(
                    r#"{restore}, compare: "{url}", min_rows: #{{"billing.invoices": 1, "public.accounts": 500}}"#
                ),
            ),
            (
                emptied.clone(),
                &format!(r#"{restore}, compare: "{url}", tolerance_pct: 0"#),
            ),
        ],
    );
    assert_failed(
        &reports[0],
        "restore_data",
        "the archive holds no data for public.events",
    );
    assert_eq!(
        failed_names(&reports[0]),
        ["restore_data"],
        "{:#}",
        reports[0]
    );
    assert_eq!(reports[1]["ok"], true, "{:#}", reports[1]);
    assert!(check(&reports[1], "restore_data")["detail"]
        .as_str()
        .unwrap()
        .contains("as `no_data` allows: public.events"));
    // The emptied table restores "cleanly" and matches its archive: only the
    // expectations and the live database say it is wrong.
    assert_eq!(check(&reports[2], "restore_rows")["passed"], true);
    assert_failed(
        &reports[2],
        "min_rows: billing.invoices",
        "0 rows restored, fewer than the 1 expected",
    );
    assert_eq!(
        check(&reports[2], "min_rows: public.accounts")["passed"],
        true
    );
    assert_failed(
        &reports[2],
        "compare",
        "billing.invoices: 0 rows restored, 30 live",
    );
    assert_eq!(
        failed_names(&reports[2]).len(),
        2,
        "{:?}",
        failed_names(&reports[2])
    );
    assert_failed(&reports[3], "compare", "billing.invoices");
    // Every scratch database is gone; the live database is untouched.
    assert_eq!(
        pg_scalar(
            &url,
            "select count(*) from pg_database where datname like 'opsh_verify_%'"
        ),
        0
    );
    assert_eq!(pg_scalar(&url, "select count(*) from billing.invoices"), 30);
    // A full dump compares clean.
    let full = dir.join("full.dump");
    pg_dump(&env, &url, &full, "");
    let r = verify_many(
        &env,
        &[(
            full,
            &format!(r#"{restore}, compare: "{url}", tolerance_pct: 0"#),
        )],
    );
    assert_eq!(r[0]["ok"], true, "{:#}", r[0]);
    // The new options need a restore.
    env.script(&format!(
        r#"backup.verify("{}", #{{compare: "{url}"}})"#,
        emptied.display()
    ))
    .run()
    .assert_code(2)
    .assert_stderr_contains(
        "option `compare` compares a restored database: it needs `restore: true`",
    );
}

/// Issue 22 (11): `opsh help` says a mutation asks for confirmation on a
/// protected target; verify's restore on one used to run without asking.
#[test]
fn a_restore_on_a_protected_target_asks_first() {
    let (_sb, url, env, dir) = seeded();
    let dump = dir.join("app.dump");
    pg_dump(&env, &url, &dump, "");
    env.write_config(&format!(
        "[pg.restore-test]\nurl = \"{url}\"\nprotected = true\n"
    ));
    let script = format!(
        r#"print(backup.verify("{}", #{{restore: true, target: "restore-test"}}).ok)"#,
        dump.display()
    );
    env.script(&script)
        .run()
        .assert_code(3)
        .assert_stderr_contains("protected target restore-test")
        .assert_stderr_contains("--yes");
    assert_eq!(
        pg_scalar(
            &url,
            "select count(*) from pg_database where datname like 'opsh_verify_%'"
        ),
        0
    );
    env.script(&script)
        .flag("--dry-run")
        .run()
        .assert_code(0)
        .assert_stderr_contains("a protected target: the real run asks for confirmation");
    env.script(&script)
        .flag("--yes")
        .run()
        .assert_code(0)
        .assert_stdout("true\n");
}
/// A custom archive is checked natively: with a pg_restore that fails and
/// leaves a mark (OPSH_PG_BINDIR), the default gzip archive and an
/// uncompressed one (`-Z0`) pass with the source's rows per table, one
/// flipped byte inside a data block is caught by name, and nothing ran
/// pg_restore.
#[test]
fn custom_archives_are_verified_without_pg_restore() {
    let (_sb, url, env, dir) = seeded();
    let gz = dir.join("gz.dump");
    pg_dump(&env, &url, &gz, "format: \"custom\"");
    let plain = dir.join("z0.dump");
    let pg_dump_bin = opsh::pgbin::find("pg_dump").expect("pg_dump");
    let out = std::process::Command::new(pg_dump_bin)
        .args(["-Fc", "-Z0", "-f"])
        .arg(&plain)
        .arg(&url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // Rows of billing.invoices sit in the last data block: flip a byte
    // inside the compressed stream of public.events, the biggest one.
    let bad = dir.join("bad.dump");
    std::fs::copy(&gz, &bad).unwrap();
    flip(&bad, len(&bad) / 2);
    // A pg_restore that fails and leaves a mark if anything runs it.
    let tools = env.dir("fake-pg-tools");
    let mark = env.path("pg_restore-ran");
    let fake = tools.join("pg_restore");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\ntouch {}\necho fake pg_restore >&2\nexit 1\n",
            mark.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let items = [(gz.clone(), ""), (plain.clone(), ""), (bad.clone(), "")];
    let mut script = String::new();
    for (p, _) in &items {
        script.push_str(&format!(
            "print(json.stringify(backup.verify(\"{}\", #{{fail: false}})));\n",
            p.display()
        ));
    }
    let r = env
        .script(&script)
        .env("OPSH_PG_BINDIR", tools.display().to_string())
        .run();
    r.assert_code(0);
    assert!(!mark.exists(), "backup.verify ran pg_restore");
    let reports = r.json_lines();
    for r in &reports[..2] {
        assert_eq!(r["ok"], true, "{r:#}");
        assert_eq!(r["format"], "pg_custom");
        assert_eq!(r["info"]["table_rows"]["public.accounts"], 500, "{r:#}");
        assert_eq!(r["info"]["table_rows"]["public.events"], 2000, "{r:#}");
        assert_eq!(r["info"]["table_rows"]["billing.invoices"], 30, "{r:#}");
        assert_eq!(r["info"]["rows"], 2530);
        assert_eq!(r["info"]["data_entries"], 3);
        assert_eq!(r["info"]["database"], "postgres");
        assert!(check(r, "archive")["detail"]
            .as_str()
            .unwrap()
            .contains("every data block read"));
    }
    assert_eq!(reports[0]["info"]["archive_compression"], "gzip");
    assert_eq!(reports[1]["info"]["archive_compression"], "none");
    assert_failed(
        &reports[2],
        "archive",
        "could not uncompress data of TABLE DATA public.events (gzip)",
    );
}
