//! How big things are: db_size, databases, table_sizes. Every size comes
//! twice: raw bytes (an int, to compute with) and pg_size_pretty (to read).

use super::conn::{rows, rows_to_array};
use crate::dispatch::{Call, OpError};
use crate::registry::{field, opt, Primitive, Ty};
use rhai::{Array, Dynamic};

pub const DB_SIZE: Primitive = Primitive::read("db_size", db_size)
    .params(&[opt("name", Ty::Str)])
    .returns(Ty::Record(&[
        field("database", Ty::Str),
        field("bytes", Ty::Int).doc("as pg_database_size reports it"),
        field("size", Ty::Str).doc("human-readable"),
    ]))
    .doc("Size of a database (default: the connected one).")
    .example(r#"let gb = pg.db_size().bytes / 1073741824.0;"#);

fn db_size(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = call.opt_str("name")?;
    let params: Array = vec![name.clone().map(Dynamic::from).unwrap_or(Dynamic::UNIT)];
    let r = rows(
        call,
        "select d.datname as database, pg_database_size(d.oid) as bytes,
                pg_size_pretty(pg_database_size(d.oid)) as size
         from pg_database d where d.datname = coalesce($1::text, current_database())",
        &params,
        "reading the database size failed",
    )?;
    match r.into_iter().next() {
        Some(m) => Ok(Dynamic::from_map(m)),
        None => Err(OpError::bad_input(format!(
            "no database named `{}`",
            name.unwrap_or_default()
        ))
        .with_hint("list them with pg.databases()")),
    }
}

pub const DATABASES: Primitive = Primitive::read("databases", databases)
    .returns(Ty::Rows(&[
        field("database", Ty::Str),
        field("owner", Ty::Str),
        field("encoding", Ty::Str),
        field("bytes", Ty::Int).doc("() where you may not connect"),
        field("size", Ty::Str).doc("human-readable; () where you may not connect"),
        field("connections", Ty::Int),
        field("allow_connections", Ty::Bool),
        field("is_template", Ty::Bool),
        field("xid_age", Ty::Int).doc("transaction-ID wraparound age"),
    ]))
    .doc("Every database, largest first.")
    .example("show(pg.databases())");

fn databases(call: &mut Call) -> Result<Dynamic, OpError> {
    let r = rows(
        call,
        "select d.datname as database, pg_get_userbyid(d.datdba) as owner,
                pg_encoding_to_char(d.encoding) as encoding,
                case when has_database_privilege(d.oid, 'CONNECT') then pg_database_size(d.oid) end as bytes,
                case when has_database_privilege(d.oid, 'CONNECT') then pg_size_pretty(pg_database_size(d.oid)) end as size,
                (select count(*) from pg_stat_activity a where a.datid = d.oid)::int8 as connections,
                d.datallowconn as allow_connections, d.datistemplate as is_template,
                age(d.datfrozenxid)::int8 as xid_age
         from pg_database d order by bytes desc nulls last, database",
        &Array::new(),
        "listing databases failed",
    )?;
    Ok(rows_to_array(r))
}

pub const TABLE_SIZES: Primitive = Primitive::read("table_sizes", table_sizes)
    .params(&[opt(
        "opts",
        Ty::Record(&[
            field("schema", Ty::Str).doc("default: every non-system schema"),
            field("limit", Ty::Int).doc("default 20"),
        ]),
    )])
    .returns(Ty::Rows(&[
        field("schema", Ty::Str),
        field("table", Ty::Str),
        field("total_bytes", Ty::Int).doc("table, indexes and TOAST"),
        field("table_bytes", Ty::Int),
        field("index_bytes", Ty::Int),
        field("toast_bytes", Ty::Int),
        field("total_size", Ty::Str).doc("human-readable"),
        field("table_size", Ty::Str),
        field("index_size", Ty::Str),
        field("toast_size", Ty::Str),
        field("estimated_rows", Ty::Int),
    ]))
    .doc("Largest tables first, sizes as raw bytes (to compute with) and human-readable (to read).")
    .example(r#"show(pg.table_sizes(#{schema: "public", limit: 10}))"#);

fn table_sizes(call: &mut Call) -> Result<Dynamic, OpError> {
    let opts = call.opts("opts")?;
    let schema = opts.str("schema")?;
    let limit = opts.int("limit")?.unwrap_or(20);
    if limit < 0 {
        return Err(OpError::bad_input("option `limit` cannot be negative"));
    }
    let params: Array = vec![
        schema.map(Dynamic::from).unwrap_or(Dynamic::UNIT),
        Dynamic::from_int(limit),
    ];
    let r = rows(
        call,
        "select n.nspname as schema, c.relname as table,
                pg_total_relation_size(c.oid) as total_bytes,
                pg_relation_size(c.oid) as table_bytes,
                pg_indexes_size(c.oid) as index_bytes,
                coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0) as toast_bytes,
                pg_size_pretty(pg_total_relation_size(c.oid)) as total_size,
                pg_size_pretty(pg_relation_size(c.oid)) as table_size,
                pg_size_pretty(pg_indexes_size(c.oid)) as index_size,
                pg_size_pretty(coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0)) as toast_size,
                greatest(c.reltuples, 0)::int8 as estimated_rows
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where c.relkind in ('r', 'm', 'p')
           and case when $1::text is null
                    then n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%'
                    else n.nspname = $1::text end
         order by pg_total_relation_size(c.oid) desc, 1, 2
         limit $2",
        &params,
        "reading table sizes failed",
    )?;
    Ok(rows_to_array(r))
}
