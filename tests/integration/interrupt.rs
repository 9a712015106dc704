use crate::support::*;
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

/// Starts `script`, waits until it printed its first line, sends `sig`,
/// and returns the run with how long the exit took.
fn signal_after_start(
    env: &Env,
    script: &str,
    sig: i32,
    extra_env: &[(&str, &str)],
) -> (Run, Duration) {
    let f = env.write("long.rhai", script);
    let mut child = env.spawn(&["run", f.to_str().unwrap()], extra_env);
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout);
    let mut first = String::new();
    lines.read_line(&mut first).unwrap();
    assert_eq!(first.trim(), "started");
    // Give the primitive time to be in its blocking wait.
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
    let run = wait_output(child);
    (run, sent.elapsed())
}

#[test]
fn ctrl_c_during_sleep_exits_promptly_with_interrupted_code() {
    let env = Env::new();
    let (r, took) = signal_after_start(
        &env,
        "print(\"started\");\nsleep(\"60s\");\nprint(\"not reached\");",
        libc::SIGINT,
        &[],
    );
    r.assert_code(130);
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(r.stderr.contains("interrupted"), "{}", r.stderr);
    assert!(r.stderr.contains("long.rhai:2:1"), "{}", r.stderr);
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
    let sb = sandbox(true, false);
    let url = sb.postgres.as_ref().unwrap().url();
    let env = Env::new();
    let (r, took) = signal_after_start(
        &env,
        "print(\"started\");\npg.query(\"select pg_sleep(60)\");",
        libc::SIGINT,
        &[("DATABASE_URL", &url)],
    );
    r.assert_code(130);
    // The server stops the abandoned query too, not only opsh.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while pg_scalar(&url, "select count(*) from pg_stat_activity where query like '%pg_sleep(60)%' and pid <> pg_backend_pid()") > 0 {
        assert!(std::time::Instant::now() < deadline, "pg_sleep still running on the server after opsh was interrupted");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let (r, _) = signal_after_start(
        &env,
        "print(\"started\");\npg.query(\"select pg_sleep(60)\");",
        libc::SIGTERM,
        &[("DATABASE_URL", &url)],
    );
    r.assert_code(130);
    assert!(r.stderr.contains("terminated (SIGTERM)"), "{}", r.stderr);
}

#[test]
fn run_timeout_and_call_timeout() {
    let sb = sandbox(true, false);
    let url = sb.postgres.as_ref().unwrap().url();
    let env = Env::new();
    let started = Instant::now();
    let r = env.run("sleep(\"60s\")", &["--timeout", "1s"], &[]);
    r.assert_code(124);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(r.stderr.contains("run timeout exceeded"), "{}", r.stderr);
    let r = env.run(
        "pg.query(\"select pg_sleep(30)\")",
        &["--call-timeout", "500ms"],
        &[("DATABASE_URL", &url)],
    );
    r.assert_code(2);
    assert!(r.stderr.contains("timed out after 500ms"), "{}", r.stderr);
    // A loop without primitive calls is stopped by the run timeout too.
    let r = env.run(
        "loop { }",
        &["--timeout", "500ms", "--max-operations", "0"],
        &[],
    );
    r.assert_code(124);
}
