use crate::support::*;
use std::time::{Duration, Instant};

/// Starts `opsh` (a script that prints `started` first), waits for that
/// line, sends `sig`, and returns the run with how long the exit took.
fn signal_after_start(opsh: Opsh<'_>, sig: i32) -> (Run, Duration) {
    let mut child = opsh.spawn();
    let lines = Lines::of(&mut child);
    eventually(secs(10), "the script to start", || !lines.all().is_empty());
    assert_eq!(lines.all(), ["started"]);
    // Give the primitive time to be in its blocking wait.
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    signal(&child, sig);
    let run = wait_within(child, secs(10));
    (run, sent.elapsed())
}

/// The run's output once it exits; a run still going after `limit` (a
/// wait that ignores cancellation) is killed and fails the test instead of
/// hanging the suite.
fn wait_within(mut child: std::process::Child, limit: Duration) -> Run {
    let started = Instant::now();
    while child.try_wait().ok().flatten().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("opsh still running {limit:?} after it was told to stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_output(child)
}

#[test]
fn ctrl_c_during_sleep_exits_promptly_with_interrupted_code() {
    let env = Env::new();
    let (r, took) = signal_after_start(
        env.script("print(\"started\");\nsleep(\"60s\");\nprint(\"not reached\");")
            .named("long.rhai"),
        libc::SIGINT,
    );
    r.assert_code(130)
        .assert_stderr_contains("interrupted")
        .assert_stderr_contains("long.rhai:2:1");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let audit = env.audit();
    assert!(
        audit
            .iter()
            .any(|a| a["event"] == "run" && a["outcome"] == "interrupted"),
        "{audit:?}"
    );
}

#[test]
fn ctrl_c_during_slow_query_exits_promptly() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    let env = Env::new();
    let slow = "print(\"started\");\npg.query(\"select pg_sleep(60)\");";
    let (r, took) = signal_after_start(env.script(slow).pg(&url), libc::SIGINT);
    r.assert_code(130);
    // The server stops the abandoned query too, not only opsh.
    eventually(
        secs(5),
        "the server to end pg_sleep after opsh was interrupted",
        || {
            pg_scalar(&url, "select count(*) from pg_stat_activity where query like '%pg_sleep(60)%' and pid <> pg_backend_pid()") == 0
        },
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let (r, _) = signal_after_start(env.script(slow).pg(&url), libc::SIGTERM);
    r.assert_code(130)
        .assert_stderr_contains("terminated (SIGTERM)");
}

#[test]
fn run_timeout_and_call_timeout() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    let env = Env::new();
    let started = Instant::now();
    env.script("sleep(\"60s\")")
        .option("--timeout", "1s")
        .run()
        .assert_code(124)
        .assert_stderr_contains("run timeout exceeded");
    assert!(started.elapsed() < Duration::from_secs(5));
    env.script("pg.query(\"select pg_sleep(30)\")")
        .pg(&url)
        .option("--call-timeout", "500ms")
        .run()
        .assert_code(2)
        .assert_stderr_contains("timed out after 500ms");
    // A loop without primitive calls is stopped by the run timeout too.
    env.script("loop { }")
        .option("--timeout", "500ms")
        .option("--max-operations", "0")
        .run()
        .assert_code(124)
        .assert_stderr_contains("run timeout exceeded");
}

/// Issue 18: a plain Redis target's connection is driven by the calling
/// thread with blocking reads, so Ctrl-C and --call-timeout must still end
/// a call whose server accepted the connection and never answers.
#[test]
fn a_redis_server_that_never_answers_is_left_at_ctrl_c_and_at_the_call_timeout() {
    // The kernel completes the handshake for a listener that never
    // accepts: the connect succeeds, the PING gets no reply.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://127.0.0.1:{}", silent.local_addr().unwrap().port());
    let env = Env::new();
    let script = "print(\"started\");\nredis.ping();\nprint(\"not reached\");";
    let (r, took) = signal_after_start(env.script(script).redis(&url), libc::SIGINT);
    r.assert_code(130)
        .assert_stderr_contains("interrupted")
        .assert_stderr_contains("redis.ping()");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let started = Instant::now();
    let child = env
        .script("redis.connect(args.url).info()")
        .script_arg("url", &url)
        .option("--call-timeout", "500ms")
        .spawn();
    wait_within(child, secs(10))
        .assert_code(2)
        .assert_stderr_contains("timed out after 500ms");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(silent);
}
