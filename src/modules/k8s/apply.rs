//! Server-side apply of a YAML or JSON manifest as field manager `opsh`,
//! never forced: a conflict names the fields and the manager owning them.

// `req` below is a declared parameter; a request to the API server is `api::req`.
use super::api::{self, *};
use super::client::{connect, Kube};
use crate::dispatch::said;
use crate::dispatch::{Call, OpError, Plan};
use crate::registry::{field, req, Primitive, Ty};
use crate::value::map_of;
use rhai::{Array, Dynamic, Map};
use serde_json::Value;

// ---- server-side apply ----

fn apply_docs(call: &mut Call) -> Result<(Kube, String, Vec<Value>), OpError> {
    let text = call.str("manifest")?;
    let me = call.prim.full_name();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).map_err(|e| {
        OpError::bad_input(format!("{me}: the manifest is not valid YAML")).with_cause(e)
    })?;
    let docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
    if docs.is_empty() {
        return Err(OpError::bad_input(format!(
            "{me}: the manifest holds no objects"
        )));
    }
    for d in &docs {
        if s(d, "apiVersion").is_empty()
            || s(d, "kind").is_empty()
            || s(d, "metadata.name").is_empty()
        {
            return Err(OpError::bad_input(format!(
                "{me}: every object needs apiVersion, kind and metadata.name"
            )));
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
    let after = api::req(
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

fn plan_apply(call: &mut Call) -> Result<Plan, OpError> {
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

pub const APPLY: Primitive = Primitive::mutate("apply", plan_apply, apply)
    .params(&[req("manifest", Ty::Str)])
    .returns(Ty::Rows(&[
        field("kind", Ty::Str),
        field("name", Ty::Str),
        field("namespace", Ty::Str),
        field("action", Ty::Str).doc("\"created\", \"configured\" or \"unchanged\""),
    ]))
    .says(says_apply)
    .doc("Server-side apply of a YAML (or JSON) manifest, one or more documents, as field manager `opsh`; one row per object.\n\
          Never forced: a field another manager owns is a conflict, reported with the fields and their manager.")
    .example(r#"k8s.apply("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: flags\ndata:\n  checkout: \"on\"\n")"#);
fn apply(call: &mut Call) -> Result<Dynamic, OpError> {
    let (k, key, docs) = apply_docs(call)?;
    let mut rows = Array::new();
    for d in &docs {
        rows.push(Dynamic::from_map(apply_one(call, &k, &key, d, false)?));
    }
    Ok(rows.into())
}

fn says_apply(_: &Call, r: &Dynamic) -> String {
    let objects: Vec<String> = r
        .read_lock::<rhai::Array>()
        .map(|a| {
            a.iter()
                .map(|o| {
                    format!(
                        "{} {} {}/{}",
                        said(o, "action"),
                        said(o, "kind").to_lowercase(),
                        said(o, "namespace"),
                        said(o, "name")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    format!("k8s.apply: {}", objects.join(", "))
}
