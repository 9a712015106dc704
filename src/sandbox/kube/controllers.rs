//! What makes the test server a cluster rather than a document store:
//! Deployments make ReplicaSets (one per distinct template, with revision
//! annotations, rolling one pod at a time), ReplicaSets make Pods, Pods are
//! scheduled and become Running and Ready (or crash, or fail to pull),
//! Jobs run a pod to completion, HPAs keep replicas within bounds, owners'
//! deletion collects their dependents, and all of it leaves Events.

use super::discovery::{by_kind, Res};
use super::store::{match_labels_string, meta_str, now, suffix, Store};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Pods whose template carries this annotation are OOM-killed over and over.
pub const OOM_ANNOTATION: &str = "sandbox.opsh.dev/oom";
pub const NODES: [&str; 2] = ["sandbox-node-1", "sandbox-node-2"];

fn res(kind: &str) -> &'static Res {
    by_kind(kind).unwrap_or(&super::discovery::RESOURCES[0])
}

#[derive(Default)]
pub struct Controllers {
    /// When each pod (by uid) was scheduled; pods progress from then.
    scheduled: HashMap<String, Instant>,
    next_node: usize,
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

fn owned_by(o: &Value, uid: &str) -> bool {
    o["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|a| a.iter().any(|r| r["uid"] == uid))
}

fn owner_ref(owner: &Value, kind: &str, api_version: &str) -> Value {
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

fn template_hash(t: &Value) -> String {
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

fn rev(o: &Value) -> i64 {
    o["metadata"]["annotations"][REVISION]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn replicas(o: &Value) -> i64 {
    o["spec"]["replicas"].as_i64().unwrap_or(1)
}

fn pod_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn set_condition(conds: &mut Vec<Value>, type_: &str, status: &str, reason: &str, message: &str) {
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
        self.pods(store);
    }

    fn collect_garbage(&mut self, store: &Store) {
        for kind in ["ReplicaSet", "Pod", "Job"] {
            let r = res(kind);
            let (items, _) = store.list(r, "");
            for o in items {
                let Some(refs) = o["metadata"]["ownerReferences"].as_array() else {
                    continue;
                };
                let Some(owner) = refs.first() else { continue };
                let Some(or) = owner["kind"].as_str().and_then(by_kind) else {
                    continue;
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
            }
        }
    }

    fn deployments(&mut self, store: &Store) {
        let (rsr, dr) = (res("ReplicaSet"), res("Deployment"));
        let (deploys, _) = store.list(dr, "");
        for d in deploys {
            let ns = meta_str(&d, "namespace").to_string();
            let name = meta_str(&d, "name").to_string();
            let uid = meta_str(&d, "uid").to_string();
            let desired = replicas(&d);
            let (all, _) = store.list(rsr, &ns);
            let mut owned: Vec<Value> = all.into_iter().filter(|r| owned_by(r, &uid)).collect();
            let want = normalize(&d["spec"]["template"]);
            let max_rev = owned.iter().map(rev).max().unwrap_or(0);
            let current = owned
                .iter()
                .position(|r| normalize(&r["spec"]["template"]) == want);
            let new_rs = match current {
                Some(i) => {
                    let mut r = owned[i].clone();
                    if rev(&r) < max_rev {
                        // An old template came back (rollout undo): its ReplicaSet is revived with the next revision.
                        r["metadata"]["annotations"][REVISION] = json!((max_rev + 1).to_string());
                        if let Ok(u) = store.update(
                            rsr,
                            &ns,
                            meta_str(&r, "name").to_string().as_str(),
                            r.clone(),
                            false,
                            None,
                        ) {
                            r = u;
                        }
                        owned[i] = r.clone();
                    }
                    r
                }
                None => {
                    let hash = template_hash(&d["spec"]["template"]);
                    let mut tmpl = d["spec"]["template"].clone();
                    tmpl["metadata"]["labels"]["pod-template-hash"] = json!(hash);
                    let mut sel = d["spec"]["selector"].clone();
                    sel["matchLabels"]["pod-template-hash"] = json!(hash);
                    let mut ann = json!({REVISION: (max_rev + 1).to_string(), "deployment.kubernetes.io/desired-replicas": desired.to_string()});
                    if let Some(cc) =
                        d["metadata"]["annotations"]["kubernetes.io/change-cause"].as_str()
                    {
                        ann["kubernetes.io/change-cause"] = json!(cc);
                    }
                    let start = if owned.iter().any(|r| replicas(r) > 0) {
                        1.min(desired)
                    } else {
                        desired
                    };
                    let rs = json!({
                        "metadata": {"name": format!("{name}-{hash}"), "labels": tmpl["metadata"]["labels"], "annotations": ann,
                                     "ownerReferences": owner_ref(&d, "Deployment", "apps/v1")},
                        "spec": {"replicas": start, "selector": sel, "template": tmpl},
                    });
                    match store.create(rsr, &ns, rs, false, None) {
                        Ok(r) => {
                            event(
                                store,
                                &d,
                                "Normal",
                                "ScalingReplicaSet",
                                &format!(
                                    "Scaled up replica set {} from 0 to {start}",
                                    meta_str(&r, "name")
                                ),
                            );
                            owned.push(r.clone());
                            r
                        }
                        Err(_) => continue,
                    }
                }
            };
            let new_name = meta_str(&new_rs, "name").to_string();
            let ready_of = |rs: &Value| rs["status"]["readyReplicas"].as_i64().unwrap_or(0);
            let old: Vec<&Value> = owned
                .iter()
                .filter(|r| meta_str(r, "name") != new_name)
                .collect();
            let old_total: i64 = old.iter().map(|r| replicas(r)).sum();
            let new_spec = replicas(&new_rs);
            // maxSurge 25% (at least one): new pods start ahead of old ones going.
            let surge = ((desired + 3) / 4).max(1);
            let mut target_new = new_spec;
            if new_spec > desired || old_total == 0 {
                target_new = desired;
            } else if new_spec < desired && new_spec + old_total < desired + surge {
                target_new = (desired + surge - old_total).min(desired);
            }
            if target_new != new_spec {
                let mut r = new_rs.clone();
                r["spec"]["replicas"] = json!(target_new);
                r["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] =
                    json!(desired.to_string());
                if store.update(rsr, &ns, &new_name, r, false, None).is_ok() {
                    let verb = if target_new > new_spec { "up" } else { "down" };
                    event(
                        store,
                        &d,
                        "Normal",
                        "ScalingReplicaSet",
                        &format!(
                            "Scaled {verb} replica set {new_name} from {new_spec} to {target_new}"
                        ),
                    );
                }
            }
            // Old pods go as new ones become ready, one per tick.
            let new_ready = ready_of(&new_rs);
            let allowed_old = (desired - new_ready).max(0);
            let mut excess = old_total - allowed_old;
            for o in old.iter().filter(|r| replicas(r) > 0) {
                if excess <= 0 {
                    break;
                }
                {
                    let mut r = (*o).clone();
                    let from = replicas(&r);
                    let to = (from - excess).max(0);
                    excess -= from - to;
                    r["spec"]["replicas"] = json!(to);
                    let oname = meta_str(&r, "name").to_string();
                    if store.update(rsr, &ns, &oname, r, false, None).is_ok() {
                        event(
                            store,
                            &d,
                            "Normal",
                            "ScalingReplicaSet",
                            &format!("Scaled down replica set {oname} from {from} to {to}"),
                        );
                    }
                }
            }
            // Status, from the ReplicaSets' own status.
            let (rss, _) = store.list(rsr, &ns);
            let owned: Vec<Value> = rss.into_iter().filter(|r| owned_by(r, &uid)).collect();
            let sum = |f: &str| {
                owned
                    .iter()
                    .map(|r| r["status"][f].as_i64().unwrap_or(0))
                    .sum::<i64>()
            };
            let total = sum("replicas");
            let ready = sum("readyReplicas");
            let updated = owned
                .iter()
                .find(|r| meta_str(r, "name") == new_name)
                .map(|r| r["status"]["replicas"].as_i64().unwrap_or(0))
                .unwrap_or(0);
            let Some(mut cur) = store.get(dr, &ns, &name) else {
                continue;
            };
            let revision = owned
                .iter()
                .find(|r| meta_str(r, "name") == new_name)
                .map(rev)
                .unwrap_or(1);
            cur["metadata"]["annotations"][REVISION] = json!(revision.to_string());
            let mut conds: Vec<Value> = cur["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let max_unavailable = desired / 4;
            if ready >= desired - max_unavailable {
                set_condition(
                    &mut conds,
                    "Available",
                    "True",
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.",
                );
            } else {
                set_condition(
                    &mut conds,
                    "Available",
                    "False",
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                );
            }
            let complete = updated == desired && total == desired && ready == desired;
            if complete {
                set_condition(
                    &mut conds,
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    &format!("ReplicaSet \"{new_name}\" has successfully progressed."),
                );
            } else {
                let deadline = d["spec"]["progressDeadlineSeconds"].as_u64().unwrap_or(600);
                let since = conds
                    .iter()
                    .find(|c| c["type"] == "Progressing")
                    .and_then(|c| c["lastUpdateTime"].as_str())
                    .map(super::store::age_secs)
                    .unwrap_or(0);
                let stuck = conds
                    .iter()
                    .any(|c| c["type"] == "Progressing" && c["reason"] == "ReplicaSetUpdated")
                    && since > deadline;
                if stuck
                    || conds
                        .iter()
                        .any(|c| c["reason"] == "ProgressDeadlineExceeded")
                {
                    set_condition(
                        &mut conds,
                        "Progressing",
                        "False",
                        "ProgressDeadlineExceeded",
                        &format!("ReplicaSet \"{new_name}\" has timed out progressing."),
                    );
                } else {
                    set_condition(
                        &mut conds,
                        "Progressing",
                        "True",
                        "ReplicaSetUpdated",
                        &format!("ReplicaSet \"{new_name}\" is progressing."),
                    );
                }
            }
            cur["status"] = json!({
                "observedGeneration": cur["metadata"]["generation"], "replicas": total, "updatedReplicas": updated,
                "readyReplicas": ready, "availableReplicas": ready, "unavailableReplicas": (desired - ready).max(0),
                "conditions": conds,
            });
            if let Some(s) = cur["status"].as_object_mut() {
                s.retain(|_, v| v != &json!(0));
            }
            let _ = store.update(dr, &ns, &name, cur, false, None);
        }
    }

    fn replicasets(&mut self, store: &Store) {
        let (rsr, pr) = (res("ReplicaSet"), res("Pod"));
        let (sets, _) = store.list(rsr, "");
        for rs in sets {
            let ns = meta_str(&rs, "namespace").to_string();
            let name = meta_str(&rs, "name").to_string();
            let uid = meta_str(&rs, "uid").to_string();
            let (pods, _) = store.list(pr, &ns);
            let mut mine: Vec<Value> = pods.into_iter().filter(|p| owned_by(p, &uid)).collect();
            let want = replicas(&rs);
            let have = mine.len() as i64;
            if have < want {
                for _ in have..want {
                    let mut tmpl = rs["spec"]["template"].clone();
                    let mut meta = tmpl["metadata"].take();
                    if !meta.is_object() {
                        meta = json!({});
                    }
                    meta["name"] = json!(format!("{name}-{}", suffix(5)));
                    meta["ownerReferences"] = owner_ref(&rs, "ReplicaSet", "apps/v1");
                    let pod = json!({"metadata": meta, "spec": tmpl["spec"], "status": {"phase": "Pending"}});
                    if let Ok(p) = store.create(pr, &ns, pod, false, None) {
                        event(
                            store,
                            &rs,
                            "Normal",
                            "SuccessfulCreate",
                            &format!("Created pod: {}", meta_str(&p, "name")),
                        );
                        mine.push(p);
                    }
                }
            } else if have > want {
                // Not-ready pods go first, then the youngest.
                mine.sort_by_key(|p| {
                    (
                        pod_ready(p),
                        std::cmp::Reverse(meta_str(p, "creationTimestamp").to_string()),
                    )
                });
                for p in mine.drain(..(have - want) as usize) {
                    if store
                        .delete(pr, &ns, meta_str(&p, "name"), &Value::Null, false)
                        .is_ok()
                    {
                        self.scheduled.remove(meta_str(&p, "uid"));
                        event(
                            store,
                            &rs,
                            "Normal",
                            "SuccessfulDelete",
                            &format!("Deleted pod: {}", meta_str(&p, "name")),
                        );
                    }
                }
            }
            let ready = mine.iter().filter(|p| pod_ready(p)).count() as i64;
            let Some(mut cur) = store.get(rsr, &ns, &name) else {
                continue;
            };
            cur["status"] = json!({"replicas": mine.len(), "fullyLabeledReplicas": mine.len(), "readyReplicas": ready,
                                   "availableReplicas": ready, "observedGeneration": cur["metadata"]["generation"]});
            if let Some(s) = cur["status"].as_object_mut() {
                s.retain(|_, v| v != &json!(0));
            }
            let _ = store.update(rsr, &ns, &name, cur, false, None);
        }
    }

    fn jobs(&mut self, store: &Store) {
        let (jr, pr) = (res("Job"), res("Pod"));
        let (jobs, _) = store.list(jr, "");
        for j in jobs {
            let ns = meta_str(&j, "namespace").to_string();
            let name = meta_str(&j, "name").to_string();
            let uid = meta_str(&j, "uid").to_string();
            let (pods, _) = store.list(pr, &ns);
            let mine: Vec<Value> = pods.into_iter().filter(|p| owned_by(p, &uid)).collect();
            if mine.is_empty() && j["status"]["succeeded"].as_i64().unwrap_or(0) == 0 {
                let tmpl = &j["spec"]["template"];
                let mut meta = tmpl["metadata"].clone();
                if !meta.is_object() {
                    meta = json!({});
                }
                meta["name"] = json!(format!("{name}-{}", suffix(5)));
                meta["labels"]["job-name"] = json!(name);
                meta["labels"]["batch.kubernetes.io/job-name"] = json!(name);
                meta["labels"]["controller-uid"] = json!(uid);
                meta["ownerReferences"] = owner_ref(&j, "Job", "batch/v1");
                if let Ok(p) = store.create(
                    pr,
                    &ns,
                    json!({"metadata": meta, "spec": tmpl["spec"], "status": {"phase": "Pending"}}),
                    false,
                    None,
                ) {
                    event(
                        store,
                        &j,
                        "Normal",
                        "SuccessfulCreate",
                        &format!("Created pod: {}", meta_str(&p, "name")),
                    );
                }
                continue;
            }
            let succeeded = mine
                .iter()
                .filter(|p| p["status"]["phase"] == "Succeeded")
                .count() as i64;
            let active = mine
                .iter()
                .filter(|p| p["status"]["phase"] == "Running" || p["status"]["phase"] == "Pending")
                .count() as i64;
            let Some(mut cur) = store.get(jr, &ns, &name) else {
                continue;
            };
            let was = cur["status"]["succeeded"].as_i64().unwrap_or(0);
            let mut status = json!({"startTime": cur["status"]["startTime"].as_str().map(String::from).unwrap_or_else(now), "active": active, "succeeded": succeeded.max(was), "ready": 0});
            if succeeded > 0 && was == 0 {
                let ts = now();
                status["completionTime"] = json!(ts);
                status["conditions"] = json!([{"type": "Complete", "status": "True", "lastProbeTime": ts, "lastTransitionTime": ts}]);
                event(store, &j, "Normal", "Completed", "Job completed");
            } else {
                status["completionTime"] = cur["status"]["completionTime"].clone();
                status["conditions"] = cur["status"]["conditions"].clone();
            }
            if let Some(s) = status.as_object_mut() {
                s.retain(|_, v| !v.is_null() && v != &json!(0));
            }
            cur["status"] = status;
            let _ = store.update(jr, &ns, &name, cur, false, None);
        }
    }

    fn pods(&mut self, store: &Store) {
        let pr = res("Pod");
        let (pods, _) = store.list(pr, "");
        for p in pods {
            let ns = meta_str(&p, "namespace").to_string();
            let name = meta_str(&p, "name").to_string();
            let uid = meta_str(&p, "uid").to_string();
            let mut cur = p.clone();
            if cur["spec"]["nodeName"].as_str().unwrap_or("").is_empty() {
                let node = NODES[self.next_node % NODES.len()];
                self.next_node += 1;
                cur["spec"]["nodeName"] = json!(node);
                self.scheduled.insert(uid.clone(), Instant::now());
                cur["status"] = json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now()}],
                                       "hostIP": "10.0.0.1", "qosClass": "BestEffort"});
                if let Ok(u) = store.update(pr, &ns, &name, cur, false, None) {
                    event(
                        store,
                        &u,
                        "Normal",
                        "Scheduled",
                        &format!("Successfully assigned {ns}/{name} to {node}"),
                    );
                }
                continue;
            }
            let since = *self
                .scheduled
                .entry(uid.clone())
                .or_insert_with(Instant::now);
            let age = since.elapsed();
            if age < TIMING.ready_after || cur["status"]["phase"] == "Succeeded" {
                continue;
            }
            let containers = cur["spec"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let broken = |c: &Value| {
                c["image"]
                    .as_str()
                    .is_some_and(|i| i.contains("does-not-exist") || i.ends_with(":broken"))
            };
            let oom = cur["metadata"]["annotations"][OOM_ANNOTATION] == "true";
            let job = cur["metadata"]["ownerReferences"][0]["kind"] == "Job";
            let started = cur["status"]["startTime"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(now);
            let old_statuses = cur["status"]["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let restarts_now = if oom {
                (age.as_millis() / TIMING.oom_every.as_millis()) as i64
            } else {
                0
            };
            let mut statuses = Vec::new();
            let mut all_ready = true;
            let mut phase = "Running";
            for c in &containers {
                let cname = c["name"].as_str().unwrap_or("app");
                let prev = old_statuses.iter().find(|s| s["name"] == cname);
                let mut s = json!({"name": cname, "image": c["image"], "imageID": format!("sandbox://{}", c["image"].as_str().unwrap_or("")),
                                   "containerID": format!("sandbox://{}", &uid[..8.min(uid.len())]), "restartCount": restarts_now, "started": true});
                if broken(c) {
                    s["state"] = json!({"waiting": {"reason": "ImagePullBackOff", "message": format!("Back-off pulling image \"{}\"", c["image"].as_str().unwrap_or(""))}});
                    s["ready"] = json!(false);
                    s["started"] = json!(false);
                    all_ready = false;
                    phase = "Pending";
                    if prev.is_none() {
                        event(
                            store,
                            &p,
                            "Warning",
                            "Failed",
                            &format!(
                                "Failed to pull image \"{}\": not found",
                                c["image"].as_str().unwrap_or("")
                            ),
                        );
                    }
                } else if job && age >= TIMING.ready_after + TIMING.job_runs_for {
                    s["state"] = json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": now()}});
                    s["ready"] = json!(false);
                    phase = "Succeeded";
                    all_ready = false;
                } else if oom && restarts_now > 0 {
                    s["state"] = json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting failed container"}});
                    s["lastState"] = json!({"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": started, "finishedAt": now()}});
                    s["ready"] = json!(false);
                    all_ready = false;
                    if prev.and_then(|p| p["restartCount"].as_i64()).unwrap_or(0) < restarts_now {
                        event(
                            store,
                            &p,
                            "Warning",
                            "BackOff",
                            "Back-off restarting failed container",
                        );
                    }
                } else {
                    let since_ts = prev
                        .and_then(|p| p["state"]["running"]["startedAt"].as_str())
                        .map(String::from)
                        .unwrap_or_else(now);
                    s["state"] = json!({"running": {"startedAt": since_ts}});
                    s["ready"] = json!(true);
                    if prev.is_none() {
                        event(
                            store,
                            &p,
                            "Normal",
                            "Pulled",
                            &format!(
                                "Container image \"{}\" already present on machine",
                                c["image"].as_str().unwrap_or("")
                            ),
                        );
                        event(
                            store,
                            &p,
                            "Normal",
                            "Started",
                            &format!("Started container {cname}"),
                        );
                    }
                }
                statuses.push(s);
            }
            let ts = now();
            let ready_status = if all_ready && phase == "Running" {
                "True"
            } else {
                "False"
            };
            let prev_ready = cur["status"]["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Ready").cloned());
            let ready_since = match &prev_ready {
                Some(c) if c["status"] == ready_status => c["lastTransitionTime"].clone(),
                _ => json!(ts),
            };
            let octets = meta_str(&p, "uid")
                .bytes()
                .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(b as u32));
            cur["status"] = json!({
                "phase": phase, "hostIP": "10.0.0.1", "podIP": format!("10.244.{}.{}", (octets >> 8) % 250, octets % 250 + 2),
                "startTime": started, "qosClass": "BestEffort", "containerStatuses": statuses,
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": started},
                    {"type": "ContainersReady", "status": ready_status, "lastTransitionTime": ready_since},
                    {"type": "Ready", "status": ready_status, "lastTransitionTime": ready_since},
                ],
            });
            if cur != p {
                if phase == "Succeeded" && p["status"]["phase"] != "Succeeded" {
                    event(store, &p, "Normal", "Completed", "Container completed");
                }
                if oom
                    && restarts_now
                        > p["status"]["containerStatuses"][0]["restartCount"]
                            .as_i64()
                            .unwrap_or(0)
                {
                    event(
                        store,
                        &p,
                        "Warning",
                        "OOMKilling",
                        "Memory cgroup out of memory: Killed process (app)",
                    );
                }
                let _ = store.update(pr, &ns, &name, cur, false, None);
            }
        }
    }

    fn hpas(&mut self, store: &Store) {
        let (hr, dr) = (res("HorizontalPodAutoscaler"), res("Deployment"));
        let (hpas, _) = store.list(hr, "");
        for h in hpas {
            let ns = meta_str(&h, "namespace").to_string();
            let name = meta_str(&h, "name").to_string();
            let target = h["spec"]["scaleTargetRef"]["name"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let min = h["spec"]["minReplicas"].as_i64().unwrap_or(1);
            let max = h["spec"]["maxReplicas"].as_i64().unwrap_or(min);
            let Some(mut d) = store.get(dr, &ns, &target) else {
                continue;
            };
            let cur_replicas = replicas(&d);
            let desired = cur_replicas.clamp(min, max.max(min));
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
                continue;
            };
            let mut status = json!({
                "currentReplicas": d["status"]["replicas"].as_i64().unwrap_or(0), "desiredReplicas": desired,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": util, "averageValue": format!("{}m", util * 2)}}}],
                "conditions": [
                    {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale", "message": "recommended size matches current size"},
                    {"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound", "message": "the HPA was able to successfully calculate a replica count from cpu resource utilization"},
                    {"type": "ScalingLimited", "status": if desired == min || desired == max { "True" } else { "False" }, "reason": if desired == max { "TooManyReplicas" } else if desired == min { "TooFewReplicas" } else { "DesiredWithinRange" }, "message": "the desired count is within the acceptable range"},
                ],
            });
            if desired != cur_replicas {
                status["lastScaleTime"] = json!(now());
            } else if !cur["status"]["lastScaleTime"].is_null() {
                status["lastScaleTime"] = cur["status"]["lastScaleTime"].clone();
            }
            if status["currentReplicas"] == 0 {
                status["currentReplicas"] = json!(cur_replicas);
            }
            cur["status"] = status;
            let _ = store.update(hr, &ns, &name, cur, false, None);
        }
    }
}

/// The label selector of a Deployment or ReplicaSet, as a string.
pub fn selector_of(o: &Value) -> String {
    match_labels_string(&o["spec"]["selector"])
}
