//! `opsh timeline [RUN_ID | --since 1h]`: the audit log as the story of
//! each run (who, where, what was planned, confirmed, refused, changed, and
//! how it ended), for the incident channel and the postmortem. Records are
//! read tolerantly: fields this version does not know are shown as they
//! are, and a line that is not JSON is skipped with a warning, so a log
//! written by an older or newer opsh still renders.

use crate::args::{TimelineArgs, TimelineFormat};
use crate::context::Context;
use crate::error::CliError;
use crate::redact::redact;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The fields of a record that the timeline reads; everything else is kept
/// in `extra` and shown as it is.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Record {
    ts: String,
    run_id: String,
    user: String,
    host: String,
    pid: Option<u64>,
    script: String,
    event: String,
    phase: Option<String>,
    primitive: Option<String>,
    target: Option<String>,
    mode: Option<String>,
    outcome: Option<String>,
    plan: Option<String>,
    error: Option<String>,
    cause: Option<String>,
    reason: Option<String>,
    duration_ms: Option<u64>,
    confirmation: Option<Value>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// Fields shown in their own place, not repeated among the extras.
const SHOWN_ELSEWHERE: &[&str] = &["args", "identity", "how", "protected", "estimate"];

struct Run {
    id: String,
    records: Vec<Record>,
}

impl Run {
    fn first(&self) -> &Record {
        &self.records[0]
    }

    fn started(&self) -> &str {
        &self.first().ts
    }

    fn ended(&self) -> &str {
        self.records.last().map(|r| r.ts.as_str()).unwrap_or("")
    }

    fn targets(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .records
            .iter()
            .filter_map(|r| r.target.clone())
            .filter(|t| t != "-")
            .collect();
        t.sort();
        t.dedup();
        t
    }

    /// changed, failed, planned, refused, interrupted.
    fn counts(&self) -> [usize; 5] {
        let mut c = [0; 5];
        for r in &self.records {
            match (r.phase.as_deref(), r.outcome.as_deref()) {
                (Some("outcome"), Some("ok" | "applied")) => c[0] += 1,
                (Some("outcome"), Some("refused")) | (Some("refused"), _) => c[3] += 1,
                (Some("outcome"), Some("interrupted")) => c[4] += 1,
                (Some("outcome"), _) => c[1] += 1,
                (Some("plan"), _) => c[2] += 1,
                _ if r.event == "run" && r.outcome.as_deref() == Some("interrupted") => c[4] += 1,
                _ => {}
            }
        }
        c
    }

    fn summary(&self) -> String {
        let [changed, failed, planned, refused, interrupted] = self.counts();
        let mut parts = Vec::new();
        let n =
            |k: usize, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
        if changed > 0 {
            parts.push(n(changed, "change made", "changes made"));
        }
        if failed > 0 {
            parts.push(n(failed, "change failed", "changes failed"));
        }
        if planned > 0 {
            parts.push(n(
                planned,
                "change planned (dry run)",
                "changes planned (dry run)",
            ));
        }
        if refused > 0 {
            parts.push(n(refused, "change refused", "changes refused"));
        }
        if interrupted > 0 {
            parts.push("interrupted".into());
        }
        if parts.is_empty() {
            "nothing changed".into()
        } else {
            parts.join(", ")
        }
    }
}

/// One record as (what, detail) for the text and Markdown forms.
fn describe(r: &Record) -> (String, String) {
    let mode = r.mode.as_deref().unwrap_or("");
    let what = match (r.event.as_str(), r.phase.as_deref()) {
        ("run", _) => format!("run {}", r.outcome.as_deref().unwrap_or("event")),
        (_, Some("plan")) => "planned (dry run)".to_string(),
        (_, Some("intent")) => "about to change".to_string(),
        (_, Some("outcome")) => match r.outcome.as_deref() {
            Some("ok") | Some("applied") => "changed".to_string(),
            Some(o) => o.to_string(),
            None => "outcome".to_string(),
        },
        (_, Some("refused")) => "refused".to_string(),
        (e, Some(p)) => format!("{e} {p}"),
        (e, None) => e.to_string(),
    };
    let mut d: Vec<String> = Vec::new();
    if let Some(p) = &r.plan {
        d.push(p.clone());
    }
    if let Some(c) = &r.confirmation {
        if !c.is_null() {
            d.push(format!(
                "confirmed by {} ({})",
                c["by"].as_str().unwrap_or("?"),
                c["how"].as_str().unwrap_or("?")
            ));
        }
    }
    if let Some(e) = &r.error {
        d.push(format!("error: {e}"));
    }
    if let Some(c) = &r.cause {
        d.push(format!("cause: {c}"));
    }
    if let Some(x) = &r.reason {
        d.push(format!("reason: {x}"));
    }
    if let Some(ms) = r.duration_ms {
        if r.phase.as_deref() == Some("outcome") {
            d.push(format!("{ms} ms"));
        }
    }
    if matches!(r.phase.as_deref(), Some("intent" | "plan" | "refused")) {
        if let Some(a) = r.extra.get("args").filter(|a| !is_empty(a)) {
            d.push(format!("args {}", compact(a)));
        }
        // Which server, database and account (opsh versions that audit it).
        if let Some(Value::Object(id)) = r.extra.get("identity") {
            let kept: Map<String, Value> = id
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if !kept.is_empty() {
                d.push(format!("identity {}", compact(&Value::Object(kept))));
            }
        }
    }
    for (k, v) in &r.extra {
        if SHOWN_ELSEWHERE.contains(&k.as_str()) || is_empty(v) {
            continue;
        }
        d.push(format!("{k} {}", compact(v)));
    }
    if mode == "dry-run" && r.phase.as_deref() != Some("plan") {
        d.push("(dry run)".into());
    }
    (what, redact(&d.join("; ")))
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(o) => o.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// JSON on one line, long values cut.
fn compact(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > 200 {
        format!("{}…", s.chars().take(200).collect::<String>())
    } else {
        s
    }
}

/// "2026-12-01T02:03:04.567Z" -> "02:03:04".
fn clock(ts: &str) -> &str {
    ts.get(11..19).unwrap_or(ts)
}

fn parse_ts(ts: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(ts).ok()
}

fn who(r: &Record) -> String {
    let pid = r.pid.map(|p| format!(", pid {p}")).unwrap_or_default();
    format!("{} on {}{pid}", r.user, r.host)
}

fn text(run: &Run) -> String {
    let f = run.first();
    let mut s = format!(
        "run {}  {}  by {}\n  {} to {} UTC; {}\n",
        run.id,
        f.script,
        who(f),
        run.started(),
        clock(run.ended()),
        run.summary()
    );
    let targets = run.targets();
    if !targets.is_empty() {
        s.push_str(&format!("  targets: {}\n", targets.join(", ")));
    }
    for r in &run.records {
        let (what, detail) = describe(r);
        let prim = r.primitive.as_deref().unwrap_or("");
        let target = r
            .target
            .as_deref()
            .map(|t| format!(" on {t}"))
            .unwrap_or_default();
        s.push_str(&format!("  {}  {what:<18} {prim}{target}", clock(&r.ts)));
        if !detail.is_empty() {
            s.push_str(&format!(": {detail}"));
        }
        s.push('\n');
    }
    s
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn markdown(run: &Run) -> String {
    let f = run.first();
    let mut s = format!(
        "### Run `{}`: {}\n\n- **Who**: {}\n- **When**: {} to {} (UTC)\n- **Outcome**: {}\n",
        run.id,
        md_cell(&f.script),
        md_cell(&who(f)),
        run.started(),
        clock(run.ended()),
        run.summary()
    );
    let targets = run.targets();
    if !targets.is_empty() {
        s.push_str(&format!(
            "- **Targets**: {}\n",
            targets
                .iter()
                .map(|t| format!("`{}`", t.replace('`', "'")))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    s.push_str(
        "\n| time (UTC) | what | primitive | target | detail |\n| --- | --- | --- | --- | --- |\n",
    );
    for r in &run.records {
        let (what, detail) = describe(r);
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            clock(&r.ts),
            md_cell(&what),
            r.primitive
                .as_deref()
                .map(|p| format!("`{p}`"))
                .unwrap_or_default(),
            md_cell(r.target.as_deref().unwrap_or("")),
            md_cell(&detail)
        ));
    }
    s
}

fn as_json(run: &Run) -> Value {
    let f = run.first();
    let [changed, failed, planned, refused, interrupted] = run.counts();
    let events: Vec<Value> = run
        .records
        .iter()
        .map(|r| {
            let mut o = Map::new();
            o.insert("ts".into(), r.ts.clone().into());
            o.insert("event".into(), r.event.clone().into());
            let strings = [
                ("phase", &r.phase),
                ("primitive", &r.primitive),
                ("target", &r.target),
                ("mode", &r.mode),
                ("outcome", &r.outcome),
                ("plan", &r.plan),
                ("error", &r.error),
                ("cause", &r.cause),
                ("reason", &r.reason),
            ];
            for (k, x) in strings {
                if let Some(x) = x {
                    o.insert(k.into(), x.clone().into());
                }
            }
            if let Some(ms) = r.duration_ms {
                o.insert("duration_ms".into(), ms.into());
            }
            if let Some(c) = r.confirmation.clone().filter(|c| !c.is_null()) {
                o.insert("confirmation".into(), c);
            }
            for (k, x) in &r.extra {
                o.insert(k.clone(), x.clone());
            }
            Value::Object(o)
        })
        .collect();
    json!({
        "run_id": run.id,
        "script": f.script,
        "user": f.user,
        "host": f.host,
        "pid": f.pid,
        "started": run.started(),
        "ended": run.ended(),
        "targets": run.targets(),
        "summary": run.summary(),
        "counts": {"changed": changed, "failed": failed, "planned": planned, "refused": refused, "interrupted": interrupted},
        "events": events,
    })
}

/// The runs of the audit log at `path`, oldest first.
fn load(path: &std::path::Path) -> Result<(Vec<Run>, usize), CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CliError::failed(format!(
                "no audit log at {}: nothing has been changed through opsh there yet",
                path.display()
            ))
            .with_hint(
                "another log? --audit-log FILE or OPSH_AUDIT_LOG (the [audit] path of the config)",
            ))
        }
        Err(e) => {
            return Err(CliError::failed(format!(
                "cannot read the audit log {}: {e}",
                path.display()
            )))
        }
    };
    let mut runs: Vec<Run> = Vec::new();
    let mut bad = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(r) = serde_json::from_str::<Record>(line) else {
            bad += 1;
            continue;
        };
        if r.run_id.is_empty() {
            bad += 1;
            continue;
        }
        match runs.iter_mut().find(|x| x.id == r.run_id) {
            Some(run) => run.records.push(r),
            None => runs.push(Run {
                id: r.run_id.clone(),
                records: vec![r],
            }),
        }
    }
    Ok((runs, bad))
}

pub fn run(ctx: &Context, a: &TimelineArgs) -> Result<i32, CliError> {
    let cfg = ctx.config()?;
    let path = ctx.audit_path(&cfg);
    let (runs, bad) = load(&path)?;
    if bad > 0 {
        crate::stdio::errln(format_args!(
            "warning: {bad} line{} of {} {} not an audit record and {} skipped",
            if bad == 1 { "" } else { "s" },
            path.display(),
            if bad == 1 { "is" } else { "are" },
            if bad == 1 { "was" } else { "were" },
        ));
    }
    let since = match (&a.run_id, a.since) {
        (_, Some(d)) => Some(d),
        (None, None) => Some(Duration::from_secs(24 * 3600)),
        (Some(_), None) => None,
    };
    let cutoff = since.map(|d| SystemTime::now().checked_sub(d).unwrap_or(UNIX_EPOCH));
    let mut chosen: Vec<&Run> = runs
        .iter()
        .filter(|r| match &a.run_id {
            Some(id) => r.id.starts_with(id.as_str()),
            None => true,
        })
        .filter(|r| match cutoff {
            Some(c) => parse_ts(r.ended()).is_some_and(|t| t >= c),
            None => true,
        })
        .collect();
    chosen.sort_by(|x, y| x.started().cmp(y.started()));
    if let Some(id) = &a.run_id {
        match chosen.len() {
            0 => {
                return Err(CliError::failed(format!(
                    "no run {id} in {}{}",
                    path.display(),
                    since
                        .map(|d| format!(" within the last {}", humantime::format_duration(d)))
                        .unwrap_or_default()
                ))
                .with_hint("the id is printed at the end of a run that changed something; `opsh timeline --since 7d` lists runs"))
            }
            1 => {}
            n => {
                return Err(CliError::usage(format!(
                    "{n} runs start with {id}: give more of the id"
                )))
            }
        }
    }
    let format = match ctx.global.output {
        crate::args::OutputArg::Json => TimelineFormat::Json,
        crate::args::OutputArg::Yaml
        | crate::args::OutputArg::Text
        | crate::args::OutputArg::Wide => a.format,
    };
    let rendered: Vec<String> = match format {
        TimelineFormat::Text => chosen.iter().map(|r| text(r)).collect(),
        TimelineFormat::Markdown => chosen.iter().map(|r| markdown(r)).collect(),
        TimelineFormat::Json => chosen
            .iter()
            .map(|r| serde_json::to_string(&as_json(r)).unwrap_or_default())
            .collect(),
    };
    if chosen.is_empty() && format != TimelineFormat::Json {
        crate::stdio::errln(format_args!(
            "no runs in {}{}",
            path.display(),
            since
                .map(|d| format!(" within the last {}", humantime::format_duration(d)))
                .unwrap_or_default()
        ));
    }
    match format {
        TimelineFormat::Markdown if !chosen.is_empty() => {
            crate::stdio::outln(format_args!("## Timeline (from the opsh audit log)\n"));
            crate::stdio::outln(format_args!("{}", rendered.join("\n")));
        }
        TimelineFormat::Text => crate::stdio::out(format_args!("{}", rendered.join("\n"))),
        _ => {
            for r in &rendered {
                crate::stdio::outln(format_args!("{r}"));
            }
        }
    }
    match &a.incident {
        Some(id) => post(ctx, cfg, id, &chosen),
        None => Ok(crate::exit::OK),
    }
}

/// PagerDuty's limit on a note's content.
const NOTE_MAX: usize = 25_000;

/// One note per run, through dispatch: --dry-run, audit and redaction
/// apply as to any script's call.
fn post(
    ctx: &Context,
    cfg: crate::config::Config,
    incident: &str,
    runs: &[&Run],
) -> Result<i32, CliError> {
    if runs.is_empty() {
        return Err(CliError::failed(format!(
            "nothing to post to incident {incident}: no runs chosen"
        )));
    }
    let opts = ctx.options(&cfg, "opsh timeline", rhai::Map::new());
    let session = std::sync::Arc::new(ctx.session(opts, cfg)?);
    let engine = crate::engine::build(
        session.clone(),
        std::sync::Arc::new(crate::engine::Sources::default()),
        std::path::PathBuf::from("."),
    );
    let mut failed = 0;
    for run in runs {
        let mut note = text(run);
        if note.chars().count() > NOTE_MAX {
            note = format!(
                "{}\n… cut at {NOTE_MAX} characters: `opsh timeline {}` has the rest",
                note.chars().take(NOTE_MAX - 100).collect::<String>(),
                run.id
            );
        }
        let prim = crate::registry::Prim {
            module: &crate::modules::pagerduty::MODULE,
            decl: &crate::modules::pagerduty::NOTE,
        };
        let r = crate::dispatch::invoke(
            &engine,
            &session,
            prim,
            None,
            vec![incident.into(), note.into()],
        );
        match r {
            Ok(v) => {
                let id = v
                    .read_lock::<rhai::Map>()
                    .and_then(|m| m.get("id").map(|x| x.to_string()))
                    .unwrap_or_default();
                if !session.dry_run() {
                    crate::stdio::errln(format_args!(
                        "posted run {} to incident {incident} as note {id}",
                        run.id
                    ));
                }
            }
            Err(e) => {
                failed += 1;
                crate::stdio::errln(format_args!(
                    "error: posting run {} to incident {incident} failed: {}",
                    run.id,
                    crate::diagnostic::leaf(&e)
                ));
            }
        }
    }
    Ok(if failed > 0 {
        crate::exit::ERROR
    } else {
        crate::exit::OK
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(v: Value) -> Record {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn renders_records_of_newer_versions_tolerantly() {
        let common = json!({"ts": "2026-12-01T02:03:04.000Z", "run_id": "r1", "user": "alice",
                            "host": "ops-1", "pid": 7, "script": "fix.rhai", "event": "primitive",
                            "primitive": "pg.exec", "target": "prod", "mode": "real"});
        let with = |extra: Value| {
            let mut v = common.clone();
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            rec(v)
        };
        let run = Run {
            id: "r1".into(),
            records: vec![
                with(json!({"phase": "intent", "outcome": "pending",
                            "identity": {"host": "db1", "port": 5432, "database": "app", "user": null},
                            "confirmation": {"how": "typed", "by": "alice", "at": "2026-12-01T02:03:03Z"}})),
                with(
                    json!({"phase": "outcome", "outcome": "applied", "duration_ms": 12,
                            "result": {"rows": 3}, "future_field": "kept"}),
                ),
                with(json!({"phase": "refused", "outcome": "refused", "reason": "not confirmed"})),
            ],
        };
        let t = text(&run);
        assert!(t.contains("1 change made, 1 change refused"), "{t}");
        assert!(t.contains("confirmed by alice (typed)"), "{t}");
        assert!(
            t.contains(r#"identity {"database":"app","host":"db1","port":5432}"#),
            "{t}"
        );
        assert!(
            t.contains(r#"result {"rows":3}"#) && t.contains("future_field kept"),
            "{t}"
        );
        assert!(
            t.contains("refused            pg.exec on prod: reason: not confirmed"),
            "{t}"
        );
        let md = markdown(&run);
        assert!(
            md.contains("| 02:03:04 | changed | `pg.exec` | prod |"),
            "{md}"
        );
        let j = as_json(&run);
        assert_eq!(j["counts"]["refused"], 1);
        assert_eq!(j["events"][1]["future_field"], "kept");
        // Not a record: skipped, not fatal.
        assert!(serde_json::from_str::<Record>("[1, 2]").is_err());
    }
}
