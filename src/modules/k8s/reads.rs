//! Reads: any kind through discovery, deployments, pods, events, HPAs,
//! rollout history. logs.rs: logs and metrics; export.rs: a namespace backup.

use super::api::{
    age_secs, core, enc, get, get_deployment, i, items, resolve_kind, s, tidy, to_dyn,
};
use super::client::connect;
use super::{DEPLOYMENT_NAMES, HPA_NAMES};
use crate::dispatch::{Call, OpError};
use crate::registry::{field, opt, req, Field, Primitive, Ty};
use crate::value::map_of;
use rhai::{Array, Dynamic, Map};
use serde_json::Value;

pub const GET: Primitive = Primitive::read("get", get_any)
    .params(&[req("kind", Ty::Str), opt("name", Ty::Str)])
    .returns(Ty::OneOf(&[Ty::Map, Ty::List(&Ty::Map)]))
    .doc("Any kind the cluster serves, resolved through discovery (plural, singular, Kind or short name: \"deploy\", \"hpa\", \"networkpolicies\").\n\
          With a name: that object (managedFields dropped); without: every object of the kind in the namespace.")
    .example(r#"let d = k8s.get("deploy", "api"); d.spec.replicas"#);
fn get_any(call: &mut Call) -> Result<Dynamic, OpError> {
    let kind = call.str("kind")?;
    let name = call.opt_str("name")?;
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

/// A row of k8s.deployments, and the start of k8s.rollout_status's answer.
pub const DEPLOYMENT: &[Field] = &[
    field("name", Ty::Str),
    field("replicas", Ty::Int).doc("desired (spec.replicas)"),
    field("ready", Ty::Int),
    field("updated", Ty::Int).doc("replicas running the current template"),
    field("available", Ty::Int),
    field("images", Ty::Str).doc("the containers' images, comma-separated").wide(),
    field("revision", Ty::Int).wide(),
    field("progressing", Ty::Str)
        .doc("reason of the Progressing condition (\"NewReplicaSetAvailable\", \"ProgressDeadlineExceeded\"...); \"\" without one"),
    field("age", Ty::Int).doc("seconds since creation"),
];

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

pub const DEPLOYMENTS: Primitive = Primitive::read("deployments", deployments)
    .returns(Ty::Rows(DEPLOYMENT))
    .doc("Deployments of the namespace.")
    .example("show(k8s.deployments())");
fn deployments(call: &mut Call) -> Result<Dynamic, OpError> {
    let (k, _) = connect(call)?;
    let list = get(
        call,
        &k,
        "list deployments",
        &format!("/apis/apps/v1/namespaces/{}/deployments", k.namespace),
    )?;
    Ok(items(&list)
        .iter()
        .map(|d| Dynamic::from_map(deployment_row(d)))
        .collect::<Array>()
        .into())
}

const POD: &[Field] = &[
    field("name", Ty::Str),
    field("phase", Ty::Str).doc("Pending, Running, Succeeded, Failed or Unknown").wide(),
    field("status", Ty::Str)
        .doc("as kubectl's STATUS: a container's waiting reason (\"CrashLoopBackOff\", \"ImagePullBackOff\"...), else its terminated reason (\"Completed\", \"Error\", \"OOMKilled\"), else the phase; \"Terminating\" while it is deleted"),
    field("ready", Ty::Bool).doc("the pod's Ready condition"),
    field("restarts", Ty::Int).doc("of all its containers"),
    field("last_termination", Ty::Str)
        .doc("why a container last exited, e.g. \"OOMKilled\"; () when none has").wide(),
    field("node", Ty::Str).wide(),
    field("ip", Ty::Str).wide(),
    field("age", Ty::Int).doc("seconds since creation"),
    field("owner", Ty::Str).doc("name of its owner (a ReplicaSet, a Job...); \"\" without one").wide(),
    field("uid", Ty::Str).doc("for k8s.delete_pod's uid precondition").wide(),
];

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
    let terminated = cs
        .iter()
        .find_map(|c| c["state"]["terminated"]["reason"].as_str())
        .map(String::from);
    let status = if p["metadata"]["deletionTimestamp"].is_string() {
        "Terminating".to_string()
    } else {
        waiting
            .clone()
            .or(terminated)
            .unwrap_or_else(|| s(p, "status.phase").to_string())
    };
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

pub const PODS: Primitive = Primitive::read("pods", pods)
    .params(&[opt(
        "opts",
        Ty::Record(&[
            field("selector", Ty::Str).doc("a label selector: \"app=api\", \"app in (api,web)\""),
            field("phase", Ty::Str).doc("only pods in this phase (\"Running\"...), any case"),
            field("not_ready", Ty::Bool)
                .doc("true: only pods not Ready, completed ones excluded"),
        ]),
    )])
    .returns(Ty::Rows(POD))
    .doc("Pods of the namespace.")
    .example(r#"let bad = k8s.pods(#{not_ready: true}); let oom = k8s.pods().filter(|p| p.last_termination == "OOMKilled");"#);
fn pods(call: &mut Call) -> Result<Dynamic, OpError> {
    let opts = call.opts("opts")?;
    let (k, _) = connect(call)?;
    let selector = opts.str("selector")?.unwrap_or_default();
    let phase = opts.str("phase")?;
    let not_ready = opts.bool("not_ready")?;
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
    Ok(rows.into())
}

pub const EVENTS: Primitive = Primitive::read("events", events)
    .params(&[opt(
        "opts",
        Ty::Record(&[
            field("since", Ty::Duration).doc("only events seen within this long (\"10m\")"),
            field("type", Ty::Str).doc("\"Warning\" or \"Normal\", any case"),
            field("involved", Ty::Str).doc("about this object: a name, or kind/name"),
        ]),
    )])
    .returns(Ty::Rows(&[
        field("ago", Ty::Int).doc("seconds since it was last seen"),
        field("type", Ty::Str),
        field("reason", Ty::Str),
        field("object", Ty::Str).doc("kind/name, the kind in lower case: \"pod/api-7d4b9\""),
        field("message", Ty::Str),
        field("count", Ty::Int).doc("how many times it was seen"),
    ]))
    .doc("Events of the namespace, newest first.")
    .example(r#"show(k8s.events(#{since: "15m", type: "Warning"}))"#);
fn events(call: &mut Call) -> Result<Dynamic, OpError> {
    let opts = call.opts("opts")?;
    let since = opts.duration("since")?.map(|d| d.as_secs() as i64);
    let type_ = opts.str("type")?;
    let involved = opts.str("involved")?;
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
    Ok(rows
        .into_iter()
        .map(|(_, m)| Dynamic::from_map(m))
        .collect::<Array>()
        .into())
}

const HPA_ROW: &[Field] = &[
    field("name", Ty::Str),
    field("target", Ty::Str).doc("what it scales, Kind/name: \"Deployment/api\""),
    field("min", Ty::Int),
    field("max", Ty::Int),
    field("current", Ty::Int).doc("replicas now"),
    field("desired", Ty::Int).doc("replicas it wants"),
    field("cpu_pct", Ty::Int).doc("average CPU utilisation; () when not reported"),
    field("cpu_target_pct", Ty::Int).doc("its CPU target; () without a CPU metric"),
    field("limited", Ty::Bool)
        .doc("ScalingLimited: the replicas it wants are capped by min or max"),
];

fn hpa_row(h: &Value) -> Map {
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

pub const HPA: Primitive = Primitive::read("hpa", hpa)
    .params(&[opt("name", Ty::Str).names(HPA_NAMES)])
    .returns(Ty::OneOf(&[Ty::Record(HPA_ROW), Ty::Rows(HPA_ROW)]))
    .doc("HorizontalPodAutoscalers (autoscaling/v2): the one named, or every one of the namespace.")
    .example(
        r#"let h = k8s.hpa("api"); if h.current == h.max { print("api is at its HPA maximum") }"#,
    );
fn hpa(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = call.opt_str("name")?;
    let (k, _) = connect(call)?;
    let base = format!(
        "/apis/autoscaling/v2/namespaces/{}/horizontalpodautoscalers",
        k.namespace
    );
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

pub const ROLLOUT_HISTORY: Primitive = Primitive::read("rollout_history", rollout_history)
    .params(&[req("deployment", Ty::Str).names(DEPLOYMENT_NAMES)])
    .returns(Ty::Rows(&[
        field("revision", Ty::Int),
        field("replicaset", Ty::Str),
        field("images", Ty::Str).doc("the containers' images, comma-separated"),
        field("replicas", Ty::Int).doc("of this ReplicaSet now"),
        field("current", Ty::Bool).doc("the deployment's current revision"),
        field("change_cause", Ty::Str)
            .doc("the kubernetes.io/change-cause annotation; () without one"),
        field("age", Ty::Int).doc("seconds since creation"),
    ]))
    .doc("The deployment's revisions, oldest first, from its own ReplicaSets.")
    .example(r#"show(k8s.rollout_history("api"))"#);
fn rollout_history(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = call.str("deployment")?;
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
    Ok(rows.into())
}

pub const CAN_I: Primitive = Primitive::read("can_i", can_i)
    .params(&[req("verb", Ty::Str), req("resource", Ty::Str), opt("name", Ty::Str)])
    .returns(Ty::Bool)
    .doc("Whether this identity may do `verb` on `resource` in the handle's namespace, as `kubectl auth can-i` asks the API server (a SelfSubjectAccessReview).\n\
          `resource` is a kind as k8s.get takes it, with an optional subresource: \"deployments/scale\", \"pods/log\". A runbook checks before its first change, so it never stops half-way for lack of a permission.")
    .example(r#"if !k8s.can_i("patch", "deployments/scale") { fail("this identity may not scale deployments"); }"#);
fn can_i(call: &mut Call) -> Result<Dynamic, OpError> {
    let verb = call.str("verb")?;
    let what = call.str("resource")?;
    let name = call.opt_str("name")?;
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
