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
        // The parser quotes the lines around the fault: a Secret's values
        // are data under any key, so for a Secret only the first line.
        let mut cause = crate::redact::file_error(&e.to_string(), &text);
        if text.contains("kind: Secret") {
            cause = cause.lines().next().unwrap_or("").to_string();
        }
        OpError::bad_input(format!("{me}: the manifest is not valid YAML")).with_cause(cause)
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
          Never forced: a field another manager owns is a conflict, reported with the fields and their manager. Every document passes the server's dry run (dryRun=All) before any is applied; should one still fail when applied (a concurrent change), the error names the objects already applied.")
    .example(r#"k8s.apply("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: flags\ndata:\n  checkout: \"on\"\n")"#);
fn apply(call: &mut Call) -> Result<Dynamic, OpError> {
    let (k, key, docs) = apply_docs(call)?;
    // Every document passes the server's dry run before any is applied, so
    // a conflict or an invalid object in a later one leaves nothing half done.
    for (n, d) in docs.iter().enumerate() {
        apply_one(call, &k, &key, d, true).map_err(|e| {
            let mut e = in_document(e, n, &docs);
            e.hint = Some(format!(
                "nothing was applied: every document is validated by the server first{}",
                e.hint.map(|h| format!(" ({h})")).unwrap_or_default()
            ));
            e
        })?;
    }
    let mut rows = Array::new();
    let mut landed: Vec<String> = Vec::new();
    for (n, d) in docs.iter().enumerate() {
        match apply_one(call, &k, &key, d, false) {
            Ok(m) => {
                let field = |f: &str| m.get(f).map(|v| v.to_string()).unwrap_or_default();
                landed.push(format!(
                    "{}/{} ({})",
                    field("kind"),
                    field("name"),
                    field("action")
                ));
                rows.push(Dynamic::from_map(m));
            }
            // Something changed between the dry run and the write.
            Err(e) => {
                let mut e = in_document(e, n, &docs);
                e.hint = Some(if landed.is_empty() {
                    "nothing was applied".into()
                } else {
                    format!(
                        "already applied, and left so: {}; the documents after this one were not applied",
                        landed.join(", ")
                    )
                });
                return Err(e);
            }
        }
    }
    Ok(rows.into())
}

/// Names the failing document of a multi-document manifest.
fn in_document(mut e: OpError, n: usize, docs: &[Value]) -> OpError {
    if docs.len() > 1 {
        let d = &docs[n];
        e.message = format!(
            "document {} of {} ({}/{}): {}",
            n + 1,
            docs.len(),
            s(d, "kind"),
            s(d, "metadata.name"),
            e.message
        );
    }
    e
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
