use crate::support::*;

#[test]
fn parse_error_has_position_in_run_and_check() {
    let env = Env::new();
    let r = env.run("let a = 1;\nlet b = (2 + ;\n", &[], &[]);
    r.assert_code(2);
    assert!(r.stderr.contains("script.rhai:2:"), "{}", r.stderr);
    assert!(r.stderr.contains("let b = (2 + ;"), "{}", r.stderr);
    let f = env.path("script.rhai");
    let r = env.opsh(&["check", f.to_str().unwrap()], &[]);
    r.assert_code(2);
    assert!(r.stderr.contains("script.rhai:2:"), "{}", r.stderr);
}

#[test]
fn check_reports_unknown_primitives_and_bad_imports() {
    let env = Env::new();
    let f = env.write(
        "c.rhai",
        "import \"nosuch\" as n;\nlet x = pg.qeury(\"select 1\");\nredis.info();\nk8s.scale(\"api\");\nk8s.scale(\"api\", 3, #{}, |a, b| a);\n",
    );
    let r = env.opsh(&["check", f.to_str().unwrap()], &[]);
    r.assert_code(2);
    assert!(
        r.stderr.contains("unknown primitive pg.qeury"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("did you mean pg.query?"), "{}", r.stderr);
    assert!(
        r.stderr.contains("module \"nosuch\" not found"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("k8s.scale takes 2 to 3 argument(s), this call passes 1"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("c.rhai:4:1"), "{}", r.stderr);
    assert!(r.stderr.contains("this call passes 4"), "{}", r.stderr);
    assert!(r.stderr.contains("4 problem(s) found"), "{}", r.stderr);
    let ok = env.write(
        "ok.rhai",
        "import \"checks\" as checks;\nlet x = pg.query(\"select 1\");\n",
    );
    env.opsh(&["check", ok.to_str().unwrap()], &[])
        .assert_code(0);
}

#[test]
fn runtime_error_in_imported_module_points_at_both_places() {
    let env = Env::new();
    env.write(
        "lib/util.rhai",
        "fn double(x) {\n    let y = x * 2;\n    throw `bad value ${y}`;\n}\n",
    );
    let r = env.run(
        "import \"lib/util\" as util;\nlet v = 21;\nutil::double(v);\n",
        &[],
        &[],
    );
    r.assert_code(2);
    assert!(
        r.stderr.contains("script error: bad value 42"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("util.rhai:3:5"), "{}", r.stderr);
    assert!(r.stderr.contains("throw `bad value ${y}`;"), "{}", r.stderr);
    assert!(r.stderr.contains("script.rhai:3:7"), "{}", r.stderr);
    assert!(r.stderr.contains("in function `double`"), "{}", r.stderr);
}

#[test]
fn imports_cannot_escape_the_script_directory() {
    let env = Env::new();
    let r = env.run("import \"../etc/passwd\" as p;", &[], &[]);
    r.assert_code(2);
    assert!(r.stderr.contains("is refused"), "{}", r.stderr);
    let r = env.run("eval(\"1\")", &[], &[]);
    r.assert_code(2);
}

#[test]
fn unreachable_postgres_names_host_and_hint() {
    let env = Env::new();
    let port = opsh::sandbox::free_port().unwrap();
    let r = env.run(
        "pg.query(\"select 1\")",
        &[],
        &[(
            "DATABASE_URL",
            &format!("postgres://app@127.0.0.1:{port}/db"),
        )],
    );
    r.assert_code(2);
    assert!(
        r.stderr.contains("cannot connect to DATABASE_URL"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(&format!("is PostgreSQL running on 127.0.0.1:{port}?")),
        "{}",
        r.stderr
    );
}

#[test]
fn missing_target_says_how_to_configure_one() {
    let env = Env::new();
    let r = env.run("pg.query(\"select 1\")", &[], &[]);
    r.assert_code(2);
    assert!(r.stderr.contains("set DATABASE_URL"), "{}", r.stderr);
}

#[test]
fn wrong_password_never_leaks_anywhere() {
    let sb = sandbox(true, false);
    let pg = sb.postgres.as_ref().unwrap();
    let secret = "Fake-Passw0rd-XYZZY";
    let env = Env::new();
    let url = format!("postgres://opsh:{secret}@127.0.0.1:{}/postgres", pg.port);
    env.write_config(&format!(
        "[pg.prod]\nurl = \"postgres://opsh@127.0.0.1:{}/postgres\"\npassword_env = \"PROD_PW\"\n",
        pg.port
    ));
    let runs = [
        env.run("pg.query(\"select 1\")", &[], &[("DATABASE_URL", &url)]),
        env.run(&format!("let db = pg.connect(\"{url}\");"), &[], &[]),
        env.run(
            "pg.connect(\"prod\").exec(\"select 1\")",
            &[],
            &[("PROD_PW", secret)],
        ),
        env.run(
            "print(pg.connect(\"prod\"))",
            &["--dry-run"],
            &[("PROD_PW", secret)],
        ),
        env.run("pg.exec(\"select 1\")", &[], &[("DATABASE_URL", &url)]),
    ];
    for r in &runs[..3] {
        r.assert_code(2);
        assert!(
            r.stderr.contains("28P01") || r.stderr.contains("password authentication failed"),
            "{}",
            r.stderr
        );
    }
    let audit = std::fs::read_to_string(env.audit_path()).unwrap_or_default();
    assert!(
        audit.contains("pg.exec"),
        "the mutation attempts are audited: {audit}"
    );
    for r in &runs {
        assert!(
            !r.stdout.contains(secret) && !r.stderr.contains(secret),
            "secret leaked:\n{}\n{}",
            r.stdout,
            r.stderr
        );
    }
    assert!(!audit.contains(secret), "secret in audit log");
    assert!(
        runs[0].stderr.contains("postgres://opsh:***@"),
        "{}",
        runs[0].stderr
    );
}

/// At run time the hint stays within the module the call was made on, and
/// falls back to every module when the receiver is a variable.
#[test]
fn a_misspelt_method_is_matched_within_its_module() {
    let env = Env::new();
    let r = env.run("pg.qeury(\"select 1\")", &[], &[]);
    r.assert_code(2);
    assert!(
        r.stderr.contains("hint: did you mean pg.query?\n"),
        "{}",
        r.stderr
    );
    let r = env.run("let db = pg;\ndb.qeury(\"select 1\")", &[], &[]);
    r.assert_code(2);
    assert!(r.stderr.contains("pg.query"), "{}", r.stderr);
    assert!(r.stderr.contains("prom.query"), "{}", r.stderr);
}
