use crate::support::*;

#[test]
fn sandbox_run_daily_check_passes_and_fails_on_thresholds() {
    let env = Env::new();
    let script = repo_path("scripts/daily_check.rhai");
    env.opsh(["sandbox", "run", &script])
        .run()
        .assert_code(0)
        .assert_stdout_contains("pg reachable")
        .assert_stdout_contains("0 failed");
    // A saturation threshold of 1% must fail the run with the check code.
    env.opsh(["sandbox", "run", &script])
        .script_arg("max_conn_pct", 1)
        .run()
        .assert_code(1)
        .assert_stdout_contains("FAIL")
        .assert_stderr_contains("check failed");
}

#[test]
fn sandbox_serves_other_processes_and_cleans_up() {
    let env = Env::new();
    let mut child = env.opsh(["sandbox"]).spawn();
    let lines = Lines::of(&mut child);
    let pg_url = eventually(secs(60), "the sandbox to be ready", || {
        let all = lines.all();
        let url = all
            .iter()
            .find_map(|l| l.trim().strip_prefix("export DATABASE_URL="))?;
        all.iter()
            .any(|l| l.contains("Ctrl-C"))
            .then(|| url.to_string())
    });
    assert!(pg_url.starts_with("postgres://"), "{pg_url}");
    env.script("print(pg.connect(\"sandbox\").query(\"select 1 as x\")[0].x); print(redis.connect(\"sandbox\").ping() >= 0.0);")
        .run()
        .assert_code(0)
        .assert_stdout("1\ntrue\n");
    let port: u16 = url::Url::parse(&pg_url).unwrap().port().unwrap();
    signal(&child, libc::SIGINT);
    let out = wait_output(child);
    out.assert_code(0);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "postgres still listening after the sandbox stopped"
    );
    env.script("pg.connect(\"sandbox\")")
        .run()
        .assert_code(2)
        .assert_stderr_contains("no pg target named `sandbox`");
}
