//! Mutations of Deployments: scale, rollout restart and undo, env and
//! image. Each plan reads the real state and asks the server to validate
//! the change with `dryRun=All`; each write carries the resourceVersion it
//! read, so a concurrent change is a 409, never overwritten.

use super::api::*;
use super::client::{connect, Kube};
use super::reads::{images_of, owned_replicasets, revision};
use crate::dispatch::{Call, OpError, Plan};
use crate::value::map_of;
use rhai::{Dynamic, Map};
use serde_json::{json, Value};

// ---- scale ----

fn scale_args(call: &mut Call) -> Result<(String, i64, Map, Kube), OpError> {
    let name = call.str_at(0)?;
    let n = int_arg(call, 1, "replicas")?;
    if n < 0 {
        return Err(OpError::bad_input(format!(
            "replicas must be 0 or more, got {n}"
        )));
    }
    let opts = call.opts_at(2)?;
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
    // PUT with the resourceVersion just read, so a write never lands on a
    // state it did not see. Controllers bump the version with every status
    // update, so a conflict is retried on a fresh read, as kubectl scale
    // does; the `current` precondition is checked again on every read, so a
    // real change of replicas by someone else still stops the scale.
    let mut attempt = 0;
    let from = loop {
        attempt += 1;
        let mut sc = get(call, &k, &format!("get deployment {name}"), &path)?;
        let from = i(&sc, "spec.replicas");
        check_current(&opts, from, &name)?;
        sc["spec"]["replicas"] = json!(n);
        match req(
            call,
            &k,
            &format!("scale {name}"),
            "PUT",
            &with_dry(&path, false),
            Some("application/json"),
            Some(&sc),
        ) {
            Ok(_) => break from,
            Err(e) if attempt < 5 && e.message.contains(": conflict, someone else changed it") => {
                continue
            }
            Err(e) => return Err(e),
        }
    };
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
    let name = call.str_at(0)?;
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
    let name = call.str_at(0)?;
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
    let name = call.str_at(0)?;
    let opts = call.opts_at(1)?;
    let (k, _) = connect(call)?;
    let d = get_deployment(call, &k, &name)?;
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
    // The resourceVersion read goes with the patch: a change in between is a 409.
    let patch = json!([
        {"op": "replace", "path": "/metadata/resourceVersion", "value": d["metadata"]["resourceVersion"]},
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

// ---- set env / set image ----

fn containers_of(d: &Value) -> Vec<Value> {
    d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn env_change(call: &mut Call) -> Result<(String, Kube, Option<Value>, Map), OpError> {
    let name = call.str_at(0)?;
    let vars = call.opts_at(1)?;
    let opts = call.opts_at(2)?;
    if vars.is_empty() {
        return Err(OpError::bad_input(
            "give the variables to set as a map, e.g. #{LOG_LEVEL: \"debug\"} (() removes one)",
        ));
    }
    let only = opts.get("container").map(|c| c.to_string());
    let (k, _) = connect(call)?;
    let d = get_deployment(call, &k, &name)?;
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
    let name = call.str_at(0)?;
    let container = call.str_at(1)?;
    let image = call.str_at(2)?;
    let (k, _) = connect(call)?;
    let d = get_deployment(call, &k, &name)?;
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
