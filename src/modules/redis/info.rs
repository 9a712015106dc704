//! Reading server state: INFO (parsed), clients, slowlog, latency, config.

use super::conn::*;
use super::keys::{scalar_arg, SCALAR};
use crate::dispatch::said;
use crate::dispatch::{Call, OpError, Plan};
use crate::registry::{field, opt, req, Field, Primitive, Ty};
use crate::value::map_of;
use rhai::{Dynamic, Map};

pub const INFO: Primitive = Primitive::read("info", info)
    .params(&[opt("section", Ty::Str)])
    .returns(Ty::Map)
    .doc("INFO, parsed: numbers typed, `k=v,...` values (keyspace db0, cmdstat_*, slaveN) as nested maps.\n\
          Without a section (or with \"all\"/\"everything\") the result is keyed by section name (server, clients, memory, ..., keyspace); with one section it is that section's fields. On a cluster target (redis+cluster://) the result is keyed by node address (host:port).")
    .example(r#"let mem = redis.info("memory"); mem.used_memory"#);
fn info(call: &mut Call) -> Result<Dynamic, OpError> {
    let section = call.opt_str("section")?;
    if super::cluster::is_cluster(&call.target()?.url) {
        return super::cluster::info(call, section.as_deref());
    }
    let mut cmd = redis::cmd("INFO");
    if let Some(s) = &section {
        cmd.arg(s);
    }
    let text: String = run_cmd(call, cmd, "INFO")?;
    Ok(Dynamic::from_map(select_section(
        parse_info(&text),
        section.as_deref(),
    )))
}

/// One named section's fields, or every section keyed by name.
pub(super) fn select_section(sections: Map, section: Option<&str>) -> Map {
    match section.map(|s| s.to_ascii_lowercase()) {
        Some(s) if !matches!(s.as_str(), "all" | "everything" | "default") => sections
            .get(s.as_str())
            .and_then(|m| m.clone().try_cast::<Map>())
            .unwrap_or_default(),
        _ => sections,
    }
}

pub(super) fn scalar(v: &str) -> Dynamic {
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

/// One INFO value: `k=v,...` as a map, or a scalar.
fn info_value(v: &str) -> Dynamic {
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
pub(crate) fn parse_info(text: &str) -> Map {
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
            fields.insert(k.into(), info_value(v));
        }
    }
    out.insert(current.as_str().into(), Dynamic::from_map(fields));
    out
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

pub const HIT_RATE: Primitive = Primitive::read("hit_rate", hit_rate)
    .returns(Ty::Record(&[
        field("hits", Ty::Int).doc("keyspace_hits: lookups that found their key"),
        field("misses", Ty::Int).doc("keyspace_misses: lookups of a missing key"),
        field("ratio", Ty::Float).doc("hits / (hits + misses), 0 to 1; () with no traffic yet"),
        field("note", Ty::Str).doc("why ratio is (); () when it is not"),
    ]))
    .doc("Keyspace hits, misses and their ratio since the last stats reset.\n\
          With no traffic yet the ratio is () and `note` says so, rather than a division by zero.")
    .example("let h = redis.hit_rate(); if h.ratio != () && h.ratio < 0.8 { print(`hit rate ${h.ratio}`) }");
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

pub const MEMORY: Primitive = Primitive::read("memory", memory)
    .returns(Ty::Record(&[
        field("used", Ty::Int).doc("bytes allocated by Redis (used_memory)"),
        field("peak", Ty::Int).doc("highest `used` since start, in bytes"),
        field("rss", Ty::Int).doc("bytes resident as the OS sees them"),
        field("fragmentation_ratio", Ty::Float).doc("rss / used"),
        field("maxmemory", Ty::Int).doc("the limit in bytes; 0 for none"),
        field("policy", Ty::Str).doc("maxmemory-policy: what is evicted at the limit"),
        field("evicted_keys", Ty::Int).doc("keys evicted since the last stats reset"),
    ]))
    .doc("Memory at a glance, from INFO memory and stats.")
    .example("let m = redis.memory(); m.used");
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

pub const DBSIZE: Primitive = Primitive::read("dbsize", dbsize)
    .params(&[opt(
        "opts",
        Ty::Record(&[field("db", Ty::Int).doc("another database of the same server; default: the target's")]),
    )])
    .returns(Ty::Record(&[
        field("db", Ty::Int).doc("() for the target's own database"),
        field("keys", Ty::Int),
    ]))
    .doc("How many keys a database holds (DBSIZE): cheaper than redis.keyspace() when one number is the question.")
    .example(r#"if redis.dbsize().keys == 0 { fail("the cache is empty: did it restart?") }"#);
fn dbsize(call: &mut Call) -> Result<Dynamic, OpError> {
    let db = call.opts("opts")?.int("db")?;
    let keys: i64 = match db {
        None => run_cmd(call, redis::cmd("DBSIZE"), "DBSIZE")?,
        Some(db) => {
            let (mut c, t) = db_conn(call, db)?;
            c.query(call, &t, &redis::cmd("DBSIZE"), "DBSIZE")
                .map_err(|(_, e)| e)?
        }
    };
    Ok(Dynamic::from_map(map_of([
        ("db", db.map(Dynamic::from_int).unwrap_or(Dynamic::UNIT)),
        ("keys", Dynamic::from_int(keys)),
    ])))
}

pub const KEYSPACE: Primitive = Primitive::read("keyspace", keyspace)
    .returns(Ty::Rows(&[
        field("db", Ty::Int),
        field("keys", Ty::Int),
        field("expires", Ty::Int).doc("keys with a time to live"),
        field("avg_ttl", Ty::Int).doc("average time to live of those keys, in ms"),
    ]))
    .doc("One row per database that has keys, by db number.")
    .example("show(redis.keyspace())");
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
    Ok(Dynamic::from_array(
        rows.into_iter()
            .map(|(_, r)| Dynamic::from_map(r))
            .collect(),
    ))
}

pub const REPLICATION: Primitive = Primitive::read("replication", replication)
    .returns(Ty::Fields(&[
        field("role", Ty::Str).doc("master or slave"),
        field("connected_slaves", Ty::Int),
        field("replicas", Ty::Rows(&[
            field("ip", Ty::Str),
            field("port", Ty::Int),
            field("state", Ty::Str).doc("online, wait_bgsave, send_bulk, ..."),
            field("offset", Ty::Int).doc("replication offset the replica acknowledged"),
            field("lag", Ty::Int).doc("seconds since its last acknowledgement"),
        ])).doc("the connected replicas (INFO's slaveN); empty on a replica without its own"),
        field("master_repl_offset", Ty::Int),
        field("master_host", Ty::Str).doc("on a replica: its master; () on a master"),
        field("master_port", Ty::Int).doc("on a replica; () on a master"),
        field("master_link_status", Ty::Str).doc("on a replica: up or down; () on a master"),
        field("master_last_io_seconds_ago", Ty::Int).doc("on a replica: seconds since the master last spoke, -1 while the link is down; () on a master"),
        field("master_sync_in_progress", Ty::Int).doc("on a replica: 1 during a full sync; () on a master"),
        field("slave_repl_offset", Ty::Int).doc("on a replica: offset it has applied; () on a master"),
    ]))
    .doc("INFO replication: this server's role, its replicas and, on a replica, the link to its master.\n\
          Every other field of INFO replication is kept under the server's own name.")
    .example("redis.replication().role");
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

/// `k=v k=v ...` (CLIENT LIST) to a typed map.
fn space_fields(line: &str) -> Map {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.into(), scalar(v)))
        .collect()
}

/// The CLIENT LIST fields worth knowing by name; the others depend on the
/// server version, and some (`qbuf-free`, `tot-mem`) are no property names.
const CLIENT: &[Field] = &[
    field("id", Ty::Int),
    field("addr", Ty::Str).doc("the client's ip:port"),
    field("laddr", Ty::Str).doc("the server's ip:port it connected to"),
    field("name", Ty::Str).doc("set by CLIENT SETNAME; \"\" when unnamed"),
    field("user", Ty::Str).doc("the ACL user"),
    field("db", Ty::Int),
    field("age", Ty::Int).doc("seconds connected"),
    field("idle", Ty::Int).doc("seconds since its last command"),
    field("cmd", Ty::Str).doc("its last command, as `client|list`"),
    field("flags", Ty::Str)
        .doc("N normal, S replica, M master, P pub/sub, x in MULTI, b blocked, ..."),
];

pub const CLIENTS: Primitive = Primitive::read("clients", clients)
    .returns(Ty::List(&Ty::Fields(CLIENT)))
    .doc("CLIENT LIST, parsed: one row per connection, numbers typed.\n\
          Every other field of the line (fd, qbuf, omem, events, ...) is kept under its CLIENT LIST name.")
    .example("let idle = redis.clients().filter(|c| c.idle > 600);");
fn clients(call: &mut Call) -> Result<Dynamic, OpError> {
    let mut cmd = redis::cmd("CLIENT");
    cmd.arg("LIST");
    let text: String = run_cmd(call, cmd, "CLIENT LIST")?;
    Ok(Dynamic::from_array(
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| Dynamic::from_map(space_fields(l)))
            .collect(),
    ))
}

pub const SLOWLOG: Primitive = Primitive::read("slowlog", slowlog)
    .params(&[opt("n", Ty::Int)])
    .returns(Ty::Rows(&[
        field("id", Ty::Int),
        field("time", Ty::Int).doc("when it ran, unix seconds"),
        field("duration_us", Ty::Int).doc("how long it ran, in microseconds"),
        field("command", Ty::Str).doc("the command and its arguments, space-separated"),
        field("client", Ty::Str).doc("the client's ip:port"),
        field("client_name", Ty::Str).doc("\"\" when unnamed"),
    ]))
    .doc("The last n (default 10) SLOWLOG entries, newest first.")
    .example("show(redis.slowlog(5))");
fn slowlog(call: &mut Call) -> Result<Dynamic, OpError> {
    let n = call.opt_int("n")?.unwrap_or(10);
    let mut cmd = redis::cmd("SLOWLOG");
    cmd.arg("GET").arg(n);
    let v: redis::Value = run_cmd(call, cmd, "SLOWLOG GET")?;
    let entries = value_to_dynamic(&v)
        .try_cast::<rhai::Array>()
        .unwrap_or_default();
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
    Ok(Dynamic::from_array(rows))
}

pub const LATENCY: Primitive = Primitive::read("latency", latency)
    .returns(Ty::Rows(&[
        field("event", Ty::Str).doc("command, fast-command, fork, aof-fsync-always, ..."),
        field("time", Ty::Int).doc("the latest spike, unix seconds"),
        field("latest_ms", Ty::Int),
        field("max_ms", Ty::Int).doc("the worst since the event was first recorded"),
    ]))
    .doc(
        "LATENCY LATEST: one row per event the latency monitor recorded.\n\
          Empty unless latency-monitor-threshold is set.",
    )
    .example("show(redis.latency())");
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

pub const CONFIG_GET: Primitive = Primitive::read("config_get", config_get)
    .params(&[req("pattern", Ty::Str)])
    .returns(Ty::Map)
    .doc("CONFIG GET pattern as a map (numbers typed).")
    .example(r#"redis.config_get("maxmemory*")"#);
fn config_get(call: &mut Call) -> Result<Dynamic, OpError> {
    let pattern = call.str("pattern")?;
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
    let name = call.str("name")?;
    let value = scalar_arg(call, "value")?;
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

pub const CONFIG_SET: Primitive = Primitive::mutate("config_set", plan_config_set, config_set)
    .params(&[req("name", Ty::Str), req("value", SCALAR)])
    .returns(Ty::Record(&[
        field("name", Ty::Str),
        field("previous", Ty::Str).doc("the value before, as CONFIG GET printed it"),
        field("value", Ty::OneOf(&[Ty::Str, Ty::Int, Ty::Float]))
            .doc("the value set, a number when it reads as one"),
    ]))
    .says(says_config_set)
    .doc("CONFIG SET one parameter. --dry-run shows the current value.")
    .example(r#"redis.config_set("maxmemory-policy", "allkeys-lru")"#);
fn config_set(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = call.str("name")?;
    let value = scalar_arg(call, "value")?;
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

fn says_config_set(_: &Call, r: &Dynamic) -> String {
    format!(
        "CONFIG SET {} `{}` -> `{}`",
        said(r, "name"),
        said(r, "previous"),
        said(r, "value")
    )
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
