//! The console, driven as a person would: the real binary in a tmux pane
//! (a private server per test, its socket in the test directory), keys sent with send-keys, the screen
//! read with capture-pane and polled against a deadline.

use crate::support::*;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicUsize = AtomicUsize::new(0);

pub(crate) struct Tty {
    socket: String,
}

impl Tty {
    /// Starts `opsh` in a fresh tmux server with a hermetic environment:
    /// the Env's HOME and XDG dirs, nothing inherited but PATH.
    pub(crate) fn start(env: &Env, extra: &[(&str, &str)]) -> Tty {
        Self::start_with(env, extra, &[])
    }

    /// `opsh FLAGS...` on the terminal.
    fn start_with(env: &Env, extra: &[(&str, &str)], flags: &[&str]) -> Tty {
        // A socket in the test's own directory: a private tmux server,
        // removed with the directory.
        let socket = env
            .path(&format!("tmux-{}", NEXT.fetch_add(1, Ordering::SeqCst)))
            .display()
            .to_string();
        let mut vars: Vec<(String, String)> = vec![
            ("HOME".into(), env.path("home").display().to_string()),
            (
                "XDG_CONFIG_HOME".into(),
                env.path("config").display().to_string(),
            ),
            (
                "XDG_STATE_HOME".into(),
                env.path("xdgstate").display().to_string(),
            ),
            (
                "XDG_DATA_HOME".into(),
                env.path("data").display().to_string(),
            ),
            (
                "OPSH_AUDIT_LOG".into(),
                env.audit_path().display().to_string(),
            ),
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("TERM".into(), "xterm-256color".into()),
            ("NO_COLOR".into(), "1".into()),
        ];
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut args: Vec<String> = vec!["env".into(), "-i".into()];
        args.extend(vars.iter().map(|(k, v)| format!("{k}={v}")));
        // The shell line after opsh reports its exit and keeps the pane open.
        args.extend([
            "sh".into(),
            "-c".into(),
            r#""$0" "$@"; echo "[opsh exited $?]"; sleep 600"#.into(),
            env!("CARGO_BIN_EXE_opsh").into(),
        ]);
        args.extend(flags.iter().map(|f| f.to_string()));
        let status = Command::new("tmux")
            .args([
                "-S",
                &socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "140",
                "-y",
                "50",
            ])
            .args(&args)
            .current_dir(env.dir.path())
            .status()
            .expect("tmux runs (dev/test installs it)");
        assert!(status.success(), "tmux new-session failed");
        let tty = Tty { socket };
        tty.wait_prompts(1);
        tty
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-S", &self.socket])
            .args(args)
            .output()
            .expect("tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Text typed literally (no key-name lookup, `;` is not special).
    fn type_text(&self, text: &str) {
        // tmux reads an argument ending in `;` as a command separator.
        let escaped = match text.strip_suffix(';') {
            Some(head) => format!("{head}\\;"),
            None => text.to_string(),
        };
        self.tmux(&["send-keys", "-l", "--", &escaped]);
    }

    pub(crate) fn key(&self, key: &str) {
        self.tmux(&["send-keys", key]);
    }

    pub(crate) fn line(&self, text: &str) {
        self.type_text(text);
        self.key("Enter");
    }

    /// The whole pane including scrollback, trailing blank lines dropped.
    pub(crate) fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-J", "-S", "-500"])
            .trim_end()
            .to_string()
    }

    #[track_caller]
    pub(crate) fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_within(Duration::from_secs(10), what, pred)
    }

    /// Waits until the screen satisfies `pred` and returns it; on timeout
    /// the failure shows the last screen.
    #[track_caller]
    fn wait_within(&self, limit: Duration, what: &str, pred: impl Fn(&str) -> bool) -> String {
        eventually(limit, what, || {
            let s = self.screen();
            if pred(&s) {
                Ok(s)
            } else {
                Err(format!("{s}\nlast line: {:?}", s.lines().last()))
            }
        })
    }

    /// Types `text`, then presses Tab until the entry reads `completed`
    /// (live names arrive in the background, so early Tabs may find none).
    #[track_caller]
    fn tab_until(&self, text: &str, completed: &str) {
        self.type_text(text);
        // The signature hint follows the cursor on the same line.
        let wanted = format!("]> {completed}");
        eventually(secs(10), &format!("a completion to {completed}"), || {
            self.key("Tab");
            std::thread::sleep(Duration::from_millis(200));
            let screen = self.screen();
            if screen.lines().last().is_some_and(|l| l.contains(&wanted)) {
                Ok(())
            } else {
                Err(screen)
            }
        });
    }

    /// Waits until `n` prompts have been shown and the last line is an
    /// empty prompt: the previous entry has finished.
    #[track_caller]
    pub(crate) fn wait_prompts(&self, n: usize) -> String {
        self.wait_for(&format!("prompt #{n}"), |s| {
            prompts(s) >= n && s.lines().last().is_some_and(is_prompt)
        })
    }
}

/// `opsh>` or `opsh [kube:ctx/ns dry-run]>` with nothing typed after it.
fn is_prompt(line: &str) -> bool {
    line == "opsh>" || (line.starts_with("opsh [") && line.ends_with("]>"))
}

fn prompts(screen: &str) -> usize {
    screen
        .lines()
        .filter(|l| l.starts_with("opsh>") || l.starts_with("opsh ["))
        .count()
}

impl Drop for Tty {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

#[test]
fn completes_module_functions_targets_and_a_handles_methods() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    let env = Env::new();
    env.write_config(&format!("[pg.main]\nurl = \"{url}\"\n"));
    let t = Tty::start(&env, &[]);

    t.type_text("pg.");
    t.key("Tab");
    t.key("Tab");
    t.wait_for("pg's functions listed", |s| {
        s.contains("connect") && s.contains("query") && s.contains("exec")
    });
    t.key("C-u");

    // A configured target name inside connect("; the completion closes the call.
    t.type_text("let db = pg.connect(\"ma");
    t.key("Tab");
    t.wait_for("target completed", |s| {
        s.contains("let db = pg.connect(\"main\")")
    });
    t.key("Enter");
    t.wait_prompts(2);

    t.type_text("db.qu");
    t.key("Tab");
    // The signature hint appears once the call is open.
    t.wait_for("method completed with hint", |s| {
        s.contains("db.query(") && s.contains("pg.query(sql: string")
    });
    t.line("\"select 40 + 2 as answer\")");
    t.wait_for("query result", |s| s.contains("42"));
}

#[test]
fn multi_line_function_is_defined_for_later_entries() {
    let env = Env::new();
    let t = Tty::start(&env, &[]);
    t.line("fn triple(x) {");
    t.wait_for("continuation prompt", |s| {
        s.lines().last().map(str::trim) == Some("...>")
    });
    t.line("  let y = x * 3;");
    t.line("  y");
    t.line("}");
    t.wait_prompts(2);
    t.line("triple(14)");
    let s = t.wait_prompts(3);
    assert!(s.lines().any(|l| l.trim() == "42"), "{s}");
    // `_` is the last result.
    t.line("_ + 1");
    t.wait_for("last result reused", |s| {
        s.lines().any(|l| l.trim() == "43")
    });
}

#[test]
fn syntax_error_in_a_multi_line_entry_is_reported_at_once() {
    let env = Env::new();
    let t = Tty::start(&env, &[]);
    t.line("fn broken() {");
    t.line("  let = 5;");
    let s = t.wait_prompts(2);
    assert!(s.contains("error: Expecting name of a variable"), "{s}");
    assert!(
        s.contains("<repl:1>:2:7"),
        "position of the entry's line 2:\n{s}"
    );
    assert!(s.contains("^"), "{s}");
    // The console is still usable and nothing was half-defined.
    t.line("1 + 1");
    t.wait_for("next entry", |s| s.lines().any(|l| l.trim() == "2"));
}

/// Sends Ctrl-C and returns how long it took until the cancellation was
/// reported and an empty prompt was back.
fn interrupt(t: &Tty) -> Duration {
    let before = t.screen();
    let (shown, errors) = (
        prompts(&before),
        before.matches("interrupted (Ctrl-C)").count(),
    );
    let sent = Instant::now();
    t.key("C-c");
    t.wait_within(Duration::from_secs(5), "prompt after Ctrl-C", |s| {
        s.matches("interrupted (Ctrl-C)").count() > errors
            && prompts(s) > shown
            && s.lines().last() == Some("opsh>")
    });
    sent.elapsed()
}

#[test]
fn ctrl_c_cancels_sleep_and_a_slow_query_and_the_session_goes_on() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    let env = Env::new();
    let t = Tty::start(&env, &[("DATABASE_URL", &url)]);

    t.line("let before = 7;");
    t.wait_prompts(2);
    t.line("sleep(\"1m\")");
    std::thread::sleep(Duration::from_millis(300));
    let took = interrupt(&t);
    assert!(
        took < Duration::from_secs(1),
        "sleep cancelled after {took:?}"
    );

    t.line("pg.query(\"select pg_sleep(60)\")");
    eventually(secs(10), "the slow query to start", || {
        pg_scalar(
            &url,
            "select count(*) from pg_stat_activity where query like '%pg_sleep(60)%' and pid <> pg_backend_pid()",
        ) > 0
    });
    let took = interrupt(&t);
    assert!(
        took < Duration::from_secs(1),
        "query cancelled after {took:?}"
    );

    // A second Ctrl-C at the prompt only clears the line; state survived.
    t.type_text("garbage");
    t.wait_for("typed text", |s| s.ends_with("opsh> garbage"));
    let shown = prompts(&t.screen());
    t.key("C-c");
    t.wait_for("line cleared", |s| {
        prompts(s) > shown && s.lines().last() == Some("opsh>")
    });
    t.line("before * 6");
    t.wait_for("state kept after cancellations", |s| {
        s.lines().any(|l| l.trim() == "42")
    });
    assert!(!t.screen().contains("[opsh exited"), "{}", t.screen());
}

#[test]
fn history_survives_restarts_without_secret_lines() {
    let env = Env::new();
    {
        let t = Tty::start(&env, &[]);
        t.line("let marker = 1234");
        t.wait_prompts(2);
        t.line("let u = \"postgres://app:hunter22@db.internal/app\"");
        t.wait_prompts(3);
        t.line("let token = \"ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6\"");
        t.wait_prompts(4);
        t.key("C-d");
        t.wait_for("exit", |s| s.contains("[opsh exited 0]"));
    }
    let file = env.path("data/opsh/history");
    let saved = std::fs::read_to_string(&file).expect("history file in XDG_DATA_HOME/opsh");
    assert!(saved.contains("let marker = 1234"), "{saved}");
    assert!(
        !saved.contains("hunter22") && !saved.contains("ghp_"),
        "{saved}"
    );

    let t = Tty::start(&env, &[]);
    // Ctrl-R finds the entry from the first session.
    t.key("C-r");
    t.type_text("marker");
    t.wait_for("reverse search hit", |s| s.contains("let marker = 1234"));
    t.key("Enter");
    t.wait_prompts(2);
    t.line("marker + 1");
    t.wait_for("recalled entry ran", |s| {
        s.lines().any(|l| l.trim() == "1235")
    });
}

#[test]
fn piped_stdin_runs_as_a_script_without_prompt_or_colour() {
    Env::new()
        .piped("let rows = [#{n: 1}, #{n: 2}];\nshow(rows);\nprint(\"sum=\" + (1 + 2));\n")
        .env_remove("NO_COLOR")
        .run()
        .assert_code(0)
        .assert_stdout_contains("sum=3")
        .assert_output_lacks("opsh>")
        .assert_output_lacks("\u{1b}");
}

#[test]
fn meta_commands_load_switch_targets_and_dry_run_and_suggest() {
    let env = Env::new();
    env.write_config("[pg.prod]\nurl = \"postgres://app@127.0.0.1:1/app\"\nprotected = true\n");
    env.write(
        "lib.rhai",
        "fn greet(who) {\n  \"hello \" + who\n}\nlet twice = |x| x * 2;\n",
    );
    let t = Tty::start(&env, &[]);
    t.line(":load lib.rhai");
    let s = t.wait_prompts(2);
    // Closures compile to `anon$HASH` functions: not listed.
    assert!(s.contains("defines greet") && !s.contains("anon$"), "{s}");
    t.line("greet(\"ops\")");
    t.wait_for("loaded function runs", |s| s.contains("hello ops"));
    t.line(":target pg prod");
    t.wait_for("prompt shows the protected default", |s| {
        s.lines().last() == Some("opsh [pg:prod!]>")
    });
    t.line(":dry-run on");
    t.wait_for("prompt shows dry-run", |s| {
        s.contains("opsh [pg:prod! dry-run]>")
    });
    t.line(":hlep");
    t.wait_for("suggestion", |s| s.contains("did you mean :help?"));
    // A first letter of two bytes is a typo like any other, not a panic.
    t.line(":é");
    t.wait_for("unknown :é", |s| s.contains("unknown command :é"));
    t.line(":help sleep");
    t.wait_for("same help as opsh help", |s| s.contains("sleep(duration:"));
    t.line(":quit");
    t.wait_for("exit", |s| s.contains("[opsh exited 0]"));
}

#[test]
fn prompt_shows_the_current_kube_context_and_namespace() {
    let env = Env::new();
    let kubeconfig = env.write(
        "kube/config",
        "apiVersion: v1\nkind: Config\ncurrent-context: staging\ncontexts:\n- name: staging\n  context: {cluster: c, user: u, namespace: payments}\nclusters:\n- name: c\n  cluster: {server: \"https://127.0.0.1:1\"}\nusers:\n- name: u\n  user: {token: abc}\n",
    );
    let t = Tty::start(&env, &[("KUBECONFIG", kubeconfig.to_str().unwrap())]);
    t.wait_for("the kube context in the prompt", |s| {
        s.contains("opsh [kube:staging/payments]>")
    });
}

/// Ctrl-C while the confirmation prompt of a protected target is open ends
/// the entry at once (no Enter needed), changes nothing, and the console
/// goes on; `--timeout` limits each entry, not the session.
#[test]
fn ctrl_c_at_a_confirmation_prompt_and_the_per_entry_timeout() {
    let sb = sandbox(&[Redis]);
    let url = sb.redis_url();
    let env = Env::new();
    env.write_config(&format!(
        "[redis.prod]\nurl = \"{url}\"\nprotected = true\n"
    ));
    let t = Tty::start_with(&env, &[], &["--timeout", "2s"]);

    t.line("redis.connect(\"prod\").set(\"guard\", \"x\")");
    t.wait_for("the confirmation prompt", |s| {
        s.contains("PROTECTED target prod") && s.ends_with("Type `yes` to continue:")
    });
    let shown = prompts(&t.screen());
    let sent = Instant::now();
    t.key("C-c");
    t.wait_within(Duration::from_secs(5), "prompt after Ctrl-C", |s| {
        s.contains("interrupted (Ctrl-C)")
            && prompts(s) > shown
            && s.lines().last() == Some("opsh>")
    });
    let took = sent.elapsed();
    assert!(took < Duration::from_secs(1), "prompt back after {took:?}");
    // The refusal is shown once, as a diagnostic, not again as a log line.
    assert!(!t.screen().contains("ERROR"), "{}", t.screen());
    let v: Option<String> = redis_query(&url, &["GET", "guard"]);
    assert_eq!(v, None, "nothing was set");
    let audit = env.audit_text();
    assert!(!audit.contains("\"outcome\":\"ok\""), "{audit}");

    // Each entry gets the whole --timeout: a slow one is stopped...
    let shown = prompts(&t.screen());
    t.line("sleep(\"30s\")");
    t.wait_within(Duration::from_secs(6), "the entry's timeout", |s| {
        s.contains("run timeout exceeded")
            && prompts(s) > shown
            && s.lines().last() == Some("opsh>")
    });
    // ...and later entries start with a fresh deadline.
    t.line("sleep(\"1s\"); 6 * 7");
    t.wait_for("an entry within its deadline", |s| {
        s.lines().any(|l| l.trim() == "42")
    });
    t.line("sleep(\"1500ms\"); \"second\"");
    t.wait_for("another one", |s| s.lines().any(|l| l.trim() == "second"));
    assert!(!t.screen().contains("[opsh exited"), "{}", t.screen());
}

/// Tab inside `k8s.scale("` offers the cluster's deployments (and inside
/// `k8s.ns("` its namespaces), fetched in the background while the call
/// is typed, never by waiting at the Tab.
#[test]
fn tab_completes_live_names_from_the_cluster() {
    let k = kube();
    let env = Env::new();
    let t = Tty::start(&env, &[("KUBECONFIG", &k.kubeconfig())]);
    // The names arrive in the background; Tab answers from what has come.
    t.tab_until("k8s.scale(\"wor", "k8s.scale(\"worker\"");
    t.line(", 1)");
    t.wait_for("the scale ran", |s| {
        prompts(s) >= 2 && s.lines().last().is_some_and(is_prompt)
    });
    assert_eq!(k.replicas("worker"), 1);

    // Namespaces, for k8s.ns("...
    t.tab_until("k8s.ns(\"stag", "k8s.ns(\"staging\"");
}

#[test]
fn prompt_shows_in_cluster_and_the_pods_namespace() {
    let env = Env::new();
    let sa = env.dir("serviceaccount");
    std::fs::write(sa.join("namespace"), "payments\n").unwrap();
    let t = Tty::start(
        &env,
        &[
            ("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
            ("KUBERNETES_SERVICE_PORT", "1"),
            ("OPSH_SERVICEACCOUNT_DIR", sa.to_str().unwrap()),
        ],
    );
    t.wait_for("in-cluster in the prompt", |s| {
        s.contains("opsh [kube:in-cluster/payments]>")
    });
}

#[test]
fn a_typed_confirmation_is_audited_and_an_interrupted_exec_says_what_became_of_it() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(
        &url,
        "create table t(id int, v int); insert into t values (1, 0);",
    );
    let env = Env::new();
    env.write_config(&format!("[pg.prod]\nurl = \"{url}\"\nprotected = true\n"));
    let t = Tty::start(&env, &[("DATABASE_URL", &url)]);

    t.line(r#"pg.connect("prod").exec("update t set v = 1")"#);
    t.wait_for("the confirmation prompt", |s| {
        s.ends_with("Type `yes` to continue:")
    });
    t.line("yes");
    t.wait_for("the change's line", |s| {
        s.contains("pg.exec: updated 1 row in postgres@prod")
    });
    assert_eq!(pg_scalar(&url, "select v::bigint from t"), 1);
    let intent = env
        .audit()
        .into_iter()
        .find(|a| a["phase"] == "intent")
        .unwrap();
    assert_eq!(intent["confirmation"]["how"], "typed", "{intent}");

    // Ctrl-C while the statement runs: cancelled on the server, and the
    // console says it was not applied.
    t.wait_prompts(2);
    t.line(r#"pg.exec("update t set v = 2 where pg_sleep(30) is not null")"#);
    // DATABASE_URL is prod's server and database: protected too.
    t.wait_for("the second confirmation prompt", |s| {
        s.ends_with("Type `yes` to continue:")
    });
    t.line("yes");
    eventually(secs(10), "the statement to run", || {
        pg_scalar(
            &url,
            "select count(*) from pg_stat_activity where query like 'update t set v = 2%' and pid <> pg_backend_pid()",
        ) == 1
    });
    t.key("C-c");
    t.wait_within(
        Duration::from_secs(5),
        "what became of the statement",
        |s| s.contains("pg.exec not applied: PostgreSQL cancelled the statement"),
    );
    assert_eq!(pg_scalar(&url, "select v::bigint from t"), 1);
    assert!(!t.screen().contains("[opsh exited"), "{}", t.screen());
}

/// `:target kube CONTEXT` takes a kubeconfig context as the CLI does, and
/// `:context`/`:ns` switch as kubectl's `--context`/`-n`.
#[test]
fn console_switches_kube_context_and_namespace() {
    let k = kube();
    k.wait_rolled_out("api");
    let env = Env::new();
    let t = Tty::start(&env, &[("KUBECONFIG", &k.kubeconfig())]);
    t.line(":target kube sandbox-viewer");
    t.wait_for("the context in the prompt", |s| {
        s.lines().last() == Some("opsh [kube:sandbox-viewer]>")
    });
    t.line("k8s.can_i(\"patch\", \"deployments\")");
    t.wait_for("the viewer may not patch", |s| s.contains("\nfalse"));
    t.line(":ns kube-system");
    t.wait_for("the namespace in the prompt", |s| {
        s.lines().last() == Some("opsh [kube:sandbox-viewer/kube-system]>")
    });
    t.line("`deployments ${k8s.deployments().len()}`");
    t.wait_for("none in kube-system", |s| s.contains("deployments 0"));
    t.line(":context sandbox");
    t.wait_for("the context switched, the namespace kept", |s| {
        s.lines().last() == Some("opsh [kube:sandbox/kube-system]>")
    });
}
