//! A namespace backup: its objects as they would be re-applied, Secret
//! values masked.

use super::api::*;
use super::client::connect;
use crate::dispatch::{Call, OpError};
use crate::registry::{opt, Primitive, Ty};
use rhai::{Array, Dynamic};
use serde_json::Value;

/// The kinds a namespace backup holds, as (api prefix, plural, kind).
const EXPORTED: &[(&str, &str, &str)] = &[
    ("/api/v1", "configmaps", "ConfigMap"),
    ("/api/v1", "secrets", "Secret"),
    ("/api/v1", "services", "Service"),
    ("/api/v1", "serviceaccounts", "ServiceAccount"),
    ("/apis/apps/v1", "deployments", "Deployment"),
    (
        "/apis/autoscaling/v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
    ),
    ("/apis/batch/v1", "cronjobs", "CronJob"),
    (
        "/apis/networking.k8s.io/v1",
        "networkpolicies",
        "NetworkPolicy",
    ),
];

/// An object as it would be re-applied: no status, no server-set metadata.
pub fn for_backup(mut o: Value, api_version: &str, kind: &str) -> Value {
    o["apiVersion"] = Value::String(api_version.into());
    o["kind"] = Value::String(kind.into());
    if let Some(m) = o.as_object_mut() {
        m.remove("status");
    }
    if let Some(m) = o["metadata"].as_object_mut() {
        for f in [
            "managedFields",
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "selfLink",
            "ownerReferences",
        ] {
            m.remove(f);
        }
        if let Some(a) = m.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove("deployment.kubernetes.io/revision");
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
    if kind == "Service" {
        if let Some(sp) = o["spec"].as_object_mut() {
            sp.remove("clusterIP");
            sp.remove("clusterIPs");
        }
    }
    o
}

pub const EXPORT_NS: Primitive = Primitive::read("export_ns", export)
    .params(&[opt("namespace", Ty::Str)])
    .returns(Ty::List(&Ty::Map))
    .doc("Every Deployment, Service, ConfigMap, Secret, ServiceAccount, HPA, CronJob and NetworkPolicy of a namespace, ready to re-apply (status and server-set metadata removed).\n\
          Named export_ns because `export` is a Rhai keyword. \
          Secret values are masked (keys kept): a backup printed to a terminal must not leak them.")
    .example(r#"let objs = k8s.export_ns("default"); print(json.stringify(objs))"#);
fn export(call: &mut Call) -> Result<Dynamic, OpError> {
    let ns_arg = call.opt_str("namespace")?;
    let (k, _) = connect(call)?;
    let ns = ns_arg.unwrap_or_else(|| k.namespace.clone());
    let mut out = Array::new();
    for (prefix, plural, kind) in EXPORTED {
        let list = get(
            call,
            &k,
            &format!("list {plural}"),
            &format!("{prefix}/namespaces/{ns}/{plural}"),
        )?;
        let api_version = prefix
            .trim_start_matches("/apis/")
            .trim_start_matches("/api/");
        for o in items(&list) {
            if *kind == "ServiceAccount" && s(&o, "metadata.name") == "default" {
                continue;
            }
            let mut o = for_backup(o, api_version, kind);
            if *kind == "Secret" {
                // Keys only: a backup shown on a terminal or in a log must not leak values.
                if let Some(d) = o["data"].as_object_mut() {
                    for v in d.values_mut() {
                        *v = Value::String(crate::redact::MASK.into());
                    }
                }
            }
            out.push(to_dyn(&o));
        }
    }
    Ok(out.into())
}
