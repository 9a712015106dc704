//! Pushgateway: an unattended run publishes its outcome (duration, checks
//! passed/failed, last success time) for Prometheus to scrape.

use crate::config::Kind;
use crate::dispatch::{Call, OpError, Plan};
use crate::modules::prom::client::Http;
use crate::modules::prom::exposition::{format_sample, valid_label_name, valid_metric_name};
use crate::registry::{field, opt, req, ModuleDecl, Primitive, Ty};
use crate::value::{from_json, map_of};
use rhai::{Array, Dynamic, Map};
use serde_json::Value;

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "pushgateway",
    doc: "Prometheus Pushgateway: publish a run's metrics. Targets come from [pushgateway.NAME] in the config or PUSHGATEWAY_URL.",
    target: Some(Kind::Pushgateway),
    primitives: &[CONNECT, PUSH, GROUPS],
};

pub const CONNECT: Primitive = Primitive::handle("connect", connect, false)
    .params(&[req("target", Ty::Str).target()])
    .doc("Use a named target or an http(s):// URL; returns a handle with the same methods as `pushgateway`.")
    .example(r#"let gw = pushgateway.connect("ops"); gw.groups().len()"#);
fn connect(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = call.str("target")?;
    let t = call.session.resolve(Kind::Pushgateway, Some(&name))?;
    call.set_target(t);
    fetch_groups(call)?;
    Ok(Dynamic::from(crate::engine::Handle {
        module: call.prim.module.name,
        target: Some(name),
    }))
}

fn fetch_groups(call: &mut Call) -> Result<Vec<Value>, OpError> {
    let h = Http::for_call(call)?;
    let rb = h.request(reqwest::Method::GET, "api/v1/metrics");
    let v = call.block_on(async { h.send(rb).await?.json("Pushgateway") })?;
    Ok(v["data"].as_array().cloned().unwrap_or_default())
}

/// (labels, metric names, last push) of one group in /api/v1/metrics.
fn group_info(g: &Value) -> (Map, Vec<String>, Option<f64>) {
    let labels: Map = g["labels"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.as_str().into(), from_json(v)))
                .collect()
        })
        .unwrap_or_default();
    let mut metrics = Vec::new();
    let mut last_push = None;
    for (k, v) in g.as_object().into_iter().flatten() {
        if k == "labels" {
            continue;
        }
        if k == "push_time_seconds" {
            last_push = v["metrics"][0]["value"]
                .as_str()
                .and_then(|s| s.parse::<f64>().ok());
            continue;
        }
        // The Pushgateway's own bookkeeping, not pushed metrics.
        if !matches!(
            k.as_str(),
            "push_failure_time_seconds" | "last_push_successful"
        ) {
            metrics.push(k.clone());
        }
    }
    metrics.sort();
    (labels, metrics, last_push)
}

pub const GROUPS: Primitive = Primitive::read("groups", groups)
    .returns(Ty::Rows(&[
        field("labels", Ty::Map).doc("the group's grouping labels, job included"),
        field("metrics", Ty::List(&Ty::Str)).doc("names of the metrics pushed to it"),
        field("last_push", Ty::Float).doc("unix seconds; () when the Pushgateway does not say"),
    ]))
    .doc("Groups the Pushgateway holds, one row per group.")
    .example(
        r#"for g in pushgateway.groups() { print(`${g.labels.job}: ${g.metrics.len()} metrics`) }"#,
    );
fn groups(call: &mut Call) -> Result<Dynamic, OpError> {
    let rows: Array = fetch_groups(call)?
        .iter()
        .map(|g| {
            let (labels, metrics, last) = group_info(g);
            Dynamic::from_map(map_of([
                ("labels", Dynamic::from_map(labels)),
                (
                    "metrics",
                    Dynamic::from_array(metrics.into_iter().map(Dynamic::from).collect()),
                ),
                (
                    "last_push",
                    last.map(Dynamic::from_float).unwrap_or(Dynamic::UNIT),
                ),
            ]))
        })
        .collect();
    Ok(Dynamic::from_array(rows))
}

struct PushReq {
    job: String,
    grouping: Vec<(String, String)>,
    names: Vec<String>,
    body: String,
    merge: bool,
}

fn label_pairs(m: &Map, what: &str) -> Result<Vec<(String, String)>, OpError> {
    m.iter()
        .map(|(k, v)| {
            if !valid_label_name(k) {
                return Err(OpError::bad_input(format!(
                    "invalid {what} label name {k:?}"
                )));
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

fn number(d: &Dynamic, name: &str) -> Result<f64, OpError> {
    if let Ok(i) = d.as_int() {
        Ok(i as f64)
    } else if let Ok(f) = d.as_float() {
        Ok(f)
    } else if let Ok(b) = d.as_bool() {
        Ok(if b { 1.0 } else { 0.0 })
    } else {
        Err(OpError::bad_input(format!(
            "metric {name}: value must be a number or a bool, got {}",
            crate::value::type_name(d)
        )))
    }
}

fn push_args(call: &Call) -> Result<PushReq, OpError> {
    let job = call.str("job")?;
    if job.is_empty() {
        return Err(OpError::bad_input("job must not be empty"));
    }
    // Metric names are data: read as a map like any options map.
    let metrics = call.opts("metrics")?;
    if metrics.is_empty() {
        return Err(OpError::bad_input("no metrics to push")
            .with_hint("e.g. #{backup_duration_seconds: 42.0, backup_ok: 1}"));
    }
    let opts = call.opts("opts")?;
    let grouping = match opts.map("grouping")? {
        Some(g) => label_pairs(&g, "grouping")?,
        None => Vec::new(),
    };
    let merge = opts.bool("merge")?;
    let mut body = String::new();
    let mut names = Vec::new();
    for (name, spec) in metrics.iter() {
        if !valid_metric_name(name) {
            return Err(OpError::bad_input(format!("invalid metric name {name:?}"))
                .with_hint("names match [a-zA-Z_:][a-zA-Z0-9_:]*"));
        }
        let (value, kind, help, labels) = match spec.clone().try_cast::<Map>() {
            Some(m) => {
                let v = m
                    .get("value")
                    .ok_or_else(|| OpError::bad_input(format!("metric {name}: missing value")))?;
                let kind = m
                    .get("type")
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "gauge".into());
                if !matches!(kind.as_str(), "gauge" | "counter" | "untyped") {
                    return Err(OpError::bad_input(format!(
                        "metric {name}: type must be gauge, counter or untyped, got {kind:?}"
                    )));
                }
                let labels = match m.get("labels") {
                    Some(l) => label_pairs(
                        &l.clone().try_cast::<Map>().ok_or_else(|| {
                            OpError::bad_input(format!("metric {name}: labels must be a map"))
                        })?,
                        "metric",
                    )?,
                    None => Vec::new(),
                };
                (
                    number(v, name)?,
                    kind,
                    m.get("help").map(|h| h.to_string()),
                    labels,
                )
            }
            None => (number(spec, name)?, "gauge".into(), None, Vec::new()),
        };
        if let Some(h) = help {
            body.push_str(&format!(
                "# HELP {name} {}\n",
                h.replace('\\', "\\\\").replace('\n', "\\n")
            ));
        }
        body.push_str(&format!("# TYPE {name} {kind}\n"));
        body.push_str(&format_sample(name, &labels, value));
        body.push('\n');
        names.push(name.to_string());
    }
    Ok(PushReq {
        job,
        grouping,
        names,
        body,
        merge,
    })
}

/// `/metrics/job/J/k/v...`; a value with `/` (or empty) goes base64url.
fn group_path(job: &str, grouping: &[(String, String)]) -> String {
    let seg = |k: &str, v: &str| {
        if v.is_empty() || v.contains('/') {
            format!("{k}@base64/{}", base64url(v.as_bytes()))
        } else {
            format!("{k}/{}", url_escape(v))
        }
    };
    let mut p = format!("metrics/{}", seg("job", job));
    for (k, v) in grouping {
        p.push('/');
        p.push_str(&seg(k, v));
    }
    p
}

fn url_escape(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// URL-safe base64 with padding, the Pushgateway's `@base64` label
/// encoding; `=` alone is its spelling of an empty value.
fn base64url(b: &[u8]) -> String {
    use base64::Engine as _;
    if b.is_empty() {
        return "=".into();
    }
    base64::engine::general_purpose::URL_SAFE.encode(b)
}

fn group_labels(p: &PushReq) -> Vec<(String, String)> {
    let mut all = vec![("job".to_string(), p.job.clone())];
    all.extend(p.grouping.iter().cloned());
    all
}

fn grouping_map(p: &PushReq) -> Map {
    p.grouping
        .iter()
        .map(|(k, v)| (k.as_str().into(), Dynamic::from(v.clone())))
        .collect()
}

fn plan_push(call: &mut Call) -> Result<Plan, OpError> {
    let p = push_args(call)?;
    let want = group_labels(&p);
    let existing = fetch_groups(call)?
        .into_iter()
        .map(|g| group_info(&g))
        .find(|(labels, _, _)| {
            labels.len() == want.len()
                && want
                    .iter()
                    .all(|(k, v)| labels.get(k.as_str()).map(|x| x.to_string()) == Some(v.clone()))
        });
    let group = format!(
        "{{{}}}",
        want.iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let now_has = match &existing {
        None => "a new group".to_string(),
        Some((_, metrics, _)) if p.merge => {
            let replaced: Vec<&String> = metrics.iter().filter(|m| p.names.contains(m)).collect();
            format!(
                "group holds {} metrics; {} would be replaced",
                metrics.len(),
                replaced.len()
            )
        }
        Some((_, metrics, _)) => format!(
            "replacing the group's {} metrics ({})",
            metrics.len(),
            metrics.join(", ")
        ),
    };
    Ok(Plan {
        summary: format!(
            "would push {} metrics ({}) to group {group}: {now_has}",
            p.names.len(),
            p.names.join(", ")
        ),
        details: map_of([
            ("job", Dynamic::from(p.job.clone())),
            ("grouping", Dynamic::from_map(grouping_map(&p))),
            (
                "metrics",
                Dynamic::from_array(p.names.iter().cloned().map(Dynamic::from).collect()),
            ),
            ("group_exists", Dynamic::from_bool(existing.is_some())),
        ]),
    })
}

pub const PUSH: Primitive = Primitive::mutate("push", plan_push, push)
    .params(&[
        req("job", Ty::Str),
        req("metrics", Ty::Map),
        opt(
            "opts",
            Ty::Record(&[
                field("grouping", Ty::Map)
                    .doc("extra grouping labels besides job, e.g. #{instance: \"db1\"}"),
                field("merge", Ty::Bool).doc(
                    "true: replace only these metric names in the group (POST); \
                     default false: replace the whole group (PUT)",
                ),
            ]),
        ),
    ])
    .returns(Ty::Record(&[
        field("job", Ty::Str),
        field("grouping", Ty::Map).doc("the extra grouping labels"),
        field("pushed", Ty::Int).doc("how many metrics were pushed"),
    ]))
    .doc("Push metrics for `job`: a map of name -> number (a gauge; a bool is 1 or 0), \
          or name -> #{value, type (gauge, counter or untyped), help, labels}.\n\
          --dry-run shows what the group holds now and what would be replaced.")
    .example(r#"pushgateway.push("daily_check", #{daily_check_failed: 0, daily_check_duration_seconds: 4.2, daily_check_last_success_timestamp_seconds: now()}, #{grouping: #{env: "prod"}})"#);
fn push(call: &mut Call) -> Result<Dynamic, OpError> {
    let p = push_args(call)?;
    let h = Http::for_call(call)?;
    let method = if p.merge {
        reqwest::Method::POST
    } else {
        reqwest::Method::PUT
    };
    let rb = h
        .request(method, &group_path(&p.job, &p.grouping))
        .header(reqwest::header::CONTENT_TYPE, "text/plain; version=0.0.4")
        .body(p.body.clone());
    call.block_on(async { h.send(rb).await?.json("Pushgateway") })?;
    Ok(Dynamic::from_map(map_of([
        ("job", Dynamic::from(p.job.clone())),
        ("grouping", Dynamic::from_map(grouping_map(&p))),
        ("pushed", Dynamic::from_int(p.names.len() as i64)),
    ])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_slashes_and_empties() {
        assert_eq!(group_path("j", &[]), "metrics/job/j");
        assert_eq!(
            group_path("a/b", &[("instance".into(), String::new())]),
            "metrics/job@base64/YS9i/instance@base64/="
        );
        assert_eq!(
            group_path("j", &[("k".into(), "a b".into())]),
            "metrics/job/j/k/a%20b"
        );
        assert_eq!(base64url(b"foo/bar"), "Zm9vL2Jhcg==");
    }
}
