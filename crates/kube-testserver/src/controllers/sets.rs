//! StatefulSets (pods NAME-0..N-1, replaced one at a time from the highest
//! ordinal when the template changes), DaemonSets (a pod on every node that
//! takes pods, cordoned or not, as their tolerations allow) and the
//! Endpoints and EndpointSlices of Services (the ready pods they select).

use super::{
    event, guard, owned_by, owner_ref, pod_ready, replicas, res, template_hash, Controllers,
};
use crate::discovery::Res;
use crate::store::{meta_str, suffix, Selector, Store};
use serde_json::{json, Value};

const REVISION_LABEL: &str = "controller-revision-hash";

fn pod_from(owner: &Value, kind: &str, name: String, hash: &str) -> Value {
    let tmpl = &owner["spec"]["template"];
    let mut meta = tmpl["metadata"].clone();
    if !meta.is_object() {
        meta = json!({});
    }
    meta["name"] = json!(name);
    meta["labels"][REVISION_LABEL] = json!(format!("{}-{hash}", meta_str(owner, "name")));
    meta["ownerReferences"] = owner_ref(owner, kind, "apps/v1");
    json!({"metadata": meta, "spec": tmpl["spec"], "status": {"phase": "Pending"}})
}

fn revision(owner: &Value) -> String {
    format!(
        "{}-{}",
        meta_str(owner, "name"),
        template_hash(&owner["spec"]["template"])
    )
}

fn owned_pods(store: &Store, pr: &Res, ns: &str, uid: &str) -> Vec<Value> {
    let (pods, _) = store.list(pr, ns);
    pods.into_iter().filter(|p| owned_by(p, uid)).collect()
}

/// How many of `pods` are ready, and how many already run revision `rev`.
fn ready_and_updated(pods: &[Value], rev: &str) -> (usize, usize) {
    let ready = pods.iter().filter(|p| pod_ready(p)).count();
    let updated = pods
        .iter()
        .filter(|p| p["metadata"]["labels"][REVISION_LABEL] == rev)
        .count();
    (ready, updated)
}

impl Controllers {
    pub(super) fn statefulsets(&mut self, store: &Store) {
        let (sr, pr) = (res("StatefulSet"), res("Pod"));
        let (sets, _) = store.list(sr, "");
        for s in sets {
            let who = s.clone();
            guard(store, &who, || {
                let ns = meta_str(&s, "namespace").to_string();
                let name = meta_str(&s, "name").to_string();
                let uid = meta_str(&s, "uid").to_string();
                let want = replicas(&s);
                let hash = template_hash(&s["spec"]["template"]);
                let rev = revision(&s);
                let mine = owned_pods(store, pr, &ns, &uid);
                let ordinal = |p: &Value| {
                    meta_str(p, "name")
                        .rsplit('-')
                        .next()
                        .and_then(|n| n.parse::<i64>().ok())
                        .unwrap_or(-1)
                };
                // Ordered: the lowest missing ordinal is made once the ones
                // before it are ready; the highest goes first when scaling in.
                let mut all_ready = true;
                for i in 0..want {
                    match mine.iter().find(|p| ordinal(p) == i) {
                        Some(p) => all_ready &= pod_ready(p),
                        None if all_ready => {
                            let pod = pod_from(&s, "StatefulSet", format!("{name}-{i}"), &hash);
                            let mut pod = pod;
                            pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] =
                                json!(format!("{name}-{i}"));
                            if store.create(pr, &ns, pod, false, None).is_ok() {
                                event(
                                    store,
                                    &s,
                                    "Normal",
                                    "SuccessfulCreate",
                                    &format!(
                                        "create Pod {name}-{i} in StatefulSet {name} successful"
                                    ),
                                );
                            }
                            all_ready = false;
                        }
                        None => {}
                    }
                }
                if let Some(p) = mine
                    .iter()
                    .filter(|p| ordinal(p) >= want)
                    .max_by_key(|p| ordinal(p))
                {
                    if store
                        .delete(pr, &ns, meta_str(p, "name"), &Value::Null, false)
                        .is_ok()
                    {
                        self.scheduled.remove(meta_str(p, "uid"));
                        event(
                            store,
                            &s,
                            "Normal",
                            "SuccessfulDelete",
                            &format!(
                                "delete Pod {} in StatefulSet {name} successful",
                                meta_str(p, "name")
                            ),
                        );
                    }
                } else if all_ready {
                    // Rolling update: the highest outdated pod is replaced.
                    if let Some(p) = mine
                        .iter()
                        .filter(|p| p["metadata"]["labels"][REVISION_LABEL] != rev.as_str())
                        .max_by_key(|p| ordinal(p))
                    {
                        if store
                            .delete(pr, &ns, meta_str(p, "name"), &Value::Null, false)
                            .is_ok()
                        {
                            self.scheduled.remove(meta_str(p, "uid"));
                        }
                    }
                }
                let mine = owned_pods(store, pr, &ns, &uid);
                let (ready, updated) = ready_and_updated(&mine, &rev);
                let Some(mut cur) = store.get(sr, &ns, &name) else {
                    return;
                };
                cur["status"] = json!({"observedGeneration": cur["metadata"]["generation"], "replicas": mine.len(), "readyReplicas": ready,
                                       "currentReplicas": updated, "updatedReplicas": updated, "availableReplicas": ready,
                                       "currentRevision": rev, "updateRevision": rev, "collisionCount": 0});
                let _ = store.update(sr, &ns, &name, cur, false, None);
            });
        }
    }

    pub(super) fn daemonsets(&mut self, store: &Store) {
        let (dr, pr, nr) = (res("DaemonSet"), res("Pod"), res("Node"));
        let (sets, _) = store.list(dr, "");
        let (nodes, _) = store.list(nr, "");
        for d in sets {
            let who = d.clone();
            guard(store, &who, || {
                let ns = meta_str(&d, "namespace").to_string();
                let name = meta_str(&d, "name").to_string();
                let uid = meta_str(&d, "uid").to_string();
                let hash = template_hash(&d["spec"]["template"]);
                let rev = revision(&d);
                let mine = owned_pods(store, pr, &ns, &uid);
                let selector = &d["spec"]["template"]["spec"]["nodeSelector"];
                // DaemonSet pods tolerate node.kubernetes.io/unschedulable: cordoned nodes keep them.
                let targets: Vec<&Value> = nodes
                    .iter()
                    .filter(|n| {
                        selector
                            .as_object()
                            .is_none_or(|s| s.iter().all(|(k, v)| n["metadata"]["labels"][k] == *v))
                    })
                    .collect();
                for n in &targets {
                    let node = meta_str(n, "name");
                    let here: Vec<&Value> = mine
                        .iter()
                        .filter(|p| p["spec"]["nodeName"] == node)
                        .collect();
                    let outdated = here
                        .iter()
                        .find(|p| p["metadata"]["labels"][REVISION_LABEL] != rev.as_str());
                    if here.is_empty() {
                        let mut pod =
                            pod_from(&d, "DaemonSet", format!("{name}-{}", suffix(5)), &hash);
                        pod["spec"]["nodeName"] = json!(node);
                        if store.create(pr, &ns, pod, false, None).is_ok() {
                            event(
                                store,
                                &d,
                                "Normal",
                                "SuccessfulCreate",
                                &format!("Created pod on {node}"),
                            );
                        }
                    } else if let Some(p) = outdated {
                        let _ = store.delete(pr, &ns, meta_str(p, "name"), &Value::Null, false);
                    }
                }
                let mine = owned_pods(store, pr, &ns, &uid);
                let (ready, updated) = ready_and_updated(&mine, &rev);
                let Some(mut cur) = store.get(dr, &ns, &name) else {
                    return;
                };
                cur["status"] = json!({"observedGeneration": cur["metadata"]["generation"], "desiredNumberScheduled": targets.len(),
                                       "currentNumberScheduled": mine.len(), "numberReady": ready, "numberAvailable": ready,
                                       "updatedNumberScheduled": updated, "numberMisscheduled": 0});
                let _ = store.update(dr, &ns, &name, cur, false, None);
            });
        }
    }

    /// Endpoints and EndpointSlices follow the ready pods each Service selects.
    pub(super) fn endpoints(&mut self, store: &Store) {
        let (sr, pr, er, esr) = (
            res("Service"),
            res("Pod"),
            res("Endpoints"),
            res("EndpointSlice"),
        );
        let (services, _) = store.list(sr, "");
        for svc in services {
            let who = svc.clone();
            guard(store, &who, || {
                let Some(sel) = svc["spec"]["selector"]
                    .as_object()
                    .filter(|m| !m.is_empty())
                else {
                    return;
                };
                let sel = sel
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(",");
                let Ok(sel) = Selector::parse(&sel) else {
                    return;
                };
                let ns = meta_str(&svc, "namespace").to_string();
                let name = meta_str(&svc, "name").to_string();
                let (pods, _) = store.list(pr, &ns);
                let mut selected: Vec<&Value> = pods
                    .iter()
                    .filter(|p| {
                        sel.matches(&p["metadata"]["labels"]) && p["status"]["podIP"].is_string()
                    })
                    .collect();
                selected.sort_by_key(|p| meta_str(p, "name").to_string());
                let address = |p: &Value| {
                    json!({"ip": p["status"]["podIP"], "nodeName": p["spec"]["nodeName"],
                    "targetRef": {"kind": "Pod", "namespace": ns, "name": p["metadata"]["name"], "uid": p["metadata"]["uid"]}})
                };
                let ready: Vec<Value> = selected
                    .iter()
                    .filter(|p| pod_ready(p))
                    .map(|p| address(p))
                    .collect();
                let not_ready: Vec<Value> = selected
                    .iter()
                    .filter(|p| !pod_ready(p))
                    .map(|p| address(p))
                    .collect();
                let ports: Vec<Value> = svc["spec"]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        let mut e = json!({"port": if p["targetPort"].is_i64() { p["targetPort"].clone() } else { p["port"].clone() },
                                           "protocol": p["protocol"].as_str().unwrap_or("TCP")});
                        if let Some(n) = p["name"].as_str() {
                            e["name"] = json!(n);
                        }
                        e
                    })
                    .collect();
                let mut subset = json!({"ports": ports});
                if !ready.is_empty() {
                    subset["addresses"] = json!(ready);
                }
                if !not_ready.is_empty() {
                    subset["notReadyAddresses"] = json!(not_ready);
                }
                let subsets = if selected.is_empty() {
                    json!([])
                } else {
                    json!([subset])
                };
                let ep = json!({"metadata": {"name": name, "labels": svc["metadata"]["labels"]}, "subsets": subsets});
                upsert(store, er, &ns, &name, ep, |cur, new| {
                    cur["subsets"] = new["subsets"].clone()
                });
                let endpoints: Vec<Value> = selected
                    .iter()
                    .map(|p| json!({"addresses": [p["status"]["podIP"]], "conditions": {"ready": pod_ready(p), "serving": pod_ready(p), "terminating": false},
                                    "nodeName": p["spec"]["nodeName"], "targetRef": {"kind": "Pod", "namespace": ns, "name": p["metadata"]["name"], "uid": p["metadata"]["uid"]}}))
                    .collect();
                let slice_name = format!("{name}-sandbox");
                let slice = json!({"metadata": {"name": slice_name, "labels": {"kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                                                "ownerReferences": owner_ref(&svc, "Service", "v1")},
                                   "addressType": "IPv4", "endpoints": endpoints, "ports": ports});
                upsert(store, esr, &ns, &slice_name, slice, |cur, new| {
                    cur["endpoints"] = new["endpoints"].clone();
                    cur["ports"] = new["ports"].clone();
                });
            });
        }
    }
}

/// Creates `new`, or brings the stored object in line with it through `set`.
fn upsert(
    store: &Store,
    r: &'static crate::discovery::Res,
    ns: &str,
    name: &str,
    new: Value,
    set: impl Fn(&mut Value, &Value),
) {
    match store.get(r, ns, name) {
        None => {
            let _ = store.create(r, ns, new, false, None);
        }
        Some(cur) => {
            let mut next = cur.clone();
            set(&mut next, &new);
            if next != cur {
                let _ = store.update(r, ns, name, next, false, None);
            }
        }
    }
}

/// A PodDisruptionBudget against the pods of its namespace: (disruptions
/// allowed, healthy, desired healthy, expected), as its status reports them
/// and evictions check them. None when its selector is unreadable.
pub fn budget(pdb: &Value, pods: &[Value]) -> Option<(i64, i64, i64, i64)> {
    let sel = crate::validate::selector_string(&pdb["spec"]["selector"])
        .and_then(|s| Selector::parse(&s).ok())?;
    let selected: Vec<&Value> = pods
        .iter()
        .filter(|p| sel.matches(&p["metadata"]["labels"]))
        .collect();
    let expected = selected.len() as i64;
    let healthy = selected.iter().filter(|p| pod_ready(p)).count() as i64;
    let count = |v: &Value, round_up: bool| match v {
        Value::String(s) if s.ends_with('%') => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            if round_up {
                (expected * pct + 99) / 100
            } else {
                expected * pct / 100
            }
        }
        other => other.as_i64().unwrap_or(0),
    };
    let desired = if !pdb["spec"]["minAvailable"].is_null() {
        count(&pdb["spec"]["minAvailable"], true)
    } else if !pdb["spec"]["maxUnavailable"].is_null() {
        (expected - count(&pdb["spec"]["maxUnavailable"], false)).max(0)
    } else {
        0
    };
    Some(((healthy - desired).max(0), healthy, desired, expected))
}

impl Controllers {
    /// PVCs bind at once (to a volume named after them) and PDBs report
    /// what they allow.
    pub(super) fn claims_and_budgets(&mut self, store: &Store) {
        let (cr, br, pr) = (
            res("PersistentVolumeClaim"),
            res("PodDisruptionBudget"),
            res("Pod"),
        );
        let (claims, _) = store.list(cr, "");
        for c in claims
            .into_iter()
            .filter(|c| c["status"]["phase"] != "Bound")
        {
            let mut next = c.clone();
            next["spec"]["volumeName"] = json!(format!("pvc-{}", meta_str(&c, "uid")));
            if next["spec"]["storageClassName"].is_null() {
                next["spec"]["storageClassName"] = json!("standard");
            }
            next["status"] = json!({"phase": "Bound", "accessModes": c["spec"]["accessModes"],
                                    "capacity": {"storage": c["spec"]["resources"]["requests"]["storage"]}});
            let _ = store.update(
                cr,
                meta_str(&c, "namespace"),
                meta_str(&c, "name"),
                next,
                false,
                None,
            );
        }
        let (budgets, _) = store.list(br, "");
        for b in budgets {
            let ns = meta_str(&b, "namespace").to_string();
            let (pods, _) = store.list(pr, &ns);
            let Some((allowed, healthy, desired, expected)) = budget(&b, &pods) else {
                continue;
            };
            let mut next = b.clone();
            next["status"] = json!({"disruptionsAllowed": allowed, "currentHealthy": healthy, "desiredHealthy": desired,
                                    "expectedPods": expected, "observedGeneration": b["metadata"]["generation"]});
            if next != b {
                let _ = store.update(br, &ns, meta_str(&b, "name"), next, false, None);
            }
        }
    }
}
