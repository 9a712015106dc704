//! Redis, on the redis crate's multiplexed async connection: one per target.

use crate::config::Target;
use crate::dispatch::{Call, ErrorKind, OpError, Plan};
use crate::engine::Handle;
use crate::registry::{opt, req, CallTimeout, Effect, ModuleDecl, Primitive};
use crate::value::map_of;
use rhai::{Dynamic, Map};
use std::time::{Duration, Instant};

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "redis",
    doc: "Redis: health and INFO. Targets come from [redis.NAME] in the config or REDIS_URL.",
    target: Some(crate::config::Kind::Redis),
    primitives: &[
        Primitive {
            module: "redis",
            name: "connect",
            params: &[req("target", "string")],
            returns: "redis handle",
            doc: "Connect to a named target or a redis:// URL and return a handle with the same methods as `redis`.",
            example: r#"let cache = redis.connect("cache"); cache.ping()"#,
            effect: Effect::Read(connect),
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "redis",
            name: "ping",
            params: &[],
            returns: "float",
            doc: "PING the server; returns the round trip in milliseconds.",
            example: "let ms = redis.ping();",
            effect: Effect::Read(ping),
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "redis",
            name: "info",
            params: &[opt("section", "string")],
            returns: "map",
            doc: "INFO, parsed: numbers typed, `k=v,...` values (keyspace db0, cmdstat_*, slaveN) as nested maps.\n\
                  Without a section (or with \"all\"/\"everything\") the result is keyed by section name (server, clients, memory, ..., keyspace); with one section it is that section's fields.",
            example: r#"let mem = redis.info("memory"); mem.used_memory"#,
            effect: Effect::Read(info),
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "redis",
            name: "hit_rate",
            params: &[],
            returns: "map",
            doc: "Keyspace hits, misses and their ratio since the last stats reset.\n\
                  With no traffic yet the ratio is () and `note` says so, rather than a division by zero.",
            example: "let h = redis.hit_rate(); if h.ratio != () && h.ratio < 0.8 { print(`hit rate ${h.ratio}`) }",
            effect: Effect::Read(hit_rate),
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "redis",
            name: "memory",
            params: &[],
            returns: "map",
            doc: "Memory at a glance: used, peak, rss, fragmentation_ratio, maxmemory, policy, evicted_keys.",
            example: "let m = redis.memory(); m.used",
            effect: Effect::Read(memory),
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "redis",
            name: "keyspace",
            params: &[],
            returns: "array of maps",
            doc: "One row per database with keys: #{db, keys, expires, avg_ttl}.",
            example: "show(redis.keyspace())",
            effect: Effect::Read(keyspace),
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "redis",
            name: "scan",
            params: &[opt("opts", "map")],
            returns: "array",
            doc: "Key names by SCAN (never KEYS, which blocks the server).\n\
                  opts: pattern (glob, default \"*\"), type (string, hash, ...), count (SCAN hint, default 500), limit (stop after this many keys, default 10000).",
            example: r#"let keys = redis.scan(#{pattern: "session:*", limit: 100});"#,
            effect: Effect::Read(scan),
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "redis",
            name: "get",
            params: &[req("key", "string")],
            returns: "string",
            doc: "GET a string key; () when it does not exist.",
            example: r#"redis.get("feature:flags")"#,
            effect: Effect::Read(get),
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "redis",
            name: "ttl",
            params: &[req("key", "string")],
            returns: "int",
            doc: "Seconds to live: -1 when the key has no expiry, -2 when it does not exist (as TTL).",
            example: r#"redis.ttl("session:42")"#,
            effect: Effect::Read(ttl),
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "redis",
            name: "exists",
            params: &[req("key", "string")],
            returns: "bool",
            doc: "Whether the key exists.",
            example: r#"redis.exists("lock:nightly")"#,
            effect: Effect::Read(exists),
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "redis",
            name: "type",
            params: &[req("key", "string")],
            returns: "string",
            doc: "The key's type (string, list, set, zset, hash, stream), or \"none\".",
            example: r#"redis.type("queue:emails")"#,
            effect: Effect::Read(key_type),
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "redis",
            name: "set",
            params: &[req("key", "string"), req("value", "string|int|float"), opt("opts", "map")],
            returns: "map",
            doc: "SET a key, optionally with #{ttl: \"10m\"}. Returns #{key, previous_type}.\n\
                  A mutation: --dry-run reports whether it would overwrite (and what), protected targets ask, it is audited.",
            example: r#"redis.set("feature:new_checkout", "on", #{ttl: "1h"})"#,
            effect: Effect::Mutate { plan: plan_set, apply: set },
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "redis",
            name: "del",
            params: &[req("keys", "string|array")],
            returns: "int",
            doc: "Delete one key or an array of keys (UNLINK); returns how many existed.",
            example: r#"redis.del(["cache:a", "cache:b"])"#,
            effect: Effect::Mutate { plan: plan_del, apply: del },
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "redis",
            name: "del_matching",
            params: &[req("pattern", "string"), opt("opts", "map")],
            returns: "map",
            doc: "Delete every key matching a glob, by SCAN and batched UNLINK. Returns #{deleted}.\n\
                  Refuses when more than `max` keys match (default 1000): raise it deliberately. --dry-run reports the count and a sample.",
            example: r#"redis.del_matching("cache:user:*", #{max: 50000})"#,
            effect: Effect::Mutate { plan: plan_del_matching, apply: del_matching },
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "redis",
            name: "flushdb",
            params: &[req("opts", "map")],
            returns: "map",
            doc: "Empty one database, named explicitly: #{db: 3}. Returns #{db, deleted}. FLUSHALL is not offered.\n\
                  Runs on a connection opened for that db alone, so a reconnect cannot land it on another database. --dry-run reports the key count.",
            example: "redis.flushdb(#{db: 2})",
            effect: Effect::Mutate { plan: plan_flushdb, apply: flushdb },
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "redis",
            name: "clients",
            params: &[],
            returns: "array of maps",
            doc: "CLIENT LIST, parsed: id, addr, name, age and idle in seconds, db, cmd, and the rest of each line's fields.",
            example: "let idle = redis.clients().filter(|c| c.idle > 600);",
            effect: Effect::Read(clients),
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "redis",
            name: "slowlog",
            params: &[opt("n", "int")],
            returns: "array of maps",
            doc: "The last n (default 10) SLOWLOG entries: #{id, time, duration_us, command, client, client_name}.",
            example: "show(redis.slowlog(5))",
            effect: Effect::Read(slowlog),
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "redis",
            name: "latency",
            params: &[],
            returns: "array of maps",
            doc: "LATENCY LATEST: #{event, time, latest_ms, max_ms} per event the latency monitor recorded (empty unless latency-monitor-threshold is set).",
            example: "show(redis.latency())",
            effect: Effect::Read(latency),
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "redis",
            name: "replication",
            params: &[],
            returns: "map",
            doc: "INFO replication: role, connected replicas (each #{ip, port, state, offset, lag}) and, on a replica, the link to its master.",
            example: "redis.replication().role",
            effect: Effect::Read(replication),
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "redis",
            name: "config_get",
            params: &[req("pattern", "string")],
            returns: "map",
            doc: "CONFIG GET pattern as a map (numbers typed).",
            example: r#"redis.config_get("maxmemory*")"#,
            effect: Effect::Read(config_get),
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "redis",
            name: "biggest",
            params: &[opt("opts", "map")],
            returns: "array of maps",
            doc: "The largest keys in a sample, by MEMORY USAGE: #{key, type, bytes}, largest first.\n\
                  opts: sample (keys to SCAN, default 1000), top (default 10), pattern. A sample, not a full scan: cheap on a busy server.",
            example: "show(redis.biggest(#{sample: 5000, top: 5}))",
            effect: Effect::Read(biggest),
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "redis",
            name: "expire",
            params: &[req("key", "string"), req("ttl", "string|int")],
            returns: "bool",
            doc: "Set a key's time to live (\"10m\" or seconds); false when the key does not exist.",
            example: r#"redis.expire("session:42", "30m")"#,
            effect: Effect::Mutate { plan: plan_expire, apply: expire },
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "redis",
            name: "config_set",
            params: &[req("name", "string"), req("value", "string|int")],
            returns: "map",
            doc: "CONFIG SET one parameter; returns #{name, previous, value}. --dry-run shows the current value.",
            example: r#"redis.config_set("maxmemory-policy", "allkeys-lru")"#,
            effect: Effect::Mutate { plan: plan_config_set, apply: config_set },
            timeout: CallTimeout::Default,
        },
    ],
};

fn redis_error(e: redis::RedisError, t: &Target, what: &str) -> OpError {
    let cause = crate::redact::redact(&e.to_string());
    if e.is_timeout() {
        return OpError::new(
            ErrorKind::Timeout,
            format!("{what}: {} did not answer in time", t.display()),
        )
        .with_cause(cause)
        .with_hint(format!(
            "is Redis on {} overloaded or blocked (a long command, a BGSAVE fork)?",
            t.host_port(6379)
        ));
    }
    if e.is_connection_refusal() || e.is_io_error() {
        return OpError::failed(format!("cannot talk to {}", t.display()))
            .with_cause(cause)
            .with_hint(format!("is Redis running on {}?", t.host_port(6379)));
    }
    let auth = matches!(e.kind(), redis::ErrorKind::AuthenticationFailed)
        || matches!(
            e.code(),
            Some("WRONGPASS") | Some("NOAUTH") | Some("NOPERM")
        );
    let err = OpError::failed(format!("{what} on {}", t.name)).with_cause(cause);
    if auth {
        err.with_hint(format!(
            "check the user and password for {} (password_env / password_file in the config)",
            t.name
        ))
    } else {
        err
    }
}

fn conn(call: &mut Call) -> Result<(redis::aio::MultiplexedConnection, Target), OpError> {
    let t = call.target()?;
    let call: &Call = call;
    let c = call
        .session
        .client::<redis::aio::MultiplexedConnection>(&t.url, || {
            let client = redis::Client::open(t.url.as_str()).map_err(|e| {
                OpError::bad_input(format!("invalid Redis URL for {}", t.display()))
                    .with_cause(crate::redact::redact(&e.to_string()))
            })?;
            let cfg = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(10)))
                .set_response_timeout(Some(call.session.call_timeout));
            call.block_on(async {
                client
                    .get_multiplexed_async_connection_with_config(&cfg)
                    .await
                    .map_err(|e| redis_error(e, &t, "connect"))
            })
        })?;
    Ok((c, t))
}

fn connect(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = call.str_arg(0)?;
    let t = call
        .session
        .resolve(crate::config::Kind::Redis, Some(&name))?;
    call.set_target(t);
    conn(call)?;
    Ok(Dynamic::from(Handle {
        module: "redis",
        target: Some(name),
    }))
}

fn ping(call: &mut Call) -> Result<Dynamic, OpError> {
    let (mut c, t) = conn(call)?;
    let r = call.block_on(async move {
        let started = Instant::now();
        let _: String = redis::cmd("PING")
            .query_async(&mut c)
            .await
            .map_err(|e| redis_error(e, &t, "PING"))?;
        Ok(Dynamic::from_float(
            (started.elapsed().as_secs_f64() * 1e4).round() / 10.0,
        ))
    });
    forget_on_io(call, &r);
    r
}

/// A broken connection is not reused: the next call reconnects.
fn forget_on_io<T>(call: &mut Call, r: &Result<T, OpError>) {
    if r.is_err() {
        if let Ok(t) = call.target() {
            call.session
                .drop_client::<redis::aio::MultiplexedConnection>(&t.url);
        }
    }
}

fn info(call: &mut Call) -> Result<Dynamic, OpError> {
    let section = call.opt_str(0)?;
    let (mut c, t) = conn(call)?;
    let sec = section.clone();
    let r = call.block_on(async move {
        let mut cmd = redis::cmd("INFO");
        if let Some(s) = &sec {
            cmd.arg(s);
        }
        let text: String = cmd
            .query_async(&mut c)
            .await
            .map_err(|e| redis_error(e, &t, "INFO"))?;
        Ok(text)
    });
    forget_on_io(call, &r);
    let sections = parse_info(&r?);
    Ok(Dynamic::from_map(
        match section.map(|s| s.to_ascii_lowercase()) {
            Some(s) if !matches!(s.as_str(), "all" | "everything" | "default") => sections
                .get(s.as_str())
                .and_then(|m| m.clone().try_cast::<Map>())
                .unwrap_or_default(),
            _ => sections,
        },
    ))
}

fn scalar(v: &str) -> Dynamic {
    let numeric_looking = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | '+'));
    // Leading zeros mark an identifier (a sha, a run id), not a number.
    let id_like = v.len() > 1 && v.starts_with('0') && !v.starts_with("0.");
    if numeric_looking && !id_like {
        if let Ok(i) = v.parse::<i64>() {
            return Dynamic::from_int(i);
        }
        if let Ok(f) = v.parse::<f64>() {
            return Dynamic::from_float(f);
        }
    }
    v.into()
}

fn field(v: &str) -> Dynamic {
    let parts: Vec<&str> = v.split(',').collect();
    if v.contains('=') && parts.iter().all(|p| p.contains('=')) {
        let m: Map = parts
            .iter()
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.into(), scalar(v)))
            .collect();
        return Dynamic::from_map(m);
    }
    scalar(v)
}

/// INFO text to `#{section: #{field: value}}`.
pub fn parse_info(text: &str) -> Map {
    let mut out = Map::new();
    let mut current = String::from("default");
    let mut fields = Map::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(name) = line.strip_prefix("# ") {
            if !fields.is_empty() || out.contains_key(current.as_str()) {
                out.insert(
                    current.as_str().into(),
                    Dynamic::from_map(std::mem::take(&mut fields)),
                );
            }
            current = name.trim().to_ascii_lowercase();
            out.insert(current.as_str().into(), Dynamic::from_map(Map::new()));
        } else if let Some((k, v)) = line.split_once(':') {
            fields.insert(k.into(), field(v));
        }
    }
    out.insert(current.as_str().into(), Dynamic::from_map(fields));
    out
}

/// Runs one command on the call's target connection. A read whose
/// connection broke (server restart, idle kill) is retried once on a fresh
/// connection, which is opened from the target URL and so lands on the
/// pinned db again: a reconnect never silently moves to db 0.
fn run_cmd<T: redis::FromRedisValue + Send + 'static>(
    call: &mut Call,
    cmd: redis::Cmd,
    what: &'static str,
) -> Result<T, OpError> {
    let attempts = if call.prim.mutates() { 1 } else { 2 };
    let mut last = None;
    for _ in 0..attempts {
        let (mut c, t) = conn(call)?;
        let cmd = cmd.clone();
        // The outer Result is the call's deadline/cancellation; the inner
        // one says whether the connection broke.
        let r = call.block_on(async move {
            Ok(cmd.query_async::<T>(&mut c).await.map_err(|e| {
                (
                    e.is_io_error() || e.is_connection_dropped(),
                    redis_error(e, &t, what),
                )
            }))
        })?;
        match r {
            Ok(v) => return Ok(v),
            Err((broken, e)) => {
                forget_on_io::<()>(call, &Err(e.clone()));
                if !broken || e.cancelled.is_some() {
                    return Err(e);
                }
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| OpError::failed(what)))
}

fn info_section(call: &mut Call, section: &'static str) -> Result<Map, OpError> {
    let mut cmd = redis::cmd("INFO");
    cmd.arg(section);
    let text: String = run_cmd(call, cmd, "INFO")?;
    Ok(parse_info(&text)
        .get(section)
        .and_then(|m| m.clone().try_cast::<Map>())
        .unwrap_or_default())
}

fn num(m: &Map, k: &str) -> Dynamic {
    m.get(k).cloned().unwrap_or(Dynamic::UNIT)
}

fn hit_rate(call: &mut Call) -> Result<Dynamic, OpError> {
    let stats = info_section(call, "stats")?;
    let hits = stats
        .get("keyspace_hits")
        .and_then(|d| d.as_int().ok())
        .unwrap_or(0);
    let misses = stats
        .get("keyspace_misses")
        .and_then(|d| d.as_int().ok())
        .unwrap_or(0);
    let total = hits + misses;
    let mut m = map_of([
        ("hits", Dynamic::from_int(hits)),
        ("misses", Dynamic::from_int(misses)),
    ]);
    if total == 0 {
        m.insert("ratio".into(), Dynamic::UNIT);
        m.insert(
            "note".into(),
            "no keyspace traffic since the last stats reset".into(),
        );
    } else {
        m.insert(
            "ratio".into(),
            Dynamic::from_float(hits as f64 / total as f64),
        );
    }
    Ok(Dynamic::from_map(m))
}

fn memory(call: &mut Call) -> Result<Dynamic, OpError> {
    let mem = info_section(call, "memory")?;
    let stats = info_section(call, "stats")?;
    Ok(Dynamic::from_map(map_of([
        ("used", num(&mem, "used_memory")),
        ("peak", num(&mem, "used_memory_peak")),
        ("rss", num(&mem, "used_memory_rss")),
        ("fragmentation_ratio", num(&mem, "mem_fragmentation_ratio")),
        ("maxmemory", num(&mem, "maxmemory")),
        ("policy", num(&mem, "maxmemory_policy")),
        ("evicted_keys", num(&stats, "evicted_keys")),
    ])))
}

fn keyspace(call: &mut Call) -> Result<Dynamic, OpError> {
    let ks = info_section(call, "keyspace")?;
    let mut rows: Vec<(i64, Map)> = ks
        .iter()
        .filter_map(|(name, v)| {
            let db = name.strip_prefix("db")?.parse::<i64>().ok()?;
            let fields = v.clone().try_cast::<Map>()?;
            let mut row = map_of([("db", Dynamic::from_int(db))]);
            for k in ["keys", "expires", "avg_ttl"] {
                row.insert(k.into(), num(&fields, k));
            }
            Some((db, row))
        })
        .collect();
    rows.sort_by_key(|(db, _)| *db);
    crate::output::column_order_hint(&["db", "keys", "expires", "avg_ttl"].map(String::from));
    Ok(Dynamic::from_array(
        rows.into_iter()
            .map(|(_, r)| Dynamic::from_map(r))
            .collect(),
    ))
}

fn int_opt(opts: &Map, k: &str, default: i64) -> Result<i64, OpError> {
    match opts.get(k) {
        None => Ok(default),
        Some(d) => d
            .as_int()
            .map_err(|_| OpError::bad_input(format!("opts.{k} must be an int"))),
    }
}

/// SCAN until the cursor wraps or `limit` keys are found.
fn scan_keys(
    call: &mut Call,
    pattern: &str,
    key_type: Option<String>,
    count: i64,
    limit: usize,
) -> Result<Vec<String>, OpError> {
    let (mut c, t) = conn(call)?;
    let pattern = pattern.to_string();
    let r = call.block_on(async move {
        let mut cursor: u64 = 0;
        let mut keys = Vec::new();
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(count);
            if let Some(ty) = &key_type {
                cmd.arg("TYPE").arg(ty);
            }
            let (next, batch): (u64, Vec<String>) = cmd
                .query_async(&mut c)
                .await
                .map_err(|e| redis_error(e, &t, "SCAN"))?;
            keys.extend(batch);
            cursor = next;
            if cursor == 0 || keys.len() >= limit {
                keys.truncate(limit);
                return Ok(keys);
            }
        }
    });
    forget_on_io(call, &r);
    r
}

fn scan(call: &mut Call) -> Result<Dynamic, OpError> {
    let opts = call.opt_map(0)?;
    let pattern = opts
        .get("pattern")
        .map(|d| d.to_string())
        .unwrap_or_else(|| "*".into());
    let key_type = opts.get("type").map(|d| d.to_string());
    let count = int_opt(&opts, "count", 500)?;
    let limit = usize::try_from(int_opt(&opts, "limit", 10_000)?).unwrap_or(0);
    let keys = scan_keys(call, &pattern, key_type, count, limit)?;
    Ok(Dynamic::from_array(
        keys.into_iter().map(Dynamic::from).collect(),
    ))
}

fn key_cmd(name: &str, key: &str) -> redis::Cmd {
    let mut cmd = redis::cmd(name);
    cmd.arg(key);
    cmd
}

fn get(call: &mut Call) -> Result<Dynamic, OpError> {
    let key = call.str_arg(0)?;
    let v: Option<String> = run_cmd(call, key_cmd("GET", &key), "GET")?;
    Ok(v.map(Dynamic::from).unwrap_or(Dynamic::UNIT))
}

fn ttl(call: &mut Call) -> Result<Dynamic, OpError> {
    let key = call.str_arg(0)?;
    Ok(Dynamic::from_int(run_cmd(
        call,
        key_cmd("TTL", &key),
        "TTL",
    )?))
}

fn exists(call: &mut Call) -> Result<Dynamic, OpError> {
    let key = call.str_arg(0)?;
    let n: i64 = run_cmd(call, key_cmd("EXISTS", &key), "EXISTS")?;
    Ok(Dynamic::from_bool(n > 0))
}

fn key_type(call: &mut Call) -> Result<Dynamic, OpError> {
    let key = call.str_arg(0)?;
    let t: String = run_cmd(call, key_cmd("TYPE", &key), "TYPE")?;
    Ok(t.into())
}

fn scalar_arg(call: &Call, i: usize) -> Result<String, OpError> {
    match call.arg(i) {
        Some(d) if d.is_string() || d.is_int() || d.is_float() || d.is_bool() => Ok(d.to_string()),
        Some(d) => Err(OpError::bad_input(format!(
            "value must be a string or number, got {}",
            crate::value::type_name(d)
        ))
        .with_hint("store structured data as json.stringify(value)")),
        None => Err(OpError::bad_input("value is required")),
    }
}

fn plan_set(call: &mut Call) -> Result<Plan, OpError> {
    let key = call.str_arg(0)?;
    let ty: String = run_cmd(call, key_cmd("TYPE", &key), "TYPE")?;
    let ttl: i64 = run_cmd(call, key_cmd("TTL", &key), "TTL")?;
    let now = if ty == "none" {
        "new key".to_string()
    } else {
        format!("overwrites a {ty}, ttl {ttl}")
    };
    Ok(Plan {
        summary: format!("would SET {key} ({now})"),
        details: map_of([
            ("key", key.into()),
            ("previous_type", ty.into()),
            ("previous_ttl", Dynamic::from_int(ttl)),
        ]),
    })
}

fn set(call: &mut Call) -> Result<Dynamic, OpError> {
    let key = call.str_arg(0)?;
    let value = scalar_arg(call, 1)?;
    let opts = call.opt_map(2)?;
    let ty: String = run_cmd(call, key_cmd("TYPE", &key), "TYPE")?;
    let mut cmd = redis::cmd("SET");
    cmd.arg(&key).arg(&value);
    if let Some(t) = opts.get("ttl") {
        let d = crate::value::parse_duration(t).map_err(OpError::bad_input)?;
        cmd.arg("PX").arg(d.as_millis().max(1) as u64);
    }
    let _: String = run_cmd(call, cmd, "SET")?;
    Ok(Dynamic::from_map(map_of([
        ("key", key.into()),
        ("previous_type", ty.into()),
    ])))
}

fn keys_arg(call: &Call) -> Result<Vec<String>, OpError> {
    match call.arg(0) {
        Some(d) if d.is_string() => Ok(vec![d.to_string()]),
        Some(d) if d.is_array() => Ok(d
            .clone()
            .cast::<rhai::Array>()
            .iter()
            .map(|k| k.to_string())
            .collect()),
        _ => Err(OpError::bad_input(
            "keys must be a string or an array of strings",
        )),
    }
}

fn plan_del(call: &mut Call) -> Result<Plan, OpError> {
    let keys = keys_arg(call)?;
    let mut cmd = redis::cmd("EXISTS");
    cmd.arg(&keys);
    let n: i64 = run_cmd(call, cmd, "EXISTS")?;
    Ok(Plan {
        summary: format!("would delete {n} of {} keys", keys.len()),
        details: map_of([("existing", Dynamic::from_int(n))]),
    })
}

fn del(call: &mut Call) -> Result<Dynamic, OpError> {
    let keys = keys_arg(call)?;
    let mut cmd = redis::cmd("UNLINK");
    cmd.arg(&keys);
    Ok(Dynamic::from_int(run_cmd(call, cmd, "UNLINK")?))
}

fn matching(call: &mut Call) -> Result<(String, Vec<String>, i64), OpError> {
    let pattern = call.str_arg(0)?;
    let opts = call.opt_map(1)?;
    let max = int_opt(&opts, "max", 1000)?;
    // One more than max is enough to know the match is too broad.
    let keys = scan_keys(
        call,
        &pattern,
        None,
        1000,
        usize::try_from(max + 1).unwrap_or(usize::MAX),
    )?;
    Ok((pattern, keys, max))
}

fn too_many(pattern: &str, max: i64) -> OpError {
    OpError::refused(format!(
        "more than {max} keys match `{pattern}`; nothing was deleted"
    ))
    .with_hint("narrow the pattern, or pass #{max: N} with a deliberate N after a --dry-run")
}

fn plan_del_matching(call: &mut Call) -> Result<Plan, OpError> {
    let (pattern, keys, max) = matching(call)?;
    let over = keys.len() as i64 > max;
    let sample: rhai::Array = keys
        .iter()
        .take(10)
        .map(|k| Dynamic::from(k.clone()))
        .collect();
    let count = if over {
        format!("more than {max}")
    } else {
        keys.len().to_string()
    };
    Ok(Plan {
        summary: format!(
            "would delete {count} keys matching `{pattern}`{}",
            if over {
                " (refused at run time: over max)"
            } else {
                ""
            }
        ),
        details: map_of([
            ("count", Dynamic::from_int(keys.len() as i64)),
            ("over_max", Dynamic::from_bool(over)),
            ("sample", Dynamic::from_array(sample)),
        ]),
    })
}

fn del_matching(call: &mut Call) -> Result<Dynamic, OpError> {
    let (pattern, keys, max) = matching(call)?;
    if keys.len() as i64 > max {
        return Err(too_many(&pattern, max));
    }
    let mut deleted = 0i64;
    for batch in keys.chunks(500) {
        let mut cmd = redis::cmd("UNLINK");
        cmd.arg(batch);
        let n: i64 = run_cmd(call, cmd, "UNLINK")?;
        deleted += n;
    }
    Ok(Dynamic::from_map(map_of([
        ("deleted", Dynamic::from_int(deleted)),
        ("pattern", pattern.into()),
    ])))
}

/// A connection opened for `db` alone, never shared, so no reconnect or
/// SELECT elsewhere can point it at another database.
fn db_conn(call: &mut Call) -> Result<(redis::aio::MultiplexedConnection, Target, i64), OpError> {
    let opts = call.opt_map(0)?;
    let db = match opts.get("db") {
        Some(d) => d
            .as_int()
            .map_err(|_| OpError::bad_input("opts.db must be an int"))?,
        None => {
            return Err(OpError::bad_input(
                "flushdb needs the database named explicitly: #{db: N}",
            ))
        }
    };
    let t = call.target()?;
    let mut u = url::Url::parse(&t.url).map_err(|e| {
        OpError::bad_input(format!("invalid Redis URL for {}", t.display())).with_cause(e)
    })?;
    u.set_path(&format!("/{db}"));
    let client = redis::Client::open(u.as_str()).map_err(|e| {
        OpError::bad_input("invalid Redis URL").with_cause(crate::redact::redact(&e.to_string()))
    })?;
    let t2 = t.clone();
    let c = call.block_on(async move {
        client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| redis_error(e, &t2, "connect"))
    })?;
    Ok((c, t, db))
}

fn plan_flushdb(call: &mut Call) -> Result<Plan, OpError> {
    let (mut c, t, db) = db_conn(call)?;
    let n: i64 = call.block_on(async move {
        redis::cmd("DBSIZE")
            .query_async(&mut c)
            .await
            .map_err(|e| redis_error(e, &t, "DBSIZE"))
    })?;
    Ok(Plan {
        summary: format!("would FLUSHDB db {db}, deleting {n} keys"),
        details: map_of([
            ("db", Dynamic::from_int(db)),
            ("keys", Dynamic::from_int(n)),
        ]),
    })
}

fn flushdb(call: &mut Call) -> Result<Dynamic, OpError> {
    let (mut c, t, db) = db_conn(call)?;
    let n = call.block_on(async move {
        let n: i64 = redis::cmd("DBSIZE")
            .query_async(&mut c)
            .await
            .map_err(|e| redis_error(e, &t, "DBSIZE"))?;
        let _: String = redis::cmd("FLUSHDB")
            .query_async(&mut c)
            .await
            .map_err(|e| redis_error(e, &t, "FLUSHDB"))?;
        Ok(n)
    })?;
    Ok(Dynamic::from_map(map_of([
        ("db", Dynamic::from_int(db)),
        ("deleted", Dynamic::from_int(n)),
    ])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_numbers_and_nested() {
        let text = "# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\nuptime_in_seconds:42\r\n\r\n# Memory\r\nmem_fragmentation_ratio:1.25\r\n\r\n# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=500\r\n";
        let m = parse_info(text);
        let server = m["server"].clone().cast::<Map>();
        assert_eq!(server["redis_version"].to_string(), "7.0.15");
        assert_eq!(server["redis_git_sha1"].to_string(), "00000000");
        assert_eq!(server["uptime_in_seconds"].as_int().unwrap(), 42);
        let mem = m["memory"].clone().cast::<Map>();
        assert_eq!(mem["mem_fragmentation_ratio"].as_float().unwrap(), 1.25);
        let db0 = m["keyspace"].clone().cast::<Map>()["db0"]
            .clone()
            .cast::<Map>();
        assert_eq!(db0["keys"].as_int().unwrap(), 3);
        assert_eq!(db0["avg_ttl"].as_int().unwrap(), 500);
    }
}

/// `k=v k=v ...` (CLIENT LIST) to a typed map.
fn space_fields(line: &str) -> Map {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.into(), scalar(v)))
        .collect()
}

fn clients(call: &mut Call) -> Result<Dynamic, OpError> {
    let mut cmd = redis::cmd("CLIENT");
    cmd.arg("LIST");
    let text: String = run_cmd(call, cmd, "CLIENT LIST")?;
    crate::output::column_order_hint(
        &[
            "id", "addr", "name", "user", "db", "age", "idle", "cmd", "flags",
        ]
        .map(String::from),
    );
    Ok(Dynamic::from_array(
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| Dynamic::from_map(space_fields(l)))
            .collect(),
    ))
}

fn value_to_dynamic(v: &redis::Value) -> Dynamic {
    use redis::Value as V;
    match v {
        V::Nil => Dynamic::UNIT,
        V::Int(i) => Dynamic::from_int(*i),
        V::BulkString(b) => String::from_utf8_lossy(b).into_owned().into(),
        V::SimpleString(s) => s.clone().into(),
        V::Okay => "OK".into(),
        V::Array(a) | V::Set(a) => Dynamic::from_array(a.iter().map(value_to_dynamic).collect()),
        V::Double(d) => Dynamic::from_float(*d),
        V::Boolean(b) => Dynamic::from_bool(*b),
        V::Map(kv) => Dynamic::from_map(
            kv.iter()
                .map(|(k, v)| (value_to_dynamic(k).to_string().into(), value_to_dynamic(v)))
                .collect(),
        ),
        other => format!("{other:?}").into(),
    }
}

fn slowlog(call: &mut Call) -> Result<Dynamic, OpError> {
    let n = match call.arg(0) {
        None => 10,
        Some(d) => d
            .as_int()
            .map_err(|_| OpError::bad_input("n must be an int"))?,
    };
    let mut cmd = redis::cmd("SLOWLOG");
    cmd.arg("GET").arg(n);
    let v: redis::Value = run_cmd(call, cmd, "SLOWLOG GET")?;
    let entries = match value_to_dynamic(&v).try_cast::<rhai::Array>() {
        Some(a) => a,
        None => Vec::new(),
    };
    let rows = entries
        .into_iter()
        .filter_map(|e| e.try_cast::<rhai::Array>())
        .map(|e| {
            let get = |i: usize| e.get(i).cloned().unwrap_or(Dynamic::UNIT);
            let command: Vec<String> = get(3)
                .try_cast::<rhai::Array>()
                .unwrap_or_default()
                .iter()
                .map(|a| a.to_string())
                .collect();
            Dynamic::from_map(map_of([
                ("id", get(0)),
                ("time", get(1)),
                ("duration_us", get(2)),
                ("command", command.join(" ").into()),
                ("client", get(4)),
                ("client_name", get(5)),
            ]))
        })
        .collect();
    crate::output::column_order_hint(
        &[
            "id",
            "time",
            "duration_us",
            "command",
            "client",
            "client_name",
        ]
        .map(String::from),
    );
    Ok(Dynamic::from_array(rows))
}

fn latency(call: &mut Call) -> Result<Dynamic, OpError> {
    let mut cmd = redis::cmd("LATENCY");
    cmd.arg("LATEST");
    let v: redis::Value = run_cmd(call, cmd, "LATENCY LATEST")?;
    let rows = value_to_dynamic(&v)
        .try_cast::<rhai::Array>()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| e.try_cast::<rhai::Array>())
        .map(|e| {
            let get = |i: usize| e.get(i).cloned().unwrap_or(Dynamic::UNIT);
            Dynamic::from_map(map_of([
                ("event", get(0)),
                ("time", get(1)),
                ("latest_ms", get(2)),
                ("max_ms", get(3)),
            ]))
        })
        .collect();
    Ok(Dynamic::from_array(rows))
}

fn replication(call: &mut Call) -> Result<Dynamic, OpError> {
    let info = info_section(call, "replication")?;
    let mut out = Map::new();
    let mut replicas = Vec::new();
    for (k, v) in info {
        if k.starts_with("slave") && k[5..].chars().all(|c| c.is_ascii_digit()) && v.is_map() {
            replicas.push(v);
        } else {
            out.insert(k, v);
        }
    }
    out.insert("replicas".into(), Dynamic::from_array(replicas));
    Ok(Dynamic::from_map(out))
}

fn config_get(call: &mut Call) -> Result<Dynamic, OpError> {
    let pattern = call.str_arg(0)?;
    let mut cmd = redis::cmd("CONFIG");
    cmd.arg("GET").arg(&pattern);
    let v: redis::Value = run_cmd(call, cmd, "CONFIG GET")?;
    let m: Map = match value_to_dynamic(&v) {
        d if d.is_map() => d
            .cast::<Map>()
            .into_iter()
            .map(|(k, v)| (k, scalar(&v.to_string())))
            .collect(),
        d => d
            .try_cast::<rhai::Array>()
            .unwrap_or_default()
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (c[0].to_string().into(), scalar(&c[1].to_string())))
            .collect(),
    };
    Ok(Dynamic::from_map(m))
}

fn biggest(call: &mut Call) -> Result<Dynamic, OpError> {
    let opts = call.opt_map(0)?;
    let sample = usize::try_from(int_opt(&opts, "sample", 1000)?).unwrap_or(0);
    let top = usize::try_from(int_opt(&opts, "top", 10)?).unwrap_or(0);
    let pattern = opts
        .get("pattern")
        .map(|d| d.to_string())
        .unwrap_or_else(|| "*".into());
    let keys = scan_keys(call, &pattern, None, 500, sample)?;
    let mut rows = Vec::with_capacity(keys.len());
    for k in keys {
        let mut cmd = redis::cmd("MEMORY");
        cmd.arg("USAGE").arg(&k).arg("SAMPLES").arg(5);
        let bytes: Option<i64> = run_cmd(call, cmd, "MEMORY USAGE")?;
        if let Some(b) = bytes {
            rows.push((b, k));
        }
    }
    rows.sort_by(|a, b| b.0.cmp(&a.0));
    rows.truncate(top);
    let mut out = Vec::with_capacity(rows.len());
    for (bytes, key) in rows {
        let ty: String = run_cmd(call, key_cmd("TYPE", &key), "TYPE")?;
        out.push(Dynamic::from_map(map_of([
            ("key", key.into()),
            ("type", ty.into()),
            ("bytes", Dynamic::from_int(bytes)),
        ])));
    }
    crate::output::column_order_hint(&["key", "type", "bytes"].map(String::from));
    Ok(Dynamic::from_array(out))
}

fn ttl_arg(call: &Call) -> Result<std::time::Duration, OpError> {
    let d = call.arg(1).cloned().unwrap_or(Dynamic::UNIT);
    crate::value::parse_duration(&d).map_err(OpError::bad_input)
}

fn plan_expire(call: &mut Call) -> Result<Plan, OpError> {
    let key = call.str_arg(0)?;
    let d = ttl_arg(call)?;
    let current: i64 = run_cmd(call, key_cmd("TTL", &key), "TTL")?;
    let now = match current {
        -2 => "the key does not exist; nothing would change".to_string(),
        -1 => "no expiry today".to_string(),
        s => format!("ttl today {s}s"),
    };
    Ok(Plan {
        summary: format!("would set ttl of {key} to {}s ({now})", d.as_secs()),
        details: map_of([
            ("key", key.into()),
            ("current_ttl", Dynamic::from_int(current)),
        ]),
    })
}

fn expire(call: &mut Call) -> Result<Dynamic, OpError> {
    let key = call.str_arg(0)?;
    let d = ttl_arg(call)?;
    let mut cmd = redis::cmd("PEXPIRE");
    cmd.arg(&key).arg(d.as_millis().max(1) as u64);
    let n: i64 = run_cmd(call, cmd, "PEXPIRE")?;
    Ok(Dynamic::from_bool(n == 1))
}

fn current_config(call: &mut Call, name: &str) -> Result<Dynamic, OpError> {
    let mut cmd = redis::cmd("CONFIG");
    cmd.arg("GET").arg(name);
    let v: redis::Value = run_cmd(call, cmd, "CONFIG GET")?;
    let flat = value_to_dynamic(&v);
    let value = if flat.is_map() {
        flat.cast::<Map>().into_values().next()
    } else {
        flat.try_cast::<rhai::Array>()
            .and_then(|a| a.get(1).cloned())
    };
    value.ok_or_else(|| {
        OpError::bad_input(format!("unknown Redis config parameter `{name}`"))
            .with_hint("list them with redis.config_get(\"*\")")
    })
}

fn plan_config_set(call: &mut Call) -> Result<Plan, OpError> {
    let name = call.str_arg(0)?;
    let value = scalar_arg(call, 1)?;
    let previous = current_config(call, &name)?;
    Ok(Plan {
        summary: format!("would CONFIG SET {name} from `{previous}` to `{value}`"),
        details: map_of([
            ("name", name.into()),
            ("previous", previous),
            ("value", value.into()),
        ]),
    })
}

fn config_set(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = call.str_arg(0)?;
    let value = scalar_arg(call, 1)?;
    let previous = current_config(call, &name)?;
    let mut cmd = redis::cmd("CONFIG");
    cmd.arg("SET").arg(&name).arg(&value);
    let _: redis::Value = run_cmd(call, cmd, "CONFIG SET")?;
    Ok(Dynamic::from_map(map_of([
        ("name", name.into()),
        ("previous", previous),
        ("value", scalar(&value)),
    ])))
}
