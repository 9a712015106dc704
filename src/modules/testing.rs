//! Global functions for `opsh test` files: stubs, call inspection,
//! assertions, running and replaying runbooks; and `run_options()`, which
//! tells the stdlib how the run was invoked.

use crate::dispatch::{Call, ErrorKind, OpError};
use crate::registry::{field, join, opt, req, Class, Field, ModuleDecl, Primitive, Ty, STRINGS};
use crate::testing::hooks::Stub;
use crate::value::{map_of, to_json};
use rhai::Dynamic;

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "",
    doc: "Testing: stubs, call inspection, assertions, running and replaying runbooks (opsh test).",
    target: None,
    primitives: &[
        STUB,
        STUB_SEQ,
        STUB_ERROR,
        CALLS,
        ASSERT,
        ASSERT_EQ,
        ASSERT_NE,
        RUN,
        REPLAY,
        RUN_OPTIONS,
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
    let name = call.str("primitive")?;
    if crate::registry::lookup(&name).is_some() {
        return Ok(name);
    }
    let names: Vec<String> = crate::registry::all().map(|p| p.full_name()).collect();
    let hint = crate::registry::suggest(&name, names.iter().map(String::as_str))
        .map(|s| format!("did you mean {s}?"))
        .unwrap_or_else(|| "stub a primitive by its full name, e.g. \"pg.query\"".into());
    Err(OpError::bad_input(format!("there is no primitive {name} to stub")).with_hint(hint))
}

pub const STUB: Primitive = Primitive::read("stub", stub)
    .params(&[req("primitive", Ty::Str), req("answer", Ty::Any)])
    .doc("Answer every call of a primitive with a value, or with `answer(args...)` when it is a function (test mode).\n\
          Stubs last for the current test. A stub that throws makes the call fail with that message. In test mode an unstubbed read fails and an unstubbed mutation returns a plan without being applied (opsh test --sandbox lets them through).")
    .example(r#"stub("prom.value", |expr| 2.4); stub("pg.connections", #{total: 10, max_connections: 100})"#)
    .class(Class::Control)
    .unbounded();

fn stub(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = name_arg(call)?;
    let answer = call.value("answer")?.cloned().unwrap_or(Dynamic::UNIT);
    let s = match answer.clone().try_cast::<rhai::FnPtr>() {
        Some(f) => Stub::Func(f, call.session.script()),
        None => Stub::Value(answer),
    };
    call.session.hooks.stub(name, s);
    Ok(Dynamic::UNIT)
}

pub const STUB_SEQ: Primitive = Primitive::read("stub_seq", stub_seq)
    .params(&[req("primitive", Ty::Str), req("answers", Ty::Array)])
    .doc("Answer successive calls with successive values; the last one repeats.")
    .example(r#"stub_seq("http.get", [#{status: 503}, #{status: 200}])"#)
    .class(Class::Control)
    .unbounded();

fn stub_seq(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = name_arg(call)?;
    let values = call.array("answers")?;
    if values.is_empty() {
        return Err(OpError::bad_input(format!(
            "{} needs at least one answer",
            call.prim.full_name()
        )));
    }
    call.session.hooks.stub(name, Stub::Seq(values, 0));
    Ok(Dynamic::UNIT)
}

pub const STUB_ERROR: Primitive = Primitive::read("stub_error", stub_error)
    .params(&[req("primitive", Ty::Str), req("message", Ty::Str)])
    .doc("Make every call of a primitive fail with this message (an unreachable server, a refused query).")
    .example(r#"stub_error("pg.ping", "connection refused")"#)
    .class(Class::Control)
    .unbounded();

fn stub_error(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = name_arg(call)?;
    let msg = call.str("message")?;
    call.session.hooks.stub(name, Stub::Error(msg));
    Ok(Dynamic::UNIT)
}

pub const CALLS: Primitive = Primitive::read("calls", calls)
    .params(&[opt("primitive", Ty::Str)])
    .returns(Ty::Rows(&[
        field("primitive", Ty::Str).doc("its full name, e.g. \"pg.query\""),
        field("target", Ty::Str).doc("the target it was called on; () when it names none"),
        field("args", Ty::Array),
        field("result", Ty::Any).doc("what it returned; () when it failed"),
        field("error", Ty::Str).doc("why it failed; () when it returned"),
    ]))
    .doc("The calls made so far in this test, in order. All calls, or one primitive's.")
    .example(r#"let scaled = calls("pg.terminate"); scaled.len()"#)
    .class(Class::Control)
    .unbounded();

fn calls(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = call.opt_str("primitive")?;
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

pub const ASSERT: Primitive = Primitive::read("assert", assert)
    .params(&[req("condition", Ty::Bool), opt("message", Ty::Str)])
    .doc("Fail the test unless the condition is true.")
    .example(r#"assert(1 < 2, "one is less than two")"#)
    .class(Class::Control)
    .unbounded();

fn assert(call: &mut Call) -> Result<Dynamic, OpError> {
    let msg = call.opt_str("message")?;
    match call.opt_bool("condition")? {
        Some(true) => Ok(Dynamic::UNIT),
        Some(false) => Err(failed("condition is false".into(), msg)),
        None => Err(OpError::bad_input(format!(
            "{} needs a bool, got ()",
            call.prim.full_name()
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

/// The two values to compare, as data, and the message. `()` is a value
/// here (`assert_eq(x, ())`).
fn pair(
    call: &Call,
    other: &str,
) -> Result<(serde_json::Value, serde_json::Value, Option<String>), OpError> {
    let get = |name| -> Result<serde_json::Value, OpError> {
        Ok(to_json(call.value(name)?.unwrap_or(&Dynamic::UNIT)))
    };
    Ok((get("actual")?, get(other)?, call.opt_str("message")?))
}

pub const ASSERT_EQ: Primitive = Primitive::read("assert_eq", assert_eq)
    .params(&[req("actual", Ty::Any), req("expected", Ty::Any), opt("message", Ty::Str)])
    .doc("Fail the test unless the two values are equal (as data: 2 == 2.0, maps compare by content).")
    .example(r#"assert_eq(1 + 1, 2)"#)
    .class(Class::Control)
    .unbounded();

fn assert_eq(call: &mut Call) -> Result<Dynamic, OpError> {
    let (a, b, msg) = pair(call, "expected")?;
    if same(&a, &b) {
        return Ok(Dynamic::UNIT);
    }
    Err(failed(format!("got {a}, expected {b}"), msg))
}

pub const ASSERT_NE: Primitive = Primitive::read("assert_ne", assert_ne)
    .params(&[
        req("actual", Ty::Any),
        req("unexpected", Ty::Any),
        opt("message", Ty::Str),
    ])
    .doc("Fail the test if the two values are equal.")
    .example(r#"assert_ne("a", "b")"#)
    .class(Class::Control)
    .unbounded();

fn assert_ne(call: &mut Call) -> Result<Dynamic, OpError> {
    let (a, b, msg) = pair(call, "unexpected")?;
    if !same(&a, &b) {
        return Ok(Dynamic::UNIT);
    }
    Err(failed(format!("both are {a}"), msg))
}

/// How a runbook is run by `run` (and `replay`): as the command-line flags.
const RUN_OPTS: &[Field] = &[
    field("dry_run", Ty::Bool).doc("as --dry-run; default: as this test runs"),
    field("only", STRINGS).doc("as --only: run only these checks"),
    field("skip", STRINGS).doc("as --skip: skip these checks"),
];

/// What `run` returns (and `replay`, with two more fields).
const RUN_RESULT: [Field; 6] = [
    field("exit_code", Ty::Int),
    field("ok", Ty::Bool).doc("the exit code is 0"),
    field("report", Ty::Any).doc("the last value the runbook showed; () when it showed none"),
    field("shows", Ty::Array).doc("every value the runbook showed, in order"),
    field("output", Ty::List(&Ty::Str)).doc("its printed lines"),
    field("error", Ty::Str).doc("the rendered error; () when it ended without one"),
];

pub const RUN: Primitive = Primitive::read("run", run)
    .params(&[
        req("file", Ty::Str),
        opt("args", Ty::Map),
        opt("opts", Ty::Record(RUN_OPTS)),
    ])
    .returns(Ty::Record(&RUN_RESULT))
    .doc("Run a runbook with these args in this session (the test's stubs apply) and return how it ended.\n\
          The path is relative to the current directory. `args` are the runbook's (as --arg).")
    .example(r#"let r = run("scripts/high_latency.rhai", #{p95_ms: 500}); r.exit_code"#)
    .class(Class::Control)
    .unbounded();

fn run(call: &mut Call) -> Result<Dynamic, OpError> {
    let file = call.str("file")?;
    let args = call.opts("args")?;
    let opts = call.opts("opts")?;
    crate::testing::run::run_script(call.session, &file, args.0, &opts).map(Dynamic::from_map)
}

const REPLAY_OPTS: [Field; 5] = join(&[
    &[
        field("script", Ty::Str).doc("the runbook to run instead of the recorded one"),
        field("args", Ty::Map).doc("its args instead of the recorded ones"),
    ],
    RUN_OPTS,
]);

const REPLAY_RESULT: [Field; 8] = join(&[
    &RUN_RESULT,
    &[
        field("differences", Ty::List(&Ty::Str))
            .doc("calls that differ from the recording, and recorded calls not made"),
        field("plans", Ty::List(&Ty::Map)).doc("the recorded mutations, planned and not applied"),
    ],
]);

pub const REPLAY: Primitive = Primitive::read("replay", replay)
    .params(&[req("recording", Ty::Str), opt("opts", Ty::Record(&REPLAY_OPTS))])
    .returns(Ty::Record(&REPLAY_RESULT))
    .doc("Replay a recording made with `opsh run --record FILE`: rerun its script, answering its calls from the file.\n\
          Returns what run() returns, plus the differences from the recording and its mutations as plans.")
    .example(r#"let r = replay("tests/runbooks/recordings/daily_check_sandbox.json"); r.differences.len()"#)
    .class(Class::Control)
    .unbounded();

fn replay(call: &mut Call) -> Result<Dynamic, OpError> {
    let file = call.str("recording")?;
    let opts = call.opts("opts")?;
    let rec = crate::record::load(std::path::Path::new(&file)).map_err(OpError::bad_input)?;
    let script = opts.str("script")?.unwrap_or(rec.script);
    let args = opts.map("args")?.unwrap_or(rec.args);
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

pub const RUN_OPTIONS: Primitive = Primitive::read("run_options", run_options)
    .returns(Ty::Record(&[
        field("dry_run", Ty::Bool),
        field("output", Ty::Str).doc("\"text\", \"wide\", \"json\" or \"yaml\" (--output, -o)"),
        field("only", Ty::List(&Ty::Str)).doc("--only patterns"),
        field("skip", Ty::List(&Ty::Str)).doc("--skip patterns"),
        field("test", Ty::Bool).doc("running under opsh test"),
    ]))
    .doc("How this run was invoked. The checks stdlib reads --only/--skip from it.")
    .example("let o = run_options(); o.dry_run")
    .class(Class::Control)
    .unbounded();

fn run_options(call: &mut Call) -> Result<Dynamic, OpError> {
    let s = call.session;
    let list = |v: &[String]| Dynamic::from_array(v.iter().cloned().map(Dynamic::from).collect());
    let output = match s.out.format {
        crate::output::Format::Json => "json",
        crate::output::Format::Yaml => "yaml",
        crate::output::Format::Text if s.out.wide => "wide",
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
