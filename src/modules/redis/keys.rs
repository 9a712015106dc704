//! Keys: reads by SCAN (never KEYS), and the guarded mutations.

use super::conn::*;
use crate::dispatch::said;
use crate::dispatch::{Call, OpError, Plan};
use crate::registry::{field, opt, req, Primitive, Ty, STRINGS};
use crate::value::map_of;
use rhai::Dynamic;

/// SCAN until the cursor wraps or `limit` keys are found.
fn scan_keys(
    call: &mut Call,
    pattern: &str,
    key_type: Option<String>,
    count: i64,
    limit: usize,
) -> Result<Vec<String>, OpError> {
    let (mut c, t) = conn(call)?;
    let mut cursor: u64 = 0;
    let mut keys = Vec::new();
    let r = loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(count);
        if let Some(ty) = &key_type {
            cmd.arg("TYPE").arg(ty);
        }
        let (next, batch): (u64, Vec<String>) = match c.query(call, &t, &cmd, "SCAN") {
            Ok(page) => page,
            Err((_, e)) => break Err(e),
        };
        keys.extend(batch);
        cursor = next;
        if cursor == 0 || keys.len() >= limit {
            keys.truncate(limit);
            break Ok(keys);
        }
    };
    drop(c);
    forget_on_io(call, &r);
    r
}

pub const SCAN: Primitive = Primitive::read("scan", scan)
    .params(&[opt(
        "opts",
        Ty::Record(&[
            field("pattern", Ty::Str).doc("glob, default \"*\""),
            field("type", Ty::Str)
                .doc("only keys of this type: string, hash, list, set, zset, stream"),
            field("count", Ty::Int)
                .doc("SCAN's COUNT hint, keys looked at per round trip; default 500"),
            field("limit", Ty::Int).doc("stop after this many keys; default 10000"),
        ]),
    )])
    .returns(Ty::List(&Ty::Str))
    .doc("Key names by SCAN (never KEYS, which blocks the server).")
    .example(r#"let keys = redis.scan(#{pattern: "session:*", limit: 100});"#);
fn scan(call: &mut Call) -> Result<Dynamic, OpError> {
    let opts = call.opts("opts")?;
    let pattern = opts.str("pattern")?.unwrap_or_else(|| "*".into());
    let key_type = opts.str("type")?;
    let count = opts.int("count")?.unwrap_or(500);
    let limit = usize::try_from(opts.int("limit")?.unwrap_or(10_000)).unwrap_or(0);
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

pub const GET: Primitive = Primitive::read("get", get)
    .params(&[req("key", Ty::Str)])
    .returns(Ty::Str)
    .doc("GET a string key; () when it does not exist.")
    .example(r#"redis.get("feature:flags")"#);
fn get(call: &mut Call) -> Result<Dynamic, OpError> {
    let key = call.str("key")?;
    let v: Option<String> = run_cmd(call, key_cmd("GET", &key), "GET")?;
    Ok(v.map(Dynamic::from).unwrap_or(Dynamic::UNIT))
}

pub const TTL: Primitive = Primitive::read("ttl", ttl)
    .params(&[req("key", Ty::Str)])
    .returns(Ty::Int)
    .doc("Seconds to live: -1 when the key has no expiry, -2 when it does not exist (as TTL).")
    .example(r#"redis.ttl("session:42")"#);
fn ttl(call: &mut Call) -> Result<Dynamic, OpError> {
    let key = call.str("key")?;
    Ok(Dynamic::from_int(run_cmd(
        call,
        key_cmd("TTL", &key),
        "TTL",
    )?))
}

pub const EXISTS: Primitive = Primitive::read("exists", exists)
    .params(&[req("key", Ty::Str)])
    .returns(Ty::Bool)
    .doc("Whether the key exists.")
    .example(r#"redis.exists("lock:nightly")"#);
fn exists(call: &mut Call) -> Result<Dynamic, OpError> {
    let key = call.str("key")?;
    let n: i64 = run_cmd(call, key_cmd("EXISTS", &key), "EXISTS")?;
    Ok(Dynamic::from_bool(n > 0))
}

pub const TYPE: Primitive = Primitive::read("type", key_type)
    .params(&[req("key", Ty::Str)])
    .returns(Ty::Str)
    .doc("The key's type (string, list, set, zset, hash, stream), or \"none\".")
    .example(r#"redis.type("queue:emails")"#);
fn key_type(call: &mut Call) -> Result<Dynamic, OpError> {
    let key = call.str("key")?;
    let t: String = run_cmd(call, key_cmd("TYPE", &key), "TYPE")?;
    Ok(t.into())
}

/// A value Redis stores as its text: structured data goes through
/// json.stringify first.
pub(super) const SCALAR: Ty = Ty::OneOf(&[Ty::Str, Ty::Int, Ty::Float, Ty::Bool]);

/// A `SCALAR` argument as the text Redis stores.
pub(super) fn scalar_arg(call: &Call, name: &str) -> Result<String, OpError> {
    match call.value(name)? {
        Some(d) => Ok(d.to_string()),
        None => Err(OpError::bad_input(format!("argument `{name}` is required"))),
    }
}

fn plan_set(call: &mut Call) -> Result<Plan, OpError> {
    let key = call.str("key")?;
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

pub const SET: Primitive = Primitive::mutate("set", plan_set, set)
    .params(&[
        req("key", Ty::Str),
        req("value", SCALAR),
        opt("opts", Ty::Record(&[field("ttl", Ty::Duration).doc("expire the key after this long; none by default")])),
    ])
    .returns(Ty::Record(&[
        field("key", Ty::Str),
        field("previous_type", Ty::Str).doc("what the key held before: string, hash, ..., or \"none\" for a new key"),
    ]))
    .says(says_set)
    .doc("SET a key, optionally with a time to live.\n\
          A mutation: --dry-run reports whether it would overwrite (and what), protected targets ask, it is audited.")
    .example(r#"redis.set("feature:new_checkout", "on", #{ttl: "1h"})"#);
fn set(call: &mut Call) -> Result<Dynamic, OpError> {
    let key = call.str("key")?;
    let value = scalar_arg(call, "value")?;
    let ttl = call.opts("opts")?.duration("ttl")?;
    let ty: String = run_cmd(call, key_cmd("TYPE", &key), "TYPE")?;
    let mut cmd = redis::cmd("SET");
    cmd.arg(&key).arg(&value);
    if let Some(d) = ttl {
        cmd.arg("PX").arg(d.as_millis().max(1) as u64);
    }
    let _: String = run_cmd(call, cmd, "SET")?;
    Ok(Dynamic::from_map(map_of([
        ("key", key.into()),
        ("previous_type", ty.into()),
    ])))
}

fn keys_arg(call: &Call) -> Result<Vec<String>, OpError> {
    call.strings("keys")?
        .ok_or_else(|| OpError::bad_input("argument `keys` is required"))
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

pub const DEL: Primitive = Primitive::mutate("del", plan_del, del)
    .params(&[req("keys", STRINGS)])
    .returns(Ty::Int)
    .says(says_del)
    .doc("Delete one key or an array of keys (UNLINK); returns how many existed.")
    .example(r#"redis.del(["cache:a", "cache:b"])"#);
fn del(call: &mut Call) -> Result<Dynamic, OpError> {
    let keys = keys_arg(call)?;
    if let Some(max) = crate::policy::limit(call, crate::policy::Limit::MaxKeys)? {
        if keys.len() as i64 > max.value {
            return Err(crate::policy::over(
                &format!("redis.del of {} keys", keys.len()),
                &max,
                "nothing was deleted",
            ));
        }
    }
    let mut cmd = redis::cmd("UNLINK");
    cmd.arg(&keys);
    let n: i64 = run_cmd(call, cmd, "UNLINK")?;
    if n == 0 {
        call.changed_nothing();
    }
    Ok(Dynamic::from_int(n))
}

fn matching(call: &mut Call) -> Result<(String, Vec<String>, crate::policy::Applied), OpError> {
    let pattern = call.str("pattern")?;
    let configured = crate::policy::limit(call, crate::policy::Limit::MaxKeys)?;
    let own = call.opts("opts")?.int("max")?;
    let limit = crate::policy::ceiling(own, configured, 1000, "max");
    let max = limit.value;
    // One more than max is enough to know the match is too broad.
    let keys = scan_keys(
        call,
        &pattern,
        None,
        1000,
        usize::try_from(max + 1).unwrap_or(usize::MAX),
    )?;
    Ok((pattern, keys, limit))
}

fn too_many(pattern: &str, max: &crate::policy::Applied) -> OpError {
    OpError::refused(format!(
        "more than {} keys match `{pattern}` (the limit: {}); nothing was deleted",
        max.value, max.from
    ))
    .with_hint("narrow the pattern, or pass #{max: N} with a deliberate N after a --dry-run (a [limits] max_keys is a ceiling #{max} cannot raise)")
}

fn plan_del_matching(call: &mut Call) -> Result<Plan, OpError> {
    let (pattern, keys, limit) = matching(call)?;
    let max = limit.value;
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

pub const DEL_MATCHING: Primitive = Primitive::mutate("del_matching", plan_del_matching, del_matching)
    .params(&[
        req("pattern", Ty::Str),
        opt("opts", Ty::Record(&[field("max", Ty::Int).doc("refuse when more keys than this match; default `[limits] max_keys`, else 1000; cannot exceed max_keys")])),
    ])
    .returns(Ty::Record(&[
        field("deleted", Ty::Int),
        field("pattern", Ty::Str),
    ]))
    .says(says_del_matching)
    .doc("Delete every key matching a glob, by SCAN and batched UNLINK.\n\
          Refuses when more than `max` keys match (default 1000): raise it deliberately. --dry-run reports the count and a sample.")
    .example(r#"redis.del_matching("cache:user:*", #{max: 50000})"#);
fn del_matching(call: &mut Call) -> Result<Dynamic, OpError> {
    let (pattern, keys, max) = matching(call)?;
    if keys.len() as i64 > max.value {
        return Err(too_many(&pattern, &max));
    }
    let mut deleted = 0i64;
    for batch in keys.chunks(500) {
        let mut cmd = redis::cmd("UNLINK");
        cmd.arg(batch);
        let n: i64 = run_cmd(call, cmd, "UNLINK")?;
        deleted += n;
    }
    if deleted == 0 {
        call.changed_nothing();
    }
    Ok(Dynamic::from_map(map_of([
        ("deleted", Dynamic::from_int(deleted)),
        ("pattern", pattern.into()),
    ])))
}

/// The database flushdb empties: never a default, so a forgotten option
/// cannot empty db 0.
fn flush_db(call: &Call) -> Result<i64, OpError> {
    call.opts("opts")?
        .int("db")?
        .ok_or_else(|| OpError::bad_input("the database must be named explicitly: #{db: N}"))
}

fn plan_flushdb(call: &mut Call) -> Result<Plan, OpError> {
    let db = flush_db(call)?;
    let (mut c, t) = db_conn(call, db)?;
    let n: i64 = c
        .query(call, &t, &redis::cmd("DBSIZE"), "DBSIZE")
        .map_err(|(_, e)| e)?;
    Ok(Plan {
        summary: format!("would FLUSHDB db {db}, deleting {n} keys"),
        details: map_of([
            ("db", Dynamic::from_int(db)),
            ("keys", Dynamic::from_int(n)),
        ]),
    })
}

pub const FLUSHDB: Primitive = Primitive::mutate("flushdb", plan_flushdb, flushdb)
    .params(&[req("opts", Ty::Record(&[field("db", Ty::Int).doc("the database to empty; required")]))])
    .returns(Ty::Record(&[
        field("db", Ty::Int),
        field("deleted", Ty::Int).doc("keys it held just before"),
    ]))
    .says(says_flushdb)
    .doc("Empty one database, named explicitly: #{db: 3}. FLUSHALL is not offered.\n\
          Runs on a connection opened for that db alone, so a reconnect cannot land it on another database. --dry-run reports the key count.")
    .example("redis.flushdb(#{db: 2})");
fn flushdb(call: &mut Call) -> Result<Dynamic, OpError> {
    let db = flush_db(call)?;
    let (mut c, t) = db_conn(call, db)?;
    let n: i64 = c
        .query(call, &t, &redis::cmd("DBSIZE"), "DBSIZE")
        .map_err(|(_, e)| e)?;
    let _: String = c
        .query(call, &t, &redis::cmd("FLUSHDB"), "FLUSHDB")
        .map_err(|(_, e)| e)?;
    Ok(Dynamic::from_map(map_of([
        ("db", Dynamic::from_int(db)),
        ("deleted", Dynamic::from_int(n)),
    ])))
}

pub const BIGGEST: Primitive = Primitive::read("biggest", biggest)
    .params(&[opt(
        "opts",
        Ty::Record(&[
            field("sample", Ty::Int).doc("keys to SCAN and measure; default 1000"),
            field("top", Ty::Int).doc("rows to return; default 10"),
            field("pattern", Ty::Str).doc("glob the sampled keys match; default \"*\""),
        ]),
    )])
    .returns(Ty::Rows(&[
        field("key", Ty::Str),
        field("type", Ty::Str),
        field("bytes", Ty::Int)
            .doc("MEMORY USAGE: the key and its value, estimated from 5 samples of nested values"),
    ]))
    .doc(
        "The largest keys in a sample, by MEMORY USAGE, largest first.\n\
          A sample, not a full scan: cheap on a busy server.",
    )
    .example("show(redis.biggest(#{sample: 5000, top: 5}))");
fn biggest(call: &mut Call) -> Result<Dynamic, OpError> {
    let opts = call.opts("opts")?;
    let sample = usize::try_from(opts.int("sample")?.unwrap_or(1000)).unwrap_or(0);
    let top = usize::try_from(opts.int("top")?.unwrap_or(10)).unwrap_or(0);
    let pattern = opts.str("pattern")?.unwrap_or_else(|| "*".into());
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
    Ok(Dynamic::from_array(out))
}

fn ttl_arg(call: &Call) -> Result<std::time::Duration, OpError> {
    call.opt_duration("ttl")?
        .ok_or_else(|| OpError::bad_input("argument `ttl` is required"))
}

fn plan_expire(call: &mut Call) -> Result<Plan, OpError> {
    let key = call.str("key")?;
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

pub const EXPIRE: Primitive = Primitive::mutate("expire", plan_expire, expire)
    .params(&[req("key", Ty::Str), req("ttl", Ty::Duration)])
    .returns(Ty::Bool)
    .says(says_expire)
    .doc("Set a key's time to live (\"10m\" or seconds); false when the key does not exist.")
    .example(r#"redis.expire("session:42", "30m")"#);
fn expire(call: &mut Call) -> Result<Dynamic, OpError> {
    let key = call.str("key")?;
    let d = ttl_arg(call)?;
    let mut cmd = redis::cmd("PEXPIRE");
    cmd.arg(&key).arg(d.as_millis().max(1) as u64);
    let n: i64 = run_cmd(call, cmd, "PEXPIRE")?;
    if n == 0 {
        call.changed_nothing();
    }
    Ok(Dynamic::from_bool(n == 1))
}

fn says_set(_: &Call, r: &Dynamic) -> String {
    match said(r, "previous_type").as_str() {
        "none" => format!("set {} (a new key)", said(r, "key")),
        t => format!("set {} (it held a {t})", said(r, "key")),
    }
}

fn says_del(call: &Call, r: &Dynamic) -> String {
    let asked = call
        .strings("keys")
        .ok()
        .flatten()
        .map(|k| k.len())
        .unwrap_or(0);
    format!("deleted {r} of {asked} keys")
}

fn says_del_matching(call: &Call, r: &Dynamic) -> String {
    format!(
        "deleted {} keys matching `{}`",
        said(r, "deleted"),
        call.str("pattern").unwrap_or_default()
    )
}

fn says_flushdb(_: &Call, r: &Dynamic) -> String {
    format!("flushed db {} ({} keys)", said(r, "db"), said(r, "deleted"))
}

fn says_expire(call: &Call, r: &Dynamic) -> String {
    let key = call.str("key").unwrap_or_default();
    match r.as_bool() {
        Ok(true) => format!("set a ttl on {key}"),
        _ => format!("set no ttl on {key}: it does not exist"),
    }
}
