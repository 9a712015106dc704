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

/// A running `opsh sandbox` and the DATABASE_URL it announced, once it
/// says it is ready.
fn start_sandbox(env: &Env) -> (std::process::Child, String) {
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
    (child, pg_url)
}

#[test]
fn sandbox_serves_other_processes_and_cleans_up() {
    let env = Env::new();
    let (child, pg_url) = start_sandbox(&env);
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

/// A second `opsh sandbox` on the same state file refuses (and leaves the
/// first's announcement); each instance has its own password; the
/// announced `sandbox` target joins a fleet glob only when named.
#[test]
fn one_sandbox_per_state_file_own_credentials_and_not_in_fleet_globs() {
    let env = Env::new();
    let (child, pg_url) = start_sandbox(&env);
    // Spawned, so a regression (a second sandbox that serves) fails the
    // test instead of hanging it.
    let mut second = env.opsh(["sandbox"]).spawn();
    let deadline = std::time::Instant::now() + secs(60);
    while second.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            signal(&second, libc::SIGINT);
            signal(&child, libc::SIGINT);
            panic!("a second opsh sandbox started instead of refusing");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let second = wait_output(second);
    second
        .assert_code(2)
        .assert_stderr_contains("an opsh sandbox is already running");
    // The first is still announced and reachable.
    env.script("print(pg.connect(\"sandbox\").query(\"select 1 as x\")[0].x);")
        .run()
        .assert_code(0)
        .assert_stdout("1\n");
    // Its password is its own, not the template's every sandbox starts from.
    let password = url::Url::parse(&pg_url)
        .unwrap()
        .password()
        .unwrap()
        .to_string();
    let templates: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("opsh-pg-template-")
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("password")).ok())
        .map(|p| p.trim().to_string())
        .collect();
    assert!(!templates.is_empty(), "no template password found");
    assert!(
        !templates.contains(&password),
        "the instance kept the template's password"
    );
    // Fleet globs leave the announced sandbox out unless they name it.
    env.write_config("[pg.a]\nurl = \"postgres://app@127.0.0.1:1/a\"\n");
    env.script(r#"print(targets("pg")); print(targets("pg", "sandbox"));"#)
        .run()
        .assert_code(0)
        .assert_stdout("[\"a\"]\n[\"sandbox\"]\n");
    signal(&child, libc::SIGINT);
    wait_output(child).assert_code(0);
    assert!(
        !env.path("xdgstate/opsh/sandbox.json").exists(),
        "the announcement is withdrawn"
    );
}
