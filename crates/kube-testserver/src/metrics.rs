//! metrics.k8s.io: PodMetrics and NodeMetrics computed from the pods that
//! run, stable per pod (a hash of its name) so repeated reads agree.

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

fn pod_metrics(p: &Value) -> Value {
    let containers: Vec<Value> = p["spec"]["containers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    let cname = c["name"].as_str().unwrap_or("app");
                    let (cpu, mem) = usage(meta_str(p, "name"), cname);
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
