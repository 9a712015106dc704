//! Mutations of Deployments: scale, rollout restart and undo, env and
//! image. Each plan reads the real state and asks the server to validate
//! the change with `dryRun=All`; each write carries the resourceVersion it
//! read, so a concurrent change is a 409, never overwritten.

// `req` below is a declared parameter; a request to the API server is `api::req`.
use super::api::{self, *};
use super::client::{connect, Kube};
use super::reads::{images_of, owned_replicasets, revision};
use super::rollout::ROLLOUT_TIMEOUT;
use super::DEPLOYMENT_NAMES;
use crate::dispatch::said;
use crate::dispatch::{Applied, Call, OpError, Opts, Plan};
use crate::registry::{field, opt, req, Primitive, Ty};
use crate::value::map_of;
use rhai::{Dynamic, Map};
use serde_json::{json, Value};

// ---- scale ----

fn scale_args(call: &mut Call) -> Result<(String, i64, Opts, Kube), OpError> {
    let name = call.str("deployment")?;
    let n = call.int("replicas")?;
    if n < 0 {
        return Err(OpError::bad_input(format!(
            "replicas must be 0 or more, got {n}"
        )));
    }
    let opts = call.opts("opts")?;
    let (k, _) = connect(call)?;
    Ok((name, n, opts, k))
}

fn check_current(opts: &Opts, have: i64, name: &str) -> Result<(), OpError> {
    if let Some(want) = opts.int("current")? {
        if want != have {
            return Err(OpError::failed(format!("precondition failed: deployment {name} has {have} replicas, not the {want} expected"))
                .with_hint("someone else scaled it; read k8s.deployments() and decide again"));
        }
    }
    Ok(())
}

fn plan_scale(call: &mut Call) -> Result<Plan, OpError> {
    let (name, n, opts, k) = scale_args(call)?;
    let path = format!("{}/scale", deploy_path(&k.namespace, &enc(&name)));
    let sc = get(call, &k, &format!("get deployment {name}"), &path)?;
    let from = i(&sc, "spec.replicas");
    check_current(&opts, from, &name)?;
    let warning = super::scale_guard::check(call, &k, &name, n, &opts)?;
    api::patch(
        call,
        &k,
        &format!("scale {name}"),
        &path,
        MERGE,
        &json!({"spec": {"replicas": n}}),
        true,
    )?;
    let note = warning.map(|w| format!("; {w}")).unwrap_or_default();
    Ok(plan(
        format!("would scale deployment {name} in {} from {from} to {n} replicas (validated by the server){note}", k.namespace),
        map_of([("deployment", name.into()), ("namespace", k.namespace.clone().into()), ("from", from.into()), ("to", n.into()), ("diff", Dynamic::from_map(map_of([("spec.replicas", change(from, n))])))]),
    ))
}

pub const SCALE: Primitive = Primitive::mutate("scale", plan_scale, scale)
    .params(&[
        req("deployment", Ty::Str).names(DEPLOYMENT_NAMES),
        req("replicas", Ty::Int),
        opt(
            "opts",
            Ty::Record(&[
                field("current", Ty::Int).doc(
                    "refuse unless it has exactly this many replicas now, like kubectl --current-replicas",
                ),
                field("wait", Ty::Bool).doc("true: return when the replicas are ready"),
                field("timeout", Ty::Duration).doc("for wait, default \"5m\""),
                field("override_hpa", Ty::Bool).doc(
                    "scale even to a count outside the bounds of the deployment's HorizontalPodAutoscaler, which then undoes it (refused otherwise)",
                ),
            ]),
        ),
    ])
    .returns(Ty::Record(&[
        field("deployment", Ty::Str),
        field("from", Ty::Int).doc("replicas before"),
        field("to", Ty::Int),
        field("ready", Ty::Int).doc("ready replicas once the rollout completed; () without wait"),
        field("warning", Ty::Str).doc("what an HPA on the deployment will do about the count; () without one"),
    ]))
    .says(says_scale)
    .doc("Scale a deployment.\n\
          The write carries the resourceVersion read, so a concurrent change is a conflict, not overwritten. \
          A HorizontalPodAutoscaler that would put the count back (outside its min..max) refuses the scale unless override_hpa; \
          wait verifies the count asked for is the one wanted and ready.")
    .example(r#"k8s.scale("api", 5, #{current: 3, wait: true})"#)
    .unbounded();
fn scale(call: &mut Call) -> Result<Dynamic, OpError> {
    let (name, n, opts, k) = scale_args(call)?;
    let path = format!("{}/scale", deploy_path(&k.namespace, &enc(&name)));
    let warning = super::scale_guard::check(call, &k, &name, n, &opts)?;
    if let Some(w) = &warning {
        call.session.out.note(&format!("warning: {w}"));
    }
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
        match api::req(
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
            Err(e) if e.cancelled.is_some() => {
                return Err(read_back(call, &k, &path, &name, from, n, e))
            }
            Err(e) => return Err(e),
        }
    };
    let mut out = map_of([
        ("deployment", name.clone().into()),
        ("from", from.into()),
        ("to", n.into()),
    ]);
    if opts.bool("wait")? {
        let timeout = opts.duration("timeout")?.unwrap_or(ROLLOUT_TIMEOUT);
        // The scale has landed: whatever stops the wait (Ctrl-C, its
        // timeout) must not hide that from the audit log and the operator.
        match super::rollout::wait_rollout(call, &k, &name, timeout, false) {
            Ok(_) => {
                // The rollout is done; the count asked for must be the one
                // that holds (an HPA may have put it back).
                match super::scale_guard::verify(call, &k, &name, n, timeout) {
                    Ok(d) => {
                        out.insert("ready".into(), i(&d, "status.readyReplicas").into());
                    }
                    Err(e) => {
                        let why = "the scale landed; the count did not hold".to_string();
                        return Err(e.with_applied(
                            Applied::Yes,
                            why,
                            Some(Dynamic::from_map(out)),
                        ));
                    }
                }
            }
            Err(mut e) => {
                out.insert("ready".into(), Dynamic::UNIT);
                let why = match e.cancelled {
                    Some(r) => format!(
                        "the scale landed; the wait for ready replicas was {}",
                        r.describe()
                    ),
                    None => format!(
                        "the scale landed; the wait for ready replicas failed: {}",
                        e.message
                    ),
                };
                if e.cancelled.is_none() {
                    e.message = format!(
                        "scaled {from} -> {n}, then the wait for ready replicas failed: {}",
                        e.message
                    );
                }
                return Err(e.with_applied(Applied::Yes, why, Some(Dynamic::from_map(out))));
            }
        }
    }
    if let Some(w) = warning {
        out.insert("warning".into(), w.into());
    }
    Ok(Dynamic::from_map(out))
}

/// A scale interrupted while its PUT was in flight may have landed: read
/// the deployment back (past the cancellation, a few seconds at most) and
/// say which, instead of guessing.
fn read_back(
    call: &Call,
    k: &super::client::Kube,
    path: &str,
    name: &str,
    from: i64,
    n: i64,
    e: OpError,
) -> OpError {
    let back = call.session.rt.block_on(async {
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            k.request("GET", path, None, None),
        )
        .await
    });
    let out = map_of([
        ("deployment", name.to_string().into()),
        ("from", from.into()),
        ("to", n.into()),
        ("ready", Dynamic::UNIT),
    ]);
    let (applied, why) = match back {
        Ok(Ok(v)) if i(&v, "spec.replicas") == n && n != from => (
            Applied::Yes,
            "the scale landed before the interrupt (read back from the API server)".to_string(),
        ),
        Ok(Ok(v)) => (
            Applied::No,
            format!(
                "read back from the API server: {} replicas, as before",
                i(&v, "spec.replicas")
            ),
        ),
        _ => (
            Applied::Unknown,
            "interrupted while the scale was in flight, and the deployment could not be read back"
                .to_string(),
        ),
    };
    e.with_applied(applied, why, Some(Dynamic::from_map(out)))
}

// ---- rollout restart / undo ----

fn restart_patch() -> (String, Value) {
    let ts = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let body = json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": ts}}}}});
    (ts, body)
}

fn plan_rollout_restart(call: &mut Call) -> Result<Plan, OpError> {
    let name = call.str("deployment")?;
    let (k, _) = connect(call)?;
    let path = deploy_path(&k.namespace, &enc(&name));
    let d = get(call, &k, &format!("get deployment {name}"), &path)?;
    let (ts, body) = restart_patch();
    api::patch(
        call,
        &k,
        &format!("restart {name}"),
        &path,
        STRATEGIC,
        &body,
        true,
    )?;
    Ok(plan(
        format!("would restart deployment {name} in {} ({} pods replaced one by one, revision {} -> {})", k.namespace, i(&d, "spec.replicas"), revision(&d), revision(&d) + 1),
        map_of([("deployment", name.into()), ("diff", Dynamic::from_map(map_of([("spec.template.metadata.annotations.kubectl.kubernetes.io/restartedAt", change(d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].as_str().unwrap_or("").to_string(), ts))])))]),
    ))
}

pub const ROLLOUT_RESTART: Primitive =
    Primitive::mutate("rollout_restart", plan_rollout_restart, rollout_restart)
        .params(&[req("deployment", Ty::Str).names(DEPLOYMENT_NAMES)])
        .returns(Ty::Record(&[
            field("deployment", Ty::Str),
            field("restarted_at", Ty::Str).doc("the restartedAt annotation set, RFC 3339"),
            field("generation", Ty::Int).doc("the deployment's generation after the change"),
        ]))
        .says(says_restart)
        .doc("Restart a deployment's pods by a rolling update (the restartedAt annotation, as kubectl rollout restart).")
        .example(r#"k8s.rollout_restart("api"); k8s.rollout_status("api")"#);
fn rollout_restart(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = call.str("deployment")?;
    let (k, _) = connect(call)?;
    let path = deploy_path(&k.namespace, &enc(&name));
    if crate::policy::limit(call, crate::policy::Limit::MaxPods)?.is_some() {
        let d = get(call, &k, &format!("get deployment {name}"), &path)?;
        let n = i(&d, "spec.replicas");
        crate::policy::pods(call, n, &format!("k8s.rollout_restart of {name}"))?;
    }
    let (ts, body) = restart_patch();
    let d = api::patch(
        call,
        &k,
        &format!("restart {name}"),
        &path,
        STRATEGIC,
        &body,
        false,
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
    let name = call.str("deployment")?;
    let opts = call.opts("opts")?;
    let (k, _) = connect(call)?;
    let d = get_deployment(call, &k, &name)?;
    let rss = owned_replicasets(call, &k, &d)?;
    let current = revision(&d);
    let target = match opts.int("to_revision")? {
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

fn plan_rollout_undo(call: &mut Call) -> Result<Plan, OpError> {
    let (name, k, u) = undo_target(call)?;
    api::patch(
        call,
        &k,
        &format!("undo {name}"),
        &deploy_path(&k.namespace, &enc(&name)),
        JSON_PATCH,
        &u.patch,
        true,
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

pub const ROLLOUT_UNDO: Primitive =
    Primitive::mutate("rollout_undo", plan_rollout_undo, rollout_undo)
        .params(&[
            req("deployment", Ty::Str).names(DEPLOYMENT_NAMES),
            opt(
                "opts",
                Ty::Record(&[field("to_revision", Ty::Int).doc("default: the previous revision")]),
            ),
        ])
        .returns(Ty::Record(&[
            field("deployment", Ty::Str),
            field("from_revision", Ty::Int),
            field("to_revision", Ty::Int),
            field("images", Ty::Str).doc("the images it returned to, comma-separated"),
        ]))
        .says(says_undo)
        .doc(
            "Return a deployment to its previous revision, or to the one named.\n\
          --dry-run shows the images it returns to.",
        )
        .example(r#"k8s.rollout_undo("api", #{to_revision: 2})"#);
fn rollout_undo(call: &mut Call) -> Result<Dynamic, OpError> {
    let (name, k, u) = undo_target(call)?;
    api::patch(
        call,
        &k,
        &format!("undo {name}"),
        &deploy_path(&k.namespace, &enc(&name)),
        JSON_PATCH,
        &u.patch,
        false,
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
    let name = call.str("deployment")?;
    let vars = call.opts("vars")?;
    let opts = call.opts("opts")?;
    if vars.is_empty() {
        return Err(OpError::bad_input(
            "give the variables to set as a map, e.g. #{LOG_LEVEL: \"debug\"} (() removes one)",
        ));
    }
    let only = opts.str("container")?;
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
        for (key, v) in vars.iter() {
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
    // The version read rides in the patch: a change by someone else since
    // this read is a 409, never overwritten.
    let body = (!patches.is_empty()).then(|| {
        json!({"metadata": {"resourceVersion": d["metadata"]["resourceVersion"]},
               "spec": {"template": {"spec": {"containers": patches}}}})
    });
    Ok((name, k, body, diff))
}

fn is_conflict(e: &OpError) -> bool {
    e.message.contains(": conflict, someone else changed it")
}

/// The keys of a `diff` (`"CONTAINER.VAR"` or `"image"` -> #{from, to})
/// whose `from` differs between two reads, or that only one read has.
fn moved(first: &Map, now: &Map) -> Vec<String> {
    let from = |m: &Map, k: &str| m.get(k).map(|c| crate::value::to_json(c)["from"].clone());
    let mut keys: Vec<String> = first
        .keys()
        .chain(now.keys())
        .map(|k| k.to_string())
        .filter(|k| from(first, k) != from(now, k))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Someone else changed the very fields this call changes, between its
/// read and its write: retrying would overwrite their change.
fn changed_meanwhile(what: &str, name: &str, keys: &[String], first: &Map, now: &Map) -> OpError {
    let show = |m: &Map, k: &str| {
        m.get(k)
            .map(|c| crate::value::to_json(c)["from"].to_string())
            .unwrap_or_else(|| "what this call sets".into())
    };
    let detail: Vec<String> = keys
        .iter()
        .map(|k| format!("{k}: {} when read, {} now", show(first, k), show(now, k)))
        .collect();
    OpError::failed(format!(
        "{what} on {name}: someone else changed {} since it was read; nothing was changed",
        keys.join(", ")
    ))
    .with_cause(detail.join("; "))
    .with_hint(format!(
        "read deployment {name} again (k8s.get(\"deploy\", \"{name}\")) and decide"
    ))
}

fn plan_set_env(call: &mut Call) -> Result<Plan, OpError> {
    let (name, k, body, diff) = env_change(call)?;
    if let Some(b) = &body {
        api::patch(
            call,
            &k,
            &format!("set env on {name}"),
            &deploy_path(&k.namespace, &enc(&name)),
            STRATEGIC,
            b,
            true,
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

pub const SET_ENV: Primitive = Primitive::mutate("set_env", plan_set_env, set_env)
    .params(&[
        req("deployment", Ty::Str).names(DEPLOYMENT_NAMES),
        req("vars", Ty::Map),
        opt(
            "opts",
            Ty::Record(&[field("container", Ty::Str).doc("only this container; default: all")]),
        ),
    ])
    .returns(Ty::Record(&[
        field("deployment", Ty::Str),
        field("changed", Ty::Map)
            .doc("per \"CONTAINER.VAR\" changed: #{from, to}, () for a variable absent before or removed"),
    ]))
    .says(says_set_env)
    .doc("Set (or with () remove) environment variables on the deployment's containers. Starts a rollout when anything changes.\n\
          The write carries the resourceVersion read: a concurrent change of the same variables is refused (nothing changed), any other concurrent change is kept and the write retried on a fresh read.")
    .example(r#"k8s.set_env("api", #{LOG_LEVEL: "debug", OLD_FLAG: ()})"#);
fn set_env(call: &mut Call) -> Result<Dynamic, OpError> {
    let (name, k, mut body, diff) = env_change(call)?;
    // A 409 is retried on a fresh read, as k8s.scale does (controllers bump
    // the version with every status update), unless the variables this call
    // sets changed meanwhile.
    let mut attempt = 0;
    while let Some(b) = &body {
        attempt += 1;
        match api::patch(
            call,
            &k,
            &format!("set env on {name}"),
            &deploy_path(&k.namespace, &enc(&name)),
            STRATEGIC,
            b,
            false,
        ) {
            Ok(_) => break,
            Err(e) if attempt < 5 && is_conflict(&e) => {
                let (_, _, again, now) = env_change(call)?;
                let keys = moved(&diff, &now);
                if !keys.is_empty() {
                    return Err(changed_meanwhile("set env", &name, &keys, &diff, &now));
                }
                body = again;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Dynamic::from_map(map_of([
        ("deployment", name.into()),
        ("changed", Dynamic::from_map(diff)),
    ])))
}

struct ImageChange {
    name: String,
    k: Kube,
    container: String,
    from: String,
    to: String,
    /// The Deployment's resourceVersion when `from` was read.
    version: Value,
}

fn image_change(call: &mut Call) -> Result<ImageChange, OpError> {
    let name = call.str("deployment")?;
    let container = call.str("container")?;
    let image = call.str("image")?;
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
    Ok(ImageChange {
        version: d["metadata"]["resourceVersion"].clone(),
        name,
        k,
        container,
        from,
        to: image,
    })
}

impl ImageChange {
    fn body(&self) -> Value {
        json!({"metadata": {"resourceVersion": self.version},
               "spec": {"template": {"spec": {"containers": [{"name": self.container, "image": self.to}]}}}})
    }
    fn diff(&self) -> Map {
        map_of([("image", change(self.from.clone(), self.to.clone()))])
    }
}

fn plan_set_image(call: &mut Call) -> Result<Plan, OpError> {
    let c = image_change(call)?;
    let (name, container, from, to) = (&c.name, &c.container, &c.from, &c.to);
    if from == to {
        return Ok(plan(
            format!("deployment {name} already runs {to} in {container}: nothing to do"),
            map_of([("deployment", name.clone().into())]),
        ));
    }
    api::patch(
        call,
        &c.k,
        &format!("set image on {name}"),
        &deploy_path(&c.k.namespace, &enc(name)),
        STRATEGIC,
        &c.body(),
        true,
    )?;
    Ok(plan(
        format!(
            "would change {container} of deployment {name} from {from} to {to} (a new rollout)"
        ),
        map_of([
            ("deployment", name.clone().into()),
            ("container", container.clone().into()),
            ("diff", Dynamic::from_map(c.diff())),
        ]),
    ))
}

pub const SET_IMAGE: Primitive = Primitive::mutate("set_image", plan_set_image, set_image)
    .params(&[
        req("deployment", Ty::Str).names(DEPLOYMENT_NAMES),
        req("container", Ty::Str),
        req("image", Ty::Str),
    ])
    .returns(Ty::Record(&[
        field("deployment", Ty::Str),
        field("container", Ty::Str),
        field("from", Ty::Str).doc("the image before"),
        field("to", Ty::Str),
        field("changed", Ty::Bool).doc("false when it already ran that image"),
    ]))
    .says(says_set_image)
    .doc("Change one container's image (a rollout). Nothing is sent when it already runs that image.\n\
          The write carries the resourceVersion read: a concurrent change of the same image is refused (nothing changed), any other concurrent change is kept and the write retried on a fresh read.")
    .example(r#"k8s.set_image("api", "api", "registry.example/api:1.5.0")"#);
fn set_image(call: &mut Call) -> Result<Dynamic, OpError> {
    let mut c = image_change(call)?;
    let first = c.diff();
    // A 409 is retried on a fresh read (controllers bump the version with
    // every status update) unless the image itself changed meanwhile.
    let mut attempt = 0;
    while c.from != c.to {
        attempt += 1;
        match api::patch(
            call,
            &c.k,
            &format!("set image on {}", c.name),
            &deploy_path(&c.k.namespace, &enc(&c.name)),
            STRATEGIC,
            &c.body(),
            false,
        ) {
            Ok(_) => break,
            Err(e) if attempt < 5 && is_conflict(&e) => {
                let again = image_change(call)?;
                let now = again.diff();
                let keys = moved(&first, &now);
                if !keys.is_empty() {
                    return Err(changed_meanwhile("set image", &c.name, &keys, &first, &now));
                }
                c = again;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Dynamic::from_map(map_of([
        ("deployment", c.name.into()),
        ("container", c.container.into()),
        ("from", c.from.clone().into()),
        ("to", c.to.clone().into()),
        ("changed", (c.from != c.to).into()),
    ])))
}

fn says_scale(_: &Call, r: &Dynamic) -> String {
    let ready = match said(r, "ready").as_str() {
        "?" => String::new(),
        n => format!(", {n} ready"),
    };
    format!(
        "scaled deployment {} {} -> {}{ready}",
        said(r, "deployment"),
        said(r, "from"),
        said(r, "to")
    )
}

fn says_restart(_: &Call, r: &Dynamic) -> String {
    format!(
        "restarted deployment {} (generation {})",
        said(r, "deployment"),
        said(r, "generation")
    )
}

fn says_undo(_: &Call, r: &Dynamic) -> String {
    format!(
        "rolled deployment {} back from revision {} to {} ({})",
        said(r, "deployment"),
        said(r, "from_revision"),
        said(r, "to_revision"),
        said(r, "images")
    )
}

fn says_set_env(_: &Call, r: &Dynamic) -> String {
    let keys: Vec<String> = r
        .read_lock::<rhai::Map>()
        .and_then(|m| {
            m.get("changed").and_then(|c| {
                c.read_lock::<rhai::Map>()
                    .map(|c| c.keys().map(|k| k.to_string()).collect())
            })
        })
        .unwrap_or_default();
    match keys.is_empty() {
        true => format!(
            "left the env of deployment {} as it was",
            said(r, "deployment")
        ),
        false => format!(
            "set {} on deployment {} (values not shown)",
            keys.join(", "),
            said(r, "deployment")
        ),
    }
}

fn says_set_image(_: &Call, r: &Dynamic) -> String {
    format!(
        "set image of {} in deployment {} {} -> {}",
        said(r, "container"),
        said(r, "deployment"),
        said(r, "from"),
        said(r, "to")
    )
}
