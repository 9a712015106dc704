//! Reads: any kind through discovery, deployments, pods, events, HPAs,
//! rollout history. logs.rs: logs and metrics; export.rs: a namespace backup.

use super::api::{
    age_secs, core, enc, get, get_deployment, i, items, resolve_kind, s, tidy, to_dyn,
};
use super::client::connect;
use crate::dispatch::{Call, OpError};
use crate::output::column_order_hint;
use crate::value::map_of;
use rhai::{Array, Dynamic, Map};
use serde_json::Value;

pub fn hint(cols: &[&str]) {
    column_order_hint(&cols.iter().map(|c| c.to_string()).collect::<Vec<_>>());
}

pub fn get_any(call: &mut Call) -> Result<Dynamic, OpError> {
    let kind = call.str_at(0)?;
    let name = call.opt_str_at(1)?;
    let (k, t) = connect(call)?;
    let r = resolve_kind(call, &k, &t.url, &kind)?;
    let base = r.collection(&k.namespace);
    match name {
        Some(n) => Ok(to_dyn(&tidy(get(
            call,
            &k,
            &format!("get {} {n}", r.plural),
            &format!("{base}/{}", enc(&n)),
        )?))),
        None => {
            let list = get(call, &k, &format!("list {}", r.plural), &base)?;
            let arr: Array = items(&list)
                .into_iter()
                .map(|mut o| {
                    o["kind"] = Value::String(r.kind.clone());
                    o["apiVersion"] = Value::String(r.api_version());
                    to_dyn(&tidy(o))
                })
                .collect();
            Ok(arr.into())
        }
    }
}

pub fn deployment_row(d: &Value) -> Map {
    let images: Vec<&str> = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["image"].as_str()).collect())
        .unwrap_or_default();
    let want = i(d, "spec.replicas");
    let conds = d["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let progressing = conds
        .iter()
        .find(|c| c["type"] == "Progressing")
        .map(|c| c["reason"].as_str().unwrap_or("").to_string())
        .unwrap_or_default();
    map_of([
        ("name", s(d, "metadata.name").into()),
        ("replicas", want.into()),
        ("ready", i(d, "status.readyReplicas").into()),
        ("updated", i(d, "status.updatedReplicas").into()),
        ("available", i(d, "status.availableReplicas").into()),
        ("images", images.join(",").into()),
        ("revision", revision(d).into()),
        ("progressing", progressing.into()),
        ("age", age_secs(s(d, "metadata.creationTimestamp")).into()),
    ])
}

pub fn revision(o: &Value) -> i64 {
    o["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

pub fn deployments(call: &mut Call) -> Result<Dynamic, OpError> {
    let (k, _) = connect(call)?;
    let list = get(
        call,
        &k,
        "list deployments",
        &format!("/apis/apps/v1/namespaces/{}/deployments", k.namespace),
    )?;
    hint(&[
        "name",
        "replicas",
        "ready",
        "updated",
        "available",
        "images",
        "revision",
        "progressing",
        "age",
    ]);
    Ok(items(&list)
        .iter()
        .map(|d| Dynamic::from_map(deployment_row(d)))
        .collect::<Array>()
        .into())
}

pub fn pod_row(p: &Value) -> Map {
    let cs = p["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let restarts: i64 = cs
        .iter()
        .map(|c| c["restartCount"].as_i64().unwrap_or(0))
        .sum();
    let ready = p["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    });
    let waiting = cs
        .iter()
        .find_map(|c| c["state"]["waiting"]["reason"].as_str())
        .map(String::from);
    let last = cs
        .iter()
        .find_map(|c| c["lastState"]["terminated"]["reason"].as_str())
        .map(String::from);
    let status = waiting
        .clone()
        .unwrap_or_else(|| s(p, "status.phase").to_string());
    let owner = p["metadata"]["ownerReferences"][0]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    map_of([
        ("name", s(p, "metadata.name").into()),
        ("phase", s(p, "status.phase").into()),
        ("status", status.into()),
        ("ready", ready.into()),
        ("restarts", restarts.into()),
        (
            "last_termination",
            last.map(Dynamic::from).unwrap_or(Dynamic::UNIT),
        ),
        ("node", s(p, "spec.nodeName").into()),
        ("ip", s(p, "status.podIP").into()),
        ("age", age_secs(s(p, "metadata.creationTimestamp")).into()),
        ("owner", owner.into()),
        ("uid", s(p, "metadata.uid").into()),
    ])
}

pub fn list_pods(
    call: &Call,
    k: &super::client::Kube,
    selector: &str,
) -> Result<Vec<Value>, OpError> {
    let mut path = core(&k.namespace, "pods");
    if !selector.is_empty() {
        path.push_str(&format!("?labelSelector={}", enc(selector)));
    }
    Ok(items(&get(call, k, "list pods", &path)?))
}

pub fn pods(call: &mut Call) -> Result<Dynamic, OpError> {
    let opts = call.opts_at(0)?;
    let (k, _) = connect(call)?;
    let selector = opts
        .get("selector")
        .map(|v| v.to_string())
        .unwrap_or_default();
    let phase = opts.get("phase").map(|v| v.to_string());
    let not_ready = opts
        .get("not_ready")
        .and_then(|v| v.as_bool().ok())
        .unwrap_or(false);
    let rows: Array = list_pods(call, &k, &selector)?
        .iter()
        .map(pod_row)
        .filter(|r| {
            phase.as_ref().is_none_or(|p| {
                r.get("phase")
                    .is_some_and(|x| x.to_string().eq_ignore_ascii_case(p))
            })
        })
        .filter(|r| {
            !not_ready
                || (!r
                    .get("ready")
                    .and_then(|x| x.as_bool().ok())
                    .unwrap_or(false)
                    && r.get("phase").is_some_and(|x| x.to_string() != "Succeeded"))
        })
        .map(Dynamic::from_map)
        .collect();
    hint(&[
        "name",
        "phase",
        "status",
        "ready",
        "restarts",
        "last_termination",
        "node",
        "ip",
        "age",
        "owner",
        "uid",
    ]);
    Ok(rows.into())
}

pub fn events(call: &mut Call) -> Result<Dynamic, OpError> {
    let opts = call.opts_at(0)?;
    let since = match opts.get("since") {
        Some(d) => Some(
            crate::value::parse_duration(d)
                .map_err(|e| OpError::bad_input(format!("since: {e}")))?
                .as_secs() as i64,
        ),
        None => None,
    };
    let type_ = opts.get("type").map(|v| v.to_string());
    let involved = opts.get("involved").map(|v| v.to_string());
    let (k, _) = connect(call)?;
    let mut path = core(&k.namespace, "events");
    if let Some(inv) = &involved {
        let name = inv.rsplit('/').next().unwrap_or(inv);
        path.push_str(&format!(
            "?fieldSelector={}",
            enc(&format!("involvedObject.name={name}"))
        ));
    }
    let mut rows: Vec<(i64, Map)> = items(&get(call, &k, "list events", &path)?)
        .iter()
        .filter_map(|e| {
            let last = e["lastTimestamp"]
                .as_str()
                .or_else(|| e["eventTime"].as_str())
                .unwrap_or("");
            let ago = age_secs(last);
            if since.is_some_and(|s| ago > s)
                || type_
                    .as_ref()
                    .is_some_and(|t| !t.eq_ignore_ascii_case(s(e, "type")))
            {
                return None;
            }
            let object = format!(
                "{}/{}",
                s(e, "involvedObject.kind").to_ascii_lowercase(),
                s(e, "involvedObject.name")
            );
            Some((
                ago,
                map_of([
                    ("ago", ago.into()),
                    ("type", s(e, "type").into()),
                    ("reason", s(e, "reason").into()),
                    ("object", object.into()),
                    ("message", s(e, "message").into()),
                    ("count", e["count"].as_i64().unwrap_or(1).into()),
                ]),
            ))
        })
        .collect();
    rows.sort_by_key(|(ago, _)| *ago);
    hint(&["ago", "type", "reason", "object", "message", "count"]);
    Ok(rows
        .into_iter()
        .map(|(_, m)| Dynamic::from_map(m))
        .collect::<Array>()
        .into())
}

pub fn hpa_row(h: &Value) -> Map {
    let cur = h["status"]["currentMetrics"]
        .as_array()
        .and_then(|a| a.iter().find(|m| m["resource"]["name"] == "cpu"))
        .map(|m| {
            m["resource"]["current"]["averageUtilization"]
                .as_i64()
                .unwrap_or(0)
        });
    let want = h["spec"]["metrics"]
        .as_array()
        .and_then(|a| a.iter().find(|m| m["resource"]["name"] == "cpu"))
        .map(|m| {
            m["resource"]["target"]["averageUtilization"]
                .as_i64()
                .unwrap_or(0)
        });
    let limited = h["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "ScalingLimited" && c["status"] == "True")
    });
    let opt = |v: Option<i64>| v.map(Dynamic::from).unwrap_or(Dynamic::UNIT);
    map_of([
        ("name", s(h, "metadata.name").into()),
        (
            "target",
            format!(
                "{}/{}",
                s(h, "spec.scaleTargetRef.kind"),
                s(h, "spec.scaleTargetRef.name")
            )
            .into(),
        ),
        ("min", h["spec"]["minReplicas"].as_i64().unwrap_or(1).into()),
        ("max", i(h, "spec.maxReplicas").into()),
        ("current", i(h, "status.currentReplicas").into()),
        ("desired", i(h, "status.desiredReplicas").into()),
        ("cpu_pct", opt(cur)),
        ("cpu_target_pct", opt(want)),
        ("limited", limited.into()),
    ])
}

pub fn hpa(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = call.opt_str_at(0)?;
    let (k, _) = connect(call)?;
    let base = format!(
        "/apis/autoscaling/v2/namespaces/{}/horizontalpodautoscalers",
        k.namespace
    );
    hint(&[
        "name",
        "target",
        "min",
        "max",
        "current",
        "desired",
        "cpu_pct",
        "cpu_target_pct",
        "limited",
    ]);
    match name {
        Some(n) => Ok(Dynamic::from_map(hpa_row(&get(
            call,
            &k,
            &format!("get hpa {n}"),
            &format!("{base}/{}", enc(&n)),
        )?))),
        None => Ok(items(&get(call, &k, "list hpa", &base)?)
            .iter()
            .map(|h| Dynamic::from_map(hpa_row(h)))
            .collect::<Array>()
            .into()),
    }
}

/// The Deployment's own ReplicaSets (by owner uid, as kubectl counts them), oldest revision first.
pub fn owned_replicasets(
    call: &Call,
    k: &super::client::Kube,
    d: &Value,
) -> Result<Vec<Value>, OpError> {
    let sel = d["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(a, b)| format!("{a}={}", b.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let path = format!(
        "/apis/apps/v1/namespaces/{}/replicasets?labelSelector={}",
        k.namespace,
        enc(&sel)
    );
    let uid = s(d, "metadata.uid");
    let mut rs: Vec<Value> = items(&get(call, k, "list replicasets", &path)?)
        .into_iter()
        .filter(|r| {
            r["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|a| a.iter().any(|o| o["uid"] == uid))
        })
        .collect();
    rs.sort_by_key(revision);
    Ok(rs)
}

pub fn images_of(template: &Value) -> String {
    template["spec"]["containers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["image"].as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

pub fn rollout_history(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = call.str_at(0)?;
    let (k, _) = connect(call)?;
    let d = get_deployment(call, &k, &name)?;
    let current = revision(&d);
    let rows: Array = owned_replicasets(call, &k, &d)?
        .iter()
        .map(|r| {
            let cause = r["metadata"]["annotations"]["kubernetes.io/change-cause"]
                .as_str()
                .map(|c| Dynamic::from(c.to_string()))
                .unwrap_or(Dynamic::UNIT);
            Dynamic::from_map(map_of([
                ("revision", revision(r).into()),
                ("replicaset", s(r, "metadata.name").into()),
                ("images", images_of(&r["spec"]["template"]).into()),
                ("replicas", i(r, "spec.replicas").into()),
                ("current", (revision(r) == current).into()),
                ("change_cause", cause),
                ("age", age_secs(s(r, "metadata.creationTimestamp")).into()),
            ]))
        })
        .collect();
    hint(&[
        "revision",
        "replicaset",
        "images",
        "replicas",
        "current",
        "change_cause",
        "age",
    ]);
    Ok(rows.into())
}

/// `kubectl auth can-i`: a SelfSubjectAccessReview for this handle's
/// identity, in its namespace. `resource` is a kind as `k8s.get` takes it,
/// with an optional subresource (`deployments/scale`).
pub fn can_i(call: &mut Call) -> Result<Dynamic, OpError> {
    let verb = call.str_at(0)?;
    let what = call.str_at(1)?;
    let name = call.opt_str_at(2)?;
    let (k, t) = connect(call)?;
    let (kind, sub) = match what.split_once('/') {
        Some((kind, sub)) => (kind, sub),
        None => (what.as_str(), ""),
    };
    let r = resolve_kind(call, &k, &t.url, kind)?;
    let body = serde_json::json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {
            "namespace": if r.namespaced { k.namespace.as_str() } else { "" },
            "verb": verb, "group": r.group, "resource": r.plural, "subresource": sub,
            "name": name.unwrap_or_default(),
        }}
    });
    let review = super::api::req(
        call,
        &k,
        &format!("can-i {verb} {what}"),
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        Some("application/json"),
        Some(&body),
    )?;
    Ok(review["status"]["allowed"]
        .as_bool()
        .unwrap_or(false)
        .into())
}
