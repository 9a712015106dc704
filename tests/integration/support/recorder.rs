//! Recorders for the HTTP APIs the sandbox cannot run (Grafana and
//! PagerDuty are not packaged for Debian): a loopback server that keeps
//! every request and answers as the documented API does, refusing a
//! request whose shape the documentation does not allow, so a test fails
//! when opsh sends the wrong method, path, headers or body.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

type Handler = dyn Fn(&Recorded) -> (u16, Value) + Send + Sync;

pub struct Recorder {
    pub port: u16,
    requests: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
}

impl Recorder {
    pub fn start(handler: impl Fn(&Recorded) -> (u16, Value) + Send + Sync + 'static) -> Recorder {
        let port = opsh::sandbox::free_port().unwrap();
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (r2, s2) = (requests.clone(), stop.clone());
        let handler: Arc<Handler> = Arc::new(handler);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                if let Some(req) = read(&mut conn) {
                    let (code, body) = handler(&req);
                    r2.lock().unwrap().push(req);
                    let text = body.to_string();
                    let _ = write!(
                        conn,
                        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                        text.len()
                    );
                }
            }
        });
        Recorder {
            port,
            requests,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn read(conn: &mut TcpStream) -> Option<Recorded> {
    let mut r = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    let mut len = 0;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        let k = k.trim().to_ascii_lowercase();
        if k == "content-length" {
            len = v.trim().parse().ok()?;
        }
        headers.push((k, v.trim().to_string()));
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Recorded {
        method,
        path,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    })
}

fn only_keys(v: &Value, allowed: &[&str]) -> Result<(), String> {
    match v.as_object() {
        Some(o) => match o.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(format!("unknown field {k:?}")),
            None => Ok(()),
        },
        None => Err("the body is not a JSON object".into()),
    }
}

/// Grafana's POST /api/annotations (HTTP API reference, "Annotations
/// API"): bearer auth, JSON with `text` and integer epoch-millisecond
/// times, `tags` an array of strings, `dashboardUID` a string, `panelId` a
/// number. Answers `{"message": "Annotation added", "id": N}`.
pub fn grafana(token: &'static str) -> Recorder {
    let next = Arc::new(Mutex::new(0));
    Recorder::start(move |r| {
        if r.header("authorization") != Some(&format!("Bearer {token}")) {
            return (401, json!({"message": "Unauthorized"}));
        }
        if (r.method.as_str(), r.path.as_str()) != ("POST", "/api/annotations") {
            return (404, json!({"message": "Not found"}));
        }
        let b = &r.body;
        let check = only_keys(
            b,
            &["dashboardUID", "panelId", "time", "timeEnd", "tags", "text"],
        )
        .and_then(|_| {
            let ok = r.header("content-type") == Some("application/json")
                && b["text"].as_str().is_some_and(|t| !t.is_empty())
                && b["time"].is_i64()
                && (b["timeEnd"].is_null() || b["timeEnd"].is_i64())
                && (b["panelId"].is_null() || b["panelId"].is_i64())
                && (b["dashboardUID"].is_null() || b["dashboardUID"].is_string())
                && b["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().all(Value::is_string));
            if ok {
                Ok(())
            } else {
                Err("bad request data".into())
            }
        });
        match check {
            Ok(()) => {
                let mut n = next.lock().unwrap();
                *n += 1;
                (200, json!({"message": "Annotation added", "id": *n}))
            }
            Err(e) => (400, json!({"message": e})),
        }
    })
}

/// PagerDuty's REST API v2 (`Authorization: Token token=`, `Accept:
/// application/vnd.pagerduty+json;version=2`, `From:` on writes) for
/// GET /incidents/ID and POST /incidents/ID/notes, and the Events API v2
/// (POST /v2/enqueue) on the same port. Incident `Q1ABCDEF` exists.
pub fn pagerduty(token: &'static str) -> Recorder {
    let next = Arc::new(Mutex::new(0));
    Recorder::start(move |r| {
        let err = |code: u16, msg: &str, c: i64| {
            (
                code,
                json!({"error": {"message": msg, "code": c, "errors": []}}),
            )
        };
        if r.path == "/v2/enqueue" {
            let b = &r.body;
            let action = b["event_action"].as_str().unwrap_or("");
            let ok = r.method == "POST"
                && b["routing_key"].as_str().is_some_and(|k| k.len() >= 8)
                && match action {
                    "trigger" => {
                        let p = &b["payload"];
                        p["summary"].is_string()
                            && p["source"].is_string()
                            && ["critical", "error", "warning", "info"]
                                .contains(&p["severity"].as_str().unwrap_or(""))
                    }
                    "acknowledge" | "resolve" => b["dedup_key"].is_string(),
                    _ => false,
                };
            if !ok {
                return (
                    400,
                    json!({"status": "invalid event", "message": "Event object is invalid", "errors": ["bad event"]}),
                );
            }
            let dedup = b["dedup_key"].as_str().unwrap_or("generated-key");
            return (
                202,
                json!({"status": "success", "message": "Event processed", "dedup_key": dedup}),
            );
        }
        if r.header("authorization") != Some(&format!("Token token={token}")) {
            return err(401, "Unauthorized", 2006);
        }
        if r.header("accept") != Some("application/vnd.pagerduty+json;version=2") {
            return err(400, "Invalid Accept header", 2001);
        }
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/incidents/Q1ABCDEF") => (
                200,
                json!({"incident": {
                    "id": "Q1ABCDEF", "incident_number": 1234, "title": "API error rate over 10%",
                    "status": "acknowledged", "urgency": "high", "created_at": "2026-11-30T22:14:03Z",
                    "html_url": "https://example.pagerduty.com/incidents/Q1ABCDEF",
                    "service": {"summary": "lydian-iq API"},
                    "assignments": [{"assignee": {"summary": "Ada Oncall"}}]
                }}),
            ),
            ("POST", "/incidents/Q1ABCDEF/notes") => {
                if !r.header("from").is_some_and(|f| f.contains('@')) {
                    return err(400, "You must specify a user's email address in the \"From\" header to perform this action", 2100);
                }
                let content = r.body["note"]["content"].as_str();
                if only_keys(&r.body, &["note"]).is_err() || content.is_none_or(str::is_empty) {
                    return err(400, "Invalid Input Provided", 2001);
                }
                let mut n = next.lock().unwrap();
                *n += 1;
                (
                    201,
                    json!({"note": {"id": format!("PNOTE{}", *n), "content": content, "created_at": "2026-12-01T03:00:00Z"}}),
                )
            }
            (_, p) if p.starts_with("/incidents/") => err(404, "Not Found", 2100),
            _ => err(404, "Not Found", 2100),
        }
    })
}
