//! The runbook operations kubectl covered and opsh did not: a generic
//! `patch` (merge, strategic or JSON patch) and `delete` (by name or
//! selector, with UID preconditions and a `max`), `set_resources` (the OOM
//! fix), `autoscale`, and `describe` as data. Every write is planned with
//! a server dry run and carries the resourceVersion or UID it read, so a
//! concurrent change is a conflict, never overwritten.

// `req` below is a declared parameter; a request to the API server is `api::req`.
use super::api::{self, *};
use super::client::{connect, Kube};
use super::DEPLOYMENT_NAMES;
use crate::dispatch::{Call, OpError, Opts, Plan};
use crate::registry::{field, opt, req, Primitive, Ty};
use crate::value::{map_of, to_json};
use rhai::{Array, Dynamic, Map};
use serde_json::{json, Value};

/// Leaf paths that differ between two objects, "spec.replicas" or
/// "spec.template.spec.containers[0].image" -> {from, to} (status and
/// bookkeeping metadata left out).
fn diff(before: &Value, after: &Value) -> Map {
    fn walk(a: &Value, b: &Value, path: &str, out: &mut Map) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    if matches!(
                        p.as_str(),
                        "status"
                            | "metadata.resourceVersion"
                            | "metadata.generation"
                            | "metadata.managedFields"
                    ) {
                        continue;
                    }
                    walk(
                        &x.get(k).cloned().unwrap_or(Value::Null),
                        &y.get(k).cloned().unwrap_or(Value::Null),
                        &p,
                        out,
                    );
                }
            }
            (Value::Array(x), Value::Array(y)) if !x.is_empty() && !y.is_empty() => {
                for n in 0..x.len().max(y.len()) {
                    let (p, q) = (
                        x.get(n).cloned().unwrap_or(Value::Null),
                        y.get(n).cloned().unwrap_or(Value::Null),
                    );
                    walk(&p, &q, &format!("{path}[{n}]"), out);
                }
            }
            _ if a != b => {
                out.insert(path.into(), change(to_dyn(a), to_dyn(b)));
            }
            _ => {}
        }
    }
    let mut out = Map::new();
    walk(before, after, "", &mut out);
    out
}

// ---- patch ----

struct PatchReq {
    kind: String,
    name: String,
    r: ApiRes,
    path: String,
    ctype: Option<&'static str>,
    body: Value,
    k: Kube,
}

fn patch_req(call: &mut Call) -> Result<PatchReq, OpError> {
    let kind = call.str("kind")?;
    let name = call.str("name")?;
    let patch = call.value("patch")?.map(to_json).ok_or_else(|| {
        OpError::bad_input("k8s.patch needs a patch: a map, or an array of JSON patch operations")
    })?;
    let opts = call.opts("opts")?;
    let (k, t) = connect(call)?;
    let r = resolve_kind(call, &k, &t.url, &kind)?;
    let ty = opts.str("type")?.unwrap_or_else(|| {
        if patch.is_array() {
            "json"
        } else {
            "strategic"
        }
        .to_string()
    });
    let ctype = match ty.as_str() {
        "merge" => MERGE,
        "strategic" => STRATEGIC,
        "json" => JSON_PATCH,
        other => {
            return Err(OpError::bad_input(format!(
                "unknown patch type \"{other}\": use \"merge\", \"strategic\" or \"json\""
            )))
        }
    };
    match (ty.as_str(), &patch) {
        ("json", Value::Array(_)) | ("merge" | "strategic", Value::Object(_)) => {}
        _ => {
            return Err(OpError::bad_input(format!(
                "a {ty} patch is {}",
                if ty == "json" {
                    "an array of operations, e.g. [#{op: \"replace\", path: \"/spec/replicas\", value: 2}]"
                } else {
                    "a map, e.g. #{spec: #{replicas: 2}}"
                }
            )))
        }
    }
    let mut path = format!("{}/{}", r.collection(&k.namespace), enc(&name));
    if let Some(sub) = opts.str("subresource")? {
        path.push('/');
        path.push_str(&enc(&sub));
    }
    Ok(PatchReq {
        kind,
        name,
        r,
        path,
        ctype,
        body: patch,
        k,
    })
}

/// The patch conditioned on the resourceVersion read: a concurrent change
/// in between is a 409 rather than silently merged over.
fn conditioned(p: &PatchReq, rv: &str) -> Value {
    let mut body = p.body.clone();
    match &mut body {
        Value::Array(ops) => ops.insert(
            0,
            json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv}),
        ),
        Value::Object(_) => body["metadata"]["resourceVersion"] = json!(rv),
        _ => {}
    }
    body
}

/// The object before and after the patch, conditioned on the version read.
fn run_patch(call: &mut Call, dry: bool) -> Result<(PatchReq, Value, Value), OpError> {
    let p = patch_req(call)?;
    let what = format!("{} {}", p.r.plural, p.name);
    let before = get(call, &p.k, &format!("get {what}"), &p.path)?;
    let after = api::patch(
        call,
        &p.k,
        &format!("patch {what}"),
        &p.path,
        p.ctype,
        &conditioned(&p, s(&before, "metadata.resourceVersion")),
        dry,
    )?;
    Ok((p, before, after))
}

fn plan_patch(call: &mut Call) -> Result<Plan, OpError> {
    let (p, before, after) = run_patch(call, true)?;
    let what = format!("{} {}", p.r.plural, p.name);
    let changes = diff(&before, &after);
    let list: Vec<String> = changes.keys().map(|k| k.to_string()).collect();
    Ok(plan(
        format!(
            "would patch {what} in {}: {} (validated by the server)",
            p.k.namespace,
            if list.is_empty() {
                "no change".to_string()
            } else {
                list.join(", ")
            }
        ),
        map_of([
            ("kind", p.kind.into()),
            ("name", p.name.into()),
            ("diff", Dynamic::from_map(changes)),
        ]),
    ))
}

pub const PATCH: Primitive = Primitive::mutate("patch", plan_patch, patch)
    .params(&[
        req("kind", Ty::Str),
        req("name", Ty::Str),
        req("patch", Ty::OneOf(&[Ty::Map, Ty::Array])),
        opt(
            "opts",
            Ty::Record(&[
                field("type", Ty::Str).doc("\"strategic\" (default for a map, merges lists of containers by name), \"merge\" (RFC 7386) or \"json\" (RFC 6902, default for an array)"),
                field("subresource", Ty::Str).doc("e.g. \"scale\" or \"status\""),
            ]),
        ),
    ])
    .returns(Ty::Record(&[
        field("kind", Ty::Str),
        field("name", Ty::Str),
        field("diff", Ty::Map).doc("changed field path -> #{from, to}"),
        field("resource_version", Ty::Str).doc("after the write"),
    ]))
    .doc("Patch any object the cluster serves, like kubectl patch. The write is conditioned on the resourceVersion read, \
          so a concurrent change is a conflict, not merged over; dry run shows the fields that would change.")
    .example(r#"k8s.patch("deploy", "api", #{spec: #{template: #{spec: #{containers: [#{name: "api", resources: #{limits: #{memory: "512Mi"}}}]}}}})"#);
fn patch(call: &mut Call) -> Result<Dynamic, OpError> {
    let (p, before, after) = run_patch(call, false)?;
    Ok(Dynamic::from_map(map_of([
        ("kind", p.kind.into()),
        ("name", p.name.into()),
        ("diff", Dynamic::from_map(diff(&before, &after))),
        (
            "resource_version",
            s(&after, "metadata.resourceVersion").to_string().into(),
        ),
    ])))
}

// ---- delete ----

struct Victims {
    r: ApiRes,
    k: Kube,
    /// (name, uid) of each object to delete.
    objects: Vec<(String, String)>,
    propagation: String,
    by_selector: bool,
}

fn victims(call: &mut Call) -> Result<Victims, OpError> {
    let kind = call.str("kind")?;
    let target = call.str("name_or_selector")?;
    let opts = call.opts("opts")?;
    let (k, t) = connect(call)?;
    let r = resolve_kind(call, &k, &t.url, &kind)?;
    let by_selector = target.contains(['=', '!', ',']) || target.contains(" in ");
    let propagation = opts
        .str("propagation")?
        .unwrap_or_else(|| "Background".into());
    if !matches!(propagation.as_str(), "Background" | "Foreground" | "Orphan") {
        return Err(OpError::bad_input(format!(
            "propagation \"{propagation}\": use \"Background\", \"Foreground\" or \"Orphan\""
        )));
    }
    let objects: Vec<(String, String)> = if by_selector {
        let list = get(
            call,
            &k,
            &format!("list {}", r.plural),
            &format!(
                "{}?labelSelector={}",
                r.collection(&k.namespace),
                enc(&target)
            ),
        )?;
        items(&list)
            .iter()
            .map(|o| {
                (
                    s(o, "metadata.name").to_string(),
                    s(o, "metadata.uid").to_string(),
                )
            })
            .collect()
    } else {
        let o = get(
            call,
            &k,
            &format!("get {} {target}", r.plural),
            &format!("{}/{}", r.collection(&k.namespace), enc(&target)),
        )?;
        let uid = opts
            .str("uid")?
            .unwrap_or_else(|| s(&o, "metadata.uid").to_string());
        vec![(target.clone(), uid)]
    };
    let max = opts.int("max")?.unwrap_or(1);
    if objects.len() as i64 > max {
        let names: Vec<&str> = objects.iter().map(|(n, _)| n.as_str()).collect();
        return Err(OpError::refused(format!(
            "{target} selects {} {} in {}, more than max {max}: {}",
            objects.len(),
            r.plural,
            k.namespace,
            names.join(", ")
        ))
        .with_hint(format!(
            "narrow the selector, or pass #{{max: {}}} if all of them should go",
            objects.len()
        )));
    }
    if objects.is_empty() {
        return Err(OpError::failed(format!(
            "no {} match {target} in namespace {}",
            r.plural, k.namespace
        )));
    }
    Ok(Victims {
        r,
        k,
        objects,
        propagation,
        by_selector,
    })
}

fn delete_each(call: &mut Call, v: &Victims, dry: bool) -> Result<(), OpError> {
    for (name, uid) in &v.objects {
        let mut path = format!("{}/{}", v.r.collection(&v.k.namespace), enc(name));
        if dry {
            path.push_str("?dryRun=All");
        }
        api::req(
            call,
            &v.k,
            &format!(
                "delete {} {name}{}",
                v.r.plural,
                if dry { " (server dry run)" } else { "" }
            ),
            "DELETE",
            &path,
            Some("application/json"),
            Some(
                &json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": v.propagation, "preconditions": {"uid": uid}}),
            ),
        )?;
    }
    Ok(())
}

fn deleted_map(v: &Victims) -> Map {
    let names: Array = v.objects.iter().map(|(n, _)| n.clone().into()).collect();
    let uids: Array = v.objects.iter().map(|(_, u)| u.clone().into()).collect();
    map_of([
        ("kind", v.r.kind.clone().into()),
        ("deleted", names.into()),
        ("uids", uids.into()),
    ])
}

fn plan_delete(call: &mut Call) -> Result<Plan, OpError> {
    let v = victims(call)?;
    delete_each(call, &v, true)?;
    let names: Vec<String> = v
        .objects
        .iter()
        .map(|(n, u)| format!("{n} (uid {u})"))
        .collect();
    Ok(plan(
        format!(
            "would delete {} {} in {}{}: {}",
            v.objects.len(),
            v.r.plural,
            v.k.namespace,
            if v.by_selector {
                " matching the selector"
            } else {
                ""
            },
            names.join(", ")
        ),
        deleted_map(&v),
    ))
}

pub const DELETE: Primitive = Primitive::mutate("delete", plan_delete, delete)
    .params(&[
        req("kind", Ty::Str),
        req("name_or_selector", Ty::Str),
        opt(
            "opts",
            Ty::Record(&[
                field("max", Ty::Int).doc("refuse when more objects than this match; default 1"),
                field("uid", Ty::Str).doc("by name: the exact object to delete; default the one there now"),
                field("propagation", Ty::Str).doc("\"Background\" (default), \"Foreground\" or \"Orphan\" for its dependents"),
            ]),
        ),
    ])
    .returns(Ty::Record(&[
        field("kind", Ty::Str),
        field("deleted", Ty::List(&Ty::Str)).doc("names"),
        field("uids", Ty::List(&Ty::Str)),
    ]))
    .doc("Delete objects of any kind by name or label selector (\"app=api,tier!=db\"). Each delete carries the UID read, \
          so an object recreated under the same name meanwhile is never deleted; more matches than max is refused before anything is deleted.")
    .example(r#"k8s.delete("jobs", "app=nightly-report", #{max: 5})"#);
fn delete(call: &mut Call) -> Result<Dynamic, OpError> {
    let v = victims(call)?;
    delete_each(call, &v, false)?;
    Ok(Dynamic::from_map(deleted_map(&v)))
}

// ---- set_resources ----

fn resources_patch(call: &mut Call) -> Result<(String, Kube, Value, Value, String), OpError> {
    let name = call.str("deployment")?;
    let opts = call.opts("opts")?;
    let (k, _) = connect(call)?;
    let d = get_deployment(call, &k, &name)?;
    let containers: Vec<String> = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(String::from))
        .collect();
    let container = match opts.str("container")? {
        Some(c) if containers.contains(&c) => c,
        Some(c) => {
            return Err(OpError::bad_input(format!(
                "deployment {name} has no container {c}; it has {}",
                containers.join(", ")
            )))
        }
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return Err(OpError::bad_input(format!(
                "deployment {name} has {} containers ({}): say which with #{{container: \"...\"}}",
                containers.len(),
                containers.join(", ")
            )))
        }
    };
    let mut res = json!({});
    for key in ["requests", "limits"] {
        if let Some(m) = opts.map(key)? {
            for (r, v) in m {
                if !matches!(r.as_str(), "cpu" | "memory" | "ephemeral-storage") {
                    return Err(OpError::bad_input(format!(
                        "{key}.{r}: only cpu, memory and ephemeral-storage are set here"
                    )));
                }
                let v = to_json(&v);
                let q = match v {
                    Value::String(s) => s,
                    Value::Number(n) => n.to_string(),
                    other => {
                        return Err(OpError::bad_input(format!(
                            "{key}.{r}: a quantity like \"512Mi\" or \"250m\", got {other}"
                        )))
                    }
                };
                res[key][r.as_str()] = json!(q);
            }
        }
    }
    if res.as_object().is_some_and(|m| m.is_empty()) {
        return Err(OpError::bad_input(
            "nothing to set: give #{requests: #{...}} and/or #{limits: #{...}}",
        ));
    }
    let body = json!({
        "metadata": {"resourceVersion": d["metadata"]["resourceVersion"]},
        "spec": {"template": {"spec": {"containers": [{"name": container, "resources": res}]}}},
    });
    Ok((name, k, d, body, container))
}

/// The deployment's name, namespace and container, and the diff the patch makes.
fn run_set_resources(call: &mut Call, dry: bool) -> Result<(String, Kube, String, Map), OpError> {
    let (name, k, d, body, container) = resources_patch(call)?;
    let path = deploy_path(&k.namespace, &enc(&name));
    let what = format!("set resources of {name}");
    let after = api::patch(call, &k, &what, &path, STRATEGIC, &body, dry)?;
    let changes = diff(&d, &after);
    Ok((name, k, container, changes))
}

fn plan_set_resources(call: &mut Call) -> Result<Plan, OpError> {
    let (name, k, container, changes) = run_set_resources(call, true)?;
    Ok(plan(
        format!("would set the resources of container {container} of deployment {name} in {} (a new rollout; validated by the server)", k.namespace),
        map_of([("deployment", name.into()), ("container", container.into()), ("diff", Dynamic::from_map(changes))]),
    ))
}

pub const SET_RESOURCES: Primitive = Primitive::mutate("set_resources", plan_set_resources, set_resources)
    .params(&[
        req("deployment", Ty::Str).names(DEPLOYMENT_NAMES),
        req(
            "opts",
            Ty::Record(&[
                field("container", Ty::Str).doc("which container; default the only one"),
                field("requests", Ty::Map).doc("#{cpu: \"250m\", memory: \"256Mi\"}"),
                field("limits", Ty::Map).doc("#{memory: \"512Mi\"}"),
            ]),
        ),
    ])
    .returns(Ty::Record(&[
        field("deployment", Ty::Str),
        field("container", Ty::Str),
        field("diff", Ty::Map).doc("changed field path -> #{from, to}"),
    ]))
    .doc("Set a container's resource requests and limits, like kubectl set resources (the OOM fix), as a strategic \
          merge on the container, conditioned on the resourceVersion read. Starts a rollout; follow it with k8s.rollout_status.")
    .example(r#"k8s.set_resources("worker", #{limits: #{memory: "512Mi"}, requests: #{memory: "384Mi"}})"#);
fn set_resources(call: &mut Call) -> Result<Dynamic, OpError> {
    let (name, _, container, changes) = run_set_resources(call, false)?;
    Ok(Dynamic::from_map(map_of([
        ("deployment", name.into()),
        ("container", container.into()),
        ("diff", Dynamic::from_map(changes)),
    ])))
}

// ---- autoscale ----

fn autoscale_body(call: &mut Call) -> Result<(String, Kube, Value, Opts), OpError> {
    let name = call.str("deployment")?;
    let opts = call.opts("opts")?;
    let max = opts
        .int("max")?
        .ok_or_else(|| OpError::bad_input("k8s.autoscale needs #{max: N}"))?;
    let min = opts.int("min")?.unwrap_or(1);
    let cpu = opts.int("cpu_percent")?.unwrap_or(80);
    if min < 1 || max < min || !(1..=1000).contains(&cpu) {
        return Err(OpError::bad_input(format!(
            "min {min}, max {max}, cpu_percent {cpu}: need 1 <= min <= max and a cpu_percent of 1 to 1000"
        )));
    }
    let (k, _) = connect(call)?;
    get_deployment(call, &k, &name)?;
    let hpa = json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                 "minReplicas": min, "maxReplicas": max,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu}}}]},
    });
    Ok((name, k, hpa, opts))
}

fn hpa_collection(k: &Kube) -> String {
    format!(
        "/apis/autoscaling/v2/namespaces/{}/horizontalpodautoscalers",
        k.namespace
    )
}

/// Creates the autoscaler (`dry`: the server validates it without storing).
fn run_autoscale(call: &mut Call, dry: bool) -> Result<(String, Kube, Value), OpError> {
    let (name, k, hpa, _) = autoscale_body(call)?;
    let what = if dry {
        format!("autoscale {name} (server dry run)")
    } else {
        format!("autoscale {name}")
    };
    api::req(
        call,
        &k,
        &what,
        "POST",
        &with_dry(&hpa_collection(&k), dry),
        Some("application/json"),
        Some(&hpa),
    )?;
    Ok((name, k, hpa))
}

fn plan_autoscale(call: &mut Call) -> Result<Plan, OpError> {
    let (name, k, hpa) = run_autoscale(call, true)?;
    Ok(plan(
        format!(
            "would create HorizontalPodAutoscaler {name} in {}: {} to {} replicas at {}% CPU (validated by the server)",
            k.namespace, hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"], hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"]
        ),
        map_of([("hpa", name.into())]),
    ))
}

pub const AUTOSCALE: Primitive = Primitive::mutate("autoscale", plan_autoscale, autoscale)
    .params(&[
        req("deployment", Ty::Str).names(DEPLOYMENT_NAMES),
        req(
            "opts",
            Ty::Record(&[
                field("min", Ty::Int).doc("default 1"),
                field("max", Ty::Int),
                field("cpu_percent", Ty::Int).doc("target average CPU utilization; default 80"),
            ]),
        ),
    ])
    .returns(Ty::Record(&[field("hpa", Ty::Str), field("min", Ty::Int), field("max", Ty::Int), field("cpu_percent", Ty::Int)]))
    .doc("Create a HorizontalPodAutoscaler (autoscaling/v2) for a deployment, like kubectl autoscale. \
          An existing one is a conflict: change it with k8s.patch_hpa.")
    .example(r#"k8s.autoscale("api", #{min: 2, max: 10, cpu_percent: 70})"#);
fn autoscale(call: &mut Call) -> Result<Dynamic, OpError> {
    let (name, _, hpa) = run_autoscale(call, false)?;
    Ok(Dynamic::from_map(map_of([
        ("hpa", name.into()),
        ("min", i(&hpa, "spec.minReplicas").into()),
        ("max", i(&hpa, "spec.maxReplicas").into()),
        (
            "cpu_percent",
            hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"]
                .as_i64()
                .unwrap_or(80)
                .into(),
        ),
    ])))
}

// ---- describe ----

pub const DESCRIBE: Primitive = Primitive::read("describe", describe)
    .params(&[req("kind", Ty::Str), req("name", Ty::Str)])
    .returns(Ty::Record(&[
        field("object", Ty::Map).doc("the object, managedFields dropped"),
        field("owners", Ty::List(&Ty::Str)).doc("its owner chain upwards, e.g. [\"ReplicaSet/api-7d9\", \"Deployment/api\"]"),
        field("events", Ty::List(&Ty::Map)).doc("#{type, reason, message, count, last_seen} about it, newest last"),
        field("pods", Ty::List(&Ty::Str)).doc("for a workload: the pods its selector picks; () otherwise"),
    ]))
    .doc("What kubectl describe shows, as data: the object, its owner chain, the events about it, and a workload's pods.")
    .example(r#"let d = k8s.describe("pod", "worker-abc"); d.events.filter(|e| e.type == "Warning")"#);
fn describe(call: &mut Call) -> Result<Dynamic, OpError> {
    let kind = call.str("kind")?;
    let name = call.str("name")?;
    let (k, t) = connect(call)?;
    let r = resolve_kind(call, &k, &t.url, &kind)?;
    let o = get(
        call,
        &k,
        &format!("get {} {name}", r.plural),
        &format!("{}/{}", r.collection(&k.namespace), enc(&name)),
    )?;
    // Owners, upwards, as far as they can be read.
    let mut owners = Array::new();
    let mut cur = o.clone();
    for _ in 0..5 {
        let Some(or) = cur["metadata"]["ownerReferences"]
            .as_array()
            .and_then(|a| a.first())
            .cloned()
        else {
            break;
        };
        let (okind, oname) = (s(&or, "kind").to_string(), s(&or, "name").to_string());
        owners.push(format!("{okind}/{oname}").into());
        let Ok(ores) = resolve_kind(call, &k, &t.url, &okind) else {
            break;
        };
        match get(
            call,
            &k,
            &format!("get {okind} {oname}"),
            &format!("{}/{}", ores.collection(&k.namespace), enc(&oname)),
        ) {
            Ok(next) => cur = next,
            Err(_) => break,
        }
    }
    let uid = s(&o, "metadata.uid");
    let ev_path = format!(
        "{}?fieldSelector={}",
        core(&k.namespace, "events"),
        enc(&format!("involvedObject.uid={uid}"))
    );
    let mut events: Vec<Value> = items(&get(call, &k, "list events", &ev_path)?)
        .into_iter()
        .filter(|e| s(e, "involvedObject.uid") == uid)
        .collect();
    events.sort_by_key(|e| s(e, "lastTimestamp").to_string());
    let events: Array = events
        .iter()
        .map(|e| {
            Dynamic::from_map(map_of([
                ("type", s(e, "type").to_string().into()),
                ("reason", s(e, "reason").to_string().into()),
                ("message", s(e, "message").to_string().into()),
                ("count", e["count"].as_i64().unwrap_or(1).into()),
                ("last_seen", s(e, "lastTimestamp").to_string().into()),
            ]))
        })
        .collect();
    let mut out = map_of([
        ("object", to_dyn(&tidy(o.clone()))),
        ("owners", owners.into()),
        ("events", events.into()),
    ]);
    if let Some(sel) = o["spec"]["selector"]["matchLabels"].as_object() {
        let sel = sel
            .iter()
            .map(|(a, b)| format!("{a}={}", b.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(",");
        let pods: Array = super::reads::list_pods(call, &k, &sel)?
            .iter()
            .map(|p| s(p, "metadata.name").to_string().into())
            .collect();
        out.insert("pods".into(), pods.into());
    }
    Ok(Dynamic::from_map(out))
}
