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
use super::conn::{one, rows, rows_to_array, settings};
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
    fn done(self) -> &'static str {
        match self {
            Action::Cancel => "cancelled",
            _ => "terminated",
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
            "refuse when more sessions match (default `[defaults] pg_max_terminate`, else 50; never above `[limits] max_sessions`)",
        ),
        field("wait", Ty::Duration).doc("how long each session may take to go (default \"5s\")"),
    ],
]);

/// What a terminating call returns.
const ACTED: Ty = Ty::Record(&[
    field("count", Ty::Int).doc("sessions acted on"),
    field("sessions", Ty::Rows(SESSION)).doc("each as it was just before"),
    field("skipped", Ty::Rows(&[field("pid", Ty::Int), field("reason", Ty::Str)]))
        .doc("sessions that no longer matched at the moment of acting, and why (ended, pid reused, state changed, ran another query)"),
    field("hidden", Ty::Int).doc("sessions of other roles whose state the connected role cannot see (it lacks pg_read_all_stats), so they were not considered; 0 when it sees all"),
]);

fn request(call: &mut Call, action: Action) -> Result<Request, OpError> {
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
    // `[limits] max_sessions` is a ceiling a script's `max` cannot raise.
    let max = match crate::policy::limit(call, crate::policy::Limit::MaxSessions)? {
        Some(a) if a.value < max => a.value,
        _ => max,
    };
    let wait = opts.duration("wait")?.unwrap_or(Duration::from_secs(5));
    Ok(Request { filter, max, wait })
}

fn too_many(action: Action, n: usize, max: i64) -> OpError {
    OpError::refused(format!(
        "{n} sessions match, more than max {max}; nothing was {}",
        action.done()
    ))
    .with_hint(format!(
        "narrow the filter, or pass #{{max: {n}}} deliberately after checking the list with --dry-run (the default max is `[defaults] pg_max_terminate`; `[limits] max_sessions` caps it)"
    ))
}

fn pids(sessions: &[Map]) -> String {
    sessions
        .iter()
        .filter_map(|s| s.get("pid").map(|p| p.to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the connected role may do, from the server's own role checks.
struct Privileges {
    role: String,
    superuser: bool,
    /// Sees the state and query of every role's sessions.
    read_all_stats: bool,
    /// Signals sessions of roles it is not a member of (never a superuser's).
    signal_backend: bool,
}

fn privileges(call: &mut Call) -> Result<Privileges, OpError> {
    let m = one(
        call,
        "select current_user::text as role,
                coalesce((select rolsuper from pg_roles where rolname = current_user), false) as superuser,
                pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') as read_all_stats,
                pg_has_role(current_user, 'pg_signal_backend', 'USAGE') as signal_backend",
        &Array::new(),
        "checking the role's privileges failed",
    )?;
    let flag = |k: &str| m.get(k).and_then(|v| v.as_bool().ok()).unwrap_or(false);
    Ok(Privileges {
        role: m.get("role").map(|v| v.to_string()).unwrap_or_default(),
        superuser: flag("superuser"),
        read_all_stats: flag("read_all_stats"),
        signal_backend: flag("signal_backend"),
    })
}

/// What the role can reach of what the filter asks for: sessions it cannot
/// see (their state is hidden, so no state filter matches them) and listed
/// sessions it cannot signal. Both come from the server before anything is
/// done, so a dry run predicts what the real run can do.
struct Reach {
    privs: Privileges,
    /// Users owning sessions the role cannot see that otherwise match.
    hidden: Vec<String>,
    /// (pid, why) of listed sessions the role cannot signal.
    denied: Vec<(i64, String)>,
}

fn reach(call: &mut Call, req: &Request, sessions: &[Map]) -> Result<Reach, OpError> {
    let privs = privileges(call)?;
    let mut hidden = Vec::new();
    if !privs.read_all_stats {
        // The filter's keys the role can still see (user, database,
        // application, pids); the others are exactly what is hidden.
        let mut visible = req.filter.clone();
        visible.states = None;
        visible.older_than = None;
        visible.query_like = None;
        visible.backend_type = None;
        let (wh, params) = visible.to_sql(Scope::Observe, 1);
        let superusers = if req.filter.include_superusers {
            ""
        } else {
            "and not coalesce((select r.rolsuper from pg_roles r where r.oid = a.usesysid), false)"
        };
        let sql = format!(
            "select coalesce(a.usename::text, '?') as \"user\" from pg_stat_activity a
             where {wh}
               and a.query = '<insufficient privilege>' and a.datid is not null
               and coalesce(a.application_name, '') <> 'opsh' {superusers}"
        );
        hidden = rows(call, &sql, &params, "listing sessions failed")?
            .iter()
            .filter_map(|r| r.get("user").map(|u| u.to_string()))
            .collect();
    }
    let mut denied = Vec::new();
    if !privs.superuser && !sessions.is_empty() {
        let listed: Array = sessions
            .iter()
            .filter_map(|s| s.get("pid").cloned())
            .collect();
        let owners = rows(
            call,
            "select a.pid::int8 as pid, coalesce(a.usename::text, '?') as \"user\",
                    coalesce(r.rolsuper, false) as superuser,
                    coalesce(pg_has_role(a.usesysid, 'USAGE'), false) as own
             from pg_stat_activity a left join pg_roles r on r.oid = a.usesysid
             where a.pid = any($1::int8[])",
            &vec![Dynamic::from_array(listed)],
            "checking the role's privileges failed",
        )?;
        for o in owners {
            let flag = |k: &str| o.get(k).and_then(|v| v.as_bool().ok()).unwrap_or(false);
            let pid = o.get("pid").and_then(|v| v.as_int().ok()).unwrap_or(0);
            let user = o.get("user").map(|v| v.to_string()).unwrap_or_default();
            // PostgreSQL's own rule (pg_signal_backend()): a superuser's
            // session only by a superuser; another role's session by a
            // member of that role or of pg_signal_backend.
            if flag("superuser") {
                denied.push((
                    pid,
                    format!(
                        "a session of superuser {user}, and {} is not a superuser",
                        privs.role
                    ),
                ));
            } else if !flag("own") && !privs.signal_backend {
                denied.push((pid, format!("a session of {user}, and {} is neither a member of {user} nor of pg_signal_backend", privs.role)));
            }
        }
    }
    Ok(Reach {
        privs,
        hidden,
        denied,
    })
}

impl Reach {
    /// "role app cannot see the state of 2 sessions (of alice, bob) ..."
    fn hidden_note(&self) -> Option<String> {
        if self.hidden.is_empty() {
            return None;
        }
        let mut users = self.hidden.clone();
        users.sort();
        users.dedup();
        Some(format!(
            "role {} cannot see the state of {} session{} of other roles ({}) that may match: it lacks pg_read_all_stats, so {} not considered (GRANT pg_read_all_stats TO {} to see them)",
            self.privs.role,
            self.hidden.len(),
            if self.hidden.len() == 1 { "" } else { "s" },
            users.join(", "),
            if self.hidden.len() == 1 { "it is" } else { "they are" },
            self.privs.role
        ))
    }

    /// The sessions the role cannot signal: a headline and, per pid, why.
    fn denied(&self, action: Action, n: usize) -> Option<(String, String)> {
        if self.denied.is_empty() {
            return None;
        }
        let list: Vec<String> = self
            .denied
            .iter()
            .map(|(pid, why)| format!("pid {pid}: {why}"))
            .collect();
        Some((
            format!(
                "role {} cannot {} {} of the {n} matching sessions",
                self.privs.role,
                action.verb(),
                self.denied.len()
            ),
            list.join("; "),
        ))
    }

    fn refusal(&self, action: Action, n: usize) -> Option<OpError> {
        let (headline, cause) = self.denied(action, n)?;
        Some(
            OpError::refused(format!("{headline}; nothing was {}", action.done()))
                .with_cause(cause)
                .with_hint(format!(
                    "narrow the filter to sessions the role may signal (e.g. #{{user: \"{}\"}}), or GRANT pg_signal_backend TO {} (never enough for a superuser's session)",
                    self.privs.role, self.privs.role
                )),
        )
    }
}

fn plan(call: &mut Call, action: Action) -> Result<Plan, OpError> {
    let req = request(call, action)?;
    let sessions = list_sessions(call, &req.filter, Scope::Act, None)?;
    let reach = reach(call, &req, &sessions)?;
    let n = sessions.len();
    let over = n as i64 > req.max;
    let what = req.filter.describe();
    let mut summary = if let Some((headline, why)) = reach.denied(action, n) {
        format!("{headline} ({why}): the call would be refused")
    } else if over {
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
    if let Some(h) = reach.hidden_note() {
        summary.push_str(&format!("; {h}"));
    }
    let denied: Array = reach
        .denied
        .iter()
        .map(|(pid, why)| {
            Dynamic::from_map(map_of([
                ("pid", Dynamic::from_int(*pid)),
                ("reason", why.clone().into()),
            ]))
        })
        .collect();
    Ok(Plan {
        summary,
        details: map_of([
            ("count", Dynamic::from_int(n as i64)),
            ("max", Dynamic::from_int(req.max)),
            ("over_max", Dynamic::from_bool(over)),
            ("sessions", rows_to_array(sessions)),
            ("hidden", Dynamic::from_int(reach.hidden.len() as i64)),
            ("denied", Dynamic::from_array(denied)),
        ]),
    })
}

fn apply(call: &mut Call, action: Action) -> Result<Dynamic, OpError> {
    let req = request(call, action)?;
    let sessions = list_sessions(call, &req.filter, Scope::Act, None)?;
    if sessions.len() as i64 > req.max {
        return Err(too_many(action, sessions.len(), req.max));
    }
    let reach = reach(call, &req, &sessions)?;
    if let Some(e) = reach.refusal(action, sessions.len()) {
        return Err(e);
    }
    if let Some(h) = reach.hidden_note() {
        call.session.out.note(&format!("warning: {h}"));
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
            Ok(r) if r.is_empty() => {
                let reason = why_skipped(call, &s)?;
                skipped.push(Dynamic::from_map(map_of([
                    ("pid", get("pid")),
                    ("reason", reason.into()),
                ])));
            }
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
    if acted.is_empty() {
        call.changed_nothing();
    }
    Ok(Dynamic::from_map(map_of([
        ("count", Dynamic::from_int(acted.len() as i64)),
        ("sessions", rows_to_array(acted)),
        ("skipped", Dynamic::from_array(skipped)),
        ("hidden", Dynamic::from_int(reach.hidden.len() as i64)),
    ])))
}

/// Why a listed session no longer matched when the call acted on it.
fn why_skipped(call: &mut Call, listed: &Map) -> Result<String, OpError> {
    let get = |k: &str| listed.get(k).cloned().unwrap_or(Dynamic::UNIT);
    let now = rows(
        call,
        "select a.backend_start::text as backend_start, a.state,
                a.query_start is not distinct from $2::timestamptz as same_query,
                a.backend_start = $3::timestamptz as same_session
         from pg_stat_activity a where a.pid = $1::int8",
        &vec![get("pid"), get("query_start"), get("backend_start")],
        "re-checking a session failed",
    )?;
    let Some(now) = now.first() else {
        return Ok("the session ended before it was reached".into());
    };
    let flag = |k: &str| now.get(k).and_then(|v| v.as_bool().ok()).unwrap_or(false);
    Ok(if !flag("same_session") {
        "the pid now belongs to another session".into()
    } else if !flag("same_query") {
        format!(
            "it ran another query since it was listed (now {})",
            now.get("state").map(|v| v.to_string()).unwrap_or_default()
        )
    } else {
        format!(
            "its state changed to {} since it was listed",
            now.get("state").map(|v| v.to_string()).unwrap_or_default()
        )
    })
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
              Only ever client backends: never opsh's own connections (application \"opsh\"), never autovacuum, walsenders or background workers, never superuser sessions unless `include_superusers: true`. Refused when more than `max` sessions match. Uses pg_terminate_backend(pid, timeout) with `wait`, re-applies the filter to each session at the moment it acts (a session that became active is skipped), and checks each one is gone. --dry-run returns the same sessions and terminates nothing.\n\
              The role's privileges are checked first, in the dry run too: sessions whose state it cannot see (no pg_read_all_stats) are counted in `hidden` with a warning, and when it may not signal some matching session (not its role, no pg_signal_backend, or a superuser's) the call is refused before acting.")
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
