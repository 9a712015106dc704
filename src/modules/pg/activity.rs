//! Who is connected and what they do: activity, connections,
//! long_running, blocking.

use super::conn::{rows, rows_to_array};
use super::filter::{Scope, SessionFilter, FILTER, SESSION, SESSION_COLUMNS};
use crate::dispatch::{Call, OpError};
use crate::registry::{field, join, opt, Field, Primitive, Ty, STRINGS};
use crate::value::map_of;
use rhai::{Array, Dynamic, Map};
use std::time::Duration;

/// Sessions matching `filter`, oldest state first.
pub fn list_sessions(
    call: &mut Call,
    f: &SessionFilter,
    scope: Scope,
    limit: Option<i64>,
) -> Result<Vec<Map>, OpError> {
    let (wh, mut params) = f.to_sql(scope, 1);
    let limit_sql = match limit {
        Some(n) => {
            params.push(Dynamic::from_int(n));
            format!("limit ${}", params.len())
        }
        None => String::new(),
    };
    let sql = format!(
        "select {SESSION_COLUMNS}\nfrom pg_stat_activity a\nwhere {wh}\norder by a.state_change nulls last, a.pid\n{limit_sql}"
    );
    rows(call, &sql, &params, "listing sessions failed")
}

/// The session filter, plus what a listing adds.
const LIST_OPTS: [Field; FILTER.len() + 2] = join(&[
    FILTER,
    &[
        field("backend_type", STRINGS).doc("e.g. \"client backend\"; default: every type"),
        field("limit", Ty::Int).doc("at most this many rows"),
    ],
]);

pub const ACTIVITY: Primitive = Primitive::read("activity", activity)
    .params(&[opt("filter", Ty::Record(&LIST_OPTS))])
    .returns(Ty::Rows(SESSION))
    .doc("Sessions from pg_stat_activity, oldest state first.\n\
          Every backend type is listed (filter with `backend_type: \"client backend\"`), except the call's own. The same filter as pg.terminate_idle, so this shows what a terminate would consider.")
    .example(r#"show(pg.activity(#{states: ["idle in transaction"], older_than: "1m"}))"#);

fn activity(call: &mut Call) -> Result<Dynamic, OpError> {
    let opts = call.opts("filter")?;
    let f = SessionFilter::parse(&opts)?;
    let limit = opts.int("limit")?;
    Ok(rows_to_array(list_sessions(
        call,
        &f,
        Scope::Observe,
        limit,
    )?))
}

pub const LONG_RUNNING: Primitive = Primitive::read("long_running", long_running)
    .params(&[opt("opts", Ty::Record(&LIST_OPTS))])
    .returns(Ty::Rows(SESSION))
    .doc("Client sessions in a state for longer than `min` (default \"5m\"), state `active` by default; the same columns as pg.activity, longest first.\n\
          Takes every filter key of pg.activity, e.g. #{min: \"30s\", state: \"idle in transaction\"}.")
    .example(r#"let slow = pg.long_running(#{min: "5m"}); show(slow)"#);

fn long_running(call: &mut Call) -> Result<Dynamic, OpError> {
    let opts = call.opts("opts")?;
    let mut f = SessionFilter::parse(&opts)?;
    if f.states.is_none() {
        f.states = Some(vec!["active".into()]);
    }
    if f.older_than.is_none() {
        f.older_than = Some(Duration::from_secs(300));
    }
    if f.backend_type.is_none() {
        f.backend_type = Some(vec!["client backend".into()]);
    }
    let limit = opts.int("limit")?;
    Ok(rows_to_array(list_sessions(
        call,
        &f,
        Scope::Observe,
        limit,
    )?))
}

/// Connection counts of one group (a database, a user).
const BY_GROUP: [Field; 4] = [
    field("connections", Ty::Int),
    field("active", Ty::Int),
    field("idle", Ty::Int),
    field("idle_in_transaction", Ty::Int),
];

pub const CONNECTIONS: Primitive = Primitive::read("connections", connections)
    .returns(Ty::Record(&[
        field("total", Ty::Int).doc("client connections"),
        field("active", Ty::Int),
        field("idle", Ty::Int),
        field("idle_in_transaction", Ty::Int),
        field("max_connections", Ty::Int),
        field("reserved", Ty::Int).doc("superuser and reserved slots"),
        field("available", Ty::Int).doc("max_connections minus reserved minus total"),
        field("saturation_pct", Ty::Float).doc("total of max_connections minus reserved, in percent"),
        field("by_state", Ty::Map).doc("connections per state"),
        field("by_database", Ty::Rows(&join::<5>(&[&[field("database", Ty::Str)], &BY_GROUP]))),
        field("by_user", Ty::Rows(&join::<5>(&[&[field("user", Ty::Str)], &BY_GROUP]))),
    ]))
    .doc("Client connections at a glance.\n\
          Every figure is counted from one read of pg_stat_activity's client backends, so `by_state`, `by_database` and `by_user` each add up to `total`.")
    .example("let c = pg.connections(); if c.saturation_pct > 80.0 { fail(`${c.total} of ${c.max_connections} connections used`) }");

fn connections(call: &mut Call) -> Result<Dynamic, OpError> {
    let none = Array::new();
    // One statement: the settings beside one read of pg_stat_activity,
    // every figure counted from it. Separate statements saw different
    // moments (opsh's own pool opening a connection between them), and
    // the groups did not add up to the total; each statement is also a
    // round trip more. The left join keeps the settings when no client
    // backend is visible (then the one row has no pid).
    let mut sessions = rows(
        call,
        r#"select s.max_connections, s.reserved, a.pid,
                  coalesce(a.state, 'unknown') as state, a.datname::text as database,
                  a.usename::text as "user"
           from (select current_setting('max_connections')::int8 as max_connections,
                        (current_setting('superuser_reserved_connections')::int8
                         + coalesce(current_setting('reserved_connections', true)::int8, 0)) as reserved) s
           left join pg_stat_activity a on a.backend_type = 'client backend'"#,
        &none,
        "counting connections failed",
    )?;
    let int = |m: &Map, k: &str| m.get(k).and_then(|v| v.as_int().ok()).unwrap_or(0);
    let (max, reserved) = match sessions.first() {
        Some(m) => (int(m, "max_connections"), int(m, "reserved")),
        None => {
            return Err(OpError::failed(
                "counting connections failed: the server returned no row",
            ))
        }
    };
    sessions.retain(|r| r.get("pid").is_some_and(|p| !p.is_unit()));
    let field = |r: &Map, k: &str| r.get(k).filter(|v| !v.is_unit()).map(|v| v.to_string());
    let total = sessions.len() as i64;
    let count = |want: &dyn Fn(&str) -> bool| {
        sessions
            .iter()
            .filter(|r| field(r, "state").is_some_and(|s| want(&s)))
            .count() as i64
    };
    let active = |s: &str| s == "active";
    let idle = |s: &str| s == "idle";
    let in_tx = |s: &str| s.starts_with("idle in transaction");
    let mut by_state: std::collections::BTreeMap<String, i64> = Default::default();
    for r in &sessions {
        *by_state
            .entry(field(r, "state").unwrap_or_default())
            .or_default() += 1;
    }
    let group = |key: &str, label: &'static str| -> Array {
        // (connections, active, idle, idle in transaction) per name; a
        // session without one (a database-less walsender has none) is ().
        let mut g: std::collections::BTreeMap<Option<String>, [i64; 4]> = Default::default();
        for r in &sessions {
            let st = field(r, "state").unwrap_or_default();
            let e = g.entry(field(r, key)).or_default();
            e[0] += 1;
            e[1] += i64::from(active(&st));
            e[2] += i64::from(idle(&st));
            e[3] += i64::from(in_tx(&st));
        }
        let mut rows: Vec<(Option<String>, [i64; 4])> = g.into_iter().collect();
        rows.sort_by(|a, b| b.1[0].cmp(&a.1[0]).then(a.0.cmp(&b.0)));
        rows.into_iter()
            .map(|(name, c)| {
                Dynamic::from_map(map_of([
                    (label, name.map(Dynamic::from).unwrap_or(Dynamic::UNIT)),
                    ("connections", Dynamic::from_int(c[0])),
                    ("active", Dynamic::from_int(c[1])),
                    ("idle", Dynamic::from_int(c[2])),
                    ("idle_in_transaction", Dynamic::from_int(c[3])),
                ]))
            })
            .collect()
    };
    let usable = (max - reserved).max(1);
    Ok(Dynamic::from_map(map_of([
        ("total", Dynamic::from_int(total)),
        ("active", Dynamic::from_int(count(&active))),
        ("idle", Dynamic::from_int(count(&idle))),
        ("idle_in_transaction", Dynamic::from_int(count(&in_tx))),
        ("max_connections", Dynamic::from_int(max)),
        ("reserved", Dynamic::from_int(reserved)),
        ("available", Dynamic::from_int(usable - total)),
        (
            "saturation_pct",
            Dynamic::from_float((total as f64 * 1000.0 / usable as f64).round() / 10.0),
        ),
        (
            "by_state",
            Dynamic::from_map(
                by_state
                    .into_iter()
                    .map(|(k, v)| (k.into(), Dynamic::from_int(v)))
                    .collect(),
            ),
        ),
        (
            "by_database",
            Dynamic::from_array(group("database", "database")),
        ),
        ("by_user", Dynamic::from_array(group("user", "user"))),
    ])))
}

pub const BLOCKING: Primitive = Primitive::read("blocking", blocking)
    .returns(Ty::Rows(&[
        field("blocked_pid", Ty::Int),
        field("blocked_user", Ty::Str),
        field("blocking_pid", Ty::Int),
        field("blocking_user", Ty::Str),
        field("blocking_state", Ty::Str),
        field("lock_type", Ty::Str),
        field("lock_mode", Ty::Str),
        field("relation", Ty::Str),
        field("wait_s", Ty::Float).doc("seconds waited"),
        field("wait_event_type", Ty::Str),
        field("wait_event", Ty::Str),
        field("blocked_query", Ty::Str).doc("the first 200 characters"),
        field("blocking_query", Ty::Str).doc("the first 200 characters"),
        field("database", Ty::Str),
    ]))
    .doc("Lock waits: who blocks whom (pg_blocking_pids), one row per (blocked, blocking) pair. Empty when nothing waits on a lock.")
    .example("for w in pg.blocking() { print(`${w.blocking_pid} blocks ${w.blocked_pid} for ${w.wait_s}s`) }");

fn blocking(call: &mut Call) -> Result<Dynamic, OpError> {
    let r = rows(
        call,
        r#"select w.pid as blocked_pid, w.usename as blocked_user,
                  b.pid as blocking_pid, b.usename as blocking_user, b.state as blocking_state,
                  l.locktype as lock_type, l.mode as lock_mode,
                  l.relation::regclass::text as relation,
                  round(greatest(0, extract(epoch from clock_timestamp()
                        - coalesce(l.waitstart, w.state_change)))::numeric, 3)::float8 as wait_s,
                  w.wait_event_type, w.wait_event,
                  left(w.query, 200) as blocked_query, left(b.query, 200) as blocking_query,
                  w.datname as database
           from pg_stat_activity w
           cross join lateral unnest(pg_blocking_pids(w.pid)) as bp(pid)
           join pg_stat_activity b on b.pid = bp.pid
           left join lateral (
               select * from pg_locks l where l.pid = w.pid and not l.granted limit 1
           ) l on true
           order by wait_s desc, w.pid, b.pid"#,
        &Array::new(),
        "listing lock waits failed",
    )?;
    Ok(rows_to_array(r))
}
