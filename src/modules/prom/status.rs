//! What Prometheus itself reports: whether it answers, its scrape
//! targets, the alerts it holds and its rules.

use super::client::{api, sample_value, Http};
use crate::dispatch::{Call, OpError};
use crate::engine::Handle;
use crate::registry::{field, req, Primitive, Ty};
use crate::value::{from_json, map_of};
use rhai::{Array, Dynamic};
use serde_json::Value;

pub const CONNECT: Primitive = Primitive::handle("connect", connect, false)
    .params(&[req("target", Ty::Str).target()])
    .doc(
        "Use a named target or an http(s):// URL; returns a handle with the same methods as `prom`.\n\
         Checks that the server answers (/-/ready).",
    )
    .example(r#"let p = prom.connect("prod"); p.value("sum(up)")"#);
fn connect(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = call.str("target")?;
    let t = call
        .session
        .resolve(crate::config::Kind::Prom, Some(&name))?;
    call.set_target(t.clone());
    let h = Http::new(call, &t)?;
    let rb = h.request(reqwest::Method::GET, "-/ready");
    let r = call.block_on(h.send(rb))?;
    if !r.status.is_success() {
        return Err(r.not_api("Prometheus"));
    }
    Ok(Dynamic::from(Handle {
        module: call.prim.module.name,
        target: Some(name),
    }))
}

/// A JSON string, or () when absent.
fn s(v: &Value) -> Dynamic {
    match v.as_str() {
        Some(x) => Dynamic::from(x.to_string()),
        None => Dynamic::UNIT,
    }
}

/// A non-empty `lastError`, or ().
fn last_error(v: &Value) -> Dynamic {
    v["lastError"]
        .as_str()
        .filter(|e| !e.is_empty())
        .map(|e| Dynamic::from(e.to_string()))
        .unwrap_or(Dynamic::UNIT)
}

/// Seconds from the API as milliseconds with one decimal.
fn ms(secs: &Value) -> Dynamic {
    Dynamic::from_float((secs.as_f64().unwrap_or(f64::NAN) * 1e4).round() / 10.0)
}

pub const TARGETS: Primitive = Primitive::read("targets", targets)
    .returns(Ty::Rows(&[
        field("job", Ty::Str),
        field("instance", Ty::Str),
        field("up", Ty::Bool).doc("true when the last scrape succeeded"),
        field("health", Ty::Str).doc("up, down or unknown"),
        field("last_error", Ty::Str).doc("() when the last scrape succeeded"),
        field("last_scrape", Ty::Str).doc("RFC 3339"),
        field("scrape_ms", Ty::Float).doc("how long the last scrape took"),
        field("scrape_url", Ty::Str),
        field("labels", Ty::Map).doc("the target's labels after relabelling"),
    ]))
    .doc("Scrape targets (the active ones), one row per target.")
    .example(
        r#"for t in prom.targets() { if !t.up { print(`${t.job} ${t.instance}: ${t.last_error}`) } }"#,
    );
fn targets(call: &mut Call) -> Result<Dynamic, OpError> {
    let data = api(call, "api/v1/targets", &[("state", "active".into())], None)?;
    let rows: Array = data["activeTargets"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    let health = t["health"].as_str().unwrap_or("unknown");
                    Dynamic::from_map(map_of([
                        ("job", s(&t["labels"]["job"])),
                        ("instance", s(&t["labels"]["instance"])),
                        ("up", Dynamic::from_bool(health == "up")),
                        ("health", Dynamic::from(health.to_string())),
                        ("last_error", last_error(t)),
                        ("last_scrape", s(&t["lastScrape"])),
                        ("scrape_ms", ms(&t["lastScrapeDuration"])),
                        ("scrape_url", s(&t["scrapeUrl"])),
                        ("labels", from_json(&t["labels"])),
                    ]))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Dynamic::from_array(rows))
}

pub const ALERTS: Primitive = Primitive::read("alerts", alerts)
    .returns(Ty::Rows(&[
        field("name", Ty::Str).doc("the alertname label"),
        field("state", Ty::Str).doc("firing or pending"),
        field("value", Ty::Float).doc("the alert expression's value when last evaluated"),
        field("active_at", Ty::Str).doc("RFC 3339: when it became pending"),
        field("labels", Ty::Map),
        field("annotations", Ty::Map),
    ]))
    .doc("Alerts Prometheus currently holds, firing and pending.")
    .example(r#"let firing = prom.alerts().filter(|a| a.state == "firing");"#);
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
    Ok(Dynamic::from_array(rows))
}

pub const RULES: Primitive = Primitive::read("rules", rules)
    .returns(Ty::Rows(&[
        field("group", Ty::Str).doc("the rule group"),
        field("name", Ty::Str),
        field("type", Ty::Str).doc("alerting or recording"),
        field("state", Ty::Str)
            .doc("inactive, pending or firing for an alerting rule; () for a recording rule"),
        field("health", Ty::Str).doc("ok, err or unknown"),
        field("alerts", Ty::Int).doc("alerts the rule holds now"),
        field("query", Ty::Str).doc("the rule's PromQL"),
        field("last_error", Ty::Str).doc("() when the last evaluation succeeded"),
        field("last_evaluation", Ty::Str).doc("RFC 3339"),
        field("evaluation_ms", Ty::Float).doc("how long the last evaluation took"),
    ]))
    .doc("Recording and alerting rules, one row per rule.")
    .example(r#"let broken = prom.rules().filter(|r| r.health != "ok");"#);
fn rules(call: &mut Call) -> Result<Dynamic, OpError> {
    let data = api(call, "api/v1/rules", &[], None)?;
    let mut rows = Array::new();
    for g in data["groups"].as_array().into_iter().flatten() {
        for r in g["rules"].as_array().into_iter().flatten() {
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
                ("last_error", last_error(r)),
                ("last_evaluation", s(&r["lastEvaluation"])),
                ("evaluation_ms", ms(&r["evaluationTime"])),
            ])));
        }
    }
    Ok(Dynamic::from_array(rows))
}

pub const HEALTHY: Primitive = Primitive::read("healthy", healthy)
    .returns(Ty::Bool)
    .doc("GET /-/healthy: true on 200, false on another status. An unreachable server is an error.")
    .example("if !prom.healthy() { fail(\"Prometheus is unhealthy\") }");
fn healthy(call: &mut Call) -> Result<Dynamic, OpError> {
    probe(call, "-/healthy")
}

pub const READY: Primitive = Primitive::read("ready", ready)
    .returns(Ty::Bool)
    .doc("GET /-/ready: true once Prometheus serves queries (false while it replays its WAL). An unreachable server is an error.")
    .example("prom.ready()");
fn ready(call: &mut Call) -> Result<Dynamic, OpError> {
    probe(call, "-/ready")
}

fn probe(call: &mut Call, path: &str) -> Result<Dynamic, OpError> {
    let h = Http::for_call(call)?;
    let rb = h.request(reqwest::Method::GET, path);
    let r = call.block_on(h.send(rb))?;
    Ok(Dynamic::from_bool(r.status.is_success()))
}
