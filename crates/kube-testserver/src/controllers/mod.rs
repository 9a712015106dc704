//! What makes the test server a cluster rather than a document store:
//! Deployments make ReplicaSets (one per distinct template, with revision
//! annotations, rolling 25% at a time), ReplicaSets make Pods, Pods are
//! scheduled and become Running and Ready (or crash, or fail to pull),
//! Jobs run a pod to completion, HPAs keep replicas within bounds, owners'
//! deletion collects their dependents, and all of it leaves Events.
//! workloads.rs: Deployments and ReplicaSets; pods.rs: Pods and Jobs; here:
//! the tick, events, garbage collection and HPAs.

mod pods;
mod sets;
pub use pods::host_ip;
#[cfg(test)]
pub use pods::restarts_after;
pub use sets::budget;
mod workloads;

use super::discovery::{by_kind, Res};
use super::store::{match_labels_string, meta_str, now, Store};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Pods whose template carries this annotation are OOM-killed over and over.
pub const OOM_ANNOTATION: &str = "sandbox.opsh.dev/oom";
/// Pods whose template carries this annotation leak memory (metrics.rs).
pub const LEAK_ANNOTATION: &str = "sandbox.opsh.dev/leak";
pub const NODES: [&str; 2] = ["sandbox-node-1", "sandbox-node-2"];

pub(super) fn res(kind: &str) -> &'static Res {
    by_kind(kind).unwrap_or(&super::discovery::RESOURCES[0])
}

#[derive(Default)]
pub struct Controllers {
    /// When each pod (by uid) was scheduled; pods progress from then.
    pub(super) scheduled: HashMap<String, Instant>,
    pub(super) next_node: usize,
}

pub struct Timing {
    pub ready_after: Duration,
    pub job_runs_for: Duration,
    pub oom_every: Duration,
}

pub const TIMING: Timing = Timing {
    ready_after: Duration::from_millis(300),
    job_runs_for: Duration::from_millis(500),
    oom_every: Duration::from_millis(1500),
};

/// Runs one object's reconcile so that a panic in it (a bug, or an object
/// nobody validated) is an error for that object, recorded as a Warning
/// Event on it, and never stops the controllers for every other object.
pub(super) fn guard(store: &Store, obj: &Value, f: impl FnOnce()) {
    if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        let msg = panic_message(p.as_ref());
        event(
            store,
            obj,
            "Warning",
            "ReconcileError",
            &format!("the sandbox controller failed on this object and will retry: {msg}"),
        );
    }
}

pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}

pub(super) fn owned_by(o: &Value, uid: &str) -> bool {
    o["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|a| a.iter().any(|r| r["uid"] == uid))
}

pub(super) fn owner_ref(owner: &Value, kind: &str, api_version: &str) -> Value {
    json!([{"apiVersion": api_version, "kind": kind, "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "controller": true, "blockOwnerDeletion": true}])
}

/// Records an Event about `obj`, folding repeats into a count as the API does.
pub fn event(store: &Store, obj: &Value, type_: &str, reason: &str, message: &str) {
    let ns = meta_str(obj, "namespace");
    let ns = if ns.is_empty() { "default" } else { ns };
    let r = res("Event");
    let uid = meta_str(obj, "uid");
    let (events, _) = store.list(r, ns);
    let ts = now();
    if let Some(e) = events.iter().find(|e| {
        e["involvedObject"]["uid"] == uid && e["reason"] == reason && e["message"] == message
    }) {
        let mut e = e.clone();
        e["count"] = json!(e["count"].as_i64().unwrap_or(1) + 1);
        e["lastTimestamp"] = json!(ts);
        let _ = store.update(
            r,
            ns,
            meta_str(&e, "name").to_string().as_str(),
            e,
            false,
            None,
        );
        return;
    }
    if events.len() > 500 {
        if let Some(old) = events
            .iter()
            .min_by_key(|e| e["lastTimestamp"].as_str().unwrap_or("").to_string())
        {
            let _ = store.delete(r, ns, meta_str(old, "name"), &Value::Null, false);
        }
    }
    let name = format!("{}.{:016x}", meta_str(obj, "name"), fastrand::u64(..));
    let ev = json!({
        "metadata": {"name": name, "namespace": ns},
        "involvedObject": {"kind": obj["kind"], "namespace": ns, "name": obj["metadata"]["name"], "uid": uid,
                           "apiVersion": obj["apiVersion"], "resourceVersion": obj["metadata"]["resourceVersion"]},
        "reason": reason, "message": message, "type": type_, "count": 1,
        "firstTimestamp": ts, "lastTimestamp": ts,
        "source": {"component": source_of(obj["kind"].as_str().unwrap_or(""))},
        "reportingComponent": source_of(obj["kind"].as_str().unwrap_or("")),
    });
    let _ = store.create(r, ns, ev, false, None);
}

fn source_of(kind: &str) -> &'static str {
    match kind {
        "Deployment" => "deployment-controller",
        "ReplicaSet" => "replicaset-controller",
        "Pod" => "kubelet",
        "Job" => "job-controller",
        "HorizontalPodAutoscaler" => "horizontal-pod-autoscaler",
        _ => "sandbox",
    }
}

/// A template as the deployment controller compares them: without the
/// pod-template-hash label and without nulls or empty maps.
pub fn normalize(t: &Value) -> Value {
    fn strip(v: &Value) -> Option<Value> {
        match v {
            Value::Null => None,
            Value::Object(m) => {
                let o: serde_json::Map<String, Value> = m
                    .iter()
                    .filter_map(|(k, v)| strip(v).map(|v| (k.clone(), v)))
                    .collect();
                (!o.is_empty()).then_some(Value::Object(o))
            }
            Value::Array(a) => Some(Value::Array(a.iter().filter_map(strip).collect())),
            other => Some(other.clone()),
        }
    }
    let mut t = t.clone();
    if let Some(l) = t["metadata"]["labels"].as_object_mut() {
        l.remove("pod-template-hash");
    }
    strip(&t).unwrap_or(Value::Null)
}

pub(super) fn template_hash(t: &Value) -> String {
    // FNV-1a over the normalized template, spelled in the API's alphabet.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in normalize(t).to_string().bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    const CH: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..10)
        .map(|i| CH[((h >> (i * 6)) % CH.len() as u64) as usize] as char)
        .collect()
}

pub(super) fn rev(o: &Value) -> i64 {
    o["metadata"]["annotations"][REVISION]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

pub(super) fn replicas(o: &Value) -> i64 {
    // Validation keeps negative counts out; an object put in directly may still have one.
    o["spec"]["replicas"].as_i64().unwrap_or(1).max(0)
}

pub fn pod_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

pub(super) fn set_condition(
    conds: &mut Vec<Value>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
) {
    let ts = now();
    if let Some(c) = conds.iter_mut().find(|c| c["type"] == type_) {
        if c["status"] != status || c["reason"] != reason {
            *c = json!({"type": type_, "status": status, "reason": reason, "message": message, "lastUpdateTime": ts, "lastTransitionTime": ts});
        }
    } else {
        conds.push(json!({"type": type_, "status": status, "reason": reason, "message": message, "lastUpdateTime": ts, "lastTransitionTime": ts}));
    }
}

impl Controllers {
    pub fn tick(&mut self, store: &Store) {
        self.collect_garbage(store);
        self.hpas(store);
        self.deployments(store);
        self.replicasets(store);
        self.jobs(store);
        self.statefulsets(store);
        self.daemonsets(store);
        self.pods(store);
        self.endpoints(store);
        self.claims_and_budgets(store);
    }

    fn collect_garbage(&mut self, store: &Store) {
        for kind in ["ReplicaSet", "Pod", "Job", "EndpointSlice"] {
            let r = res(kind);
            let (items, _) = store.list(r, "");
            for o in items {
                let who = o.clone();
                guard(store, &who, || {
                    let Some(refs) = o["metadata"]["ownerReferences"].as_array() else {
                        return;
                    };
                    let Some(owner) = refs.first() else { return };
                    let Some(or) = owner["kind"].as_str().and_then(by_kind) else {
                        return;
                    };
                    let alive = store
                        .get(
                            or,
                            meta_str(&o, "namespace"),
                            owner["name"].as_str().unwrap_or(""),
                        )
                        .is_some_and(|x| x["metadata"]["uid"] == owner["uid"]);
                    if !alive {
                        let _ = store.delete(
                            r,
                            meta_str(&o, "namespace"),
                            meta_str(&o, "name"),
                            &Value::Null,
                            false,
                        );
                        if kind == "Pod" {
                            self.scheduled.remove(meta_str(&o, "uid"));
                        }
                    }
                });
            }
        }
    }

    fn hpas(&mut self, store: &Store) {
        let (hr, dr) = (res("HorizontalPodAutoscaler"), res("Deployment"));
        let (hpas, _) = store.list(hr, "");
        for h in hpas {
            let who = h.clone();
            guard(store, &who, || {
                let ns = meta_str(&h, "namespace").to_string();
                let name = meta_str(&h, "name").to_string();
                let target = h["spec"]["scaleTargetRef"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                let min = h["spec"]["minReplicas"].as_i64().unwrap_or(1);
                let max = h["spec"]["maxReplicas"].as_i64().unwrap_or(min);
                let Some(mut d) = store.get(dr, &ns, &target) else {
                    return;
                };
                let cur_replicas = replicas(&d);
                // A target scaled to zero turns the autoscaler off until it
                // is scaled up again (Kubernetes' HPA does not act on it).
                let disabled = cur_replicas == 0;
                let desired = if disabled {
                    0
                } else {
                    cur_replicas.clamp(min, max.max(min))
                };
                if desired != cur_replicas {
                    d["spec"]["replicas"] = json!(desired);
                    if store
                        .update(
                            dr,
                            &ns,
                            &target,
                            d.clone(),
                            false,
                            Some("horizontal-pod-autoscaler"),
                        )
                        .is_ok()
                    {
                        event(
                            store,
                            &h,
                            "Normal",
                            "SuccessfulRescale",
                            &format!(
                                "New size: {desired}; reason: {} than the {} bound",
                                if desired > cur_replicas {
                                    "fewer replicas"
                                } else {
                                    "more replicas"
                                },
                                if desired > cur_replicas {
                                    "minimum"
                                } else {
                                    "maximum"
                                }
                            ),
                        );
                    }
                }
                let util = 35 + (target.len() as i64 * 7) % 40;
                let Some(mut cur) = store.get(hr, &ns, &name) else {
                    return;
                };
                let active = if disabled {
                    json!({"type": "ScalingActive", "status": "False", "reason": "ScalingDisabled", "message": "scaling is disabled since the replica count of the target is zero"})
                } else {
                    json!({"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound", "message": "the HPA was able to successfully calculate a replica count from cpu resource utilization"})
                };
                let mut status = json!({
                    "currentReplicas": d["status"]["replicas"].as_i64().unwrap_or(0), "desiredReplicas": desired,
                    "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": util, "averageValue": format!("{}m", util * 2)}}}],
                    "conditions": [
                        {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale", "message": "recommended size matches current size"},
                        active,
                        {"type": "ScalingLimited", "status": if desired == min || desired == max { "True" } else { "False" }, "reason": if desired == max { "TooManyReplicas" } else if desired == min { "TooFewReplicas" } else { "DesiredWithinRange" }, "message": "the desired count is within the acceptable range"},
                    ],
                });
                if desired != cur_replicas {
                    status["lastScaleTime"] = json!(now());
                } else if !cur["status"]["lastScaleTime"].is_null() {
                    status["lastScaleTime"] = cur["status"]["lastScaleTime"].clone();
                }
                if disabled {
                    if let Some(m) = status.as_object_mut() {
                        m.remove("currentMetrics");
                    }
                } else if status["currentReplicas"] == 0 {
                    status["currentReplicas"] = json!(cur_replicas);
                }
                cur["status"] = status;
                let _ = store.update(hr, &ns, &name, cur, false, None);
            });
        }
    }
}

/// The label selector of a Deployment or ReplicaSet, as a string.
pub fn selector_of(o: &Value) -> String {
    match_labels_string(&o["spec"]["selector"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_one_reconcile_is_an_event_on_that_object() {
        let st = Store::default();
        super::super::seed::seed(&st);
        let (deploys, _) = st.list(res("Deployment"), "default");
        let d = &deploys[0];
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        guard(&st, d, || panic!("replicas out of range"));
        std::panic::set_hook(hook);
        let (events, _) = st.list(res("Event"), "default");
        let e = events
            .iter()
            .find(|e| e["reason"] == "ReconcileError")
            .expect("a ReconcileError event");
        assert_eq!(e["involvedObject"]["uid"], d["metadata"]["uid"]);
        assert!(e["message"]
            .as_str()
            .unwrap()
            .contains("replicas out of range"));
    }
}
