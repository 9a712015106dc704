//! Reading server state: INFO (parsed), clients, slowlog, latency, config.

use super::conn::*;
use super::keys::*;
use crate::dispatch::{Call, OpError, Plan};
use crate::value::map_of;
use rhai::{Dynamic, Map};

pub(super) fn info(call: &mut Call) -> Result<Dynamic, OpError> {
    let section = call.opt_str_at(0)?;
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

pub(super) fn field(v: &str) -> Dynamic {
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

pub(super) fn info_section(call: &mut Call, section: &'static str) -> Result<Map, OpError> {
    let mut cmd = redis::cmd("INFO");
    cmd.arg(section);
    let text: String = run_cmd(call, cmd, "INFO")?;
    Ok(parse_info(&text)
        .get(section)
        .and_then(|m| m.clone().try_cast::<Map>())
        .unwrap_or_default())
}

pub(super) fn num(m: &Map, k: &str) -> Dynamic {
    m.get(k).cloned().unwrap_or(Dynamic::UNIT)
}

pub(super) fn hit_rate(call: &mut Call) -> Result<Dynamic, OpError> {
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

pub(super) fn memory(call: &mut Call) -> Result<Dynamic, OpError> {
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

pub(super) fn keyspace(call: &mut Call) -> Result<Dynamic, OpError> {
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

pub(super) fn replication(call: &mut Call) -> Result<Dynamic, OpError> {
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
pub(super) fn space_fields(line: &str) -> Map {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.into(), scalar(v)))
        .collect()
}

pub(super) fn clients(call: &mut Call) -> Result<Dynamic, OpError> {
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

pub(super) fn slowlog(call: &mut Call) -> Result<Dynamic, OpError> {
    let n = match call.arg_at(0) {
        None => 10,
        Some(d) => d
            .as_int()
            .map_err(|_| OpError::bad_input("n must be an int"))?,
    };
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

pub(super) fn latency(call: &mut Call) -> Result<Dynamic, OpError> {
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

pub(super) fn config_get(call: &mut Call) -> Result<Dynamic, OpError> {
    let pattern = call.str_at(0)?;
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

pub(super) fn current_config(call: &mut Call, name: &str) -> Result<Dynamic, OpError> {
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

pub(super) fn plan_config_set(call: &mut Call) -> Result<Plan, OpError> {
    let name = call.str_at(0)?;
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

pub(super) fn config_set(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = call.str_at(0)?;
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
