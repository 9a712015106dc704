//! The general-purpose calls: connect, ping, query, exec.

use super::conn::read_only_rows_and_columns;
use super::conn::{bound, pg_error, pool};
use crate::dispatch::{Call, OpError, Plan};
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
    .doc("Execute one statement (INSERT, UPDATE, DELETE, DDL).\n\
          A mutation: under --dry-run it runs EXPLAIN on the target instead and reports the planner's row estimate, changing nothing; on a protected target it asks for confirmation; it is audited. \
          Under a `max_rows` limit (`[limits]`) it runs in a transaction that is rolled back, changing nothing, when the statement affected more rows.")
    .example(r#"pg.exec("update jobs set state = 'queued' where state = $1", ["stuck"])"#);

fn exec(call: &mut Call) -> Result<Dynamic, OpError> {
    let sql = call.str("sql")?;
    let params = call.array("params")?;
    let (pool, t) = pool(call)?;
    let max = crate::policy::limit(call, crate::policy::Limit::MaxRows)?;
    call.block_on(async move {
        let Some(max) = max else {
            let res = bound(&sql, &params)?
                .execute(&pool)
                .await
                .map_err(|e| pg_error(e, &t, "statement failed"))?;
            return Ok(rows_affected(res.rows_affected()));
        };
        // Under max_rows the statement runs in a transaction that is rolled
        // back when it touched more: the count is only known once it ran.
        let mut tx = pool.begin().await.map_err(|e| pg_error(e, &t, "begin"))?;
        let res = bound(&sql, &params)?
            .execute(&mut *tx)
            .await
            .map_err(|e| pg_error(e, &t, "statement failed"))?;
        let n = res.rows_affected();
        if n as i64 > max.value {
            tx.rollback()
                .await
                .map_err(|e| pg_error(e, &t, "rollback"))?;
            return Err(crate::policy::over(
                &format!("the statement affected {n} rows"),
                &max,
                "it was rolled back and nothing was changed",
            ));
        }
        tx.commit().await.map_err(|e| pg_error(e, &t, "commit"))?;
        Ok(rows_affected(n))
    })
}

fn rows_affected(n: u64) -> Dynamic {
    Dynamic::from_map(map_of([("rows_affected", Dynamic::from_int(n as i64))]))
}

/// EXPLAIN, never ANALYZE: the planner on the real target validates the
/// statement and estimates its rows without executing it.
fn plan_exec(call: &mut Call) -> Result<Plan, OpError> {
    let sql = call.str("sql")?;
    let params = call.array("params")?;
    let (pool, t) = pool(call)?;
    let short: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    let explain = format!("EXPLAIN (FORMAT JSON) {sql}");
    let explained = call.block_on(async {
        // EXPLAIN without ANALYZE executes nothing; the read-only
        // transaction makes that PostgreSQL's guarantee too, whatever text
        // follows EXPLAIN.
        let mut tx = pool
            .begin_with("BEGIN READ ONLY")
            .await
            .map_err(|e| pg_error(e, &t, "explain"))?;
        let answer = bound(&explain, &params)?.fetch_one(&mut *tx).await;
        let _ = tx.rollback().await;
        match answer {
            Ok(row) => {
                let v: sqlx::types::Json<serde_json::Value> =
                    row.try_get(0).map_err(|e| pg_error(e, &t, "explain"))?;
                Ok(Some(v.0))
            }
            // Utility statements (DDL, VACUUM) cannot be explained: 42601 syntax error at EXPLAIN.
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42601") => Ok(None),
            Err(e) => Err(pg_error(e, &t, "the statement does not plan")),
        }
    })?;
    let (summary, details) = match explained {
        Some(v) => {
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
            (
                format!("would execute `{short}` ({node}{rel}, planner estimates {rows} rows)"),
                map_of([
                    ("sql", short.clone().into()),
                    ("estimated_rows", Dynamic::from_int(rows)),
                    ("node", format!("{node}{rel}").into()),
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
