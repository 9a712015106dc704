use crate::support::*;

#[test]
fn protected_target_refuses_without_yes_and_proceeds_with_it() {
    let sb = sandbox(true, false);
    let url = sb.postgres.as_ref().unwrap().url();
    pg_exec(
        &url,
        "create table t(id int); insert into t values (1), (2);",
    );
    let env = Env::new();
    env.write_config(&format!("[pg.prod]\nurl = \"{url}\"\nprotected = true\n"));
    let script = r#"pg.connect("prod").exec("delete from t")"#;
    let r = env.run(script, &[], &[]);
    r.assert_code(3);
    assert!(r.stderr.contains("pg.exec refused"), "{}", r.stderr);
    assert!(r.stderr.contains("protected target prod"), "{}", r.stderr);
    assert!(r.stderr.contains("--yes"), "{}", r.stderr);
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 2);
    // Reads need no confirmation; dry-run neither.
    env.run(r#"pg.connect("prod").query("select 1")"#, &[], &[])
        .assert_code(0);
    env.run(script, &["--dry-run"], &[]).assert_code(0);
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 2);
    env.run(script, &["--yes"], &[]).assert_code(0);
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 0);
}

#[test]
fn mutation_is_refused_when_the_audit_log_cannot_be_written() {
    let sb = sandbox(true, false);
    let url = sb.postgres.as_ref().unwrap().url();
    pg_exec(&url, "create table t(id int); insert into t values (1);");
    let env = Env::new();
    env.write("not-a-dir", "file");
    let bad = env.path("not-a-dir/audit.jsonl");
    let r = env.run(
        r#"pg.exec("delete from t")"#,
        &[],
        &[
            ("DATABASE_URL", &url),
            ("OPSH_AUDIT_LOG", bad.to_str().unwrap()),
        ],
    );
    r.assert_code(3);
    assert!(r.stderr.contains("audit log"), "{}", r.stderr);
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 1);
    // Reads do not need the audit log.
    env.run(
        r#"pg.query("select 1")"#,
        &[],
        &[
            ("DATABASE_URL", &url),
            ("OPSH_AUDIT_LOG", bad.to_str().unwrap()),
        ],
    )
    .assert_code(0);
}

#[test]
fn runaway_loop_hits_the_operation_limit() {
    let env = Env::new();
    let r = env.run(
        "let i = 0; loop { i += 1; }",
        &["--max-operations", "100000"],
        &[],
    );
    r.assert_code(2);
    assert!(r.stderr.contains("operation limit"), "{}", r.stderr);
}

/// Runs opsh on a pseudo-terminal (util-linux `script`) and answers the
/// confirmation prompt by typing `answer` (a line, or a key such as ^C).
fn run_on_tty(env: &Env, script: &std::path::Path, answer: &str) -> Run {
    use std::io::Write;
    let cmd = format!(
        "{} --color never run {}",
        env!("CARGO_BIN_EXE_opsh"),
        script.display()
    );
    let mut c = env.command();
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", env.path("home"))
        .env("XDG_CONFIG_HOME", env.path("config"))
        .env("OPSH_AUDIT_LOG", env.audit_path())
        .env("TERM", "dumb");
    let mut child = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .envs(
            c.get_envs()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
        )
        .current_dir(env.path(""))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs opsh on a pty");
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    stdin.write_all(answer.as_bytes()).unwrap();
    // The answer alone must end the run: a prompt still waiting (for Enter
    // after a Ctrl-C, say) fails the test rather than reading EOF later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            drop(stdin);
            let _ = child.kill();
            panic!("opsh still waits after the answer {answer:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn protected_target_asks_on_a_terminal() {
    let sb = sandbox(true, false);
    let url = sb.postgres.as_ref().unwrap().url();
    pg_exec(
        &url,
        "create table t(id int); insert into t values (1), (2);",
    );
    let env = Env::new();
    env.write_config(&format!("[pg.prod]\nurl = \"{url}\"\nprotected = true\n"));
    let f = env.write(
        "del.rhai",
        "pg.connect(\"prod\").exec(\"delete from t where id = 1\");\nprint(\"deleted\");\n",
    );
    let r = run_on_tty(&env, &f, "no\n");
    r.assert_code(3);
    assert!(r.stdout.contains("PROTECTED target prod"), "{}", r.stdout);
    assert!(r.stdout.contains("not confirmed"), "{}", r.stdout);
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 2);
    // Ctrl-C at the prompt ends the run as interrupted, without waiting
    // for Enter, and changes nothing.
    let r = run_on_tty(&env, &f, "\x03");
    r.assert_code(130);
    assert!(r.stdout.contains("interrupted (Ctrl-C)"), "{}", r.stdout);
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 2);
    let r = run_on_tty(&env, &f, "yes\n");
    r.assert_code(0);
    assert!(r.stdout.contains("deleted"), "{}", r.stdout);
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 1);
}
