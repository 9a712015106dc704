//! The sandbox's Loki: an in-process server speaking Loki's HTTP API
//! (push, query, query_range, labels, label values, series, ready) over
//! an in-memory store, with the LogQL of `logql.rs`.
//!
//! Why not Grafana Loki itself: it is not packaged for Debian (Debian's
//! `loki` package is an unrelated genetics program) and nothing may be
//! downloaded here, so, as for Kubernetes (crates/kube-testserver), the
//! sandbox runs a test server that keeps to Loki's documented API: JSON
//! push, the `{status, data: {resultType, result}}` envelope, nanosecond
//! timestamps as strings, extracted labels merged into the stream labels,
//! errors as plain text with Loki's wording. Against a real Loki, opsh's
//! `loki` module is the same code.
//!
//! `Generator` is the sandbox's log-producing workload: it pushes an API
//! service's JSON access and error logs through the push API, as an agent
//! (Promtail, Alloy) would.

pub mod logql;
mod ship;

use super::{err, free_port, SandboxError};
use logql::{Expr, Labels, LogQuery};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

type Store = BTreeMap<Labels, Vec<(i64, String)>>;

pub struct LokiServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    generator: Option<Generator>,
    shipper: Option<ship::Shipper>,
}

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl LokiServer {
    /// Starts the server; returns once it answers /ready.
    pub fn start() -> Result<LokiServer, SandboxError> {
        let port = free_port()?;
        let listener = TcpListener::bind(("127.0.0.1", port))
            .map_err(|e| err(format!("Loki test server: bind 127.0.0.1:{port}: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let store: Arc<Mutex<Store>> = Arc::default();
        let s2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("loki-testserver".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s2.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let store = store.clone();
                    let _ = std::thread::Builder::new()
                        .name("loki-conn".into())
                        .spawn(move || serve(conn, &store));
                }
            })
            .map_err(|e| err(format!("Loki test server: {e}")))?;
        let srv = LokiServer {
            port,
            stop,
            thread: Some(thread),
            generator: None,
            shipper: None,
        };
        let start = Instant::now();
        while super::monitoring::http_get(port, "/ready").map(|r| r.0) != Some(200) {
            if start.elapsed() > Duration::from_secs(10) {
                return Err(err("the Loki test server did not answer /ready within 10s"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(srv)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Ships the pod logs of the Kubernetes API test server on
    /// `kube_port` (plain HTTP) from now on; the first pass, with the pods'
    /// last 15 minutes, is done when this returns.
    pub fn ship_kube(&mut self, kube_port: u16) {
        self.shipper = Some(ship::Shipper::start(kube_port, self.port));
    }

    /// Starts the sandbox's log workload and waits until Loki returns its
    /// lines: ready is not the same as holding data.
    pub fn start_workload(&mut self) -> Result<(), SandboxError> {
        self.generator = Some(Generator::start(self.port)?);
        let start = Instant::now();
        let q = format!(
            "/loki/api/v1/query_range?query={}&limit=1&since=1h",
            url::form_urlencoded::byte_serialize(br#"{app="sandbox-api"}"#).collect::<String>()
        );
        loop {
            if let Some((200, body)) = super::monitoring::http_get(self.port, &q) {
                let n = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v["data"]["result"].as_array().map(Vec::len))
                    .unwrap_or(0);
                if n > 0 {
                    return Ok(());
                }
            }
            if start.elapsed() > Duration::from_secs(10) {
                return Err(err(
                    "Loki held no sandbox-api lines 10s after the workload started",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for LokiServer {
    fn drop(&mut self) {
        self.generator = None;
        self.shipper = None;
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Request {
    method: String,
    path: String,
    params: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_request(conn: &mut TcpStream) -> Option<Request> {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut r = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut len = 0usize;
    let mut form = false;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            if k == "content-length" {
                len = v.trim().parse().ok()?;
            } else if k == "content-type" {
                form = v.contains("x-www-form-urlencoded");
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    if form {
        params.extend(url::form_urlencoded::parse(&body).into_owned());
    }
    Some(Request {
        method,
        path: path.to_string(),
        params,
        body,
    })
}

fn respond(conn: &mut TcpStream, code: u16, ctype: &str, body: &str) {
    let reason = match code {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn serve(mut conn: TcpStream, store: &Mutex<Store>) {
    let Some(req) = read_request(&mut conn) else {
        return;
    };
    let result = route(&req, store);
    match result {
        Ok(Some(v)) => respond(&mut conn, 200, "application/json", &v.to_string()),
        Ok(None) => respond(&mut conn, 204, "text/plain", ""),
        Err((code, msg)) => respond(&mut conn, code, "text/plain; charset=utf-8", &msg),
    }
}

type Reply = Result<Option<Value>, (u16, String)>;

fn bad(msg: impl Into<String>) -> (u16, String) {
    (400, msg.into())
}

fn param<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Loki's timestamp forms: float seconds, integer seconds (10 digits or
/// fewer) or nanoseconds, RFC 3339.
fn timestamp(v: &str) -> Result<i64, (u16, String)> {
    if v.contains('.') {
        if let Ok(f) = v.parse::<f64>() {
            return Ok((f * 1e9) as i64);
        }
    }
    match v.parse::<i64>() {
        Ok(n) if v.len() <= 10 => Ok(n * 1_000_000_000),
        Ok(n) => Ok(n),
        Err(_) => humantime::parse_rfc3339_weak(v)
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as i64)
            .ok_or_else(|| bad(format!("cannot parse {v:?} to a valid timestamp"))),
    }
}

fn duration_ns(v: &str) -> Result<i64, (u16, String)> {
    if let Ok(f) = v.parse::<f64>() {
        return Ok((f * 1e9) as i64);
    }
    humantime::parse_duration(v)
        .map(|d| d.as_nanos() as i64)
        .map_err(|_| bad(format!("cannot parse {v:?} to a valid duration")))
}

/// (start, end) of a request: `start`/`end`, or `since` before end;
/// `default_span` when neither is given.
fn window(req: &Request, default_span: i64) -> Result<(i64, i64), (u16, String)> {
    let end = match param(req, "end") {
        Some(v) => timestamp(v)?,
        None => now_ns(),
    };
    let start = match (param(req, "start"), param(req, "since")) {
        (Some(v), _) => timestamp(v)?,
        (None, Some(s)) => end - duration_ns(s)?,
        (None, None) => end - default_span,
    };
    if end < start {
        return Err(bad(
            "end timestamp must not be before or equal to start time",
        ));
    }
    Ok((start, end))
}

const HOUR: i64 = 3_600_000_000_000;

fn route(req: &Request, store: &Mutex<Store>) -> Reply {
    let path = req.path.as_str();
    match (req.method.as_str(), path) {
        ("GET", "/ready") => Err((200, "ready\n".into())),
        ("POST", "/loki/api/v1/push") => push(req, store),
        (_, "/loki/api/v1/query") => instant(req, store),
        (_, "/loki/api/v1/query_range") => range(req, store),
        (_, "/loki/api/v1/labels") => {
            let (s, e) = window(req, 6 * HOUR)?;
            let st = lock(store);
            let mut names: Vec<&String> = active(&st, s, e).flat_map(|l| l.keys()).collect();
            names.sort();
            names.dedup();
            Ok(Some(json!({"status": "success", "data": names})))
        }
        (_, p) if p.starts_with("/loki/api/v1/label/") && p.ends_with("/values") => {
            let name = &p["/loki/api/v1/label/".len()..p.len() - "/values".len()];
            let (s, e) = window(req, 6 * HOUR)?;
            let st = lock(store);
            let mut vals: Vec<&String> = active(&st, s, e).filter_map(|l| l.get(name)).collect();
            vals.sort();
            vals.dedup();
            Ok(Some(json!({"status": "success", "data": vals})))
        }
        (_, "/loki/api/v1/series") => {
            let (s, e) = window(req, 6 * HOUR)?;
            let sels = req
                .params
                .iter()
                .filter(|(k, _)| k == "match[]" || k == "match")
                .map(|(_, v)| logql::parse_selector(v).map_err(|e| bad(e.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            if sels.is_empty() {
                return Err(bad("at least one match[] argument is required"));
            }
            let st = lock(store);
            let found: Vec<&Labels> = active(&st, s, e)
                .filter(|l| sels.iter().any(|m| logql::selects(m, l)))
                .collect();
            Ok(Some(json!({"status": "success", "data": found})))
        }
        _ => Err((404, "404 page not found\n".into())),
    }
}

fn lock(store: &Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|p| p.into_inner())
}

/// Streams with at least one entry in [s, e].
fn active(st: &Store, s: i64, e: i64) -> impl Iterator<Item = &Labels> {
    st.iter()
        .filter(move |(_, es)| es.iter().any(|(t, _)| *t >= s && *t <= e))
        .map(|(l, _)| l)
}

fn push(req: &Request, store: &Mutex<Store>) -> Reply {
    let v: Value =
        serde_json::from_slice(&req.body).map_err(|e| bad(format!("loghttp.PushRequest: {e}")))?;
    let streams = v["streams"]
        .as_array()
        .ok_or_else(|| bad("push: no streams"))?;
    let mut st = lock(store);
    for s in streams {
        let labels: Labels = s["stream"]
            .as_object()
            .ok_or_else(|| bad("push: a stream without labels"))?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
            .collect();
        if labels.is_empty() {
            return Err(bad("error at least one label pair is required per stream"));
        }
        let entries = st.entry(labels).or_default();
        for e in s["values"].as_array().into_iter().flatten() {
            let ts = e[0]
                .as_str()
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or_else(|| bad("push: timestamps are nanosecond strings"))?;
            entries.push((ts, e[1].as_str().unwrap_or("").to_string()));
        }
        entries.sort_by_key(|e| e.0);
    }
    Ok(None)
}

/// Every entry of `q` in [s, e): (labels after the pipeline, ts, line).
fn select(st: &Store, q: &LogQuery, s: i64, e: i64) -> Vec<(Labels, i64, String)> {
    let mut out = Vec::new();
    for (labels, entries) in st.iter().filter(|(l, _)| logql::selects(&q.selector, l)) {
        for (t, line) in entries.iter().filter(|(t, _)| *t >= s && *t < e) {
            if let Some(l) = logql::apply(q, labels, line) {
                out.push((l, *t, line.clone()));
            }
        }
    }
    out
}

fn parse(req: &Request) -> Result<Expr, (u16, String)> {
    let q = param(req, "query").ok_or_else(|| bad("query parameter is required"))?;
    logql::parse(q).map_err(|e| bad(e.to_string()))
}

fn fmt_value(v: f64) -> String {
    format!("{v}")
}

fn secs(ns: i64) -> Value {
    json!(ns as f64 / 1e9)
}

fn instant(req: &Request, store: &Mutex<Store>) -> Reply {
    let t = match param(req, "time") {
        Some(v) => timestamp(v)?,
        None => now_ns(),
    };
    let m = match parse(req)? {
        Expr::Metric(m) => m,
        // Loki 2.8 and later.
        Expr::Log(_) => return Err(bad("log queries are not supported as an instant query type, please change your query to a range query type")),
    };
    let st = lock(store);
    let entries = |q: &LogQuery, s, e| {
        select(&st, q, s, e)
            .into_iter()
            .map(|(l, t, line)| (l, t, line.len()))
            .collect()
    };
    let v = logql::eval_metric(&m, t, &entries).map_err(bad)?;
    let result: Vec<Value> = v
        .into_iter()
        .map(|(l, x)| json!({"metric": l, "value": [secs(t), fmt_value(x)]}))
        .collect();
    Ok(Some(json!({"status": "success", "data": {
        "resultType": "vector", "result": result, "stats": {}
    }})))
}

fn range(req: &Request, store: &Mutex<Store>) -> Reply {
    let (s, e) = window(req, HOUR)?;
    let expr = parse(req)?;
    let st = lock(store);
    match expr {
        Expr::Log(q) => {
            let limit: usize = match param(req, "limit") {
                Some(v) => v.parse().map_err(|_| bad(format!("invalid limit {v:?}")))?,
                None => 100,
            };
            let forward = match param(req, "direction").unwrap_or("backward") {
                "forward" | "FORWARD" => true,
                "backward" | "BACKWARD" => false,
                d => return Err(bad(format!("invalid direction {d:?}"))),
            };
            let mut all = select(&st, &q, s, e + 1);
            all.sort_by_key(|x| x.1);
            if !forward {
                all.reverse();
            }
            all.truncate(limit);
            let mut streams: BTreeMap<Labels, Vec<Value>> = BTreeMap::new();
            for (l, t, line) in all {
                streams
                    .entry(l)
                    .or_default()
                    .push(json!([t.to_string(), line]));
            }
            let result: Vec<Value> = streams
                .into_iter()
                .map(|(l, vs)| json!({"stream": l, "values": vs}))
                .collect();
            Ok(Some(json!({"status": "success", "data": {
                "resultType": "streams", "result": result, "stats": {}
            }})))
        }
        Expr::Metric(m) => {
            let step = match param(req, "step") {
                Some(v) => duration_ns(v)?,
                None => ((e - s) / 250).max(1_000_000_000),
            };
            if step <= 0 {
                return Err(bad("zero or negative query resolution step widths are not accepted. Try a positive integer"));
            }
            if (e - s) / step > 11_000 {
                return Err(bad("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"));
            }
            let entries = |q: &LogQuery, a, b| {
                select(&st, q, a, b)
                    .into_iter()
                    .map(|(l, t, line)| (l, t, line.len()))
                    .collect()
            };
            let mut series: BTreeMap<Labels, Vec<Value>> = BTreeMap::new();
            let mut t = s;
            while t <= e {
                for (l, x) in logql::eval_metric(&m, t, &entries).map_err(bad)? {
                    series
                        .entry(l)
                        .or_default()
                        .push(json!([secs(t), fmt_value(x)]));
                }
                t += step;
            }
            let result: Vec<Value> = series
                .into_iter()
                .map(|(l, vs)| json!({"metric": l, "values": vs}))
                .collect();
            Ok(Some(json!({"status": "success", "data": {
                "resultType": "matrix", "result": result, "stats": {}
            }})))
        }
    }
}

/// POSTs one push request of `streams` to Loki on `port`.
pub fn push_streams(port: u16, streams: &Value) -> Result<(), String> {
    let body = json!({ "streams": streams }).to_string();
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "POST /loki/api/v1/push HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    match reply.split_whitespace().nth(1) {
        Some("204") | Some("200") => Ok(()),
        _ => Err(format!("push refused: {}", reply.trim())),
    }
}

/// The sandbox API service's log workload: a backlog of the last 15
/// minutes, then a few lines every second, until dropped.
pub struct Generator {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The stream the workload writes to.
pub const WORKLOAD_LABELS: [(&str, &str); 3] = [
    ("app", "sandbox-api"),
    ("namespace", "sandbox"),
    ("job", "sandbox/api"),
];

/// The i-th line of the workload: mostly fast 200s, with errors from
/// two upstreams, auth failures and slow requests in a fixed rhythm.
pub fn workload_line(i: u64) -> String {
    let path = ["/v1/orders", "/v1/users", "/v1/search", "/health"][(i % 4) as usize];
    let (level, status, msg, upstream, duration) = match i % 20 {
        3 | 13 => ("error", 500, "upstream timeout", "postgres", 5000 + i % 7),
        7 => ("error", 502, "bad gateway", "redis", 30 + i % 11),
        9 | 19 => (
            "warn",
            401,
            "unauthorized: invalid token",
            "auth",
            4 + i % 3,
        ),
        11 => (
            "info",
            200,
            "request completed",
            "postgres",
            2400 + (i % 9) * 100,
        ),
        _ => ("info", 200, "request completed", "", 12 + i % 40),
    };
    let mut v = json!({
        "level": level, "msg": msg, "status": status, "method": "GET",
        "path": path, "duration": duration, "request_id": format!("req-{i:06}"),
    });
    if !upstream.is_empty() {
        v["upstream"] = json!(upstream);
    }
    v.to_string()
}

impl Generator {
    pub fn start(port: u16) -> Result<Generator, SandboxError> {
        let labels: serde_json::Map<String, Value> = WORKLOAD_LABELS
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let now = now_ns();
        let backlog: Vec<Value> = (0..450u64)
            .map(|i| {
                let t = now - (450 - i as i64) * 2_000_000_000;
                json!([t.to_string(), workload_line(i)])
            })
            .collect();
        push_streams(port, &json!([{"stream": labels, "values": backlog}]))
            .map_err(|e| err(format!("the sandbox log workload could not push: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("loki-workload".into())
            .spawn(move || {
                let mut i = 450u64;
                while !s2.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_secs(1));
                    let t = now_ns();
                    let values: Vec<Value> = (0..2)
                        .map(|k| json!([(t + k).to_string(), workload_line(i + k as u64)]))
                        .collect();
                    i += 2;
                    let _ = push_streams(port, &json!([{"stream": labels, "values": values}]));
                }
            })
            .map_err(|e| err(format!("the sandbox log workload: {e}")))?;
        Ok(Generator {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
