//! What happens after a run, for cron and CronJobs: the `--report` file,
//! `--push-metrics` to the Pushgateway and `--notify`. None of them changes
//! the run's exit code: a failure here is a warning on stderr. Pushes and
//! notifications go through dispatch (audit, dry-run) in a fresh session, so
//! a run that was cancelled or timed out can still say so.

use crate::audit::Audit;
use crate::config::{Config, Kind, NotifyKind};
use crate::modules::{notify, pagerduty, pushgateway};
use crate::output::{ColorChoice, Format, Output};
use crate::registry::{ModuleDecl, Prim, Primitive};
use crate::report::{Journal, Report};
use crate::session::{Options, Session};
use rhai::Dynamic;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NotifyOn {
    Failure,
    Always,
}

/// What the CLI asked for after the run.
pub struct After {
    pub report: Option<PathBuf>,
    pub notify: Vec<String>,
    pub notify_on: NotifyOn,
    pub push_metrics: bool,
    pub dry_run: bool,
    pub format: Format,
    pub color: ColorChoice,
    pub audit_path: PathBuf,
}

/// What the run was and how it ended.
pub struct Finished<'a> {
    pub script: String,
    pub args: &'a rhai::Map,
    pub lock: Option<String>,
    pub started: SystemTime,
    pub code: i32,
    pub error: Option<String>,
    pub journal: Option<&'a Journal>,
    /// The run's audit id, when it started: what it does after it ends is
    /// audited under the same id.
    pub run_id: Option<String>,
}

/// The fleet parent passes each child its target through this variable, so
/// reports, metrics and messages say which target a run was for.
pub const FLEET_TARGET_ENV: &str = "OPSH_FLEET_TARGET";

pub fn report(f: &Finished, dry_run: bool) -> Report {
    let ended = SystemTime::now();
    let dur = ended.duration_since(f.started).unwrap_or_default();
    Report {
        version: crate::report::VERSION,
        script: f.script.clone(),
        args: crate::report::redacted_args(f.args),
        host: crate::audit::hostname(),
        pid: std::process::id(),
        lock: f.lock.clone(),
        target: std::env::var(FLEET_TARGET_ENV)
            .ok()
            .filter(|t| !t.is_empty()),
        dry_run,
        break_glass: crate::policy::break_glass().map(str::to_string),
        started_at: crate::audit::timestamp(f.started),
        ended_at: crate::audit::timestamp(ended),
        duration_seconds: (dur.as_secs_f64() * 1000.0).round() / 1000.0,
        exit_code: f.code,
        status: crate::report::status_name(f.code),
        success: f.code == crate::exit::OK,
        error: f.error.as_deref().map(crate::redact::redact),
        checks: f.journal.map(Journal::checks).unwrap_or_default(),
        mutations: f.journal.map(Journal::mutations).unwrap_or_default(),
    }
}

pub fn finish(after: &After, cfg: &Config, f: &Finished) {
    let r = report(f, after.dry_run);
    if let Some(path) = &after.report {
        match r.write(path) {
            Ok(()) => tracing::info!(path = %path.display(), "report written"),
            Err(e) => {
                crate::log_failure!(path = %path.display(), error = %e, "cannot write the report");
                crate::stdio::errln(format_args!(
                    "warning: cannot write the report {}: {e}",
                    path.display()
                ));
            }
        }
    }
    let notify = !after.notify.is_empty()
        && (after.notify_on == NotifyOn::Always || f.code != crate::exit::OK);
    if !after.push_metrics && !notify {
        return;
    }
    let Some(post) = Post::new(after, cfg, &f.script, f.run_id.as_deref()) else {
        return;
    };
    if after.push_metrics {
        post.push_metrics(&r);
    }
    if notify {
        for n in &after.notify {
            post.notify(cfg, n, &r);
        }
    }
}

/// A fresh session and engine for the post-run primitive calls.
struct Post {
    session: Arc<Session>,
    engine: rhai::Engine,
}

impl Post {
    fn new(after: &After, cfg: &Config, script: &str, run_id: Option<&str>) -> Option<Post> {
        let opts = Options {
            dry_run: after.dry_run,
            yes: true,
            call_timeout: Duration::from_secs(15),
            script: script.to_string(),
            ..Options::default()
        };
        let audit = match run_id {
            Some(id) => Audit::continuing(after.audit_path.clone(), script, id),
            None => Audit::new(after.audit_path.clone(), script),
        };
        let session = match Session::new(
            opts,
            cfg.clone(),
            Output::new(after.format, after.color),
            audit,
        ) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                crate::stdio::errln(format_args!(
                    "warning: cannot start the runtime for notifications and metrics: {e}"
                ));
                return None;
            }
        };
        let engine = crate::engine::build(
            session.clone(),
            Arc::new(crate::engine::Sources::default()),
            PathBuf::from("."),
        );
        Some(Post { session, engine })
    }

    /// Calls a primitive through dispatch, as a script would: dry-run,
    /// audit and redaction apply to what a run does after it ends.
    fn call(
        &self,
        module: &'static ModuleDecl,
        decl: &'static Primitive,
        args: Vec<Dynamic>,
    ) -> Result<Dynamic, String> {
        let prim = Prim { module, decl };
        crate::dispatch::invoke(&self.engine, &self.session, prim, None, args).map_err(|e| {
            match crate::diagnostic::leaf(&e) {
                rhai::EvalAltResult::ErrorRuntime(v, _) => {
                    match v.clone().try_cast::<crate::dispatch::PrimitiveError>() {
                        Some(pe) => match &pe.hint {
                            Some(h) => format!("{pe} (hint: {h})"),
                            None => pe.to_string(),
                        },
                        None => v.to_string(),
                    }
                }
                other => other.to_string(),
            }
        })
    }

    /// opsh_run_* gauges for job=<script name> (plus target=<name> in a
    /// fleet). POST (merge) so a failed run keeps the last success time.
    fn push_metrics(&self, r: &Report) {
        if let Err(e) = self.session.resolve(Kind::Pushgateway, None) {
            crate::stdio::errln(format_args!(
                "warning: --push-metrics: no Pushgateway target: {}",
                e.message
            ));
            return;
        }
        let job = job_name(&r.script);
        let mut metrics = rhai::Map::new();
        let gauge = |v: f64, help: &str| {
            Dynamic::from_map(crate::value::map_of([
                ("value", Dynamic::from_float(v)),
                ("help", Dynamic::from(help.to_string())),
            ]))
        };
        metrics.insert(
            "opsh_run_duration_seconds".into(),
            gauge(r.duration_seconds, "How long the last run took."),
        );
        metrics.insert(
            "opsh_run_success".into(),
            gauge(
                if r.success { 1.0 } else { 0.0 },
                "1 when the last run succeeded.",
            ),
        );
        metrics.insert(
            "opsh_run_exit_code".into(),
            gauge(f64::from(r.exit_code), "Exit code of the last run."),
        );
        metrics.insert(
            "opsh_run_last_run_timestamp_seconds".into(),
            gauge(crate::modules::sys::unix_now(), "When the last run ended."),
        );
        if r.success {
            metrics.insert(
                "opsh_run_last_success_timestamp_seconds".into(),
                gauge(
                    crate::modules::sys::unix_now(),
                    "When the last successful run ended.",
                ),
            );
        }
        let mut grouping = rhai::Map::new();
        if let Some(t) = &r.target {
            grouping.insert("target".into(), Dynamic::from(t.clone()));
        }
        let opts = crate::value::map_of([
            ("grouping", Dynamic::from_map(grouping)),
            ("merge", Dynamic::TRUE),
        ]);
        match self.call(
            &pushgateway::MODULE,
            &pushgateway::PUSH,
            vec![
                job.clone().into(),
                Dynamic::from_map(metrics),
                Dynamic::from_map(opts),
            ],
        ) {
            Ok(_) => tracing::info!(job = %job, "metrics pushed"),
            Err(e) => {
                crate::log_failure!(job = %job, error = %e, "metrics push failed");
                crate::stdio::errln(format_args!("warning: --push-metrics failed: {e}"));
            }
        }
    }

    fn notify(&self, cfg: &Config, name: &str, r: &Report) {
        let result = cfg
            .notify_target(name)
            .map_err(|e| match e.hint {
                Some(h) => format!("{} (hint: {h})", e.message),
                None => e.message,
            })
            .and_then(|(kind, url)| match kind {
                NotifyKind::Slack => self.call(
                    &notify::MODULE,
                    &notify::SLACK,
                    vec![url.into(), r.summary().into()],
                ),
                NotifyKind::Webhook => {
                    let payload = serde_json::to_value(r).unwrap_or_default();
                    self.call(
                        &notify::MODULE,
                        &notify::WEBHOOK,
                        vec![url.into(), crate::value::from_json(&payload)],
                    )
                }
                NotifyKind::PagerDuty => self.pagerduty(cfg, name, url, r),
            });
        let shown = crate::redact::redact(name);
        match result {
            Ok(_) => tracing::info!(notify = %shown, "notification sent"),
            Err(e) => {
                crate::log_failure!(notify = %shown, error = %e, "notification failed");
                crate::stdio::errln(format_args!("warning: notification to {shown} failed: {e}"));
            }
        }
    }
}

impl Post {
    /// A failed run triggers (or, when its alert is still open, updates)
    /// the PagerDuty alert of its script and target; a run that succeeds
    /// afterwards (with --notify-on always) resolves it.
    fn pagerduty(
        &self,
        cfg: &Config,
        name: &str,
        key: String,
        r: &Report,
    ) -> Result<Dynamic, String> {
        let mut opts = rhai::Map::new();
        opts.insert("dedup_key".into(), Dynamic::from(dedup_key(r)));
        if let Some(u) = cfg.pagerduty_events_url(name) {
            opts.insert("events_url".into(), Dynamic::from(u));
        }
        let action = if r.success { "resolve" } else { "trigger" };
        if !r.success {
            opts.insert("summary".into(), Dynamic::from(r.summary()));
            opts.insert("source".into(), Dynamic::from(r.host.clone()));
            opts.insert("component".into(), Dynamic::from(job_name(&r.script)));
            let details = serde_json::to_value(r).unwrap_or_default();
            opts.insert("details".into(), crate::value::from_json(&details));
        }
        self.call(
            &notify::MODULE,
            &pagerduty::EVENT,
            vec![action.into(), key.into(), Dynamic::from_map(opts)],
        )
    }
}

/// One PagerDuty alert per script and target: repeated failures update
/// it instead of paging again.
pub fn dedup_key(r: &Report) -> String {
    format!(
        "opsh/{}/{}",
        job_name(&r.script),
        r.target.clone().unwrap_or_else(|| r.host.clone())
    )
}

/// The Pushgateway job label: the script's file stem.
pub fn job_name(script: &str) -> String {
    let stem = std::path::Path::new(script)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.trim_matches('_').is_empty() {
        "opsh".into()
    } else {
        clean
    }
}
