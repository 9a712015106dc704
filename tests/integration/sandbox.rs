use crate::support::*;
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

#[test]
fn sandbox_run_daily_check_passes_and_fails_on_thresholds() {
    let env = Env::new();
    let script = repo_path("scripts/daily_check.rhai");
    let s = script.as_str();
    let r = env.opsh(&["sandbox", "run", s], &[]);
    r.assert_code(0);
    assert!(r.stdout.contains("pg reachable"), "{}", r.stdout);
    assert!(r.stdout.contains("0 failed"), "{}", r.stdout);
    // A saturation threshold of 1% must fail the run with the check code.
    let r = env.opsh(&["sandbox", "run", s, "--arg", "max_conn_pct=1"], &[]);
    r.assert_code(1);
    assert!(r.stdout.contains("FAIL"), "{}", r.stdout);
    assert!(r.stderr.contains("check failed"), "{}", r.stderr);
}

#[test]
fn sandbox_serves_other_processes_and_cleans_up() {
    let env = Env::new();
    let mut child = env.spawn(&["sandbox"], &[]);
    let stdout = child.stdout.take().unwrap();
    let mut reader = BufReader::new(stdout);
    let mut pg_url = String::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(u) = line.trim().strip_prefix("export DATABASE_URL=") {
            pg_url = u.to_string();
        }
        if line.contains("Ctrl-C") {
            break;
        }
    }
    assert!(pg_url.starts_with("postgres://"), "no DATABASE_URL printed");
    let r = env.run("print(pg.connect(\"sandbox\").query(\"select 1 as x\")[0].x); print(redis.connect(\"sandbox\").ping() >= 0.0);", &[], &[]);
    r.assert_code(0);
    assert_eq!(r.stdout, "1\ntrue\n");
    let port: u16 = pg_url
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = wait_output(child);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "postgres still listening after the sandbox stopped"
    );
    let r = env.run("pg.connect(\"sandbox\")", &[], &[]);
    r.assert_code(2);
}
