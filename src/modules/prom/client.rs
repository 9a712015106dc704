//! HTTP to Prometheus-family APIs (Prometheus, Alertmanager, Pushgateway):
//! one client per target (bearer token, extra CA), and error reporting
//! that says who answered: Prometheus's own `errorType`/`error`, or a
//! proxy's HTML page, never "expected value at line 1".

use crate::config::Target;
use crate::dispatch::{Call, ErrorKind, OpError};
use crate::redact::redact;
use serde_json::Value;

#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    pub target: Target,
}

/// A finished response: status, content type and body.
pub struct Reply {
    pub status: reqwest::StatusCode,
    pub content_type: String,
    pub body: Vec<u8>,
    pub url: String,
}

impl Http {
    /// The client for `t`, built once per run.
    pub fn new(call: &Call, t: &Target) -> Result<Http, OpError> {
        let key = format!(
            "{}|{}",
            t.url,
            t.ca_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
        let client = call.session.client(&key, || build_client(t))?;
        Ok(Http {
            client,
            target: t.clone(),
        })
    }

    /// The client for the call's target (its handle's, or the module's
    /// default).
    pub fn for_call(call: &mut Call) -> Result<Http, OpError> {
        let t = call.target()?;
        Http::new(call, &t)
    }

    /// `path` is relative to the target URL, so a Prometheus behind a path
    /// prefix (`https://host/prometheus`) works.
    pub fn url(&self, path: &str) -> String {
        if path.is_empty() {
            return self.target.url.clone();
        }
        format!(
            "{}/{}",
            self.target.url.trim_end_matches('/'),
            path.trim_start_matches('/')
        )
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        // reqwest turns user:password in the URL into basic auth.
        let rb = self.client.request(method, self.url(path));
        match &self.target.bearer {
            Some(b) => rb.bearer_auth(b),
            None => rb,
        }
    }

    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Result<Reply, OpError> {
        let req = rb
            .build()
            .map_err(|e| OpError::bad_input("invalid request").with_cause(e))?;
        let url = redact(req.url().as_str());
        let resp = self
            .client
            .execute(req)
            .await
            .map_err(|e| send_error(e, &url, &self.target))?;
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp
            .bytes()
            .await
            .map_err(|e| {
                OpError::failed(format!("reading the response from {url} failed")).with_cause(e)
            })?
            .to_vec();
        Ok(Reply {
            status,
            content_type,
            body,
            url,
        })
    }
}

/// GET (or, for queries, POST) a Prometheus /api/v1 endpoint and unwrap
/// its envelope; Prometheus's warnings are printed as notes.
pub fn api(
    call: &mut Call,
    path: &str,
    params: &[(&str, String)],
    expr: Option<&str>,
) -> Result<Value, OpError> {
    let h = Http::for_call(call)?;
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

fn build_client(t: &Target) -> Result<reqwest::Client, OpError> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("opsh/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(5));
    if let Some(ca) = &t.ca_file {
        let pem = std::fs::read(ca).map_err(|e| {
            OpError::bad_input(format!(
                "{} target {}: cannot read ca_file {}",
                t.kind.name(),
                t.name,
                ca.display()
            ))
            .with_cause(e)
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            OpError::bad_input(format!("ca_file {} is not a PEM bundle", ca.display()))
                .with_cause(e)
        })?;
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build()
        .map_err(|e| OpError::failed("cannot build the HTTP client").with_cause(e))
}

fn send_error(e: reqwest::Error, url: &str, t: &Target) -> OpError {
    let cause = crate::dispatch::root_cause(&e);
    let what = t.kind.name();
    if e.is_connect() {
        if let Some(e) = crate::netcause::connect_error(&cause, what, &t.display(), &t.host_port(0))
        {
            return e;
        }
    }
    if e.is_timeout() {
        OpError::new(
            ErrorKind::Timeout,
            format!("{what} at {url} did not answer in time"),
        )
        .with_cause(cause)
    } else if e.is_connect() {
        OpError::failed(format!("cannot connect to {what} at {}", t.display()))
            .with_cause(cause)
            .with_hint(format!(
                "is {what} running and listening on {}?",
                t.host_port(0)
            ))
    } else {
        OpError::failed(format!("request to {url} failed")).with_cause(cause)
    }
}

impl Reply {
    /// A short description of a body that is not the API's JSON: an HTML
    /// error page from a proxy, plain text, or nothing.
    pub fn describe_body(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let looks_html = self.content_type.contains("html") || text.trim_start().starts_with('<');
        let shown = if looks_html {
            let title = text
                .split_once("<title>")
                .and_then(|(_, r)| r.split_once("</title>"))
                .map(|(t, _)| t.trim().to_string());
            match title {
                Some(t) => format!("an HTML page titled {t:?}"),
                None => format!("an HTML page ({} bytes)", self.body.len()),
            }
        } else if text.trim().is_empty() {
            "an empty body".into()
        } else {
            let t: String = text.trim().chars().take(300).collect();
            format!("{t:?}")
        };
        redact(&shown)
    }

    /// Non-JSON from a proxy, gateway or wrong URL: say so, with the status.
    pub fn not_api(&self, what: &str) -> OpError {
        let status = self.status;
        let mut e = OpError::failed(format!(
            "HTTP {status} from {}: not a {what} API response",
            self.url
        ))
        .with_cause(format!("the body is {}", self.describe_body()));
        e.hint = Some(match status.as_u16() {
            401 | 403 => "authentication failed: configure `bearer_env`/`bearer_file`, or user and `password_env` in the target's url (docs/config.md)".into(),
            404 => format!("is the target URL the {what} base URL (no /api/... suffix)?"),
            502..=504 => format!("a proxy or load balancer in front of {what} answered: is {what} itself up?"),
            _ => format!("is the target URL really {what}?"),
        });
        e
    }

    /// Prometheus's envelope: `{"status": "success", "data": .., "warnings": [..]}`
    /// or `{"status": "error", "errorType": .., "error": ..}`.
    pub fn prometheus(self, expr: Option<&str>) -> Result<(Value, Vec<String>), OpError> {
        let Ok(v) = serde_json::from_slice::<Value>(&self.body) else {
            return Err(self.not_api("Prometheus"));
        };
        let warnings = v["warnings"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|w| w.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        match v["status"].as_str() {
            Some("success") => Ok((v["data"].clone(), warnings)),
            Some("error") => {
                let kind = v["errorType"].as_str().unwrap_or("error");
                let msg = v["error"].as_str().unwrap_or("(no message)");
                let (ek, what, hint) = match kind {
                    "bad_data" => (
                        ErrorKind::BadInput,
                        "rejected",
                        "check the PromQL; try it in the Prometheus UI's graph page",
                    ),
                    "timeout" | "canceled" => (
                        ErrorKind::Timeout,
                        "timed out on",
                        "narrow the selector or the time range, or raise the timeout",
                    ),
                    _ => (
                        ErrorKind::Failed,
                        "failed on",
                        "see the Prometheus server log for details",
                    ),
                };
                let message = match expr {
                    Some(e) => format!("Prometheus {what} `{e}`"),
                    None => format!("Prometheus {what} the request"),
                };
                Err(OpError::new(ek, message)
                    .with_cause(format!("{kind}: {msg}"))
                    .with_hint(hint))
            }
            _ => Err(self.not_api("Prometheus")),
        }
    }

    /// Alertmanager v2 and Pushgateway: JSON on success, a JSON or text
    /// message on failure.
    pub fn json(self, what: &str) -> Result<Value, OpError> {
        if self.status.is_success() {
            if self.body.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_slice::<Value>(&self.body).map_err(|_| self.not_api(what));
        }
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(v) => {
                let msg = v["message"]
                    .as_str()
                    .or_else(|| v["error"].as_str())
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                let kind = if self.status.is_client_error() {
                    ErrorKind::BadInput
                } else {
                    ErrorKind::Failed
                };
                Err(
                    OpError::new(kind, format!("{what} answered HTTP {}", self.status))
                        .with_cause(redact(&msg)),
                )
            }
            Err(_)
                if self.content_type.starts_with("text/plain") && self.status.is_client_error() =>
            {
                Err(
                    OpError::bad_input(format!("{what} answered HTTP {}", self.status))
                        .with_cause(redact(String::from_utf8_lossy(&self.body).trim())),
                )
            }
            Err(_) => Err(self.not_api(what)),
        }
    }
}

/// Prometheus sends sample values as strings ("1.5", "NaN", "+Inf").
pub fn sample_value(v: &Value) -> f64 {
    match v {
        Value::String(s) => parse_float(s),
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}

pub fn parse_float(s: &str) -> f64 {
    match s {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => s.parse().unwrap_or(f64::NAN),
    }
}
