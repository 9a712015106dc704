use crate::support::*;

#[test]
fn query_returns_typed_rows_that_match_the_server() {
    let sb = sandbox(true, false);
    let url = sb.postgres.as_ref().unwrap().url();
    pg_exec(&url, "create table items(id int primary key, name text, price numeric(10,2), tags text[], meta jsonb, seen timestamptz);
                   insert into items values (1, 'bolt', 2.50, '{a,b}', '{\"k\": 1}', '2024-01-02 03:04:05+00'), (2, 'nut', 10, '{}', null, null);");
    let env = Env::new();
    let r = env.run(
        r#"
        let rows = pg.query("select id, name, price, tags, meta, seen from items where id >= $1 order by id", [1]);
        print(rows.len());
        let a = rows[0];
        print(type_of(a.id) + " " + type_of(a.price) + " " + type_of(a.name));
        print(a.price);
        print(a.tags);
        print(a.meta.k);
        print(a.seen);
        print(rows[1].meta == ());
        let total = pg.query("select count(*) as n from items")[0].n;
        print(total);
        "#,
        &[],
        &[("DATABASE_URL", &url)],
    );
    r.assert_code(0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines,
        vec![
            "2",
            "i64 f64 string",
            "2.5",
            "[\"a\", \"b\"]",
            "1",
            "2024-01-02T03:04:05Z",
            "true",
            "2"
        ],
        "{}",
        r.stderr
    );
    assert_eq!(pg_scalar(&url, "select count(*) from items"), 2);
}

#[test]
fn exec_changes_the_server_and_reports_rows_affected() {
    let sb = sandbox(true, false);
    let url = sb.postgres.as_ref().unwrap().url();
    pg_exec(&url, "create table jobs(id int, state text); insert into jobs select g, 'stuck' from generate_series(1, 5) g;");
    let env = Env::new();
    let r = env.run(
        r#"let r = pg.exec("update jobs set state = 'queued' where state = $1 and id <= $2", ["stuck", 3]); print(r.rows_affected);"#,
        &[],
        &[("DATABASE_URL", &url)],
    );
    r.assert_code(0);
    assert_eq!(r.stdout.trim(), "3");
    assert_eq!(
        pg_scalar(&url, "select count(*) from jobs where state = 'queued'"),
        3
    );
    // Audited: intent before, outcome after.
    let audit = env.audit();
    let phases: Vec<&str> = audit.iter().filter_map(|a| a["phase"].as_str()).collect();
    assert_eq!(phases, vec!["intent", "outcome"]);
    assert_eq!(audit[1]["outcome"], "ok");
    assert_eq!(audit[1]["primitive"], "pg.exec");
    assert_eq!(audit[1]["mode"], "real");
    assert_eq!(audit[1]["args"]["params"][0], "stuck");
    for field in [
        "ts",
        "user",
        "host",
        "script",
        "target",
        "duration_ms",
        "run_id",
    ] {
        assert!(
            !audit[1][field].is_null(),
            "audit record lacks {field}: {}",
            audit[1]
        );
    }
}

#[test]
fn dry_run_reads_real_state_and_changes_nothing() {
    let sb = sandbox(true, false);
    let url = sb.postgres.as_ref().unwrap().url();
    pg_exec(
        &url,
        "create table t(id int); insert into t select generate_series(1, 1000); analyze t;",
    );
    let env = Env::new();
    let r = env.run(
        r#"let p = pg.exec("delete from t where id > $1", [0]); print(p.dry_run); print(p.estimated_rows > 0); print(p.action);"#,
        &["--dry-run"],
        &[("DATABASE_URL", &url)],
    );
    r.assert_code(0);
    assert!(r.stdout.starts_with("true\ntrue\nwould execute `delete from t where id > $1` (Delete on t, planner estimates"), "{}", r.stdout);
    assert!(r.stderr.contains("[dry-run] pg.exec"), "{}", r.stderr);
    assert_eq!(
        pg_scalar(&url, "select count(*) from t"),
        1000,
        "dry run deleted rows"
    );
    // DDL cannot be explained; it is still not executed.
    let r = env.run(
        r#"pg.exec("drop table t")"#,
        &["--dry-run"],
        &[("DATABASE_URL", &url)],
    );
    r.assert_code(0);
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 1000);
    let audit = env.audit();
    assert!(audit.iter().all(|a| a["mode"] == "dry-run"), "{audit:?}");
}

#[test]
fn sql_error_shows_sqlstate_and_position() {
    let sb = sandbox(true, false);
    let url = sb.postgres.as_ref().unwrap().url();
    let env = Env::new();
    let r = env.run(
        "let a = 1;\nlet rows = pg.query(\"selec 1\");\n",
        &[],
        &[("DATABASE_URL", &url)],
    );
    r.assert_code(2);
    assert!(r.stderr.contains("error: pg.query failed"), "{}", r.stderr);
    assert!(r.stderr.contains("script.rhai:2:15"), "{}", r.stderr);
    assert!(r.stderr.contains("SQLSTATE 42601"), "{}", r.stderr);
    assert!(
        r.stderr.contains("let rows = pg.query(\"selec 1\");"),
        "{}",
        r.stderr
    );
}

#[test]
fn connect_to_named_target_and_handles_in_functions() {
    let sb = sandbox(true, false);
    let url = sb.postgres.as_ref().unwrap().url();
    let env = Env::new();
    env.write_config(&format!("[pg.staging]\nurl = \"{url}\"\n"));
    let r = env.run(
        r#"
        fn count_dbs(db) { db.query("select count(*) as n from pg_database")[0].n }
        fn via_module() { pg.query("select 7 as x")[0].x }
        let db = pg.connect("staging");
        print(count_dbs(db) >= 3);
        print(via_module());
        "#,
        &[],
        &[("DATABASE_URL", &url)],
    );
    r.assert_code(0);
    assert_eq!(r.stdout, "true\n7\n");
    let r = env.run(r#"pg.connect("stagin")"#, &[], &[]);
    r.assert_code(2);
    assert!(r.stderr.contains("did you mean `staging`?"), "{}", r.stderr);
}
