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
    let run = wait_output(child);
    (run, sent.elapsed())
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
