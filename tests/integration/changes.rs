//! Saying what changed: one line per real mutation, exit codes that keep
//! their promise (3: nothing changed; 4: changed, then stopped; 5: outcome
//! unknown), and an audit log a review the next morning can use.

use crate::support::*;
use std::time::Duration;

#[test]
fn every_real_mutation_says_what_it_did_once_and_quiet_silences_it() {
    let sb = sandbox(&[Pg, Redis]);
    let k = kube();
    let url = sb.pg_url();
    pg_exec(
        &url,
        "create table t(id int, v int); insert into t select g, 0 from generate_series(1, 1000) g;",
    );
    let env = Env::new();
    let script =
        r#"redis.set("bars:key", "x"); pg.exec("update t set v = v + 1"); k8s.scale("api", 5);"#;
    let redis_port = sb
        .redis_url()
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let r = env.script(script).targets(&sb).kube(&k).run();
    r.assert_code(0);
    let want = [
        format!("set bars:key (a new key) in redis 127.0.0.1:{redis_port}/0"),
        "pg.exec: updated 1000 rows in postgres@127.0.0.1:".to_string(),
        "scaled deployment api 3 -> 5 in sandbox/default".to_string(),
    ];
    for w in &want {
        assert_eq!(
            r.stderr.matches(w.as_str()).count(),
            1,
            "once: {w}\n{}",
            r.stderr
        );
    }
    assert_eq!(k.replicas("api"), 5);
    assert_eq!(pg_scalar(&url, "select sum(v) from t"), 1000);
    // --quiet: the same changes, no lines.
    let r = env
        .script(script)
        .targets(&sb)
        .kube(&k)
        .flag("--quiet")
        .run();
    r.assert_code(0);
    // Warnings still show (the sandbox's HPA manages api); nothing else does.
    let said: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| !l.starts_with("warning:"))
        .collect();
    assert!(said.is_empty(), "quiet run printed: {}", r.stderr);
    assert_eq!(pg_scalar(&url, "select sum(v) from t"), 2000);
    // --dry-run: conditional lines, nothing changed.
    let r = env
        .script(r#"pg.exec("update t set v = v + 1"); k8s.scale("api", 2);"#)
        .targets(&sb)
        .kube(&k)
        .flag("--dry-run")
        .run();
    r.assert_code(0)
        .assert_stderr_contains("would execute `update t set v = v + 1`")
        .assert_stderr_contains("would scale deployment api in default from 5 to 2")
        .assert_stderr_lacks("updated")
        .assert_stderr_lacks("scaled");
    assert_eq!(pg_scalar(&url, "select sum(v) from t"), 2000);
    assert_eq!(k.replicas("api"), 5);
}

#[test]
fn a_change_then_a_refusal_exits_4_and_lists_the_change() {
    let sb = sandbox(&[Pg, Redis]);
    let url = sb.pg_url();
    pg_exec(
        &url,
        "create table t(id int); insert into t values (1), (2);",
    );
    let env = Env::new();
    env.write_config(&format!("[pg.prod]\nurl = \"{url}\"\nprotected = true\n"));
    let r = env
        .script(r#"redis.set("marker", "1"); pg.connect("prod").exec("delete from t");"#)
        .redis(&sb.redis_url())
        .run();
    r.assert_code(4)
        .assert_stderr_contains("pg.exec refused")
        .assert_stderr_contains(
            "changes made before the run stopped:\n  - set marker (a new key) in redis",
        );
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 2);
    let marker: Option<String> = redis_query(&sb.redis_url(), &["GET", "marker"]);
    assert_eq!(marker.as_deref(), Some("1"));
    // The refusal is in the audit log: who, what, why.
    let refused: Vec<_> = env
        .audit()
        .into_iter()
        .filter(|a| a["phase"] == "refused")
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["primitive"], "pg.exec");
    assert_eq!(refused[0]["outcome"], "refused");
    assert_eq!(refused[0]["identity"]["database"], "postgres");
    assert!(refused[0]["user"].is_string());
    assert!(
        refused[0]["reason"]
            .as_str()
            .unwrap()
            .contains("needs confirmation"),
        "{refused:?}"
    );
    // Nothing changed before the refusal: 3 keeps its promise.
    env.script(r#"pg.connect("prod").exec("delete from t");"#)
        .run()
        .assert_code(3)
        .assert_stderr_lacks("changes made");
    // --yes lets it through, and the intent record says who confirmed how.
    env.script(r#"pg.connect("prod").exec("delete from t");"#)
        .flag("--yes")
        .run()
        .assert_code(0);
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 0);
    let audit = env.audit();
    let intent = audit.iter().rev().find(|a| a["phase"] == "intent").unwrap();
    assert_eq!(intent["confirmation"]["how"], "--yes");
    assert!(intent["confirmation"]["by"].is_string());
    assert!(intent["confirmation"]["at"].is_string());
}

/// A mutation that found nothing to change is not a change: the
/// connection-exhaustion runbook's `terminate_idle` matching no session,
/// then a refusal, used to exit 4 and list "terminated 0 sessions" among
/// the changes made. Its line is still printed, and the audit outcome
/// says `changed: false`.
#[test]
fn a_mutation_that_changed_nothing_leaves_the_exit_code_at_refused() {
    let sb = sandbox(&[Pg, Redis]);
    let url = sb.pg_url();
    pg_exec(&url, "create table t(id int); insert into t values (1);");
    pg_exec(&url, "create database scratch");
    // Another database than the protected one: terminate_idle goes through.
    let scratch = url.replace("/postgres", "/scratch");
    let env = Env::new();
    env.write_config(&format!("[pg.prod]\nurl = \"{url}\"\nprotected = true\n"));
    let nothing = r#"
        redis.del("no-such-key");
        redis.del_matching("no-such-prefix:*");
        redis.expire("no-such-key", "1m");
        pg.terminate_idle(#{older_than: "1h", user: "nobody"});
        pg.connect("prod").exec("delete from t");
    "#;
    env.script(nothing)
        .redis(&sb.redis_url())
        .pg(&scratch)
        .run()
        .assert_code(3)
        .assert_stderr_contains("pg.exec refused")
        .assert_stderr_contains("deleted 0 of 1 keys")
        .assert_stderr_lacks("changes made");
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 1);
    for p in [
        "redis.del",
        "redis.del_matching",
        "redis.expire",
        "pg.terminate_idle",
    ] {
        let o = env.outcomes(p);
        assert_eq!(o.len(), 1, "{p}: {o:?}");
        assert_eq!(o[0]["changed"], false, "{p}: {o:?}");
    }
    // One key that did exist makes the same run a partial change.
    redis_query::<String>(&sb.redis_url(), &["SET", "old", "1"]);
    env.script(&nothing.replace("no-such-key\");", "old\");"))
        .redis(&sb.redis_url())
        .pg(&scratch)
        .run()
        .assert_code(4)
        .assert_stderr_contains("changes made before the run stopped:\n  - deleted 1 of 1 keys in");
    let del = env.outcomes("redis.del");
    assert_eq!(del.len(), 2, "{del:?}");
    assert_eq!(del[1]["changed"], true, "{del:?}");
}

#[test]
fn a_refused_item_of_parallel_fails_the_run() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(&url, "create table t(id int); insert into t values (1);");
    let env = Env::new();
    env.write_config(&format!(
        "[pg.prod]\nurl = \"{url}\"\nprotected = true\n[pg.dev]\nurl = \"{url}\"\n"
    ));
    let r = env
        .script(r#"let r = for_each_target("pg", "*", |t| pg.connect(t).exec("insert into t values (2)")); print(r.filter(|x| x.refused).map(|x| x.item));"#)
        .run();
    // dev inserted a row, prod was refused: a change, then a refusal.
    r.assert_code(4)
        .assert_stdout("[\"prod\"]\n")
        .assert_stderr_contains("1 call was refused inside parallel()/for_each_target")
        .assert_stderr_contains("changes made before the run stopped");
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 2);
    // Only refusals: 3, not a silent 0.
    env.script(r#"parallel([1], |i| pg.connect("prod").exec("insert into t values (3)"));"#)
        .run()
        .assert_code(3)
        .assert_stderr_contains("refused inside parallel()");
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 2);
}

#[test]
fn a_k8s_change_is_audited_with_server_context_and_namespace() {
    let k = kube();
    let env = Env::new();
    env.script(r#"k8s.scale("api", 4)"#)
        .kube(&k)
        .run()
        .assert_code(0);
    let audit = env.audit();
    let out = outcome_records(&audit, "k8s.scale");
    assert_eq!(out.len(), 1, "{audit:?}");
    let id = &out[0]["identity"];
    assert_eq!(id["context"], "sandbox");
    assert_eq!(id["namespace"], "default");
    let server = id["server"].as_str().unwrap().trim_end_matches('/');
    let kubeconfig = std::fs::read_to_string(k.kubeconfig()).unwrap();
    assert!(kubeconfig.contains(server), "{server} not in {kubeconfig}");
    assert_eq!(out[0]["result"]["from"], 3);
    assert_eq!(out[0]["result"]["to"], 4);
    // The intent, written before the change, names the same identity.
    let intent = audit.iter().find(|a| a["phase"] == "intent").unwrap();
    assert_eq!(intent["identity"], *id);
}

#[test]
fn a_failed_dry_run_is_audited_and_the_estimate_sits_beside_the_result() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(
        &url,
        "create table t(id int, v int); insert into t select g, 0 from generate_series(1, 1000) g;",
    );
    let env = Env::new();
    env.script(r#"pg.exec("update nope set v = 1")"#)
        .pg(&url)
        .flag("--dry-run")
        .run()
        .assert_code(2);
    let audit = env.audit();
    let plan = audit.iter().find(|a| a["phase"] == "plan").unwrap();
    assert_eq!(plan["outcome"], "error", "{plan}");
    assert!(plan["cause"].as_str().unwrap().contains("does not exist"));
    // Stale statistics: the planner guesses, the result says what happened.
    pg_exec(
        &url,
        "analyze t; update t set v = 1 where id <= 10; analyze t;",
    );
    env.script(r#"pg.exec("update t set v = 2 where v = 0")"#)
        .pg(&url)
        .run()
        .assert_code(0);
    let out = env.outcomes("pg.exec");
    let last = out.last().unwrap();
    assert_eq!(last["result"]["rows_affected"], 990);
    assert!(
        last["estimate"]["planner_rows"].as_i64().is_some(),
        "{last}"
    );
    assert_eq!(last["identity"]["database"], "postgres");
}

/// Starts a run that prints `started` and then runs `pg.exec(sql)`; waits
/// until PostgreSQL runs the statement, then calls `act`.
fn during_exec(env: &Env, url: &str, sql: &str, act: impl FnOnce(&std::process::Child)) -> Run {
    let mut child = env
        .script(&format!("print(\"started\");\npg.exec(\"{sql}\");"))
        .pg(url)
        .spawn();
    let lines = Lines::of(&mut child);
    eventually(secs(10), "the script to start", || !lines.all().is_empty());
    eventually(secs(10), "the statement to run on the server", || {
        pg_scalar(
            url,
            "select count(*) from pg_stat_activity where application_name = 'opsh' and query like 'update t%'",
        ) == 1
    });
    act(&child);
    wait_output(child)
}

#[test]
fn a_killed_backend_is_outcome_unknown_and_not_retried() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(
        &url,
        "create table t(id int, v int); insert into t values (1, 0);",
    );
    let env = Env::new();
    let r = during_exec(
        &env,
        &url,
        "update t set v = v + 1 where pg_sleep(3) is not null",
        |_| {
            pg_exec(
            &url,
            "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'opsh' and query like 'update t%'",
        );
        },
    );
    r.assert_code(5)
        .assert_stderr_contains("outcome unknown")
        .assert_stderr_lacks("is PostgreSQL running");
    let out = env.outcomes("pg.exec");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["outcome"], "unknown", "{out:?}");
    // Never retried: the row was updated at most once (here: not at all,
    // the server rolled the killed statement back).
    assert_eq!(pg_scalar(&url, "select v::bigint from t"), 0);
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(pg_scalar(&url, "select v::bigint from t"), 0);
}

#[test]
fn ctrl_c_during_exec_cancels_it_on_the_server_and_says_not_applied() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(
        &url,
        "create table t(id int, v int); insert into t values (1, 0);",
    );
    let env = Env::new();
    let started = std::time::Instant::now();
    let r = during_exec(
        &env,
        &url,
        "update t set v = v + 1 where pg_sleep(30) is not null",
        |c| signal(c, libc::SIGINT),
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    r.assert_code(130)
        .assert_stderr_contains("pg.exec not applied: PostgreSQL cancelled the statement");
    let out = env.outcomes("pg.exec");
    assert_eq!(out[0]["outcome"], "not_applied", "{out:?}");
    assert_eq!(out[0]["interrupted"], "interrupted (Ctrl-C)");
    assert_eq!(pg_scalar(&url, "select v::bigint from t"), 0);
    // Gone from the server at once, not when it notices the closed socket.
    assert_eq!(
        pg_scalar(&url, "select count(*) from pg_stat_activity where query like 'update t%' and pid <> pg_backend_pid()"),
        0
    );
}

#[test]
fn ctrl_c_during_the_wait_of_a_scale_audits_the_scale_that_landed() {
    let k = kube();
    let env = Env::new();
    // worker's pods are OOM-killed again and again: the wait never ends.
    let mut child = env
        .script("print(\"started\");\nk8s.scale(\"worker\", 4, #{wait: true});")
        .kube(&k)
        .spawn();
    let lines = Lines::of(&mut child);
    eventually(secs(10), "the script to start", || !lines.all().is_empty());
    eventually(secs(10), "the scale to land", || k.replicas("worker") == 4);
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, libc::SIGINT);
    let r = wait_output(child);
    r.assert_code(4)
        .assert_stderr_contains("k8s.scale applied: the scale landed")
        .assert_stderr_contains("scaled deployment worker 2 -> 4");
    let out = env.outcomes("k8s.scale");
    assert_eq!(out[0]["outcome"], "applied", "{out:?}");
    assert_eq!(out[0]["result"]["from"], 2);
    assert_eq!(out[0]["result"]["to"], 4);
    assert_eq!(k.replicas("worker"), 4);
}

#[test]
fn a_runbook_report_under_dry_run_is_conditional() {
    let k = kube();
    let env = Env::new();
    let s = repo_path("scripts/system_down.rhai");
    // Nothing listens on port 9: the app is down, api has one revision, no
    // pod was OOM-killed: the runbook restarts api.
    let run = |dry: bool| {
        let o = env
            .opsh(["run"])
            .arg(&s)
            .script_arg("health_url", "http://127.0.0.1:9/health")
            .script_arg("wait", "20s")
            .kube(&k);
        if dry {
            o.flag("--dry-run").run()
        } else {
            o.run()
        }
    };
    let r = run(true);
    r.assert_code(1)
        .assert_stdout_contains("would restart (rolling)")
        .assert_stdout_contains("down (dry run: nothing changed)")
        .assert_stdout_lacks("rolling restart");
    let r = run(false);
    r.assert_code(1)
        .assert_stdout_contains("rolling restart")
        .assert_stdout_contains("still down")
        .assert_stderr_contains("restarted deployment api");
}

/// A TCP proxy to `upstream` that holds each chunk of every answer for
/// `delay`: requests reach the server at once, answers come late.
fn answers_late(upstream: &str, delay: Duration) -> String {
    use std::io::{Read, Write};
    let port = kube_testserver::free_port().unwrap();
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let upstream = upstream.trim_start_matches("http://").to_string();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { break };
            let upstream = upstream.clone();
            std::thread::spawn(move || {
                let Ok(mut server) = std::net::TcpStream::connect(&upstream) else {
                    return;
                };
                let (mut c, mut s) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c, &mut s);
                });
                let mut buf = [0u8; 65536];
                while let Ok(n) = server.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    std::thread::sleep(delay);
                    if client.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

#[test]
fn ctrl_c_while_a_scale_is_in_flight_reads_it_back() {
    let k = kube();
    let env = Env::new();
    let slow = answers_late(&k.url(), Duration::from_millis(1500));
    let kubeconfig = std::fs::read_to_string(k.kubeconfig())
        .unwrap()
        .replace(&k.url(), &slow);
    let kc = env.write("slow-kubeconfig", &kubeconfig);
    let mut child = env
        .script("print(\"started\");\nk8s.scale(\"api\", 5);")
        .kubeconfig(kc.to_str().unwrap())
        .spawn();
    let lines = Lines::of(&mut child);
    eventually(secs(10), "the script to start", || !lines.all().is_empty());
    // The PUT reached the server; its answer is still on its way.
    eventually(secs(10), "the scale to land", || k.replicas("api") == 5);
    signal(&child, libc::SIGINT);
    let r = wait_output(child);
    r.assert_code(4)
        .assert_stderr_contains("k8s.scale applied: the scale landed before the interrupt")
        .assert_stderr_contains("scaled deployment api 3 -> 5");
    let out = env.outcomes("k8s.scale");
    assert_eq!(out[0]["outcome"], "applied", "{out:?}");
    assert_eq!(out[0]["result"]["from"], 3);
    assert_eq!(out[0]["result"]["to"], 5);
}
