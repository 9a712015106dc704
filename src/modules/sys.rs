//! Global helpers every script has: output, failing a check, environment,
//! time and sleeping.

use crate::dispatch::{Call, ErrorKind, OpError};
use crate::registry::{opt, req, CallTimeout, Effect, ModuleDecl, Primitive};
use crate::value::parse_duration;
use rhai::Dynamic;
use std::time::{SystemTime, UNIX_EPOCH};

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "",
    doc: "Global functions available in every script.",
    target: None,
    primitives: &[
        Primitive {
            module: "",
            name: "show",
            params: &[req("value", "any")],
            returns: "()",
            doc: "Render a value for the operator: a table for an array of maps, key/value lines for a map.\n\
                  Colour on a TTY (off with NO_COLOR or when piped). With `--output json` every show prints one JSON document per line, for jq and cron.",
            example: r#"show([#{name: "db", ok: true}, #{name: "cache", ok: false}])"#,
            effect: Effect::Read(show),
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "",
            name: "fail",
            params: &[req("message", "string")],
            returns: "never",
            doc: "Fail the run as a failed check: exit code 1, with the message.\n\
                  Use it when what the script checked is unhealthy; an error in opsh or a primitive exits 2 instead. `try`/`catch` can catch it.",
            example: r#"if 2 > 1 { fail("replica lag above 30s") }"#,
            effect: Effect::Read(fail),
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "",
            name: "env",
            params: &[req("name", "string"), opt("default", "string")],
            returns: "string",
            doc: "Read an environment variable; () (or the default) when it is unset.",
            example: r#"let region = env("AWS_REGION", "eu-west-1");"#,
            effect: Effect::Read(env),
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "",
            name: "now",
            params: &[],
            returns: "float",
            doc: "The current time as Unix seconds (float, millisecond precision).",
            example: "let started = now();",
            effect: Effect::Read(now),
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "",
            name: "duration",
            params: &[req("text", "string")],
            returns: "float",
            doc: "Parse a duration such as \"5m\", \"1h 30m\" or \"250ms\" into seconds.",
            example: r#"let limit = duration("10m");   // 600.0"#,
            effect: Effect::Read(duration),
            timeout: CallTimeout::Default,
        },
        Primitive {
            module: "",
            name: "sleep",
            params: &[req("duration", "string|int|float")],
            returns: "()",
            doc: "Wait for a duration (\"5s\", or seconds). Ctrl-C and --timeout end the wait at once.",
            example: r#"sleep("1s")"#,
            effect: Effect::Read(sleep),
            timeout: CallTimeout::Unbounded,
        },
    ],
};

fn show(call: &mut Call) -> Result<Dynamic, OpError> {
    let v = call.args.first().cloned().unwrap_or(Dynamic::UNIT);
    call.session.out.show(&v);
    Ok(Dynamic::UNIT)
}

fn fail(call: &mut Call) -> Result<Dynamic, OpError> {
    let msg = call.args.first().map(|d| d.to_string()).unwrap_or_else(|| "check failed".into());
    Err(OpError::new(ErrorKind::CheckFailed, msg))
}

fn env(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = call.str_arg(0)?;
    match std::env::var(&name) {
        Ok(v) => Ok(v.into()),
        Err(_) => Ok(call.opt_str(1)?.map(Dynamic::from).unwrap_or(Dynamic::UNIT)),
    }
}

pub fn unix_now() -> f64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    (d.as_millis() as f64) / 1000.0
}

fn now(_call: &mut Call) -> Result<Dynamic, OpError> {
    Ok(Dynamic::from_float(unix_now()))
}

fn duration(call: &mut Call) -> Result<Dynamic, OpError> {
    let d = call.args.first().cloned().unwrap_or(Dynamic::UNIT);
    parse_duration(&d).map(|d| Dynamic::from_float(d.as_secs_f64())).map_err(OpError::bad_input)
}

fn sleep(call: &mut Call) -> Result<Dynamic, OpError> {
    let d = call.args.first().cloned().unwrap_or(Dynamic::UNIT);
    let d = parse_duration(&d).map_err(OpError::bad_input)?;
    call.block_on(async move {
        tokio::time::sleep(d).await;
        Ok(Dynamic::UNIT)
    })
}
