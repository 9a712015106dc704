//! The one translation of a session filter (`#{states, older_than, user,
//! ...}`) into SQL over pg_stat_activity. activity, long_running,
//! terminate_idle, terminate and cancel all go through it, so what a dry
//! run lists, what is acted on, and what `pg.activity` shows cannot drift.
//! User values are always bound parameters, never spliced into the SQL.

use crate::dispatch::{OpError, Opts};
use crate::registry::{field, Field, Ty, STRINGS};
use rhai::{Array, Dynamic};
use std::time::Duration;

/// The columns every session-listing call returns, in display order.
/// Durations are seconds (floats): `state_s` is how long the session has
/// been in its current state, `query_s` since its last query started.
pub const SESSION_COLUMNS: &str = r#"a.pid, a.usename as "user", a.datname as database,
       a.application_name as application, host(a.client_addr) as client_addr,
       a.backend_type, a.state,
       round(greatest(0, extract(epoch from clock_timestamp() - a.state_change))::numeric, 3)::float8 as state_s,
       round(greatest(0, extract(epoch from clock_timestamp() - a.query_start))::numeric, 3)::float8 as query_s,
       round(greatest(0, extract(epoch from clock_timestamp() - a.xact_start))::numeric, 3)::float8 as xact_s,
       round(greatest(0, extract(epoch from clock_timestamp() - a.backend_start))::numeric, 3)::float8 as backend_s,
       a.wait_event_type, a.wait_event, left(a.query, 300) as query,
       a.query_start, a.state_change, a.backend_start"#;

/// The values pg_stat_activity.state takes; anything else is a typo.
pub const STATES: &[&str] = &[
    "active",
    "idle",
    "idle in transaction",
    "idle in transaction (aborted)",
    "fastpath function call",
    "disabled",
];

/// The filter's option keys (`state`/`states` and `min`/`older_than` are
/// synonyms). pg.activity and pg.long_running add `backend_type` and
/// `limit`; the terminating calls add `max` and `wait`.
pub const FILTER: &[Field] = &[
    field("states", STRINGS).doc("a state or a list: active, idle, idle in transaction, idle in transaction (aborted), fastpath function call, disabled"),
    field("state", STRINGS).doc("the same as `states`"),
    field("older_than", Ty::Duration).doc("in the current state for longer than this (\"10m\" or seconds)"),
    field("min", Ty::Duration).doc("the same as `older_than`"),
    field("database", STRINGS),
    field("user", STRINGS),
    field("application", STRINGS),
    field("exclude_applications", STRINGS),
    field("pids", Ty::OneOf(&[Ty::Int, Ty::List(&Ty::Int)])),
    field("query_like", Ty::Str).doc("an ILIKE pattern on the query text"),
    field("include_superusers", Ty::Bool).doc("superuser sessions are never acted on unless true"),
];

/// What every session-listing call returns per session, in display order.
pub const SESSION: &[Field] = &[
    field("pid", Ty::Int),
    field("user", Ty::Str),
    field("database", Ty::Str),
    field("application", Ty::Str),
    field("client_addr", Ty::Str)
        .doc("() for a Unix socket")
        .wide(),
    field("backend_type", Ty::Str).wide(),
    field("state", Ty::Str),
    field("state_s", Ty::Float).doc("seconds in the current state"),
    field("query_s", Ty::Float).doc("seconds since the last query started"),
    field("xact_s", Ty::Float)
        .doc("seconds since the transaction started; () outside one")
        .wide(),
    field("backend_s", Ty::Float)
        .doc("seconds since the session started")
        .wide(),
    field("wait_event_type", Ty::Str).wide(),
    field("wait_event", Ty::Str),
    field("query", Ty::Str).doc("the first 300 characters"),
    field("query_start", Ty::Str).doc("RFC 3339").wide(),
    field("state_change", Ty::Str).doc("RFC 3339").wide(),
    field("backend_start", Ty::Str).doc("RFC 3339").wide(),
];

#[derive(Debug, Default, Clone)]
pub struct SessionFilter {
    pub states: Option<Vec<String>>,
    /// In the current state for longer than this (state_change).
    pub older_than: Option<Duration>,
    pub database: Option<Vec<String>>,
    pub user: Option<Vec<String>>,
    pub application: Option<Vec<String>>,
    pub exclude_applications: Vec<String>,
    pub pids: Option<Vec<i64>>,
    /// An ILIKE pattern on the query text.
    pub query_like: Option<String>,
    pub backend_type: Option<Vec<String>>,
    pub include_superusers: bool,
}

/// Observe lists what is there (minus the call's own backend). Act adds
/// the guards of every mutation: client backends only, never opsh's own
/// sessions, never superusers unless asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Observe,
    Act,
}

impl SessionFilter {
    pub fn parse(opts: &Opts) -> Result<SessionFilter, OpError> {
        let states = match (opts.strings("states")?, opts.strings("state")?) {
            (Some(_), Some(_)) => {
                return Err(OpError::bad_input(
                    "give `states` or `state`, not both (they are the same option)",
                ))
            }
            (a, b) => a.or(b),
        };
        if let Some(states) = &states {
            for s in states {
                if !STATES.contains(&s.as_str()) {
                    let hint = match crate::registry::suggest(s, STATES.iter().copied()) {
                        Some(x) => format!("did you mean \"{x}\"?"),
                        None => format!("states are: {}", STATES.join(", ")),
                    };
                    return Err(OpError::bad_input(format!("unknown session state \"{s}\""))
                        .with_hint(hint));
                }
            }
        }
        let older_than = match (opts.duration("older_than")?, opts.duration("min")?) {
            (Some(_), Some(_)) => {
                return Err(OpError::bad_input(
                    "give `older_than` or `min`, not both (they are the same option)",
                ))
            }
            (a, b) => a.or(b),
        };
        // One pid or a list; dispatch has checked they are ints.
        let pids = opts.get("pids").map(|d| {
            let list = d
                .read_lock::<Array>()
                .map(|a| a.clone())
                .unwrap_or_else(|| vec![d.clone()]);
            list.iter()
                .filter_map(|p| p.as_int().ok())
                .collect::<Vec<i64>>()
        });
        let f = SessionFilter {
            states,
            older_than,
            database: opts.strings("database")?,
            user: opts.strings("user")?,
            application: opts.strings("application")?,
            exclude_applications: opts.strings("exclude_applications")?.unwrap_or_default(),
            pids,
            query_like: opts.str("query_like")?,
            backend_type: opts.strings("backend_type")?,
            include_superusers: opts.bool("include_superusers")?,
        };
        for (k, v) in [
            ("states", &f.states),
            ("database", &f.database),
            ("user", &f.user),
            ("application", &f.application),
            ("backend_type", &f.backend_type),
        ] {
            if v.as_ref().is_some_and(Vec::is_empty) {
                return Err(OpError::bad_input(format!(
                    "option `{k}` is an empty list, which matches no session"
                ))
                .with_hint(format!("leave `{k}` out to match any")));
            }
        }
        if f.pids.as_ref().is_some_and(Vec::is_empty) {
            return Err(OpError::bad_input(
                "option `pids` is an empty list, which matches no session",
            ));
        }
        Ok(f)
    }

    /// The WHERE clause over `pg_stat_activity a`, with its parameters
    /// numbered from `$first`.
    pub fn to_sql(&self, scope: Scope, first: usize) -> (String, Array) {
        let mut w = Where {
            clauses: vec!["a.pid <> pg_backend_pid()".into()],
            params: Array::new(),
            first,
        };
        if scope == Scope::Act {
            w.clauses.push("a.backend_type = 'client backend'".into());
            // Every opsh process names its connections "opsh"; none of
            // them is ever a target, in this run or another.
            w.clauses
                .push("coalesce(a.application_name, '') <> 'opsh'".into());
            if !self.include_superusers {
                w.clauses.push(
                    "not coalesce((select r.rolsuper from pg_roles r where r.oid = a.usesysid), false)"
                        .into(),
                );
            }
        }
        if let Some(v) = &self.states {
            w.any("a.state", "text", strings(v));
        }
        if let Some(d) = self.older_than {
            let p = w.push(Dynamic::from_float(d.as_secs_f64()));
            w.clauses.push(format!(
                "a.state_change < clock_timestamp() - make_interval(secs => {p}::float8)"
            ));
        }
        if let Some(v) = &self.database {
            w.any("a.datname", "text", strings(v));
        }
        if let Some(v) = &self.user {
            w.any("a.usename", "text", strings(v));
        }
        if let Some(v) = &self.application {
            w.any("a.application_name", "text", strings(v));
        }
        if !self.exclude_applications.is_empty() {
            let p = w.push(strings(&self.exclude_applications));
            w.clauses.push(format!(
                "not (coalesce(a.application_name, '') = any({p}::text[]))"
            ));
        }
        if let Some(v) = &self.pids {
            w.any(
                "a.pid",
                "int8",
                Dynamic::from_array(v.iter().map(|p| Dynamic::from_int(*p)).collect()),
            );
        }
        if let Some(q) = &self.query_like {
            let p = w.push(q.clone().into());
            w.clauses.push(format!("a.query ilike {p}::text"));
        }
        if let Some(v) = &self.backend_type {
            w.any("a.backend_type", "text", strings(v));
        }
        (w.clauses.join("\n  and "), w.params)
    }

    /// Short human description for plans: "state idle, older than 10m".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = &self.states {
            parts.push(format!("state {}", s.join("|")));
        }
        if let Some(d) = self.older_than {
            parts.push(format!(
                "in that state for more than {}",
                humantime::format_duration(d)
            ));
        }
        for (k, v) in [
            ("database", &self.database),
            ("user", &self.user),
            ("application", &self.application),
        ] {
            if let Some(v) = v {
                parts.push(format!("{k} {}", v.join("|")));
            }
        }
        if !self.exclude_applications.is_empty() {
            parts.push(format!(
                "application not {}",
                self.exclude_applications.join("|")
            ));
        }
        if let Some(p) = &self.pids {
            parts.push(format!(
                "pid {}",
                p.iter().map(i64::to_string).collect::<Vec<_>>().join("|")
            ));
        }
        if let Some(q) = &self.query_like {
            parts.push(format!("query like {q:?}"));
        }
        parts.join(", ")
    }
}

struct Where {
    clauses: Vec<String>,
    params: Array,
    first: usize,
}

impl Where {
    fn push(&mut self, v: Dynamic) -> String {
        self.params.push(v);
        format!("${}", self.first + self.params.len() - 1)
    }

    fn any(&mut self, col: &str, ty: &str, list: Dynamic) {
        let p = self.push(list);
        self.clauses.push(format!("{col} = any({p}::{ty}[])"));
    }
}

fn strings(v: &[String]) -> Dynamic {
    Dynamic::from_array(v.iter().map(|s| Dynamic::from(s.clone())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_parameters_and_guards_apply_when_acting() {
        let mut opts = Opts::default();
        opts.0.insert("user".into(), "x'; drop table t; --".into());
        opts.0.insert("older_than".into(), "10m".into());
        let f = SessionFilter::parse(&opts).unwrap();
        let (sql, params) = f.to_sql(Scope::Act, 3);
        assert!(!sql.contains("drop table"), "{sql}");
        assert!(sql.contains("a.usename = any($4::text[])"), "{sql}");
        assert!(sql.contains("make_interval(secs => $3::float8)"), "{sql}");
        assert!(
            sql.contains("client backend") && sql.contains("rolsuper"),
            "{sql}"
        );
        assert_eq!(params.len(), 2);
        let (sql, _) = f.to_sql(Scope::Observe, 1);
        assert!(!sql.contains("rolsuper"), "{sql}");
    }

    #[test]
    fn typos_are_refused() {
        let mut opts = Opts::default();
        opts.0.insert("states".into(), "idle_in_transaction".into());
        let e = SessionFilter::parse(&opts).unwrap_err();
        assert!(e.hint.unwrap().contains("idle in transaction"));
    }
}
