use crate::support::*;

#[test]
fn args_are_typed_and_visible_in_functions() {
    let env = Env::new();
    let script = "fn f() { args.n + 1 }\nprint(f()); print(type_of(args.ratio)); print(args.dry); print(args.name); print(args.list[1]);";
    env.script(script)
        .script_arg("n", 41)
        .script_arg("ratio", 0.5)
        .script_arg("dry", true)
        .script_arg("name", "api")
        .script_arg("list", "[1,2]")
        .run()
        .assert_code(0)
        .assert_stdout("42\nf64\ntrue\napi\n2\n");
    env.script(script)
        .arg("--arg")
        .arg("oops")
        .run()
        .assert_code(64);
}

#[test]
fn exit_codes_for_fail_exit_and_throw() {
    let env = Env::new();
    env.script("fail(\"replica lag 45s\")")
        .run()
        .assert_code(1)
        .assert_stderr_contains("check failed: replica lag 45s");
    env.script("exit(7)").run().assert_code(7);
    env.script("exit()").run().assert_code(0);
    env.script("throw \"x\"").run().assert_code(2);
    env.script("let x = 1;").run().assert_code(0);
    // A caught failure does not fail the run.
    env.script("try { fail(\"x\") } catch (e) { print(e.kind) }")
        .run()
        .assert_code(0)
        .assert_stdout("check_failed\n");
    env.opsh(["run", "/nonexistent.rhai"]).run().assert_code(2);
    env.opsh(["--bogus"]).run().assert_code(64);
}

#[test]
fn print_and_final_value_behave_like_stock_rhai() {
    Env::new()
        .script("print(\"hi\"); 42")
        .run()
        .assert_code(0)
        .assert_stdout("hi\n");
}

#[test]
fn show_renders_tables_and_json_lines() {
    let env = Env::new();
    let script = "show([#{name: \"db\", ok: true, n: 3}, #{name: \"cache\", ok: false, n: 12}]); show(#{a: 1, b: \"x\"}); show([1, 2]);";
    let r = env.script(script).run();
    r.assert_code(0).assert_stdout_contains("a  1\nb  x\n");
    assert!(
        r.stdout
            .starts_with("N   NAME   OK\n 3  db     true\n12  cache  false\n"),
        "{}",
        r.stdout
    );
    let r = env.script(script).option("--output", "json").run();
    r.assert_code(0);
    let docs = r.json_lines();
    assert_eq!(docs.len(), 3);
    assert_eq!(docs[0][1]["n"], 12);
    assert_eq!(docs[1]["b"], "x");
    env.script("show([#{b: 1, a: 2}], [\"b\", \"a\"])")
        .run()
        .assert_code(0)
        .assert_stdout("B  A\n1  2\n");
}

#[test]
fn piped_stdin_is_a_script() {
    Env::new()
        .piped("print(json.stringify(#{ok: true}))")
        .run()
        .assert_code(0)
        .assert_stdout("{\"ok\":true}\n");
}

#[test]
fn help_lists_and_describes_from_the_registry() {
    let env = Env::new();
    let r = env.opsh(["help"]).run();
    r.assert_code(0);
    for p in opsh::registry::all() {
        r.assert_stdout_contains(&p.full_name());
    }
    env.opsh(["help", "pg.exec"])
        .run()
        .assert_code(0)
        .assert_stdout_contains("pg.exec(sql: string, params?: array) -> map")
        .assert_stdout_contains("mutates")
        .assert_stdout_contains("Example:");
    env.opsh(["help", "pg.qurey"])
        .run()
        .assert_code(64)
        .assert_stderr_contains("did you mean `pg.query`?");
    env.opsh(["help", "exit-codes"])
        .run()
        .assert_code(0)
        .assert_stdout_contains("130");
}

#[test]
fn docs_reference_is_generated_and_current() {
    let path = std::path::PathBuf::from(repo_path("docs/reference.md"));
    let want = opsh::help::reference_markdown();
    if std::env::var_os("OPSH_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(have == want, "docs/reference.md is stale: regenerate with `cargo run -- help --markdown > docs/reference.md` (or OPSH_BLESS=1 cargo test)");
}

#[test]
fn shipped_scripts_compile() {
    let env = Env::new();
    let mut checked = 0;
    for entry in std::fs::read_dir(repo_path("scripts")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "rhai") {
            let r = env.opsh(["check"]).arg(&p).run();
            assert_eq!(r.code, 0, "{}:\n{}", p.display(), r.stderr);
            checked += 1;
        }
    }
    // The runbooks the other tests run are among them: an empty or moved
    // directory is a failure, not a pass.
    assert!(checked >= 15, "only {checked} scripts in scripts/");
}
