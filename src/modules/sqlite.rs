//! SQLite files, read-only, through the `sqlite3` command-line shell (a
//! system package) rather than a linked library: integrity checks of a
//! live database or a backup, and queries for reports.

use crate::dispatch::{Call, OpError};
use crate::registry::{field, opt, req, ModuleDecl, Primitive, Ty};
use crate::value::{from_json, map_of};
use rhai::Dynamic;

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "sqlite",
    doc: "SQLite database files, opened read-only (needs the sqlite3 shell on PATH).",
    target: None,
    primitives: &[QUERY, INTEGRITY_CHECK],
};

fn sqlite3(call: &Call, path: &str, sql: &str) -> Result<Vec<serde_json::Value>, OpError> {
    if !std::path::Path::new(path).is_file() {
        return Err(OpError::bad_input(format!("{path} is not a file"))
            .with_hint("give the path of the SQLite database file on this machine"));
    }
    // The shell runs an argument that starts with a dot as one of its own
    // commands (.shell, .system, .output, .open), not as SQL.
    if sql.trim_start().starts_with('.') {
        return Err(OpError::bad_input(format!(
            "{}: {:?} is a sqlite3 shell command, not SQL",
            call.prim.full_name(),
            sql.split_whitespace().next().unwrap_or(".")
        ))
        .with_hint(
            "give one SQL query; shell commands (.shell, .output, .open, ...) are not run",
        ));
    }
    let mut cmd = std::process::Command::new("sqlite3");
    // -readonly: no write to the file. -safe: no ATTACH of another file,
    // no load_extension(), readfile()/writefile() or shell escapes from SQL.
    cmd.args([
        "-readonly",
        "-safe",
        "-json",
        "-bail",
        "-cmd",
        ".timeout 5000",
        path,
        sql,
    ])
    .stdin(std::process::Stdio::null());
    let shown = path.to_string();
    // On a blocking thread: the wait still obeys the call's deadline and Ctrl-C.
    let out = call.block_on(async move {
        let run = tokio::task::spawn_blocking(move || cmd.output());
        match run.await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => Err(OpError::failed("cannot run the sqlite3 shell")
                .with_cause(e)
                .with_hint(
                    "install it (Debian/Ubuntu: apt-get install sqlite3) or put it on PATH",
                )),
            Err(e) => Err(OpError::failed("the sqlite3 shell did not finish").with_cause(e)),
        }
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let e = OpError::failed(format!("sqlite3 failed on {shown}"));
        return Err(if err.contains("-safe") {
            e.with_cause(err).with_hint(
                "opsh needs sqlite3 3.37 or later (for -safe); upgrade the sqlite3 package",
            )
        } else if err.contains("readonly") || err.contains("read-only") || err.contains("safe mode")
        {
            e.with_cause(err).with_hint(
                "the file is opened read-only and in safe mode: writes, ATTACH and extensions are refused",
            )
        } else {
            e.with_cause(err)
        });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| OpError::failed("sqlite3 printed something that is not JSON").with_cause(e))?;
    Ok(v.as_array().cloned().unwrap_or_default())
}

pub const QUERY: Primitive = Primitive::read("query", query)
    .params(&[req("path", Ty::Str), req("sql", Ty::Str)])
    .returns(Ty::List(&Ty::Map))
    .doc("Run a read-only query on a database file and return its rows as maps (numbers typed).\n\
          The file is opened read-only and in sqlite3's safe mode, so a write statement, ATTACH, load_extension() and shell commands (.shell, .output) fail, and WAL-mode databases are read safely while in use.")
    .example(r#"let n = sqlite.query("/data/app.db", "select count(*) as n from facts")[0].n;"#);
fn query(call: &mut Call) -> Result<Dynamic, OpError> {
    let path = call.str("path")?;
    let sql = call.str("sql")?;
    let rows = sqlite3(call, &path, &sql)?;
    Ok(Dynamic::from_array(rows.iter().map(from_json).collect()))
}

pub const INTEGRITY_CHECK: Primitive = Primitive::read("integrity_check", integrity_check)
    .params(&[
        req("path", Ty::Str),
        opt("opts", Ty::Record(&[field("quick", Ty::Bool).doc("run quick_check: faster, skips index content checks; default false")])),
    ])
    .returns(Ty::Record(&[
        field("path", Ty::Str),
        field("ok", Ty::Bool).doc("SQLite reported nothing wrong"),
        field("problems", Ty::List(&Ty::Str)).doc("what SQLite reported, one line each; empty when ok"),
        field("journal_mode", Ty::Str).doc("wal, delete, ...; () when SQLite did not say"),
        field("bytes", Ty::Int).doc("size of the database file (without its -wal file)"),
    ]))
    .doc("PRAGMA integrity_check (or quick_check) on a database file.")
    .example(r#"let r = sqlite.integrity_check("/backups/app.db.backup"); if !r.ok { show(r.problems) }"#);
fn integrity_check(call: &mut Call) -> Result<Dynamic, OpError> {
    let path = call.str("path")?;
    let quick = call.opts("opts")?.bool("quick")?;
    let pragma = if quick {
        "quick_check"
    } else {
        "integrity_check"
    };
    let rows = sqlite3(call, &path, &format!("PRAGMA {pragma};"))?;
    let lines: Vec<String> = rows
        .iter()
        .filter_map(|r| r.as_object()?.values().next()?.as_str().map(str::to_string))
        .collect();
    let ok = lines == ["ok"];
    let problems: rhai::Array = if ok {
        Vec::new()
    } else {
        lines.into_iter().map(Dynamic::from).collect()
    };
    let mode = sqlite3(call, &path, "PRAGMA journal_mode;")?
        .first()
        .and_then(|r| r.get("journal_mode")?.as_str().map(str::to_string))
        .map(Dynamic::from)
        .unwrap_or(Dynamic::UNIT);
    let bytes = std::fs::metadata(&path)
        .map(|m| m.len() as i64)
        .unwrap_or(0);
    Ok(Dynamic::from_map(map_of([
        ("path", path.into()),
        ("ok", Dynamic::from_bool(ok)),
        ("problems", Dynamic::from_array(problems)),
        ("journal_mode", mode),
        ("bytes", Dynamic::from_int(bytes)),
    ])))
}
