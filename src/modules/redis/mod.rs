//! Redis, on the redis crate's multiplexed async connection: one per target.
//! The declarations live here; conn.rs talks to the server, info.rs reads
//! server state, keys.rs reads and changes keys.

mod cluster;
mod conn;
mod info;
mod keys;

use crate::registry::{opt, req, ModuleDecl, Primitive, Ty, STRINGS};
use conn::{connect, ping};
use info::*;
use keys::*;

pub use info::parse_info;

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "redis",
    doc: "Redis: health, INFO, cache health, clients and slowlog, keys by SCAN, guarded key mutations. Targets: [redis.NAME] in the config or REDIS_URL (redis://, rediss://, redis+sentinel://, redis+cluster:// for ping and info).",
    target: Some(crate::config::Kind::Redis),
    primitives: &[
        Primitive::handle("connect", connect, false)
            .params(&[req("target", Ty::Str)])
            .doc("Connect to a named target or a redis:// URL and return a handle with the same methods as `redis`.")
            .example(r#"let cache = redis.connect("cache"); cache.ping()"#),
        Primitive::read("ping", ping)
            .returns(Ty::Float)
            .doc("PING the server; returns the round trip in milliseconds.\n\
                  On a cluster target (redis+cluster://) every node found by CLUSTER NODES is pinged and the slowest round trip is returned; any node failing fails the call.")
            .example("let ms = redis.ping();"),
        Primitive::read("info", info)
            .params(&[opt("section", Ty::Str)])
            .returns(Ty::Map)
            .doc("INFO, parsed: numbers typed, `k=v,...` values (keyspace db0, cmdstat_*, slaveN) as nested maps.\n\
                  Without a section (or with \"all\"/\"everything\") the result is keyed by section name (server, clients, memory, ..., keyspace); with one section it is that section's fields. On a cluster target (redis+cluster://) the result is keyed by node address (host:port).")
            .example(r#"let mem = redis.info("memory"); mem.used_memory"#),
        Primitive::read("hit_rate", hit_rate)
            .returns(Ty::Map)
            .doc("Keyspace hits, misses and their ratio since the last stats reset.\n\
                  With no traffic yet the ratio is () and `note` says so, rather than a division by zero.")
            .example("let h = redis.hit_rate(); if h.ratio != () && h.ratio < 0.8 { print(`hit rate ${h.ratio}`) }"),
        Primitive::read("memory", memory)
            .returns(Ty::Map)
            .doc("Memory at a glance: used, peak, rss, fragmentation_ratio, maxmemory, policy, evicted_keys.")
            .example("let m = redis.memory(); m.used"),
        Primitive::read("keyspace", keyspace)
            .returns(Ty::Rows(&[]))
            .doc("One row per database with keys: #{db, keys, expires, avg_ttl}.")
            .example("show(redis.keyspace())"),
        Primitive::read("scan", scan)
            .params(&[opt("opts", Ty::Map)])
            .returns(Ty::Array)
            .doc("Key names by SCAN (never KEYS, which blocks the server).\n\
                  opts: pattern (glob, default \"*\"), type (string, hash, ...), count (SCAN hint, default 500), limit (stop after this many keys, default 10000).")
            .example(r#"let keys = redis.scan(#{pattern: "session:*", limit: 100});"#),
        Primitive::read("get", get)
            .params(&[req("key", Ty::Str)])
            .returns(Ty::Str)
            .doc("GET a string key; () when it does not exist.")
            .example(r#"redis.get("feature:flags")"#),
        Primitive::read("ttl", ttl)
            .params(&[req("key", Ty::Str)])
            .returns(Ty::Int)
            .doc("Seconds to live: -1 when the key has no expiry, -2 when it does not exist (as TTL).")
            .example(r#"redis.ttl("session:42")"#),
        Primitive::read("exists", exists)
            .params(&[req("key", Ty::Str)])
            .returns(Ty::Bool)
            .doc("Whether the key exists.")
            .example(r#"redis.exists("lock:nightly")"#),
        Primitive::read("type", key_type)
            .params(&[req("key", Ty::Str)])
            .returns(Ty::Str)
            .doc("The key's type (string, list, set, zset, hash, stream), or \"none\".")
            .example(r#"redis.type("queue:emails")"#),
        Primitive::mutate("set", plan_set, set)
            .params(&[req("key", Ty::Str), req("value", Ty::OneOf(&[Ty::Str, Ty::Int, Ty::Float])), opt("opts", Ty::Map)])
            .returns(Ty::Map)
            .doc("SET a key, optionally with #{ttl: \"10m\"}. Returns #{key, previous_type}.\n\
                  A mutation: --dry-run reports whether it would overwrite (and what), protected targets ask, it is audited.")
            .example(r#"redis.set("feature:new_checkout", "on", #{ttl: "1h"})"#),
        Primitive::mutate("del", plan_del, del)
            .params(&[req("keys", STRINGS)])
            .returns(Ty::Int)
            .doc("Delete one key or an array of keys (UNLINK); returns how many existed.")
            .example(r#"redis.del(["cache:a", "cache:b"])"#),
        Primitive::mutate("del_matching", plan_del_matching, del_matching)
            .params(&[req("pattern", Ty::Str), opt("opts", Ty::Map)])
            .returns(Ty::Map)
            .doc("Delete every key matching a glob, by SCAN and batched UNLINK. Returns #{deleted}.\n\
                  Refuses when more than `max` keys match (default 1000): raise it deliberately. --dry-run reports the count and a sample.")
            .example(r#"redis.del_matching("cache:user:*", #{max: 50000})"#),
        Primitive::mutate("flushdb", plan_flushdb, flushdb)
            .params(&[req("opts", Ty::Map)])
            .returns(Ty::Map)
            .doc("Empty one database, named explicitly: #{db: 3}. Returns #{db, deleted}. FLUSHALL is not offered.\n\
                  Runs on a connection opened for that db alone, so a reconnect cannot land it on another database. --dry-run reports the key count.")
            .example("redis.flushdb(#{db: 2})"),
        Primitive::read("clients", clients)
            .returns(Ty::Rows(&[]))
            .doc("CLIENT LIST, parsed: id, addr, name, age and idle in seconds, db, cmd, and the rest of each line's fields.")
            .example("let idle = redis.clients().filter(|c| c.idle > 600);"),
        Primitive::read("slowlog", slowlog)
            .params(&[opt("n", Ty::Int)])
            .returns(Ty::Rows(&[]))
            .doc("The last n (default 10) SLOWLOG entries: #{id, time, duration_us, command, client, client_name}.")
            .example("show(redis.slowlog(5))"),
        Primitive::read("latency", latency)
            .returns(Ty::Rows(&[]))
            .doc("LATENCY LATEST: #{event, time, latest_ms, max_ms} per event the latency monitor recorded (empty unless latency-monitor-threshold is set).")
            .example("show(redis.latency())"),
        Primitive::read("replication", replication)
            .returns(Ty::Map)
            .doc("INFO replication: role, connected replicas (each #{ip, port, state, offset, lag}) and, on a replica, the link to its master.")
            .example("redis.replication().role"),
        Primitive::read("config_get", config_get)
            .params(&[req("pattern", Ty::Str)])
            .returns(Ty::Map)
            .doc("CONFIG GET pattern as a map (numbers typed).")
            .example(r#"redis.config_get("maxmemory*")"#),
        Primitive::read("biggest", biggest)
            .params(&[opt("opts", Ty::Map)])
            .returns(Ty::Rows(&[]))
            .doc("The largest keys in a sample, by MEMORY USAGE: #{key, type, bytes}, largest first.\n\
                  opts: sample (keys to SCAN, default 1000), top (default 10), pattern. A sample, not a full scan: cheap on a busy server.")
            .example("show(redis.biggest(#{sample: 5000, top: 5}))"),
        Primitive::mutate("expire", plan_expire, expire)
            .params(&[req("key", Ty::Str), req("ttl", Ty::OneOf(&[Ty::Str, Ty::Int]))])
            .returns(Ty::Bool)
            .doc("Set a key's time to live (\"10m\" or seconds); false when the key does not exist.")
            .example(r#"redis.expire("session:42", "30m")"#),
        Primitive::mutate("config_set", plan_config_set, config_set)
            .params(&[req("name", Ty::Str), req("value", Ty::OneOf(&[Ty::Str, Ty::Int]))])
            .returns(Ty::Map)
            .doc("CONFIG SET one parameter; returns #{name, previous, value}. --dry-run shows the current value.")
            .example(r#"redis.config_set("maxmemory-policy", "allkeys-lru")"#),
    ],
};
