//! Prometheus: PromQL queries as data, targets, alerts, rules, health.

pub mod client;
pub mod exposition;
mod time;

use crate::config::Kind;
use crate::dispatch::{Call, OpError};
use crate::engine::Handle;
use crate::registry::{opt, req, ModuleDecl, Primitive, Ty};
use crate::value::{from_json, map_of};
use client::{sample_value, Http};
use rhai::{Array, Dynamic, Map};
use serde_json::Value;

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "prom",
    doc: "Prometheus: PromQL queries, targets, alerts, rules. Targets come from [prom.NAME] in the config or PROMETHEUS_URL.",
    target: Some(Kind::Prom),
    primitives: &[
        Primitive::handle("connect", connect, false)
            .params(&[req("target", Ty::Str)])
            .doc("Use a named target or an http(s):// URL; returns a handle with the same methods as `prom`.\n\
                  Checks that the server answers (/-/ready).")
            .example(r#"let p = prom.connect("prod"); p.value("sum(up)")"#),
        Primitive::read("query", query)
            .params(&[req("expr", Ty::Str), opt("opts", Ty::Map)])
            .returns(Ty::Rows(&[]))
            .doc("Instant PromQL query. A vector is an array of #{labels, value, time} (value a float, time unix seconds); \
                  a scalar is a float; a string is a string; a range selector (`x[5m]`) gives #{labels, values: [[time, value], ...]}.\n\
                  opts: time (unix seconds, RFC 3339, or a duration ago like \"5m\"), timeout (\"10s\", evaluated by Prometheus).\n\
                  Prometheus's warnings are printed on stderr.")
            .example(r#"for s in prom.query("up == 0") { print(`${s.labels.job} ${s.labels.instance} is down`) }"#),
        Primitive::read("value", value)
            .params(&[req("expr", Ty::Str), opt("opts", Ty::Map)])
            .returns(Ty::Float)
            .doc("Instant query that must give exactly one number (a one-sample vector or a scalar).\n\
                  No sample or several samples is an error that shows the count and the labels: an empty result is not 0 \
                  (append `or vector(0)` when absence really means zero). opts as for prom.query.")
            .example(r#"let p95 = prom.value("histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))");"#),
        Primitive::read("query_range", query_range)
            .params(&[req("expr", Ty::Str), opt("opts", Ty::Map)])
            .returns(Ty::Rows(&[]))
            .doc("Range query: one #{labels, values, stats} per series; values is [[time, value], ...] and \
                  stats is #{min, max, avg, last, count} (NaN samples skipped).\n\
                  opts: start (default \"1h\" ago), end (default now), step (default range/250, at least 1s), timeout. \
                  Times are unix seconds, RFC 3339, or a duration ago (\"30m\").")
            .example(r#"for s in prom.query_range("rate(http_requests_total[5m])", #{start: "1h", step: "1m"}) { print(`${s.labels} max ${s.stats.max}`) }"#),
        Primitive::read("series", series)
            .params(&[req("selector", Ty::Str), opt("opts", Ty::Map)])
            .returns(Ty::Rows(&[]))
            .doc("Label sets of the series matching a selector (`up{job=\"api\"}`).\n\
                  opts: start, end (as for query_range; default: the last hour).")
            .example(r#"let s = prom.series("up{job=\"postgres\"}"); s.len()"#),
        Primitive::read("labels", labels)
            .params(&[opt("name", Ty::Str)])
            .returns(Ty::Array)
            .doc("Without a name: all label names. With one: that label's values (`prom.labels(\"job\")`).")
            .example(r#"let jobs = prom.labels("job");"#),
        Primitive::read("targets", targets)
            .returns(Ty::Rows(&[]))
            .doc("Scrape targets: #{job, instance, up, health, last_error, last_scrape, scrape_ms, scrape_url, labels}.\n\
                  last_scrape is RFC 3339; `up` is true when the last scrape succeeded.")
            .example(r#"for t in prom.targets() { if !t.up { print(`${t.job} ${t.instance}: ${t.last_error}`) } }"#),
        Primitive::read("alerts", alerts)
            .returns(Ty::Rows(&[]))
            .doc("Alerts Prometheus currently holds, firing and pending: #{name, state, labels, annotations, active_at, value}.")
            .example(r#"let firing = prom.alerts().filter(|a| a.state == "firing");"#),
        Primitive::read("rules", rules)
            .returns(Ty::Rows(&[]))
            .doc("Recording and alerting rules: #{group, name, type, state, health, query, alerts, last_error, last_evaluation, evaluation_ms}.\n\
                  state is inactive/pending/firing for alerting rules, () for recording rules.")
            .example(r#"let broken = prom.rules().filter(|r| r.health != "ok");"#),
        Primitive::read("healthy", healthy)
            .returns(Ty::Bool)
            .doc("GET /-/healthy: true on 200, false on another status. An unreachable server is an error.")
            .example("if !prom.healthy() { fail(\"Prometheus is unhealthy\") }"),
        Primitive::read("ready", ready)
            .returns(Ty::Bool)
            .doc("GET /-/ready: true once Prometheus serves queries (false while it replays its WAL). An unreachable server is an error.")
            .example("prom.ready()"),
    ],
};

fn http(call: &mut Call) -> Result<Http, OpError> {
    let t = call.target()?;
    Http::new(call, &t)
}

/// GET an /api/v1 endpoint; prints Prometheus's warnings.
fn api(
    call: &mut Call,
    path: &str,
    params: &[(&str, String)],
    expr: Option<&str>,
) -> Result<Value, OpError> {
    let h = http(call)?;
    // POST form, as the Prometheus UI does: long expressions fit.
    let post = path.starts_with("api/v1/query");
    let rb = if post {
        h.request(reqwest::Method::POST, path).form(params)
    } else {
        h.request(reqwest::Method::GET, path).query(params)
    };
    let (data, warnings) = call.block_on(async { h.send(rb).await?.prometheus(expr) })?;
    for w in warnings {
        call.session
            .out
            .note(&format!("warning: {}: {w}", call.prim.full_name()));
    }
    Ok(data)
}

fn connect(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = call.str_at(0)?;
    let t = call.session.resolve(Kind::Prom, Some(&name))?;
    call.set_target(t.clone());
    let h = Http::new(call, &t)?;
    let rb = h.request(reqwest::Method::GET, "-/ready");
    let r = call.block_on(h.send(rb))?;
    if !r.status.is_success() {
        return Err(r.not_api("Prometheus"));
    }
    Ok(Dynamic::from(Handle {
        module: "prom",
        target: Some(name),
    }))
}

fn query_params(call: &Call, expr: &str) -> Result<Vec<(&'static str, String)>, OpError> {
    let opts = call.opts_at(1)?;
    let now = time::now();
    let mut p = vec![("query", expr.to_string())];
    if let Some(t) = opts.get("time") {
        p.push(("time", time::fmt(time::parse(t, now)?)));
    }
    if let Some(t) = opts.get("timeout") {
        p.push(("timeout", time::prom_duration(t)?));
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

fn decode(data: &Value) -> Dynamic {
    let result = &data["result"];
    match data["resultType"].as_str() {
        Some("vector") => {
            crate::output::column_order_hint(&["labels".into(), "value".into(), "time".into()]);
            Dynamic::from_array(
                result
                    .as_array()
                    .map(|a| a.iter().map(sample).collect())
                    .unwrap_or_default(),
            )
        }
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

fn query(call: &mut Call) -> Result<Dynamic, OpError> {
    let expr = call.str_at(0)?;
    let params = query_params(call, &expr)?;
    let data = api(call, "api/v1/query", &params, Some(&expr))?;
    Ok(decode(&data))
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

fn value(call: &mut Call) -> Result<Dynamic, OpError> {
    let expr = call.str_at(0)?;
    let params = query_params(call, &expr)?;
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

fn range_of(call: &Call, idx: usize, default_span: f64) -> Result<(f64, f64, Map), OpError> {
    let opts = call.opts_at(idx)?;
    let now = time::now();
    let end = match opts.get("end") {
        Some(d) => time::parse(d, now)?,
        None => now,
    };
    let start = match opts.get("start") {
        Some(d) => time::parse(d, now)?,
        None => end - default_span,
    };
    if start > end {
        return Err(OpError::bad_input(format!(
            "start ({}) is after end ({})",
            time::fmt_rfc3339(start),
            time::fmt_rfc3339(end)
        )));
    }
    Ok((start, end, opts))
}

fn query_range(call: &mut Call) -> Result<Dynamic, OpError> {
    let expr = call.str_at(0)?;
    let (start, end, opts) = range_of(call, 1, 3600.0)?;
    let step = match opts.get("step") {
        Some(d) => crate::value::parse_duration(d)
            .map_err(OpError::bad_input)?
            .as_secs_f64(),
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
    if let Some(t) = opts.get("timeout") {
        params.push(("timeout", time::prom_duration(t)?));
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
    crate::output::column_order_hint(&["labels".into(), "stats".into(), "values".into()]);
    Ok(Dynamic::from_array(rows))
}

fn series(call: &mut Call) -> Result<Dynamic, OpError> {
    let sel = call.str_at(0)?;
    let (start, end, _) = range_of(call, 1, 3600.0)?;
    let params = [
        ("match[]", sel.clone()),
        ("start", time::fmt(start)),
        ("end", time::fmt(end)),
    ];
    let data = api(call, "api/v1/series", &params, Some(&sel))?;
    Ok(from_json(&data))
}

fn labels(call: &mut Call) -> Result<Dynamic, OpError> {
    let data = match call.opt_str_at(0)? {
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

fn s(v: &Value) -> Dynamic {
    match v.as_str() {
        Some(x) => Dynamic::from(x.to_string()),
        None => Dynamic::UNIT,
    }
}

fn targets(call: &mut Call) -> Result<Dynamic, OpError> {
    let data = api(call, "api/v1/targets", &[("state", "active".into())], None)?;
    let rows: Array = data["activeTargets"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    let health = t["health"].as_str().unwrap_or("unknown");
                    let err = t["lastError"].as_str().filter(|e| !e.is_empty());
                    Dynamic::from_map(map_of([
                        ("job", s(&t["labels"]["job"])),
                        ("instance", s(&t["labels"]["instance"])),
                        ("up", Dynamic::from_bool(health == "up")),
                        ("health", Dynamic::from(health.to_string())),
                        (
                            "last_error",
                            err.map(|e| Dynamic::from(e.to_string()))
                                .unwrap_or(Dynamic::UNIT),
                        ),
                        ("last_scrape", s(&t["lastScrape"])),
                        (
                            "scrape_ms",
                            Dynamic::from_float(
                                (t["lastScrapeDuration"].as_f64().unwrap_or(f64::NAN) * 1e4)
                                    .round()
                                    / 10.0,
                            ),
                        ),
                        ("scrape_url", s(&t["scrapeUrl"])),
                        ("labels", from_json(&t["labels"])),
                    ]))
                })
                .collect()
        })
        .unwrap_or_default();
    crate::output::column_order_hint(
        &[
            "job",
            "instance",
            "up",
            "health",
            "last_error",
            "last_scrape",
            "scrape_ms",
            "scrape_url",
            "labels",
        ]
        .map(String::from),
    );
    Ok(Dynamic::from_array(rows))
}

fn alerts(call: &mut Call) -> Result<Dynamic, OpError> {
    let data = api(call, "api/v1/alerts", &[], None)?;
    let rows: Array = data["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|al| {
                    Dynamic::from_map(map_of([
                        ("name", s(&al["labels"]["alertname"])),
                        ("state", s(&al["state"])),
                        ("labels", from_json(&al["labels"])),
                        ("annotations", from_json(&al["annotations"])),
                        ("active_at", s(&al["activeAt"])),
                        ("value", Dynamic::from_float(sample_value(&al["value"]))),
                    ]))
                })
                .collect()
        })
        .unwrap_or_default();
    crate::output::column_order_hint(
        &[
            "name",
            "state",
            "value",
            "active_at",
            "labels",
            "annotations",
        ]
        .map(String::from),
    );
    Ok(Dynamic::from_array(rows))
}

fn rules(call: &mut Call) -> Result<Dynamic, OpError> {
    let data = api(call, "api/v1/rules", &[], None)?;
    let mut rows = Array::new();
    for g in data["groups"].as_array().into_iter().flatten() {
        for r in g["rules"].as_array().into_iter().flatten() {
            let err = r["lastError"].as_str().filter(|e| !e.is_empty());
            rows.push(Dynamic::from_map(map_of([
                ("group", s(&g["name"])),
                ("name", s(&r["name"])),
                ("type", s(&r["type"])),
                ("state", s(&r["state"])),
                ("health", s(&r["health"])),
                ("query", s(&r["query"])),
                (
                    "alerts",
                    Dynamic::from_int(r["alerts"].as_array().map(|a| a.len() as i64).unwrap_or(0)),
                ),
                (
                    "last_error",
                    err.map(|e| Dynamic::from(e.to_string()))
                        .unwrap_or(Dynamic::UNIT),
                ),
                ("last_evaluation", s(&r["lastEvaluation"])),
                (
                    "evaluation_ms",
                    Dynamic::from_float(
                        (r["evaluationTime"].as_f64().unwrap_or(f64::NAN) * 1e4).round() / 10.0,
                    ),
                ),
            ])));
        }
    }
    crate::output::column_order_hint(
        &[
            "group",
            "name",
            "type",
            "state",
            "health",
            "alerts",
            "query",
            "last_error",
            "last_evaluation",
            "evaluation_ms",
        ]
        .map(String::from),
    );
    Ok(Dynamic::from_array(rows))
}

fn probe(call: &mut Call, path: &str) -> Result<Dynamic, OpError> {
    let h = http(call)?;
    let rb = h.request(reqwest::Method::GET, path);
    let r = call.block_on(h.send(rb))?;
    Ok(Dynamic::from_bool(r.status.is_success()))
}

fn healthy(call: &mut Call) -> Result<Dynamic, OpError> {
    probe(call, "-/healthy")
}

fn ready(call: &mut Call) -> Result<Dynamic, OpError> {
    probe(call, "-/ready")
}
