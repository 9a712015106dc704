//! Statistics views, read as typed rows: slow_queries, cache_hit_ratio,
//! index_usage, vacuum_stats, replication, settings, version.

use super::conn::{one, rows, rows_to_array};
use crate::dispatch::{Call, OpError};
use crate::registry::{field, opt, Primitive, Ty, STRINGS};
use crate::value::map_of;
use rhai::{Array, Dynamic, Map};

/// "mean" | "total" | ... to the pg_stat_statements column. The column
/// name comes from this fixed list, never from the script.
const ORDERS: &[(&str, &str)] = &[
    ("mean", "s.mean_exec_time"),
    ("total", "s.total_exec_time"),
    ("calls", "s.calls"),
    ("max", "s.max_exec_time"),
    ("rows", "s.rows"),
];

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The schema pg_stat_statements is installed in, or the error that says
/// exactly how to install it.
fn statements_schema(call: &mut Call) -> Result<(String, String), OpError> {
    let none = Array::new();
    let m = one(
        call,
        "select (select n.nspname from pg_extension e join pg_namespace n on n.oid = e.extnamespace
                 where e.extname = 'pg_stat_statements') as schema,
                current_setting('shared_preload_libraries') ~ '(^|[ ,])\"?pg_stat_statements\"?($|[ ,])' as preloaded,
                current_database() as db",
        &none,
        "looking for pg_stat_statements failed",
    )?;
    let preloaded = m.get("preloaded").and_then(|v| v.as_bool().ok()) == Some(true);
    let db = m.get("db").map(|d| d.to_string()).unwrap_or_default();
    match m.get("schema").filter(|s| s.is_string()) {
        Some(s) if preloaded => Ok((s.to_string(), db)),
        Some(_) => Err(not_loaded(&db)),
        None if preloaded => Err(OpError::failed(format!(
            "the pg_stat_statements extension is not installed in database `{db}`"
        ))
        .with_hint(format!(
            "the library is loaded; install the extension once, as a superuser: psql -d {db} -c 'create extension pg_stat_statements;'"
        ))),
        None => Err(OpError::failed(format!(
            "the pg_stat_statements extension is not installed in database `{db}`, and the server does not load it"
        ))
        .with_hint(format!(
            "add `shared_preload_libraries = 'pg_stat_statements'` to postgresql.conf (keep any libraries already listed), restart PostgreSQL, then as a superuser: psql -d {db} -c 'create extension pg_stat_statements;'"
        ))),
    }
}

fn not_loaded(db: &str) -> OpError {
    OpError::failed(format!(
        "pg_stat_statements is installed in database `{db}` but the server does not load its library"
    ))
    .with_hint(
        "add `shared_preload_libraries = 'pg_stat_statements'` to postgresql.conf (keep any libraries already listed) and restart PostgreSQL",
    )
}

pub const SLOW_QUERIES: Primitive = Primitive::read("slow_queries", slow_queries)
    .params(&[opt(
        "opts",
        Ty::Record(&[
            field("limit", Ty::Int).doc("default 10"),
            field("order_by", Ty::Str)
                .doc("\"mean\" (default), \"total\", \"calls\", \"max\" or \"rows\""),
            field("database", Ty::Str).doc("keep one database"),
        ]),
    )])
    .returns(Ty::Rows(&[
        field("queryid", Ty::Int),
        field("user", Ty::Str),
        field("database", Ty::Str),
        field("calls", Ty::Int),
        field("total_ms", Ty::Float),
        field("mean_ms", Ty::Float),
        field("min_ms", Ty::Float),
        field("max_ms", Ty::Float),
        field("stddev_ms", Ty::Float),
        field("rows", Ty::Int),
        field("cache_hit_pct", Ty::Float).doc("() before any block was read"),
        field("query", Ty::Str).doc("whitespace collapsed, the first 300 characters"),
    ]))
    .doc(
        "The costliest statements from pg_stat_statements.\n\
          When the extension is missing the error says exactly how to install it.",
    )
    .example(r#"show(pg.slow_queries(#{limit: 5, order_by: "total"}))"#);

fn slow_queries(call: &mut Call) -> Result<Dynamic, OpError> {
    let opts = call.opts("opts")?;
    let limit = opts.int("limit")?.unwrap_or(10);
    let order = opts.str("order_by")?.unwrap_or_else(|| "mean".into());
    let col = ORDERS
        .iter()
        .find(|(k, _)| *k == order)
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            OpError::bad_input(format!("order_by must be one of {}, got \"{order}\"", {
                ORDERS
                    .iter()
                    .map(|(k, _)| format!("\"{k}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            }))
        })?;
    let database = opts.str("database")?;
    let (schema, db) = statements_schema(call)?;
    let sql = format!(
        r#"select s.queryid, r.rolname as "user", d.datname as database, s.calls,
                  round(s.total_exec_time::numeric, 3)::float8 as total_ms,
                  round(s.mean_exec_time::numeric, 3)::float8 as mean_ms,
                  round(s.min_exec_time::numeric, 3)::float8 as min_ms,
                  round(s.max_exec_time::numeric, 3)::float8 as max_ms,
                  round(s.stddev_exec_time::numeric, 3)::float8 as stddev_ms,
                  s.rows,
                  round(100.0 * s.shared_blks_hit / nullif(s.shared_blks_hit + s.shared_blks_read, 0), 2)::float8 as cache_hit_pct,
                  left(regexp_replace(s.query, '\s+', ' ', 'g'), 300) as query
           from {}.pg_stat_statements s
           left join pg_roles r on r.oid = s.userid
           left join pg_database d on d.oid = s.dbid
           where $2::text is null or d.datname = $2::text
           order by {col} desc nulls last
           limit $1"#,
        quote_ident(&schema)
    );
    let params: Array = vec![
        Dynamic::from_int(limit),
        database.map(Dynamic::from).unwrap_or(Dynamic::UNIT),
    ];
    match rows(call, &sql, &params, "reading pg_stat_statements failed") {
        Ok(r) => Ok(rows_to_array(r)),
        // The extension exists but its library is not loaded (55000).
        Err(e)
            if e.cause
                .as_deref()
                .is_some_and(|c| c.contains("SQLSTATE 55000")) =>
        {
            Err(not_loaded(&db).with_cause(e.cause.unwrap_or_default()))
        }
        Err(e) => Err(e),
    }
}

pub const CACHE_HIT_RATIO: Primitive = Primitive::read("cache_hit_ratio", cache_hit_ratio)
    .returns(Ty::Record(&[
        field("database", Ty::Float).doc("pg_stat_database, 0 to 1; () before any read"),
        field("tables", Ty::Float).doc("user tables, 0 to 1; () before any read"),
        field("indexes", Ty::Float).doc("user indexes, 0 to 1; () before any read"),
        field("blks_hit", Ty::Int),
        field("blks_read", Ty::Int),
    ]))
    .doc("Buffer cache hit ratios of the connected database.")
    .example("let r = pg.cache_hit_ratio(); if r.database != () && r.database < 0.99 { print(`cache hit ${r.database}`) }");

fn cache_hit_ratio(call: &mut Call) -> Result<Dynamic, OpError> {
    let m = one(
        call,
        "select
           (select round(blks_hit::numeric / nullif(blks_hit + blks_read, 0), 4)::float8
              from pg_stat_database where datname = current_database()) as database,
           (select round(sum(heap_blks_hit)::numeric / nullif(sum(heap_blks_hit + heap_blks_read), 0), 4)::float8
              from pg_statio_user_tables) as tables,
           (select round(sum(idx_blks_hit)::numeric / nullif(sum(idx_blks_hit + idx_blks_read), 0), 4)::float8
              from pg_statio_user_indexes) as indexes,
           (select blks_hit from pg_stat_database where datname = current_database()) as blks_hit,
           (select blks_read from pg_stat_database where datname = current_database()) as blks_read",
        &Array::new(),
        "reading cache statistics failed",
    )?;
    Ok(Dynamic::from_map(m))
}

pub const INDEX_USAGE: Primitive = Primitive::read("index_usage", index_usage)
    .params(&[opt(
        "opts",
        Ty::Record(&[field("schema", Ty::Str), field("unused_only", Ty::Bool)]),
    )])
    .returns(Ty::Rows(&[
        field("schema", Ty::Str),
        field("table", Ty::Str),
        field("index", Ty::Str),
        field("scans", Ty::Int),
        field("tuples_read", Ty::Int),
        field("tuples_fetched", Ty::Int),
        field("bytes", Ty::Int),
        field("size", Ty::Str),
        field("is_unique", Ty::Bool),
        field("is_primary", Ty::Bool),
        field("unused", Ty::Bool)
            .doc("never scanned since the statistics were reset, and enforcing no constraint"),
    ]))
    .doc("Index scans per index, unused first.")
    .example("show(pg.index_usage(#{unused_only: true}))");

fn index_usage(call: &mut Call) -> Result<Dynamic, OpError> {
    let opts = call.opts("opts")?;
    let params: Array = vec![
        opts.str("schema")?
            .map(Dynamic::from)
            .unwrap_or(Dynamic::UNIT),
        Dynamic::from_bool(opts.bool("unused_only")?),
    ];
    let r = rows(
        call,
        r#"select * from (
             select s.schemaname as schema, s.relname as table, s.indexrelname as index,
                    s.idx_scan as scans, s.idx_tup_read as tuples_read, s.idx_tup_fetch as tuples_fetched,
                    pg_relation_size(s.indexrelid) as bytes, pg_size_pretty(pg_relation_size(s.indexrelid)) as size,
                    i.indisunique as is_unique, i.indisprimary as is_primary,
                    (s.idx_scan = 0 and not i.indisunique and not i.indisprimary) as unused
             from pg_stat_user_indexes s join pg_index i on i.indexrelid = s.indexrelid
             where $1::text is null or s.schemaname = $1::text
           ) x
           where not $2::bool or x.unused
           order by x.unused desc, x.scans, x.bytes desc, 1, 2, 3"#,
        &params,
        "reading index statistics failed",
    )?;
    Ok(rows_to_array(r))
}

pub const VACUUM_STATS: Primitive = Primitive::read("vacuum_stats", vacuum_stats)
    .params(&[opt(
        "opts",
        Ty::Record(&[
            field("schema", Ty::Str),
            field("limit", Ty::Int).doc("default 50"),
        ]),
    )])
    .returns(Ty::Rows(&[
        field("schema", Ty::Str),
        field("table", Ty::Str),
        field("live_tuples", Ty::Int),
        field("dead_tuples", Ty::Int),
        field("dead_pct", Ty::Float).doc("() for an empty table"),
        field("modified_since_analyze", Ty::Int),
        field("last_vacuum", Ty::Str).doc("RFC 3339; () if never"),
        field("last_autovacuum", Ty::Str),
        field("last_analyze", Ty::Str),
        field("last_autoanalyze", Ty::Str),
        field("vacuum_count", Ty::Int),
        field("autovacuum_count", Ty::Int),
        field("analyze_count", Ty::Int),
        field("autoanalyze_count", Ty::Int),
    ]))
    .doc("Per table, most dead tuples first.")
    .example("for t in pg.vacuum_stats(#{limit: 5}) { if t.dead_pct > 20.0 { print(t.table) } }");

fn vacuum_stats(call: &mut Call) -> Result<Dynamic, OpError> {
    let opts = call.opts("opts")?;
    let params: Array = vec![
        opts.str("schema")?
            .map(Dynamic::from)
            .unwrap_or(Dynamic::UNIT),
        Dynamic::from_int(opts.int("limit")?.unwrap_or(50)),
    ];
    let r = rows(
        call,
        "select schemaname as schema, relname as table,
                n_live_tup as live_tuples, n_dead_tup as dead_tuples,
                round(100.0 * n_dead_tup / nullif(n_live_tup + n_dead_tup, 0), 2)::float8 as dead_pct,
                n_mod_since_analyze as modified_since_analyze,
                last_vacuum, last_autovacuum, last_analyze, last_autoanalyze,
                vacuum_count, autovacuum_count, analyze_count, autoanalyze_count
         from pg_stat_user_tables
         where $1::text is null or schemaname = $1::text
         order by n_dead_tup desc, 1, 2
         limit $2",
        &params,
        "reading vacuum statistics failed",
    )?;
    Ok(rows_to_array(r))
}

pub const REPLICATION: Primitive = Primitive::read("replication", replication)
    .returns(Ty::Record(&[
        field("in_recovery", Ty::Bool).doc("true on a standby"),
        field("current_lsn", Ty::Str),
        field("replicas", Ty::Rows(&[
            field("application", Ty::Str),
            field("client_addr", Ty::Str),
            field("state", Ty::Str),
            field("sync_state", Ty::Str),
            field("sent_lsn", Ty::Str),
            field("replay_lsn", Ty::Str),
            field("lag_bytes", Ty::Int),
            field("replay_lag_s", Ty::Float).doc("seconds; () when idle"),
            field("write_lag_s", Ty::Float),
            field("flush_lag_s", Ty::Float),
        ])),
        field("slots", Ty::Rows(&[
            field("slot", Ty::Str),
            field("slot_type", Ty::Str),
            field("database", Ty::Str),
            field("active", Ty::Bool),
            field("retained_bytes", Ty::Int).doc("WAL the slot holds back"),
        ])),
        field("standby", Ty::Record(&[
            field("receive_lsn", Ty::Str),
            field("replay_lsn", Ty::Str),
            field("replay_lag_bytes", Ty::Int),
            field("replay_lag_s", Ty::Float).doc("seconds since the last replayed transaction"),
            field("receiver_status", Ty::Str),
            field("sender_host", Ty::Str),
        ])).doc("on a standby only; () on a primary"),
    ]))
    .doc("Replication state: the replicas of a primary, its slots, and on a standby its own replay.")
    .example("for r in pg.replication().replicas { if r.lag_bytes > 100000000 { print(`${r.application} lags`) } }");

fn replication(call: &mut Call) -> Result<Dynamic, OpError> {
    let none = Array::new();
    let mut m = one(
        call,
        "select pg_is_in_recovery() as in_recovery,
                case when pg_is_in_recovery() then pg_last_wal_receive_lsn() else pg_current_wal_lsn() end::text as current_lsn",
        &none,
        "reading replication state failed",
    )?;
    let lsn =
        "case when pg_is_in_recovery() then pg_last_wal_replay_lsn() else pg_current_wal_lsn() end";
    let replicas = rows(
        call,
        &format!(
            "select application_name as application, host(client_addr) as client_addr, state, sync_state,
                    sent_lsn::text as sent_lsn, replay_lsn::text as replay_lsn,
                    pg_wal_lsn_diff({lsn}, replay_lsn)::int8 as lag_bytes,
                    extract(epoch from replay_lag)::float8 as replay_lag_s,
                    extract(epoch from write_lag)::float8 as write_lag_s,
                    extract(epoch from flush_lag)::float8 as flush_lag_s
             from pg_stat_replication order by 1, 2"
        ),
        &none,
        "reading pg_stat_replication failed",
    )?;
    m.insert("replicas".into(), rows_to_array(replicas));
    let slots = rows(
        call,
        &format!(
            "select slot_name as slot, slot_type, database, active,
                    pg_wal_lsn_diff({lsn}, restart_lsn)::int8 as retained_bytes
             from pg_replication_slots order by 1"
        ),
        &none,
        "reading pg_replication_slots failed",
    )?;
    m.insert("slots".into(), rows_to_array(slots));
    let in_recovery = m.get("in_recovery").and_then(|v| v.as_bool().ok()) == Some(true);
    let standby = if in_recovery {
        let s = one(
            call,
            "select pg_last_wal_receive_lsn()::text as receive_lsn,
                    pg_last_wal_replay_lsn()::text as replay_lsn,
                    pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::int8 as replay_lag_bytes,
                    extract(epoch from clock_timestamp() - pg_last_xact_replay_timestamp())::float8 as replay_lag_s,
                    (select status from pg_stat_wal_receiver) as receiver_status,
                    (select sender_host from pg_stat_wal_receiver) as sender_host",
            &none,
            "reading standby state failed",
        )?;
        Dynamic::from_map(s)
    } else {
        Dynamic::UNIT
    };
    m.insert("standby".into(), standby);
    Ok(Dynamic::from_map(m))
}

pub const SETTINGS: Primitive = Primitive::read("settings", settings)
    .params(&[opt("names", STRINGS)])
    .returns(Ty::Rows(&[
        field("name", Ty::Str),
        field("setting", Ty::Any)
            .doc("an int, float or bool when the setting is one, else a string"),
        field("unit", Ty::Str),
        field("value", Ty::Str).doc("as SHOW prints it"),
        field("vartype", Ty::Str),
        field("source", Ty::Str),
        field("context", Ty::Str),
        field("pending_restart", Ty::Bool),
        field("description", Ty::Str),
    ]))
    .doc(
        "Server settings from pg_settings.\n\
          Without names: every setting. An unknown name is an error.",
    )
    .example(r#"let s = pg.settings(["max_connections", "work_mem"]); print(s[0].setting)"#);

fn settings(call: &mut Call) -> Result<Dynamic, OpError> {
    let names = call.strings("names")?;
    let params: Array = vec![names
        .clone()
        .map(|n| Dynamic::from_array(n.into_iter().map(Dynamic::from).collect()))
        .unwrap_or(Dynamic::UNIT)];
    let r = rows(
        call,
        "select name, setting, unit, current_setting(name) as value, vartype, source, context,
                pending_restart, short_desc as description
         from pg_settings where $1::text[] is null or name = any($1::text[]) order by name",
        &params,
        "reading settings failed",
    )?;
    if let Some(names) = names {
        for n in &names {
            if !r
                .iter()
                .any(|m| m.get("name").is_some_and(|v| v.to_string() == *n))
            {
                return Err(OpError::bad_input(format!("unknown setting `{n}`"))
                    .with_hint("list all settings with pg.settings()"));
            }
        }
    }
    // pg_settings.setting is text; make it a number or a bool when it is one.
    let typed = r
        .into_iter()
        .map(|mut m| {
            let ty = m.get("vartype").map(|v| v.to_string()).unwrap_or_default();
            let raw = m.get("setting").map(|v| v.to_string()).unwrap_or_default();
            let v = match ty.as_str() {
                "integer" => raw.parse::<i64>().map(Dynamic::from_int).ok(),
                "real" => raw.parse::<f64>().map(Dynamic::from_float).ok(),
                "bool" => Some(Dynamic::from_bool(raw == "on")),
                _ => None,
            };
            if let Some(v) = v {
                m.insert("setting".into(), v);
            }
            m
        })
        .collect();
    Ok(rows_to_array(typed))
}

pub const VERSION: Primitive = Primitive::read("version", version)
    .returns(Ty::Record(&[
        field("version", Ty::Str).doc("the full version() string"),
        field("server_version", Ty::Str),
        field("version_num", Ty::Int),
        field("in_recovery", Ty::Bool),
        field("uptime_s", Ty::Float),
        field("major", Ty::Int),
        field("minor", Ty::Int),
    ]))
    .doc("The server's version, recovery state and uptime.")
    .example("let v = pg.version(); if v.major < 14 { fail(v.server_version) }");

fn version(call: &mut Call) -> Result<Dynamic, OpError> {
    let mut m: Map = one(
        call,
        "select version() as version, current_setting('server_version') as server_version,
                current_setting('server_version_num')::int8 as version_num,
                pg_is_in_recovery() as in_recovery,
                round(extract(epoch from clock_timestamp() - pg_postmaster_start_time())::numeric, 1)::float8 as uptime_s",
        &Array::new(),
        "reading the server version failed",
    )?;
    let num = m
        .get("version_num")
        .and_then(|v| v.as_int().ok())
        .unwrap_or(0);
    for (k, v) in map_of([
        ("major", Dynamic::from_int(num / 10000)),
        ("minor", Dynamic::from_int(num % 10000)),
    ]) {
        m.insert(k, v);
    }
    Ok(Dynamic::from_map(m))
}
