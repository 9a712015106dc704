//! Redis: plain targets on a connection the calling thread drives (direct.rs), the rest on the redis crate's multiplexed async connection.
//! conn.rs talks to the server, info.rs reads server state, keys.rs reads
//! and changes keys, cluster.rs fans ping and info out over a cluster.

mod cluster;
mod conn;
mod direct;
pub(crate) use conn::prewarm;
pub(crate) mod info;
mod keys;

use crate::registry::ModuleDecl;

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "redis",
    doc: "Redis: health, INFO, cache health, clients and slowlog, keys by SCAN, guarded key mutations. Targets: [redis.NAME] in the config or REDIS_URL (redis://, rediss://, redis+sentinel://, redis+cluster:// for ping and info).",
    target: Some(crate::config::Kind::Redis),
    primitives: &[
        conn::CONNECT,
        conn::PING,
        info::INFO,
        info::HIT_RATE,
        info::MEMORY,
        info::KEYSPACE,
        info::DBSIZE,
        keys::SCAN,
        keys::GET,
        keys::TTL,
        keys::EXISTS,
        keys::TYPE,
        keys::SET,
        keys::DEL,
        keys::DEL_MATCHING,
        keys::FLUSHDB,
        info::CLIENTS,
        info::SLOWLOG,
        info::LATENCY,
        info::REPLICATION,
        info::CONFIG_GET,
        keys::BIGGEST,
        keys::EXPIRE,
        info::CONFIG_SET,
    ],
};
