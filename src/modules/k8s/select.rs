//! `k8s.context(name)` and `.ns(name)`: handles whose target is
//! `TARGET/NAMESPACE` (see config.rs, resolve_kube).

use super::client::connect;
use super::NAMESPACE_NAMES;
use crate::dispatch::{Call, OpError};
use crate::engine::Handle;
use crate::registry::{req, Primitive, Ty};
use rhai::Dynamic;

fn handle(call: &mut Call, spec: String) -> Result<Dynamic, OpError> {
    let t = call
        .session
        .resolve(crate::config::Kind::Kube, Some(&spec))?;
    call.set_target(t);
    // Loads the kubeconfig now, so a wrong context fails on this line.
    connect(call)?;
    Ok(Dynamic::from(Handle {
        module: call.prim.module.name,
        target: Some(spec),
    }))
}

pub const CONTEXT: Primitive = Primitive::handle("context", context, true)
    .params(&[req("name", Ty::Str).target()])
    .doc("A handle on another kubeconfig context (or [kube.NAME] target), with the same methods as `k8s`.\n\
          Loads the kubeconfig at once, so an unknown context fails on this line. Protection comes from `protected = true` in [kube.NAME].")
    .example(r#"let prod = k8s.context("prod"); prod.deployments()"#);
fn context(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = call.str("name")?;
    if name.contains('/') || name.is_empty() {
        return Err(OpError::bad_input(format!(
            "`{name}` is not a context or kube target name"
        )));
    }
    let ns = current(call)?.1;
    handle(call, format!("{name}/{ns}"))
}

pub const NS: Primitive = Primitive::handle("ns", ns, true)
    .params(&[req("name", Ty::Str).names(NAMESPACE_NAMES)])
    .doc("A handle on another namespace of the same context: `k8s.ns(\"web\")`, `k8s.context(\"prod\").ns(\"web\")`.")
    .example(r#"k8s.ns("kube-system").pods()"#);
fn ns(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = call.str("name")?;
    if name.contains('/') || name.is_empty() {
        return Err(OpError::bad_input(format!(
            "`{name}` is not a namespace name"
        )));
    }
    let ctx = current(call)?.0;
    handle(call, format!("{ctx}/{name}"))
}

/// (target-or-context, namespace) of the handle this was called on.
fn current(call: &mut Call) -> Result<(String, String), OpError> {
    let t = call.target()?;
    let (c, n) = t.name.split_once('/').unwrap_or((t.name.as_str(), ""));
    // The default target's display names stand for "no context named".
    let c = if c == "current-context" || c == crate::config::IN_CLUSTER {
        ""
    } else {
        c
    };
    Ok((c.to_string(), n.to_string()))
}
