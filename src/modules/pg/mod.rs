//! PostgreSQL, on sqlx: one small pool per target, reused for the run.
//! This file lists the module's primitives; each is declared beside its
//! function, by concern: conn (pool, timeouts, errors), sql (query/exec),
//! filter (the shared session filter), activity, sizes, stats, terminate,
//! maintenance, dump (pg.dump and pg.restore).

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

use crate::registry::ModuleDecl;

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "pg",
    doc: "PostgreSQL (14 or later): queries, statements, health, sessions, sizes, maintenance. Targets come from [pg.NAME] in the config, DATABASE_URL or the PG* variables.",
    target: Some(crate::config::Kind::Pg),
    primitives: &[
        sql::CONNECT,
        sql::PING,
        sql::QUERY,
        sql::EXEC,
        activity::ACTIVITY,
        activity::CONNECTIONS,
        activity::LONG_RUNNING,
        activity::BLOCKING,
        stats::SLOW_QUERIES,
        sizes::DB_SIZE,
        sizes::DATABASES,
        sizes::TABLE_SIZES,
        stats::VACUUM_STATS,
        stats::CACHE_HIT_RATIO,
        stats::INDEX_USAGE,
        stats::REPLICATION,
        stats::SETTINGS,
        stats::VERSION,
        terminate::TERMINATE_IDLE,
        terminate::TERMINATE,
        terminate::CANCEL,
        maintenance::VACUUM_ANALYZE,
        maintenance::REINDEX,
        dump::DUMP,
        dump::RESTORE,
    ],
};
