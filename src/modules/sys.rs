//! Global helpers every script has: output, failing a check, environment,
//! time and sleeping.

use crate::dispatch::{Call, ErrorKind, OpError};
use crate::registry::{field, opt, req, Class, Field, ModuleDecl, Primitive, Ty};
use rhai::Dynamic;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "",
    doc: "Global functions available in every script.",
    target: None,
    primitives: &[SHOW, FAIL, EXIT, PARALLEL, ENV, NOW, DURATION, SLEEP],
};

const SHOW_OPTS: &[Field] = &[
    field("columns", Ty::List(&Ty::Str)).doc("a table's columns, in this order"),
    field("name", Ty::Str).doc("with --output json, the document is #{name, value}: a consumer tells this one from the run's other documents"),
];

pub const SHOW: Primitive = Primitive::read("show", show)
    .params(&[
        req("value", Ty::Any),
        opt("columns", Ty::OneOf(&[Ty::List(&Ty::Str), Ty::Record(SHOW_OPTS)])),
    ])
    .doc("Render a value for the operator: a table for an array of maps, key/value lines for a map.\n\
          `columns` orders (and selects) a table's columns. On a terminal a table fits its width (the widest text columns are cut with …, one line per row); piped, nothing is cut. Ages, bytes and durations read humanized (`2m10s`, `920 KiB`) in text only. Declared results show their default columns; `-o wide` shows all. Colour on a TTY (status words FAIL/WARN/OK in red/yellow/green; off with NO_COLOR or when piped). With `-o json` (or `-o yaml`) every show prints one document per line, raw numbers (the value, or `{\"name\": .., \"value\": ..}` when named with `#{name}`), and stdout carries nothing else: print() goes to stderr.")
    .example(r#"show([#{name: "db", ok: true}, #{name: "cache", ok: false}], #{name: "services", columns: ["name", "ok"]})"#)
    .class(Class::Show);

fn show(call: &mut Call) -> Result<Dynamic, OpError> {
    let v = call.value("value")?.cloned().unwrap_or(Dynamic::UNIT);
    let (columns, name) = match call.value("columns")? {
        Some(o) if o.is_map() => {
            let o = call.opts("columns")?;
            (o.strings("columns")?.unwrap_or_default(), o.str("name")?)
        }
        _ => (call.strings("columns")?.unwrap_or_default(), None),
    };
    call.session.out.show_named(&v, &columns, name.as_deref());
    Ok(Dynamic::UNIT)
}

pub const FAIL: Primitive = Primitive::read("fail", fail)
    .params(&[req("message", Ty::Str)])
    .returns(Ty::Never)
    .doc("Fail the run as a failed check: exit code 1, with the message.\n\
          Use it when what the script checked is unhealthy; an error in opsh or a primitive exits 2 instead. `try`/`catch` can catch it.")
    .example(r#"if 2 > 1 { fail("replica lag above 30s") }"#)
    .class(Class::Control);

fn fail(call: &mut Call) -> Result<Dynamic, OpError> {
    Err(OpError::new(ErrorKind::CheckFailed, call.str("message")?))
}

pub const EXIT: Primitive = Primitive::read("exit", exit)
    .params(&[opt("code", Ty::Int)])
    .returns(Ty::Never)
    .doc("End the run now with this exit code (default 0). It cannot be caught.")
    .example("if 1 > 2 { exit(3) }")
    .class(Class::Control);

fn exit(call: &mut Call) -> Result<Dynamic, OpError> {
    let code = match call.opt_int("code")? {
        None => 0,
        Some(i) => i32::try_from(i).map_err(|_| {
            OpError::bad_input(format!("exit code {i} is out of range"))
                .with_hint("an exit code is a 32-bit int; the shell sees it modulo 256")
        })?,
    };
    Err(OpError::new(ErrorKind::Exit(code), format!("exit({code})")))
}

/// `parallel`'s options, shared with `for_each_target`.
pub const PARALLEL_OPTS: &[Field] = &[
    field("concurrency", Ty::Int).doc("items run at once: default 8, at most 256"),
    field("max_failures", Ty::Int)
        .doc("stop starting new items after this many failures; the rest are reported with skipped: true"),
];

/// One row per item, in input order: what `parallel` and `for_each_target` return.
pub const PARALLEL_ROWS: &[Field] = &[
    field("item", Ty::Any).doc("the item (for for_each_target: the target name)"),
    field("ok", Ty::Bool),
    field("value", Ty::Any).doc("what f returned; () when it failed or was skipped"),
    field("error", Ty::Str).doc("why f failed or the item was skipped; () when ok"),
    field("ms", Ty::Float).doc("how long f ran, in milliseconds; () when skipped"),
    field("skipped", Ty::Bool)
        .doc("not started: the failure budget was spent or the run is stopping"),
    field("refused", Ty::Bool).doc(
        "f was refused (a protected target without confirmation): the run then exits 3, or 4 after changes, unless f catches it",
    ),
];

pub const PARALLEL: Primitive = Primitive::read("parallel", parallel)
    .params(&[
        req("items", Ty::Array),
        req("f", Ty::Fn),
        opt("opts", Ty::Record(PARALLEL_OPTS)),
    ])
    .returns(Ty::Rows(PARALLEL_ROWS))
    .doc("Call `f(item)` for every item concurrently and return one row per item, in input order.\n\
          A failing item does not stop the others. Ctrl-C and --timeout stop all of them.")
    .example(r#"let r = parallel(["redis://10.0.0.1", "redis://10.0.0.2"], |url| redis.connect(url).info("memory").used_memory, #{concurrency: 16});"#)
    .class(Class::Control)
    .unbounded();

fn parallel(call: &mut Call) -> Result<Dynamic, OpError> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let items = call.array("items")?;
    let f = call
        .value("f")?
        .and_then(|d| d.clone().try_cast::<rhai::FnPtr>())
        .ok_or_else(|| OpError::bad_input("the second argument must be a function, e.g. |target| redis.connect(target).ping()"))?;
    let opts = call.opts("opts")?;
    let concurrency = opts.int("concurrency")?.unwrap_or(8).clamp(1, 256) as usize;
    let max_failures = opts.int("max_failures")?.unwrap_or(i64::MAX).max(0) as usize;
    let engine = call.engine;
    let ast = call.session.script();
    let cancel = &call.session.cancel;
    let session = call.session;
    let next = AtomicUsize::new(0);
    let failures = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<rhai::Map>>> = Mutex::new(vec![None; items.len()]);
    // Scoped threads: Engine, AST and FnPtr are Sync under rhai's `sync`
    // feature, and every primitive the closure calls blocks on the shared
    // runtime, so network waits overlap.
    std::thread::scope(|s| {
        for _ in 0..concurrency.min(items.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(i) else {
                    // What this worker counted goes to the process's
                    // memory count before the thread ends.
                    crate::engine::memory::flush_thread();
                    break;
                };
                let mut row = crate::value::map_of([
                    ("item", item.clone()),
                    ("skipped", Dynamic::FALSE),
                    ("refused", Dynamic::FALSE),
                ]);
                if failures.load(Ordering::SeqCst) >= max_failures || cancel.reason().is_some() {
                    row.insert("ok".into(), Dynamic::FALSE);
                    row.insert("skipped".into(), Dynamic::TRUE);
                    row.insert(
                        "error".into(),
                        "skipped: failure budget spent or run stopping".into(),
                    );
                } else {
                    let started = std::time::Instant::now();
                    let r = f.call::<Dynamic>(engine, &ast, (item.clone(),));
                    row.insert(
                        "ms".into(),
                        Dynamic::from_float((started.elapsed().as_secs_f64() * 1e4).round() / 10.0),
                    );
                    match r {
                        Ok(v) => {
                            row.insert("ok".into(), Dynamic::TRUE);
                            row.insert("value".into(), v);
                        }
                        Err(e) => {
                            failures.fetch_add(1, Ordering::SeqCst);
                            let msg = crate::redact::redact(&item_error(&e));
                            // A row is easy to ignore; a refusal must not
                            // end the run as a success (exit code table).
                            if is_refusal(&e) {
                                row.insert("refused".into(), Dynamic::TRUE);
                                session.record_swallowed_refusal(msg.clone());
                            }
                            row.insert("ok".into(), Dynamic::FALSE);
                            row.insert("error".into(), msg.into());
                        }
                    }
                }
                if let Ok(mut r) = results.lock() {
                    r[i] = Some(row);
                }
            });
        }
    });
    if let Some(reason) = cancel.reason() {
        let mut e = OpError::failed(reason.describe());
        e.cancelled = Some(reason);
        return Err(e);
    }
    let rows = results.into_inner().unwrap_or_default();
    Ok(Dynamic::from_array(
        rows.into_iter()
            .map(|r| Dynamic::from_map(r.unwrap_or_default()))
            .collect(),
    ))
}

fn is_refusal(e: &rhai::EvalAltResult) -> bool {
    match crate::diagnostic::leaf(e) {
        rhai::EvalAltResult::ErrorRuntime(v, _) => v
            .read_lock::<crate::dispatch::PrimitiveError>()
            .is_some_and(|pe| pe.kind == crate::dispatch::ErrorKind::Refused),
        _ => false,
    }
}

/// The innermost message of an error raised inside a parallel item.
fn item_error(e: &rhai::EvalAltResult) -> String {
    match crate::diagnostic::leaf(e) {
        rhai::EvalAltResult::ErrorRuntime(v, _) if v.is::<crate::dispatch::PrimitiveError>() => v
            .clone()
            .cast::<crate::dispatch::PrimitiveError>()
            .to_string(),
        rhai::EvalAltResult::ErrorRuntime(v, _) => v.to_string(),
        other => other.to_string(),
    }
}

pub const ENV: Primitive = Primitive::read("env", env)
    .params(&[req("name", Ty::Str), opt("default", Ty::Str)])
    .returns(Ty::Str)
    .doc("Read an environment variable; () (or the default) when it is unset.")
    .example(r#"let region = env("AWS_REGION", "eu-west-1");"#)
    .class(Class::Local);

fn env(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = call.str("name")?;
    match std::env::var(&name) {
        Ok(v) => Ok(v.into()),
        Err(_) => Ok(call
            .opt_str("default")?
            .map(Dynamic::from)
            .unwrap_or(Dynamic::UNIT)),
    }
}

pub fn unix_now() -> f64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_millis() as f64) / 1000.0
}

pub const NOW: Primitive = Primitive::read("now", now)
    .returns(Ty::Float)
    .doc("The current time as Unix seconds (float, millisecond precision).")
    .example("let started = now();")
    .class(Class::Local);

fn now(_call: &mut Call) -> Result<Dynamic, OpError> {
    Ok(Dynamic::from_float(unix_now()))
}

/// A required duration argument (dispatch has checked that it parses).
fn duration_arg(call: &Call, name: &str) -> Result<Duration, OpError> {
    call.opt_duration(name)?.ok_or_else(|| {
        OpError::bad_input(format!("argument `{name}` is required"))
            .with_hint(format!("signature: {}", call.prim.signature()))
    })
}

pub const DURATION: Primitive = Primitive::read("duration", duration)
    .params(&[req("text", Ty::Duration)])
    .returns(Ty::Float)
    .doc("Parse a duration such as \"5m\", \"1h 30m\" or \"250ms\" into seconds.")
    .example(r#"let limit = duration("10m");   // 600.0"#)
    .class(Class::Control);

fn duration(call: &mut Call) -> Result<Dynamic, OpError> {
    Ok(Dynamic::from_float(
        duration_arg(call, "text")?.as_secs_f64(),
    ))
}

pub const SLEEP: Primitive = Primitive::read("sleep", sleep)
    .params(&[req("duration", Ty::Duration)])
    .doc("Wait for a duration (\"5s\", or seconds). Ctrl-C and --timeout end the wait at once.")
    .example(r#"sleep("1s")"#)
    .class(Class::Wait)
    .unbounded();

fn sleep(call: &mut Call) -> Result<Dynamic, OpError> {
    let d = duration_arg(call, "duration")?;
    call.block_on(async move {
        tokio::time::sleep(d).await;
        Ok(Dynamic::UNIT)
    })
}

/// `sys.*`: facts about the machine opsh runs on.
pub static SYS: ModuleDecl = ModuleDecl {
    name: "sys",
    doc: "The local machine: disk usage.",
    target: None,
    primitives: &[DISK_USAGE],
};

pub const DISK_USAGE: Primitive = Primitive::read("disk_usage", disk_usage)
    .params(&[req("path", Ty::Str)])
    .returns(Ty::Record(&[
        field("path", Ty::Str),
        field("total_bytes", Ty::Int),
        field("used_bytes", Ty::Int),
        field("avail_bytes", Ty::Int)
            .doc("what an unprivileged process can still write"),
        field("used_pct", Ty::Float)
            .doc("percent used, counting space reserved for root as used, as df does"),
        field("inodes_total", Ty::Int),
        field("inodes_used_pct", Ty::Float),
    ]))
    .doc("Space and inodes of the filesystem holding a path.")
    .example(r#"let d = sys.disk_usage("/var/lib/postgresql"); if d.used_pct > 85.0 { print("disk nearly full") }"#);

fn disk_usage(call: &mut Call) -> Result<Dynamic, OpError> {
    let path = call.str("path")?;
    let c = std::ffi::CString::new(path.clone())
        .map_err(|_| OpError::bad_input("the path contains a NUL byte"))?;
    // SAFETY: statvfs only writes into the zeroed struct we pass.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(
            OpError::failed(format!("cannot stat the filesystem of {path}"))
                .with_cause(std::io::Error::last_os_error())
                .with_hint("does the path exist on this machine?"),
        );
    }
    let frsize = st.f_frsize as u64;
    let total = st.f_blocks as u64 * frsize;
    let free = st.f_bfree as u64 * frsize;
    let avail = st.f_bavail as u64 * frsize;
    let used = total.saturating_sub(free);
    // As df: used / (used + available to users).
    let pct = |used: u64, of: u64| {
        if of == 0 {
            0.0
        } else {
            (used as f64 * 1000.0 / of as f64).round() / 10.0
        }
    };
    let inodes = st.f_files as u64;
    let inodes_used = inodes.saturating_sub(st.f_ffree as u64);
    Ok(Dynamic::from_map(crate::value::map_of([
        ("path", path.into()),
        ("total_bytes", Dynamic::from_int(total as i64)),
        ("used_bytes", Dynamic::from_int(used as i64)),
        ("avail_bytes", Dynamic::from_int(avail as i64)),
        ("used_pct", Dynamic::from_float(pct(used, used + avail))),
        ("inodes_total", Dynamic::from_int(inodes as i64)),
        (
            "inodes_used_pct",
            Dynamic::from_float(pct(inodes_used, inodes)),
        ),
    ])))
}
