//! Deployments (one ReplicaSet per distinct template, revisions, rolling
//! 25% at a time, status as kubectl reads it) and ReplicaSets (pods to the
//! wanted count, not-ready and youngest removed first).

use super::{
    event, guard, normalize, owned_by, owner_ref, pod_ready, replicas, res, rev, set_condition,
    template_hash, Controllers, REVISION,
};
use crate::store::{meta_str, suffix, Store};
use serde_json::{json, Value};

impl Controllers {
    pub(super) fn deployments(&mut self, store: &Store) {
        let (rsr, dr) = (res("ReplicaSet"), res("Deployment"));
        let (deploys, _) = store.list(dr, "");
        for d in deploys {
            let who = d.clone();
            guard(store, &who, || {
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
                // A paused Deployment makes no new ReplicaSet for a changed
                // template: its newest one stays current until it resumes.
                let paused = d["spec"]["paused"] == true;
                let current = current.or_else(|| {
                    paused
                        .then(|| {
                            owned
                                .iter()
                                .enumerate()
                                .max_by_key(|(_, r)| rev(r))
                                .map(|(i, _)| i)
                        })
                        .flatten()
                });
                let new_rs = match current {
                    Some(i) => {
                        let mut r = owned[i].clone();
                        if rev(&r) < max_rev {
                            // An old template came back (rollout undo): its ReplicaSet is revived with the next revision.
                            r["metadata"]["annotations"][REVISION] =
                                json!((max_rev + 1).to_string());
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
                            Err(_) => return,
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
                if paused {
                    if old_total == 0 {
                        target_new = desired;
                    }
                } else if new_spec > desired || old_total == 0 {
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
                let mut excess = if paused { 0 } else { old_total - allowed_old };
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
                    return;
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
                if paused {
                    set_condition(
                        &mut conds,
                        "Progressing",
                        "Unknown",
                        "DeploymentPaused",
                        "Deployment is paused",
                    );
                } else if complete {
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
                        .map(crate::store::age_secs)
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
            });
        }
    }

    pub(super) fn replicasets(&mut self, store: &Store) {
        let (rsr, pr) = (res("ReplicaSet"), res("Pod"));
        let (sets, _) = store.list(rsr, "");
        for rs in sets {
            let who = rs.clone();
            guard(store, &who, || {
                let ns = meta_str(&rs, "namespace").to_string();
                let name = meta_str(&rs, "name").to_string();
                let uid = meta_str(&rs, "uid").to_string();
                let (pods, _) = store.list(pr, &ns);
                let mut mine: Vec<Value> = pods.into_iter().filter(|p| owned_by(p, &uid)).collect();
                // A pod relabelled out of the selector is released (its owner
                // reference removed) and replaced, as the real controller does.
                let selector = crate::validate::selector_string(&rs["spec"]["selector"])
                    .and_then(|s| crate::store::Selector::parse(&s).ok());
                if let Some(sel) = selector {
                    let (keep, gone): (Vec<Value>, Vec<Value>) = mine
                        .into_iter()
                        .partition(|p| sel.matches(&p["metadata"]["labels"]));
                    mine = keep;
                    for mut p in gone {
                        // Empty rather than absent: an update without the
                        // field keeps the stored owners.
                        p["metadata"]["ownerReferences"] = json!([]);
                        let pname = meta_str(&p, "name").to_string();
                        let _ = store.update(pr, &ns, &pname, p, false, None);
                    }
                }
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
                    return;
                };
                cur["status"] = json!({"replicas": mine.len(), "fullyLabeledReplicas": mine.len(), "readyReplicas": ready,
                                   "availableReplicas": ready, "observedGeneration": cur["metadata"]["generation"]});
                if let Some(s) = cur["status"].as_object_mut() {
                    s.retain(|_, v| v != &json!(0));
                }
                let _ = store.update(rsr, &ns, &name, cur, false, None);
            });
        }
    }
}
