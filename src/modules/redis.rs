//! Redis, on the redis crate's multiplexed async connection: one per target.

use crate::config::Target;
use crate::dispatch::{Call, ErrorKind, OpError};
use crate::engine::Handle;
use crate::registry::{opt, req, CallTimeout, Effect, ModuleDecl, Primitive};
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
