//! JSON in scripts: parse API bodies, stringify reports.

use crate::dispatch::{Call, OpError};
use crate::registry::{opt, req, CallTimeout, Effect, ModuleDecl, Primitive};
use crate::value::{from_json, to_json};
use rhai::Dynamic;

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "json",
    doc: "Parse and produce JSON.",
    target: None,
    primitives: &[
        Primitive {
            module: "json",
            name: "parse",
            params: &[req("text", "string")],
            returns: "any",
            doc: "Parse JSON text into maps, arrays, numbers, strings, bools and ().",
            example: r#"let v = json.parse("{\"replicas\": 3}"); v.replicas"#,
            effect: Effect::Read(parse),
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "json",
            name: "stringify",
            params: &[req("value", "any"), opt("pretty", "bool")],
            returns: "string",
            doc: "Serialize a value as JSON; pass `true` for indented output.",
            example: r#"json.stringify(#{ok: true, lag: 1.5})"#,
            effect: Effect::Read(stringify),
            timeout: CallTimeout::Default,
        },
    ],
};

fn parse(call: &mut Call) -> Result<Dynamic, OpError> {
    let text = call.str_arg(0)?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        OpError::bad_input("invalid JSON").with_cause(format!(
            "{e} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    Ok(from_json(&v))
}

fn stringify(call: &mut Call) -> Result<Dynamic, OpError> {
    let v = to_json(call.args.first().unwrap_or(&Dynamic::UNIT));
    let pretty = call.arg(1).and_then(|d| d.as_bool().ok()).unwrap_or(false);
    let s = if pretty {
        serde_json::to_string_pretty(&v)
    } else {
        serde_json::to_string(&v)
    };
    s.map(Dynamic::from)
        .map_err(|e| OpError::failed("cannot serialize").with_cause(e))
}
