//! PostgreSQL, on sqlx: one small pool per target, reused for the run.

mod decode;

pub use decode::unix_to_rfc3339;

use crate::config::Target;
use crate::dispatch::{Call, ErrorKind, OpError, Plan};
use crate::engine::Handle;
use crate::redact::redact;
use crate::registry::{opt, req, CallTimeout, Effect, ModuleDecl, Primitive};
use crate::value::map_of;
use rhai::{Array, Dynamic};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::query::Query;
use sqlx::{Connection, Postgres, Row};
use std::str::FromStr;
use std::time::{Duration, Instant};

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "pg",
    doc: "PostgreSQL: queries, statements, health. Targets come from [pg.NAME] in the config, DATABASE_URL or the PG* variables.",
    target: Some(crate::config::Kind::Pg),
    primitives: &[
        Primitive {
            module: "pg",
            name: "connect",
            params: &[req("target", "string")],
            returns: "pg handle",
            doc: "Connect to a named target or a postgres:// URL and return a handle with the same methods as `pg`.\n\
                  Connects at once, so a wrong password or an unreachable server fails on this line.",
            example: r#"let db = pg.connect("staging"); db.query("select 1 as one")"#,
            effect: Effect::Read(connect),
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "pg",
            name: "ping",
            params: &[],
            returns: "float",
            doc: "Round-trip a trivial query; returns the latency in milliseconds.",
            example: "let ms = pg.ping();",
            effect: Effect::Read(ping),
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "pg",
            name: "query",
            params: &[req("sql", "string"), opt("params", "array")],
            returns: "array of maps",
            doc: "Run a query with bound parameters ($1, $2, ...) and return its rows as maps with typed values.\n\
                  ints and floats stay numbers, numeric without fraction is an int, timestamps are RFC 3339 strings, json/jsonb are maps, arrays are arrays. Cast a string parameter in SQL when its type matters (`$1::timestamptz`).",
            example: r#"pg.query("select datname, pg_database_size(datname) as bytes from pg_database where datname = $1", ["postgres"])"#,
            effect: Effect::Read(query),
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "pg",
            name: "exec",
            params: &[req("sql", "string"), opt("params", "array")],
            returns: "map",
            doc: "Execute one statement (INSERT, UPDATE, DELETE, DDL) and return #{rows_affected}.\n\
                  A mutation: under --dry-run it runs EXPLAIN on the target instead and reports the planner's row estimate, changing nothing; on a protected target it asks for confirmation; it is audited.",
            example: r#"pg.exec("update jobs set state = 'queued' where state = $1", ["stuck"])"#,
            effect: Effect::Mutate { plan: plan_exec, apply: exec },
            timeout: CallTimeout::Default,
        },
    ],
};

/// Turns a sqlx error into what the operator needs: PostgreSQL's message
/// and SQLSTATE, and a hint for the usual suspects.
fn pg_error(e: sqlx::Error, t: &Target, what: &str) -> OpError {
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
                "3D000" => Some("the database in the URL does not exist; list them with pg.query(\"select datname from pg_database\")".into()),
                "42P01" => Some("the table does not exist here; check the schema and search_path".into()),
                "57014" => Some("the statement was cancelled (statement_timeout or an operator)".into()),
                "53300" => Some("the server has no free connection slots; see pg_stat_activity".into()),
                _ => None,
            });
            OpError::failed(format!("{what} on {}", t.name))
                .with_cause(cause)
                .hint_opt(hint)
        }
        sqlx::Error::Io(io) => OpError::failed(format!("cannot connect to {}", t.display()))
            .with_cause(io)
            .with_hint(format!("is PostgreSQL running on {}?", t.host_port(5432))),
        sqlx::Error::PoolTimedOut => OpError::new(
            ErrorKind::Timeout,
            format!("timed out connecting to {}", t.display()),
        )
        .with_hint(format!(
            "is PostgreSQL reachable on {}? a firewall or a full server can cause this",
            t.host_port(5432)
        )),
        sqlx::Error::Tls(err) => OpError::failed(format!("TLS with {} failed", t.display()))
            .with_cause(err)
            .with_hint("check sslmode and the server certificate (sslrootcert)"),
        sqlx::Error::Configuration(err) => {
            OpError::bad_input(format!("invalid PostgreSQL URL for {}", t.display()))
                .with_cause(err)
        }
        other => OpError::failed(format!("{what} on {}", t.display())).with_cause(other),
    }
}

fn pool(call: &mut Call) -> Result<(PgPool, Target), OpError> {
    let t = call.target()?;
    let call: &Call = call;
    let p = call.session.client::<PgPool>(&t.url, || {
        let opts = PgConnectOptions::from_str(&t.url)
            .map_err(|e| {
                OpError::bad_input(format!("invalid PostgreSQL URL for {}", t.display()))
                    .with_cause(redact(&e.to_string()))
            })?
            .application_name("opsh");
        // One plain connection first: the pool retries refused connections
        // until its timeout, which would turn "nothing listens there" into a
        // slow, vague timeout. A lone connect fails at once and precisely.
        call.block_on(async {
            let first =
                tokio::time::timeout(Duration::from_secs(10), PgConnection::connect_with(&opts))
                    .await
                    .map_err(|_| pg_error(sqlx::Error::PoolTimedOut, &t, "connect"))?
                    .map_err(|e| pg_error(e, &t, "connect"))?;
            let _ = first.close().await;
            Ok(())
        })?;
        // The pool spawns its maintenance task on the current runtime.
        let _rt = call.session.rt.enter();
        Ok(PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(opts))
    })?;
    Ok((p, t))
}

type PgQuery<'q> = Query<'q, Postgres, PgArguments>;

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

fn bound<'q>(sql: &'q str, params: &Array) -> Result<PgQuery<'q>, OpError> {
    let mut q = sqlx::query(sql);
    for (i, p) in params.iter().enumerate() {
        q = bind(q, p, i)?;
    }
    Ok(q)
}

fn connect(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = call.str_arg(0)?;
    let t = call.session.resolve(crate::config::Kind::Pg, Some(&name))?;
    call.set_target(t);
    pool(call)?;
    Ok(Dynamic::from(Handle {
        module: "pg",
        target: Some(name),
    }))
}

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

fn query(call: &mut Call) -> Result<Dynamic, OpError> {
    let sql = call.str_arg(0)?;
    let params = call.opt_array(1)?;
    let (pool, t) = pool(call)?;
    call.block_on(async move {
        let rows = bound(&sql, &params)?
            .fetch_all(&pool)
            .await
            .map_err(|e| pg_error(e, &t, "query failed"))?;
        if let Some(first) = rows.first() {
            use sqlx::Column;
            crate::output::column_order_hint(
                &first
                    .columns()
                    .iter()
                    .map(|c| c.name().to_string())
                    .collect::<Vec<_>>(),
            );
        }
        Ok(Dynamic::from_array(
            rows.iter()
                .map(|r| Dynamic::from_map(decode::row_to_map(r)))
                .collect(),
        ))
    })
}

fn exec(call: &mut Call) -> Result<Dynamic, OpError> {
    let sql = call.str_arg(0)?;
    let params = call.opt_array(1)?;
    let (pool, t) = pool(call)?;
    call.block_on(async move {
        let res = bound(&sql, &params)?
            .execute(&pool)
            .await
            .map_err(|e| pg_error(e, &t, "statement failed"))?;
        Ok(Dynamic::from_map(map_of([(
            "rows_affected",
            Dynamic::from_int(res.rows_affected() as i64),
        )])))
    })
}

/// EXPLAIN, never ANALYZE: the planner on the real target validates the
/// statement and estimates its rows without executing it.
fn plan_exec(call: &mut Call) -> Result<Plan, OpError> {
    let sql = call.str_arg(0)?;
    let params = call.opt_array(1)?;
    let (pool, t) = pool(call)?;
    let short: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    let explain = format!("EXPLAIN (FORMAT JSON) {sql}");
    let explained = call.block_on(async {
        match bound(&explain, &params)?.fetch_one(&pool).await {
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
