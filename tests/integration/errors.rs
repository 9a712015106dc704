use crate::support::*;

#[test]
fn parse_error_has_position_in_run_and_check() {
    let env = Env::new();
    env.script("let a = 1;\nlet b = (2 + ;\n")
        .run()
        .assert_code(2)
        .assert_stderr_contains("script.rhai:2:")
        .assert_stderr_contains("let b = (2 + ;");
    env.opsh(["check"])
        .arg(env.path("script.rhai"))
        .run()
        .assert_code(2)
        .assert_stderr_contains("script.rhai:2:");
}

#[test]
fn check_reports_unknown_primitives_and_bad_imports() {
    let env = Env::new();
    let f = env.write(
        "c.rhai",
        "import \"nosuch\" as n;\nlet x = pg.qeury(\"select 1\");\nredis.info();\nk8s.scale(\"api\");\nk8s.scale(\"api\", 3, #{}, |a, b| a);\nk8s.scale(\"api\", 3, #{curent: 3, wait: true});\n",
    );
    env.opsh(["check"])
        .arg(&f)
        .run()
        .assert_code(2)
        .assert_stderr_contains("unknown primitive pg.qeury")
        .assert_stderr_contains("did you mean pg.query?")
        .assert_stderr_contains("module \"nosuch\" not found")
        .assert_stderr_contains("k8s.scale takes 2 to 3 argument(s), this call passes 1")
        .assert_stderr_contains("c.rhai:4:1")
        .assert_stderr_contains("this call passes 4")
        .assert_stderr_contains("k8s.scale has no option `curent`")
        .assert_stderr_contains("c.rhai:6:23")
        .assert_stderr_contains("did you mean `current`?")
        .assert_stderr_contains("5 problem(s) found");
    let ok = env.write(
        "ok.rhai",
        "import \"checks\" as checks;\nlet x = pg.query(\"select 1\");\n",
    );
    env.opsh(["check"])
        .arg(&ok)
        .run()
        .assert_code(0)
        .assert_stderr_lacks("problem");
}

#[test]
fn runtime_error_in_imported_module_points_at_both_places() {
    let env = Env::new();
    env.write(
        "lib/util.rhai",
        "fn double(x) {\n    let y = x * 2;\n    throw `bad value ${y}`;\n}\n",
    );
    env.script("import \"lib/util\" as util;\nlet v = 21;\nutil::double(v);\n")
        .run()
        .assert_code(2)
        .assert_stderr_contains("script error: bad value 42")
        .assert_stderr_contains("util.rhai:3:5")
        .assert_stderr_contains("throw `bad value ${y}`;")
        .assert_stderr_contains("script.rhai:3:7")
        .assert_stderr_contains("in function `double`");
}

#[test]
fn imports_cannot_escape_the_script_directory() {
    let env = Env::new();
    env.script("import \"../etc/passwd\" as p;")
        .run()
        .assert_code(2)
        .assert_stderr_contains("is refused");
    env.script("eval(\"1\")")
        .run()
        .assert_code(2)
        .assert_stderr_contains("'eval' is disabled");
}

#[test]
fn unreachable_postgres_names_host_and_hint() {
    let port = opsh::sandbox::free_port().unwrap();
    Env::new()
        .script("pg.query(\"select 1\")")
        .pg(&format!("postgres://app@127.0.0.1:{port}/db"))
        .run()
        .assert_code(2)
        .assert_stderr_contains(&format!(
            "127.0.0.1:{port} refused the connection to DATABASE_URL"
        ))
        .assert_stderr_contains("is PostgreSQL running, and on this port?");
}

#[test]
fn missing_target_says_how_to_configure_one() {
    Env::new()
        .script("pg.query(\"select 1\")")
        .run()
        .assert_code(2)
        .assert_stderr_contains("set DATABASE_URL");
}

#[test]
fn wrong_password_never_leaks_anywhere() {
    let sb = sandbox(&[Pg]);
    let pg = sb.pg();
    let secret = "Fake-Passw0rd-XYZZY";
    let env = Env::new();
    let url = format!("postgres://opsh:{secret}@127.0.0.1:{}/postgres", pg.port);
    env.write_config(&format!(
        "[pg.prod]\nurl = \"postgres://opsh@127.0.0.1:{}/postgres\"\npassword_env = \"PROD_PW\"\n",
        pg.port
    ));
    let runs = [
        env.script("pg.query(\"select 1\")").pg(&url).run(),
        env.script(&format!("let db = pg.connect(\"{url}\");"))
            .run(),
        env.script("pg.connect(\"prod\").exec(\"select 1\")")
            .env("PROD_PW", secret)
            .run(),
        env.script("print(pg.connect(\"prod\"))")
            .flag("--dry-run")
            .env("PROD_PW", secret)
            .run(),
        env.script("pg.exec(\"select 1\")").pg(&url).run(),
    ];
    for r in &runs[..3] {
        r.assert_code(2);
        assert!(
            r.stderr.contains("28P01") || r.stderr.contains("password authentication failed"),
            "{}",
            r.stderr
        );
    }
    let audit = env.audit_text();
    assert!(
        audit.contains("pg.exec"),
        "the mutation attempts are audited: {audit}"
    );
    for r in &runs {
        r.assert_output_lacks(secret);
    }
    assert!(!audit.contains(secret), "secret in audit log");
    runs[0].assert_stderr_contains("postgres://opsh:***@");
}

/// At run time the hint stays within the module the call was made on, and
/// falls back to every module when the receiver is a variable.
#[test]
fn a_misspelt_method_is_matched_within_its_module() {
    let env = Env::new();
    env.script("pg.qeury(\"select 1\")")
        .run()
        .assert_code(2)
        .assert_stderr_contains("hint: did you mean pg.query?\n");
    env.script("let db = pg;\ndb.qeury(\"select 1\")")
        .run()
        .assert_code(2)
        .assert_stderr_contains("pg.query")
        .assert_stderr_contains("prom.query");
}

/// Arguments are checked against the declaration before the primitive runs,
/// the same way for every module: no server is needed to find the mistake,
/// and nothing is contacted when there is one.
#[test]
fn bad_arguments_are_refused_by_the_declaration_before_any_call() {
    let env = Env::new();
    env.script("pg.activity(#{older_thn: \"1m\"})")
        .run()
        .assert_code(2)
        .assert_stderr_contains("unknown option `older_thn`")
        .assert_stderr_contains("did you mean `older_than`?")
        .assert_stderr_contains("script.rhai:1:");
    env.script("pg.terminate(#{max: \"3\"})")
        .run()
        .assert_code(2)
        .assert_stderr_contains("option `max` must be an int, got string (\"3\")");
    env.script("pg.activity(#{older_than: \"5 parsecs\"})")
        .run()
        .assert_code(2)
        .assert_stderr_contains("option `older_than`: invalid duration");
    // A mutation refused this way was never attempted: no audit record.
    assert!(env.audit().is_empty(), "{:?}", env.audit());
}
