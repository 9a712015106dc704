//! Pod logs: deterministic, plausible application lines (one per second of
//! the pod's life, with the odd WARN and ERROR) so `logs` with tail, since
//! and grep have something real to work on.

use super::store::{age_secs, meta_str, ApiError};
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

const PATHS: [&str; 5] = [
    "/api/orders",
    "/api/users",
    "/healthz",
    "/api/cart",
    "/metrics",
];

pub fn line(i: u64, pod: &str) -> String {
    let path = PATHS[(i as usize + pod.len()) % PATHS.len()];
    if i % 13 == 7 {
        format!("level=ERROR msg=\"upstream timeout\" path={path} upstream=payments:8080 duration_ms=5000")
    } else if i % 7 == 3 {
        format!(
            "level=WARN msg=\"slow request\" path={path} duration_ms={}",
            800 + i % 400
        )
    } else {
        format!(
            "level=INFO msg=request method=GET path={path} status=200 duration_ms={}",
            3 + i % 40
        )
    }
}

pub fn pod_log(pod: &Value, q: &HashMap<String, String>) -> Result<String, ApiError> {
    let name = meta_str(pod, "name");
    let containers: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    let container = match q.get("container").map(String::as_str) {
        Some(c) if !c.is_empty() => {
            if !containers.contains(&c) {
                return Err(ApiError::bad(format!(
                    "container {c} is not valid for pod {name}"
                )));
            }
            c
        }
        _ if containers.len() == 1 => containers[0],
        _ => {
            return Err(ApiError::bad(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )))
        }
    };
    let status = pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == container))
        .cloned()
        .unwrap_or(Value::Null);
    if status["state"]["running"].is_null()
        && status["state"]["terminated"].is_null()
        && status["lastState"]["terminated"].is_null()
    {
        let reason = status["state"]["waiting"]["reason"]
            .as_str()
            .unwrap_or("ContainerCreating");
        return Err(ApiError::bad(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
        )));
    }
    let previous = q.get("previous").is_some_and(|v| v == "true");
    if previous {
        if status["lastState"]["terminated"].is_null() {
            return Err(ApiError::bad(format!(
                "previous terminated container \"{container}\" in pod \"{name}\" not found"
            )));
        }
        return Ok("level=INFO msg=\"loading cache\" entries=1200000\nlevel=WARN msg=\"memory high\" rss_mb=250\nfatal error: runtime: out of memory\n".into());
    }
    let started = pod["status"]["startTime"]
        .as_str()
        .unwrap_or(meta_str(pod, "creationTimestamp"));
    let age = age_secs(started).min(3600);
    let start_time = SystemTime::now() - Duration::from_secs(age);
    let since: Option<u64> = q.get("sinceSeconds").and_then(|s| s.parse().ok());
    let stamps = q.get("timestamps").is_some_and(|v| v == "true");
    let mut lines: Vec<String> = vec![format!(
        "level=INFO msg=\"starting {container}\" pod={name} version=1"
    )];
    for i in 1..=age.max(3) {
        if since.is_some_and(|s| age.saturating_sub(i) > s) {
            continue;
        }
        let l = line(i, name);
        if stamps {
            let t = humantime::format_rfc3339_seconds(start_time + Duration::from_secs(i));
            lines.push(format!("{t} {l}"));
        } else {
            lines.push(l);
        }
    }
    if let Some(n) = q.get("tailLines").and_then(|s| s.parse::<usize>().ok()) {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    let mut out = lines.join("\n");
    out.push('\n');
    Ok(out)
}

/// The index of the next line a pod will log (one a second from its start),
/// where `follow` picks up after the lines already sent.
pub fn next_line(pod: &Value) -> u64 {
    let started = pod["status"]["startTime"]
        .as_str()
        .unwrap_or(meta_str(pod, "creationTimestamp"));
    age_secs(started).clamp(3, 3600) + 1
}

/// Whether the pod's containers may still log (follow keeps the stream open).
pub fn still_running(pod: &Value) -> bool {
    !matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}
