//! Ships the Kubernetes test server's pod logs into the sandbox's Loki, as
//! an agent (Promtail, Alloy) ships a cluster's: through the Kubernetes
//! API (`pods/log` with timestamps) and Loki's push API, labelled with
//! namespace, pod, container, app and job="kubernetes-pods".

use super::push_streams;
use crate::sandbox::monitoring::http_get;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

pub struct Shipper {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How far back the first pass reads: the pods' recent history.
const BACKLOG_SECS: u64 = 900;

impl Shipper {
    /// Ships once (so the logs are there when the sandbox is ready), then
    /// every second until dropped.
    pub fn start(kube_port: u16, loki_port: u16) -> Shipper {
        let mut seen: HashMap<String, i64> = HashMap::new();
        ship(kube_port, loki_port, &mut seen);
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("loki-kube-shipper".into())
            .spawn(move || {
                while !s2.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_secs(1));
                    ship(kube_port, loki_port, &mut seen);
                }
            })
            .ok();
        Shipper { stop, thread }
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn rfc3339_ns(s: &str) -> Option<i64> {
    humantime::parse_rfc3339_weak(s)
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_nanos() as i64)
}

/// One pass: every container's lines newer than the last one shipped.
/// `seen` maps namespace/pod/container to the newest timestamp shipped.
fn ship(kube_port: u16, loki_port: u16, seen: &mut HashMap<String, i64>) {
    let Some((200, body)) = http_get(kube_port, "/api/v1/pods") else {
        return;
    };
    let Ok(list) = serde_json::from_str::<Value>(&body) else {
        return;
    };
    let mut streams = Vec::new();
    for pod in list["items"].as_array().into_iter().flatten() {
        let (ns, name) = (
            pod["metadata"]["namespace"].as_str().unwrap_or("default"),
            pod["metadata"]["name"].as_str().unwrap_or(""),
        );
        if name.is_empty() || pod["status"]["phase"] != "Running" {
            continue;
        }
        for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
            let container = c["name"].as_str().unwrap_or("");
            let key = format!("{ns}/{name}/{container}");
            let last = seen.get(&key).copied();
            let since = match last {
                None => BACKLOG_SECS,
                Some(_) => 10,
            };
            let path = format!(
                "/api/v1/namespaces/{ns}/pods/{name}/log?container={container}&timestamps=true&sinceSeconds={since}"
            );
            let Some((200, text)) = http_get(kube_port, &path) else {
                continue;
            };
            let mut values = Vec::new();
            let mut newest = last.unwrap_or(0);
            for line in text.lines() {
                let Some((ts, rest)) = line.split_once(' ') else {
                    continue;
                };
                let Some(t) = rfc3339_ns(ts) else { continue };
                if last.is_some_and(|l| t <= l) {
                    continue;
                }
                newest = newest.max(t);
                values.push(json!([t.to_string(), rest]));
            }
            if values.is_empty() {
                continue;
            }
            seen.insert(key, newest);
            let mut labels = json!({
                "namespace": ns, "pod": name, "container": container, "job": "kubernetes-pods",
            });
            if let Some(app) = pod["metadata"]["labels"]["app"].as_str() {
                labels["app"] = json!(app);
            }
            streams.push(json!({"stream": labels, "values": values}));
        }
    }
    if !streams.is_empty() {
        let _ = push_streams(loki_port, &Value::Array(streams));
    }
}
