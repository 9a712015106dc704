//! Runs the real opsh binary in an isolated environment (own HOME, XDG
//! dirs, audit log, no inherited targets) and captures what it did.
//!
//! ```ignore
//! let env = Env::new();
//! env.script(r#"pg.exec("delete from t")"#)
//!     .pg(&url)
//!     .flag("--dry-run")
//!     .run()
//!     .assert_code(0)
//!     .assert_stderr_contains("[dry-run] pg.exec");
//! env.opsh(["check"]).arg(&file).run().assert_code(0);
//! ```

use super::kube::Kube;
use super::services::Sandbox;
use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};

/// A directory that is the whole world of the opsh processes a test runs:
/// their HOME, XDG dirs, config, audit log and working directory.
pub struct Env {
    pub dir: opsh::sandbox::TempDir,
}

/// Target variables the developer's shell may carry; no test sees them.
const SCRUBBED: [&str; 22] = [
    "DATABASE_URL",
    "LOKI_URL",
    "GRAFANA_URL",
    "GRAFANA_TOKEN",
    "PAGERDUTY_URL",
    "PAGERDUTY_TOKEN",
    "PAGERDUTY_FROM",
    "REDIS_URL",
    "PROMETHEUS_URL",
    "ALERTMANAGER_URL",
    "PUSHGATEWAY_URL",
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "OPSH_CONFIG",
    "XDG_RUNTIME_DIR",
    "KUBECONFIG",
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
    "OPSH_SERVICEACCOUNT_DIR",
];

impl Env {
    pub fn new() -> Env {
        Env {
            dir: opsh::sandbox::TempDir::new("opsh-test").expect("temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::write(&p, text).expect("write");
        p
    }

    /// A directory under the Env, created.
    pub fn dir(&self, rel: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(&p).expect("mkdir");
        p
    }

    pub fn write_config(&self, toml: &str) -> PathBuf {
        self.write("config/opsh/config.toml", toml)
    }

    pub fn audit_path(&self) -> PathBuf {
        self.path("state/audit.jsonl")
    }

    /// The audit log's records, oldest first.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.audit_path())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect()
    }

    /// The audit records of the outcomes of one primitive's calls.
    pub fn outcomes(&self, primitive: &str) -> Vec<serde_json::Value> {
        outcome_records(&self.audit(), primitive)
    }

    /// The audit log as written, for tests that look for text in it.
    pub fn audit_text(&self) -> String {
        std::fs::read_to_string(self.audit_path()).unwrap_or_default()
    }

    /// The bare command, environment set, no arguments: for tests that
    /// drive the process themselves (a pty, piped stdin).
    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_opsh"));
        for var in SCRUBBED {
            c.env_remove(var);
        }
        c.env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("XDG_STATE_HOME", self.path("xdgstate"))
            .env("XDG_DATA_HOME", self.path("data"))
            .env("OPSH_AUDIT_LOG", self.audit_path())
            .env("NO_COLOR", "1")
            .env("RUST_BACKTRACE", "0")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        c
    }

    /// `opsh run script.rhai` with `text` as the script (written in the
    /// Env's directory when the command runs).
    pub fn script(&self, text: &str) -> Opsh<'_> {
        Opsh {
            script: Some(("script.rhai".into(), text.into())),
            ..Opsh::new(self, ["run"])
        }
    }

    /// `opsh` without arguments, `text` piped to its standard input.
    pub fn piped(&self, text: &str) -> Opsh<'_> {
        Opsh::new(self, Vec::<OsString>::new()).stdin(text)
    }

    /// `opsh ARGS...`.
    pub fn opsh<I, S>(&self, args: I) -> Opsh<'_>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Opsh::new(self, args)
    }
}

/// One opsh command line, built up and then run: global flags go before
/// the command, arguments and `--arg k=v` after it, in the order given.
#[must_use = "an Opsh does nothing until .run() or .spawn()"]
pub struct Opsh<'e> {
    env: &'e Env,
    flags: Vec<OsString>,
    command: Vec<OsString>,
    tail: Vec<OsString>,
    /// Set (Some) or removed (None), in order.
    vars: Vec<(String, Option<String>)>,
    /// (file name in the Env, text) of the script `run` is given.
    script: Option<(String, String)>,
    stdin: Option<String>,
    dir: Option<PathBuf>,
    /// RLIMIT_NOFILE for the process (soft and hard).
    open_files: Option<u64>,
}

impl<'e> Opsh<'e> {
    fn new<I, S>(env: &'e Env, command: I) -> Opsh<'e>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Opsh {
            env,
            flags: Vec::new(),
            command: command.into_iter().map(|a| a.as_ref().into()).collect(),
            tail: Vec::new(),
            vars: Vec::new(),
            script: None,
            stdin: None,
            dir: None,
            open_files: None,
        }
    }

    /// Runs opsh with at most `n` open files, as `ulimit -n n` would.
    pub fn open_files(mut self, n: u64) -> Self {
        self.open_files = Some(n);
        self
    }

    /// A global flag, before the command: `.flag("--dry-run")`.
    pub fn flag(mut self, flag: impl AsRef<OsStr>) -> Self {
        self.flags.push(flag.as_ref().into());
        self
    }

    /// A global option and its value, before the command:
    /// `.option("--lock", "nightly")`.
    pub fn option(self, name: &str, value: impl AsRef<OsStr>) -> Self {
        self.flag(name).flag(value)
    }

    /// One more argument after the command (a file, a subcommand option).
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.tail.push(arg.as_ref().into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.tail
            .extend(args.into_iter().map(|a| a.as_ref().into()));
        self
    }

    /// `--arg name=value`: what the script reads as `args.name`.
    pub fn script_arg(self, name: &str, value: impl std::fmt::Display) -> Self {
        self.arg("--arg").arg(format!("{name}={value}"))
    }

    /// The name the script is written under (it shows in error positions).
    pub fn named(mut self, file: &str) -> Self {
        if let Some((name, _)) = &mut self.script {
            *name = file.into();
        }
        self
    }

    /// An environment variable of the process.
    pub fn env(mut self, name: &str, value: impl AsRef<str>) -> Self {
        self.vars.push((name.into(), Some(value.as_ref().into())));
        self
    }

    /// Unsets one of the variables the Env sets (NO_COLOR, say).
    pub fn env_remove(mut self, name: &str) -> Self {
        self.vars.push((name.into(), None));
        self
    }

    /// The default pg target: `DATABASE_URL=url`.
    pub fn pg(self, url: &str) -> Self {
        self.env("DATABASE_URL", url)
    }

    /// The default redis target: `REDIS_URL=url`.
    pub fn redis(self, url: &str) -> Self {
        self.env("REDIS_URL", url)
    }

    /// The default kube target: `KUBECONFIG=path`.
    pub fn kubeconfig(self, path: impl AsRef<str>) -> Self {
        self.env("KUBECONFIG", path)
    }

    /// The Kubernetes test server as the default kube target.
    pub fn kube(self, k: &Kube) -> Self {
        self.kubeconfig(k.kubeconfig())
    }

    /// Every server of the sandbox as the default target of its kind.
    pub fn targets(mut self, sb: &Sandbox) -> Self {
        for (k, v) in sb.target_env() {
            self = self.env(k, v);
        }
        self
    }

    /// Text on the process's standard input (instead of none).
    pub fn stdin(mut self, text: &str) -> Self {
        self.stdin = Some(text.into());
        self
    }

    /// The working directory (instead of the Env's directory).
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.dir = Some(dir.as_ref().into());
        self
    }

    fn command(&self) -> Command {
        let mut c = self.env.command();
        c.args(&self.flags).args(&self.command);
        if let Some((name, text)) = &self.script {
            c.arg(self.env.write(name, text));
        }
        c.args(&self.tail);
        for (k, v) in &self.vars {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        if let Some(d) = &self.dir {
            c.current_dir(d);
        }
        if let Some(n) = self.open_files {
            use std::os::unix::process::CommandExt;
            let lim = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            // SAFETY: setrlimit is async-signal-safe and touches no memory
            // of the parent.
            unsafe {
                c.pre_exec(move || match libc::setrlimit(libc::RLIMIT_NOFILE, &lim) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                });
            }
        }
        c
    }

    /// Runs opsh to the end and captures its exit code and output.
    pub fn run(self) -> Run {
        let mut c = self.command();
        let Some(text) = &self.stdin else {
            return Run::from(c.output().expect("run opsh"));
        };
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn opsh");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("piped stdin");
            stdin.write_all(text.as_bytes()).expect("write stdin");
        }
        wait_output(child)
    }

    /// Starts opsh with its output piped; [`wait_output`] collects it.
    pub fn spawn(self) -> Child {
        let mut c = self.command();
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c.spawn().expect("spawn opsh")
    }
}

/// A spawned process's stdout, read line by line in the background, so a
/// test can wait for a line with [`eventually`](super::eventually) while
/// the process goes on.
#[derive(Clone)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    /// Takes `child`'s stdout (which must be piped, as `spawn` does).
    pub fn of(child: &mut Child) -> Lines {
        let out = child.stdout.take().expect("piped stdout");
        let lines = Lines(Arc::default());
        let sink = lines.0.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().expect("lines lock").push(l);
            }
        });
        lines
    }

    /// The lines so far.
    pub fn all(&self) -> Vec<String> {
        self.0.lock().expect("lines lock").clone()
    }

    /// How many lines so far are exactly `line`.
    pub fn count(&self, line: &str) -> usize {
        self.all().iter().filter(|l| *l == line).count()
    }
}

/// What a finished opsh process did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn wait_output(child: Child) -> Run {
    Run::from(child.wait_with_output().expect("wait"))
}

/// Sends `sig` (libc::SIGINT, SIGTERM, ...) to a spawned process.
pub fn signal(child: &Child, sig: i32) {
    let pid = i32::try_from(child.id()).expect("pid fits in pid_t");
    // SAFETY: kill(2) on a child this test spawned and has not reaped.
    unsafe {
        libc::kill(pid, sig);
    }
}

impl Run {
    pub fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    #[track_caller]
    fn fail(&self, what: String) -> ! {
        panic!(
            "{what}\n--- exit code {}\n--- stdout\n{}--- stderr\n{}--- end",
            self.code,
            with_newline(&self.stdout),
            with_newline(&self.stderr)
        )
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        if self.code != code {
            self.fail(format!("exit code {}, expected {code}", self.code));
        }
        self
    }

    /// stdout is exactly `want`.
    #[track_caller]
    pub fn assert_stdout(&self, want: &str) -> &Self {
        if self.stdout != want {
            self.fail(format!("stdout is not exactly {want:?}"));
        }
        self
    }

    #[track_caller]
    pub fn assert_stdout_contains(&self, needle: &str) -> &Self {
        if !self.stdout.contains(needle) {
            self.fail(format!("stdout does not contain {needle:?}"));
        }
        self
    }

    #[track_caller]
    pub fn assert_stdout_lacks(&self, needle: &str) -> &Self {
        if self.stdout.contains(needle) {
            self.fail(format!("stdout contains {needle:?}"));
        }
        self
    }

    /// stderr is exactly `want` (`""`: nothing was said).
    #[track_caller]
    pub fn assert_stderr(&self, want: &str) -> &Self {
        if self.stderr != want {
            self.fail(format!("stderr is not exactly {want:?}"));
        }
        self
    }

    #[track_caller]
    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        if !self.stderr.contains(needle) {
            self.fail(format!("stderr does not contain {needle:?}"));
        }
        self
    }

    #[track_caller]
    pub fn assert_stderr_lacks(&self, needle: &str) -> &Self {
        if self.stderr.contains(needle) {
            self.fail(format!("stderr contains {needle:?}"));
        }
        self
    }

    /// Neither stdout nor stderr contains `secret`.
    #[track_caller]
    pub fn assert_output_lacks(&self, secret: &str) -> &Self {
        self.assert_stdout_lacks(secret).assert_stderr_lacks(secret)
    }

    pub fn stdout_lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// stdout as one JSON document per line.
    #[track_caller]
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| self.fail(format!("stdout line {l:?} is not JSON: {e}")))
            })
            .collect()
    }

    /// stdout as one JSON document.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| self.fail(format!("stdout is not one JSON document: {e}")))
    }
}

fn with_newline(s: &str) -> String {
    if s.is_empty() || s.ends_with('\n') {
        s.to_string()
    } else {
        format!("{s}\n")
    }
}

/// A path in the repository (scripts/..., docs/...), as the binary is given it.
pub fn repo_path(rel: &str) -> String {
    format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"))
}

/// A file of the repository, read.
pub fn repo_file(rel: &str) -> String {
    std::fs::read_to_string(repo_path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The audit records of the outcomes of one primitive's calls in `audit`.
pub fn outcome_records(audit: &[serde_json::Value], primitive: &str) -> Vec<serde_json::Value> {
    audit
        .iter()
        .filter(|a| a["primitive"] == primitive && a["phase"] == "outcome")
        .cloned()
        .collect()
}
