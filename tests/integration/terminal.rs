//! What `opsh run` shows on a real terminal: the binary in a tmux pane of a
//! given width, the screen read back with capture-pane (`-J` joins wrapped
//! lines, so a row that wrapped reads as one line wider than the pane).

use crate::support::*;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use unicode_width::UnicodeWidthStr;

static NEXT: AtomicUsize = AtomicUsize::new(0);

struct Pane {
    socket: String,
}

impl Pane {
    /// `opsh ARGS...` in a pane `width` columns wide, run to its end.
    fn run(env: &Env, width: u16, extra: &[(&str, &str)], args: &[&str]) -> Pane {
        let pane = Pane::start(env, width, extra, args);
        eventually(secs(20), "opsh to exit", || {
            let s = pane.capture(false);
            if s.contains("[opsh exited") {
                Ok(())
            } else {
                Err(s)
            }
        });
        pane
    }

    /// `opsh ARGS...` in a pane, still running when this returns.
    fn start(env: &Env, width: u16, extra: &[(&str, &str)], args: &[&str]) -> Pane {
        let socket = env
            .path(&format!(
                "tmux-term-{}",
                NEXT.fetch_add(1, Ordering::SeqCst)
            ))
            .display()
            .to_string();
        let mut cmd: Vec<String> = vec!["env".into(), "-i".into()];
        cmd.extend(
            [
                ("HOME", env.path("home").display().to_string()),
                ("XDG_CONFIG_HOME", env.path("config").display().to_string()),
                ("XDG_STATE_HOME", env.path("xdgstate").display().to_string()),
                ("OPSH_AUDIT_LOG", env.audit_path().display().to_string()),
                ("PATH", std::env::var("PATH").unwrap_or_default()),
                ("TERM", "xterm-256color".into()),
            ]
            .iter()
            .map(|(k, v)| format!("{k}={v}")),
        );
        cmd.extend(extra.iter().map(|(k, v)| format!("{k}={v}")));
        cmd.extend([
            "sh".into(),
            "-c".into(),
            r#""$0" "$@"; echo "[opsh exited $?]"; sleep 600"#.into(),
            env!("CARGO_BIN_EXE_opsh").into(),
        ]);
        cmd.extend(args.iter().map(|a| a.to_string()));
        let width = width.to_string();
        let status = Command::new("tmux")
            .args(["-S", &socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", &width, "-y", "50"])
            .args(&cmd)
            .current_dir(env.dir.path())
            .status()
            .expect("tmux runs (dev/test installs it)");
        assert!(status.success(), "tmux new-session failed");
        Pane { socket }
    }

    /// The screen, with colour codes when `escapes`; trailing blank lines
    /// and the exit line dropped.
    fn screen(&self, escapes: bool) -> String {
        self.capture(escapes)
            .lines()
            .take_while(|l| !l.contains("[opsh exited"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn capture(&self, escapes: bool) -> String {
        let mut args = vec!["-S", &self.socket, "capture-pane", "-p", "-J"];
        if escapes {
            args.push("-e");
        }
        let out = Command::new("tmux").args(&args).output().expect("tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-S", &self.socket, "kill-server"])
            .status();
    }
}

/// Rows shaped like pg.activity's: numbers, short words and a long query.
const SESSIONS: &str = r#"
let rows = [];
for i in 0..5 {
    rows.push(#{pid: 4100 + i, user: "app", database: "shop", application: "checkout-worker",
        state: "active", state_s: 130.25 + i, query_s: 2.5, wait_event: "ClientRead",
        query: "SELECT o.id, o.total, c.email FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.created_at > now() - interval '1 day' AND o.status = 'pending' ORDER BY o.created_at"});
}
show(rows);
"#;

#[track_caller]
fn assert_fits(screen: &str, width: usize, rows: usize) {
    for l in screen.lines() {
        assert!(
            l.width() <= width,
            "a line is {} wide at {width} columns: {l:?}\n{screen}",
            l.width()
        );
    }
    let lines = screen.lines().filter(|l| !l.trim().is_empty()).count();
    assert_eq!(lines, rows + 1, "one line per row:\n{screen}");
}

#[test]
fn a_wide_table_fits_80_and_200_columns_one_line_per_row_and_is_whole_when_piped() {
    let env = Env::new();
    let script = env.write("sessions.rhai", SESSIONS);
    let script = script.to_str().unwrap();
    let narrow = Pane::run(&env, 80, &[("NO_COLOR", "1")], &["run", script]);
    let screen = narrow.screen(false);
    assert_fits(&screen, 80, 5);
    // The query gave way, not the numbers; seconds read as a duration.
    assert!(screen.contains('…'), "{screen}");
    assert!(screen.contains("2m10s"), "{screen}");
    assert!(
        screen.lines().nth(1).unwrap().starts_with("4100"),
        "{screen}"
    );
    let wide = Pane::run(&env, 200, &[("NO_COLOR", "1")], &["run", script]);
    let screen = wide.screen(false);
    assert_fits(&screen, 200, 5);
    // No cut at 80 characters when the terminal has room.
    assert!(
        screen.lines().nth(1).unwrap().width() > 150,
        "the row uses the room it has:\n{screen}"
    );
    // Piped: every row whole, however long.
    let run = env.opsh(["run", script]).env_remove("NO_COLOR").run();
    run.assert_code(0);
    assert!(
        run.stdout.contains("ORDER BY o.created_at") && !run.stdout.contains('…'),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains('\u{1b}'), "no colour when piped");
}

#[test]
fn status_cells_are_coloured_on_a_terminal_only_and_no_color_is_honoured() {
    let env = Env::new();
    let script = env.write(
        "checks.rhai",
        r#"show([#{check: "disk", status: "FAIL"}, #{check: "lag", status: "WARN"}, #{check: "up", status: "OK"}]);"#,
    );
    let script = script.to_str().unwrap();
    let tty = Pane::run(&env, 80, &[], &["run", script]);
    let screen = tty.screen(true);
    // tmux re-renders colours as SGR codes: 31 red, 33 yellow, 32 green.
    let coloured = |code: &str, word: &str| {
        screen
            .lines()
            .any(|l| l.contains(word) && l.contains(&format!("\u{1b}[{code}")))
            || screen.lines().any(|l| {
                l.contains(word) && l.contains(&format!(";{code}m")) && l.contains('\u{1b}')
            })
    };
    assert!(coloured("31", "FAIL"), "FAIL in red:\n{screen:?}");
    assert!(coloured("33", "WARN"), "WARN in yellow:\n{screen:?}");
    assert!(coloured("32", "OK"), "OK in green:\n{screen:?}");
    let plain = Pane::run(&env, 80, &[("NO_COLOR", "1")], &["run", script]);
    let screen = plain.screen(true);
    assert!(!screen.contains('\u{1b}'), "NO_COLOR:\n{screen:?}");
    assert!(screen.contains("FAIL"), "{screen}");
    let piped = env.opsh(["run", script]).env_remove("NO_COLOR").run();
    assert!(!piped.stdout.contains('\u{1b}'), "{}", piped.stdout);
}

#[test]
fn default_columns_are_the_declared_ones_and_o_wide_shows_all() {
    let env = Env::new();
    // A row of k8s.pods: node, ip, owner and uid are declared `wide`.
    let script = env.write(
        "pods.rhai",
        r#"show([#{name: "web-1", phase: "Running", status: "Running", ready: true, restarts: 0,
            last_termination: (), node: "node-a", ip: "10.0.0.7", age: 7300, owner: "web-6d4f", uid: "1234-abcd"}]);"#,
    );
    let script = script.to_str().unwrap();
    let run = env.opsh(["run", script]).run();
    run.assert_code(0);
    assert_eq!(
        run.stdout.lines().next(),
        Some("NAME   STATUS   READY  RESTARTS  AGE"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("2h1m"), "{}", run.stdout);
    let wide = env.opsh(["-o", "wide", "run", script]).run();
    wide.assert_code(0);
    let header = wide.stdout.lines().next().unwrap_or_default();
    for col in ["PHASE", "NODE", "IP", "OWNER", "UID"] {
        assert!(header.contains(col), "{col} with -o wide: {}", wide.stdout);
    }
    // JSON stays raw and whole.
    let json = env.opsh(["-o", "json", "run", script]).run();
    let v: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(v[0]["age"], 7300);
    assert_eq!(v[0]["uid"], "1234-abcd");
    let yaml = env.opsh(["-o", "yaml", "run", script]).run();
    yaml.assert_code(0);
    assert!(yaml.stdout.contains("age: 7300"), "{}", yaml.stdout);
}

#[test]
fn a_result_map_keeps_the_declared_field_order() {
    let env = Env::new();
    // run_options() is declared dry_run, output, only, skip, test.
    let run = env
        .script("show(run_options());")
        .option("-o", "wide")
        .run();
    run.assert_code(0);
    let keys: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        keys,
        ["dry_run", "output", "only", "skip", "test"],
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("wide"), "{}", run.stdout);
}

#[test]
fn version_completions_man_page_and_per_command_help() {
    let env = Env::new();
    let v = env.opsh(["version"]).run();
    v.assert_code(0);
    let commit = v
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("commit:"))
        .map(str::trim)
        .unwrap_or_default()
        .to_string();
    assert!(
        commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit()) || commit == "unknown",
        "{}",
        v.stdout
    );
    assert!(v.stdout.contains("built:"), "{}", v.stdout);
    // The completion scripts parse in their shells.
    let bash = env.opsh(["completions", "bash"]).run();
    bash.assert_code(0);
    let file = env.write("opsh.bash", &bash.stdout);
    let parsed = Command::new("bash").arg("-n").arg(&file).status().unwrap();
    assert!(parsed.success(), "bash -n rejects the completion script");
    assert!(bash.stdout.contains("--each-target"), "flags are completed");
    for (shell, check) in [("zsh", "-n"), ("fish", "--no-execute")] {
        let script = env.opsh(["completions", shell]).run();
        script.assert_code(0);
        let file = env.write(&format!("opsh.{shell}"), &script.stdout);
        if let Ok(status) = Command::new(shell).arg(check).arg(&file).status() {
            assert!(status.success(), "{shell} rejects its completion script");
        }
    }
    // The man page renders.
    let man = env.opsh(["man"]).run();
    man.assert_code(0);
    let page = env.write("opsh.1", &man.stdout);
    let out = Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(&page)
        .env("MANWIDTH", "80")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "man -l: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("NAME") && text.contains("--dry-run"),
        "{text}"
    );
    // Each command's --help: the flags that apply to it.
    let help = env.opsh(["help", "--help"]).run();
    help.assert_code(0);
    assert!(!help.stdout.contains("--push-metrics"), "{}", help.stdout);
    assert!(!help.stdout.contains("--each-target"), "{}", help.stdout);
    let run = env.opsh(["run", "--help"]).run();
    assert!(run.stdout.contains("--push-metrics"), "{}", run.stdout);
    assert!(run.stdout.contains("-o, --output"), "{}", run.stdout);
    let sandbox = env.opsh(["sandbox", "--help"]).run();
    assert!(
        sandbox.stdout.contains("--monitoring"),
        "{}",
        sandbox.stdout
    );
    assert!(!sandbox.stdout.contains("--dry-run"), "{}", sandbox.stdout);
    let sandbox_run = env.opsh(["sandbox", "run", "--help"]).run();
    assert!(
        sandbox_run.stdout.contains("--dry-run"),
        "{}",
        sandbox_run.stdout
    );
    // A hidden global still parses where it is given.
    env.opsh(["help", "--dry-run", "sleep"])
        .run()
        .assert_code(0);
}

#[test]
fn context_and_namespace_flags_choose_what_k8s_talks_to() {
    let k = kube();
    k.wait_rolled_out("api");
    let env = Env::new();
    let script = r#"print(`${k8s.deployments().len()} ${k8s.can_i("patch", "deployments")}`);"#;
    let count = |flags: &[&str]| {
        let mut o = env.script(script).kube(&k);
        for f in flags {
            o = o.flag(f);
        }
        let r = o.run();
        r.assert_code(0);
        r.stdout.trim().to_string()
    };
    let default = count(&[]);
    assert!(
        default.ends_with(" true") && !default.starts_with("0 "),
        "{default}"
    );
    let n = default.split(' ').next().unwrap().to_string();
    assert_eq!(count(&["-n", "kube-system"]), "0 true");
    assert_eq!(count(&["--namespace", "default"]), default);
    assert_eq!(
        count(&["--context", "sandbox-viewer"]),
        format!("{n} false")
    );
    assert_eq!(
        count(&["--context", "sandbox-viewer", "-n", "kube-system"]),
        "0 false"
    );
}

/// Each way a connection fails reads as what it is: a name that does not
/// resolve is not a service that is down.
#[test]
fn connection_errors_name_the_real_cause() {
    let env = Env::new();
    let dead = opsh::sandbox::free_port().unwrap();
    for (script, target) in [
        (r#"http.get("http://no-such-host.invalid:9090/")"#, None),
        (
            "pg.query(\"select 1\")",
            Some(("DATABASE_URL", "postgres://app@no-such-host.invalid/db")),
        ),
        (
            "redis.ping()",
            Some(("REDIS_URL", "redis://no-such-host.invalid:6379")),
        ),
    ] {
        let mut o = env.script(script);
        if let Some((var, url)) = target {
            o = o.env(var, url);
        }
        let r = o.run();
        r.assert_code(2)
            .assert_stderr_contains("cannot resolve the host name `no-such-host.invalid`")
            .assert_stderr_contains("getent hosts no-such-host.invalid")
            .assert_stderr_lacks("listening")
            .assert_stderr_lacks("running on");
    }
    env.script(&format!(r#"http.get("http://127.0.0.1:{dead}/")"#))
        .run()
        .assert_code(2)
        .assert_stderr_contains(&format!("127.0.0.1:{dead} refused the connection"));
}

/// A read timeout (connected, no answer) is told apart from a connect one.
#[test]
fn a_read_timeout_says_the_connection_was_made() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts and never answers.
    let _held = std::thread::spawn(move || {
        let _conns: Vec<_> = listener.incoming().take(4).collect();
        std::thread::sleep(std::time::Duration::from_secs(30));
    });
    Env::new()
        .script(&format!(
            r#"http.get("http://127.0.0.1:{port}/", #{{timeout: "1s"}})"#
        ))
        .run()
        .assert_code(2)
        .assert_stderr_contains("timed out")
        .assert_stderr_contains("the connection was made");
}

#[test]
fn config_errors_give_line_and_column_and_keep_secrets() {
    let env = Env::new();
    let cfg = env
        .write_config("[pg.prod]\nurl = \"postgres://app:hunter2@db:5432/app\"\nprotected = yes\n");
    env.script("print(1)")
        .run()
        .assert_code(2)
        .assert_stderr_contains(&format!("invalid config {}:3:13:", cfg.display()))
        .assert_stderr_contains("line 3 reads `protected = yes`")
        .assert_stderr_lacks("near byte");
    env.write_config("[pg.prod]\nurl = \"postgres://app:hunter2@db:5432/app\" x\n");
    env.script("print(1)")
        .run()
        .assert_stderr_contains(":2:")
        .assert_stderr_lacks("hunter2");
}

#[test]
fn help_searches_and_help_run_is_the_command() {
    let env = Env::new();
    env.opsh(["help", "scale"])
        .run()
        .assert_code(0)
        .assert_stdout_contains("k8s.scale");
    env.opsh(["help", "run"])
        .run()
        .assert_code(0)
        .assert_stdout_contains("Usage: opsh run")
        .assert_stdout_contains("opsh help run()");
    env.opsh(["help", "run()"])
        .run()
        .assert_code(0)
        .assert_stdout_contains("run(file: string");
    env.opsh(["help", "zzzqx"]).run().assert_code(64);
}

/// An exported DATABASE_URL beats the config file's `[defaults] pg`, with
/// a warning that names both; `--target` beats the environment.
#[test]
fn the_environment_beats_config_defaults_and_says_so() {
    let env = Env::new();
    env.write_config(
        "[defaults]\npg = \"staging\"\n[pg.staging]\nurl = \"postgres://app@staging-db.invalid/app\"\n",
    );
    let script = "pg.query(\"select 1\")";
    env.script(script)
        .env("DATABASE_URL", "postgres://app@from-env.invalid/app")
        .run()
        .assert_code(2)
        .assert_stderr_contains("`from-env.invalid`")
        .assert_stderr_contains(
            "DATABASE_URL is set and the config says `[defaults] pg = \"staging\"`: using DATABASE_URL",
        );
    env.script(script)
        .env("DATABASE_URL", "postgres://app@from-env.invalid/app")
        .option("--target", "pg=staging")
        .run()
        .assert_code(2)
        .assert_stderr_contains("`staging-db.invalid`")
        .assert_stderr_lacks("environment wins");
    env.script(script)
        .env_remove("DATABASE_URL")
        .run()
        .assert_code(2)
        .assert_stderr_contains("`staging-db.invalid`")
        .assert_stderr_lacks("environment wins");
}

/// A dump that takes more than a second shows what it does on a terminal
/// (the spinner line with bytes written), and clears it when done; piped,
/// a short dump prints nothing extra.
#[test]
fn a_long_dump_shows_progress_on_a_terminal_only() {
    let sb = sandbox(&[Pg]);
    let env = Env::new();
    env.script(
        "pg.exec(\"create table big as select g, md5(g::text) || md5((g+1)::text) as t from generate_series(1, 1500000) g\")",
    )
    .pg(&sb.pg_url())
    .flag("--yes")
    .run()
    .assert_code(0);
    let script = env.write(
        "dump.rhai",
        "let d = pg.dump(env(\"DATABASE_URL\"), \"big.dump\"); print(`dumped ${d.bytes}`);",
    );
    let pane = Pane::start(
        &env,
        100,
        &[("NO_COLOR", "1"), ("DATABASE_URL", &sb.pg_url())],
        &["run", script.to_str().unwrap()],
    );
    let seen = eventually(secs(60), "the progress line", || {
        let s = pane.capture(false);
        if s.contains("pg_dump of postgres://") && s.contains("written") {
            Ok(s)
        } else if s.contains("[opsh exited") {
            Ok(format!("ENDED BEFORE PROGRESS\n{s}"))
        } else {
            Err(s)
        }
    });
    assert!(!seen.starts_with("ENDED"), "{seen}");
    let end = eventually(secs(60), "the dump to end", || {
        let s = pane.capture(false);
        if s.contains("[opsh exited") {
            Ok(s)
        } else {
            Err(s)
        }
    });
    assert!(end.contains("[opsh exited 0]"), "{end}");
    assert!(end.contains("dumped "), "{end}");
    // Cleared when done: the spinner's line is gone from the screen.
    assert!(!end.contains("written"), "{end}");
}
