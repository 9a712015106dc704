//! PagerDuty: incidents and their notes through the REST API v2
//! (`Authorization: Token token=...`, a `From:` user email on writes), and
//! alert events through the Events API v2 (a routing key, a dedup key), as
//! `--notify` sends them for a failed unattended run.

use crate::config::Kind;
use crate::dispatch::{Call, ErrorKind, OpError, Plan};
use crate::modules::prom::client::{Http, Reply};
use crate::redact::{redact, register_secret};
use crate::registry::{field, opt, req, Class, ModuleDecl, Primitive, Ty};
use crate::value::{from_json, map_of, to_json};
use rhai::Dynamic;
use serde_json::{json, Value};

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "pagerduty",
    doc: "PagerDuty: incidents and incident notes (REST API v2), alert events (Events API v2). Targets come \
          from [pagerduty.NAME] (url https://api.pagerduty.com, the API token as bearer_env/bearer_file) or \
          PAGERDUTY_URL with PAGERDUTY_TOKEN; notes are written as the user PAGERDUTY_FROM names.",
    target: Some(Kind::Pagerduty),
    primitives: &[CONFIGURED, INCIDENT, NOTE],
};

/// The Events API v2 endpoint.
pub const EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

pub const CONFIGURED: Primitive = Primitive::read("configured", crate::modules::loki::configured)
    .returns(Ty::Bool)
    .class(Class::Local)
    .doc("Whether a PagerDuty target is at hand (the config's default or PAGERDUTY_URL), without contacting it.")
    .example(r#"if pagerduty.configured() && "incident" in args { pagerduty.note(args.incident, "rolled back api"); }"#);

const ACCEPT: &str = "application/vnd.pagerduty+json;version=2";

/// A REST request with PagerDuty's headers; `from` for writes.
fn rest(
    call: &mut Call,
    method: reqwest::Method,
    path: &str,
    from: Option<&str>,
    body: Option<Value>,
) -> Result<Value, OpError> {
    let t = crate::modules::grafana::target_with_token(call, "PAGERDUTY_TOKEN")?;
    let Some(token) = t.bearer.clone() else {
        return Err(OpError::bad_input(format!(
            "pagerduty target {} has no API token",
            t.display()
        ))
        .with_hint("set bearer_env (or bearer_file) in its [pagerduty.NAME] section, or export PAGERDUTY_TOKEN"));
    };
    // PagerDuty's scheme is `Token token=`, not `Bearer`: Http::request
    // must not add its own.
    let mut bare = t.clone();
    bare.bearer = None;
    let h = Http::new(call, &bare)?;
    let mut rb = h
        .request(method, path)
        .header(
            reqwest::header::AUTHORIZATION,
            format!("Token token={token}"),
        )
        .header(reqwest::header::ACCEPT, ACCEPT);
    if let Some(f) = from {
        rb = rb.header("From", f);
    }
    if let Some(b) = body {
        rb = rb
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(b.to_string());
    }
    call.block_on(async { pd_json(h.send(rb).await?) })
}

/// PagerDuty's errors: `{"error": {"message", "code", "errors": [..]}}`.
fn pd_json(r: Reply) -> Result<Value, OpError> {
    if r.status.is_success() {
        return serde_json::from_slice(&r.body).or_else(|_| {
            if r.body.is_empty() {
                Ok(Value::Null)
            } else {
                Err(r.not_api("PagerDuty"))
            }
        });
    }
    let Ok(v) = serde_json::from_slice::<Value>(&r.body) else {
        return Err(r.not_api("PagerDuty"));
    };
    let e = &v["error"];
    let mut msg = e["message"].as_str().unwrap_or("").to_string();
    if let Some(details) = e["errors"].as_array().filter(|a| !a.is_empty()) {
        let d: Vec<&str> = details.iter().filter_map(Value::as_str).collect();
        msg = format!("{msg}: {}", d.join("; "));
    }
    let kind = match r.status.as_u16() {
        400..=499 => ErrorKind::BadInput,
        _ => ErrorKind::Failed,
    };
    let hint = match r.status.as_u16() {
        401 => "the API token was refused: check the target's bearer_env / PAGERDUTY_TOKEN",
        403 => "this token may not do that (a read-only key cannot write notes)",
        404 => "no such incident: check the id (the letters in the incident's URL, e.g. Q1ABCDEF)",
        _ => "see PagerDuty's REST API v2 documentation for the code",
    };
    Err(OpError::new(
        kind,
        format!("PagerDuty answered HTTP {}", r.status.as_u16()),
    )
    .with_cause(redact(&format!(
        "{msg} (code {})",
        e["code"].as_i64().unwrap_or(0)
    )))
    .with_hint(hint))
}

fn incident_id(call: &Call) -> Result<String, OpError> {
    let id = call.str("incident")?;
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(
            OpError::bad_input(format!("{id:?} is not a PagerDuty incident id"))
                .with_hint("the id is the letters and digits in the incident's URL, e.g. Q1ABCDEF"),
        );
    }
    Ok(id)
}

pub const INCIDENT: Primitive = Primitive::read("incident", incident)
    .params(&[req("incident", Ty::Str)])
    .returns(Ty::Record(&[
        field("id", Ty::Str),
        field("number", Ty::Int),
        field("title", Ty::Str),
        field("status", Ty::Str).doc("triggered, acknowledged or resolved"),
        field("urgency", Ty::Str),
        field("service", Ty::Str),
        field("assignees", Ty::List(&Ty::Str)),
        field("created_at", Ty::Str).doc("RFC 3339"),
        field("url", Ty::Str).doc("the incident's page"),
    ]))
    .doc("One incident (GET /incidents/ID).")
    .example(r#"let i = pagerduty.incident("Q1ABCDEF"); print(`${i.title}: ${i.status}`)"#);
fn incident(call: &mut Call) -> Result<Dynamic, OpError> {
    let id = incident_id(call)?;
    let v = rest(
        call,
        reqwest::Method::GET,
        &format!("incidents/{id}"),
        None,
        None,
    )?;
    let i = &v["incident"];
    let s = |v: &Value| Dynamic::from(v.as_str().unwrap_or("").to_string());
    let assignees: rhai::Array = i["assignments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| s(&a["assignee"]["summary"]))
        .collect();
    Ok(Dynamic::from_map(map_of([
        ("id", s(&i["id"])),
        (
            "number",
            Dynamic::from_int(i["incident_number"].as_i64().unwrap_or(0)),
        ),
        ("title", s(&i["title"])),
        ("status", s(&i["status"])),
        ("urgency", s(&i["urgency"])),
        ("service", s(&i["service"]["summary"])),
        ("assignees", Dynamic::from_array(assignees)),
        ("created_at", s(&i["created_at"])),
        ("url", s(&i["html_url"])),
    ])))
}

/// The note's author: `from`, else PAGERDUTY_FROM.
fn from_email(call: &Call) -> Result<String, OpError> {
    let from = call
        .opts("opts")?
        .str("from")?
        .or_else(|| std::env::var("PAGERDUTY_FROM").ok())
        .filter(|f| !f.trim().is_empty());
    match from {
        Some(f) if f.contains('@') => Ok(f),
        Some(f) => Err(OpError::bad_input(format!(
            "from {f:?} is not an email address"
        ))),
        None => Err(OpError::bad_input(
            "a PagerDuty note needs the email of the user it is written as",
        )
        .with_hint("export PAGERDUTY_FROM=you@example.com, or pass #{from: \"...\"}")),
    }
}

fn plan_note(call: &mut Call) -> Result<Plan, OpError> {
    let id = incident_id(call)?;
    let text = call.str("text")?;
    let from = from_email(call)?;
    Ok(Plan {
        summary: format!(
            "would add a {}-character note to incident {id} as {from}",
            text.chars().count()
        ),
        details: map_of([
            ("incident", Dynamic::from(id)),
            ("note", Dynamic::from(redact(&text))),
        ]),
    })
}

pub const NOTE: Primitive = Primitive::mutate("note", plan_note, note)
    .params(&[
        req("incident", Ty::Str),
        req("text", Ty::Str),
        opt(
            "opts",
            Ty::Record(&[field("from", Ty::Str)
                .doc("the email of the PagerDuty user the note is written as; default PAGERDUTY_FROM")]),
        ),
    ])
    .returns(Ty::Record(&[
        field("id", Ty::Str).doc("the note's id"),
        field("incident", Ty::Str),
        field("created_at", Ty::Str).doc("RFC 3339"),
    ]))
    .doc("Add a note to an incident (POST /incidents/ID/notes), written as the user `from` names.\n\
          A mutation: --dry-run shows it, the audit log records it. `opsh timeline --incident ID` posts a run's timeline this way.")
    .example(r#"pagerduty.note("Q1ABCDEF", "opsh: rolled api back to revision 41; error rate back under 1%")"#);
fn note(call: &mut Call) -> Result<Dynamic, OpError> {
    let id = incident_id(call)?;
    let text = call.str("text")?;
    if text.trim().is_empty() {
        return Err(OpError::bad_input("a note needs a text"));
    }
    let from = from_email(call)?;
    let v = rest(
        call,
        reqwest::Method::POST,
        &format!("incidents/{id}/notes"),
        Some(&from),
        Some(json!({"note": {"content": redact(&text)}})),
    )?;
    let n = &v["note"];
    Ok(Dynamic::from_map(map_of([
        (
            "id",
            Dynamic::from(n["id"].as_str().unwrap_or("").to_string()),
        ),
        ("incident", Dynamic::from(id)),
        (
            "created_at",
            Dynamic::from(n["created_at"].as_str().unwrap_or("").to_string()),
        ),
    ])))
}

const EVENT_OPTS: Ty = Ty::Record(&[
    field("dedup_key", Ty::Str).doc("the alert this event is about: the same key updates or resolves it; required for acknowledge and resolve"),
    field("summary", Ty::Str).doc("trigger: the alert's title (required, at most 1024 characters)"),
    field("source", Ty::Str).doc("trigger: where it happened; default this host"),
    field("severity", Ty::Str).doc("trigger: critical, error (default), warning or info"),
    field("component", Ty::Str),
    field("group", Ty::Str),
    field("class", Ty::Str),
    field("details", Ty::Map).doc("trigger: custom_details"),
    field("events_url", Ty::Str).doc("default https://events.pagerduty.com/v2/enqueue"),
]);

fn event_body(call: &Call) -> Result<(Value, String), OpError> {
    let key = call.str("routing_key")?;
    if key.trim().is_empty() {
        return Err(OpError::bad_input("the routing key is empty").with_hint(
            "it is the Integration Key of an Events API v2 integration on the service",
        ));
    }
    register_secret(&key);
    let action = call.str("action")?;
    let opts = call.opts("opts")?;
    let dedup = opts.str("dedup_key")?;
    let mut body = json!({"routing_key": key, "event_action": action});
    if let Some(d) = &dedup {
        body["dedup_key"] = json!(d);
    }
    match action.as_str() {
        "trigger" => {
            let summary = opts.str("summary")?.ok_or_else(|| {
                OpError::bad_input("a trigger event needs a summary")
                    .with_hint("#{summary: \"backup failed on prod\"}")
            })?;
            let severity = opts.str("severity")?.unwrap_or_else(|| "error".into());
            if !["critical", "error", "warning", "info"].contains(&severity.as_str()) {
                return Err(OpError::bad_input(format!(
                    "severity must be critical, error, warning or info, got {severity:?}"
                )));
            }
            let mut payload = json!({
                "summary": summary.chars().take(1024).collect::<String>(),
                "source": opts.str("source")?.unwrap_or_else(crate::audit::hostname),
                "severity": severity,
            });
            for k in ["component", "group", "class"] {
                if let Some(v) = opts.str(k)? {
                    payload[k] = json!(v);
                }
            }
            if let Some(d) = opts.map("details")? {
                payload["custom_details"] = to_json(&Dynamic::from_map(d));
            }
            body["payload"] = payload;
        }
        "acknowledge" | "resolve" if dedup.is_none() => {
            return Err(OpError::bad_input(format!(
                "a {action} event needs the dedup_key of the alert"
            )));
        }
        "acknowledge" | "resolve" => {}
        other => {
            return Err(OpError::bad_input(format!(
                "action must be trigger, acknowledge or resolve, got {other:?}"
            )))
        }
    }
    let url = opts.str("events_url")?.unwrap_or_else(|| EVENTS_URL.into());
    Ok((body, url))
}

fn plan_event(call: &mut Call) -> Result<Plan, OpError> {
    let (body, url) = event_body(call)?;
    Ok(Plan {
        summary: format!(
            "would send a {} event{} to {}",
            body["event_action"].as_str().unwrap_or(""),
            body["dedup_key"]
                .as_str()
                .map(|d| format!(" for {d}"))
                .unwrap_or_default(),
            redact(&url)
        ),
        details: map_of([]),
    })
}

/// Listed in `notify` (as `notify.pagerduty`): an event goes to a routing
/// key, not to a REST target.
pub const EVENT: Primitive = Primitive::mutate("pagerduty", plan_event, event)
    .params(&[req("action", Ty::Str), req("routing_key", Ty::Str), opt("opts", EVENT_OPTS)])
    .returns(Ty::Record(&[
        field("status", Ty::Str).doc("\"success\""),
        field("dedup_key", Ty::Str).doc("the alert's key (PagerDuty's when none was given)"),
        field("message", Ty::Str),
    ]))
    .doc("Send a PagerDuty alert event through the Events API v2: `action` is trigger (open, or update, the alert \
          of dedup_key), acknowledge or resolve; `routing_key` the Integration Key of the service's Events API v2 \
          integration, a secret masked in output and the audit log. `--notify` uses it for a failed unattended run.")
    .example(r#"notify.pagerduty("trigger", env("PD_ROUTING_KEY"), #{summary: "nightly backup failed", dedup_key: "backup/prod"})"#);
fn event(call: &mut Call) -> Result<Dynamic, OpError> {
    let (body, url) = event_body(call)?;
    let client = call.session.client("pagerduty-events", || {
        reqwest::Client::builder()
            .user_agent(concat!("opsh/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| OpError::failed("cannot build the HTTP client").with_cause(e))
    })?;
    let rb = client
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string());
    let shown = redact(&url);
    call.block_on(async move {
        let resp = rb.send().await.map_err(|e| {
            OpError::failed(format!("cannot reach the PagerDuty Events API at {shown}"))
                .with_cause(redact(&e.to_string()))
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            let errors = v["errors"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_else(|| text.chars().take(300).collect());
            return Err(OpError::new(
                if status.is_client_error() {
                    ErrorKind::BadInput
                } else {
                    ErrorKind::Failed
                },
                format!("the PagerDuty Events API answered HTTP {}", status.as_u16()),
            )
            .with_cause(redact(&format!(
                "{}: {errors}",
                v["message"].as_str().unwrap_or("error")
            ))));
        }
        Ok(Dynamic::from_map(map_of([
            ("status", from_json(&v["status"])),
            ("dedup_key", from_json(&v["dedup_key"])),
            ("message", from_json(&v["message"])),
        ])))
    })
}
