//! Connections: a plain target's driven by the calling thread (direct.rs),
//! redis-rs's multiplexed one for TLS, sentinel and the rest; errors with
//! hints, and reads that survive one broken connection.

use super::direct::{Direct, Failure, Plain, Stop, Watch};
use crate::config::{Kind, Target};
use crate::dispatch::{Call, ErrorKind, OpError};
use crate::engine::Handle;
use crate::registry::{req, Primitive, Ty};
use crate::session::Session;
use rhai::Dynamic;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub(super) fn redis_error(e: redis::RedisError, t: &Target, what: &str) -> OpError {
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
        if let Some(e) =
            crate::netcause::connect_error(&cause, "Redis", &t.display(), &t.host_port(6379))
        {
            return e;
        }
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

/// A connection to the call's target, for one or more commands: a plain
/// target's comes from its idle list (or is opened) and goes back there
/// when dropped unless it broke.
pub(super) enum Conn {
    Direct {
        c: Option<Direct>,
        home: Option<Idle>,
    },
    Multiplexed(redis::aio::MultiplexedConnection),
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Conn::Direct {
            c,
            home: Some(home),
        } = self
        {
            if let Some(c) = c.take().filter(|c| !c.broken) {
                home.put(c);
            }
        }
    }
}

impl Conn {
    /// Runs one command. The error says whether the connection broke (a
    /// read may try again on a new one) besides what went wrong.
    pub(super) fn query<T: redis::FromRedisValue + Send + 'static>(
        &mut self,
        call: &Call,
        t: &Target,
        cmd: &redis::Cmd,
        what: &str,
    ) -> Result<T, (bool, OpError)> {
        match self {
            Conn::Direct { c: Some(c), .. } => c
                .query(cmd, watch(call))
                .map_err(|f| (f.broken(), failure(call, t, what, f))),
            Conn::Direct { c: None, .. } => Err((true, OpError::failed(what.to_string()))),
            Conn::Multiplexed(m) => {
                let mut m = m.clone();
                let cmd = cmd.clone();
                // The outer Result is the call's deadline/cancellation; the
                // inner one says whether the connection broke.
                match call.block_on(async move {
                    Ok(cmd.query_async::<T>(&mut m).await.map_err(|e| {
                        (
                            e.is_io_error() || e.is_connection_dropped(),
                            redis_error(e, t, what),
                        )
                    }))
                }) {
                    Ok(r) => r,
                    Err(e) => Err((false, e)),
                }
            }
        }
    }
}

/// A plain target (its URL parsed once per run) and the idle connections
/// the calling thread drives to it: a `parallel` over one target opens one
/// per worker, and keeps a few.
#[derive(Clone)]
pub(super) struct Idle {
    plain: Arc<Plain>,
    conns: Arc<Mutex<Vec<Direct>>>,
}

impl Idle {
    const KEEP: usize = 4;

    /// The entry for `url`, or None when it is not a plain target (the
    /// multiplexed connection's then): decided once per URL and run.
    fn of(call: &Call, url: &str) -> Result<Option<Idle>, OpError> {
        call.session.client::<Option<Idle>>(url, || {
            Ok(Plain::of(url).map(|p| Idle {
                plain: Arc::new(p),
                conns: Arc::default(),
            }))
        })
    }

    /// An idle connection, or a new one.
    fn take(&self, call: &Call, t: &Target) -> Result<Direct, OpError> {
        if let Some(c) = self.conns.lock().ok().and_then(|mut v| v.pop()) {
            return Ok(c);
        }
        Direct::open(&self.plain, watch(call)).map_err(|f| failure(call, t, "connect", f))
    }

    fn put(&self, c: Direct) {
        if let Ok(mut idle) = self.conns.lock() {
            if idle.len() < Self::KEEP {
                idle.push(c);
            }
        }
    }
}

/// What stops this call's waits on a socket.
fn watch(call: &Call) -> Watch {
    Watch {
        cancel: call.session.cancel.clone(),
        deadline: call.deadline().map(|d| d.into_std()),
    }
}

fn failure(call: &Call, t: &Target, what: &str, f: Failure) -> OpError {
    match f {
        Failure::Stopped(Stop::Cancelled(r)) => crate::dispatch::stopped(r),
        Failure::Stopped(Stop::Deadline) => call.timed_out(),
        Failure::ConnectTimeout => crate::netcause::connect_error(
            "connect timed out",
            "Redis",
            &t.display(),
            &t.host_port(6379),
        )
        .unwrap_or_else(|| OpError::failed(format!("cannot talk to {}", t.display()))),
        Failure::Redis(e) => redis_error(e, t, what),
    }
}

pub(super) fn conn(call: &mut Call) -> Result<(Conn, Target), OpError> {
    let t = call.target()?;
    if super::cluster::is_cluster(&t.url) {
        return Err(OpError::bad_input(format!(
            "{} needs one node: only redis.ping and redis.info fan out over a cluster target",
            call.prim.full_name()
        ))
        .with_hint("connect to a node with redis.connect(\"redis://host:port\") for the rest"));
    }
    let call: &Call = call;
    adopt_prewarmed(call, &t)?;
    if let Some(home) = Idle::of(call, &t.url)? {
        let c = home.take(call, &t)?;
        return Ok((
            Conn::Direct {
                c: Some(c),
                home: Some(home),
            },
            t,
        ));
    }
    let c = call
        .session
        .client::<redis::aio::MultiplexedConnection>(&t.url, || {
            let cfg = config(call.session);
            let invalid = |e: redis::RedisError| {
                OpError::bad_input(format!("invalid Redis URL for {}", t.display()))
                    .with_cause(crate::redact::redact(&e.to_string()))
            };
            match parse_sentinel_url(&t.url) {
                Some(s) => {
                    let mut client = s.client().map_err(invalid)?;
                    let t = &t;
                    call.block_on(async move {
                        client
                            .get_async_connection_with_config(&cfg)
                            .await
                            .map_err(|e| redis_error(e, t, "connect through sentinel"))
                    })
                }
                None => {
                    let client = client(&t.url).map_err(invalid)?;
                    call.block_on(async {
                        client
                            .get_multiplexed_async_connection_with_config(&cfg)
                            .await
                            .map_err(|e| redis_error(e, &t, "connect"))
                    })
                }
            }
        })?;
    Ok((Conn::Multiplexed(c), t))
}

/// A client for `url` that opens connections without the pipelined
/// `CLIENT SETINFO` redis-rs sends by default: a full round trip per
/// connection, which a 500-target fan-out pays 500 times, and which Redis
/// before 7.2 answers with an error anyway.
pub(super) fn client(url: &str) -> redis::RedisResult<redis::Client> {
    use redis::IntoConnectionInfo;
    let info = url.into_connection_info()?;
    let settings = info.redis_settings().clone().set_skip_set_lib_name();
    redis::Client::open(info.set_redis_settings(settings))
}

fn config(session: &Session) -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(super::direct::CONNECT_LIMIT))
        .set_response_timeout(
            // --call-timeout 0s: no limit.
            Some(session.call_timeout).filter(|t| !t.is_zero()),
        )
}

/// A connection `prewarm` opened.
enum Opened {
    Direct(Direct),
    Multiplexed(redis::aio::MultiplexedConnection),
}

type Connecting = tokio::task::JoinHandle<Option<Opened>>;

/// A connection to the default target started at launch, still connecting
/// or done: the first redis call takes it over.
#[derive(Clone)]
struct Prewarmed(Arc<Mutex<Option<Connecting>>>);

/// Starts connecting to the default Redis target (one node; a cluster or a
/// sentinel target connects on first use) in the background. A failure is
/// forgotten: the first call connects again and reports it.
pub fn prewarm(session: &Session) {
    let Ok(t) = session.resolve(Kind::Redis, None) else {
        return;
    };
    if super::cluster::is_cluster(&t.url) || parse_sentinel_url(&t.url).is_some() {
        return;
    }
    let task = match Plain::of(&t.url) {
        Some(plain) => {
            let w = Watch {
                cancel: session.cancel.clone(),
                deadline: None,
            };
            session
                .rt
                .spawn_blocking(move || Direct::open(&plain, w).ok().map(Opened::Direct))
        }
        None => {
            let Ok(client) = client(&t.url) else {
                return;
            };
            let cfg = config(session);
            session.rt.spawn(async move {
                client
                    .get_multiplexed_async_connection_with_config(&cfg)
                    .await
                    .ok()
                    .map(Opened::Multiplexed)
            })
        }
    };
    let warm = Prewarmed(Arc::new(Mutex::new(Some(task))));
    let _ = session.client::<Prewarmed>(&t.url, || Ok(warm));
}

/// Takes over the connection `prewarm` started for `t`, once.
fn adopt_prewarmed(call: &Call, t: &Target) -> Result<(), OpError> {
    let Ok(warm) = call
        .session
        .client::<Prewarmed>(&t.url, || Err(OpError::failed("not prewarmed")))
    else {
        return Ok(());
    };
    call.session.drop_client::<Prewarmed>(&t.url);
    let task = match warm.0.lock() {
        Ok(mut g) => g.take(),
        Err(poisoned) => poisoned.into_inner().take(),
    };
    let Some(task) = task else {
        return Ok(());
    };
    match call.block_on(async { Ok(task.await.ok().flatten()) })? {
        Some(Opened::Direct(c)) => {
            if let Some(home) = Idle::of(call, &t.url)? {
                home.put(c);
            }
        }
        Some(Opened::Multiplexed(c)) => {
            call.session
                .client::<redis::aio::MultiplexedConnection>(&t.url, || Ok(c))?;
        }
        None => {}
    }
    Ok(())
}

pub const CONNECT: Primitive = Primitive::handle("connect", connect, false)
    .params(&[req("target", Ty::Str).target()])
    .doc("Connect to a named target or a redis:// URL and return a handle with the same methods as `redis`.")
    .example(r#"let cache = redis.connect("cache"); cache.ping()"#);
fn connect(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = call.str("target")?;
    let t = call
        .session
        .resolve(crate::config::Kind::Redis, Some(&name))?;
    call.set_target(t);
    conn(call)?;
    Ok(Dynamic::from(Handle {
        module: call.prim.module.name,
        target: Some(name),
    }))
}

pub const PING: Primitive = Primitive::read("ping", ping)
    .returns(Ty::Float)
    .doc("PING the server; returns the round trip in milliseconds.\n\
          On a cluster target (redis+cluster://) every node found by CLUSTER NODES is pinged and the slowest round trip is returned; any node failing fails the call.")
    .example("let ms = redis.ping();");
fn ping(call: &mut Call) -> Result<Dynamic, OpError> {
    if super::cluster::is_cluster(&call.target()?.url) {
        return super::cluster::ping(call);
    }
    let started = Instant::now();
    let _: String = run_cmd(call, redis::cmd("PING"), "PING")?;
    Ok(Dynamic::from_float(
        (started.elapsed().as_secs_f64() * 1e4).round() / 10.0,
    ))
}

/// A broken connection is not reused: the next call reconnects.
pub(super) fn forget_on_io<T>(call: &mut Call, r: &Result<T, OpError>) {
    if r.is_err() {
        if let Ok(t) = call.target() {
            call.session
                .drop_client::<redis::aio::MultiplexedConnection>(&t.url);
            // The server went away or restarted: its idle connections did too.
            call.session.drop_client::<Option<Idle>>(&t.url);
        }
    }
}

/// Runs one command on the call's target connection. A read whose
/// connection broke (server restart, idle kill) is retried once on a fresh
/// connection, which is opened from the target URL and so lands on the
/// pinned db again: a reconnect never silently moves to db 0.
pub(super) fn run_cmd<T: redis::FromRedisValue + Send + 'static>(
    call: &mut Call,
    cmd: redis::Cmd,
    what: &'static str,
) -> Result<T, OpError> {
    let attempts = if call.prim.mutates() { 1 } else { 2 };
    let mut last = None;
    for _ in 0..attempts {
        let (mut c, t) = conn(call)?;
        match c.query(call, &t, &cmd, what) {
            Ok(v) => return Ok(v),
            Err((broken, e)) => {
                drop(c);
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

/// A connection opened for `db` alone, never shared, so no reconnect or
/// SELECT elsewhere can point it at another database.
pub(super) fn db_conn(call: &mut Call, db: i64) -> Result<(Conn, Target), OpError> {
    let t = call.target()?;
    let mut u = url::Url::parse(&t.url).map_err(|e| {
        OpError::bad_input(format!("invalid Redis URL for {}", t.display())).with_cause(e)
    })?;
    u.set_path(&format!("/{db}"));
    if let Some(plain) = Plain::of(u.as_str()) {
        let c = Direct::open(&plain, watch(call)).map_err(|f| failure(call, &t, "connect", f))?;
        return Ok((
            Conn::Direct {
                c: Some(c),
                home: None,
            },
            t,
        ));
    }
    let client = client(u.as_str()).map_err(|e| {
        OpError::bad_input("invalid Redis URL").with_cause(crate::redact::redact(&e.to_string()))
    })?;
    let t2 = t.clone();
    let c = call.block_on(async move {
        client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| redis_error(e, &t2, "connect"))
    })?;
    Ok((Conn::Multiplexed(c), t))
}

pub(super) fn value_to_dynamic(v: &redis::Value) -> Dynamic {
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

/// `redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]`:
/// the sentinels to ask, the monitored master's name, and the credentials
/// and db for the master itself.
pub(super) struct SentinelUrl {
    sentinels: Vec<String>,
    service: String,
    master: String,
}

impl SentinelUrl {
    fn client(&self) -> redis::RedisResult<redis::sentinel::SentinelClient> {
        use redis::IntoConnectionInfo;
        let info = self
            .master
            .as_str()
            .into_connection_info()?
            .redis_settings()
            .clone()
            .set_skip_set_lib_name();
        redis::sentinel::SentinelClient::build(
            self.sentinels.clone(),
            self.service.clone(),
            Some(
                redis::sentinel::SentinelNodeConnectionInfo::default()
                    .set_redis_connection_info(info),
            ),
            redis::sentinel::SentinelServerType::Master,
        )
    }
}

pub(super) fn parse_sentinel_url(url: &str) -> Option<SentinelUrl> {
    let rest = url.strip_prefix("redis+sentinel://")?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (creds, hosts) = match authority.rsplit_once('@') {
        Some((c, h)) => (format!("{c}@"), h),
        None => (String::new(), authority),
    };
    let mut parts = path.split('/').filter(|p| !p.is_empty());
    let service = parts.next()?.to_string();
    let db = parts.next().unwrap_or("0");
    let sentinels = hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|h| format!("redis://{h}"))
        .collect::<Vec<_>>();
    if sentinels.is_empty() {
        return None;
    }
    Some(SentinelUrl {
        sentinels,
        service,
        master: format!("redis://{creds}sentinel-master/{db}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls() {
        let s = parse_sentinel_url("redis+sentinel://u:p@h1:26379,h2:26380/mymaster/3").unwrap();
        assert_eq!(s.sentinels, vec!["redis://h1:26379", "redis://h2:26380"]);
        assert_eq!(s.service, "mymaster");
        assert_eq!(s.master, "redis://u:p@sentinel-master/3");
        assert!(parse_sentinel_url("redis://h:1/0").is_none());
        assert!(parse_sentinel_url("redis+sentinel://h:1").is_none());
    }
}
