//! metrics.k8s.io: PodMetrics and NodeMetrics computed from the pods that
//! run: CPU stable per pod (a hash of its name) so repeated reads agree,
//! memory following what the pod does (see `memory`).

use super::discovery::{by_kind, Res};
use super::store::{meta_str, now, ApiError, Store};
use serde_json::{json, Value};

fn hash(s: &str) -> u64 {
    s.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ b as u64).wrapping_mul(1099511628211)
    })
}

/// (millicores, MiB) a container uses.
pub fn usage(pod: &str, container: &str) -> (u64, u64) {
    let h = hash(&format!("{pod}/{container}"));
    (5 + h % 240, 40 + (h >> 16) % 220)
}

/// Bytes in a memory quantity ("256Mi", "1G", "1048576").
pub fn mem_bytes(q: &str) -> Option<u64> {
    let units: [(&str, u64); 8] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    for (u, m) in units {
        if let Some(n) = q.strip_suffix(u) {
            return n.trim().parse::<f64>().ok().map(|n| (n * m as f64) as u64);
        }
    }
    q.trim().parse().ok()
}

/// Memory that follows what the pod does, in MiB: a container OOM-killed
/// in a loop climbs from 60% to 98% of its limit within seconds of each
/// restart; one annotated as leaking grows 2 MiB a second of its life up to
/// its limit; any other stays at its stable level, below its limit.
fn memory(p: &Value, c: &Value, stable: u64) -> u64 {
    let limit = c["resources"]["limits"]["memory"]
        .as_str()
        .and_then(mem_bytes)
        .map(|b| b >> 20);
    let cname = c["name"].as_str().unwrap_or("");
    let status = p["status"]["containerStatuses"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == cname))
        .cloned()
        .unwrap_or(Value::Null);
    let since = |ts: &Value| ts.as_str().map(super::store::age_secs);
    let oom = p["metadata"]["annotations"][super::controllers::OOM_ANNOTATION] == "true";
    let leak = p["metadata"]["annotations"][super::controllers::LEAK_ANNOTATION] == "true";
    match limit {
        Some(limit) if oom => {
            let up = since(&status["lastState"]["terminated"]["finishedAt"])
                .or_else(|| since(&p["status"]["startTime"]))
                .unwrap_or(0);
            (limit as f64 * (0.6 + 0.1 * up as f64).min(0.98)) as u64
        }
        _ if leak => {
            let up = since(&p["status"]["startTime"]).unwrap_or(0);
            let grown = stable + 2 * up;
            limit.map_or(grown, |l| grown.min(l * 98 / 100))
        }
        Some(limit) => stable.min(limit * 8 / 10),
        None => stable,
    }
}

fn pod_metrics(p: &Value) -> Value {
    let containers: Vec<Value> = p["spec"]["containers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    let cname = c["name"].as_str().unwrap_or("app");
                    let (cpu, mem) = usage(meta_str(p, "name"), cname);
                    let mem = memory(p, c, mem);
                    json!({"name": cname, "usage": {"cpu": format!("{cpu}m"), "memory": format!("{mem}Mi")}})
                })
                .collect()
        })
        .unwrap_or_default();
    json!({"kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
           "metadata": {"name": p["metadata"]["name"], "namespace": p["metadata"]["namespace"], "labels": p["metadata"]["labels"], "creationTimestamp": now()},
           "timestamp": now(), "window": "15s", "containers": containers})
}

pub fn serve(
    st: &Store,
    r: &Res,
    ns: &str,
    name: Option<&str>,
    verb: &str,
) -> Result<Value, ApiError> {
    if verb != "get" && verb != "list" {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{verb} is not supported on metrics"),
        ));
    }
    let pr =
        by_kind("Pod").ok_or_else(|| ApiError::new(500, "InternalError", "no pods resource"))?;
    let (pods, _) = st.list(pr, if r.plural == "pods" { ns } else { "" });
    let running: Vec<Value> = pods
        .into_iter()
        .filter(|p| p["status"]["phase"] == "Running")
        .collect();
    let items: Vec<Value> = if r.plural == "pods" {
        running.iter().map(pod_metrics).collect()
    } else {
        super::controllers::NODES
            .iter()
            .map(|n| {
                let (mut cpu, mut mem) = (120u64, 900u64);
                for p in running.iter().filter(|p| p["spec"]["nodeName"] == *n) {
                    for c in p["spec"]["containers"].as_array().into_iter().flatten() {
                        let (c1, m1) = usage(meta_str(p, "name"), c["name"].as_str().unwrap_or("app"));
                        let m1 = memory(p, c, m1);
                        cpu += c1;
                        mem += m1;
                    }
                }
                json!({"kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {"name": n, "creationTimestamp": now()},
                       "timestamp": now(), "window": "15s", "usage": {"cpu": format!("{cpu}m"), "memory": format!("{mem}Mi")}})
            })
            .collect()
    };
    match name {
        Some(n) => items
            .into_iter()
            .find(|i| i["metadata"]["name"] == n)
            .ok_or_else(|| {
                ApiError::new(
                    404,
                    "NotFound",
                    format!("{}.metrics.k8s.io \"{n}\" not found", r.plural),
                )
            }),
        None => Ok(
            json!({"kind": format!("{}List", r.kind), "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(annotation: &str, restarted_secs_ago: u64) -> Value {
        let t = humantime::format_rfc3339_seconds(
            std::time::SystemTime::now() - std::time::Duration::from_secs(restarted_secs_ago),
        )
        .to_string();
        json!({"metadata": {"name": "w", "annotations": {annotation: "true"}},
               "spec": {"containers": [{"name": "app", "resources": {"limits": {"memory": "256Mi"}}}]},
               "status": {"startTime": t, "containerStatuses": [{"name": "app", "lastState": {"terminated": {"finishedAt": t}}}]}})
    }

    #[test]
    fn memory_follows_the_pod_an_oom_killed_one_nears_its_limit_a_leak_grows() {
        let p = pod(crate::controllers::OOM_ANNOTATION, 10);
        let c = &p["spec"]["containers"][0];
        assert_eq!(memory(&p, c, 40), 250, "98% of 256Mi before the next kill");
        let fresh = pod(crate::controllers::OOM_ANNOTATION, 0);
        assert_eq!(memory(&fresh, c, 40), 153);
        let leak = pod(crate::controllers::LEAK_ANNOTATION, 30);
        assert_eq!(memory(&leak, c, 40), 100);
        let calm = pod("other", 30);
        assert_eq!(memory(&calm, c, 240), 204, "below its limit");
        assert_eq!(mem_bytes("1Gi"), Some(1 << 30));
    }

    #[test]
    fn crash_loops_back_off() {
        use crate::controllers::restarts_after;
        assert_eq!(restarts_after(1_000, 1_500), 0);
        assert_eq!(restarts_after(5_000, 1_500), 2);
        // 40 a minute without back-off; a handful with it.
        assert!(restarts_after(60_000, 1_500) <= 6);
        assert!(restarts_after(600_000, 1_500) <= 18);
    }
}
