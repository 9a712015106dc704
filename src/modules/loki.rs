//! Loki: LogQL log and metric queries, label names and values, series.
//! HTTP, targets and auth are prom's (`prom::client::Http`); Loki's
//! envelope is Prometheus's, and its errors are plain text that is shown
//! as Loki wrote it.

use crate::config::Kind;
use crate::dispatch::{Call, ErrorKind, OpError, Opts};
use crate::engine::Handle;
use crate::modules::prom::client::{Http, Reply};
use crate::modules::prom::query::{decode, POINTS, SAMPLE};
use crate::modules::prom::time::{self, TIME};
use crate::registry::{field, opt, req, Class, Field, ModuleDecl, Primitive, Ty};
use crate::value::{from_json, map_of};
use rhai::{Array, Dynamic, Map};
use serde_json::Value;

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "loki",
    doc:
        "Loki: LogQL log queries (entries with their labels and parsed fields) and metric queries \
          (the shape of prom.query). Targets come from [loki.NAME] in the config or LOKI_URL.",
    target: Some(Kind::Loki),
    primitives: &[CONNECT, CONFIGURED, QUERY, LABELS, SERIES],
};

/// A window given as `since` or `start`/`end`.
const WINDOW: &[Field] = &[
    field("since", Ty::Duration).doc("how far back from end (\"1h\"); default 1h"),
    field("start", TIME).doc("unix seconds, RFC 3339, \"now\", or a duration ago (\"30m\")"),
    field("end", TIME).doc("as start; default now"),
];

const QUERY_OPTS: &[Field] = &[
    field("since", Ty::Duration).doc("how far back from end (\"1h\"); default 1h. For a metric query it asks for a range (series of points)"),
    field("start", TIME).doc("unix seconds, RFC 3339, \"now\", or a duration ago (\"30m\")"),
    field("end", TIME).doc("as start; default now"),
    field("limit", Ty::Int).doc("log queries: most entries returned; default 100"),
    field("direction", Ty::Str).doc("log queries: \"backward\" (newest first, the default) or \"forward\""),
    field("time", TIME).doc("metric queries without a window: evaluation time; default now"),
    field("step", Ty::Duration).doc("metric queries over a window: resolution; default the window / 250, at least 1s"),
];

/// One log entry.
const ENTRY: &[Field] = &[
    field("time", Ty::Float).doc("unix seconds"),
    field("ns", Ty::Int).doc("unix nanoseconds, exact"),
    field("labels", Ty::Map).doc("the stream's labels (and labels added by the pipeline that are not parsed fields, such as __error__)"),
    field("line", Ty::Str),
    field("fields", Ty::Map).doc(
        "with `| json` or `| logfmt`: the line's fields (JSON numbers and booleans keep their type; \
         nested keys joined with _ as Loki does); otherwise empty",
    ),
];

pub const CONNECT: Primitive = Primitive::handle("connect", connect, false)
    .params(&[req("target", Ty::Str).target()])
    .doc("Use a named target or an http(s):// URL; returns a handle with the same methods as `loki`.\n\
          Checks that Loki answers (/ready).")
    .example(r#"let l = loki.connect("prod"); l.labels().len()"#);
fn connect(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = call.str("target")?;
    let t = call.session.resolve(Kind::Loki, Some(&name))?;
    call.set_target(t.clone());
    let h = Http::new(call, &t)?;
    let rb = h.request(reqwest::Method::GET, "ready");
    let r = call.block_on(h.send(rb))?;
    if !r.status.is_success() {
        return Err(r.not_api("Loki"));
    }
    Ok(Dynamic::from(Handle {
        module: call.prim.module.name,
        target: Some(name),
    }))
}

pub const CONFIGURED: Primitive = Primitive::read("configured", configured)
    .returns(Ty::Bool)
    .class(Class::Local)
    .doc("Whether a Loki target is at hand (the handle's, the config's default, or LOKI_URL), without \
          contacting it: how a runbook decides to read logs from Loki or fall back to pod logs.")
    .example(r#"if loki.configured() { print(loki.query(`{app="api"} |= "error"`).len()) }"#);
/// Shared by the modules whose runbook steps are optional (loki, grafana,
/// pagerduty): whether the call's target resolves.
pub fn configured(call: &mut Call) -> Result<Dynamic, OpError> {
    Ok(Dynamic::from_bool(call.target().is_ok()))
}

/// GETs a Loki API path and unwraps its envelope.
fn api(
    call: &mut Call,
    path: &str,
    params: &[(&str, String)],
    expr: Option<&str>,
) -> Result<Value, OpError> {
    let h = Http::for_call(call)?;
    let rb = h.request(reqwest::Method::GET, path).query(params);
    let (data, warnings) = call.block_on(async { envelope(h.send(rb).await?, expr) })?;
    for w in warnings {
        call.session
            .out
            .note(&format!("warning: {}: {w}", call.prim.full_name()));
    }
    Ok(data)
}

/// Loki answers errors in plain text (`parse error at line 1, col 14:
/// syntax error: unexpected IDENTIFIER`): that text is the cause.
fn envelope(r: Reply, expr: Option<&str>) -> Result<(Value, Vec<String>), OpError> {
    if serde_json::from_slice::<Value>(&r.body).is_ok() {
        return r.prometheus(expr).map_err(|mut e| {
            e.message = e.message.replace("Prometheus", "Loki");
            if let Some(h) = &mut e.hint {
                *h = h.replace("Prometheus UI's graph page", "Grafana's Explore view");
                *h = h.replace("Prometheus", "Loki");
            }
            e
        });
    }
    // A proxy's page, a wrong URL, a refused token: say who answered.
    let text_error = !r.status.is_success()
        && !r.content_type.contains("html")
        && !matches!(r.status.as_u16(), 401 | 403 | 404 | 502..=504);
    if !text_error {
        return Err(r.not_api("Loki"));
    }
    let msg = crate::redact::redact(String::from_utf8_lossy(&r.body).trim());
    let what = match expr {
        Some(e) => format!("`{e}`"),
        None => "the request".into(),
    };
    if r.status.is_client_error() {
        Err(
            OpError::bad_input(format!("Loki rejected {what} (HTTP {})", r.status.as_u16()))
                .with_cause(msg)
                .with_hint("check the LogQL (docs/logs.md); try it in Grafana's Explore view"),
        )
    } else {
        Err(OpError::new(
            ErrorKind::Failed,
            format!("Loki failed on {what} (HTTP {})", r.status.as_u16()),
        )
        .with_cause(msg)
        .with_hint("narrow the selector or the window; see the Loki server log"))
    }
}

/// A log query starts with its stream selector; a metric query with a
/// function (`count_over_time(...)`, `sum by (x) (...)`).
fn is_log_query(q: &str) -> bool {
    q.trim_start().starts_with('{')
}

/// The parsers a query's pipeline uses (`| json`, `| logfmt`), looked for
/// outside string literals.
fn parsers(q: &str) -> (bool, bool) {
    let mut outside = String::new();
    let mut quote: Option<char> = None;
    let mut esc = false;
    for c in q.chars() {
        match quote {
            Some(qc) => {
                if esc {
                    esc = false
                } else if c == '\\' && qc == '"' {
                    esc = true
                } else if c == qc {
                    quote = None
                }
            }
            None if c == '"' || c == '`' => quote = Some(c),
            None => outside.push(c),
        }
    }
    let words: Vec<String> = outside
        .replace('|', " | ")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let after_pipe = |w: &str| words.windows(2).any(|p| p[0] == "|" && p[1] == w);
    (after_pipe("json"), after_pipe("logfmt"))
}

fn ns(secs: f64) -> String {
    format!("{}", (secs * 1e9).round() as i64)
}

/// (start, end) in unix seconds: `start`/`end`, or `since` before end,
/// or the hour before end.
fn window(opts: &Opts) -> Result<(f64, f64), OpError> {
    let now = time::now();
    let end = match opts.get("end") {
        Some(d) => time::parse(d, now)?,
        None => now,
    };
    let since = opts.duration("since")?;
    let start = match (opts.get("start"), since) {
        (Some(_), Some(_)) => {
            return Err(OpError::bad_input("give either since or start, not both"))
        }
        (Some(d), None) => time::parse(d, now)?,
        (None, Some(s)) => end - s.as_secs_f64(),
        (None, None) => end - 3600.0,
    };
    if start > end {
        return Err(OpError::bad_input(format!(
            "start ({}) is after end ({})",
            time::fmt_rfc3339(start),
            time::fmt_rfc3339(end)
        )));
    }
    Ok((start, end))
}

pub const QUERY: Primitive = Primitive::read("query", query)
    .params(&[req("logql", Ty::Str), opt("opts", Ty::Record(QUERY_OPTS))])
    .returns(Ty::OneOf(&[Ty::Rows(ENTRY), Ty::Rows(SAMPLE), Ty::Rows(POINTS)]))
    .doc(
        "LogQL query. A log query (`{app=\"api\"} |= \"error\" | json`) returns its entries over the window \
         (default the last hour), newest first, at most `limit` (100): one row per entry (the first table). \
         A metric query (`sum by (status) (count_over_time({app=\"api\"} | json [5m]))`) returns what prom.query \
         returns: one sample per series at `time` (the second table), or, with `since`/`start`/`end`/`step`, \
         one row per series with its points (the third table).\n\
         Loki's own error message is the error's cause.",
    )
    .example(
        r#"for e in loki.query(`{app="api"} |= "error" | json`, #{since: "1h", limit: 20}) { print(`${e.fields.msg} (${e.fields.status})`) }"#,
    );
fn query(call: &mut Call) -> Result<Dynamic, OpError> {
    let logql = call.str("logql")?;
    if logql.trim().is_empty() {
        return Err(OpError::bad_input("the LogQL query is empty")
            .with_hint("e.g. loki.query(`{app=\"api\"} |= \"error\"`)"));
    }
    let opts = call.opts("opts")?;
    let windowed = ["since", "start", "end", "step"]
        .iter()
        .any(|k| opts.get(k).is_some());
    if is_log_query(&logql) {
        for k in ["time", "step"] {
            if opts.get(k).is_some() {
                return Err(OpError::bad_input(format!(
                    "`{k}` is for metric queries; a log query takes since or start/end"
                )));
            }
        }
        let (start, end) = window(&opts)?;
        let limit = opts.int("limit")?.unwrap_or(100);
        if limit <= 0 {
            return Err(OpError::bad_input(format!(
                "limit must be positive, got {limit}"
            )));
        }
        let direction = opts.str("direction")?.unwrap_or_else(|| "backward".into());
        if direction != "backward" && direction != "forward" {
            return Err(OpError::bad_input(format!(
                "direction must be \"backward\" or \"forward\", got {direction:?}"
            )));
        }
        let params = [
            ("query", logql.clone()),
            ("start", ns(start)),
            ("end", ns(end)),
            ("limit", limit.to_string()),
            ("direction", direction.clone()),
        ];
        let data = api(call, "loki/api/v1/query_range", &params, Some(&logql))?;
        return Ok(Dynamic::from_array(entries(
            &data,
            parsers(&logql),
            direction == "forward",
        )));
    }
    for k in ["limit", "direction"] {
        if opts.get(k).is_some() {
            return Err(OpError::bad_input(format!(
                "`{k}` is for log queries; `{logql}` is a metric query"
            )));
        }
    }
    let data = if windowed {
        if opts.get("time").is_some() {
            return Err(OpError::bad_input(
                "give time (an instant) or a window (since, start/end, step), not both",
            ));
        }
        let (start, end) = window(&opts)?;
        let step = match opts.duration("step")? {
            Some(d) => d.as_secs_f64(),
            None => ((end - start) / 250.0).max(1.0).round(),
        };
        if step <= 0.0 {
            return Err(OpError::bad_input("step must be positive"));
        }
        let params = [
            ("query", logql.clone()),
            ("start", ns(start)),
            ("end", ns(end)),
            ("step", time::fmt(step)),
        ];
        api(call, "loki/api/v1/query_range", &params, Some(&logql))?
    } else {
        let mut params = vec![("query", logql.clone())];
        if let Some(t) = opts.get("time") {
            params.push(("time", ns(time::parse(t, time::now())?)));
        }
        api(call, "loki/api/v1/query", &params, Some(&logql))?
    };
    Ok(decode(&data))
}

/// The streams of a log query as one list of entries, in `direction`.
fn entries(data: &Value, (json, logfmt): (bool, bool), forward: bool) -> Array {
    let mut out: Vec<(i64, Dynamic)> = Vec::new();
    for s in data["result"].as_array().into_iter().flatten() {
        let stream = s["stream"].as_object().cloned().unwrap_or_default();
        for v in s["values"].as_array().into_iter().flatten() {
            let ns: i64 = v[0].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
            let line = v[1].as_str().unwrap_or("").to_string();
            let mut fields = Map::new();
            if json {
                json_fields(&line, &mut fields);
            }
            if logfmt && fields.is_empty() {
                logfmt_fields(&line, &mut fields);
            }
            let mut labels = Map::new();
            for (k, lv) in &stream {
                // Loki merges parsed fields into the labels, and a field
                // named like a stream label becomes `NAME_extracted`: the
                // fields are shown once, as fields.
                let clashed = stream.contains_key(&format!("{k}_extracted"));
                let base = k.strip_suffix("_extracted").unwrap_or(k);
                if (fields.contains_key(k.as_str()) && !clashed)
                    || (base != k && fields.contains_key(base))
                {
                    continue;
                }
                labels.insert(k.as_str().into(), from_json(lv));
            }
            // Loki 3 with categorize-labels: the parsed labels come apart.
            if let Some(p) = v[2]["parsed"].as_object() {
                for (k, pv) in p {
                    if !fields.contains_key(k.as_str()) {
                        fields.insert(k.as_str().into(), from_json(pv));
                    }
                }
            }
            out.push((
                ns,
                Dynamic::from_map(map_of([
                    ("time", Dynamic::from_float(ns as f64 / 1e9)),
                    ("ns", Dynamic::from_int(ns)),
                    ("labels", Dynamic::from_map(labels)),
                    ("line", Dynamic::from(line)),
                    ("fields", Dynamic::from_map(fields)),
                ])),
            ));
        }
    }
    out.sort_by_key(|e| e.0);
    if !forward {
        out.reverse();
    }
    out.into_iter().map(|e| e.1).collect()
}

/// Loki's label name rules: other characters become `_`.
pub(crate) fn sanitize(k: &str) -> String {
    let s: String = k
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{s}")
    } else {
        s
    }
}

/// The leaves of a JSON value as `| json` names them (`a_b` for `{"a":{"b":..}}`,
/// sanitized); arrays and nulls are skipped, as Loki does without parameters.
/// Shared by this client and the sandbox's Loki so both read lines alike.
pub(crate) fn json_leaves(prefix: &str, v: &Value, out: &mut dyn FnMut(String, &Value)) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let key = if prefix.is_empty() {
                    sanitize(k)
                } else {
                    format!("{prefix}_{}", sanitize(k))
                };
                json_leaves(&key, x, out);
            }
        }
        Value::Array(_) | Value::Null => {}
        other => out(prefix.to_string(), other),
    }
}

fn json_fields(line: &str, out: &mut Map) {
    if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(line) {
        json_leaves("", &v, &mut |k, x| {
            out.insert(k.into(), from_json(x));
        });
    }
}

/// The `key=value` pairs of a logfmt line, keys sanitized (an empty key
/// stays empty), and whether it was well formed: false when a quoted value
/// is left open, whose pair then holds what was read of it.
pub(crate) fn logfmt_pairs(line: &str) -> (Vec<(String, String)>, bool) {
    let mut out = Vec::new();
    let mut it = line.chars().peekable();
    loop {
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        if it.peek().is_none() {
            return (out, true);
        }
        let mut key = String::new();
        while let Some(c) = it.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        let mut value = String::new();
        if it.next_if_eq(&'=').is_some() {
            if it.next_if_eq(&'"').is_some() {
                let mut closed = false;
                while let Some(c) = it.next() {
                    match c {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\\' => match it.next() {
                            Some(c) => value.push(c),
                            None => break,
                        },
                        c => value.push(c),
                    }
                }
                if !closed {
                    out.push((sanitize(&key), value));
                    return (out, false);
                }
            } else {
                while let Some(c) = it.next_if(|c| !c.is_whitespace()) {
                    value.push(c);
                }
            }
        }
        out.push((sanitize(&key), value));
    }
}

fn logfmt_fields(line: &str, out: &mut Map) {
    for (key, value) in logfmt_pairs(line).0 {
        if !key.is_empty() {
            out.insert(key.into(), Dynamic::from(value));
        }
    }
}

fn window_params(call: &Call) -> Result<Vec<(&'static str, String)>, OpError> {
    let opts = call.opts("opts")?;
    let (start, end) = window(&opts)?;
    Ok(vec![("start", ns(start)), ("end", ns(end))])
}

pub const LABELS: Primitive = Primitive::read("labels", labels)
    .params(&[opt("name", Ty::Str), opt("opts", Ty::Record(WINDOW))])
    .returns(Ty::List(&Ty::Str))
    .doc("Without a name: the label names of the streams that have entries in the window (default the last hour). \
          With one: that label's values (`loki.labels(\"app\")`).")
    .example(r#"let apps = loki.labels("app", #{since: "6h"});"#);
fn labels(call: &mut Call) -> Result<Dynamic, OpError> {
    let params = window_params(call)?;
    let data = match call.opt_str("name")? {
        Some(name) => {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(OpError::bad_input(format!("invalid label name {name:?}")));
            }
            api(
                call,
                &format!("loki/api/v1/label/{name}/values"),
                &params,
                None,
            )?
        }
        None => api(call, "loki/api/v1/labels", &params, None)?,
    };
    Ok(from_json(&data))
}

pub const SERIES: Primitive = Primitive::read("series", series)
    .params(&[req("selector", Ty::Str), opt("opts", Ty::Record(WINDOW))])
    .returns(Ty::List(&Ty::Map))
    .doc("The label sets of the streams matching a stream selector (`{app=\"api\"}`) with entries in the window \
          (default the last hour): one map of labels per stream.")
    .example(r#"for s in loki.series(`{namespace="prod"}`) { print(s.app) }"#);
fn series(call: &mut Call) -> Result<Dynamic, OpError> {
    let sel = call.str("selector")?;
    if !is_log_query(&sel) {
        return Err(
            OpError::bad_input(format!("{sel:?} is not a stream selector"))
                .with_hint("a selector is in braces: `{app=\"api\", namespace=~\"prod|staging\"}`"),
        );
    }
    let mut params = window_params(call)?;
    params.insert(0, ("match[]", sel.clone()));
    let data = api(call, "loki/api/v1/series", &params, Some(&sel))?;
    Ok(from_json(&data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers_are_found_outside_strings() {
        assert_eq!(parsers(r#"{a="b"} |= "| json" | logfmt"#), (false, true));
        assert_eq!(parsers(r#"{a="b"} |json"#), (true, false));
        assert_eq!(
            parsers(r#"sum(count_over_time({a="b"} | json [5m]))"#),
            (true, false)
        );
    }

    #[test]
    fn entries_split_fields_from_labels_newest_first() {
        let data: Value = serde_json::from_str(
            r#"{"result": [{"stream": {"app": "api", "status": "401", "app_extracted": "x", "__error__": ""},
               "values": [["2000", "{\"status\": 401, \"app\": \"x\"}"], ["3000", "{\"status\": 401, \"app\": \"x\"}"]]}]}"#,
        )
        .unwrap();
        let es = entries(&data, (true, false), false);
        let e = es[0].read_lock::<Map>().unwrap();
        assert_eq!(e["ns"].as_int().unwrap(), 3000);
        let f = e["fields"].read_lock::<Map>().unwrap();
        assert_eq!(f["status"].as_int().unwrap(), 401);
        let l = e["labels"].read_lock::<Map>().unwrap();
        assert_eq!(l.len(), 2, "{l:?}");
        assert_eq!(l["app"].to_string(), "api");
    }

    #[test]
    fn logfmt_pairs_are_sanitized_and_an_open_quote_is_reported() {
        assert_eq!(
            logfmt_pairs(r#"level=info 1st.key="a \"b\" c" flag"#),
            (
                vec![
                    ("level".into(), "info".into()),
                    ("_1st_key".into(), r#"a "b" c"#.into()),
                    ("flag".into(), String::new()),
                ],
                true
            )
        );
        assert_eq!(
            logfmt_pairs(r#"a=1 msg="never closed"#),
            (
                vec![
                    ("a".into(), "1".into()),
                    ("msg".into(), "never closed".into())
                ],
                false
            )
        );
        let mut m = Map::new();
        logfmt_fields(r#"a=1 msg="open"#, &mut m);
        assert_eq!(m.len(), 2, "{m:?}");
    }
}
