//! Telling someone: a Slack incoming webhook or a generic JSON webhook.
//! Used by scripts and by `--notify` at the end of a run. Webhook URLs are
//! secrets (whoever has one can post): they are masked everywhere.

use crate::dispatch::{Call, OpError, Plan};
use crate::redact::{redact, register_secret};
use crate::registry::{field, req, ModuleDecl, Primitive, Ty};
use crate::value::{map_of, to_json};
use rhai::Dynamic;
use std::time::Instant;

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "notify",
    doc: "Notifications: Slack incoming webhooks, generic JSON webhooks, PagerDuty events. `--notify` uses them at the end of a run.",
    target: None,
    primitives: &[SLACK, WEBHOOK, crate::modules::pagerduty::EVENT],
};

/// What a post returns.
const POSTED: Ty = Ty::Record(&[
    field("status", Ty::Int).doc("the HTTP status of the reply"),
    field("ms", Ty::Int).doc("how long the post took"),
]);

/// The URL argument `param`, checked and registered as a secret.
fn url_arg(call: &Call, param: &str) -> Result<String, OpError> {
    let url = call.str(param)?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(
            OpError::bad_input(format!("{} is not an http(s) URL", redact(&url)))
                .with_hint("webhook URLs look like https://hooks.slack.com/services/..."),
        );
    }
    register_secret(&url);
    Ok(url)
}

/// "hooks.slack.com": enough to say where without the secret path.
fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| {
                format!(
                    "{h}{}",
                    u.port().map(|p| format!(":{p}")).unwrap_or_default()
                )
            })
        })
        .unwrap_or_else(|| "?".into())
}

fn plan_slack(call: &mut Call) -> Result<Plan, OpError> {
    let url = url_arg(call, "webhook")?;
    let msg = call.str("message")?;
    Ok(Plan {
        summary: format!(
            "would post a {}-character message to the Slack webhook on {}",
            msg.chars().count(),
            host_of(&url)
        ),
        details: map_of([("message", Dynamic::from(redact(&msg)))]),
    })
}

pub const SLACK: Primitive = Primitive::mutate("slack", plan_slack, slack)
    .params(&[req("webhook", Ty::Str), req("message", Ty::Str)])
    .returns(POSTED)
    .doc("Post `message` to a Slack incoming webhook (`{\"text\": message}`).\n\
          A non-2xx reply is an error carrying Slack's answer. The webhook URL is masked in output and the audit log.")
    .example(r#"notify.slack(env("SLACK_WEBHOOK_URL"), "backup finished")"#);
fn slack(call: &mut Call) -> Result<Dynamic, OpError> {
    let url = url_arg(call, "webhook")?;
    let msg = call.str("message")?;
    let body = serde_json::json!({ "text": msg }).to_string();
    post(call, &url, body.into_bytes(), "application/json")
}

fn plan_webhook(call: &mut Call) -> Result<Plan, OpError> {
    let url = url_arg(call, "url")?;
    Ok(Plan {
        summary: format!("would POST the payload to the webhook on {}", host_of(&url)),
        details: map_of([]),
    })
}

pub const WEBHOOK: Primitive = Primitive::mutate("webhook", plan_webhook, webhook)
    .params(&[
        req("url", Ty::Str),
        req("payload", Ty::OneOf(&[Ty::Map, Ty::Array, Ty::Str])),
    ])
    .returns(POSTED)
    .doc("POST `payload` to a URL: a map or array as JSON, a string as text. A non-2xx reply is an error.")
    .example(r#"notify.webhook("https://hooks.example.com/opsh", #{event: "failover", cluster: "main"})"#);
fn webhook(call: &mut Call) -> Result<Dynamic, OpError> {
    let url = url_arg(call, "url")?;
    let (body, ctype) = match call.value("payload")? {
        Some(d) if d.is_string() => (d.to_string().into_bytes(), "text/plain; charset=utf-8"),
        Some(d) => (
            serde_json::to_vec(&to_json(d)).unwrap_or_default(),
            "application/json",
        ),
        None => return Err(OpError::bad_input("argument `payload` is required")),
    };
    post(call, &url, body, ctype)
}

fn post(call: &Call, url: &str, body: Vec<u8>, ctype: &'static str) -> Result<Dynamic, OpError> {
    let client = call.session.client("notify", || {
        reqwest::Client::builder()
            .user_agent(concat!("opsh/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| OpError::failed("cannot build the HTTP client").with_cause(e))
    })?;
    let rb = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, ctype)
        .body(body);
    let host = host_of(url);
    call.block_on(async move {
        let started = Instant::now();
        let resp = rb.send().await.map_err(|e| {
            OpError::failed(format!("cannot reach the webhook on {host}"))
                .with_cause(redact(&e.to_string()))
                .with_hint("check the URL (its Secret) and that this host may reach it")
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(
                OpError::failed(format!("the webhook on {host} answered {status}"))
                    .with_cause(redact(text.trim()).chars().take(300).collect::<String>())
                    .with_hint("a 403/404 from Slack usually means the webhook was revoked"),
            );
        }
        Ok(Dynamic::from_map(map_of([
            ("status", Dynamic::from_int(i64::from(status.as_u16()))),
            (
                "ms",
                Dynamic::from_int(started.elapsed().as_millis() as i64),
            ),
        ])))
    })
}
