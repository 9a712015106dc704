//! The contract between a script and the person running it: a misspelt
//! field is an error (at run time and in `opsh check`), a failed check is
//! said once and briefly, and `--output json` keeps stdout parseable.

use crate::support::*;

const TYPO: &str =
    "let c = pg.connections();\nif c.saturaton_pct > 90 { fail(\"too many connections\") }\nprint(\"ok\");";

#[test]
fn a_misspelt_result_field_fails_the_run_and_check_with_a_suggestion() {
    let sb = sandbox(&[Pg]);
    let env = Env::new();
    let want =
        "no field saturaton_pct on the result of pg.connections(); did you mean saturation_pct?";
    // It used to read as (), the comparison was false and the run exited 0.
    let r = env.script(TYPO).named("typo.rhai").pg(&sb.pg_url()).run();
    r.assert_code(2)
        .assert_stdout("")
        .assert_stderr_contains(want)
        .assert_stderr_contains("typo.rhai:2:6");
    assert_eq!(r.stderr.matches(want).count(), 1, "{}", r.stderr);
    // `opsh check` finds it without running anything.
    let file = env.write("typo.rhai", TYPO);
    env.opsh(["check"])
        .arg(&file)
        .run()
        .assert_code(2)
        .assert_stderr_contains(want)
        .assert_stderr_contains("typo.rhai:2:6");
    // Rows too: a table's rows through a for-loop and [i].
    let rows = env.write(
        "rows.rhai",
        "for s in pg.activity() { print(s.stat) }\nlet a = pg.activity(); a[0].pdi",
    );
    let r = env.opsh(["check"]).arg(&rows).run();
    r.assert_code(2)
        .assert_stderr_contains("no field stat on a row of pg.activity(); did you mean state?")
        .assert_stderr_contains("no field pdi on a row of pg.activity(); did you mean pid?");
}

#[test]
fn declared_fields_read_their_real_values_and_optional_ones_have_a_documented_way() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    let env = Env::new();
    let max = pg_scalar(
        &url,
        "select setting::bigint from pg_settings where name = 'max_connections'",
    );
    let script = "let c = pg.connections();\nprint(c.max_connections);\nprint(\"nope\" in c);\nprint(c.get(\"nope\") ?? \"default\");\nlet m = #{a: 1}; m.b = 2; print(m.b);";
    env.script(script)
        .pg(&url)
        .run()
        .assert_code(0)
        .assert_stdout(&format!("{max}\nfalse\ndefault\n2\n"));
    let file = env.write("fine.rhai", script);
    env.opsh(["check"]).arg(&file).run().assert_code(0);
}

#[test]
fn a_misspelt_key_of_a_scripts_own_map_is_an_error_naming_its_keys() {
    let r = Env::new()
        .script("let limits = #{threshold: 90, name: \"x\"};\nif 95 > limits.treshold { print(\"over\") }")
        .run();
    r.assert_code(2)
        .assert_stdout("")
        .assert_stderr_contains("no field treshold on map limits; did you mean threshold?")
        .assert_stderr_contains("its keys: name, threshold")
        .assert_stderr_contains("\"treshold\" in limits");
}

#[test]
fn a_failed_check_is_one_line_printed_once() {
    let env = Env::new();
    // No source snippet, no frames, no timestamped log line repeating it.
    env.script("fn verify() { fail(\"replica lag 45s\") }\nverify();")
        .run()
        .assert_code(1)
        .assert_stderr("error: check failed: replica lag 45s\n");
    // With -v the run's log line is there too, at info.
    env.script("fail(\"replica lag 45s\")")
        .flag("-v")
        .run()
        .assert_code(1)
        .assert_stderr_contains("INFO run failed");
}

#[test]
fn a_failed_checklist_is_a_line_per_failing_check_and_a_summary() {
    let sb = sandbox(&[Pg]);
    let script = r#"import "checks" as checks;
let results = [];
results += checks::check("pg reachable", || pg.ping() >= 0);
results += checks::check("connections %", || pg.connections().saturation_pct, #{warn: 0, crit: 0});
results += checks::threshold("queue depth", 97, 80, 95);
checks::report(results);
"#;
    let r = Env::new().script(script).pg(&sb.pg_url()).run();
    r.assert_code(1);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.stderr);
    assert_eq!(lines[0], "error: check failed: 2 of 3 checks failed");
    assert!(
        lines[1].starts_with("  FAIL connections %: "),
        "{}",
        r.stderr
    );
    assert!(lines[1].ends_with("; warn >= 0, fail >= 0"), "{}", r.stderr);
    assert_eq!(lines[2], "  FAIL queue depth: 97; warn >= 80, fail >= 95");
    // The table is the data, on stdout; the summary is the error.
    r.assert_stdout_contains("pg reachable")
        .assert_stdout_lacks("3 checks:");
}

#[test]
fn a_refusal_is_printed_once_and_before_the_end_of_run_warnings() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(
        &url,
        "create table t(id int); insert into t values (1), (2);",
    );
    let env = Env::new();
    env.write_config(&format!("[pg.prod]\nurl = \"{url}\"\nprotected = true\n"));
    let r = env
        .script(r#"pg.connect("prod").exec("delete from t")"#)
        .option("--notify", "http://127.0.0.1:9/hook")
        .option("--notify-on", "always")
        .run();
    r.assert_code(3);
    assert_eq!(
        r.stderr.matches("protected target prod").count(),
        1,
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("ERROR"), "{}", r.stderr);
    let refused = r.stderr.find("pg.exec refused").expect("the refusal");
    let warning = r
        .stderr
        .find("warning: notification")
        .expect("the notify warning");
    assert!(refused < warning, "{}", r.stderr);
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 2);
}

#[test]
fn json_output_keeps_print_off_stdout_and_names_documents() {
    let env = Env::new();
    let script =
        "print(\"hello\"); show([#{a: 1}], #{name: \"rows\", columns: [\"a\"]}); show(#{b: 2});";
    let r = env.script(script).option("--output", "json").run();
    r.assert_code(0).assert_stderr("hello\n");
    let docs = r.json_lines();
    assert_eq!(docs.len(), 2, "{}", r.stdout);
    assert_eq!(docs[0]["name"], "rows");
    assert_eq!(docs[0]["value"][0]["a"], 1);
    assert_eq!(docs[1]["b"], 2);
    // With JSON logs, a print is a log record.
    let r = env
        .script(script)
        .option("--output", "json")
        .option("--log-format", "json")
        .run();
    let rec: serde_json::Value = serde_json::from_str(r.stderr.trim()).unwrap();
    assert_eq!(rec["message"], "hello");
    assert_eq!(rec["source"], "print");
    assert_eq!(r.json_lines().len(), 2);
}

/// Every line of stdout is a JSON document.
fn assert_json_stdout(name: &str, r: &Run) {
    for line in r.stdout.lines() {
        if let Err(e) = serde_json::from_str::<serde_json::Value>(line) {
            panic!(
                "{name}: stdout is not JSON ({e}): {line:?}\nstdout:\n{}\nstderr:\n{}",
                r.stdout, r.stderr
            );
        }
    }
}

#[test]
fn every_shipped_runbook_keeps_stdout_json_with_output_json() {
    let sb = sandbox(&[Pg, Redis, Monitoring]);
    let k = kube();
    let env = Env::new();
    let dir = std::path::Path::new(&repo_path("scripts")).to_path_buf();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rhai"))
        .collect();
    names.sort();
    assert!(names.len() >= 15, "{names:?}");
    let jq = std::process::Command::new("jq")
        .arg("--version")
        .output()
        .is_ok();
    let mut printed = 0;
    for name in &names {
        let path = dir.join(name);
        let mut cmd = env
            .opsh(["--output", "json", "--dry-run", "--timeout", "60s", "run"])
            .arg(&path);
        // Scripts declare their arguments: only secret_rotation takes these.
        if name == "secret_rotation.rhai" {
            cmd = cmd
                .script_arg("secret", "platform-secrets")
                .script_arg("from_env", r#"{"api-key":"NEW_API_KEY"}"#)
                .env("NEW_API_KEY", "s3cret-value");
        }
        if name == "backup_verify.rhai" {
            cmd = cmd.script_arg("dir", env.dir("backups").to_string_lossy());
        }
        let r = cmd.targets(&sb).kube(&k).run();
        assert!(r.code != 64, "{name}: {}", r.stderr);
        assert!(r.code != 124, "{name} timed out: {}", r.stderr);
        assert_json_stdout(name, &r);
        printed += r.stdout.lines().count();
        if jq {
            use std::io::Write;
            let mut child = std::process::Command::new("jq")
                .arg(".")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(r.stdout.as_bytes())
                .unwrap();
            assert!(
                child.wait().unwrap().success(),
                "{name}: jq failed on {}",
                r.stdout
            );
        }
    }
    // The runbooks do show something in JSON.
    assert!(printed >= names.len() / 2, "only {printed} documents");
}
