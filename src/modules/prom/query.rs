//! PromQL as data: instant and range queries, series and label names.

use super::client::{api, sample_value};
use super::time::{self, TIME};
use crate::dispatch::{Call, OpError, Opts};
use crate::registry::{field, join, opt, req, Field, Primitive, Ty};
use crate::value::{from_json, map_of};
use rhai::{Array, Dynamic, Map};
use serde_json::Value;

const INSTANT_OPTS: &[Field] = &[
    field("time", TIME).doc(
        "evaluation time: unix seconds, RFC 3339, \"now\", or a duration ago (\"5m\"); default now",
    ),
    field("timeout", Ty::Duration).doc("evaluation timeout, enforced by Prometheus"),
];

/// The window of a range query or a series lookup.
const WINDOW: &[Field] = &[
    field("start", TIME).doc(
        "unix seconds, RFC 3339, \"now\", or a duration ago (\"30m\"); default one hour before end",
    ),
    field("end", TIME).doc("as start; default now"),
];

const RANGE_OPTS: [Field; 4] = join::<4>(&[
    WINDOW,
    &[
        field("step", Ty::Duration).doc("resolution; default the range / 250, at least 1s"),
        field("timeout", Ty::Duration).doc("evaluation timeout, enforced by Prometheus"),
    ],
]);

const SERIES_LABELS: Field = field("labels", Ty::Map)
    .doc("the series' labels (with __name__ when the expression keeps the metric name)");

const SERIES_VALUES: Field = field("values", Ty::List(&Ty::Array))
    .doc("[[time, value], ...]: unix seconds and the sample (NaN and ±Inf as floats)");

/// One sample of an instant vector.
pub(crate) const SAMPLE: &[Field] = &[
    SERIES_LABELS,
    field("value", Ty::Float).doc("the sample (NaN and ±Inf as floats)"),
    field("time", Ty::Float).doc("unix seconds"),
];

/// One series of a range vector (`x[5m]`) from an instant query.
pub(crate) const POINTS: &[Field] = &[SERIES_LABELS, SERIES_VALUES];

pub const QUERY: Primitive = Primitive::read("query", query)
    .params(&[req("expr", Ty::Str), opt("opts", Ty::Record(INSTANT_OPTS))])
    .returns(Ty::OneOf(&[
        Ty::Rows(SAMPLE),
        Ty::Float,
        Ty::Str,
        Ty::Rows(POINTS),
    ]))
    .doc(
        "Instant PromQL query. A vector is one row per series (the first table below); a scalar is a float; \
         a string is a string; a range selector (`x[5m]`) gives one row per series with its `values` (the second table).\n\
         Prometheus's warnings are printed on stderr.",
    )
    .example(
        r#"for s in prom.query("up == 0") { print(`${s.labels.job} ${s.labels.instance} is down`) }"#,
    );
fn query(call: &mut Call) -> Result<Dynamic, OpError> {
    let expr = call.str("expr")?;
    let params = instant_params(call, &expr)?;
    let data = api(call, "api/v1/query", &params, Some(&expr))?;
    Ok(decode(&data))
}

fn instant_params(call: &Call, expr: &str) -> Result<Vec<(&'static str, String)>, OpError> {
    let opts = call.opts("opts")?;
    let mut p = vec![("query", expr.to_string())];
    if let Some(t) = opts.get("time") {
        p.push(("time", time::fmt(time::parse(t, time::now())?)));
    }
    if let Some(t) = opts.duration("timeout")? {
        p.push(("timeout", time::seconds(t)));
    }
    Ok(p)
}

fn sample(s: &Value) -> Dynamic {
    let (t, v) = (&s["value"][0], &s["value"][1]);
    Dynamic::from_map(map_of([
        ("labels", from_json(&s["metric"])),
        ("value", Dynamic::from_float(sample_value(v))),
        ("time", Dynamic::from_float(t.as_f64().unwrap_or(f64::NAN))),
    ]))
}

fn points(values: &Value) -> Array {
    values
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    Dynamic::from_array(vec![
                        Dynamic::from_float(p[0].as_f64().unwrap_or(f64::NAN)),
                        Dynamic::from_float(sample_value(&p[1])),
                    ])
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn decode(data: &Value) -> Dynamic {
    let result = &data["result"];
    match data["resultType"].as_str() {
        Some("vector") => Dynamic::from_array(
            result
                .as_array()
                .map(|a| a.iter().map(sample).collect())
                .unwrap_or_default(),
        ),
        Some("scalar") => Dynamic::from_float(sample_value(&result[1])),
        Some("string") => Dynamic::from(result[1].as_str().unwrap_or("").to_string()),
        Some("matrix") => Dynamic::from_array(
            result
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|s| {
                            Dynamic::from_map(map_of([
                                ("labels", from_json(&s["metric"])),
                                ("values", Dynamic::from_array(points(&s["values"]))),
                            ]))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        ),
        _ => from_json(result),
    }
}

pub const VALUE: Primitive = Primitive::read("value", value)
    .params(&[req("expr", Ty::Str), opt("opts", Ty::Record(INSTANT_OPTS))])
    .returns(Ty::Float)
    .doc(
        "Instant query that must give exactly one number (a one-sample vector or a scalar).\n\
         No sample or several samples is an error that shows the count and the labels: an empty result is not 0 \
         (append `or vector(0)` when absence really means zero).",
    )
    .example(r#"let p95 = prom.value("histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))");"#);
fn value(call: &mut Call) -> Result<Dynamic, OpError> {
    let expr = call.str("expr")?;
    let params = instant_params(call, &expr)?;
    let data = api(call, "api/v1/query", &params, Some(&expr))?;
    let result = &data["result"];
    match data["resultType"].as_str() {
        Some("scalar") => return Ok(Dynamic::from_float(sample_value(&result[1]))),
        Some("vector") => {}
        other => {
            return Err(OpError::bad_input(format!(
                "`{expr}` gives a {}, not a number",
                other.unwrap_or("value of unknown type")
            ))
            .with_hint("use prom.query for range selectors and strings"))
        }
    }
    let samples = result.as_array().cloned().unwrap_or_default();
    match samples.len() {
        1 => Ok(Dynamic::from_float(sample_value(&samples[0]["value"][1]))),
        0 => Err(OpError::failed(format!(
            "`{expr}` returned no samples, so there is no value"
        ))
        .with_hint(
            "an empty result is not 0: check the metric name and labels (prom.series), \
                        or append `or vector(0)` if absence really means zero",
        )),
        n => {
            let shown: Vec<String> = samples
                .iter()
                .take(5)
                .map(|s| labels_text(&s["metric"]))
                .collect();
            let more = if n > 5 {
                format!(" and {} more", n - 5)
            } else {
                String::new()
            };
            Err(OpError::failed(format!(
                "`{expr}` returned {n} samples, expected exactly one"
            ))
            .with_cause(format!("{}{more}", shown.join(", ")))
            .with_hint("aggregate (sum(...), max(...)) or narrow the selector with labels"))
        }
    }
}

fn labels_text(m: &Value) -> String {
    let inner: Vec<String> = m
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| format!("{k}={:?}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    format!("{{{}}}", inner.join(", "))
}

const NUMBER_NOTE: &str = "() when no sample is a number";

pub const QUERY_RANGE: Primitive = Primitive::read("query_range", query_range)
    .params(&[req("expr", Ty::Str), opt("opts", Ty::Record(&RANGE_OPTS))])
    .returns(Ty::Rows(&[
        SERIES_LABELS,
        field(
            "stats",
            Ty::Record(&[
                field("min", Ty::Float).doc(NUMBER_NOTE),
                field("max", Ty::Float).doc(NUMBER_NOTE),
                field("avg", Ty::Float).doc(NUMBER_NOTE),
                field("last", Ty::Float).doc(NUMBER_NOTE),
                field("count", Ty::Int).doc("samples that are numbers"),
            ]),
        )
        .doc("over the series' samples, NaN samples skipped"),
        SERIES_VALUES,
    ]))
    .doc("Range query: one row per series, with its samples and their statistics.")
    .example(r#"for s in prom.query_range("rate(http_requests_total[5m])", #{start: "1h", step: "1m"}) { print(`${s.labels} max ${s.stats.max}`) }"#);
fn query_range(call: &mut Call) -> Result<Dynamic, OpError> {
    let expr = call.str("expr")?;
    let opts = call.opts("opts")?;
    let (start, end) = window(&opts)?;
    let step = match opts.duration("step")? {
        Some(d) => d.as_secs_f64(),
        None => ((end - start) / 250.0).max(1.0).round(),
    };
    if step <= 0.0 {
        return Err(OpError::bad_input("step must be positive"));
    }
    let mut params = vec![
        ("query", expr.clone()),
        ("start", time::fmt(start)),
        ("end", time::fmt(end)),
        ("step", time::fmt(step)),
    ];
    if let Some(t) = opts.duration("timeout")? {
        params.push(("timeout", time::seconds(t)));
    }
    let data = api(call, "api/v1/query_range", &params, Some(&expr))?;
    let rows: Array = data["result"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    let pts = points(&s["values"]);
                    let st = stats(&pts);
                    Dynamic::from_map(map_of([
                        ("labels", from_json(&s["metric"])),
                        ("stats", Dynamic::from_map(st)),
                        ("values", Dynamic::from_array(pts)),
                    ]))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Dynamic::from_array(rows))
}

fn stats(points: &Array) -> Map {
    let vals: Vec<f64> = points
        .iter()
        .filter_map(|p| {
            p.read_lock::<Array>()
                .and_then(|a| a.get(1).and_then(|v| v.as_float().ok()))
        })
        .filter(|v| !v.is_nan())
        .collect();
    let f = |o: Option<f64>| o.map(Dynamic::from_float).unwrap_or(Dynamic::UNIT);
    let n = vals.len();
    map_of([
        ("min", f(vals.iter().copied().reduce(f64::min))),
        ("max", f(vals.iter().copied().reduce(f64::max))),
        (
            "avg",
            f((n > 0).then(|| vals.iter().sum::<f64>() / n as f64)),
        ),
        ("last", f(vals.last().copied())),
        ("count", Dynamic::from_int(n as i64)),
    ])
}

/// (start, end) in unix seconds from the `start`/`end` options: by default
/// the hour before now.
fn window(opts: &Opts) -> Result<(f64, f64), OpError> {
    let now = time::now();
    let end = match opts.get("end") {
        Some(d) => time::parse(d, now)?,
        None => now,
    };
    let start = match opts.get("start") {
        Some(d) => time::parse(d, now)?,
        None => end - 3600.0,
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

pub const SERIES: Primitive = Primitive::read("series", series)
    .params(&[req("selector", Ty::Str), opt("opts", Ty::Record(WINDOW))])
    .returns(Ty::List(&Ty::Map))
    .doc(
        "Label sets of the series matching a selector (`up{job=\"api\"}`): one map of labels per series, \
         __name__ included.",
    )
    .example(r#"let s = prom.series("up{job=\"postgres\"}"); s.len()"#);
fn series(call: &mut Call) -> Result<Dynamic, OpError> {
    let sel = call.str("selector")?;
    let (start, end) = window(&call.opts("opts")?)?;
    let params = [
        ("match[]", sel.clone()),
        ("start", time::fmt(start)),
        ("end", time::fmt(end)),
    ];
    let data = api(call, "api/v1/series", &params, Some(&sel))?;
    Ok(from_json(&data))
}

pub const LABELS: Primitive = Primitive::read("labels", labels)
    .params(&[opt("name", Ty::Str)])
    .returns(Ty::List(&Ty::Str))
    .doc("Without a name: all label names. With one: that label's values (`prom.labels(\"job\")`).")
    .example(r#"let jobs = prom.labels("job");"#);
fn labels(call: &mut Call) -> Result<Dynamic, OpError> {
    let data = match call.opt_str("name")? {
        Some(name) => {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(OpError::bad_input(format!("invalid label name {name:?}")));
            }
            api(call, &format!("api/v1/label/{name}/values"), &[], None)?
        }
        None => api(call, "api/v1/labels", &[], None)?,
    };
    Ok(from_json(&data))
}
