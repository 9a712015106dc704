use crate::support::*;
use std::time::Duration;

#[test]
fn protected_target_refuses_without_yes_and_proceeds_with_it() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(
        &url,
        "create table t(id int); insert into t values (1), (2);",
    );
    let env = Env::new();
    env.write_config(&format!("[pg.prod]\nurl = \"{url}\"\nprotected = true\n"));
    let script = r#"pg.connect("prod").exec("delete from t")"#;
    env.script(script)
        .run()
        .assert_code(3)
        .assert_stderr_contains("pg.exec refused")
        .assert_stderr_contains("protected target prod")
        .assert_stderr_contains("--yes");
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 2);
    // Reads need no confirmation; dry-run neither.
    env.script(r#"pg.connect("prod").query("select 1")"#)
        .run()
        .assert_code(0);
    env.script(script).flag("--dry-run").run().assert_code(0);
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 2);
    env.script(script).flag("--yes").run().assert_code(0);
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 0);
}

/// The environment beats `[defaults]` (issue 19); it must not also beat
/// protection: `DATABASE_URL` (or a typed URL) naming the server and
/// database of a protected target is that target for the confirmation.
#[test]
fn another_spelling_of_a_protected_target_is_protected() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(
        &url,
        "create table t(id int); insert into t values (1), (2);",
    );
    let env = Env::new();
    env.write_config(&format!(
        "[defaults]\npg = \"staging\"\n[pg.staging]\nurl = \"postgres://nobody@127.0.0.1:1/staging\"\n[pg.prod]\nurl = \"{url}\"\nprotected = true\n"
    ));
    env.script(r#"pg.exec("delete from t")"#)
        .env("DATABASE_URL", &url)
        .run()
        .assert_code(3)
        .assert_stderr_contains("--yes");
    env.script(&format!(r#"pg.connect("{url}").exec("delete from t")"#))
        .run()
        .assert_code(3);
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 2);
}

#[test]
fn mutation_is_refused_when_the_audit_log_cannot_be_written() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(&url, "create table t(id int); insert into t values (1);");
    let env = Env::new();
    env.write("not-a-dir", "file");
    let bad = env.path("not-a-dir/audit.jsonl");
    let bad = bad.to_str().unwrap();
    env.script(r#"pg.exec("delete from t")"#)
        .pg(&url)
        .env("OPSH_AUDIT_LOG", bad)
        .run()
        .assert_code(3)
        .assert_stderr_contains("audit log");
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 1);
    // Reads do not need the audit log.
    env.script(r#"pg.query("select 1")"#)
        .pg(&url)
        .env("OPSH_AUDIT_LOG", bad)
        .run()
        .assert_code(0);
}

#[test]
fn runaway_loop_hits_the_operation_limit() {
    Env::new()
        .script("let i = 0; loop { i += 1; }")
        .option("--max-operations", "100000")
        .run()
        .assert_code(2)
        .assert_stderr_contains("operation limit");
}

/// Runs opsh on a pseudo-terminal (util-linux `script`) and answers the
/// confirmation prompt by typing `answer` (a line, or a key such as ^C).
/// On the pty stdout and stderr are one stream: `Run::stdout`.
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
    std::thread::sleep(Duration::from_millis(700));
    stdin.write_all(answer.as_bytes()).unwrap();
    // The answer alone must end the run: a prompt still waiting (for Enter
    // after a Ctrl-C, say) fails the test rather than reading EOF later.
    let ended = poll(secs(5), || child.try_wait().unwrap().is_some());
    drop(stdin);
    if ended.is_err() {
        let _ = child.kill();
        panic!("opsh still waits after the answer {answer:?}");
    }
    wait_output(child)
}

#[test]
fn protected_target_asks_on_a_terminal() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
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
    run_on_tty(&env, &f, "no\n")
        .assert_code(3)
        .assert_stdout_contains("PROTECTED target prod")
        .assert_stdout_contains("not confirmed");
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 2);
    // Ctrl-C at the prompt ends the run as interrupted, without waiting
    // for Enter, and changes nothing.
    run_on_tty(&env, &f, "\x03")
        .assert_code(130)
        .assert_stdout_contains("interrupted (Ctrl-C)");
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 2);
    run_on_tty(&env, &f, "yes\n")
        .assert_code(0)
        .assert_stdout_contains("deleted");
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 1);
}

/// The exit code `opsh help exit-codes` documents for a bug in opsh.
const INTERNAL: i32 = 70;

#[test]
fn a_panic_is_reported_as_an_internal_error_with_its_own_code() {
    // Debug builds panic on purpose when OPSH_DEBUG_PANIC is set.
    Env::new()
        .opsh(["--version"])
        .env("OPSH_DEBUG_PANIC", "1")
        .run()
        .assert_code(INTERNAL)
        .assert_stderr_contains("internal error, please report")
        .assert_stderr_contains("src/run.rs:")
        .assert_stderr_lacks("panicked at");
    // Off the main thread: the run goes on, and still ends as a bug.
    Env::new()
        .opsh(["--version"])
        .env("OPSH_DEBUG_PANIC", "thread")
        .run()
        .assert_code(INTERNAL)
        .assert_stdout_contains("opsh ")
        .assert_stderr_contains("internal error, please report")
        .assert_stderr_contains("thread debug-panic");
    Env::new()
        .opsh(["help", "exit-codes"])
        .run()
        .assert_code(0)
        .assert_stdout_contains(&format!("{INTERNAL}"))
        .assert_stdout_contains("internal error");
}

/// Runs `opsh run` of `text` with stdout and stderr going where `out` and
/// `err` say, and returns the exit code.
fn run_with_stdio(
    env: &Env,
    text: &str,
    out: std::process::Stdio,
    err: std::process::Stdio,
) -> i32 {
    let f = env.write("out.rhai", text);
    let mut c = env.command();
    c.arg("run").arg(f).stdout(out).stderr(err);
    let status = c.status().expect("run opsh");
    status.code().unwrap_or(-1)
}

fn dev_full() -> std::process::Stdio {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full")
        .into()
}

#[test]
fn a_failed_write_to_stdout_or_stderr_never_panics() {
    let env = Env::new();
    let noisy = "print(\"a line\");\nthrow \"the script's own error\";";
    // A full disk on either stream: the script's own code (2), not 101.
    assert_eq!(
        run_with_stdio(&env, noisy, dev_full(), std::process::Stdio::null()),
        2
    );
    assert_eq!(
        run_with_stdio(&env, noisy, std::process::Stdio::null(), dev_full()),
        2
    );
    assert_eq!(
        run_with_stdio(&env, "print(1); debug(\"x\");", dev_full(), dev_full()),
        0
    );
    // With logs (-vv) going to a full stderr as well.
    let f = env.write("ok.rhai", "print(\"fine\")");
    let code = env
        .command()
        .args(["-vv", "run"])
        .arg(&f)
        .stdout(std::process::Stdio::null())
        .stderr(dev_full())
        .status()
        .unwrap()
        .code();
    assert_eq!(code, Some(0));
    // A reader that went away (`opsh run x 2>&1 | head -2`): the run ends
    // quietly with the code the script gave.
    let f = env.write(
        "many.rhai",
        "for i in 0..20000 { print(`line ${i}`) }\nfail(\"still checked\");",
    );
    let mut child = env
        .command()
        .arg("run")
        .arg(&f)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Read;
        let mut first = [0u8; 16];
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut first)
            .unwrap();
    }
    drop(child.stdout.take());
    drop(child.stderr.take());
    assert_eq!(child.wait().unwrap().code(), Some(1));
}

/// Starts `text` (which prints `started` first), waits for that line, sends
/// `sig` once, and returns the run and how long it took to end after it.
fn signalled(env: &Env, text: &str, sig: i32) -> (Run, Duration) {
    let mut child = env.script(text).spawn();
    let lines = Lines::of(&mut child);
    eventually(secs(10), "the script to start", || !lines.all().is_empty());
    std::thread::sleep(Duration::from_millis(300));
    let sent = std::time::Instant::now();
    signal(&child, sig);
    let run = wait_output(child);
    (run, sent.elapsed())
}

#[test]
fn every_form_of_sleep_is_cancellable() {
    let env = Env::new();
    for form in ["sleep(60)", "sleep(60.5)", "sleep(\"60s\")"] {
        let started = std::time::Instant::now();
        env.script(form)
            .option("--timeout", "500ms")
            .run()
            .assert_code(124)
            .assert_stderr_contains("run timeout exceeded");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{form}: {:?}",
            started.elapsed()
        );
        let text = format!("print(\"started\");\n{form};\nprint(\"not reached\");");
        // One SIGTERM, one Ctrl-C: each ends the wait at once.
        for sig in [libc::SIGTERM, libc::SIGINT] {
            let (r, took) = signalled(&env, &text, sig);
            r.assert_code(130).assert_stdout_lacks("not reached");
            assert!(
                took < Duration::from_secs(2),
                "{form} after signal {sig}: {took:?}"
            );
        }
    }
    // Out of range: a clear error naming the argument, not a panic.
    for (form, says) in [
        ("sleep(1e20)", "too long"),
        ("sleep(-1)", "cannot be negative"),
        ("sleep(-0.5)", "cannot be negative"),
    ] {
        env.script(form)
            .run()
            .assert_code(2)
            .assert_stderr_contains("sleep failed: argument `duration`")
            .assert_stderr_contains(says)
            .assert_stderr_lacks("panicked");
    }
    // Short numeric sleeps still sleep.
    let started = std::time::Instant::now();
    env.script("sleep(0); sleep(0.3); print(\"done\")")
        .run()
        .assert_code(0)
        .assert_stdout("done\n");
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[test]
fn an_import_cycle_is_named_in_run_and_check() {
    let env = Env::new();
    env.write("lib/a.rhai", "import \"b\" as b;\nfn fa() { 1 }\n");
    env.write("lib/b.rhai", "import \"a\" as a;\nfn fb() { 2 }\n");
    let main = env.write("lib/main.rhai", "import \"a\" as a;\nprint(a::fa());\n");
    let me = env.write("lib/me.rhai", "import \"me\" as me;\nprint(1);\n");
    let cases = [
        (&main, "import cycle: a.rhai -> b.rhai -> a.rhai"),
        (&me, "import cycle: me.rhai -> me.rhai"),
    ];
    for (file, says) in cases {
        env.opsh(["run"])
            .arg(file)
            .run()
            .assert_code(2)
            .assert_stderr_contains(says)
            .assert_stderr_lacks("overflow");
        env.opsh(["check"])
            .arg(file)
            .run()
            .assert_code(2)
            .assert_stderr_contains(says);
    }
    // Running a module of the cycle names it from that module.
    env.opsh(["run"])
        .arg(env.path("lib/a.rhai"))
        .run()
        .assert_code(2)
        .assert_stderr_contains("import cycle: a.rhai -> b.rhai -> a.rhai");
    // A module imported twice without a cycle (a diamond) is fine.
    env.write("ok/z.rhai", "fn z() { 26 }\n");
    env.write("ok/x.rhai", "import \"z\" as z;\nfn x() { z::z() }\n");
    env.write("ok/y.rhai", "import \"z\" as z;\nfn y() { z::z() }\n");
    let ok = env.write(
        "ok/main.rhai",
        "import \"x\" as x;\nimport \"y\" as y;\nprint(x::x() + y::y());\n",
    );
    env.opsh(["check"]).arg(&ok).run().assert_code(0);
    env.opsh(["run"])
        .arg(&ok)
        .run()
        .assert_code(0)
        .assert_stdout("52\n");
}

#[test]
fn an_import_through_a_symlink_out_of_the_directory_is_refused() {
    let env = Env::new();
    env.write("secret/creds.rhai", "fn password() { \"from outside\" }\n");
    env.dir("runbooks/sub");
    std::os::unix::fs::symlink(
        env.path("secret/creds.rhai"),
        env.path("runbooks/creds.rhai"),
    )
    .unwrap();
    std::os::unix::fs::symlink(env.path("secret"), env.path("runbooks/sub/dir")).unwrap();
    let direct = env.write(
        "runbooks/main.rhai",
        "import \"creds\" as c;\nprint(c::password());\n",
    );
    let via_dir = env.write(
        "runbooks/via_dir.rhai",
        "import \"sub/dir/creds\" as c;\nprint(c::password());\n",
    );
    for file in [&direct, &via_dir] {
        env.opsh(["run"])
            .arg(file)
            .run()
            .assert_code(2)
            .assert_stderr_contains("is refused")
            .assert_stderr_contains("outside the script's directory")
            .assert_stdout_lacks("from outside");
        env.opsh(["check"])
            .arg(file)
            .run()
            .assert_code(2)
            .assert_stderr_contains("outside the script's directory");
    }
    // A symlink that stays inside the directory is followed.
    env.write("runbooks/real/helpers.rhai", "fn two() { 2 }\n");
    std::os::unix::fs::symlink(
        env.path("runbooks/real/helpers.rhai"),
        env.path("runbooks/helpers.rhai"),
    )
    .unwrap();
    let inside = env.write(
        "runbooks/inside.rhai",
        "import \"helpers\" as h;\nprint(h::two());\n",
    );
    env.opsh(["run"])
        .arg(&inside)
        .run()
        .assert_code(0)
        .assert_stdout("2\n");
}

#[test]
fn a_recording_holds_no_password_and_still_replays() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    let pw = sb.pg().password.clone();
    assert!(
        url.contains(&format!(":{pw}@")),
        "{url} carries the password"
    );
    pg_exec(
        &url,
        "create table t(id int); insert into t values (1), (2);",
    );
    let env = Env::new();
    // The URL reaches the recording as a handle's target, as an argument
    // and inside a result.
    let s = env.write(
        "rec.rhai",
        r#"let db = pg.connect(args.url);
let n = db.query("select count(*)::int as n from t")[0].n;
let echoed = db.query("select $1::text as u", [args.url])[0].u;
print(`rows ${n} ${echoed.len() > 0}`);
db.exec("delete from t where id = 1");
"#,
    );
    let rec = env.path("run.json");
    env.opsh(["run"])
        .arg(&s)
        .script_arg("url", &url)
        .arg("--record")
        .arg(&rec)
        .run()
        .assert_code(0)
        .assert_stdout("rows 2 true\n")
        .assert_output_lacks(&pw);
    let text = std::fs::read_to_string(&rec).unwrap();
    assert!(
        !text.contains(&pw),
        "the recording holds the password:\n{text}"
    );
    assert!(text.contains(":***@"), "{text}");
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 1);
    // Replayed without the server: the same answers, the delete planned.
    drop(sb);
    env.opsh(["run"])
        .arg(&s)
        .script_arg("url", &url)
        .arg("--replay")
        .arg(&rec)
        .run()
        .assert_code(0)
        .assert_stdout("rows 2 true\n")
        .assert_stderr_contains("[replay] planned, not applied: pg.exec")
        .assert_stderr_contains("every call matched the recording");
}

#[test]
fn a_recording_that_cannot_be_written_is_one_error() {
    let env = Env::new();
    let s = env.write("ok.rhai", "print(\"ran\")");
    env.opsh(["run"])
        .arg(&s)
        .arg("--record")
        .arg(env.path("no/such/dir/run.json"))
        .run()
        .assert_code(2)
        .assert_stdout("ran\n")
        .assert_stderr_contains("error: cannot write the recording")
        .assert_stderr_contains("= hint:");
}

#[test]
fn an_error_that_quotes_a_file_does_not_quote_its_secrets() {
    let env = Env::new();
    let token = "KubeTok3n-never-shown";
    let key = "Q0xJRU5US0VZREFUQQ-never-shown";
    // A kubeconfig that does not parse: the YAML error quotes the lines
    // around the fault, the token's among them.
    let broken = [
        format!("apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: {token}\n    client-key-data: {key}\n  bad: [unclosed\ncontexts:\n- name: x\n"),
        format!("apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user: {{token: {token}, password: {{a: 1}}}}\n"),
        format!("apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: {token}\n    password: [1, 2\n"),
    ];
    for (i, text) in broken.iter().enumerate() {
        let kc = env.write(&format!("kube{i}.yaml"), text);
        env.script("k8s.get(\"deployment\", \"web\")")
            .kubeconfig(kc.to_str().unwrap())
            .run()
            .assert_code(2)
            .assert_stderr_contains("cannot load kubeconfig")
            .assert_output_lacks(token)
            .assert_output_lacks(key);
    }
    // A config whose TOML does not parse, or has a password where a
    // boolean belongs: the message says where, not what the value is.
    let pw = "T0mlPassw0rd-never-shown";
    for toml in [
        format!("[pg.prod]\nurl = \"postgres://app:{pw}@db/app\"\nprotected = \"{pw}\"\n"),
        format!("[pg.prod]\nurl = \"postgres://app:{pw}@db/app\n"),
        format!("[pg.prod]\npassword = {pw}\n"),
    ] {
        env.write_config(&toml);
        env.script("print(1)")
            .run()
            .assert_code(2)
            .assert_stderr_contains("invalid config")
            // FILE:LINE:COLUMN, as a compiler says it.
            .assert_stderr_contains("config.toml:")
            .assert_output_lacks(pw);
    }
}

#[test]
fn a_zero_timeout_is_no_limit() {
    let env = Env::new();
    env.script("sleep(0.3); print(\"done\")")
        .option("--timeout", "0s")
        .option("--call-timeout", "0s")
        .run()
        .assert_code(0)
        .assert_stdout("done\n");
    // A limit still is one.
    env.script("sleep(5); print(\"done\")")
        .option("--timeout", "200ms")
        .run()
        .assert_code(124)
        .assert_stdout("");
}

/// A local HTTP endpoint that answers 200 with a small JSON body and keeps
/// every request as it arrived: (path, headers, body).
type Requests = std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>;

fn http_recorder() -> (String, Requests) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Requests = Default::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let (mut headers, mut len) = (String::new(), 0);
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                headers.push_str(&h);
            }
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            log.lock()
                .unwrap()
                .push((path, headers, String::from_utf8_lossy(&body).into_owned()));
            let reply = "{\"ok\":true}";
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
            let mut s = stream;
            let _ = s.write_all(resp.as_bytes());
        }
    });
    (format!("http://127.0.0.1:{port}"), seen)
}

/// One secret from every place a secret comes from, and every channel
/// opsh writes to, searched for each of them.
#[test]
fn no_planted_secret_reaches_any_output_channel() {
    let sb = sandbox(&[Pg]);
    let pg = sb.pg();
    let url = sb.pg_url();
    let k = kube();
    let (api, requests) = http_recorder();
    let env = Env::new();
    // Where secrets come from: a URL's password (config, and an --arg), an
    // environment variable, a password file, a kubeconfig token, http
    // bearer and basic credentials, a webhook URL from the environment.
    let s_url = pg.password.clone();
    let s_env = "EnvPassw0rd-planted-1";
    let s_file = "FilePassw0rd-planted-2";
    let s_arg = "ArgUrlPassw0rd-planted-3";
    let s_kube = "KubeT0ken-planted-4";
    let s_bearer = "BearerT0ken-planted-5";
    let s_basic = "BasicPassw0rd-planted-6";
    let s_hook = "HookPathSecret-planted-7";
    pg_exec(
        &url,
        &format!(
            "create role envuser login password '{s_env}'; create role fileuser login password '{s_file}';"
        ),
    );
    let pw_file = env.write("secrets/pg-password", &format!("{s_file}\n"));
    let hook = format!("{api}/notify/{s_hook}");
    let base = format!("127.0.0.1:{}/postgres", pg.port);
    env.write_config(&format!(
        r#"[pg.direct]
url = "{url}"
[pg.envpw]
url = "postgres://envuser@{base}"
password_env = "PLANTED_PG_PASSWORD"
[pg.filepw]
url = "postgres://fileuser@{base}"
password_file = "{}"
[notify.hook]
webhook_url_env = "PLANTED_HOOK_URL"
"#,
        pw_file.display()
    ));
    let kc = std::fs::read_to_string(k.kubeconfig()).unwrap();
    assert!(kc.contains("- name: admin\n  user: {}"), "{kc}");
    let kc = kc.replace(
        "- name: admin\n  user: {}",
        &format!("- name: admin\n  user:\n    token: {s_kube}"),
    );
    let kc_path = env.write("kube/config", &kc);
    let script = env.write(
        "everything.rhai",
        r#"let who = [];
for t in ["direct", "envpw", "filepw"] {
    who.push(pg.connect(t).query("select current_user as u")[0].u);
}
print(who);
pg.connect("direct").exec("create table if not exists planted(id int)");
try { pg.connect(args.bad_url).query("select 1") } catch (e) { print(`expected: ${e}`) }
try { print(k8s.get("deployment", "web").metadata.name) } catch (e) { print(`k8s: ${e}`) }
let a = http.get(args.api + "/bearer", #{bearer: args.bearer});
let b = http.get(args.api + "/basic", #{basic: ["ops", args.basic]});
print(`${a.status} ${b.status}`);
debug(args);
fail("the run fails on purpose, naming " + args.bad_url);
"#,
    );
    let bad_url = format!("postgres://opsh:{s_arg}@127.0.0.1:1/postgres");
    env.dir("out");
    let run = |format: &str, tag: &str| {
        env.opsh(["run"])
            .flag("-vv")
            .option("--log-format", format)
            .option("--report", env.path(&format!("out/report-{tag}.json")))
            .option("--notify", "hook")
            .arg(&script)
            .arg("--record")
            .arg(env.path(&format!("out/record-{tag}.json")))
            .script_arg("bad_url", &bad_url)
            .script_arg("api", &api)
            .script_arg("bearer", s_bearer)
            .script_arg("basic", s_basic)
            .kubeconfig(kc_path.to_str().unwrap())
            .env("PLANTED_PG_PASSWORD", s_env)
            .env("PLANTED_HOOK_URL", &hook)
            .run()
    };
    let mut channels: Vec<(String, String)> = Vec::new();
    for (format, tag) in [("text", "text"), ("json", "json")] {
        let r = run(format, tag);
        r.assert_code(1)
            .assert_stdout_contains("[\"opsh\", \"envuser\", \"fileuser\"]")
            .assert_stdout_contains("200 200")
            .assert_stdout_contains("expected: ");
        channels.push((format!("stdout ({tag} logs)"), r.stdout.clone()));
        channels.push((format!("stderr ({tag} logs)"), r.stderr.clone()));
        for f in ["report", "record"] {
            let p = env.path(&format!("out/{f}-{tag}.json"));
            let text =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            channels.push((format!("--{f} ({tag})"), text));
        }
    }
    // The credentials did reach the servers they are for.
    let reqs = requests.lock().unwrap().clone();
    let headers = |path: &str| {
        reqs.iter()
            .find(|(p, _, _)| p == path)
            .map(|(_, h, _)| h.to_ascii_lowercase())
            .unwrap_or_default()
    };
    assert!(
        headers("/bearer").contains(&s_bearer.to_ascii_lowercase()),
        "{reqs:?}"
    );
    assert!(
        headers("/basic").contains("authorization: basic"),
        "{reqs:?}"
    );
    let notes: Vec<&(String, String, String)> = reqs
        .iter()
        .filter(|(p, _, _)| p.starts_with("/notify/"))
        .collect();
    assert_eq!(notes.len(), 2, "one notification per failed run: {reqs:?}");
    for (_, _, body) in &notes {
        channels.push(("notification body".into(), body.clone()));
    }
    channels.push(("audit log".into(), env.audit_text()));
    assert!(
        env.audit_text().contains("pg.exec"),
        "the mutation is audited"
    );

    // The console: its history file, and what it showed.
    {
        let t = crate::repl::Tty::start(
            &env,
            &[
                ("KUBECONFIG", kc_path.to_str().unwrap()),
                ("PLANTED_PG_PASSWORD", s_env),
            ],
        );
        t.line(&format!(
            "let db = pg.connect(\"{url}\"); db.query(\"select 1 as one\")"
        ));
        t.wait_prompts(2);
        t.line("pg.connect(\"envpw\").query(\"select 2 as two\")");
        t.wait_prompts(3);
        t.line(&format!(
            "http.get(\"{api}/repl\", #{{bearer: \"{s_bearer}\"}}).status"
        ));
        t.wait_prompts(4);
        t.line(&format!(
            "http.get(\"{api}/repl\", #{{basic: [\"ops\", \"{s_basic}\"]}}).status"
        ));
        t.wait_prompts(5);
        t.line("let marker = 77");
        t.wait_prompts(6);
        t.key("C-d");
        t.wait_for("exit", |s| s.contains("[opsh exited"));
        // What the console answered (the lines typed are echoed, secrets
        // and all, by the terminal: not opsh's output).
        let answers: String = t
            .screen()
            .lines()
            .filter(|l| !l.contains("http.get(") && !l.contains("pg.connect("))
            .map(|l| format!("{l}\n"))
            .collect();
        channels.push(("console answers".into(), answers));
    }
    let history = std::fs::read_to_string(env.path("data/opsh/history")).unwrap_or_default();
    assert!(
        history.contains("let marker = 77"),
        "history is written: {history}"
    );
    channels.push(("REPL history".into(), history));

    let secrets = [
        ("URL password", s_url.as_str()),
        ("password_env", s_env),
        ("password_file", s_file),
        ("--arg URL password", s_arg),
        ("kubeconfig token", s_kube),
        ("http bearer", s_bearer),
        ("http basic", s_basic),
        ("webhook URL", s_hook),
    ];
    let mut leaks = Vec::new();
    for (channel, text) in &channels {
        for (what, secret) in secrets {
            if text.contains(secret) {
                leaks.push(format!("{what} in {channel}"));
            }
        }
    }
    assert!(leaks.is_empty(), "secrets leaked: {leaks:#?}");
}
