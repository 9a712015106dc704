//! Grafana: annotations on dashboards (POST /api/annotations), so a
//! deploy, a rollback or a mitigation shows on the graphs responders look
//! at. A service account token is the target's bearer token.

use crate::config::{Kind, Target};
use crate::dispatch::{Call, OpError, Plan};
use crate::modules::prom::client::Http;
use crate::modules::prom::time::{self, TIME};
use crate::registry::{field, opt, req, Class, ModuleDecl, Primitive, Ty, STRINGS};
use crate::value::map_of;
use rhai::Dynamic;
use serde_json::{json, Value};

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "grafana",
    doc: "Grafana: dashboard annotations. Targets come from [grafana.NAME] in the config (a service account \
          token as bearer_env/bearer_file) or GRAFANA_URL with GRAFANA_TOKEN.",
    target: Some(Kind::Grafana),
    primitives: &[CONFIGURED, ANNOTATE],
};

pub const CONFIGURED: Primitive = Primitive::read("configured", crate::modules::loki::configured)
    .returns(Ty::Bool)
    .class(Class::Local)
    .doc("Whether a Grafana target is at hand (the config's default or GRAFANA_URL), without contacting it: \
          runbooks annotate only when it is.")
    .example(r#"if grafana.configured() { grafana.annotate("rollback of api", #{tags: ["rollback"]}); }"#);

/// The call's target; a target from the environment (GRAFANA_URL) takes
/// its token from `token_var`, as one from the config takes bearer_env.
pub fn target_with_token(call: &mut Call, token_var: &str) -> Result<Target, OpError> {
    let mut t = call.target()?;
    if t.bearer.is_none() {
        if let Some(tok) = std::env::var(token_var).ok().filter(|v| !v.is_empty()) {
            crate::redact::register_secret(&tok);
            t.bearer = Some(tok);
        }
    }
    Ok(t)
}

struct Annotation {
    body: Value,
    when: String,
}

fn annotation(call: &Call) -> Result<Annotation, OpError> {
    let text = call.str("text")?;
    if text.trim().is_empty() {
        return Err(OpError::bad_input("an annotation needs a text")
            .with_hint("say what happened: \"rollback of api to revision 41 (opsh)\""));
    }
    let opts = call.opts("opts")?;
    let now = time::now();
    let start = match opts.get("time") {
        Some(d) => time::parse(d, now)?,
        None => now,
    };
    let mut body = json!({
        "time": (start * 1000.0).round() as i64,
        "text": text,
        "tags": opts.strings("tags")?.unwrap_or_default(),
    });
    let mut when = time::fmt_rfc3339(start);
    if let Some(d) = opts.get("time_end") {
        let end = time::parse(d, now)?;
        if end < start {
            return Err(OpError::bad_input(format!(
                "time_end ({}) is before time ({})",
                time::fmt_rfc3339(end),
                time::fmt_rfc3339(start)
            )));
        }
        body["timeEnd"] = json!((end * 1000.0).round() as i64);
        when = format!("{when} to {}", time::fmt_rfc3339(end));
    }
    match (opts.str("dashboard_uid")?, opts.int("panel_id")?) {
        (Some(uid), panel) => {
            body["dashboardUID"] = json!(uid);
            if let Some(p) = panel {
                body["panelId"] = json!(p);
            }
        }
        (None, Some(_)) => {
            return Err(OpError::bad_input("panel_id needs a dashboard_uid")
                .with_hint("the UID is in the dashboard's URL: /d/UID/name"))
        }
        (None, None) => {}
    }
    Ok(Annotation { body, when })
}

fn where_(body: &Value) -> String {
    match (body["dashboardUID"].as_str(), body["panelId"].as_i64()) {
        (Some(d), Some(p)) => format!("panel {p} of dashboard {d}"),
        (Some(d), None) => format!("dashboard {d}"),
        _ => "the organization (every dashboard that shows its annotations)".into(),
    }
}

fn plan_annotate(call: &mut Call) -> Result<Plan, OpError> {
    let a = annotation(call)?;
    Ok(Plan {
        summary: format!(
            "would annotate {} at {}: {:?} tags {}",
            where_(&a.body),
            a.when,
            a.body["text"].as_str().unwrap_or(""),
            a.body["tags"]
        ),
        details: map_of([("annotation", crate::value::from_json(&a.body))]),
    })
}

pub const ANNOTATE: Primitive = Primitive::mutate("annotate", plan_annotate, annotate)
    .params(&[
        req("text", Ty::Str),
        opt(
            "opts",
            Ty::Record(&[
                field("tags", STRINGS).doc("e.g. [\"deploy\", \"api\"]"),
                field("dashboard_uid", Ty::Str).doc("the dashboard (its UID, from /d/UID/... in its URL); default: an organization annotation"),
                field("panel_id", Ty::Int).doc("one panel of that dashboard"),
                field("time", TIME).doc("unix seconds, RFC 3339, \"now\", or a duration ago; default now"),
                field("time_end", TIME).doc("as time: makes it a region"),
            ]),
        ),
    ])
    .returns(Ty::Record(&[
        field("id", Ty::Int).doc("the annotation's id in Grafana"),
        field("time", Ty::Int).doc("unix milliseconds, as Grafana stores it"),
        field("message", Ty::Str).doc("Grafana's answer (\"Annotation added\")"),
    ]))
    .doc("Add an annotation through Grafana's HTTP API (POST /api/annotations): a mark, or a region with \
          time_end, on one dashboard (or panel) or for the whole organization.\n\
          A mutation: --dry-run shows it without posting, the audit log records it, a protected target asks first.")
    .example(r#"grafana.annotate("rollback of api to revision 41", #{tags: ["rollback", "api"], dashboard_uid: "LydianIQProd"})"#);
fn annotate(call: &mut Call) -> Result<Dynamic, OpError> {
    let a = annotation(call)?;
    let t = target_with_token(call, "GRAFANA_TOKEN")?;
    let h = Http::new(call, &t)?;
    let rb = h
        .request(reqwest::Method::POST, "api/annotations")
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::ACCEPT, "application/json")
        .body(a.body.to_string());
    let v = call.block_on(async { h.send(rb).await?.json("Grafana") })?;
    Ok(Dynamic::from_map(map_of([
        ("id", Dynamic::from_int(v["id"].as_i64().unwrap_or(0))),
        (
            "time",
            Dynamic::from_int(a.body["time"].as_i64().unwrap_or(0)),
        ),
        (
            "message",
            Dynamic::from(v["message"].as_str().unwrap_or("").to_string()),
        ),
    ])))
}
