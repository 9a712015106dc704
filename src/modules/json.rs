//! JSON in scripts: parse API bodies, stringify reports.

use crate::dispatch::{Call, OpError};
use crate::registry::{opt, req, Class, ModuleDecl, Primitive, Ty};
use crate::value::{from_json, to_json};
use rhai::Dynamic;

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "json",
    doc: "Parse and produce JSON.",
    target: None,
    primitives: &[PARSE, STRINGIFY],
};

// Pure functions of their arguments, with nothing to stub or record: they
// run for real everywhere, under `opsh test` and `--replay` too.
pub const PARSE: Primitive = Primitive::read("parse", parse)
    .params(&[req("text", Ty::Str)])
    .returns(Ty::Any)
    .doc("Parse JSON text into maps, arrays, numbers, strings, bools and ().")
    .example(r#"let v = json.parse("{\"replicas\": 3}"); v.replicas"#)
    .class(Class::Control);
fn parse(call: &mut Call) -> Result<Dynamic, OpError> {
    let text = call.str("text")?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        OpError::bad_input("invalid JSON").with_cause(format!(
            "{e} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    Ok(from_json(&v))
}

pub const STRINGIFY: Primitive = Primitive::read("stringify", stringify)
    .params(&[req("value", Ty::Any), opt("pretty", Ty::Bool)])
    .returns(Ty::Str)
    .doc("Serialize a value as JSON; pass `true` for indented output.")
    .example(r#"json.stringify(#{ok: true, lag: 1.5})"#)
    .class(Class::Control);
fn stringify(call: &mut Call) -> Result<Dynamic, OpError> {
    let v = to_json(call.value("value")?.unwrap_or(&Dynamic::UNIT));
    let pretty = call.opt_bool("pretty")?.unwrap_or(false);
    let s = if pretty {
        serde_json::to_string_pretty(&v)
    } else {
        serde_json::to_string(&v)
    };
    s.map(Dynamic::from)
        .map_err(|e| OpError::failed("cannot serialize").with_cause(e))
}
