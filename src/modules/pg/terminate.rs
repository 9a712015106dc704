//! Ending sessions and queries: terminate_idle, terminate, cancel.
//!
//! All three list their targets with the shared session filter under
//! `Scope::Act` (client backends only, never opsh, never superusers unless
//! asked). The plan is that list. The apply acts on each listed session
//! with the filter applied again in the same statement, keyed by pid and
//! backend start, so a session that changed meanwhile (became active, or
//! a recycled pid) is skipped rather than hit; then it checks that each
//! one is really gone.

use super::activity::list_sessions;
use super::conn::{rows, rows_to_array, settings};
use super::filter::{Scope, SessionFilter, FILTER, SESSION};
use crate::dispatch::{counted, said};
use crate::dispatch::{Call, OpError, Plan};
use crate::registry::{field, join, opt, Field, Primitive, Ty};
use crate::value::map_of;
use rhai::{Array, Dynamic, Map};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    TerminateIdle,
    Terminate,
    Cancel,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Cancel => "cancel",
            _ => "terminate",
        }
    }
}

struct Request {
    filter: SessionFilter,
    max: i64,
    wait: Duration,
}

/// The session filter (client backends only: no `backend_type`), plus the
/// guards of acting.
const ACT_OPTS: [Field; FILTER.len() + 2] = join(&[
    FILTER,
    &[
        field("max", Ty::Int).doc(
            "refuse when more sessions match (default `[defaults] pg_max_terminate`, else 50)",
        ),
        field("wait", Ty::Duration).doc("how long each session may take to go (default \"5s\")"),
    ],
]);

/// What a terminating call returns.
const ACTED: Ty = Ty::Record(&[
    field("count", Ty::Int).doc("sessions acted on"),
    field("sessions", Ty::Rows(SESSION)).doc("each as it was just before"),
    field("skipped", Ty::List(&Ty::Int)).doc("pids that no longer matched at the moment of acting"),
]);

fn request(call: &Call, action: Action) -> Result<Request, OpError> {
    let opts = call.opts("opts")?;
    let mut filter = SessionFilter::parse(&opts)?;
    match action {
        Action::TerminateIdle => {
            let states = filter
                .states
                .get_or_insert_with(|| vec!["idle".into(), "idle in transaction".into()]);
            if let Some(s) = states.iter().find(|s| !s.starts_with("idle")) {
                return Err(OpError::bad_input(format!(
                    "{} only ends idle sessions, and \"{s}\" is not an idle state",
                    call.prim.full_name()
                ))
                .with_hint("use pg.terminate(#{states: [\"active\"], ...}) for running queries"));
            }
            filter.older_than.get_or_insert(Duration::from_secs(600));
        }
        Action::Terminate | Action::Cancel => {
            filter.states.get_or_insert_with(|| vec!["active".into()]);
            filter.older_than.get_or_insert(Duration::from_secs(300));
        }
    }
    let max = match opts.int("max")? {
        Some(n) if n < 0 => return Err(OpError::bad_input("option `max` cannot be negative")),
        Some(n) => n,
        None => settings(call)?.max_terminate,
    };
    let wait = opts.duration("wait")?.unwrap_or(Duration::from_secs(5));
    Ok(Request { filter, max, wait })
}

fn too_many(action: Action, n: usize, max: i64) -> OpError {
    OpError::refused(format!(
        "{n} sessions match, more than max {max}; nothing was {}ed",
        if action == Action::Cancel { "cancell" } else { "terminat" }
    ))
    .with_hint(format!(
        "narrow the filter, or pass #{{max: {n}}} deliberately after checking the list with --dry-run (the default max is `[defaults] pg_max_terminate`)"
    ))
}

fn pids(sessions: &[Map]) -> String {
    sessions
        .iter()
        .filter_map(|s| s.get("pid").map(|p| p.to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn plan(call: &mut Call, action: Action) -> Result<Plan, OpError> {
    let req = request(call, action)?;
    let sessions = list_sessions(call, &req.filter, Scope::Act, None)?;
    let n = sessions.len();
    let over = n as i64 > req.max;
    let what = req.filter.describe();
    let summary = if over {
        format!(
            "{n} sessions match ({what}), more than max {}: the call would be refused",
            req.max
        )
    } else if n == 0 {
        format!("no session matches ({what}); nothing to {}", action.verb())
    } else {
        format!(
            "would {} {n} session{} ({what}): pid {}",
            action.verb(),
            if n == 1 { "" } else { "s" },
            pids(&sessions)
        )
    };
    Ok(Plan {
        summary,
        details: map_of([
            ("count", Dynamic::from_int(n as i64)),
            ("max", Dynamic::from_int(req.max)),
            ("over_max", Dynamic::from_bool(over)),
            ("sessions", rows_to_array(sessions)),
        ]),
    })
}

fn apply(call: &mut Call, action: Action) -> Result<Dynamic, OpError> {
    let req = request(call, action)?;
    let sessions = list_sessions(call, &req.filter, Scope::Act, None)?;
    if sessions.len() as i64 > req.max {
        return Err(too_many(action, sessions.len(), req.max));
    }
    let (wh, base) = req.filter.to_sql(Scope::Act, 1);
    let n = base.len();
    let func = match action {
        Action::Cancel => "pg_cancel_backend(a.pid)".to_string(),
        _ => format!("pg_terminate_backend(a.pid, ${})", n + 1),
    };
    // The filter again, at the moment of acting, on this exact session.
    let sql = format!(
        "select {func} as done from pg_stat_activity a
         where {wh}
           and a.pid = ${p} and a.backend_start = ${b}::timestamptz
           and a.query_start is not distinct from ${q}::timestamptz",
        p = n + 2,
        b = n + 3,
        q = n + 4
    );
    let wait_ms = i64::try_from(req.wait.as_millis()).unwrap_or(i64::MAX);
    let mut acted: Vec<Map> = Vec::new();
    let mut skipped: Array = Array::new();
    let mut failures: Vec<String> = Vec::new();
    for s in sessions {
        let get = |k: &str| s.get(k).cloned().unwrap_or(Dynamic::UNIT);
        let mut params = base.clone();
        params.extend([
            Dynamic::from_int(wait_ms),
            get("pid"),
            get("backend_start"),
            get("query_start"),
        ]);
        match rows(call, &sql, &params, &format!("{} failed", action.verb())) {
            Ok(r) if r.is_empty() => skipped.push(get("pid")),
            Ok(_) => acted.push(s),
            Err(e) => failures.push(format!(
                "pid {}: {}",
                get("pid"),
                e.cause.unwrap_or(e.message)
            )),
        }
    }
    let remaining = still_there(call, action, &acted, req.wait)?;
    if !remaining.is_empty() || !failures.is_empty() {
        let total = acted.len() + failures.len();
        let done = acted.len() - remaining.len();
        let mut cause = Vec::new();
        if !remaining.is_empty() {
            cause.push(format!(
                "still {} after {}: pid {}",
                if action == Action::Cancel {
                    "running"
                } else {
                    "present"
                },
                humantime::format_duration(req.wait),
                remaining
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        cause.extend(failures);
        return Err(OpError::failed(format!(
            "{} ended {done} of the {total} sessions it acted on{}",
            call.prim.full_name(),
            if done == 0 {
                String::new()
            } else {
                let ended: Vec<Map> = acted
                    .iter()
                    .filter(|s| {
                        s.get("pid")
                            .and_then(|p| p.as_int().ok())
                            .is_some_and(|p| !remaining.contains(&p))
                    })
                    .cloned()
                    .collect();
                format!(" (ended: pid {})", pids(&ended))
            }
        ))
        .with_cause(cause.join("; "))
        .with_hint("a session stuck in I/O or a lock can take longer: raise #{wait: \"30s\"}, or look at pg.activity(#{pids: [...]})"));
    }
    Ok(Dynamic::from_map(map_of([
        ("count", Dynamic::from_int(acted.len() as i64)),
        ("sessions", rows_to_array(acted)),
        ("skipped", Dynamic::from_array(skipped)),
    ])))
}

/// Pids among `acted` that are still there (terminate) or still running
/// the same query (cancel) once `wait` has passed.
fn still_there(
    call: &mut Call,
    action: Action,
    acted: &[Map],
    wait: Duration,
) -> Result<Vec<i64>, OpError> {
    if acted.is_empty() {
        return Ok(Vec::new());
    }
    let col = |k: &str| -> Dynamic {
        Dynamic::from_array(
            acted
                .iter()
                .map(|s| s.get(k).map(|v| v.to_string()).unwrap_or_default().into())
                .collect(),
        )
    };
    let extra = if action == Action::Cancel {
        "and a.state = 'active' and a.query_start = nullif(k.qs, '')::timestamptz"
    } else {
        ""
    };
    let sql = format!(
        "select a.pid::int8 as pid from pg_stat_activity a
         join unnest($1::text[], $2::text[], $3::text[]) as k(pid, started, qs)
           on a.pid = k.pid::int and a.backend_start = k.started::timestamptz {extra}"
    );
    let params: Array = vec![col("pid"), col("backend_start"), col("query_start")];
    let deadline = Instant::now() + wait;
    loop {
        let left: Vec<i64> = rows(call, &sql, &params, "re-checking sessions failed")?
            .iter()
            .filter_map(|r| r.get("pid").and_then(|p| p.as_int().ok()))
            .collect();
        if left.is_empty() || Instant::now() >= deadline {
            return Ok(left);
        }
        call.block_on(async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(())
        })?;
    }
}

pub const TERMINATE_IDLE: Primitive =
    Primitive::mutate("terminate_idle", plan_terminate_idle, terminate_idle)
        .params(&[opt("opts", Ty::Record(&ACT_OPTS))])
        .returns(ACTED)
        .says(says_terminated)
        .doc("Terminate idle client sessions (default: state idle or idle in transaction for more than 10 minutes).\n\
              Only ever client backends: never opsh's own connections (application \"opsh\"), never autovacuum, walsenders or background workers, never superuser sessions unless `include_superusers: true`. Refused when more than `max` sessions match. Uses pg_terminate_backend(pid, timeout) with `wait`, re-applies the filter to each session at the moment it acts (a session that became active is skipped), and checks each one is gone. --dry-run returns the same sessions and terminates nothing.")
        .example(r#"let r = pg.terminate_idle(#{older_than: "10m", database: "app", exclude_applications: ["pgbouncer"], max: 20}); print(r.count)"#);

fn plan_terminate_idle(call: &mut Call) -> Result<Plan, OpError> {
    plan(call, Action::TerminateIdle)
}
fn terminate_idle(call: &mut Call) -> Result<Dynamic, OpError> {
    apply(call, Action::TerminateIdle)
}

pub const TERMINATE: Primitive = Primitive::mutate("terminate", plan_terminate, terminate)
    .params(&[opt("opts", Ty::Record(&ACT_OPTS))])
    .returns(ACTED)
    .says(says_terminated)
    .doc("Terminate the sessions of long-running queries (default: state active for more than 5 minutes); the same filter, guards, `max`, `wait` and result as pg.terminate_idle.")
    .example(r#"pg.terminate(#{older_than: "5m", user: "reporting"})"#);

fn plan_terminate(call: &mut Call) -> Result<Plan, OpError> {
    plan(call, Action::Terminate)
}
fn terminate(call: &mut Call) -> Result<Dynamic, OpError> {
    apply(call, Action::Terminate)
}

pub const CANCEL: Primitive = Primitive::mutate("cancel", plan_cancel, cancel)
    .params(&[opt("opts", Ty::Record(&ACT_OPTS))])
    .returns(ACTED)
    .says(says_cancelled)
    .doc("Cancel long-running queries (pg_cancel_backend; the sessions stay connected). Default: active for more than 5 minutes; the same filter, guards and `max` as pg.terminate_idle. Checks that each query stopped within `wait`.")
    .example(r#"pg.cancel(#{older_than: "5m", query_like: "%report%"})"#);

fn plan_cancel(call: &mut Call) -> Result<Plan, OpError> {
    plan(call, Action::Cancel)
}
fn cancel(call: &mut Call) -> Result<Dynamic, OpError> {
    apply(call, Action::Cancel)
}

fn says_terminated(_: &Call, r: &Dynamic) -> String {
    format!(
        "terminated {}{}",
        counted(&said(r, "count"), "session"),
        acted_pids(r)
    )
}

fn says_cancelled(_: &Call, r: &Dynamic) -> String {
    format!(
        "cancelled the queries of {}{}",
        counted(&said(r, "count"), "session"),
        acted_pids(r)
    )
}

/// " (pids 101, 102, ...)" of an ACTED result: the first ten.
fn acted_pids(r: &Dynamic) -> String {
    let pids: Vec<String> = r
        .read_lock::<rhai::Map>()
        .and_then(|m| {
            m.get("sessions").and_then(|s| {
                s.read_lock::<rhai::Array>()
                    .map(|a| a.iter().map(|s| said(s, "pid")).collect())
            })
        })
        .unwrap_or_default();
    match pids.len() {
        0 => String::new(),
        n if n > 10 => format!(" (pids {}, ... {} more)", pids[..10].join(", "), n - 10),
        _ => format!(" (pids {})", pids.join(", ")),
    }
}
