//! Mutations. Each has a plan that reads the real state and asks the
//! server to validate the change with `dryRun=All` (nothing persists), and
//! an apply that makes it with a precondition (resourceVersion or uid), so
//! a change made by someone else in between is a 409, never overwritten.

use super::api::{core, deploy_path, enc, get, i, req, resolve_kind, s, with_dry, MANAGER};
use super::client::{connect, Kube};
use super::reads::{images_of, list_pods, owned_replicasets, revision};
use crate::dispatch::{Call, OpError, Plan};
use crate::value::map_of;
use rhai::{Array, Dynamic, Map};
use serde_json::{json, Value};

const MERGE: Option<&str> = Some("application/merge-patch+json");
const STRATEGIC: Option<&str> = Some("application/strategic-merge-patch+json");
const JSON_PATCH: Option<&str> = Some("application/json-patch+json");

fn change(from: impl Into<Dynamic>, to: impl Into<Dynamic>) -> Dynamic {
    Dynamic::from_map(map_of([("from", from.into()), ("to", to.into())]))
}

fn plan(summary: String, details: Map) -> Plan {
    Plan { summary, details }
}

fn int_arg(call: &Call, i: usize, what: &str) -> Result<i64, OpError> {
    call.arg(i)
        .and_then(|v| v.as_int().ok())
        .ok_or_else(|| OpError::bad_input(format!("argument `{what}` must be an int")))
}

// ---- scale ----

fn scale_args(call: &mut Call) -> Result<(String, i64, Map, Kube), OpError> {
    let name = call.str_arg(0)?;
    let n = int_arg(call, 1, "replicas")?;
    if n < 0 {
        return Err(OpError::bad_input(format!(
            "replicas must be 0 or more, got {n}"
        )));
    }
    let opts = call.opt_map(2)?;
    let (k, _) = connect(call)?;
    Ok((name, n, opts, k))
}

fn check_current(opts: &Map, have: i64, name: &str) -> Result<(), OpError> {
    if let Some(want) = opts.get("current").and_then(|v| v.as_int().ok()) {
        if want != have {
            return Err(OpError::failed(format!("precondition failed: deployment {name} has {have} replicas, not the {want} expected"))
                .with_hint("someone else scaled it; read k8s.deployments() and decide again"));
        }
    }
    Ok(())
}

pub fn plan_scale(call: &mut Call) -> Result<Plan, OpError> {
    let (name, n, opts, k) = scale_args(call)?;
    let path = format!("{}/scale", deploy_path(&k.namespace, &enc(&name)));
    let sc = get(call, &k, &format!("get deployment {name}"), &path)?;
    let from = i(&sc, "spec.replicas");
    check_current(&opts, from, &name)?;
    req(
        call,
        &k,
        &format!("scale {name} (server dry run)"),
        "PATCH",
        &with_dry(&path, true),
        MERGE,
        Some(&json!({"spec": {"replicas": n}})),
    )?;
    Ok(plan(
        format!("would scale deployment {name} in {} from {from} to {n} replicas (validated by the server)", k.namespace),
        map_of([("deployment", name.into()), ("namespace", k.namespace.clone().into()), ("from", from.into()), ("to", n.into()), ("diff", Dynamic::from_map(map_of([("spec.replicas", change(from, n))])))]),
    ))
}

pub fn scale(call: &mut Call) -> Result<Dynamic, OpError> {
    let (name, n, opts, k) = scale_args(call)?;
    let path = format!("{}/scale", deploy_path(&k.namespace, &enc(&name)));
    let mut sc = get(call, &k, &format!("get deployment {name}"), &path)?;
    let from = i(&sc, "spec.replicas");
    check_current(&opts, from, &name)?;
    // PUT with the resourceVersion just read: a change in between is a 409.
    sc["spec"]["replicas"] = json!(n);
    req(
        call,
        &k,
        &format!("scale {name}"),
        "PUT",
        &with_dry(&path, false),
        Some("application/json"),
        Some(&sc),
    )?;
    let mut out = map_of([
        ("deployment", name.clone().into()),
        ("from", from.into()),
        ("to", n.into()),
    ]);
    if opts
        .get("wait")
        .and_then(|v| v.as_bool().ok())
        .unwrap_or(false)
    {
        let timeout = timeout_opt(&opts, 300)?;
        let d = super::rollout::wait_rollout(call, &k, &name, timeout, false)?;
        out.insert("ready".into(), i(&d, "status.readyReplicas").into());
    }
    Ok(Dynamic::from_map(out))
}

pub fn timeout_opt(opts: &Map, default_secs: u64) -> Result<std::time::Duration, OpError> {
    match opts.get("timeout") {
        Some(d) => {
            crate::value::parse_duration(d).map_err(|e| OpError::bad_input(format!("timeout: {e}")))
        }
        None => Ok(std::time::Duration::from_secs(default_secs)),
    }
}

// ---- rollout restart / undo ----

fn restart_patch() -> (String, Value) {
    let ts = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let body = json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": ts}}}}});
    (ts, body)
}

pub fn plan_rollout_restart(call: &mut Call) -> Result<Plan, OpError> {
    let name = call.str_arg(0)?;
    let (k, _) = connect(call)?;
    let path = deploy_path(&k.namespace, &enc(&name));
    let d = get(call, &k, &format!("get deployment {name}"), &path)?;
    let (ts, body) = restart_patch();
    req(
        call,
        &k,
        &format!("restart {name} (server dry run)"),
        "PATCH",
        &with_dry(&path, true),
        STRATEGIC,
        Some(&body),
    )?;
    Ok(plan(
        format!("would restart deployment {name} in {} ({} pods replaced one by one, revision {} -> {})", k.namespace, i(&d, "spec.replicas"), revision(&d), revision(&d) + 1),
        map_of([("deployment", name.into()), ("diff", Dynamic::from_map(map_of([("spec.template.metadata.annotations.kubectl.kubernetes.io/restartedAt", change(d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].as_str().unwrap_or("").to_string(), ts))])))]),
    ))
}

pub fn rollout_restart(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = call.str_arg(0)?;
    let (k, _) = connect(call)?;
    let path = deploy_path(&k.namespace, &enc(&name));
    let (ts, body) = restart_patch();
    let d = req(
        call,
        &k,
        &format!("restart {name}"),
        "PATCH",
        &with_dry(&path, false),
        STRATEGIC,
        Some(&body),
    )?;
    Ok(Dynamic::from_map(map_of([
        ("deployment", name.into()),
        ("restarted_at", ts.into()),
        ("generation", i(&d, "metadata.generation").into()),
    ])))
}

struct Undo {
    from_rev: i64,
    to_rev: i64,
    from_images: String,
    to_images: String,
    patch: Value,
}

fn undo_target(call: &mut Call) -> Result<(String, Kube, Undo), OpError> {
    let name = call.str_arg(0)?;
    let opts = call.opt_map(1)?;
    let (k, _) = connect(call)?;
    let d = get(
        call,
        &k,
        &format!("get deployment {name}"),
        &deploy_path(&k.namespace, &enc(&name)),
    )?;
    let rss = owned_replicasets(call, &k, &d)?;
    let current = revision(&d);
    let target = match opts.get("to_revision").and_then(|v| v.as_int().ok()) {
        Some(r) => rss.iter().find(|x| revision(x) == r).ok_or_else(|| {
            let known: Vec<String> = rss.iter().map(|x| revision(x).to_string()).collect();
            OpError::bad_input(format!("deployment {name} has no revision {r}"))
                .with_hint(format!("revisions: {}", known.join(", ")))
        })?,
        None => rss
            .iter()
            .rev()
            .find(|x| revision(x) < current)
            .ok_or_else(|| {
                OpError::failed(format!(
                    "deployment {name} has no previous revision to return to"
                ))
                .with_hint("k8s.rollout_history(name) lists its revisions")
            })?,
    };
    let to_rev = revision(target);
    if to_rev == current {
        return Err(OpError::bad_input(format!(
            "deployment {name} is already at revision {to_rev}"
        )));
    }
    let mut tmpl = target["spec"]["template"].clone();
    if let Some(l) = tmpl["metadata"]["labels"].as_object_mut() {
        l.remove("pod-template-hash");
    }
    // test on resourceVersion: the template replaced is the one read here.
    let patch = json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": d["metadata"]["resourceVersion"]},
        {"op": "replace", "path": "/spec/template", "value": tmpl},
    ]);
    let undo = Undo {
        from_rev: current,
        to_rev,
        from_images: images_of(&d["spec"]["template"]),
        to_images: images_of(&target["spec"]["template"]),
        patch,
    };
    Ok((name, k, undo))
}

pub fn plan_rollout_undo(call: &mut Call) -> Result<Plan, OpError> {
    let (name, k, u) = undo_target(call)?;
    req(
        call,
        &k,
        &format!("undo {name} (server dry run)"),
        "PATCH",
        &with_dry(&deploy_path(&k.namespace, &enc(&name)), true),
        JSON_PATCH,
        Some(&u.patch),
    )?;
    Ok(plan(
        format!(
            "would roll deployment {name} back from revision {} ({}) to revision {} ({})",
            u.from_rev, u.from_images, u.to_rev, u.to_images
        ),
        map_of([
            ("deployment", name.into()),
            ("from_revision", u.from_rev.into()),
            ("to_revision", u.to_rev.into()),
            (
                "diff",
                Dynamic::from_map(map_of([("images", change(u.from_images, u.to_images))])),
            ),
        ]),
    ))
}

pub fn rollout_undo(call: &mut Call) -> Result<Dynamic, OpError> {
    let (name, k, u) = undo_target(call)?;
    req(
        call,
        &k,
        &format!("undo {name}"),
        "PATCH",
        &with_dry(&deploy_path(&k.namespace, &enc(&name)), false),
        JSON_PATCH,
        Some(&u.patch),
    )?;
    Ok(Dynamic::from_map(map_of([
        ("deployment", name.into()),
        ("from_revision", u.from_rev.into()),
        ("to_revision", u.to_rev.into()),
        ("images", u.to_images.into()),
    ])))
}

// ---- delete pod ----

fn pod_uid(call: &mut Call) -> Result<(String, String, Value, Kube), OpError> {
    let name = call.str_arg(0)?;
    let opts = call.opt_map(1)?;
    let (k, _) = connect(call)?;
    let pod = get(
        call,
        &k,
        &format!("get pod {name}"),
        &format!("{}/{}", core(&k.namespace, "pods"), enc(&name)),
    )?;
    let uid = opts
        .get("uid")
        .map(|u| u.to_string())
        .unwrap_or_else(|| s(&pod, "metadata.uid").to_string());
    Ok((name, uid, pod, k))
}

fn delete_body(uid: &str) -> Value {
    json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background", "preconditions": {"uid": uid}})
}

pub fn plan_delete_pod(call: &mut Call) -> Result<Plan, OpError> {
    let (name, uid, pod, k) = pod_uid(call)?;
    let path = format!("{}/{}", core(&k.namespace, "pods"), enc(&name));
    req(
        call,
        &k,
        &format!("delete pod {name} (server dry run)"),
        "DELETE",
        &format!("{path}?dryRun=All"),
        Some("application/json"),
        Some(&delete_body(&uid)),
    )?;
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

pub fn delete_pod(call: &mut Call) -> Result<Dynamic, OpError> {
    let (name, uid, pod, k) = pod_uid(call)?;
    let path = format!("{}/{}", core(&k.namespace, "pods"), enc(&name));
    req(
        call,
        &k,
        &format!("delete pod {name}"),
        "DELETE",
        &path,
        Some("application/json"),
        Some(&delete_body(&uid)),
    )?;
    Ok(Dynamic::from_map(map_of([
        ("pod", name.into()),
        ("uid", uid.into()),
        ("node", s(&pod, "spec.nodeName").to_string().into()),
    ])))
}

// ---- hpa ----

fn hpa_change(call: &mut Call) -> Result<(String, Kube, Value, Value, Map), OpError> {
    let name = call.str_arg(0)?;
    let opts = call.opt_map(1)?;
    let (k, _) = connect(call)?;
    let path = format!(
        "/apis/autoscaling/v2/namespaces/{}/horizontalpodautoscalers/{}",
        k.namespace,
        enc(&name)
    );
    let h = get(call, &k, &format!("get hpa {name}"), &path)?;
    let cur_min = h["spec"]["minReplicas"].as_i64().unwrap_or(1);
    let cur_max = i(&h, "spec.maxReplicas");
    let min = opts
        .get("min")
        .and_then(|v| v.as_int().ok())
        .unwrap_or(cur_min);
    let max = opts
        .get("max")
        .and_then(|v| v.as_int().ok())
        .unwrap_or(cur_max);
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

pub fn plan_patch_hpa(call: &mut Call) -> Result<Plan, OpError> {
    let (name, k, path, body, diff) = hpa_change(call)?;
    req(
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

pub fn patch_hpa(call: &mut Call) -> Result<Dynamic, OpError> {
    let (name, k, path, body, diff) = hpa_change(call)?;
    let h = req(
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

// ---- set env / set image ----

fn containers_of(d: &Value) -> Vec<Value> {
    d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn env_change(call: &mut Call) -> Result<(String, Kube, Option<Value>, Map), OpError> {
    let name = call.str_arg(0)?;
    let vars = call.opt_map(1)?;
    let opts = call.opt_map(2)?;
    if vars.is_empty() {
        return Err(OpError::bad_input(
            "give the variables to set as a map, e.g. #{LOG_LEVEL: \"debug\"} (() removes one)",
        ));
    }
    let only = opts.get("container").map(|c| c.to_string());
    let (k, _) = connect(call)?;
    let d = get(
        call,
        &k,
        &format!("get deployment {name}"),
        &deploy_path(&k.namespace, &enc(&name)),
    )?;
    let mut patches = Vec::new();
    let mut diff = Map::new();
    let cs = containers_of(&d);
    if let Some(o) = &only {
        if !cs.iter().any(|c| c["name"] == o.as_str()) {
            return Err(OpError::bad_input(format!(
                "deployment {name} has no container {o}"
            )));
        }
    }
    for c in cs
        .iter()
        .filter(|c| only.as_ref().is_none_or(|o| c["name"] == o.as_str()))
    {
        let cname = s(c, "name").to_string();
        let env = c["env"].as_array().cloned().unwrap_or_default();
        let mut entries = Vec::new();
        for (key, v) in &vars {
            let cur = env
                .iter()
                .find(|e| e["name"] == key.as_str())
                .map(|e| e["value"].as_str().unwrap_or("").to_string());
            if v.is_unit() {
                if let Some(cur) = cur {
                    entries.push(json!({"name": key.as_str(), "$patch": "delete"}));
                    diff.insert(format!("{cname}.{key}").into(), change(cur, Dynamic::UNIT));
                }
            } else {
                let val = v.to_string();
                if cur.as_deref() != Some(val.as_str()) {
                    entries.push(json!({"name": key.as_str(), "value": val}));
                    diff.insert(
                        format!("{cname}.{key}").into(),
                        change(cur.map(Dynamic::from).unwrap_or(Dynamic::UNIT), val),
                    );
                }
            }
        }
        if !entries.is_empty() {
            patches.push(json!({"name": cname, "env": entries}));
        }
    }
    let body = (!patches.is_empty())
        .then(|| json!({"spec": {"template": {"spec": {"containers": patches}}}}));
    Ok((name, k, body, diff))
}

pub fn plan_set_env(call: &mut Call) -> Result<Plan, OpError> {
    let (name, k, body, diff) = env_change(call)?;
    if let Some(b) = &body {
        req(
            call,
            &k,
            &format!("set env on {name} (server dry run)"),
            "PATCH",
            &with_dry(&deploy_path(&k.namespace, &enc(&name)), true),
            STRATEGIC,
            Some(b),
        )?;
    }
    let keys: Vec<String> = diff.keys().map(|k| k.to_string()).collect();
    let summary = if keys.is_empty() {
        format!("deployment {name} already has these values: nothing to do")
    } else {
        format!(
            "would set {} on deployment {name} (a new rollout)",
            keys.join(", ")
        )
    };
    Ok(plan(
        summary,
        map_of([
            ("deployment", name.into()),
            ("diff", Dynamic::from_map(diff)),
        ]),
    ))
}

pub fn set_env(call: &mut Call) -> Result<Dynamic, OpError> {
    let (name, k, body, diff) = env_change(call)?;
    if let Some(b) = &body {
        req(
            call,
            &k,
            &format!("set env on {name}"),
            "PATCH",
            &with_dry(&deploy_path(&k.namespace, &enc(&name)), false),
            STRATEGIC,
            Some(b),
        )?;
    }
    Ok(Dynamic::from_map(map_of([
        ("deployment", name.into()),
        ("changed", Dynamic::from_map(diff)),
    ])))
}

fn image_change(call: &mut Call) -> Result<(String, Kube, String, String, String), OpError> {
    let name = call.str_arg(0)?;
    let container = call.str_arg(1)?;
    let image = call.str_arg(2)?;
    let (k, _) = connect(call)?;
    let d = get(
        call,
        &k,
        &format!("get deployment {name}"),
        &deploy_path(&k.namespace, &enc(&name)),
    )?;
    let cs = containers_of(&d);
    let Some(c) = cs.iter().find(|c| c["name"] == container.as_str()) else {
        let names: Vec<&str> = cs.iter().filter_map(|c| c["name"].as_str()).collect();
        return Err(
            OpError::bad_input(format!("deployment {name} has no container {container}"))
                .with_hint(format!("its containers: {}", names.join(", "))),
        );
    };
    let from = s(c, "image").to_string();
    Ok((name, k, container, from, image))
}

fn image_body(container: &str, image: &str) -> Value {
    json!({"spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}})
}

pub fn plan_set_image(call: &mut Call) -> Result<Plan, OpError> {
    let (name, k, container, from, to) = image_change(call)?;
    if from == to {
        return Ok(plan(
            format!("deployment {name} already runs {to} in {container}: nothing to do"),
            map_of([("deployment", name.into())]),
        ));
    }
    req(
        call,
        &k,
        &format!("set image on {name} (server dry run)"),
        "PATCH",
        &with_dry(&deploy_path(&k.namespace, &enc(&name)), true),
        STRATEGIC,
        Some(&image_body(&container, &to)),
    )?;
    Ok(plan(
        format!(
            "would change {container} of deployment {name} from {from} to {to} (a new rollout)"
        ),
        map_of([
            ("deployment", name.into()),
            ("container", container.clone().into()),
            (
                "diff",
                Dynamic::from_map(map_of([("image", change(from, to))])),
            ),
        ]),
    ))
}

pub fn set_image(call: &mut Call) -> Result<Dynamic, OpError> {
    let (name, k, container, from, to) = image_change(call)?;
    if from != to {
        req(
            call,
            &k,
            &format!("set image on {name}"),
            "PATCH",
            &with_dry(&deploy_path(&k.namespace, &enc(&name)), false),
            STRATEGIC,
            Some(&image_body(&container, &to)),
        )?;
    }
    Ok(Dynamic::from_map(map_of([
        ("deployment", name.into()),
        ("container", container.into()),
        ("from", from.clone().into()),
        ("to", to.clone().into()),
        ("changed", (from != to).into()),
    ])))
}

// ---- job from cronjob ----

fn job_from(call: &mut Call) -> Result<(String, Kube, Value), OpError> {
    let cj_name = call.str_arg(0)?;
    let job_name = call.opt_str(1)?;
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

pub fn plan_create_job_from(call: &mut Call) -> Result<Plan, OpError> {
    let (cj, k, job) = job_from(call)?;
    req(
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

pub fn create_job_from(call: &mut Call) -> Result<Dynamic, OpError> {
    let (cj, k, job) = job_from(call)?;
    let j = req(
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

fn b64(data: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                T[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

struct SecretChange {
    exists: bool,
    added: Vec<String>,
    changed: Vec<String>,
    unchanged: Vec<String>,
    values: serde_json::Map<String, Value>,
    rv: Value,
}

fn secret_change(call: &mut Call) -> Result<(String, Kube, SecretChange), OpError> {
    let name = call.str_arg(0)?;
    let vars = call.opt_map(1)?;
    let mut values = serde_json::Map::new();
    for (key, v) in &vars {
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
            Some(old) if old == b64(v.as_str().unwrap_or("").as_bytes()) => {
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
        req(
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
        req(
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

pub fn plan_secret_set(call: &mut Call) -> Result<Plan, OpError> {
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

pub fn secret_set(call: &mut Call) -> Result<Dynamic, OpError> {
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

// ---- server-side apply ----

fn apply_docs(call: &mut Call) -> Result<(Kube, String, Vec<Value>), OpError> {
    let text = call.str_arg(0)?;
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).map_err(|e| {
        OpError::bad_input("k8s.apply: the manifest is not valid YAML").with_cause(e)
    })?;
    let docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
    if docs.is_empty() {
        return Err(OpError::bad_input(
            "k8s.apply: the manifest holds no objects",
        ));
    }
    for d in &docs {
        if s(d, "apiVersion").is_empty()
            || s(d, "kind").is_empty()
            || s(d, "metadata.name").is_empty()
        {
            return Err(OpError::bad_input(
                "k8s.apply: every object needs apiVersion, kind and metadata.name",
            ));
        }
    }
    let (k, t) = connect(call)?;
    Ok((k, t.url, docs))
}

fn apply_one(call: &Call, k: &Kube, key: &str, doc: &Value, dry: bool) -> Result<Map, OpError> {
    let api_version = s(doc, "apiVersion");
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    let kind = s(doc, "kind");
    let qualified = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let r = resolve_kind(call, k, key, &qualified)?;
    let ns = doc["metadata"]["namespace"]
        .as_str()
        .unwrap_or(&k.namespace)
        .to_string();
    let name = s(doc, "metadata.name").to_string();
    let path = format!("{}/{}", r.collection(&ns), enc(&name));
    let before = call.block_on(async { Ok(k.request("GET", &path, None, None).await.ok()) })?;
    let q = format!(
        "{path}?fieldManager={MANAGER}&force=false{}",
        if dry { "&dryRun=All" } else { "" }
    );
    let after = req(
        call,
        k,
        &format!("apply {} {name}", r.kind),
        "PATCH",
        &q,
        Some("application/apply-patch+yaml"),
        Some(doc),
    )?;
    let action = match &before {
        None => "created",
        Some(b) if b["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"] => {
            "unchanged"
        }
        Some(_) => "configured",
    };
    Ok(map_of([
        ("kind", r.kind.into()),
        ("name", name.into()),
        ("namespace", ns.into()),
        ("action", action.into()),
    ]))
}

pub fn plan_apply(call: &mut Call) -> Result<Plan, OpError> {
    let (k, key, docs) = apply_docs(call)?;
    let mut rows = Array::new();
    let mut parts = Vec::new();
    for d in &docs {
        let m = apply_one(call, &k, &key, d, true)?;
        parts.push(format!(
            "{} {}/{}",
            m.get("action").map(|a| a.to_string()).unwrap_or_default(),
            m.get("kind").map(|a| a.to_string()).unwrap_or_default(),
            m.get("name").map(|a| a.to_string()).unwrap_or_default()
        ));
        rows.push(Dynamic::from_map(m));
    }
    Ok(plan(
        format!(
            "would apply (server-side, validated by the server): {}",
            parts.join(", ")
        ),
        map_of([("objects", rows.into())]),
    ))
}

pub fn apply(call: &mut Call) -> Result<Dynamic, OpError> {
    let (k, key, docs) = apply_docs(call)?;
    let mut rows = Array::new();
    for d in &docs {
        rows.push(Dynamic::from_map(apply_one(call, &k, &key, d, false)?));
    }
    crate::output::column_order_hint(&[
        "kind".into(),
        "name".into(),
        "namespace".into(),
        "action".into(),
    ]);
    Ok(rows.into())
}

// ---- service selector ----

fn selector_change(call: &mut Call) -> Result<(String, Kube, Value, Value, Value, usize), OpError> {
    let name = call.str_arg(0)?;
    let sel = call.opt_map(1)?;
    let opts = call.opt_map(2)?;
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
    if ready == 0
        && !opts
            .get("allow_empty")
            .and_then(|v| v.as_bool().ok())
            .unwrap_or(false)
    {
        return Err(OpError::refused(format!("no ready pod matches {sel_text} in {}: service {name} would send traffic nowhere", k.namespace))
            .with_hint("check the labels with k8s.pods(#{selector: ...}), or pass #{allow_empty: true} if that is intended"));
    }
    let from = svc["spec"]["selector"].clone();
    let patch = json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": svc["metadata"]["resourceVersion"]},
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

pub fn plan_patch_service_selector(call: &mut Call) -> Result<Plan, OpError> {
    let (name, k, from, to, patch, ready) = selector_change(call)?;
    req(
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

pub fn patch_service_selector(call: &mut Call) -> Result<Dynamic, OpError> {
    let (name, k, from, to, patch, ready) = selector_change(call)?;
    req(
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
