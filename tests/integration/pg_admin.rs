//! The pg admin primitives against real sessions: the test opens idle,
//! idle-in-transaction and active (pg_sleep) connections under different
//! roles and application names, runs the real binary, and checks
//! pg_stat_activity afterwards.

use crate::support::*;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use std::str::FromStr;
use std::time::{Duration, Instant};

#[derive(Clone, Copy)]
enum State {
    Idle,
    IdleInTx,
    Active,
}

/// Real sessions, kept open until the value is dropped.
struct Held {
    rt: tokio::runtime::Runtime,
    conns: Vec<PgConnection>,
    url: String,
}

impl Held {
    fn new(url: &str) -> Held {
        Held {
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
            conns: Vec::new(),
            url: url.to_string(),
        }
    }

    fn options(&self, user: &str, app: &str) -> PgConnectOptions {
        let o = PgConnectOptions::from_str(&self.url)
            .unwrap()
            .application_name(app);
        if user == "opsh" {
            o
        } else {
            o.username(user).password("pw")
        }
    }

    /// Opens a session as `user` with `application_name = app` and returns its pid.
    fn open(&mut self, user: &str, app: &str, state: State) -> i64 {
        let opts = self.options(user, app);
        match state {
            State::Active => {
                let (tx, rx) = std::sync::mpsc::channel();
                self.rt.spawn(async move {
                    let mut c = PgConnection::connect_with(&opts).await.unwrap();
                    let pid: i32 = sqlx::query_scalar("select pg_backend_pid()")
                        .fetch_one(&mut c)
                        .await
                        .unwrap();
                    tx.send(pid as i64).unwrap();
                    // Ends with an error when cancelled or terminated.
                    let _ = sqlx::query("select pg_sleep(60)").execute(&mut c).await;
                    // Keep the session open after a cancel.
                    tokio::time::sleep(Duration::from_secs(60)).await;
                });
                let pid = rx.recv_timeout(Duration::from_secs(10)).unwrap();
                wait_for(&self.url, &format!("select count(*) from pg_stat_activity where pid = {pid} and state = 'active'"));
                pid
            }
            _ => {
                let mut c = self.rt.block_on(PgConnection::connect_with(&opts)).unwrap();
                let pid: i32 = self
                    .rt
                    .block_on(sqlx::query_scalar("select pg_backend_pid()").fetch_one(&mut c))
                    .unwrap();
                if matches!(state, State::IdleInTx) {
                    self.rt
                        .block_on(sqlx::raw_sql("begin; select 1").execute(&mut c))
                        .unwrap();
                }
                self.conns.push(c);
                pid as i64
            }
        }
    }
}

impl Held {
    /// A query on the newest held session, so its idle time restarts.
    fn touch_last(&mut self) {
        let c = self.conns.last_mut().unwrap();
        self.rt
            .block_on(sqlx::query("select 1").execute(&mut *c))
            .unwrap();
    }
}

/// Waits until `sql` (a count) is 1, for up to 10 s.
#[track_caller]
fn wait_for(url: &str, sql: &str) {
    eventually(secs(10), sql, || pg_scalar(url, sql) == 1);
}

fn alive(url: &str, pid: i64) -> bool {
    pg_scalar(
        url,
        &format!("select count(*) from pg_stat_activity where pid = {pid}"),
    ) == 1
}

fn roles(url: &str) {
    pg_exec(
        url,
        "create role alice login password 'pw'; create role bob login password 'pw';",
    );
}

/// The ints a script printed, one per line, after a first `count` line.
fn printed_pids(stdout: &str) -> Vec<i64> {
    let mut v: Vec<i64> = stdout
        .lines()
        .skip(1)
        .map(|l| l.trim().parse().unwrap())
        .collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<i64>) -> Vec<i64> {
    v.sort();
    v
}

/// Runs `script` against `url`: it must fail (exit 2) and say `needle`.
#[track_caller]
fn fails_with(env: &Env, url: &str, script: &str, needle: &str) {
    env.script(script)
        .pg(url)
        .run()
        .assert_code(2)
        .assert_stderr_contains(needle);
}

#[test]
fn terminate_idle_ends_exactly_the_matching_sessions() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    roles(&url);
    let mut held = Held::new(&url);
    let idle = held.open("alice", "web", State::Idle);
    let in_tx = held.open("alice", "web", State::IdleInTx);
    let bob_idle = held.open("bob", "worker", State::Idle);
    let bouncer = held.open("alice", "pgbouncer", State::Idle);
    let superuser = held.open("opsh", "admin", State::Idle);
    let active = held.open("alice", "web", State::Active);
    std::thread::sleep(Duration::from_millis(2200));
    let fresh = held.open("alice", "web", State::Idle);
    let others = "select count(*) from pg_stat_activity where backend_type <> 'client backend'";
    let workers_before = pg_scalar(&url, others);
    let env = Env::new();
    let script = r#"
        let r = pg.terminate_idle(#{older_than: "2s", exclude_applications: ["pgbouncer"]});
        print(r.count);
        for s in r.sessions { print(s.pid) }
    "#;
    let expected = sorted(vec![idle, in_tx, bob_idle]);

    // Dry run: the same list, nobody touched.
    held.touch_last();
    let r = env.script(script).pg(&url).flag("--dry-run").run();
    r.assert_code(0);
    assert_eq!(printed_pids(&r.stdout), expected, "{}", r.stderr);
    assert!(
        r.stderr.contains("would terminate 3 sessions"),
        "{}",
        r.stderr
    );
    for pid in [idle, in_tx, bob_idle, bouncer, superuser, active, fresh] {
        assert!(alive(&url, pid), "dry run killed {pid}");
    }

    held.touch_last();
    let r = env.script(script).pg(&url).run();
    r.assert_code(0);
    assert_eq!(r.stdout.lines().next(), Some("3"), "{}", r.stderr);
    assert_eq!(printed_pids(&r.stdout), expected);
    for pid in [idle, in_tx, bob_idle] {
        assert!(!alive(&url, pid), "{pid} should be gone");
    }
    for pid in [bouncer, superuser, active, fresh] {
        assert!(alive(&url, pid), "{pid} should be alive");
    }
    assert_eq!(
        pg_scalar(&url, others),
        workers_before,
        "a background process was hit"
    );
    let audit = env.audit();
    assert!(audit.iter().any(|a| a["primitive"] == "pg.terminate_idle"
        && a["mode"] == "real"
        && a["outcome"] == "ok"));

    // Superusers only on request.
    env.script(r#"print(pg.terminate_idle(#{older_than: 0, application: "admin"}).count)"#)
        .pg(&url)
        .run()
        .assert_code(0)
        .assert_stdout("0\n");
    assert!(alive(&url, superuser));
    env.script(r#"print(pg.terminate_idle(#{older_than: 0, application: "admin", include_superusers: true}).count)"#)
        .pg(&url)
        .run()
        .assert_code(0)
        .assert_stdout("1\n");
    assert!(!alive(&url, superuser));
    assert!(alive(&url, bouncer) && alive(&url, fresh) && alive(&url, active));
}

#[test]
fn cancel_and_terminate_act_on_active_queries_only() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    roles(&url);
    let mut held = Held::new(&url);
    let report = held.open("alice", "report", State::Active);
    let api = held.open("bob", "api", State::Active);
    let idle = held.open("alice", "report", State::Idle);
    std::thread::sleep(Duration::from_millis(1200));
    let env = Env::new();
    let r = env
        .script(r#"let r = pg.cancel(#{older_than: "1s", user: "alice"}); print(r.count); for s in r.sessions { print(s.pid) }"#)
        .pg(&url)
        .run();
    r.assert_code(0);
    assert_eq!(printed_pids(&r.stdout), vec![report], "{}", r.stderr);
    // Cancelled, not disconnected.
    assert!(alive(&url, report));
    assert_eq!(
        pg_scalar(
            &url,
            &format!(
                "select count(*) from pg_stat_activity where pid = {report} and state = 'active'"
            )
        ),
        0
    );
    assert_eq!(
        pg_scalar(
            &url,
            &format!(
                "select count(*) from pg_stat_activity where pid = {api} and state = 'active'"
            )
        ),
        1
    );

    let r = env
        .script(r#"let r = pg.terminate(#{older_than: "1s", application: ["api", "report"]}); print(r.count); for s in r.sessions { print(s.pid) }"#)
        .pg(&url)
        .run();
    r.assert_code(0);
    assert_eq!(printed_pids(&r.stdout), vec![api], "{}", r.stderr);
    assert!(!alive(&url, api));
    assert!(alive(&url, report) && alive(&url, idle));
}

#[test]
fn max_and_protected_targets_refuse() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    roles(&url);
    let mut held = Held::new(&url);
    let pids: Vec<i64> = (0..3)
        .map(|_| held.open("alice", "web", State::Idle))
        .collect();
    let env = Env::new();
    let script = r#"print(pg.connect("prod").terminate_idle(#{older_than: 0, user: "alice", max: 2}).count)"#;
    env.write_config(&format!("[pg.prod]\nurl = \"{url}\"\nprotected = true\n"));
    let r = env.script(script).flag("--yes").run();
    r.assert_code(3)
        .assert_stderr_contains("3 sessions match, more than max 2");
    assert!(pids.iter().all(|p| alive(&url, *p)));
    // The default max comes from the config.
    env.write_config(&format!(
        "[defaults]\npg_max_terminate = 1\n[pg.prod]\nurl = \"{url}\"\nprotected = true\n"
    ));
    let unbounded =
        r#"print(pg.connect("prod").terminate_idle(#{older_than: 0, user: "alice"}).count)"#;
    env.script(unbounded)
        .flag("--yes")
        .run()
        .assert_code(3)
        .assert_stderr_contains("more than max 1");
    // Dry-run reports the refusal to come, and kills nothing.
    let r = env.script(unbounded).flag("--dry-run").run();
    r.assert_code(0).assert_stderr_contains("would be refused");
    assert!(pids.iter().all(|p| alive(&url, *p)));
    // Protected: no --yes, no terminal: refused.
    let ok = r#"print(pg.connect("prod").terminate_idle(#{older_than: 0, user: "alice", max: 3}).count)"#;
    env.script(ok)
        .run()
        .assert_code(3)
        .assert_stderr_contains("protected target prod");
    assert!(pids.iter().all(|p| alive(&url, *p)));
    env.script(ok)
        .flag("--yes")
        .run()
        .assert_code(0)
        .assert_stdout("3\n");
    assert!(pids.iter().all(|p| !alive(&url, *p)));
}

#[test]
fn activity_connections_and_long_running_see_the_real_sessions() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    roles(&url);
    let mut held = Held::new(&url);
    let idle = held.open("alice", "web", State::Idle);
    let in_tx = held.open("alice", "web", State::IdleInTx);
    let active = held.open("bob", "batch", State::Active);
    std::thread::sleep(Duration::from_millis(1100));
    let env = Env::new();
    let r = env
        .script(
            r#"
        let a = pg.activity(#{user: ["alice", "bob"]});
        print(a.len());
        for s in a { print(`${s.pid} ${s.user} ${s.application} ${s.state} ${s.backend_type} ${s.state_s >= 1.0}`) }
        let c = pg.connections();
        print(c.by_user.filter(|u| u.user == "alice")[0].connections);
        print(`${c.active >= 1} ${c.idle_in_transaction} ${c.max_connections} ${c.total <= c.max_connections} ${type_of(c.saturation_pct)}`);
        let l = pg.long_running(#{min: "1s"});
        print(l.map(|s| s.pid));
        print(pg.long_running(#{min: "1h"}).len());
        print(pg.activity(#{states: "idle in transaction"}).map(|s| s.pid));
        "#,
        )
        .pg(&url)
        .run();
    r.assert_code(0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "3", "{}", r.stdout);
    let mut sessions: Vec<&str> = lines[1..4].to_vec();
    sessions.sort();
    let mut want = vec![
        format!("{idle} alice web idle client backend true"),
        format!("{in_tx} alice web idle in transaction client backend true"),
        format!("{active} bob batch active client backend true"),
    ];
    want.sort();
    assert_eq!(sessions, want);
    assert_eq!(lines[4], "2");
    assert_eq!(lines[5], "true 1 100 true f64");
    assert_eq!(lines[6], format!("[{active}]"));
    assert_eq!(lines[7], "0");
    assert_eq!(lines[8], format!("[{in_tx}]"));
    // A typo in a filter is an error, not a wider match.
    fails_with(
        &env,
        &url,
        r#"pg.terminate_idle(#{olderthan: "1m"})"#,
        "did you mean `older_than`?",
    );
    assert!(alive(&url, idle) && alive(&url, in_tx));
}

#[test]
fn blocking_sees_a_real_lock_wait() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(
        &url,
        "create table acct(id int primary key, n int); insert into acct values (1, 0);",
    );
    let mut held = Held::new(&url);
    let holder = held.open("opsh", "holder", State::Idle);
    let c = held.conns.last_mut().unwrap();
    held.rt
        .block_on(sqlx::raw_sql("begin; update acct set n = n + 1 where id = 1").execute(&mut *c))
        .unwrap();
    let opts = held.options("opsh", "waiter");
    let (tx, rx) = std::sync::mpsc::channel();
    held.rt.spawn(async move {
        let mut c = PgConnection::connect_with(&opts).await.unwrap();
        let pid: i32 = sqlx::query_scalar("select pg_backend_pid()")
            .fetch_one(&mut c)
            .await
            .unwrap();
        tx.send(pid as i64).unwrap();
        let _ = sqlx::query("update acct set n = n + 10 where id = 1")
            .execute(&mut c)
            .await;
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    let waiter = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    wait_for(&url, &format!("select count(*) from pg_stat_activity where pid = {waiter} and wait_event_type = 'Lock'"));
    let env = Env::new();
    let r = env
        .script(r#"for w in pg.blocking() { print(`${w.blocked_pid} ${w.blocking_pid} ${w.lock_type} ${w.lock_mode} ${w.wait_s >= 0.0} ${w.blocking_state}`) }"#)
        .pg(&url)
        .run();
    r.assert_code(0);
    assert_eq!(
        r.stdout.trim(),
        format!("{waiter} {holder} transactionid ShareLock true idle in transaction"),
        "{}",
        r.stderr
    );
}

#[test]
fn slow_queries_reads_pg_stat_statements_and_explains_a_missing_extension() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(&url, "create extension pg_stat_statements; create table t(id int); insert into t select generate_series(1, 100);");
    for _ in 0..3 {
        pg_exec(&url, "select count(*) from t where id > 50");
    }
    let env = Env::new();
    let r = env
        .script(
            r#"
        let q = pg.slow_queries(#{limit: 50, order_by: "calls"});
        let mine = q.filter(|x| x.query.contains("from t where id >"));
        print(mine.len());
        print(`${mine[0].calls} ${type_of(mine[0].mean_ms)} ${mine[0].user} ${mine[0].database}`);
        print(pg.slow_queries(#{limit: 2}).len());
        "#,
        )
        .pg(&url)
        .run();
    r.assert_code(0)
        .assert_stdout("1\n3 f64 opsh postgres\n2\n");
    fails_with(
        &env,
        &url,
        r#"pg.slow_queries(#{order_by: "slowest"})"#,
        "order_by must be one of",
    );
    // A database without the extension: the exact remedy.
    pg_exec(&url, "create database noext");
    let other = sb.pg().url_for("noext");
    env.script("pg.slow_queries()")
        .pg(&other)
        .run()
        .assert_code(2)
        .assert_stderr_contains("pg_stat_statements extension is not installed in database `noext`")
        .assert_stderr_contains("psql -d noext -c 'create extension pg_stat_statements;'");
}

#[test]
fn sizes_agree_with_the_server() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(&url, "create table big(id int primary key, pad text); insert into big select g, repeat('x', 500) from generate_series(1, 2000) g; create table small(id int);");
    let env = Env::new();
    let r = env
        .script(
            r#"
        let d = pg.db_size();
        print(d.bytes); print(d.database); print(d.size.len() > 0);
        print(pg.databases().filter(|x| x.database == "postgres")[0].bytes);
        let t = pg.table_sizes(#{schema: "public", limit: 1});
        print(t.len());
        print(`${t[0].table} ${t[0].total_bytes} ${t[0].index_bytes} ${t[0].total_bytes >= t[0].table_bytes + t[0].index_bytes}`);
        "#,
        )
        .pg(&url)
        .run();
    r.assert_code(0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    let db = pg_scalar(&url, "select pg_database_size('postgres')");
    assert_eq!(lines[0], db.to_string());
    assert_eq!(lines[1..3], ["postgres", "true"]);
    assert_eq!(lines[3], db.to_string());
    assert_eq!(lines[4], "1");
    let total = pg_scalar(&url, "select pg_total_relation_size('big')");
    let idx = pg_scalar(&url, "select pg_indexes_size('big')");
    assert_eq!(lines[5], format!("big {total} {idx} true"));
    env.script(r#"pg.db_size("nope")"#)
        .pg(&url)
        .run()
        .assert_code(2)
        .assert_stderr_contains("no database named `nope`");
}

#[test]
fn vacuum_analyze_and_reindex_run_on_the_named_object_only() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(
        &url,
        r#"create table jobs(id int primary key, state text); create index jobs_state_idx on jobs(state);
                     insert into jobs select g, 'done' from generate_series(1, 500) g; delete from jobs where id <= 250;
                     create table "Odd Name"(id int);"#,
    );
    let vacuumed = "select count(*) from pg_stat_user_tables where relname = 'jobs' and last_vacuum is not null and last_analyze is not null";
    let env = Env::new();
    env.script(r#"print(pg.vacuum_analyze("jobs").action)"#)
        .pg(&url)
        .flag("--dry-run")
        .run()
        .assert_code(0)
        .assert_stdout_contains("would VACUUM (ANALYZE) public.jobs");
    assert_eq!(pg_scalar(&url, vacuumed), 0);
    env.script(r#"print(pg.vacuum_analyze("jobs").table); print(pg.vacuum_analyze("\"Odd Name\"").table);"#)
        .pg(&url)
        .run()
        .assert_code(0)
        .assert_stdout("public.jobs\npublic.\"Odd Name\"\n");
    assert_eq!(pg_scalar(&url, vacuumed), 1);
    // Names are resolved by the server, never spliced into SQL.
    env.script(r#"pg.vacuum_analyze("jobs; drop table jobs")"#)
        .pg(&url)
        .run()
        .assert_code(2)
        .assert_stderr_contains("invalid name syntax (SQLSTATE 42602)");
    assert_eq!(pg_scalar(&url, "select count(*) from jobs"), 250);

    let oid = "select 'jobs_state_idx'::regclass::oid::int8";
    let before = pg_scalar(&url, oid);
    env.script(r#"print(pg.reindex(#{index: "jobs_state_idx", concurrently: true}).action)"#)
        .pg(&url)
        .flag("--dry-run")
        .run()
        .assert_code(0)
        .assert_stdout_contains("REINDEX INDEX CONCURRENTLY public.jobs_state_idx");
    assert_eq!(pg_scalar(&url, oid), before, "dry run rebuilt the index");
    let r = env
        .script(r#"let r = pg.reindex(#{index: "jobs_state_idx", concurrently: true}); print(`${r.indexes} ${r.bytes_after > 0}`);"#)
        .pg(&url)
        .run();
    r.assert_code(0).assert_stdout("1 true\n");
    assert_ne!(
        pg_scalar(&url, oid),
        before,
        "a concurrent rebuild makes a new index"
    );
    // A plain REINDEX TABLE rebuilds every index of the table in place:
    // same oids, new files.
    let files = "select sum(pg_relation_filenode(indexrelid)::int8)::int8 from pg_index where indrelid = 'jobs'::regclass";
    let (indexes, files_before) = (
        pg_scalar(
            &url,
            "select count(*) from pg_index where indrelid = 'jobs'::regclass",
        ),
        pg_scalar(&url, files),
    );
    env.script(r#"print(pg.reindex(#{table: "jobs"}).indexes)"#)
        .pg(&url)
        .run()
        .assert_code(0)
        .assert_stdout(&format!("{indexes}\n"));
    assert_ne!(pg_scalar(&url, files), files_before, "no index was rebuilt");
    fails_with(
        &env,
        &url,
        r#"pg.reindex(#{table: "jobs", index: "jobs_pkey"})"#,
        "exactly one of",
    );
    fails_with(
        &env,
        &url,
        r#"pg.reindex(#{database: "template1"})"#,
        "only on the database of the connection",
    );
}

#[test]
fn settings_version_replication_and_stats_are_typed() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(&url, "create table t(id int primary key, v int); create index t_v_idx on t(v); insert into t select g, g from generate_series(1, 100) g; select * from t where id = 5;");
    let env = Env::new();
    let r = env
        .script(
            r#"
        let s = pg.settings(["max_connections", "fsync"]);
        print(`${s[0].name} ${s[0].setting} ${s[1].name} ${s[1].setting} ${type_of(s[0].setting)}`);
        let v = pg.version();
        print(`${v.major * 10000 + v.minor == v.version_num} ${v.in_recovery}`);
        let r = pg.replication();
        print(`${r.in_recovery} ${r.replicas.len()} ${r.standby == ()}`);
        let c = pg.cache_hit_ratio();
        print(type_of(c.database));
        let u = pg.index_usage(#{unused_only: true});
        print(u.map(|i| i.index));
        print(pg.vacuum_stats().filter(|t| t.table == "t").len());
        "#,
        )
        .pg(&url)
        .run();
    r.assert_code(0);
    let v = pg_scalar(&url, "select current_setting('server_version_num')::int8");
    assert!(v >= 140000);
    assert_eq!(
        r.stdout,
        "fsync false max_connections 100 bool\ntrue false\nfalse 0 true\nf64\n[\"t_v_idx\"]\n1\n",
        "{}",
        r.stderr
    );
    fails_with(
        &env,
        &url,
        r#"pg.settings("max_conections")"#,
        "unknown setting `max_conections`",
    );
}

#[test]
fn statement_and_connect_timeouts_come_from_the_config() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    let env = Env::new();
    env.write_config("[defaults]\npg_statement_timeout = \"500ms\"\npg_connect_timeout = \"1s\"\n");
    let started = Instant::now();
    fails_with(
        &env,
        &url,
        r#"pg.query("select pg_sleep(5)")"#,
        "SQLSTATE 57014",
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    // The setting is on the session, visible to the server.
    env.script(r#"print(pg.settings("statement_timeout")[0].value)"#)
        .pg(&url)
        .run()
        .assert_code(0)
        .assert_stdout("500ms\n");
    // A server that accepts but never answers: the connect timeout ends it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let started = Instant::now();
    env.script("pg.ping()")
        .pg(&format!("postgres://u:secretpw@127.0.0.1:{port}/db"))
        .run()
        .assert_code(2)
        .assert_stderr_contains("timed out connecting")
        .assert_stderr_lacks("secretpw");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(silent);
}

/// Issue 22 (14): a role without privileges used to get "no session
/// matches" for sessions it could not see, a dry run promising what the
/// real run then failed to do, and a mixed filter half done. The
/// privileges are checked first, on the server, in the plan and the run.
#[test]
fn a_session_the_role_may_not_see_or_end_is_reported_before_acting() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    roles(&url);
    pg_exec(&url, "create role app login password 'pw'");
    let mut held = Held::new(&url);
    let bob = [
        held.open("bob", "worker", State::Idle),
        held.open("bob", "worker", State::IdleInTx),
    ];
    let own = held.open("app", "web", State::Idle);
    let as_app = url.replacen(&format!("opsh:{}@", sb.pg().password), "app:pw@", 1);
    let env = Env::new();

    // Cannot see: bob's sessions are not considered, and it says so.
    let r = env
        .script(r#"print(pg.terminate_idle(#{older_than: 0, user: "bob"}).count)"#)
        .pg(&as_app)
        .flag("--dry-run")
        .run();
    r.assert_code(0).assert_stderr_contains(
        "role app cannot see the state of 2 sessions of other roles (bob) that may match: it lacks pg_read_all_stats",
    );
    let r = env
        .script(r#"let r = pg.terminate_idle(#{older_than: 0, user: "bob"}); print(`${r.count} ${r.hidden}`)"#)
        .pg(&as_app)
        .run();
    r.assert_code(0)
        .assert_stdout("0 2\n")
        .assert_stderr_contains("warning: role app cannot see the state of 2 sessions");
    assert!(bob.iter().all(|p| alive(&url, *p)));

    // Sees them, may not signal them: the dry run says the call would be
    // refused, and the real run is refused before touching anything, even
    // the role's own session a wider filter also matches.
    pg_exec(&url, "grant pg_read_all_stats to app");
    env.script(r#"pg.terminate_idle(#{older_than: 0, user: "bob"})"#)
        .pg(&as_app)
        .flag("--dry-run")
        .run()
        .assert_code(0)
        .assert_stderr_contains("role app cannot terminate 2 of the 2 matching sessions")
        .assert_stderr_contains("the call would be refused")
        .assert_stderr_lacks("would terminate");
    for filter in [r#"user: "bob""#, r#"user: ["bob", "app"]"#] {
        env.script(&format!("pg.terminate_idle(#{{older_than: 0, {filter}}})"))
            .pg(&as_app)
            .run()
            .assert_code(3)
            .assert_stderr_contains("cannot terminate 2 of the")
            .assert_stderr_contains("nothing was terminated")
            .assert_stderr_contains(&format!(
                "pid {}: a session of bob, and app is neither a member of bob nor of pg_signal_backend",
                bob[0]
            ))
            .assert_stderr_contains("GRANT pg_signal_backend TO app");
    }
    assert!(bob.iter().all(|p| alive(&url, *p)));
    assert!(
        alive(&url, own),
        "the mixed filter acted on the role's own session"
    );

    // With pg_signal_backend the same call goes through.
    pg_exec(&url, "grant pg_signal_backend to app");
    env.script(r#"print(pg.terminate_idle(#{older_than: 0, user: ["bob", "app"]}).count)"#)
        .pg(&as_app)
        .run()
        .assert_code(0)
        .assert_stdout("3\n");
    assert!(bob.iter().all(|p| !alive(&url, *p)) && !alive(&url, own));
}

/// Issue 22 (11): `total` and the groups were counted by separate
/// statements and did not add up.
#[test]
fn connection_counts_add_up() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    roles(&url);
    let mut held = Held::new(&url);
    held.open("alice", "web", State::Idle);
    held.open("alice", "web", State::IdleInTx);
    held.open("bob", "batch", State::Active);
    let r = Env::new()
        .script(
            r#"
        for i in 0..5 {
            let c = pg.connections();
            let users = c.by_user.reduce(|s, u| s + u.connections, 0);
            let dbs = c.by_database.reduce(|s, d| s + d.connections, 0);
            let states = c.by_state.values().reduce(|s, n| s + n, 0);
            print(`${c.total} ${users} ${dbs} ${states} ${c.active + c.idle + c.idle_in_transaction <= c.total}`);
        }
        "#,
        )
        .pg(&url)
        .run();
    r.assert_code(0);
    for line in r.stdout.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        assert!(
            f[0] == f[1] && f[1] == f[2] && f[2] == f[3] && f[4] == "true",
            "{line}"
        );
        assert!(f[0].parse::<i64>().unwrap() >= 4, "{line}");
    }
}
