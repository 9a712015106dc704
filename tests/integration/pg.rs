use crate::support::*;

#[test]
fn query_returns_typed_rows_that_match_the_server() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(&url, "create table items(id int primary key, name text, price numeric(10,2), tags text[], meta jsonb, seen timestamptz);
                   insert into items values (1, 'bolt', 2.50, '{a,b}', '{\"k\": 1}', '2024-01-02 03:04:05+00'), (2, 'nut', 10, '{}', null, null);");
    Env::new()
        .script(
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
        )
        .pg(&url)
        .run()
        .assert_code(0)
        .assert_stdout(
            "2\ni64 f64 string\n2.5\n[\"a\", \"b\"]\n1\n2024-01-02T03:04:05Z\ntrue\n2\n",
        );
    assert_eq!(pg_scalar(&url, "select count(*) from items"), 2);
}

#[test]
fn exec_changes_the_server_and_reports_rows_affected() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(&url, "create table jobs(id int, state text); insert into jobs select g, 'stuck' from generate_series(1, 5) g;");
    let env = Env::new();
    env.script(r#"let r = pg.exec("update jobs set state = 'queued' where state = $1 and id <= $2", ["stuck", 3]); print(r.rows_affected);"#)
        .pg(&url)
        .run()
        .assert_code(0)
        .assert_stdout("3\n");
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
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(
        &url,
        "create table t(id int); insert into t select generate_series(1, 1000); analyze t;",
    );
    let env = Env::new();
    let r = env
        .script(r#"let p = pg.exec("delete from t where id > $1", [0]); print(p.dry_run); print(p.estimated_rows > 0); print(p.action);"#)
        .pg(&url)
        .flag("--dry-run")
        .run();
    r.assert_code(0).assert_stderr_contains("[dry-run] pg.exec");
    assert!(r.stdout.starts_with("true\ntrue\nwould execute `delete from t where id > $1` (Delete on t, planner estimates"), "{}", r.stdout);
    assert_eq!(
        pg_scalar(&url, "select count(*) from t"),
        1000,
        "dry run deleted rows"
    );
    // DDL cannot be explained; it is still not executed.
    env.script(r#"pg.exec("drop table t")"#)
        .pg(&url)
        .flag("--dry-run")
        .run()
        .assert_code(0);
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 1000);
    // Both calls are in the audit log, as plans and nothing else.
    let audit = env.audit();
    let records: Vec<(&str, &str, &str)> = audit
        .iter()
        .map(|a| {
            (
                a["primitive"].as_str().unwrap_or(""),
                a["phase"].as_str().unwrap_or(""),
                a["mode"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(records, [("pg.exec", "plan", "dry-run"); 2], "{audit:?}");
}

#[test]
fn sql_error_shows_sqlstate_and_position() {
    let sb = sandbox(&[Pg]);
    Env::new()
        .script("let a = 1;\nlet rows = pg.query(\"selec 1\");\n")
        .pg(&sb.pg_url())
        .run()
        .assert_code(2)
        .assert_stderr_contains("error: pg.query failed")
        .assert_stderr_contains("script.rhai:2:15")
        .assert_stderr_contains("SQLSTATE 42601")
        .assert_stderr_contains("let rows = pg.query(\"selec 1\");");
}

#[test]
fn connect_to_named_target_and_handles_in_functions() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    let env = Env::new();
    env.write_config(&format!("[pg.staging]\nurl = \"{url}\"\n"));
    env.script(
        r#"
        fn count_dbs(db) { db.query("select count(*) as n from pg_database")[0].n }
        fn via_module() { pg.query("select 7 as x")[0].x }
        let db = pg.connect("staging");
        print(count_dbs(db) >= 3);
        print(via_module());
        "#,
    )
    .pg(&url)
    .run()
    .assert_code(0)
    .assert_stdout("true\n7\n");
    env.script(r#"pg.connect("stagin")"#)
        .run()
        .assert_code(2)
        .assert_stderr_contains("did you mean `staging`?");
}

/// Issue 18: opsh used to open a throwaway connection before its pool's
/// first: two connects per target, and on a server with one free slot the
/// second could find it still taken. The first connection is now the
/// pool's: a server filled to its last slot still answers, and its log
/// shows one opsh session for the run.
#[test]
fn one_connection_per_target_even_on_a_server_with_one_free_slot() {
    use sqlx::{Connection, PgConnection};
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(&url, "alter system set log_connections = on");
    pg_exec(&url, "select pg_reload_conf()");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Every slot taken (the sandbox's role is a superuser, so the reserved
    // ones too), then exactly one freed.
    let mut held: Vec<PgConnection> = Vec::new();
    rt.block_on(async {
        loop {
            match PgConnection::connect(&url).await {
                Ok(c) => held.push(c),
                Err(e) => {
                    assert!(e.to_string().contains("too many clients"), "{e}");
                    break;
                }
            }
            assert!(held.len() < 200, "max_connections was never reached");
        }
        let last = held.pop().unwrap();
        last.close().await.unwrap();
        // The slot is free once the backend has gone from pg_stat_activity
        // (and a moment more for its process entry).
        for _ in 0..100 {
            let n: i64 = sqlx::query_scalar(
                "select count(*) from pg_stat_activity where backend_type = 'client backend'",
            )
            .fetch_one(&mut *held.last_mut().unwrap())
            .await
            .unwrap();
            if n as usize == held.len() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    });
    let log_before = std::fs::read_to_string(&sb.pg().log).unwrap_or_default();
    Env::new()
        .script("let c = pg.connections(); print(c.total); print(c.available <= 0);")
        .pg(&url)
        .run()
        .assert_code(0)
        .assert_stdout(&format!("{}\ntrue\n", held.len() + 1));
    let log = std::fs::read_to_string(&sb.pg().log).unwrap();
    let opsh_sessions = log[log_before.len()..]
        .lines()
        .filter(|l| l.contains("connection authorized") && l.contains("application_name=opsh"))
        .count();
    assert_eq!(opsh_sessions, 1, "{}", &log[log_before.len()..]);
    drop(held);
}

/// A pooled connection is lent without a ping only just after it was
/// checked on its return: one idle for longer (here, killed by another
/// session meanwhile) is checked first, and the call gets a new one.
#[test]
fn a_session_killed_while_idle_is_replaced_before_the_next_call() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    let env = Env::new();
    let mut child = env
        .script(
            "let before = pg.query(\"select pg_backend_pid() as pid\")[0].pid;\n\
             print(\"connected\");\n\
             sleep(2.0);\n\
             let after = pg.query(\"select pg_backend_pid() as pid\")[0].pid;\n\
             print(before != after);",
        )
        .pg(&url)
        .spawn();
    let lines = Lines::of(&mut child);
    eventually(secs(10), "the first query", || {
        lines.count("connected") == 1
    });
    let killed = pg_scalar(
        &url,
        "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity \
         where application_name = 'opsh' and pid <> pg_backend_pid()) k",
    );
    assert_eq!(killed, 1, "opsh holds one session");
    let r = wait_output(child);
    r.assert_code(0);
    assert_eq!(lines.all(), ["connected", "true"], "{}", r.stderr);
}

/// Issue 18: a script that calls pg on its default target has that
/// connection started at launch, concurrently with the rest of start-up;
/// the first call takes it over (still one session), and a prewarm that
/// fails is forgotten unless the script does call pg.
#[test]
fn the_default_target_is_connected_at_launch_and_a_failed_prewarm_is_lazy() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(&url, "alter system set log_connections = on");
    pg_exec(&url, "select pg_reload_conf()");
    let opsh_sessions = |log: &str| {
        log.lines()
            .filter(|l| l.contains("connection authorized") && l.contains("application_name=opsh"))
            .count()
    };
    let env = Env::new();
    let log_before = std::fs::read_to_string(&sb.pg().log).unwrap_or_default();
    // Never called: connected all the same, in the background.
    env.script("if false { pg.ping() } sleep(0.5); print(\"done\");")
        .pg(&url)
        .run()
        .assert_code(0)
        .assert_stdout("done\n");
    let log = std::fs::read_to_string(&sb.pg().log).unwrap();
    assert_eq!(opsh_sessions(&log[log_before.len()..]), 1, "{log}");
    // Called: the prewarmed connection is the one used.
    let log_before = log;
    env.script("pg.ping(); print(pg.query(\"select 1 as one\")[0].one);")
        .pg(&url)
        .run()
        .assert_code(0)
        .assert_stdout("1\n");
    let log = std::fs::read_to_string(&sb.pg().log).unwrap();
    assert_eq!(opsh_sessions(&log[log_before.len()..]), 1, "{log}");
    // Nothing listens: a script that does not get to its pg call is not
    // failed by the prewarm, and one that does gets the usual error.
    let port = opsh::sandbox::free_port().unwrap();
    let dead = format!("postgres://app@127.0.0.1:{port}/db");
    env.script("if false { pg.ping() } print(\"fine\");")
        .pg(&dead)
        .run()
        .assert_code(0)
        .assert_stdout("fine\n")
        .assert_stderr_lacks("cannot connect");
    env.script("pg.ping()")
        .pg(&dead)
        .run()
        .assert_code(2)
        .assert_stderr_contains("refused the connection to DATABASE_URL");
}

/// A server with no free slot: the pool retries until its connect timeout,
/// and the error then says why (PostgreSQL's 53300), not only "timed out".
#[test]
fn a_full_server_is_named_as_such_after_the_connect_timeout() {
    use sqlx::{Connection, PgConnection};
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut held: Vec<PgConnection> = Vec::new();
    rt.block_on(async {
        while held.len() < 200 {
            match PgConnection::connect(&url).await {
                Ok(c) => held.push(c),
                Err(_) => break,
            }
        }
    });
    let env = Env::new();
    env.write_config("[defaults]\npg_connect_timeout = \"1s\"\n");
    env.script("pg.ping()")
        .pg(&url)
        .run()
        .assert_code(2)
        .assert_stderr_contains("SQLSTATE 53300")
        .assert_stderr_contains("no free connection slots");
    drop(held);
}
