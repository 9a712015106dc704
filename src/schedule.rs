//! `opsh schedule FILE`: cron for places without cron (a container). Each
//! fire runs `opsh run` as a child process of this executable, under the
//! job's lock and timeout, so jobs are isolated from each other and from the
//! scheduler. The wall clock is re-read at least every second, so a jump
//! (suspend, NTP step) is seen and handled by the job's missed-run policy.
//! SIGTERM/SIGINT: stop scheduling, pass SIGTERM to running jobs, wait up to
//! `grace`, then kill what is left.

use crate::exit;
use chrono::{DateTime, Local, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// A fire more than this late was missed (the scheduler was not running).
const MISFIRE: Duration = Duration::from_secs(3);
/// After a job's own --timeout, how long before the scheduler kills it.
const KILL_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    /// After SIGTERM, how long running jobs get to finish (default 30s).
    grace: Option<String>,
    /// "utc" (default) or "local": how cron expressions are read.
    timezone: Option<String>,
    #[serde(default, rename = "job")]
    jobs: Vec<JobConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobConfig {
    name: Option<String>,
    cron: String,
    script: PathBuf,
    #[serde(default)]
    args: BTreeMap<String, toml::Value>,
    /// Extra opsh flags, e.g. ["--push-metrics", "--notify", "oncall"].
    #[serde(default)]
    flags: Vec<String>,
    lock: Option<String>,
    timeout: Option<String>,
    #[serde(default)]
    missed: Missed,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    /// Missed fires are logged and dropped; the job runs at its next time.
    #[default]
    Skip,
    /// Missed fires (however many) give one run as soon as they are noticed.
    RunOnce,
}

#[derive(Debug, Clone, Copy)]
enum Tz {
    Utc,
    Local,
}

pub struct Job {
    pub name: String,
    schedule: cron::Schedule,
    script: PathBuf,
    args: Vec<String>,
    flags: Vec<String>,
    lock: String,
    timeout: Option<Duration>,
    missed: Missed,
    /// Fires up to here have been handled.
    checked: DateTime<Utc>,
    running: Option<Running>,
}

struct Running {
    child: Child,
    started: Instant,
    kill_at: Option<Instant>,
}

pub struct Schedule {
    jobs: Vec<Job>,
    grace: Duration,
    tz: Tz,
}

/// Crontab's five fields, or six/seven with seconds first (and a year).
pub fn parse_cron(expr: &str) -> Result<cron::Schedule, String> {
    let fields = expr.split_whitespace().count();
    let full = match fields {
        5 => format!("0 {expr}"),
        6 | 7 => expr.to_string(),
        _ => {
            return Err(format!(
                "cron expression {expr:?} has {fields} fields; use 5 (min hour day month weekday) or 6 with seconds first"
            ))
        }
    };
    cron::Schedule::from_str(&full).map_err(|e| format!("invalid cron expression {expr:?}: {e}"))
}

fn parse_duration(what: &str, s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{what} {s:?}: {e} (examples: 30s, 10m)"))
}

fn arg_value(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        // Numbers, bools, arrays and tables as JSON, which `--arg` types.
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

/// A job's `args` against its script's declaration, when the script can be
/// read now: a misspelt or missing argument stops the scheduler at start,
/// not the job at 3 a.m. (an unreadable script is the run's to report).
fn check_args(script: &Path, args: &[String]) -> Result<(), String> {
    use crate::script_args as sa;
    let Ok(text) = std::fs::read_to_string(script) else {
        return Ok(());
    };
    let name = script.display().to_string();
    let decl = sa::declaration(&sa::source(text)).map_err(|e| {
        format!(
            "{name}:{}:{}: bad argument declaration: {}",
            e.line, e.col, e.message
        )
    })?;
    let given = sa::split_pairs(args)?;
    sa::resolve(&name, decl.as_ref(), given)
        .map(|_| ())
        .map_err(|e| format!("{} ({})", e.message, e.hint))
}

impl Schedule {
    pub fn load(path: &Path) -> Result<Schedule, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the schedule {}: {e}", path.display()))?;
        let cfg: FileConfig = toml::from_str(&text).map_err(|e| {
            let msg = crate::redact::file_error(e.message(), &text);
            format!("invalid schedule {}: {msg}", path.display())
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let tz = match cfg.timezone.as_deref() {
            None | Some("utc") | Some("UTC") => Tz::Utc,
            Some("local") => Tz::Local,
            Some(other) => return Err(format!("timezone {other:?}: use \"utc\" or \"local\"")),
        };
        let grace = match &cfg.grace {
            Some(g) => parse_duration("grace", g)?,
            None => Duration::from_secs(30),
        };
        if cfg.jobs.is_empty() {
            return Err(format!("{} has no [[job]]", path.display()));
        }
        let now = Utc::now();
        let mut jobs = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        for j in cfg.jobs {
            let name = j
                .name
                .clone()
                .unwrap_or_else(|| crate::unattended::job_name(&j.script.to_string_lossy()));
            if !names.insert(name.clone()) {
                return Err(format!(
                    "two jobs are named {name:?}; give each a distinct `name`"
                ));
            }
            let schedule = parse_cron(&j.cron).map_err(|e| format!("job {name}: {e}"))?;
            let lock = j.lock.clone().unwrap_or_else(|| name.clone());
            if !crate::lock::valid_name(&lock) {
                return Err(format!("job {name}: invalid lock name {lock:?}"));
            }
            let timeout = j
                .timeout
                .as_deref()
                .map(|t| parse_duration("timeout", t))
                .transpose()
                .map_err(|e| format!("job {name}: {e}"))?;
            let script = if j.script.is_absolute() {
                j.script.clone()
            } else {
                base.join(&j.script)
            };
            let args: Vec<String> = j
                .args
                .iter()
                .map(|(k, v)| format!("{k}={}", arg_value(v)))
                .collect();
            check_args(&script, &args).map_err(|e| format!("job {name}: {e}"))?;
            jobs.push(Job {
                name,
                schedule,
                script,
                args,
                flags: j.flags,
                lock,
                timeout,
                missed: j.missed,
                checked: now,
                running: None,
            });
        }
        Ok(Schedule { jobs, grace, tz })
    }

    fn next_after(&self, job: &Job, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.tz {
            Tz::Utc => job.schedule.after(&t).next(),
            Tz::Local => job
                .schedule
                .after(&t.with_timezone(&Local))
                .next()
                .map(|d| d.with_timezone(&Utc)),
        }
    }

    /// Fires in (job.checked, now]: how many, and the latest.
    fn due(&self, job: &Job, now: DateTime<Utc>) -> (usize, Option<DateTime<Utc>>) {
        let mut n = 0;
        let mut latest = None;
        let mut t = job.checked;
        // Bounded: a week of every-second fires after a long suspend.
        while n < 700_000 {
            match self.next_after(job, t) {
                Some(f) if f <= now => {
                    n += 1;
                    latest = Some(f);
                    t = f;
                }
                _ => break,
            }
        }
        (n, latest)
    }
}

/// Whether a job whose latest due fire is `late` runs now: on time it does;
/// missed, only under `run_once`. Several fires due at once give one run.
pub fn should_run(late: Duration, missed: Missed) -> bool {
    late <= MISFIRE || missed == Missed::RunOnce
}

/// What the child is run with: `inherited` (the scheduler's own flags),
/// then the job's lock, timeout and flags.
fn command(inherited: &[OsString], job: &Job) -> Command {
    let exe = std::env::current_exe().unwrap_or_else(|_| "opsh".into());
    let mut c = Command::new(exe);
    c.args(inherited);
    c.arg("--lock").arg(&job.lock);
    if let Some(t) = job.timeout {
        c.arg("--timeout")
            .arg(humantime::format_duration(t).to_string());
    }
    c.args(&job.flags).arg("run").arg(&job.script);
    for a in &job.args {
        c.arg("--arg").arg(a);
    }
    c.stdin(Stdio::null()).env("OPSH_SCHEDULE_JOB", &job.name);
    c
}

fn start(inherited: &[OsString], job: &mut Job) {
    if let Some(r) = &job.running {
        tracing::warn!(job = %job.name, running_for = %humantime::format_duration(Duration::from_secs(r.started.elapsed().as_secs())), "previous run still going: this fire is skipped");
        return;
    }
    match command(inherited, job).spawn() {
        Ok(child) => {
            tracing::info!(job = %job.name, pid = child.id(), "job started");
            job.running = Some(Running {
                child,
                started: Instant::now(),
                kill_at: job.timeout.map(|t| Instant::now() + t + KILL_AFTER),
            });
        }
        Err(e) => tracing::error!(job = %job.name, error = %e, "cannot start the job"),
    }
}

fn signal(child: &Child, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Collects finished jobs; kills those past their timeout's kill point.
fn reap(job: &mut Job) {
    let Some(r) = &mut job.running else { return };
    match r.child.try_wait() {
        Ok(Some(st)) => {
            use std::os::unix::process::ExitStatusExt;
            let code = st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0));
            let secs = r.started.elapsed().as_secs_f64();
            if code == exit::OK {
                tracing::info!(job = %job.name, exit = code, seconds = secs, "job finished");
            } else {
                tracing::error!(job = %job.name, exit = code, status = %crate::report::status_name(code), seconds = secs, "job failed");
            }
            job.running = None;
        }
        Ok(None) => {
            if r.kill_at.is_some_and(|k| Instant::now() >= k) {
                tracing::error!(job = %job.name, "job outlived its timeout: killing it");
                signal(&r.child, libc::SIGKILL);
                r.kill_at = None;
            }
        }
        Err(e) => {
            tracing::error!(job = %job.name, error = %e, "cannot wait for the job");
            job.running = None;
        }
    }
}

/// Runs the jobs until SIGTERM or SIGINT; returns the exit code. Every job
/// runs with `inherited` first on its command line. Fails only when the
/// runtime that waits for the signals cannot start.
pub fn run(mut sched: Schedule, inherited: &[OsString]) -> std::io::Result<i32> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let cancel = crate::cancel::Cancel::default();
    cancel.install_signal_handlers(&rt);
    for j in &sched.jobs {
        let next = sched.next_after(j, j.checked);
        tracing::info!(job = %j.name, next = ?next.map(|n| n.to_rfc3339()), "scheduled");
    }
    loop {
        let now = Utc::now();
        for i in 0..sched.jobs.len() {
            reap(&mut sched.jobs[i]);
            if cancel.reason().is_some() {
                continue;
            }
            let (n, latest) = sched.due(&sched.jobs[i], now);
            let job = &mut sched.jobs[i];
            job.checked = now;
            let Some(latest) = latest else { continue };
            let late = (now - latest).to_std().unwrap_or_default();
            if late > MISFIRE {
                tracing::warn!(job = %job.name, missed = n, last_due = %latest.to_rfc3339(), policy = ?job.missed, "missed runs (the scheduler was not running, or the clock jumped)");
            }
            if should_run(late, job.missed) {
                start(inherited, job);
            }
        }
        if cancel.reason().is_some() {
            break;
        }
        let next = sched
            .jobs
            .iter()
            .filter_map(|j| sched.next_after(j, j.checked))
            .min();
        let wait = next
            .and_then(|n| (n - Utc::now()).to_std().ok())
            .unwrap_or(Duration::ZERO)
            .clamp(Duration::from_millis(20), Duration::from_secs(1));
        let c = cancel.clone();
        rt.block_on(async move {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = c.cancelled() => {}
            }
        });
    }
    Ok(shutdown(&mut sched))
}

fn shutdown(sched: &mut Schedule) -> i32 {
    let running: Vec<&str> = sched
        .jobs
        .iter()
        .filter(|j| j.running.is_some())
        .map(|j| j.name.as_str())
        .collect();
    tracing::warn!(running = ?running, grace = %humantime::format_duration(sched.grace), "stopping: no new runs; waiting for running jobs");
    for j in &sched.jobs {
        if let Some(r) = &j.running {
            signal(&r.child, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + sched.grace;
    while sched.jobs.iter().any(|j| j.running.is_some()) && Instant::now() < deadline {
        for j in &mut sched.jobs {
            reap(j);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut killed = 0;
    for j in &mut sched.jobs {
        if let Some(r) = &mut j.running {
            tracing::error!(job = %j.name, "still running after the grace period: killing it");
            signal(&r.child, libc::SIGKILL);
            let _ = r.child.wait();
            j.running = None;
            killed += 1;
        }
    }
    tracing::warn!(killed, "scheduler stopped");
    if killed == 0 {
        exit::OK
    } else {
        exit::INTERRUPTED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_and_six_field_expressions() {
        assert!(parse_cron("*/5 * * * *").is_ok());
        assert!(parse_cron("* * * * * *").is_ok());
        assert!(parse_cron("* * *").is_err());
        assert!(parse_cron("61 * * * *").is_err());
    }

    #[test]
    fn missed_policy() {
        let on_time = Duration::from_millis(300);
        let after_suspend = Duration::from_secs(3600);
        assert!(should_run(on_time, Missed::Skip));
        assert!(should_run(on_time, Missed::RunOnce));
        assert!(!should_run(after_suspend, Missed::Skip));
        assert!(should_run(after_suspend, Missed::RunOnce));
    }

    #[test]
    fn missed_fires_are_counted() {
        let dir = std::env::temp_dir().join(format!("opsh-sched-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("s.toml");
        std::fs::write(
            &f,
            "[[job]]\ncron = \"* * * * * *\"\nscript = \"x.rhai\"\nmissed = \"run_once\"\n",
        )
        .unwrap();
        let mut s = Schedule::load(&f).unwrap();
        let t0 = s.jobs[0].checked;
        s.jobs[0].checked = t0 - chrono::Duration::seconds(60);
        let (n, latest) = s.due(&s.jobs[0], t0);
        assert!((59..=60).contains(&n), "{n}");
        assert!(latest.unwrap() <= t0);
        assert_eq!(s.jobs[0].missed, Missed::RunOnce);
        assert_eq!(s.jobs[0].lock, "x");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
