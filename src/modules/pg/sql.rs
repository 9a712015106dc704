//! The general-purpose calls: connect, ping, query, exec.

use super::conn::read_only_rows_and_columns;
use super::conn::{bound, pg_error, pool};
use crate::dispatch::{counted, said};
use crate::dispatch::{Applied, Call, OpError, Plan};
use crate::engine::Handle;
use crate::registry::{field, opt, req, Primitive, Ty};
use crate::value::map_of;
use rhai::Dynamic;
use sqlx::Row;
use std::time::Instant;

pub const CONNECT: Primitive = Primitive::handle("connect", connect, false)
    .params(&[req("target", Ty::Str).target()])
    .doc("Connect to a named target or a postgres:// URL and return a handle with the same methods as `pg`.\n\
          Connects at once, so a wrong password or an unreachable server fails on this line. TLS follows the URL's `sslmode` (disable, prefer, require, verify-ca, verify-full; `sslrootcert=/path/ca.pem` for a private CA).")
    .example(r#"let db = pg.connect("staging"); db.query("select 1 as one")"#);

fn connect(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = call.str("target")?;
    let t = call.session.resolve(crate::config::Kind::Pg, Some(&name))?;
    call.set_target(t);
    pool(call)?;
    Ok(Dynamic::from(Handle {
        module: "pg",
        target: Some(name),
    }))
}

pub const PING: Primitive = Primitive::read("ping", ping)
    .returns(Ty::Float)
    .doc("Round-trip a trivial query; returns the latency in milliseconds.")
    .example("let ms = pg.ping();");

fn ping(call: &mut Call) -> Result<Dynamic, OpError> {
    let (pool, t) = pool(call)?;
    call.block_on(async move {
        let started = Instant::now();
        sqlx::query("select 1")
            .execute(&pool)
            .await
            .map_err(|e| pg_error(e, &t, "ping"))?;
        Ok(Dynamic::from_float(
            (started.elapsed().as_secs_f64() * 1e4).round() / 10.0,
        ))
    })
}

pub const QUERY: Primitive = Primitive::read("query", query)
    .params(&[req("sql", Ty::Str), opt("params", Ty::Array)])
    // The columns are the query's own: `show` keeps the SELECT's order.
    .returns(Ty::List(&Ty::Map))
    .doc("Run a query with bound parameters ($1, $2, ...) and return its rows as maps with typed values.\n\
          Read-only on the server: the query runs in a READ ONLY transaction that is rolled back, so PostgreSQL refuses any write (UPDATE ... RETURNING, a data-modifying WITH, SELECT INTO, nextval) with an error that points to pg.exec. \
          ints and floats stay numbers, numeric without fraction is an int, timestamps are RFC 3339 strings, json/jsonb are maps, arrays are arrays. Cast a string parameter in SQL when its type matters (`$1::timestamptz`).")
    .example(r#"pg.query("select datname, pg_database_size(datname) as bytes from pg_database where datname = $1", ["postgres"])"#);

fn query(call: &mut Call) -> Result<Dynamic, OpError> {
    let sql = call.str("sql")?;
    let params = call.array("params")?;
    let (rows, columns) = read_only_rows_and_columns(call, &sql, &params, "query failed")?;
    // The columns are the query's own: `show` keeps the SELECT's order.
    call.session.out.column_order(&columns);
    Ok(Dynamic::from_array(
        rows.into_iter().map(Dynamic::from_map).collect(),
    ))
}

pub const EXEC: Primitive = Primitive::mutate("exec", plan_exec, exec)
    .params(&[req("sql", Ty::Str), opt("params", Ty::Array)])
    .returns(Ty::Record(&[field("rows_affected", Ty::Int)]))
    .says(says_exec)
    .doc("Execute one statement (INSERT, UPDATE, DELETE, DDL).\n\
          A mutation: under --dry-run it runs EXPLAIN on the target instead and reports the planner's row estimate, changing nothing; on a protected target it asks for confirmation; it is audited. \
          Under a `max_rows` limit (`[limits]`) it runs in a transaction that is rolled back, changing nothing, when the statement affected more rows.")
    .example(r#"pg.exec("update jobs set state = 'queued' where state = $1", ["stuck"])"#);

fn exec(call: &mut Call) -> Result<Dynamic, OpError> {
    let sql = call.str("sql")?;
    let params = call.array("params")?;
    let (pool, t) = pool(call)?;
    // The planner's estimate beside the real count in the audit log: a
    // review sees "estimated 15, changed 1000". EXPLAIN costs one round
    // trip and never executes; a statement it cannot plan (DDL) has none.
    if worth_estimating(&sql) {
        if let Ok(Some(v)) = explain(call, &pool, &t, &sql, &params) {
            let (rows, node) = estimate(&v);
            call.audit_field(
                "estimate",
                serde_json::json!({"planner_rows": rows, "node": node}),
            );
        }
    }
    if let Some(max) = crate::policy::limit(call, crate::policy::Limit::MaxRows)? {
        return exec_limited(call, &pool, &t, &sql, &params, max);
    }
    let cancel = call.session.cancel.clone();
    let deadline = call.deadline();
    let timeout = call.session.call_timeout;
    call.session.rt.block_on(async move {
        let mut conn = pool
            .acquire()
            .await
            .map_err(|e| pg_error(e, &t, "connect"))?;
        let pid: i32 = sqlx::query_scalar("select pg_backend_pid()")
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| pg_error(e, &t, "statement failed"))?;
        let q = bound(&sql, &params)?;
        let run = q.execute(&mut *conn);
        tokio::pin!(run);
        let expired = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        // From here the statement is on its way: a stop must not drop it
        // and guess, but ask PostgreSQL to cancel it and read its answer.
        let stopped = tokio::select! {
            r = &mut run => return sent(r, &t),
            reason = cancel.cancelled() => Some(reason),
            _ = expired => None,
        };
        let mut e = match stopped {
            Some(reason) => {
                let mut e = OpError::failed(reason.describe());
                e.cancelled = Some(reason);
                e
            }
            None => OpError::new(
                crate::dispatch::ErrorKind::Timeout,
                format!("timed out after {}", humantime::format_duration(timeout)),
            )
            .with_hint("raise the per-call timeout with --call-timeout; the statement was cancelled on the server"),
        };
        let answer = cancel_and_wait(&pool, pid, &mut run).await;
        let mut result = None;
        let (applied, why) = match answer {
            Some(Ok(res)) => {
                result = Some(rows_affected(res.rows_affected()));
                (Applied::Yes, "it committed before the cancel request reached it".to_string())
            }
            Some(Err(sqlx::Error::Database(db))) if db.code().as_deref() == Some("57014") => (
                Applied::No,
                "PostgreSQL cancelled the statement: nothing was changed".to_string(),
            ),
            Some(Err(other)) => (
                Applied::Unknown,
                format!("after the cancel request the statement ended with: {}", crate::redact::redact(&other.to_string())),
            ),
            None => (
                Applied::Unknown,
                "no answer from PostgreSQL within 5s of the cancel request".to_string(),
            ),
        };
        if e.cancelled.is_none() {
            // A timeout is reported as an error, not a stop: its message
            // carries what became of the statement.
            e.message = format!("{} ({why})", e.message);
        }
        Err(e.with_applied(applied, why, result))
    })
}

/// Under `max_rows` the statement runs in a transaction that is rolled back
/// when it touched more: the count is only known once it ran. A stop before
/// the commit drops the transaction, which rolls it back.
fn exec_limited(
    call: &Call,
    pool: &sqlx::PgPool,
    t: &crate::config::Target,
    sql: &str,
    params: &rhai::Array,
    max: crate::policy::Applied,
) -> Result<Dynamic, OpError> {
    call.block_on(async move {
        let mut tx = pool.begin().await.map_err(|e| pg_error(e, t, "begin"))?;
        let res = bound(sql, params)?
            .execute(&mut *tx)
            .await
            .map_err(|e| pg_error(e, t, "statement failed"))?;
        let n = res.rows_affected();
        if n as i64 > max.value {
            tx.rollback()
                .await
                .map_err(|e| pg_error(e, t, "rollback"))?;
            return Err(crate::policy::over(
                &format!("the statement affected {n} rows"),
                &max,
                "it was rolled back and nothing was changed",
            ));
        }
        tx.commit().await.map_err(|e| pg_error(e, t, "commit"))?;
        Ok(rows_affected(n))
    })
}

/// Statements whose row count the planner estimates usefully: not DDL
/// (EXPLAIN refuses it, a wasted round trip) nor `INSERT ... VALUES`.
fn worth_estimating(sql: &str) -> bool {
    let lower = sql.trim_start().to_ascii_lowercase();
    let verb = lower.split_whitespace().next().unwrap_or("");
    match verb {
        "update" | "delete" | "merge" | "with" => true,
        "insert" => lower.contains("select"),
        _ => false,
    }
}

fn rows_affected(n: u64) -> Dynamic {
    Dynamic::from_map(map_of([("rows_affected", Dynamic::from_int(n as i64))]))
}

/// The answer to a statement that was sent. Once it is on the wire, a
/// lost connection (the backend killed, the server crashed) leaves its
/// outcome unknown: say so, and never retry it.
fn sent(
    r: Result<sqlx::postgres::PgQueryResult, sqlx::Error>,
    t: &crate::config::Target,
) -> Result<Dynamic, OpError> {
    match r {
        Ok(res) => Ok(rows_affected(res.rows_affected())),
        Err(e) if connection_lost(&e) => Err(OpError::new(
            crate::dispatch::ErrorKind::OutcomeUnknown,
            format!("outcome unknown: the connection to {} was lost after the statement was sent", t.name),
        )
        .with_cause(crate::redact::redact(&e.to_string()))
        .with_hint("opsh did not retry it: check the data before re-running (pg.query), then run it again if it did not land")),
        Err(e) => Err(pg_error(e, t, "statement failed")),
    }
}

/// An error that ends the connection rather than the statement: the
/// server's answer about the statement never arrived.
fn connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_) => true,
        // admin_shutdown (pg_terminate_backend), crash_shutdown,
        // cannot_connect_now: a FATAL about the session, not the statement.
        sqlx::Error::Database(db) => {
            matches!(db.code().as_deref(), Some("57P01" | "57P02" | "57P03"))
        }
        _ => false,
    }
}

/// PostgreSQL's cancel request for backend `pid` (pg_cancel_backend from
/// another connection), repeated while the statement has not answered,
/// since a request that arrives between statements is ignored. Then the
/// statement's own answer says whether it committed. None: no answer in 5s.
async fn cancel_and_wait<F>(
    pool: &sqlx::PgPool,
    pid: i32,
    run: &mut std::pin::Pin<&mut F>,
) -> Option<Result<sqlx::postgres::PgQueryResult, sqlx::Error>>
where
    F: std::future::Future<Output = Result<sqlx::postgres::PgQueryResult, sqlx::Error>>,
{
    let give_up = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let request = async {
            let _ = sqlx::query("select pg_cancel_backend($1)")
                .bind(pid)
                .execute(pool)
                .await;
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        };
        tokio::select! {
            r = &mut *run => return Some(r),
            _ = request => {}
            _ = tokio::time::sleep_until(give_up) => return None,
        }
    }
}

/// EXPLAIN, never ANALYZE: the planner on the real target validates the
/// statement and estimates its rows without executing it.
fn plan_exec(call: &mut Call) -> Result<Plan, OpError> {
    let sql = call.str("sql")?;
    let params = call.array("params")?;
    let (pool, t) = pool(call)?;
    let short: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    let (summary, details) = match explain(call, &pool, &t, &sql, &params)? {
        Some(v) => {
            let (rows, node) = estimate(&v);
            (
                format!("would execute `{short}` ({node}, planner estimates {rows} rows)"),
                map_of([
                    ("sql", short.clone().into()),
                    ("estimated_rows", Dynamic::from_int(rows)),
                    ("node", node.into()),
                ]),
            )
        }
        None => (
            format!("would execute `{short}` (a utility statement: no row estimate)"),
            map_of([
                ("sql", short.clone().into()),
                ("estimated_rows", Dynamic::UNIT),
            ]),
        ),
    };
    Ok(Plan { summary, details })
}

/// EXPLAIN (FORMAT JSON) of the statement; None for a utility statement
/// (DDL, VACUUM), which cannot be explained.
fn explain(
    call: &Call,
    pool: &sqlx::PgPool,
    t: &crate::config::Target,
    sql: &str,
    params: &rhai::Array,
) -> Result<Option<serde_json::Value>, OpError> {
    let explain = format!("EXPLAIN (FORMAT JSON) {sql}");
    call.block_on(async {
        // EXPLAIN without ANALYZE executes nothing; the read-only
        // transaction makes that PostgreSQL's guarantee too, whatever text
        // follows EXPLAIN.
        let mut tx = pool
            .begin_with("BEGIN READ ONLY")
            .await
            .map_err(|e| pg_error(e, t, "explain"))?;
        let answer = bound(&explain, params)?.fetch_one(&mut *tx).await;
        let _ = tx.rollback().await;
        match answer {
            Ok(row) => {
                let v: sqlx::types::Json<serde_json::Value> =
                    row.try_get(0).map_err(|e| pg_error(e, t, "explain"))?;
                Ok(Some(v.0))
            }
            // Utility statements (DDL, VACUUM) cannot be explained: 42601 syntax error at EXPLAIN.
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42601") => Ok(None),
            Err(e) => Err(pg_error(e, t, "the statement does not plan")),
        }
    })
}

/// The planner's row estimate and the plan's top node ("Update on jobs").
fn estimate(v: &serde_json::Value) -> (i64, String) {
    let top = &v[0]["Plan"];
    // ModifyTable returns no rows itself; the scan below it estimates
    // how many rows the statement touches.
    let scan = if top["Node Type"] == "ModifyTable" {
        &top["Plans"][0]
    } else {
        top
    };
    let rows = scan["Plan Rows"].as_i64().unwrap_or(0);
    let node = top["Operation"]
        .as_str()
        .or(top["Node Type"].as_str())
        .unwrap_or("?")
        .to_string();
    let rel = top["Relation Name"]
        .as_str()
        .map(|r| format!(" on {r}"))
        .unwrap_or_default();
    (rows, format!("{node}{rel}"))
}

fn says_exec(call: &Call, r: &Dynamic) -> String {
    // The statement's own verb says what the rows went through; other
    // statements (DDL) are named, shortened.
    let sql = call.str("sql").unwrap_or_default();
    let short: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    let verb = match short
        .split(' ')
        .next()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("update") => "updated",
        Some("delete") => "deleted",
        Some("insert") => "inserted",
        Some("merge") => "merged",
        _ => {
            let shown: String = short.chars().take(60).collect();
            let more = if shown.len() < short.len() { "..." } else { "" };
            return format!("pg.exec: ran `{shown}{more}`");
        }
    };
    format!(
        "pg.exec: {verb} {}",
        counted(&said(r, "rows_affected"), "row")
    )
}
