//! Declared script arguments (`//! args:`) through the real binary: each
//! argument error exits 64 before anything runs, a script's --help, check,
//! run-time strictness, the --arg text rules of undeclared scripts, BOM,
//! `#!` and `opsh FILE.rhai`, and a converted runbook against a real server.

use crate::support::*;

/// A script that declares its arguments and prints what it got: a test
/// whose stdout is empty knows it did not start.
const DECLARED: &str = r#"// deploy: rolls an image out.
//
//! args:
//!   image: string (required)     the image to roll out
//!   replicas: int = 3            how many pods
//!   ratio: float = 0.5           share of traffic
//!   wait: duration = 5m          rollout timeout
//!   hosts: [string] = ["a"]      hosts to check
//!   db: string?                  only this database
//!   mode: "fast"|"safe" = safe   how to roll out

print(`image=${args.image} replicas=${args.replicas} type=${type_of(args.replicas)} ratio=${args.ratio} wait=${args.wait} hosts=${args.hosts} db=${args.db} has_db=${"db" in args} mode=${args.mode}`);
"#;

#[test]
fn declared_arguments_are_typed_and_defaulted() {
    let env = Env::new();
    env.script(DECLARED)
        .script_arg("image", "api:2")
        .script_arg("hosts", "x,y")
        .script_arg("ratio", 2)
        .run()
        .assert_code(0)
        .assert_stdout("image=api:2 replicas=3 type=i64 ratio=2.0 wait=5m hosts=[\"x\", \"y\"] db= has_db=false mode=safe\n");
}

#[test]
fn an_unknown_argument_is_a_usage_error_with_a_suggestion() {
    let env = Env::new();
    env.script(DECLARED)
        .script_arg("image", "api:2")
        .script_arg("replica", 5)
        .run()
        .assert_code(64)
        .assert_stderr_contains("script.rhai has no argument replica; did you mean replicas?")
        .assert_stderr_contains("script.rhai` lists its arguments")
        .assert_stdout("");
}

#[test]
fn a_value_of_the_wrong_type_names_the_argument_and_the_type() {
    let env = Env::new();
    let r = env
        .script(DECLARED)
        .script_arg("image", "api:2")
        .script_arg("replicas", "abc")
        .run();
    r.assert_code(64)
        .assert_stdout("")
        .assert_stderr_contains("script.rhai is an int; \"abc\" is not")
        .assert_stderr_contains("hint: e.g. --arg replicas=3;");
    // No Rhai operator error from deep inside the script.
    r.assert_stderr_lacks("function not found");
    for (name, value, ty) in [
        ("wait", "soon", "a duration"),
        ("mode", "slow", "one of \"fast\", \"safe\""),
        ("ratio", "x", "a float"),
    ] {
        env.script(DECLARED)
            .script_arg("image", "i")
            .script_arg(name, value)
            .run()
            .assert_code(64)
            .assert_stdout("")
            .assert_stderr_contains(&format!(
                "argument {name} of {} is {ty}",
                env.path("script.rhai").display()
            ));
    }
}

#[test]
fn a_missing_required_argument_is_a_usage_error_not_a_failed_check() {
    let env = Env::new();
    env.script(DECLARED)
        .run()
        .assert_code(64)
        .assert_stderr_contains(
            "script.rhai needs the argument image (string: the image to roll out)",
        )
        .assert_stderr_contains("give --arg image=TEXT")
        .assert_stdout("");
}

#[test]
fn a_duplicate_arg_is_a_usage_error() {
    let env = Env::new();
    // Declared or not.
    for text in [DECLARED, "print(args.image);"] {
        env.script(text)
            .script_arg("image", "a")
            .script_arg("image", "b")
            .run()
            .assert_code(64)
            .assert_stdout("")
            .assert_stderr_contains("--arg image is given twice");
    }
}

#[test]
fn script_help_lists_the_arguments_with_docs_and_defaults() {
    let env = Env::new();
    env.write("deploy.rhai", DECLARED);
    let want = [
        "run deploy.rhai [--arg NAME=VALUE]...",
        "deploy: rolls an image out.",
        "image <string>",
        "the image to roll out [required]",
        "how many pods [default: 3]",
        "only this database [optional]",
        "mode <\"fast\"|\"safe\">",
    ];
    for cmd in [
        vec!["run", "deploy.rhai", "--help"],
        vec!["run", "deploy.rhai", "-h"],
        vec!["help", "deploy.rhai"],
        // --help wins over arguments that would not pass.
        vec!["run", "deploy.rhai", "--arg", "nope=1", "--help"],
        // Before any server starts.
        vec!["sandbox", "run", "deploy.rhai", "--help"],
    ] {
        let r = env.opsh(cmd.clone()).run();
        let usage = match cmd[0] {
            "sandbox" => "Usage: opsh sandbox run deploy.rhai",
            _ => "Usage: opsh run deploy.rhai",
        };
        r.assert_code(0).assert_stdout_contains(usage);
        for w in want {
            r.assert_stdout_contains(w);
        }
        r.assert_stdout_lacks("--dry-run");
        r.assert_stdout_lacks("image=");
    }
    // Without a script, --help is opsh's own.
    env.opsh(["run", "--help"])
        .run()
        .assert_code(0)
        .assert_stdout_contains("Usage: opsh run")
        .assert_stdout_contains("--arg <KEY=VALUE>");
    // An undeclared script says so.
    env.write("plain.rhai", "// plain: no declaration.\nprint(1);\n");
    env.opsh(["help", "plain.rhai"])
        .run()
        .assert_code(0)
        .assert_stdout_contains("plain: no declaration.")
        .assert_stdout_contains("Arguments: not declared");
}

#[test]
fn check_validates_the_declaration_and_reads_of_args() {
    let env = Env::new();
    let f = env.write(
        "bad.rhai",
        "//! args:\n//!   pct: integer = 85   threshold\n//!   n: int = abc\nprint(1);\n",
    );
    env.opsh(["check"])
        .arg(&f)
        .run()
        .assert_code(2)
        .assert_stderr_contains("unknown type \"integer\": did you mean int?")
        .assert_stderr_contains("bad.rhai:2:7");
    let f = env.write(
        "typo.rhai",
        "//! args:\n//!   saturation_pct: number = 85\nif 90 > args.saturaton_pct { print(1); }\n",
    );
    env.opsh(["check"])
        .arg(&f)
        .run()
        .assert_code(2)
        .assert_stderr_contains("`args.saturaton_pct` is not a declared argument")
        .assert_stderr_contains("typo.rhai:3:14")
        .assert_stderr_contains("did you mean `saturation_pct`?");
    // At run time the typo is an error too, not a silent `()`.
    env.opsh(["run"])
        .arg(&f)
        .run()
        .assert_code(2)
        .assert_stderr_contains("no argument saturaton_pct is declared")
        .assert_stderr_contains("did you mean saturation_pct?");
}

#[test]
fn undeclared_arg_text_keeps_ids_as_strings() {
    let env = Env::new();
    env.script("for k in [\"big\", \"zero\", \"n\", \"f\"] { print(`${k}=${args[k]}:${type_of(args[k])}`); }")
        .script_arg("big", "12345678901234567890")
        .script_arg("zero", "007")
        .script_arg("n", "42")
        .script_arg("f", "0.25")
        .run()
        .assert_code(0)
        .assert_stdout("big=12345678901234567890:string\nzero=007:string\nn=42:i64\nf=0.25:f64\n");
    // Declared, the same text is what the declaration says.
    env.script("//! args:\n//!   id: string?\n//!   n: int?\nprint(`${args.id}:${type_of(args.id)} ${args.n}`);")
        .script_arg("id", "007")
        .script_arg("n", "007")
        .run()
        .assert_code(0)
        .assert_stdout("007:string 7\n");
}

#[test]
fn a_bom_is_ignored_in_run_check_test_and_imports() {
    let env = Env::new();
    env.write("lib.rhai", "\u{feff}fn twice(x) { x * 2 }\n");
    let main = env.write(
        "main.rhai",
        "\u{feff}import \"lib\" as lib;\nprint(lib::twice(21));\n",
    );
    env.opsh(["run"])
        .arg(&main)
        .run()
        .assert_code(0)
        .assert_stdout("42\n");
    env.opsh(["check"]).arg(&main).run().assert_code(0);
    let t = env.write(
        "bom_test.rhai",
        "\u{feff}fn test_bom() { assert_eq(1 + 1, 2); }\n",
    );
    env.opsh(["test"])
        .arg(&t)
        .run()
        .assert_code(0)
        .assert_stdout_contains("1 passed");
}

#[test]
fn a_shebang_line_makes_a_runbook_an_executable_file() {
    let env = Env::new();
    let f = env.write(
        "hello.rhai",
        "#!/usr/bin/env -S opsh run\n//! args:\n//!   who: string = world\nprint(`hello ${args.who}`);\nthrow \"line 5\";\n",
    );
    // Positions are those of the file.
    env.opsh(["run"])
        .arg(&f)
        .run()
        .assert_code(2)
        .assert_stdout("hello world\n")
        .assert_stderr_contains("hello.rhai:5:1");
    env.opsh(["check"]).arg(&f).run().assert_code(0);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        &f,
        std::fs::read_to_string(&f)
            .unwrap()
            .replace("throw \"line 5\";\n", ""),
    )
    .unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_opsh"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new(&f)
        .env("PATH", path)
        .env("HOME", env.path("home"))
        .env("XDG_STATE_HOME", env.path("xdgstate"))
        .env("OPSH_AUDIT_LOG", env.audit_path())
        .current_dir(env.path(""))
        .args(["--arg", "who=ops"])
        .output()
        .unwrap();
    let r = Run::from(out);
    r.assert_code(0).assert_stdout("hello ops\n");
}

#[test]
fn opsh_file_runs_a_file_and_an_unknown_word_suggests_a_command() {
    let env = Env::new();
    env.write("deploy.rhai", DECLARED);
    env.opsh(["deploy.rhai", "--arg", "image=x"])
        .run()
        .assert_code(0)
        .assert_stdout_contains("image=x replicas=3");
    env.opsh(["--dry-run", "deploy.rhai", "--arg", "imag=x"])
        .run()
        .assert_code(64)
        .assert_stderr_contains("did you mean image?");
    env.opsh(["chek", "deploy.rhai"])
        .run()
        .assert_code(64)
        .assert_stderr_contains("unknown command or script \"chek\"")
        .assert_stderr_contains("did you mean `opsh check`?");
}

#[test]
fn each_target_and_schedule_check_arguments_before_starting() {
    let env = Env::new();
    env.write_config(
        "[pg.prod-1]\nurl = \"postgres://nobody@127.0.0.1:1/x\"\n[pg.prod-2]\nurl = \"postgres://nobody@127.0.0.1:1/y\"\n",
    );
    let r = env
        .script(DECLARED)
        .option("--each-target", "pg:prod-*")
        .script_arg("image", "x")
        .script_arg("replica", 2)
        .run();
    r.assert_code(64);
    // Once, from the parent: no child started.
    assert_eq!(
        r.stderr.matches("has no argument replica").count(),
        1,
        "{}",
        r.stderr
    );
    r.assert_stdout("");

    env.write("deploy.rhai", DECLARED);
    let f = env.write(
        "s.toml",
        "[[job]]\ncron = \"* * * * *\"\nscript = \"deploy.rhai\"\nargs = { image = \"x\", replicas = \"many\" }\n",
    );
    env.opsh(["schedule"])
        .arg(&f)
        .run()
        .assert_code(64)
        .assert_stderr_contains("job deploy: argument replicas of")
        .assert_stderr_contains("is an int; \"many\" is not");
}

#[test]
fn a_converted_runbook_takes_declared_arguments_against_a_real_server() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    let env = Env::new();
    let s = repo_path("scripts/db_connection_exhaustion.rhai");
    // --arg text reaches the declared types: a threshold of 1% is exceeded
    // by any server, terminate=false only reports (nothing is terminated).
    env.opsh(["run"])
        .arg(&s)
        .script_arg("saturation_pct", 1)
        .script_arg("terminate", "false")
        .script_arg("exclude_applications", "pgbouncer,backup")
        .pg(&url)
        .run()
        .assert_code(1);
    // A typo of the threshold, or a threshold that is not a number, is
    // refused before PostgreSQL is asked anything.
    env.opsh(["run"])
        .arg(&s)
        .script_arg("saturaton_pct", 1)
        .pg(&url)
        .run()
        .assert_code(64)
        .assert_stderr_contains("did you mean saturation_pct?")
        .assert_stdout("");
    env.opsh(["run"])
        .arg(&s)
        .script_arg("saturation_pct", "high")
        .pg(&url)
        .run()
        .assert_code(64)
        .assert_stderr_contains("argument saturation_pct of")
        .assert_stdout("");
    let audit = env.audit_text();
    assert!(!audit.contains("pg.terminate"), "{audit}");
}

#[test]
fn declared_args_reach_primitives_as_a_map() {
    let env = Env::new();
    let r = env
        .script("//! args:\n//!   n: int = 1\n//!   db: string?\nshow(args);\nprint(json.stringify(args));")
        .flag("--output")
        .flag("json")
        .script_arg("db", "app")
        .run();
    r.assert_code(0);
    let want = serde_json::json!({"n": 1, "db": "app"});
    assert_eq!(r.json_lines(), std::slice::from_ref(&want), "{}", r.stdout);
    // print() goes to stderr with --output json.
    let printed: serde_json::Value = serde_json::from_str(r.stderr.trim()).unwrap();
    assert_eq!(printed, want, "{}", r.stderr);
}
