//! Mutations of other objects: delete a pod (uid precondition), HPA
//! bounds, a Job from a CronJob, Secret keys, a Service's selector. Plans
//! validate with `dryRun=All`; writes carry preconditions.

// `req` below is a declared parameter; a request to the API server is `api::req`.
use super::api::{self, *};
use super::client::{connect, Kube};
use super::reads::{images_of, list_pods};
use super::{CRONJOB_NAMES, HPA_NAMES, POD_NAMES};
use crate::dispatch::said;
use crate::dispatch::{Call, OpError, Plan};
use crate::registry::{field, opt, req, Primitive, Ty};
use crate::value::map_of;
use rhai::{Array, Dynamic, Map};
use serde_json::{json, Value};

// ---- delete pod ----

fn pod_uid(call: &mut Call) -> Result<(String, String, Value, Kube), OpError> {
    let name = call.str("pod")?;
    let opts = call.opts("opts")?;
    let (k, _) = connect(call)?;
    let pod = get(
        call,
        &k,
        &format!("get pod {name}"),
        &format!("{}/{}", core(&k.namespace, "pods"), enc(&name)),
    )?;
    let uid = opts
        .str("uid")?
        .unwrap_or_else(|| s(&pod, "metadata.uid").to_string());
    Ok((name, uid, pod, k))
}

/// The UID precondition failed: the name now belongs to another pod (its
/// controller replaced the one meant). Say so in the headline.
fn replaced(name: &str, uid: &str, e: OpError) -> OpError {
    let Some(cause) = e
        .cause
        .as_deref()
        .filter(|c| c.contains("Precondition failed: UID"))
    else {
        return e;
    };
    let now = cause
        .rsplit("UID in object meta:")
        .next()
        .map(|u| u.trim().trim_end_matches('.').to_string())
        .filter(|u| !u.is_empty() && u.len() < 64)
        .unwrap_or_else(|| "another uid".into());
    OpError::failed(format!(
        "delete pod {name}: a different pod now has that name (uid {now}, not {uid}); nothing was deleted"
    ))
    .with_cause(cause.to_string())
    .with_hint("the pod meant is gone (replaced by its controller?); list k8s.pods() and decide whether the new one should go too")
}

fn delete_body(uid: &str) -> Value {
    json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background", "preconditions": {"uid": uid}})
}

fn plan_delete_pod(call: &mut Call) -> Result<Plan, OpError> {
    let (name, uid, pod, k) = pod_uid(call)?;
    let path = format!("{}/{}", core(&k.namespace, "pods"), enc(&name));
    api::req(
        call,
        &k,
        &format!("delete pod {name} (server dry run)"),
        "DELETE",
        &format!("{path}?dryRun=All"),
        Some("application/json"),
        Some(&delete_body(&uid)),
    )
    .map_err(|e| replaced(&name, &uid, e))?;
    let owner = pod["metadata"]["ownerReferences"][0]["name"]
        .as_str()
        .unwrap_or("");
    let after = if owner.is_empty() {
        "it has no owner, so nothing replaces it".to_string()
    } else {
        format!("{owner} will start a replacement")
    };
    Ok(plan(
        format!(
            "would delete pod {name} (uid {uid}) in {}; {after}",
            k.namespace
        ),
        map_of([
            ("pod", name.into()),
            ("uid", uid.into()),
            ("owner", owner.to_string().into()),
        ]),
    ))
}

pub const DELETE_POD: Primitive = Primitive::mutate("delete_pod", plan_delete_pod, delete_pod)
    .params(&[
        req("pod", Ty::Str).names(POD_NAMES),
        opt(
            "opts",
            Ty::Record(&[field("uid", Ty::Str)
                .doc("the exact pod to delete, e.g. from k8s.pods(); default: the one there now")]),
        ),
    ])
    .returns(Ty::Record(&[
        field("pod", Ty::Str),
        field("uid", Ty::Str),
        field("node", Ty::Str).doc("where it ran"),
    ]))
    .says(says_delete_pod)
    .doc("Delete a pod with a UID precondition, so a replacement with the same name is never deleted.")
    .example(r#"let p = k8s.pods(#{selector: "app=api"})[0]; k8s.delete_pod(p.name, #{uid: p.uid})"#);
fn delete_pod(call: &mut Call) -> Result<Dynamic, OpError> {
    let (name, uid, pod, k) = pod_uid(call)?;
    crate::policy::pods(call, 1, &format!("k8s.delete_pod of {name}"))?;
    let path = format!("{}/{}", core(&k.namespace, "pods"), enc(&name));
    api::req(
        call,
        &k,
        &format!("delete pod {name}"),
        "DELETE",
        &path,
        Some("application/json"),
        Some(&delete_body(&uid)),
    )
    .map_err(|e| replaced(&name, &uid, e))?;
    Ok(Dynamic::from_map(map_of([
        ("pod", name.into()),
        ("uid", uid.into()),
        ("node", s(&pod, "spec.nodeName").to_string().into()),
    ])))
}

// ---- hpa ----

fn hpa_change(call: &mut Call) -> Result<(String, Kube, Value, Value, Map), OpError> {
    let name = call.str("name")?;
    let opts = call.opts("opts")?;
    let (k, _) = connect(call)?;
    let path = format!(
        "/apis/autoscaling/v2/namespaces/{}/horizontalpodautoscalers/{}",
        k.namespace,
        enc(&name)
    );
    let h = get(call, &k, &format!("get hpa {name}"), &path)?;
    let cur_min = h["spec"]["minReplicas"].as_i64().unwrap_or(1);
    let cur_max = i(&h, "spec.maxReplicas");
    let min = opts.int("min")?.unwrap_or(cur_min);
    let max = opts.int("max")?.unwrap_or(cur_max);
    if !opts.contains_key("min") && !opts.contains_key("max") {
        return Err(OpError::bad_input("give #{min: N} and/or #{max: N}"));
    }
    if min < 1 || max < min {
        return Err(OpError::bad_input(format!(
            "need 1 <= min <= max, got min {min}, max {max}"
        )));
    }
    let mut diff = Map::new();
    if min != cur_min {
        diff.insert("spec.minReplicas".into(), change(cur_min, min));
    }
    if max != cur_max {
        diff.insert("spec.maxReplicas".into(), change(cur_max, max));
    }
    let body = json!({"metadata": {"resourceVersion": h["metadata"]["resourceVersion"]}, "spec": {"minReplicas": min, "maxReplicas": max}});
    Ok((name, k, Value::String(path), body, diff))
}

fn plan_patch_hpa(call: &mut Call) -> Result<Plan, OpError> {
    let (name, k, path, body, diff) = hpa_change(call)?;
    api::req(
        call,
        &k,
        &format!("patch hpa {name} (server dry run)"),
        "PATCH",
        &with_dry(path.as_str().unwrap_or(""), true),
        MERGE,
        Some(&body),
    )?;
    let what = if diff.is_empty() {
        "no change".to_string()
    } else {
        diff.iter()
            .map(|(f, c)| format!("{f} {}", c.to_string().replace("#{", "").replace('}', "")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(plan(
        format!("would patch hpa {name} in {}: {what}", k.namespace),
        map_of([("hpa", name.into()), ("diff", Dynamic::from_map(diff))]),
    ))
}

pub const PATCH_HPA: Primitive = Primitive::mutate("patch_hpa", plan_patch_hpa, patch_hpa)
    .params(&[
        req("name", Ty::Str).names(HPA_NAMES),
        req(
            "opts",
            Ty::Record(&[
                field("min", Ty::Int).doc("new minReplicas; default: unchanged"),
                field("max", Ty::Int).doc("new maxReplicas; default: unchanged"),
            ]),
        ),
    ])
    .returns(Ty::Record(&[
        field("hpa", Ty::Str),
        field("min", Ty::Int).doc("after the change"),
        field("max", Ty::Int).doc("after the change"),
        field("changed", Ty::Bool).doc("false when it already had these bounds"),
    ]))
    .says(says_patch_hpa)
    .doc("Change an HPA's bounds: min, max or both. Refuses min > max.")
    .example(r#"k8s.patch_hpa("api", #{min: 4, max: 20})"#);
fn patch_hpa(call: &mut Call) -> Result<Dynamic, OpError> {
    let (name, k, path, body, diff) = hpa_change(call)?;
    let h = api::req(
        call,
        &k,
        &format!("patch hpa {name}"),
        "PATCH",
        &with_dry(path.as_str().unwrap_or(""), false),
        MERGE,
        Some(&body),
    )?;
    Ok(Dynamic::from_map(map_of([
        ("hpa", name.into()),
        ("min", h["spec"]["minReplicas"].as_i64().unwrap_or(1).into()),
        ("max", i(&h, "spec.maxReplicas").into()),
        ("changed", (!diff.is_empty()).into()),
    ])))
}

// ---- job from cronjob ----

fn job_from(call: &mut Call) -> Result<(String, Kube, Value), OpError> {
    let cj_name = call.str("cronjob")?;
    let job_name = call.opt_str("name")?;
    let (k, _) = connect(call)?;
    let cj = get(
        call,
        &k,
        &format!("get cronjob {cj_name}"),
        &format!(
            "/apis/batch/v1/namespaces/{}/cronjobs/{}",
            k.namespace,
            enc(&cj_name)
        ),
    )?;
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut base = cj_name.clone();
    base.truncate(40);
    let name = job_name.unwrap_or_else(|| format!("{base}-manual-{}", secs % 1_000_000));
    let tmpl = &cj["spec"]["jobTemplate"];
    let mut annotations = tmpl["metadata"]["annotations"].clone();
    if !annotations.is_object() {
        annotations = json!({});
    }
    annotations["cronjob.kubernetes.io/instantiate"] = json!("manual");
    let job = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": k.namespace, "labels": tmpl["metadata"]["labels"], "annotations": annotations,
                     "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": cj_name, "uid": cj["metadata"]["uid"], "controller": true}]},
        "spec": tmpl["spec"],
    });
    Ok((cj_name, k, job))
}

fn plan_create_job_from(call: &mut Call) -> Result<Plan, OpError> {
    let (cj, k, job) = job_from(call)?;
    api::req(
        call,
        &k,
        &format!("create job from {cj} (server dry run)"),
        "POST",
        &with_dry(
            &format!("/apis/batch/v1/namespaces/{}/jobs", k.namespace),
            true,
        ),
        Some("application/json"),
        Some(&job),
    )?;
    let name = s(&job, "metadata.name").to_string();
    Ok(plan(
        format!(
            "would create job {name} in {} from cronjob {cj} ({})",
            k.namespace,
            images_of(&job["spec"]["template"])
        ),
        map_of([("job", name.into()), ("cronjob", cj.into())]),
    ))
}

pub const CREATE_JOB_FROM: Primitive =
    Primitive::mutate("create_job_from", plan_create_job_from, create_job_from)
        .params(&[req("cronjob", Ty::Str).names(CRONJOB_NAMES), opt("name", Ty::Str)])
        .returns(Ty::Record(&[
            field("job", Ty::Str),
            field("cronjob", Ty::Str),
            field("uid", Ty::Str).doc("the Job's"),
        ]))
        .says(says_create_job)
        .doc("Run a CronJob now: a Job from its template, owned by it (as kubectl create job --from=cronjob/NAME).\n\
              The Job is named `name`, by default CRONJOB-manual-N.")
        .example(r#"k8s.create_job_from("nightly-report")"#);
fn create_job_from(call: &mut Call) -> Result<Dynamic, OpError> {
    let (cj, k, job) = job_from(call)?;
    let j = api::req(
        call,
        &k,
        &format!("create job from {cj}"),
        "POST",
        &with_dry(
            &format!("/apis/batch/v1/namespaces/{}/jobs", k.namespace),
            false,
        ),
        Some("application/json"),
        Some(&job),
    )?;
    Ok(Dynamic::from_map(map_of([
        ("job", s(&j, "metadata.name").to_string().into()),
        ("cronjob", cj.into()),
        ("uid", s(&j, "metadata.uid").to_string().into()),
    ])))
}

// ---- secrets ----

struct SecretChange {
    exists: bool,
    added: Vec<String>,
    changed: Vec<String>,
    unchanged: Vec<String>,
    values: serde_json::Map<String, Value>,
    rv: Value,
}

fn secret_change(call: &mut Call) -> Result<(String, Kube, SecretChange), OpError> {
    let name = call.str("name")?;
    let vars = call.opts("secrets")?;
    let mut values = serde_json::Map::new();
    for (key, v) in vars.iter() {
        let val = v.to_string();
        // Registered first: from here on no output, error or audit line shows it.
        crate::redact::register_secret(&val);
        values.insert(key.to_string(), Value::String(val));
    }
    if values.is_empty() {
        return Err(OpError::bad_input(
            "give the keys to set as a map, e.g. #{DB_PASSWORD: new_password}",
        ));
    }
    let (k, _) = connect(call)?;
    let path = format!("{}/{}", core(&k.namespace, "secrets"), enc(&name));
    let (cur, exists) =
        match call.block_on(async { Ok(k.request("GET", &path, None, None).await) })? {
            Ok(v) => (v, true),
            Err(e) if e.code == 404 => (Value::Null, false),
            Err(e) => {
                return Err(super::client::unreachable_or(
                    &k,
                    &format!("get secret {name}"),
                    e,
                ))
            }
        };
    let mut ch = SecretChange {
        exists,
        added: vec![],
        changed: vec![],
        unchanged: vec![],
        values,
        rv: cur["metadata"]["resourceVersion"].clone(),
    };
    for (key, v) in &ch.values {
        match cur["data"][key.as_str()].as_str() {
            None => ch.added.push(key.clone()),
            Some(old) if old == crate::value::b64(v.as_str().unwrap_or("").as_bytes()) => {
                ch.unchanged.push(key.clone())
            }
            Some(_) => ch.changed.push(key.clone()),
        }
    }
    Ok((name, k, ch))
}

fn secret_request(
    call: &Call,
    k: &Kube,
    name: &str,
    ch: &SecretChange,
    dry: bool,
) -> Result<(), OpError> {
    let what = format!(
        "set secret {name}{}",
        if dry { " (server dry run)" } else { "" }
    );
    if ch.exists {
        let body = json!({"metadata": {"resourceVersion": ch.rv}, "stringData": ch.values});
        api::req(
            call,
            k,
            &what,
            "PATCH",
            &with_dry(
                &format!("{}/{}", core(&k.namespace, "secrets"), enc(name)),
                dry,
            ),
            MERGE,
            Some(&body),
        )?;
    } else {
        let body = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque", "stringData": ch.values});
        api::req(
            call,
            k,
            &what,
            "POST",
            &with_dry(&core(&k.namespace, "secrets"), dry),
            Some("application/json"),
            Some(&body),
        )?;
    }
    Ok(())
}

fn keys(v: &[String]) -> Dynamic {
    v.iter()
        .cloned()
        .map(Dynamic::from)
        .collect::<Array>()
        .into()
}

fn plan_secret_set(call: &mut Call) -> Result<Plan, OpError> {
    let (name, k, ch) = secret_change(call)?;
    if !ch.added.is_empty() || !ch.changed.is_empty() {
        secret_request(call, &k, &name, &ch, true)?;
    }
    let verb = if ch.exists { "update" } else { "create" };
    Ok(plan(
        format!("would {verb} secret {name} in {}: added [{}], changed [{}], unchanged [{}] (values not shown)", k.namespace, ch.added.join(", "), ch.changed.join(", "), ch.unchanged.join(", ")),
        map_of([("secret", name.into()), ("added", keys(&ch.added)), ("changed", keys(&ch.changed)), ("unchanged", keys(&ch.unchanged))]),
    ))
}

pub const SECRET_SET: Primitive = Primitive::mutate("secret_set", plan_secret_set, secret_set)
    .params(&[req("name", Ty::Str), req("secrets", Ty::Map)])
    .returns(Ty::Record(&[
        field("secret", Ty::Str),
        field("created", Ty::Bool).doc("the Secret did not exist before"),
        field("added", Ty::List(&Ty::Str)).doc("keys"),
        field("changed", Ty::List(&Ty::Str)).doc("keys"),
        field("unchanged", Ty::List(&Ty::Str)).doc("keys that already had the value"),
    ]))
    .says(says_secret_set)
    .doc("Set keys of a Secret (created when missing). Values are never printed, audited or shown in errors; the result lists keys only.")
    .example(r#"k8s.secret_set("api-credentials", #{DB_PASSWORD: env("NEW_DB_PASSWORD")}); k8s.rollout_restart("api")"#);
fn secret_set(call: &mut Call) -> Result<Dynamic, OpError> {
    let (name, k, ch) = secret_change(call)?;
    if !ch.added.is_empty() || !ch.changed.is_empty() {
        secret_request(call, &k, &name, &ch, false)?;
    }
    Ok(Dynamic::from_map(map_of([
        ("secret", name.into()),
        ("created", (!ch.exists).into()),
        ("added", keys(&ch.added)),
        ("changed", keys(&ch.changed)),
        ("unchanged", keys(&ch.unchanged)),
    ])))
}

// ---- service selector ----

fn selector_change(call: &mut Call) -> Result<(String, Kube, Value, Value, Value, usize), OpError> {
    let name = call.str("service")?;
    let sel = call.opts("selector")?;
    let opts = call.opts("opts")?;
    if sel.is_empty() {
        return Err(OpError::bad_input(
            "give the new selector as a map, e.g. #{app: \"web\", version: \"green\"}",
        ));
    }
    let (k, _) = connect(call)?;
    let svc = get(
        call,
        &k,
        &format!("get service {name}"),
        &format!("{}/{}", core(&k.namespace, "services"), enc(&name)),
    )?;
    let to: serde_json::Map<String, Value> = sel
        .iter()
        .map(|(a, b)| (a.to_string(), Value::String(b.to_string())))
        .collect();
    let sel_text = to
        .iter()
        .map(|(a, b)| format!("{a}={}", b.as_str().unwrap_or("")))
        .collect::<Vec<_>>()
        .join(",");
    let ready = list_pods(call, &k, &sel_text)?
        .iter()
        .filter(|p| {
            p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .count();
    if ready == 0 && !opts.bool("allow_empty")? {
        return Err(OpError::refused(format!("no ready pod matches {sel_text} in {}: service {name} would send traffic nowhere", k.namespace))
            .with_hint("check the labels with k8s.pods(#{selector: ...}), or pass #{allow_empty: true} if that is intended"));
    }
    let from = svc["spec"]["selector"].clone();
    let patch = json!([
        {"op": "replace", "path": "/metadata/resourceVersion", "value": svc["metadata"]["resourceVersion"]},
        {"op": "replace", "path": "/spec/selector", "value": to},
    ]);
    Ok((name, k, from, Value::Object(to), patch, ready))
}

fn sel_string(v: &Value) -> String {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(a, b)| format!("{a}={}", b.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn plan_patch_service_selector(call: &mut Call) -> Result<Plan, OpError> {
    let (name, k, from, to, patch, ready) = selector_change(call)?;
    api::req(
        call,
        &k,
        &format!("patch service {name} (server dry run)"),
        "PATCH",
        &with_dry(
            &format!("{}/{}", core(&k.namespace, "services"), enc(&name)),
            true,
        ),
        JSON_PATCH,
        Some(&patch),
    )?;
    Ok(plan(
        format!(
            "would switch service {name} from {} to {} ({ready} ready pods match)",
            sel_string(&from),
            sel_string(&to)
        ),
        map_of([
            ("service", name.into()),
            ("ready_pods", (ready as i64).into()),
            (
                "diff",
                Dynamic::from_map(map_of([(
                    "spec.selector",
                    change(sel_string(&from), sel_string(&to)),
                )])),
            ),
        ]),
    ))
}

pub const PATCH_SERVICE_SELECTOR: Primitive = Primitive::mutate(
    "patch_service_selector",
    plan_patch_service_selector,
    patch_service_selector,
)
.params(&[
    req("service", Ty::Str),
    req("selector", Ty::Map),
    opt(
        "opts",
        Ty::Record(&[field("allow_empty", Ty::Bool)
            .doc("true: switch even when no ready pod matches the new selector")]),
    ),
])
.returns(Ty::Record(&[
    field("service", Ty::Str),
    field("from", Ty::Str).doc("the selector before, \"key=value,...\""),
    field("to", Ty::Str).doc("the selector now, \"key=value,...\""),
    field("ready_pods", Ty::Int).doc("ready pods the new selector matches"),
]))
.says(says_selector)
.doc("Point a Service at other pods (a blue/green switch). Refuses a selector no ready pod matches unless #{allow_empty: true}.")
.example(r#"k8s.patch_service_selector("web", #{app: "web", version: "green"})"#);
fn patch_service_selector(call: &mut Call) -> Result<Dynamic, OpError> {
    let (name, k, from, to, patch, ready) = selector_change(call)?;
    api::req(
        call,
        &k,
        &format!("patch service {name}"),
        "PATCH",
        &with_dry(
            &format!("{}/{}", core(&k.namespace, "services"), enc(&name)),
            false,
        ),
        JSON_PATCH,
        Some(&patch),
    )?;
    Ok(Dynamic::from_map(map_of([
        ("service", name.into()),
        ("from", sel_string(&from).into()),
        ("to", sel_string(&to).into()),
        ("ready_pods", (ready as i64).into()),
    ])))
}

fn says_delete_pod(_: &Call, r: &Dynamic) -> String {
    format!(
        "deleted pod {} (uid {}, node {})",
        said(r, "pod"),
        said(r, "uid"),
        said(r, "node")
    )
}

fn says_patch_hpa(_: &Call, r: &Dynamic) -> String {
    format!(
        "set hpa {} to min {} max {}",
        said(r, "hpa"),
        said(r, "min"),
        said(r, "max")
    )
}

fn says_create_job(_: &Call, r: &Dynamic) -> String {
    format!(
        "created job {} from cronjob {}",
        said(r, "job"),
        said(r, "cronjob")
    )
}

fn says_secret_set(_: &Call, r: &Dynamic) -> String {
    let keys = |k: &str| {
        r.read_lock::<rhai::Map>()
            .and_then(|m| {
                m.get(k).and_then(|v| {
                    v.read_lock::<rhai::Array>().map(|a| {
                        a.iter()
                            .map(|x| x.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                })
            })
            .unwrap_or_default()
    };
    format!(
        "set secret {}: added [{}], changed [{}] (values not shown)",
        said(r, "secret"),
        keys("added"),
        keys("changed")
    )
}

fn says_selector(_: &Call, r: &Dynamic) -> String {
    format!(
        "switched service {} from {} to {} ({} ready pods)",
        said(r, "service"),
        said(r, "from"),
        said(r, "to"),
        said(r, "ready_pods")
    )
}
