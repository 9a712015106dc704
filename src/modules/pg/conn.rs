//! Connections: one small pool per target for the run, connect and
//! statement timeouts, the error mapping, and row fetching shared by every
//! pg primitive.

use super::decode;
use crate::config::{Kind, Target};
use crate::dispatch::{Call, ErrorKind, OpError};
use crate::redact::redact;
use crate::session::Session;
use rhai::{Array, Dynamic, Map};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::query::Query;
use sqlx::Postgres;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The pg-specific knobs from `[defaults]`, read per call (cheap).
pub struct Settings {
    pub connect_timeout: Duration,
    /// None: leave the server's (or the URL's) statement_timeout alone.
    pub statement_timeout: Option<Duration>,
    pub max_terminate: i64,
}

pub fn settings(call: &Call) -> Result<Settings, OpError> {
    settings_of(call.session)
}

fn settings_of(session: &Session) -> Result<Settings, OpError> {
    let d = match session.config.read() {
        Ok(c) => c.defaults.clone(),
        Err(poisoned) => poisoned.into_inner().defaults.clone(),
    };
    let dur = |key: &str, v: Option<String>| -> Result<Option<Duration>, OpError> {
        v.map(|s| {
            crate::value::parse_duration(&Dynamic::from(s.clone())).map_err(|e| {
                OpError::bad_input(format!("[defaults] {key} in the config is invalid"))
                    .with_cause(e)
            })
        })
        .transpose()
    };
    let connect_timeout =
        dur("pg_connect_timeout", d.pg_connect_timeout)?.unwrap_or(Duration::from_secs(10));
    // By default the server gives up when opsh does, so a call that timed
    // out does not leave its query running on the server.
    let statement_timeout = match dur("pg_statement_timeout", d.pg_statement_timeout)? {
        Some(d) if d.is_zero() => None,
        Some(d) => Some(d),
        None => Some(session.call_timeout).filter(|t| !t.is_zero()),
    };
    Ok(Settings {
        connect_timeout,
        statement_timeout,
        max_terminate: d.pg_max_terminate.unwrap_or(50),
    })
}

const TLS_HINT: &str = "check sslmode in the URL; for verify-ca/verify-full give the CA that signed the server's certificate with sslrootcert=/path/ca.pem, and for verify-full connect by a name or IP the certificate lists";

/// Turns a sqlx error into what the operator needs: PostgreSQL's message
/// and SQLSTATE, and a hint for the usual suspects.
pub fn pg_error(e: sqlx::Error, t: &Target, what: &str) -> OpError {
    match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            let mut cause = format!("{} (SQLSTATE {code})", db.message());
            let mut hint = None;
            if let Some(pgerr) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                if let Some(d) = pgerr.detail() {
                    cause.push_str(&format!("; detail: {d}"));
                }
                hint = pgerr.hint().map(str::to_string);
            }
            let hint = hint.or_else(|| match code.as_str() {
                "28P01" | "28000" => Some(format!(
                    "check the user and password for {} (password_env / password_file in the config)",
                    t.name
                )),
                "3D000" => Some("the database in the URL does not exist; list them with pg.databases()".into()),
                "42P01" => Some("the table does not exist here; check the schema and search_path".into()),
                "57014" => Some("the statement was cancelled (statement_timeout, `[defaults] pg_statement_timeout`, or an operator)".into()),
                "53300" => Some("the server has no free connection slots; see pg.connections()".into()),
                "42501" => Some("the role lacks the privilege; connect as the table owner or a superuser".into()),
                _ => None,
            });
            OpError::failed(format!("{what} on {}", t.name))
                .with_cause(cause)
                .hint_opt(hint)
        }
        // rustls reports a refused certificate as an I/O error.
        sqlx::Error::Io(io)
            if io.kind() == std::io::ErrorKind::InvalidData
                || io.to_string().contains("certificate") =>
        {
            OpError::failed(format!("TLS with {} failed", t.display()))
                .with_cause(io)
                .with_hint(TLS_HINT)
        }
        sqlx::Error::Io(io) => crate::netcause::connect_error(
            &io.to_string(),
            "PostgreSQL",
            &t.display(),
            &t.host_port(5432),
        )
        .unwrap_or_else(|| {
            OpError::failed(format!("cannot connect to {}", t.display()))
                .with_cause(io)
                .with_hint(format!("is PostgreSQL running on {}?", t.host_port(5432)))
        }),
        sqlx::Error::PoolTimedOut => OpError::new(
            ErrorKind::Timeout,
            format!("timed out connecting to {}", t.display()),
        )
        .with_hint(format!(
            "is PostgreSQL reachable on {}? a firewall or a full server can cause this (`[defaults] pg_connect_timeout` sets the limit)",
            t.host_port(5432)
        )),
        sqlx::Error::Tls(err) => OpError::failed(format!("TLS with {} failed", t.display()))
            .with_cause(err)
            .with_hint(TLS_HINT),
        sqlx::Error::Configuration(err) => {
            OpError::bad_input(format!("invalid PostgreSQL URL for {}", t.display()))
                .with_cause(err)
        }
        other => OpError::failed(format!("{what} on {}", t.display())).with_cause(other),
    }
}

pub fn pool(call: &mut Call) -> Result<(PgPool, Target), OpError> {
    let t = call.target()?;
    let call: &Call = call;
    adopt_prewarmed(call, &t)?;
    let p = call.session.client::<PgPool>(&t.url, || {
        let (pool, opts) = new_pool(call.session, &t)?;
        // The first connection is the pool's own, kept idle for the first
        // call: a second, throwaway one would cost a connect per target and
        // could fail on a server whose last free slot the first still held.
        call.block_on(first_connection(&pool, &opts, &t))?;
        Ok(pool)
    })?;
    call.block_on(async {
        settled(&p).await;
        Ok(())
    })?;
    Ok((p, t))
}

/// A pool for `t` with no connection yet, and its connect options.
fn new_pool(session: &Session, t: &Target) -> Result<(PgPool, PgConnectOptions), OpError> {
    let s = settings_of(session)?;
    let mut opts = PgConnectOptions::from_str(&t.url)
        .map_err(|e| {
            OpError::bad_input(format!("invalid PostgreSQL URL for {}", t.display()))
                .with_cause(redact(&e.to_string()))
        })?
        .application_name("opsh");
    // A statement_timeout the URL sets itself (options=-c ...) wins.
    if let Some(st) = s
        .statement_timeout
        .filter(|_| !t.url.contains("statement_timeout"))
    {
        opts = opts.options([("statement_timeout", st.as_millis().to_string())]);
    }
    // The pool spawns its maintenance task on the current runtime.
    let _rt = session.rt.enter();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(s.connect_timeout)
        // sqlx pings a connection when it comes back to the pool and, by
        // default, again before lending it out: a round trip on every call
        // of a sequential script (a tenth of the daily check). Like
        // pgbouncer's server_check_delay, a connection checked on its
        // return less than RECHECK_AFTER ago is lent as it is; one idle for
        // longer is pinged first, so a restarted server or a killed
        // session between calls costs a reconnect, not an error.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for < RECHECK_AFTER {
                    return Ok(true);
                }
                Ok(sqlx::Connection::ping(conn).await.is_ok())
            })
        })
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                // When opsh gives up on a query (Ctrl-C, a timeout, the
                // REPL cancelling an entry) it drops the connection; with
                // this the server notices within a second and stops the
                // query instead of running it to the end (PostgreSQL 14+).
                if conn.server_version_num().is_some_and(|v| v >= 140000) {
                    sqlx::Executor::execute(
                        &mut *conn,
                        "SET client_connection_check_interval = '1s'",
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .connect_lazy_with(opts.clone());
    Ok((pool, opts))
}

/// How long a pooled connection may sit idle and still be lent without a
/// ping (see `new_pool`).
const RECHECK_AFTER: Duration = Duration::from_secs(1);

/// A connection to the default target started at launch, still connecting
/// or done: the first pg call takes it over.
#[derive(Clone)]
struct Prewarmed {
    pool: PgPool,
    connected: Arc<Mutex<Option<tokio::task::JoinHandle<bool>>>>,
}

/// Starts connecting to the default PostgreSQL target in the background,
/// so a script's first pg call overlaps its connect with other work (other
/// targets' connects). Lazy: a failure here is forgotten, and the first
/// call connects again and reports it; a script that never calls pg never
/// hears of it.
pub fn prewarm(session: &Session) {
    let Ok(t) = session.resolve(Kind::Pg, None) else {
        return;
    };
    let Ok((pool, opts)) = new_pool(session, &t) else {
        return;
    };
    let (p, target) = (pool.clone(), t.clone());
    let task = session
        .rt
        .spawn(async move { first_connection(&p, &opts, &target).await.is_ok() });
    let warm = Prewarmed {
        pool,
        connected: Arc::new(Mutex::new(Some(task))),
    };
    let _ = session.client::<Prewarmed>(&t.url, || Ok(warm));
}

/// Takes over a connection `prewarm` started for `t`, once: a connected
/// pool becomes the run's; a failed one is dropped, and `pool` connects
/// again in the call's name, with the call's error.
fn adopt_prewarmed(call: &Call, t: &Target) -> Result<(), OpError> {
    let Ok(warm) = call
        .session
        .client::<Prewarmed>(&t.url, || Err(OpError::failed("not prewarmed")))
    else {
        return Ok(());
    };
    call.session.drop_client::<Prewarmed>(&t.url);
    let task = match warm.connected.lock() {
        Ok(mut g) => g.take(),
        Err(poisoned) => poisoned.into_inner().take(),
    };
    let Some(task) = task else {
        return Ok(());
    };
    let connected = call.block_on(async { Ok(task.await.unwrap_or(false)) })?;
    if connected {
        call.session.client::<PgPool>(&t.url, || Ok(warm.pool))?;
    }
    Ok(())
}

/// Opens the pool's first connection, failing as precisely as a lone
/// connect would. The pool quietly retries a refused connection until its
/// timeout, which would turn "nothing listens there" into a slow, vague
/// timeout; so when the connect is not done at once, a bare socket probe
/// (no PostgreSQL session, no connection slot) tells a refused port apart.
async fn first_connection(
    pool: &PgPool,
    opts: &PgConnectOptions,
    t: &Target,
) -> Result<(), OpError> {
    let acquire = pool.acquire();
    tokio::pin!(acquire);
    let probe = async {
        // A loopback connect takes ~10 ms; the pool's first retry comes
        // after its 10 ms backoff.
        tokio::time::sleep(Duration::from_millis(20)).await;
        match refused(opts).await {
            Some(e) => e,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        r = &mut acquire => match r {
            // Back to the pool, idle, for the call that asked for it
            // (`settled` waits for it).
            Ok(c) => {
                drop(c);
                Ok(())
            }
            // The pool retries a server with no free slot (or one still
            // starting) until its timeout, and then says only that it timed
            // out: one more connect says why (briefly: a server that
            // accepts and never answers would hold it too).
            Err(sqlx::Error::PoolTimedOut) => {
                let lone = tokio::time::timeout(
                    Duration::from_millis(500),
                    <sqlx::PgConnection as sqlx::Connection>::connect_with(opts),
                )
                .await;
                Err(match lone {
                    Ok(Err(e @ sqlx::Error::Database(_))) => pg_error(e, t, "connect"),
                    Ok(Ok(c)) => {
                        let _ = sqlx::Connection::close(c).await;
                        pg_error(sqlx::Error::PoolTimedOut, t, "connect")
                    }
                    _ => pg_error(sqlx::Error::PoolTimedOut, t, "connect"),
                })
            }
            Err(e) => Err(pg_error(e, t, "connect")),
        },
        e = probe => Err(pg_error(sqlx::Error::Io(e), t, "connect")),
    }
}

/// Waits (briefly) for the connections earlier calls released to be back
/// in the pool. sqlx returns a connection from a spawned task after a ping;
/// a call that came first would open another connection, a second session
/// on the server for a sequential script, and on a server with no free slot
/// it would wait for one until the connect timeout, though its own
/// connection was about to be idle.
async fn settled(pool: &PgPool) {
    let started = std::time::Instant::now();
    while pool.size() as usize > pool.num_idle() {
        let waited = started.elapsed();
        // Really in use (calls running concurrently): the pool grows.
        if waited > Duration::from_millis(100) {
            break;
        }
        // The return is a loopback round trip away, usually: look again
        // soon, after a nap rather than a spin (`yield_now` in `block_on`
        // re-polls at once), which on a small machine takes the core the
        // server's answer and the runtime's worker are waiting for. The
        // caller is never a runtime worker (`Call::block_on`): it may block.
        if waited < Duration::from_millis(2) {
            std::thread::sleep(Duration::from_micros(50));
        } else {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// The error of a socket connect to the server's address when it is
/// refused (or the Unix socket is missing); None when something listens.
async fn refused(opts: &PgConnectOptions) -> Option<std::io::Error> {
    let port = opts.get_port();
    let host = opts.get_host();
    let result = match opts.get_socket() {
        #[cfg(unix)]
        Some(dir) => tokio::net::UnixStream::connect(dir.join(format!(".s.PGSQL.{port}")))
            .await
            .map(drop),
        #[cfg(unix)]
        None if host.starts_with('/') => {
            tokio::net::UnixStream::connect(format!("{host}/.s.PGSQL.{port}"))
                .await
                .map(drop)
        }
        _ => tokio::net::TcpStream::connect((host, port)).await.map(drop),
    };
    result.err().filter(|e| {
        matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
        )
    })
}

pub type PgQuery<'q> = Query<'q, Postgres, PgArguments>;

fn bind<'q>(q: PgQuery<'q>, d: &Dynamic, i: usize) -> Result<PgQuery<'q>, OpError> {
    Ok(if d.is_unit() {
        q.bind(None::<String>)
    } else if let Ok(b) = d.as_bool() {
        q.bind(b)
    } else if let Ok(n) = d.as_int() {
        q.bind(n)
    } else if let Ok(f) = d.as_float() {
        q.bind(f)
    } else if d.is_string() {
        q.bind(d.to_string())
    } else if let Some(arr) = d.read_lock::<Array>() {
        if arr.iter().all(|x| x.is_int()) {
            q.bind(
                arr.iter()
                    .filter_map(|x| x.as_int().ok())
                    .collect::<Vec<i64>>(),
            )
        } else if arr.iter().all(|x| x.is_float() || x.is_int()) {
            q.bind(
                arr.iter()
                    .map(|x| {
                        x.as_float()
                            .or_else(|_| x.as_int().map(|i| i as f64))
                            .unwrap_or(0.0)
                    })
                    .collect::<Vec<f64>>(),
            )
        } else if arr.iter().all(|x| x.is_string()) {
            q.bind(arr.iter().map(|x| x.to_string()).collect::<Vec<String>>())
        } else {
            q.bind(sqlx::types::Json(crate::value::to_json(d)))
        }
    } else if d.is_map() {
        q.bind(sqlx::types::Json(crate::value::to_json(d)))
    } else {
        return Err(OpError::bad_input(format!(
            "parameter ${} has type {}, which cannot be sent to PostgreSQL",
            i + 1,
            crate::value::type_name(d)
        )));
    })
}

/// A query with its parameters bound in order ($1, $2, ...).
pub fn bound<'q>(sql: &'q str, params: &Array) -> Result<PgQuery<'q>, OpError> {
    let mut q = sqlx::query(sql);
    for (i, p) in params.iter().enumerate() {
        q = bind(q, p, i)?;
    }
    Ok(q)
}

/// Runs a query and returns its rows as maps.
pub fn rows(call: &mut Call, sql: &str, params: &Array, what: &str) -> Result<Vec<Map>, OpError> {
    rows_and_columns(call, sql, params, what).map(|(rows, _)| rows)
}

/// The rows and the SELECT's column names, in its order.
pub fn rows_and_columns(
    call: &mut Call,
    sql: &str,
    params: &Array,
    what: &str,
) -> Result<(Vec<Map>, Vec<String>), OpError> {
    let (pool, t) = pool(call)?;
    call.block_on(async move {
        let rows = bound(sql, params)?
            .fetch_all(&pool)
            .await
            .map_err(|e| pg_error(e, &t, what))?;
        Ok(maps_and_columns(&rows))
    })
}

/// Rows as maps, and the column names in the statement's order (empty
/// when no row came back).
fn maps_and_columns(rows: &[sqlx::postgres::PgRow]) -> (Vec<Map>, Vec<String>) {
    use sqlx::{Column, Row};
    let columns = rows
        .first()
        .map(|first| {
            first
                .columns()
                .iter()
                .map(|c| c.name().to_string())
                .collect()
        })
        .unwrap_or_default();
    (rows.iter().map(decode::row_to_map).collect(), columns)
}

/// A script's own query, in a transaction PostgreSQL itself keeps
/// read-only, always rolled back: an UPDATE ... RETURNING, a data-modifying
/// CTE, SELECT INTO or nextval() is refused by the server, not by a guess at
/// the text. The statement cannot turn the mode off from inside
/// (`set_config('transaction_read_only', 'off', true)` fails once the
/// statement's snapshot is taken), and one statement is all the extended
/// protocol accepts, so nothing runs after it in the same transaction.
pub fn read_only_rows_and_columns(
    call: &mut Call,
    sql: &str,
    params: &Array,
    what: &str,
) -> Result<(Vec<Map>, Vec<String>), OpError> {
    let (pool, t) = pool(call)?;
    let me = call.prim.full_name();
    call.block_on(async move {
        let mut tx = pool
            .begin_with("BEGIN READ ONLY")
            .await
            .map_err(|e| pg_error(e, &t, what))?;
        let fetched = bound(sql, params)?.fetch_all(&mut *tx).await;
        // A read has nothing to commit; ROLLBACK also undoes a SET the
        // statement made. Dropping `tx` would roll back too, lazily.
        let _ = tx.rollback().await;
        let rows = fetched.map_err(|e| read_only_error(e, &t, what, &me))?;
        Ok(maps_and_columns(&rows))
    })
}

/// PostgreSQL refused a write in a read-only transaction (25006), or the
/// statement tried to leave read-only mode (25001): the script used a read
/// primitive for a change.
fn read_only_error(e: sqlx::Error, t: &Target, what: &str, me: &str) -> OpError {
    let code = match &e {
        sqlx::Error::Database(db) => db.code().map(|c| c.to_string()),
        _ => None,
    };
    match code.as_deref() {
        Some("25006") | Some("25001") => {
            let mut err = OpError::bad_input(format!(
                "the query tried to change data on {} and PostgreSQL refused: {me} is read-only; nothing was changed",
                t.name
            ));
            err.cause = pg_error(e, t, what).cause;
            err.with_hint("use pg.exec for a statement that changes data (UPDATE ... RETURNING, INSERT, nextval, SELECT INTO): it is dry-run aware, confirmed on protected targets and audited")
        }
        _ => pg_error(e, t, what),
    }
}

/// The single row of a query that always returns one.
pub fn one(call: &mut Call, sql: &str, params: &Array, what: &str) -> Result<Map, OpError> {
    rows(call, sql, params, what)?
        .into_iter()
        .next()
        .ok_or_else(|| OpError::failed(format!("{what}: the server returned no row")))
}

/// A statement of opsh's own with no parameters, on the simple protocol
/// (VACUUM, REINDEX ... CONCURRENTLY refuse to run inside a transaction).
pub fn run_utility(call: &mut Call, sql: &str, what: &str) -> Result<(), OpError> {
    let (pool, t) = pool(call)?;
    call.block_on(async move {
        sqlx::raw_sql(sql)
            .execute(&pool)
            .await
            .map_err(|e| pg_error(e, &t, what))?;
        Ok(())
    })
}

pub fn rows_to_array(rows: Vec<Map>) -> Dynamic {
    Dynamic::from_array(rows.into_iter().map(Dynamic::from_map).collect())
}
