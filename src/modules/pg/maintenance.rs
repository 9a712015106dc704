//! VACUUM (ANALYZE) and REINDEX. The object's name is resolved by the
//! server (to_regclass) and quoted by it (format('%I.%I')); the script's
//! text never reaches the utility statement.

use super::conn::{one, rows, run_utility};
use crate::dispatch::said;
use crate::dispatch::{Call, OpError, Plan};
use crate::registry::{field, opt, req, Primitive, Ty};
use crate::value::map_of;
use rhai::{Array, Dynamic, Map};
use std::time::Instant;

/// A relation the script named, as the server knows it.
struct Rel {
    /// Quoted, schema-qualified: safe to put into a utility statement.
    ident: String,
    info: Map,
}

fn resolve(call: &mut Call, name: &str, kinds: &[&str], what: &str) -> Result<Rel, OpError> {
    let r = rows(
        call,
        "select format('%I.%I', n.nspname, c.relname) as ident, c.relkind::text as kind,
                coalesce(s.n_dead_tup, 0) as dead_tuples, coalesce(s.n_live_tup, 0) as live_tuples,
                pg_total_relation_size(c.oid) as bytes, pg_size_pretty(pg_total_relation_size(c.oid)) as size,
                s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
         left join pg_stat_all_tables s on s.relid = c.oid
         where c.oid = to_regclass($1)",
        &vec![Dynamic::from(name.to_string())],
        &format!("looking up {what} `{name}` failed"),
    )?;
    let Some(mut info) = r.into_iter().next() else {
        return Err(OpError::bad_input(format!("no {what} named `{name}`"))
            .with_hint("name it as schema.name when it is not on the search_path; pg.table_sizes() lists tables"));
    };
    let s = |m: &Map, k: &str| m.get(k).map(|v| v.to_string()).unwrap_or_default();
    let kind = s(&info, "kind");
    if !kinds.contains(&kind.as_str()) {
        return Err(OpError::bad_input(format!(
            "`{name}` is not a {what} (relkind {kind})"
        )));
    }
    let ident = s(&info, "ident");
    info.remove("kind");
    Ok(Rel { ident, info })
}

const TABLE_KINDS: &[&str] = &["r", "m", "p"];

pub const VACUUM_ANALYZE: Primitive =
    Primitive::mutate("vacuum_analyze", plan_vacuum_analyze, vacuum_analyze)
        .params(&[opt("table", Ty::Str)])
        .returns(Ty::Record(&[
            field("table", Ty::Str).doc("quoted and schema-qualified; () for the whole database"),
            field("duration_ms", Ty::Int),
        ]))
        .says(says_vacuum)
        .doc("VACUUM (ANALYZE) one table (schema.table, resolved and quoted by the server) or, without a name, the whole database.\n\
              --dry-run reports the table's size and dead tuples.")
        .example(r#"pg.vacuum_analyze("public.jobs")"#);

fn plan_vacuum_analyze(call: &mut Call) -> Result<Plan, OpError> {
    match call.opt_str("table")? {
        Some(name) => {
            let rel = resolve(call, &name, TABLE_KINDS, "table")?;
            let dead = rel
                .info
                .get("dead_tuples")
                .cloned()
                .unwrap_or(Dynamic::UNIT);
            let size = rel.info.get("size").cloned().unwrap_or(Dynamic::UNIT);
            let mut details = rel.info;
            details.insert("table".into(), rel.ident.clone().into());
            Ok(Plan {
                summary: format!(
                    "would VACUUM (ANALYZE) {} ({size}, {dead} dead tuples)",
                    rel.ident
                ),
                details,
            })
        }
        None => {
            let m = one(
                call,
                "select current_database() as database,
                        (select count(*) from pg_stat_user_tables)::int8 as tables,
                        (select coalesce(sum(n_dead_tup), 0) from pg_stat_user_tables)::int8 as dead_tuples,
                        pg_size_pretty(pg_database_size(current_database())) as size",
                &Array::new(),
                "reading vacuum statistics failed",
            )?;
            let g = |k: &str| m.get(k).map(|v| v.to_string()).unwrap_or_default();
            Ok(Plan {
                summary: format!(
                    "would VACUUM (ANALYZE) the whole database {} ({} user tables, {} dead tuples, {})",
                    g("database"),
                    g("tables"),
                    g("dead_tuples"),
                    g("size")
                ),
                details: m,
            })
        }
    }
}

fn vacuum_analyze(call: &mut Call) -> Result<Dynamic, OpError> {
    let target = match call.opt_str("table")? {
        Some(name) => resolve(call, &name, TABLE_KINDS, "table")?.ident,
        None => String::new(),
    };
    let started = Instant::now();
    run_utility(
        call,
        &format!("VACUUM (ANALYZE) {target}"),
        "VACUUM (ANALYZE) failed",
    )?;
    Ok(Dynamic::from_map(map_of([
        (
            "table",
            if target.is_empty() {
                Dynamic::UNIT
            } else {
                target.into()
            },
        ),
        (
            "duration_ms",
            Dynamic::from_int(started.elapsed().as_millis() as i64),
        ),
    ])))
}

/// What REINDEX acts on, resolved and quoted by the server.
struct Reindex {
    /// TABLE | INDEX | DATABASE
    kind: &'static str,
    ident: String,
    concurrently: bool,
    /// Which indexes it rebuilds: a condition on pg_index i and
    /// p(target, concurrently). By name, not oid: REINDEX CONCURRENTLY
    /// gives an index a new oid under the same name.
    scope_sql: &'static str,
}

fn reindex_request(call: &mut Call) -> Result<Reindex, OpError> {
    let opts = call.opts("opts")?;
    let concurrently = opts.bool("concurrently")?;
    let named: Vec<(&str, String)> = ["table", "index", "database"]
        .iter()
        .filter_map(|k| opts.str(k).transpose().map(|v| v.map(|v| (*k, v))))
        .collect::<Result<_, _>>()?;
    let [(key, name)] = named.as_slice() else {
        return Err(OpError::bad_input(format!(
            "{} needs exactly one of `table`, `index` or `database`",
            call.prim.full_name()
        ))
        .with_hint("e.g. pg.reindex(#{index: \"jobs_state_idx\", concurrently: true})"));
    };
    match *key {
        "table" => {
            let rel = resolve(call, name, TABLE_KINDS, "table")?;
            Ok(Reindex {
                kind: "TABLE",
                ident: rel.ident,
                concurrently,
                scope_sql: "i.indrelid = to_regclass(p.target)",
            })
        }
        "index" => {
            let rel = resolve(call, name, &["i", "I"], "index")?;
            Ok(Reindex {
                kind: "INDEX",
                ident: rel.ident,
                concurrently,
                scope_sql: "i.indexrelid = to_regclass(p.target)",
            })
        }
        _ => {
            let m = one(
                call,
                "select current_database() as db, format('%I', current_database()) as ident",
                &Array::new(),
                "reading the current database failed",
            )?;
            let db = m.get("db").map(|v| v.to_string()).unwrap_or_default();
            if db != *name {
                return Err(OpError::bad_input(format!(
                    "REINDEX DATABASE works only on the database of the connection (`{db}`), not `{name}`"
                ))
                .with_hint(format!(
                    "connect to it first: pg.connect(\"postgres://.../{name}\").reindex(#{{database: \"{name}\"}})"
                )));
            }
            Ok(Reindex {
                kind: "DATABASE",
                ident: m.get("ident").map(|v| v.to_string()).unwrap_or_default(),
                concurrently,
                // CONCURRENTLY skips system catalogs (oids below
                // FirstNormalObjectId); count what it rebuilds.
                scope_sql: "(not p.concurrently or i.indrelid >= 16384)",
            })
        }
    }
}

fn index_sizes(call: &mut Call, r: &Reindex) -> Result<Map, OpError> {
    one(
        call,
        &format!(
            "select count(*)::int8 as indexes, coalesce(sum(pg_relation_size(i.indexrelid)), 0)::int8 as bytes
             from pg_index i, (select $1::text as target, $2::bool as concurrently) p
             where {}",
            r.scope_sql
        ),
        &vec![r.ident.clone().into(), Dynamic::from_bool(r.concurrently)],
        "reading index sizes failed",
    )
}

fn statement(r: &Reindex) -> String {
    format!(
        "REINDEX {}{} {}",
        r.kind,
        if r.concurrently { " CONCURRENTLY" } else { "" },
        r.ident
    )
}

pub const REINDEX: Primitive = Primitive::mutate("reindex", plan_reindex, reindex)
    .params(&[req(
        "opts",
        Ty::Record(&[
            field("table", Ty::Str),
            field("index", Ty::Str),
            field("database", Ty::Str).doc("the connected one"),
            field("concurrently", Ty::Bool).doc("REINDEX CONCURRENTLY: does not block writes"),
        ]),
    )])
    .returns(Ty::Record(&[
        field("statement", Ty::Str),
        field("indexes", Ty::Int).doc("how many indexes it rebuilt"),
        field("bytes_before", Ty::Int),
        field("bytes_after", Ty::Int),
        field("duration_ms", Ty::Int),
    ]))
    .says(says_reindex)
    .doc(
        "REINDEX exactly one of #{table}, #{index} or #{database}.\n\
          --dry-run reports the statement and the indexes' current size.",
    )
    .example(r#"pg.reindex(#{index: "jobs_state_idx", concurrently: true})"#);

fn plan_reindex(call: &mut Call) -> Result<Plan, OpError> {
    let r = reindex_request(call)?;
    let sizes = index_sizes(call, &r)?;
    let g = |k: &str| sizes.get(k).cloned().unwrap_or(Dynamic::UNIT);
    Ok(Plan {
        summary: format!(
            "would run `{}` ({} indexes, {} bytes)",
            statement(&r),
            g("indexes"),
            g("bytes")
        ),
        details: map_of([
            ("statement", statement(&r).into()),
            ("indexes", g("indexes")),
            ("bytes", g("bytes")),
        ]),
    })
}

fn reindex(call: &mut Call) -> Result<Dynamic, OpError> {
    let r = reindex_request(call)?;
    let before = index_sizes(call, &r)?;
    let started = Instant::now();
    run_utility(call, &statement(&r), "REINDEX failed")?;
    let ms = started.elapsed().as_millis() as i64;
    let after = index_sizes(call, &r)?;
    let g = |m: &Map, k: &str| m.get(k).cloned().unwrap_or(Dynamic::UNIT);
    Ok(Dynamic::from_map(map_of([
        ("statement", statement(&r).into()),
        ("indexes", g(&after, "indexes")),
        ("bytes_before", g(&before, "bytes")),
        ("bytes_after", g(&after, "bytes")),
        ("duration_ms", Dynamic::from_int(ms)),
    ])))
}

fn says_vacuum(_: &Call, r: &Dynamic) -> String {
    match said(r, "table").as_str() {
        "?" => format!(
            "vacuumed and analyzed the whole database in {} ms",
            said(r, "duration_ms")
        ),
        t => format!("vacuumed and analyzed {t} in {} ms", said(r, "duration_ms")),
    }
}

fn says_reindex(_: &Call, r: &Dynamic) -> String {
    format!(
        "ran `{}`: {} indexes rebuilt, {} -> {} bytes",
        said(r, "statement"),
        said(r, "indexes"),
        said(r, "bytes_before"),
        said(r, "bytes_after")
    )
}
