use crate::support::*;

#[test]
fn args_are_typed_and_visible_in_functions() {
    let env2 = Env::new();
    let f = env2.write("a.rhai", "fn f() { args.n + 1 }\nprint(f()); print(type_of(args.ratio)); print(args.dry); print(args.name); print(args.list[1]);");
    let r = env2.opsh(
        &[
            "run",
            f.to_str().unwrap(),
            "--arg",
            "n=41",
            "--arg",
            "ratio=0.5",
            "--arg",
            "dry=true",
            "--arg",
            "name=api",
            "--arg",
            "list=[1,2]",
        ],
        &[],
    );
    r.assert_code(0);
    assert_eq!(r.stdout, "42\nf64\ntrue\napi\n2\n");
    env2.opsh(&["run", f.to_str().unwrap(), "--arg", "oops"], &[])
        .assert_code(64);
}

#[test]
fn exit_codes_for_fail_exit_and_throw() {
    let env = Env::new();
    let r = env.run("fail(\"replica lag 45s\")", &[], &[]);
    r.assert_code(1);
    assert!(
        r.stderr.contains("check failed: replica lag 45s"),
        "{}",
        r.stderr
    );
    env.run("exit(7)", &[], &[]).assert_code(7);
    env.run("exit()", &[], &[]).assert_code(0);
    env.run("throw \"x\"", &[], &[]).assert_code(2);
    env.run("let x = 1;", &[], &[]).assert_code(0);
    // A caught failure does not fail the run.
    let r = env.run("try { fail(\"x\") } catch (e) { print(e.kind) }", &[], &[]);
    r.assert_code(0);
    assert_eq!(r.stdout.trim(), "check_failed");
    env.opsh(&["run", "/nonexistent.rhai"], &[]).assert_code(2);
    env.opsh(&["--bogus"], &[]).assert_code(64);
}

#[test]
fn print_and_final_value_behave_like_stock_rhai() {
    let env = Env::new();
    let r = env.run("print(\"hi\"); 42", &[], &[]);
    r.assert_code(0);
    assert_eq!(r.stdout, "hi\n");
}

#[test]
fn show_renders_tables_and_json_lines() {
    let env = Env::new();
    let script = "show([#{name: \"db\", ok: true, n: 3}, #{name: \"cache\", ok: false, n: 12}]); show(#{a: 1, b: \"x\"}); show([1, 2]);";
    let r = env.run(script, &[], &[]);
    r.assert_code(0);
    assert!(
        r.stdout
            .starts_with("N   NAME   OK\n 3  db     true\n12  cache  false\n"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("a  1\nb  x\n"), "{}", r.stdout);
    let r = env.run(script, &["--output", "json"], &[]);
    r.assert_code(0);
    let docs: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len(), 3);
    assert_eq!(docs[0][1]["n"], 12);
    assert_eq!(docs[1]["b"], "x");
    let r = env.run("show([#{b: 1, a: 2}], [\"b\", \"a\"])", &[], &[]);
    assert_eq!(r.stdout, "B  A\n1  2\n");
}

#[test]
fn piped_stdin_is_a_script() {
    let env = Env::new();
    let mut c = env.command();
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"print(json.stringify(#{ok: true}))")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "{\"ok\":true}\n");
}

#[test]
fn help_lists_and_describes_from_the_registry() {
    let env = Env::new();
    let r = env.opsh(&["help"], &[]);
    r.assert_code(0);
    for p in opsh::registry::all() {
        assert!(
            r.stdout.contains(&p.full_name()),
            "{} missing from help",
            p.full_name()
        );
    }
    let r = env.opsh(&["help", "pg.exec"], &[]);
    r.assert_code(0);
    assert!(
        r.stdout
            .contains("pg.exec(sql: string, params?: array) -> map"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("mutates"), "{}", r.stdout);
    assert!(r.stdout.contains("Example:"), "{}", r.stdout);
    let r = env.opsh(&["help", "pg.qurey"], &[]);
    r.assert_code(64);
    assert!(
        r.stderr.contains("did you mean `pg.query`?"),
        "{}",
        r.stderr
    );
    assert!(env
        .opsh(&["help", "exit-codes"], &[])
        .stdout
        .contains("130"));
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
fn every_declared_example_compiles() {
    let env = Env::new();
    for p in opsh::registry::all() {
        let f = env.write("example.rhai", p.example);
        let r = env.opsh(&["check", f.to_str().unwrap()], &[]);
        assert_eq!(
            r.code,
            0,
            "example of {} does not compile:\n{}\n{}",
            p.full_name(),
            p.example,
            r.stderr
        );
    }
}

#[test]
fn shipped_scripts_compile() {
    let env = Env::new();
    let dir = repo_path("scripts");
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "rhai") {
            let r = env.opsh(&["check", p.to_str().unwrap()], &[]);
            assert_eq!(r.code, 0, "{}:\n{}", p.display(), r.stderr);
        }
    }
}
