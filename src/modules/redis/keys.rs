//! Keys: reads by SCAN (never KEYS), and the guarded mutations.

use super::conn::*;
use crate::dispatch::{Call, OpError, Plan};
use crate::value::map_of;
use rhai::{Dynamic, Map};

pub(super) fn int_opt(opts: &Map, k: &str, default: i64) -> Result<i64, OpError> {
    match opts.get(k) {
        None => Ok(default),
        Some(d) => d
            .as_int()
            .map_err(|_| OpError::bad_input(format!("opts.{k} must be an int"))),
    }
}

/// SCAN until the cursor wraps or `limit` keys are found.
pub(super) fn scan_keys(
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

pub(super) fn scan(call: &mut Call) -> Result<Dynamic, OpError> {
    let opts = call.opts_at(0)?;
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

pub(super) fn key_cmd(name: &str, key: &str) -> redis::Cmd {
    let mut cmd = redis::cmd(name);
    cmd.arg(key);
    cmd
}

pub(super) fn get(call: &mut Call) -> Result<Dynamic, OpError> {
    let key = call.str_at(0)?;
    let v: Option<String> = run_cmd(call, key_cmd("GET", &key), "GET")?;
    Ok(v.map(Dynamic::from).unwrap_or(Dynamic::UNIT))
}

pub(super) fn ttl(call: &mut Call) -> Result<Dynamic, OpError> {
    let key = call.str_at(0)?;
    Ok(Dynamic::from_int(run_cmd(
        call,
        key_cmd("TTL", &key),
        "TTL",
    )?))
}

pub(super) fn exists(call: &mut Call) -> Result<Dynamic, OpError> {
    let key = call.str_at(0)?;
    let n: i64 = run_cmd(call, key_cmd("EXISTS", &key), "EXISTS")?;
    Ok(Dynamic::from_bool(n > 0))
}

pub(super) fn key_type(call: &mut Call) -> Result<Dynamic, OpError> {
    let key = call.str_at(0)?;
    let t: String = run_cmd(call, key_cmd("TYPE", &key), "TYPE")?;
    Ok(t.into())
}

pub(super) fn scalar_arg(call: &Call, i: usize) -> Result<String, OpError> {
    match call.arg_at(i) {
        Some(d) if d.is_string() || d.is_int() || d.is_float() || d.is_bool() => Ok(d.to_string()),
        Some(d) => Err(OpError::bad_input(format!(
            "value must be a string or number, got {}",
            crate::value::type_name(d)
        ))
        .with_hint("store structured data as json.stringify(value)")),
        None => Err(OpError::bad_input("value is required")),
    }
}

pub(super) fn plan_set(call: &mut Call) -> Result<Plan, OpError> {
    let key = call.str_at(0)?;
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

pub(super) fn set(call: &mut Call) -> Result<Dynamic, OpError> {
    let key = call.str_at(0)?;
    let value = scalar_arg(call, 1)?;
    let opts = call.opts_at(2)?;
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

pub(super) fn keys_arg(call: &Call) -> Result<Vec<String>, OpError> {
    match call.arg_at(0) {
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

pub(super) fn plan_del(call: &mut Call) -> Result<Plan, OpError> {
    let keys = keys_arg(call)?;
    let mut cmd = redis::cmd("EXISTS");
    cmd.arg(&keys);
    let n: i64 = run_cmd(call, cmd, "EXISTS")?;
    Ok(Plan {
        summary: format!("would delete {n} of {} keys", keys.len()),
        details: map_of([("existing", Dynamic::from_int(n))]),
    })
}

pub(super) fn del(call: &mut Call) -> Result<Dynamic, OpError> {
    let keys = keys_arg(call)?;
    let mut cmd = redis::cmd("UNLINK");
    cmd.arg(&keys);
    Ok(Dynamic::from_int(run_cmd(call, cmd, "UNLINK")?))
}

pub(super) fn matching(call: &mut Call) -> Result<(String, Vec<String>, i64), OpError> {
    let pattern = call.str_at(0)?;
    let opts = call.opts_at(1)?;
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

pub(super) fn too_many(pattern: &str, max: i64) -> OpError {
    OpError::refused(format!(
        "more than {max} keys match `{pattern}`; nothing was deleted"
    ))
    .with_hint("narrow the pattern, or pass #{max: N} with a deliberate N after a --dry-run")
}

pub(super) fn plan_del_matching(call: &mut Call) -> Result<Plan, OpError> {
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

pub(super) fn del_matching(call: &mut Call) -> Result<Dynamic, OpError> {
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

pub(super) fn plan_flushdb(call: &mut Call) -> Result<Plan, OpError> {
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

pub(super) fn flushdb(call: &mut Call) -> Result<Dynamic, OpError> {
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

pub(super) fn biggest(call: &mut Call) -> Result<Dynamic, OpError> {
    let opts = call.opts_at(0)?;
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
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
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

pub(super) fn ttl_arg(call: &Call) -> Result<std::time::Duration, OpError> {
    let d = call.arg_at(1).cloned().unwrap_or(Dynamic::UNIT);
    crate::value::parse_duration(&d).map_err(OpError::bad_input)
}

pub(super) fn plan_expire(call: &mut Call) -> Result<Plan, OpError> {
    let key = call.str_at(0)?;
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

pub(super) fn expire(call: &mut Call) -> Result<Dynamic, OpError> {
    let key = call.str_at(0)?;
    let d = ttl_arg(call)?;
    let mut cmd = redis::cmd("PEXPIRE");
    cmd.arg(&key).arg(d.as_millis().max(1) as u64);
    let n: i64 = run_cmd(call, cmd, "PEXPIRE")?;
    Ok(Dynamic::from_bool(n == 1))
}
