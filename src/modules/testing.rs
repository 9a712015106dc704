//! Global functions for `opsh test` files: stubs, call inspection,
//! assertions, running and replaying runbooks; and `run_options()`, which
//! tells the stdlib how the run was invoked.

use crate::dispatch::{Call, ErrorKind, OpError};
use crate::registry::{opt, req, Class, ModuleDecl, Primitive, Ty};
use crate::testing::hooks::Stub;
use crate::value::{map_of, to_json};
use rhai::{Dynamic, Map};

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "",
    doc: "Testing: stubs, call inspection, assertions, running and replaying runbooks (opsh test).",
    target: None,
    primitives: &[
        Primitive::read("stub", stub)
            .params(&[req("primitive", Ty::Str), req("answer", Ty::Any)])
            .doc("Answer every call of a primitive with a value, or with `answer(args...)` when it is a function (test mode).\n\
             Stubs last for the current test. A stub that throws makes the call fail with that message. In test mode an unstubbed read fails and an unstubbed mutation returns a plan without being applied (opsh test --sandbox lets them through).")
            .example(r#"stub("prom.value", |expr| 2.4); stub("pg.connections", #{total: 10, max_connections: 100})"#)
            .class(Class::Control)
            .unbounded(),
        Primitive::read("stub_seq", stub_seq)
            .params(&[req("primitive", Ty::Str), req("answers", Ty::Array)])
            .doc("Answer successive calls with successive values; the last one repeats.")
            .example(r#"stub_seq("http.get", [#{status: 503}, #{status: 200}])"#)
            .class(Class::Control)
            .unbounded(),
        Primitive::read("stub_error", stub_error)
            .params(&[req("primitive", Ty::Str), req("message", Ty::Str)])
            .doc("Make every call of a primitive fail with this message (an unreachable server, a refused query).")
            .example(r#"stub_error("pg.ping", "connection refused")"#)
            .class(Class::Control)
            .unbounded(),
        Primitive::read("calls", calls)
            .params(&[opt("primitive", Ty::Str)])
            .returns(Ty::Rows(&[]))
            .doc("The calls made so far in this test, in order: #{primitive, target, args, result, error}. All calls, or one primitive's.")
            .example(r#"let scaled = calls("pg.terminate"); scaled.len()"#)
            .class(Class::Control)
            .unbounded(),
        Primitive::read("assert", assert)
            .params(&[req("condition", Ty::Bool), opt("message", Ty::Str)])
            .doc("Fail the test unless the condition is true.")
            .example(r#"assert(1 < 2, "one is less than two")"#)
            .class(Class::Control)
            .unbounded(),
        Primitive::read("assert_eq", assert_eq)
            .params(&[req("actual", Ty::Any), req("expected", Ty::Any), opt("message", Ty::Str)])
            .doc("Fail the test unless the two values are equal (as data: 2 == 2.0, maps compare by content).")
            .example(r#"assert_eq(1 + 1, 2)"#)
            .class(Class::Control)
            .unbounded(),
        Primitive::read("assert_ne", assert_ne)
            .params(&[req("actual", Ty::Any), req("unexpected", Ty::Any), opt("message", Ty::Str)])
            .doc("Fail the test if the two values are equal.")
            .example(r#"assert_ne("a", "b")"#)
            .class(Class::Control)
            .unbounded(),
        Primitive::read("run", run)
            .params(&[req("file", Ty::Str), opt("args", Ty::Map), opt("opts", Ty::Map)])
            .returns(Ty::Map)
            .doc("Run a runbook with these args in this session (the test's stubs apply) and return #{exit_code, ok, report, shows, output, error}.\n\
             `report` is the last value the runbook showed, `shows` all of them, `output` its printed lines, `error` the rendered error. The path is relative to the current directory. opts: dry_run, only, skip (as the flags).")
            .example(r#"let r = run("scripts/high_latency.rhai", #{p95_ms: 500}); r.exit_code"#)
            .class(Class::Control)
            .unbounded(),
        Primitive::read("replay", replay)
            .params(&[req("recording", Ty::Str), opt("opts", Ty::Map)])
            .returns(Ty::Map)
            .doc("Replay a recording made with `opsh run --record FILE`: rerun its script, answering its calls from the file.\n\
             Returns what run() returns plus `differences` (calls that differ from the recording) and `plans` (recorded mutations, not applied). opts: script, args (override the recorded ones).")
            .example(r#"let r = replay("tests/runbooks/incident.json"); r.differences.len()"#)
            .class(Class::Control)
            .unbounded(),
        Primitive::read("run_options", run_options)
            .returns(Ty::Map)
            .doc("How this run was invoked: #{dry_run, output, only, skip, test}. The checks stdlib reads --only/--skip from it.")
            .example("let o = run_options(); o.dry_run")
            .class(Class::Control)
            .unbounded(),
    ],
};

fn name_arg(call: &Call) -> Result<String, OpError> {
    if !call.session.hooks.test_mode() {
        return Err(
            OpError::bad_input(format!("{} works only in tests", call.prim.name)).with_hint(
                "run the file with `opsh test FILE`; `opsh run` always calls the real primitives",
            ),
        );
    }
    let name = call.str_at(0)?;
    if crate::registry::lookup(&name).is_some() {
        return Ok(name);
    }
    let names: Vec<String> = crate::registry::all().map(|p| p.full_name()).collect();
    let hint = crate::registry::suggest(&name, names.iter().map(String::as_str))
        .map(|s| format!("did you mean {s}?"))
        .unwrap_or_else(|| "stub a primitive by its full name, e.g. \"pg.query\"".into());
    Err(OpError::bad_input(format!("there is no primitive {name} to stub")).with_hint(hint))
}

fn stub(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = name_arg(call)?;
    let answer = call.args.get(1).cloned().unwrap_or(Dynamic::UNIT);
    let s = match answer.clone().try_cast::<rhai::FnPtr>() {
        Some(f) => Stub::Func(f, call.session.script()),
        None => Stub::Value(answer),
    };
    call.session.hooks.stub(name, s);
    Ok(Dynamic::UNIT)
}

fn stub_seq(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = name_arg(call)?;
    let values = call.array_at(1)?;
    if values.is_empty() {
        return Err(OpError::bad_input("stub_seq needs at least one answer"));
    }
    call.session.hooks.stub(name, Stub::Seq(values, 0));
    Ok(Dynamic::UNIT)
}

fn stub_error(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = name_arg(call)?;
    let msg = call.str_at(1)?;
    call.session.hooks.stub(name, Stub::Error(msg));
    Ok(Dynamic::UNIT)
}

fn calls(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = call.opt_str_at(0)?;
    crate::output::column_order_hint(
        &["primitive", "target", "args", "result", "error"].map(String::from),
    );
    let rows = call
        .session
        .hooks
        .calls(name.as_deref())
        .into_iter()
        .map(|l| {
            let (result, error) = match l.result {
                Ok(v) => (v, Dynamic::UNIT),
                Err(e) => (Dynamic::UNIT, e.into()),
            };
            Dynamic::from_map(map_of([
                ("primitive", l.primitive.into()),
                (
                    "target",
                    l.target.map(Dynamic::from).unwrap_or(Dynamic::UNIT),
                ),
                ("args", Dynamic::from_array(l.args)),
                ("result", result),
                ("error", error),
            ]))
        })
        .collect();
    Ok(Dynamic::from_array(rows))
}

fn failed(what: String, msg: Option<String>) -> OpError {
    let text = match msg {
        Some(m) => format!("assertion failed: {m}: {what}"),
        None => format!("assertion failed: {what}"),
    };
    OpError::new(ErrorKind::CheckFailed, text)
}

fn assert(call: &mut Call) -> Result<Dynamic, OpError> {
    let cond = call.arg_at(0).cloned().unwrap_or(Dynamic::UNIT);
    let msg = call.arg_at(1).map(|m| m.to_string());
    match cond.as_bool() {
        Ok(true) => Ok(Dynamic::UNIT),
        Ok(false) => Err(failed("condition is false".into(), msg)),
        Err(_) => Err(OpError::bad_input(format!(
            "assert needs a bool, got {}",
            crate::value::type_name(&cond)
        ))),
    }
}

/// Equal as data: numbers compare by value whatever their type.
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn pair(call: &Call) -> (serde_json::Value, serde_json::Value, Option<String>) {
    let get = |i| to_json(&call.args.get(i).cloned().unwrap_or(Dynamic::UNIT));
    (get(0), get(1), call.arg_at(2).map(|m| m.to_string()))
}

fn assert_eq(call: &mut Call) -> Result<Dynamic, OpError> {
    let (a, b, msg) = pair(call);
    if same(&a, &b) {
        return Ok(Dynamic::UNIT);
    }
    Err(failed(format!("got {a}, expected {b}"), msg))
}

fn assert_ne(call: &mut Call) -> Result<Dynamic, OpError> {
    let (a, b, msg) = pair(call);
    if !same(&a, &b) {
        return Ok(Dynamic::UNIT);
    }
    Err(failed(format!("both are {a}"), msg))
}

fn run(call: &mut Call) -> Result<Dynamic, OpError> {
    let file = call.str_at(0)?;
    let args = call.opts_at(1)?;
    let opts = call.opts_at(2)?;
    crate::testing::run::run_script(call.session, &file, args, &opts).map(Dynamic::from_map)
}

fn replay(call: &mut Call) -> Result<Dynamic, OpError> {
    let file = call.str_at(0)?;
    let opts = call.opts_at(1)?;
    let rec = crate::record::load(std::path::Path::new(&file)).map_err(OpError::bad_input)?;
    let script = match opts.get("script") {
        Some(s) => s.to_string(),
        None => rec.script,
    };
    let args = match opts.get("args").and_then(|a| a.clone().try_cast::<Map>()) {
        Some(a) => a,
        None => rec.args,
    };
    let hooks = &call.session.hooks;
    if let Ok(mut r) = hooks.replay.lock() {
        *r = Some(rec.replay);
    }
    let result = crate::testing::run::run_script(call.session, &script, args, &opts);
    let rp = hooks.replay.lock().ok().and_then(|mut r| r.take());
    let mut m = result?;
    let (diffs, plans) = match rp {
        Some(rp) => {
            let mut d = rp.differences.clone();
            d.extend(rp.unused());
            let p: rhai::Array = rp.plans.iter().map(crate::value::from_json).collect();
            (d, p)
        }
        None => (Vec::new(), Vec::new()),
    };
    m.insert(
        "differences".into(),
        Dynamic::from_array(diffs.into_iter().map(Dynamic::from).collect()),
    );
    m.insert("plans".into(), Dynamic::from_array(plans));
    Ok(Dynamic::from_map(m))
}

fn run_options(call: &mut Call) -> Result<Dynamic, OpError> {
    let s = call.session;
    let list = |v: &[String]| Dynamic::from_array(v.iter().cloned().map(Dynamic::from).collect());
    let output = match s.out.format {
        crate::output::Format::Json => "json",
        crate::output::Format::Text => "text",
    };
    Ok(Dynamic::from_map(map_of([
        ("dry_run", Dynamic::from_bool(s.dry_run())),
        ("output", output.into()),
        ("only", list(&s.only)),
        ("skip", list(&s.skip)),
        ("test", Dynamic::from_bool(s.hooks.test_mode())),
    ])))
}
