//! PostgreSQL, on sqlx: one small pool per target, reused for the run.
//! This file is the module's one declaration list; the code lives by
//! concern: conn (pool, timeouts, errors), sql (query/exec), filter (the
//! shared session filter), activity, sizes, stats, terminate, maintenance,
//! dump (pg.dump and pg.restore).

mod activity;
pub(crate) mod conn;
pub(crate) mod decode;
mod dump;
mod filter;
mod maintenance;
mod sizes;
mod sql;
mod stats;
mod terminate;

pub use decode::unix_to_rfc3339;

use crate::registry::{opt, req, ModuleDecl, Primitive, Ty, STRINGS};

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "pg",
    doc: "PostgreSQL (14 or later): queries, statements, health, sessions, sizes, maintenance. Targets come from [pg.NAME] in the config, DATABASE_URL or the PG* variables.",
    target: Some(crate::config::Kind::Pg),
    primitives: &[
        Primitive::handle("connect", sql::connect, false)
            .params(&[req("target", Ty::Str)])
            .doc("Connect to a named target or a postgres:// URL and return a handle with the same methods as `pg`.\n\
                  Connects at once, so a wrong password or an unreachable server fails on this line. TLS follows the URL's `sslmode` (disable, prefer, require, verify-ca, verify-full; `sslrootcert=/path/ca.pem` for a private CA).")
            .example(r#"let db = pg.connect("staging"); db.query("select 1 as one")"#),
        Primitive::read("ping", sql::ping)
            .returns(Ty::Float)
            .doc("Round-trip a trivial query; returns the latency in milliseconds.")
            .example("let ms = pg.ping();"),
        Primitive::read("query", sql::query)
            .params(&[req("sql", Ty::Str), opt("params", Ty::Array)])
            .returns(Ty::Rows(&[]))
            .doc("Run a query with bound parameters ($1, $2, ...) and return its rows as maps with typed values.\n\
                  ints and floats stay numbers, numeric without fraction is an int, timestamps are RFC 3339 strings, json/jsonb are maps, arrays are arrays. Cast a string parameter in SQL when its type matters (`$1::timestamptz`).")
            .example(r#"pg.query("select datname, pg_database_size(datname) as bytes from pg_database where datname = $1", ["postgres"])"#),
        Primitive::mutate("exec", sql::plan_exec, sql::exec)
            .params(&[req("sql", Ty::Str), opt("params", Ty::Array)])
            .returns(Ty::Map)
            .doc("Execute one statement (INSERT, UPDATE, DELETE, DDL) and return #{rows_affected}.\n\
                  A mutation: under --dry-run it runs EXPLAIN on the target instead and reports the planner's row estimate, changing nothing; on a protected target it asks for confirmation; it is audited.")
            .example(r#"pg.exec("update jobs set state = 'queued' where state = $1", ["stuck"])"#),
        Primitive::read("activity", activity::activity)
            .params(&[opt("filter", Ty::Map)])
            .returns(Ty::Rows(&[]))
            .doc("Sessions from pg_stat_activity: pid, user, database, application, client_addr, backend_type, state, durations in seconds (state_s: in the current state, query_s, xact_s, backend_s), wait_event_type, wait_event, query (first 300 characters), query_start, state_change, backend_start.\n\
                  Every backend type is listed (filter with `backend_type: \"client backend\"`), except the call's own. Oldest state first; `limit` caps the rows. The same filter as pg.terminate_idle, so this shows what a terminate would consider.\n\
                  Filter keys (all optional): `states` (or `state`): a state or a list (\"active\", \"idle\", \"idle in transaction\", ...); `older_than` (or `min`): in that state for longer than a duration (\"10m\" or seconds); `database`, `user`, `application`: a name or a list; `exclude_applications`: a list; `pids`: a list; `query_like`: an ILIKE pattern on the query text; `backend_type`; `limit`.")
            .example(r#"show(pg.activity(#{states: ["idle in transaction"], older_than: "1m"}))"#),
        Primitive::read("connections", activity::connections)
            .returns(Ty::Map)
            .doc("Client connections at a glance: total, active, idle, idle_in_transaction, max_connections, reserved (superuser and reserved slots), available, saturation_pct (total of max_connections minus reserved), by_state (map), by_database and by_user (arrays).")
            .example("let c = pg.connections(); if c.saturation_pct > 80.0 { fail(`${c.total} of ${c.max_connections} connections used`) }"),
        Primitive::read("long_running", activity::long_running)
            .params(&[opt("opts", Ty::Map)])
            .returns(Ty::Rows(&[]))
            .doc("Client sessions in a state for longer than `min` (default \"5m\"), state `active` by default; the same columns as pg.activity, longest first.\n\
                  Takes every filter key of pg.activity, e.g. #{min: \"30s\", state: \"idle in transaction\"}.")
            .example(r#"let slow = pg.long_running(#{min: "5m"}); show(slow)"#),
        Primitive::read("blocking", activity::blocking)
            .returns(Ty::Rows(&[]))
            .doc("Lock waits: who blocks whom (pg_blocking_pids), one row per (blocked, blocking) pair with lock_type, lock_mode, relation, wait_s, and both queries. Empty when nothing waits on a lock.")
            .example("for w in pg.blocking() { print(`${w.blocking_pid} blocks ${w.blocked_pid} for ${w.wait_s}s`) }"),
        Primitive::read("slow_queries", stats::slow_queries)
            .params(&[opt("opts", Ty::Map)])
            .returns(Ty::Rows(&[]))
            .doc("The costliest statements from pg_stat_statements: queryid, user, database, calls, total_ms, mean_ms, min_ms, max_ms, stddev_ms, rows, cache_hit_pct, query.\n\
                  Options: `limit` (default 10), `order_by`: \"mean\" (default), \"total\", \"calls\", \"max\" or \"rows\"; `database` to keep one database. When the extension is missing the error says exactly how to install it.")
            .example(r#"show(pg.slow_queries(#{limit: 5, order_by: "total"}))"#),
        Primitive::read("db_size", sizes::db_size)
            .params(&[opt("name", Ty::Str)])
            .returns(Ty::Map)
            .doc("Size of a database (default: the connected one): #{database, bytes, size}, bytes as pg_database_size reports it, size human-readable.")
            .example(r#"let gb = pg.db_size().bytes / 1073741824.0;"#),
        Primitive::read("databases", sizes::databases)
            .returns(Ty::Rows(&[]))
            .doc("Every database: database, owner, encoding, bytes, size, connections, allow_connections, is_template, xid_age (transaction-ID wraparound age). Largest first; sizes are () where you may not connect.")
            .example("show(pg.databases())"),
        Primitive::read("table_sizes", sizes::table_sizes)
            .params(&[opt("opts", Ty::Map)])
            .returns(Ty::Rows(&[]))
            .doc("Largest tables first: schema, table, total/table/index/toast sizes as raw bytes (total_bytes, ...) and human-readable (total_size, ...), estimated_rows.\n\
                  Options: `schema` (default: every non-system schema), `limit` (default 20).")
            .example(r#"show(pg.table_sizes(#{schema: "public", limit: 10}))"#),
        Primitive::read("vacuum_stats", stats::vacuum_stats)
            .params(&[opt("opts", Ty::Map)])
            .returns(Ty::Rows(&[]))
            .doc("Per table, most dead tuples first: live_tuples, dead_tuples, dead_pct, modified_since_analyze, last_vacuum, last_autovacuum, last_analyze, last_autoanalyze and their counts. Options: `schema`, `limit` (default 50).")
            .example("for t in pg.vacuum_stats(#{limit: 5}) { if t.dead_pct > 20.0 { print(t.table) } }"),
        Primitive::read("cache_hit_ratio", stats::cache_hit_ratio)
            .returns(Ty::Map)
            .doc("Buffer cache hit ratios (0 to 1; () before any read): database (pg_stat_database), tables and indexes (user relations), with blks_hit and blks_read.")
            .example("let r = pg.cache_hit_ratio(); if r.database != () && r.database < 0.99 { print(`cache hit ${r.database}`) }"),
        Primitive::read("index_usage", stats::index_usage)
            .params(&[opt("opts", Ty::Map)])
            .returns(Ty::Rows(&[]))
            .doc("Index scans per index: schema, table, index, scans, tuples_read, tuples_fetched, bytes, size, is_unique, is_primary, unused (never scanned since the statistics were reset, and enforcing no constraint). Unused first.\n\
                  Options: `schema`, `unused_only: true`.")
            .example("show(pg.index_usage(#{unused_only: true}))"),
        Primitive::read("replication", stats::replication)
            .returns(Ty::Map)
            .doc("Replication state: in_recovery, current_lsn, replicas (application, client_addr, state, sync_state, lag_bytes, replay/write/flush lag in seconds), slots (retained_bytes), and on a standby `standby` (receive/replay lsn, replay_lag_s, receiver_status).")
            .example("for r in pg.replication().replicas { if r.lag_bytes > 100000000 { print(`${r.application} lags`) } }"),
        Primitive::read("settings", stats::settings)
            .params(&[opt("names", STRINGS)])
            .returns(Ty::Rows(&[]))
            .doc("Server settings from pg_settings: name, setting (an int, float or bool when the setting is one), unit, value (as SHOW prints it), vartype, source, context, pending_restart, description.\n\
                  Without names: every setting. An unknown name is an error.")
            .example(r#"let s = pg.settings(["max_connections", "work_mem"]); print(s[0].setting)"#),
        Primitive::read("version", stats::version)
            .returns(Ty::Map)
            .doc("The server: version (full string), server_version, version_num, major, minor, in_recovery, uptime_s.")
            .example("let v = pg.version(); if v.major < 14 { fail(v.server_version) }"),
        Primitive::mutate("terminate_idle", terminate::plan_terminate_idle, terminate::terminate_idle)
            .params(&[opt("opts", Ty::Map)])
            .returns(Ty::Map)
            .doc("Terminate idle client sessions (default: state idle or idle in transaction for more than 10 minutes) and return #{count, sessions, skipped}.\n\
                  Only ever client backends: never opsh's own connections (application \"opsh\"), never autovacuum, walsenders or background workers, never superuser sessions unless `include_superusers: true`. Refused when more than `max` sessions match (default `[defaults] pg_max_terminate`, else 50). Uses pg_terminate_backend(pid, timeout) with `wait` (default \"5s\"), re-applies the filter to each session at the moment it acts (a session that became active is skipped), and checks each one is gone. --dry-run returns the same sessions and terminates nothing.\n\
                  See pg.activity for the filter keys.")
            .example(r#"let r = pg.terminate_idle(#{older_than: "10m", database: "app", exclude_applications: ["pgbouncer"], max: 20}); print(r.count)"#),
        Primitive::mutate("terminate", terminate::plan_terminate, terminate::terminate)
            .params(&[opt("opts", Ty::Map)])
            .returns(Ty::Map)
            .doc("Terminate the sessions of long-running queries (default: state active for more than 5 minutes); the same filter, guards, `max`, `wait` and result as pg.terminate_idle.")
            .example(r#"pg.terminate(#{older_than: "5m", user: "reporting"})"#),
        Primitive::mutate("cancel", terminate::plan_cancel, terminate::cancel)
            .params(&[opt("opts", Ty::Map)])
            .returns(Ty::Map)
            .doc("Cancel long-running queries (pg_cancel_backend; the sessions stay connected). Default: active for more than 5 minutes; the same filter, guards and `max` as pg.terminate_idle. Checks that each query stopped within `wait` (default \"5s\").")
            .example(r#"pg.cancel(#{older_than: "5m", query_like: "%report%"})"#),
        Primitive::mutate("vacuum_analyze", maintenance::plan_vacuum_analyze, maintenance::vacuum_analyze)
            .params(&[opt("table", Ty::Str)])
            .returns(Ty::Map)
            .doc("VACUUM (ANALYZE) one table (schema.table, resolved and quoted by the server) or, without a name, the whole database. Returns #{table, duration_ms}; --dry-run reports the table's size and dead tuples.")
            .example(r#"pg.vacuum_analyze("public.jobs")"#),
        Primitive::mutate("reindex", maintenance::plan_reindex, maintenance::reindex)
            .params(&[req("opts", Ty::Map)])
            .returns(Ty::Map)
            .doc("REINDEX exactly one of #{table}, #{index} or #{database} (the connected one), with `concurrently: true` to avoid blocking writes. Returns #{statement, indexes, bytes_before, bytes_after, duration_ms}; --dry-run reports the statement and the indexes' current size.")
            .example(r#"pg.reindex(#{index: "jobs_state_idx", concurrently: true})"#),
        Primitive::mutate("dump", dump::plan_dump, dump::dump)
            .params(&[req("target", Ty::Str).target(), req("path", Ty::Str), opt("opts", Ty::Map)])
            .returns(Ty::Map)
            .doc("pg_dump a target's database to `path` and write the `PATH.sha256` sidecar; returns #{path, format, database, tables, bytes, size, duration_ms, sha256, sidecar}.\n\
                  Options: `format`: \"custom\" (default), \"directory\", \"tar\" or \"plain\"; `schema`: a schema or a list (seed runbooks back up per schema); `jobs`: parallel dump (directory format only); `overwrite: true` to replace an existing path (refused otherwise). pg_dump comes from the PostgreSQL bin directory (OPSH_PG_BINDIR, the newest /usr/lib/postgresql/N/bin, or PATH); the password reaches it only through PGPASSWORD. A failed dump leaves no partial file.\n\
                  A mutation (it writes files): --dry-run says what it would write, from the database's real size and tables; it is audited; on a protected target it asks first. No per-call timeout: a dump takes as long as it takes (the run timeout and Ctrl-C still end it).")
            .example(r#"let d = pg.dump("staging", "/backups/app.dump", #{format: "custom"}); print(`${d.size} in ${d.duration_ms} ms`)"#)
            .unbounded(),
        Primitive::mutate("restore", dump::plan_restore, dump::restore)
            .params(&[req("path", Ty::Str), req("target", Ty::Str).target(), opt("opts", Ty::Map)])
            .returns(Ty::Map)
            .doc("Restore a dump into an existing database on a target: pg_restore --exit-on-error for archives, psql ON_ERROR_STOP for plain SQL (gzip/zstd too); stops at the first error. Returns #{path, format, database, tables, duration_ms}.\n\
                  Options: `database` (default: the target's), `clean: true` (drop existing objects first), `jobs`, `schema`, `data_only`, `single_transaction`, `owners: true` (keep ownership and grants; by default --no-owner --no-acl). A dump that switches database (\\connect, pg_dump --create) is refused.\n\
                  A guarded mutation: --dry-run reads the archive's table of contents and the database and says what would be restored where and which tables exist already; confirmation on protected targets; audited. No per-call timeout.")
            .example(r#"pg.restore("/backups/app.dump", "staging", #{database: "app_restored", clean: true})"#)
            .unbounded(),
    ],
};
