//! Pods (scheduled, then Running and Ready; or ImagePullBackOff; or
//! OOM-killed in a loop) and Jobs (one pod run to completion).

use super::{event, guard, owned_by, owner_ref, res, Controllers, OOM_ANNOTATION, TIMING};
use crate::store::{meta_str, now, suffix, Store};
use serde_json::{json, Value};
use std::time::Instant;

/// How many times a crashing container has restarted after `age_ms`, with
/// the kubelet's back-off: each wait twice the one before (from `base_ms`),
/// up to 32 times it, so restarts slow down instead of climbing steadily.
pub fn restarts_after(age_ms: u128, base_ms: u128) -> i64 {
    let (mut t, mut step, mut n) = (0u128, base_ms.max(1), 0i64);
    loop {
        t += step;
        if t > age_ms {
            return n;
        }
        n += 1;
        step = (step * 2).min(base_ms.max(1) * 32);
    }
}

/// The node's InternalIP, as the seed gives it (sandbox-node-N: 10.0.0.N).
pub fn host_ip(node: &str) -> String {
    let n = node
        .rsplit('-')
        .next()
        .and_then(|n| n.parse::<u8>().ok())
        .unwrap_or(1);
    format!("10.0.0.{n}")
}

/// Guaranteed when every container's limits equal its requests for both
/// cpu and memory, BestEffort when none has any, else Burstable.
pub fn qos_class(p: &Value) -> &'static str {
    let cs: Vec<&Value> = p["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let res = |c: &Value, kind: &str, r: &str| {
        c["resources"][kind][r]
            .as_str()
            .map(String::from)
            .or_else(|| c["resources"][kind][r].as_i64().map(|n| n.to_string()))
    };
    let none = cs.iter().all(|c| {
        ["requests", "limits"]
            .iter()
            .all(|k| c["resources"][k].as_object().is_none_or(|m| m.is_empty()))
    });
    if none {
        return "BestEffort";
    }
    let guaranteed = cs.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let limit = res(c, "limits", r);
            limit.is_some() && res(c, "requests", r).is_none_or(|q| Some(q) == limit)
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

impl Controllers {
    /// A node for a pod: Ready, not cordoned, matching its nodeSelector,
    /// taking turns. None leaves the pod Pending and says why, once.
    fn schedule(&mut self, store: &Store, p: &Value) -> Option<String> {
        let (nodes, _) = store.list(res("Node"), "");
        let fits = |n: &Value| {
            n["spec"]["unschedulable"] != true
                && p["spec"]["nodeSelector"]
                    .as_object()
                    .is_none_or(|sel| sel.iter().all(|(k, v)| n["metadata"]["labels"][k] == *v))
        };
        let eligible: Vec<&Value> = nodes.iter().filter(|n| fits(n)).collect();
        if eligible.is_empty() {
            let already = p["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["reason"] == "Unschedulable"));
            if !already {
                let cordoned = nodes
                    .iter()
                    .filter(|n| n["spec"]["unschedulable"] == true)
                    .count();
                let msg = format!(
                    "0/{} nodes are available: {cordoned} node(s) were unschedulable, {} node(s) didn't match Pod's node affinity/selector.",
                    nodes.len(),
                    nodes.len() - cordoned
                );
                let mut cur = p.clone();
                cur["status"] = json!({"phase": "Pending", "qosClass": qos_class(p), "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": msg, "lastTransitionTime": now()}]});
                let (ns, name) = (meta_str(p, "namespace"), meta_str(p, "name"));
                if store.update(res("Pod"), ns, name, cur, false, None).is_ok() {
                    event(store, p, "Warning", "FailedScheduling", &msg);
                }
            }
            return None;
        }
        let node = eligible[self.next_node % eligible.len()];
        self.next_node += 1;
        Some(meta_str(node, "name").to_string())
    }

    pub(super) fn jobs(&mut self, store: &Store) {
        let (jr, pr) = (res("Job"), res("Pod"));
        let (jobs, _) = store.list(jr, "");
        for j in jobs {
            let who = j.clone();
            guard(store, &who, || {
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
                    return;
                }
                let succeeded = mine
                    .iter()
                    .filter(|p| p["status"]["phase"] == "Succeeded")
                    .count() as i64;
                let active = mine
                    .iter()
                    .filter(|p| {
                        p["status"]["phase"] == "Running" || p["status"]["phase"] == "Pending"
                    })
                    .count() as i64;
                let Some(mut cur) = store.get(jr, &ns, &name) else {
                    return;
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
            });
        }
    }

    pub(super) fn pods(&mut self, store: &Store) {
        let pr = res("Pod");
        let (pods, _) = store.list(pr, "");
        for p in pods {
            let who = p.clone();
            guard(store, &who, || {
                let ns = meta_str(&p, "namespace").to_string();
                let name = meta_str(&p, "name").to_string();
                let uid = meta_str(&p, "uid").to_string();
                let mut cur = p.clone();
                if cur["spec"]["nodeName"].as_str().unwrap_or("").is_empty() {
                    let Some(node) = self.schedule(store, &p) else {
                        return;
                    };
                    cur["spec"]["nodeName"] = json!(node);
                    self.scheduled.insert(uid.clone(), Instant::now());
                    cur["status"] = json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now()}],
                                       "hostIP": host_ip(&node), "qosClass": qos_class(&p)});
                    if let Ok(u) = store.update(pr, &ns, &name, cur, false, None) {
                        event(
                            store,
                            &u,
                            "Normal",
                            "Scheduled",
                            &format!("Successfully assigned {ns}/{name} to {node}"),
                        );
                    }
                    return;
                }
                let since = *self
                    .scheduled
                    .entry(uid.clone())
                    .or_insert_with(Instant::now);
                let age = since.elapsed();
                if age < TIMING.ready_after || cur["status"]["phase"] == "Succeeded" {
                    return;
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
                    restarts_after(age.as_millis(), TIMING.oom_every.as_millis())
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
                        if prev.and_then(|p| p["restartCount"].as_i64()).unwrap_or(0) < restarts_now
                        {
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
                    "phase": phase, "hostIP": host_ip(cur["spec"]["nodeName"].as_str().unwrap_or("")), "podIP": format!("10.244.{}.{}", (octets >> 8) % 250, octets % 250 + 2),
                    "startTime": started, "qosClass": qos_class(&p), "containerStatuses": statuses,
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
            });
        }
    }
}
