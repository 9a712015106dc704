//! Kubernetes, on the kube crate: the current kubeconfig context and
//! namespace by default, `k8s.context(..)` / `.ns(..)` for others, and
//! in-cluster config inside a pod. This file is the module's list; each
//! primitive is declared beside its function: select.rs (handles),
//! reads.rs, logs.rs, export.rs, rollout.rs (reads), deploy.rs,
//! objects.rs, apply.rs, generic.rs (patch, delete, set_resources,
//! autoscale, describe), exec.rs, watch.rs, scale_guard.rs (HPAs against
//! k8s.scale). client.rs connects, api.rs holds
//! paths, discovery and shared helpers.

mod api;
mod apply;
mod client;
mod deploy;
mod exec;
mod export;
mod generic;
mod incluster;
mod logs;
mod objects;
mod reads;
mod rollout;
mod scale_guard;
mod select;
mod watch;

pub use client::{current_context_label, identity};

use crate::registry::ModuleDecl;

// What name arguments name, for the REPL's live completion.
const DEPLOYMENT_NAMES: &str = "k8s.deployments().map(|d| d.name)";
const POD_NAMES: &str = "k8s.pods().map(|p| p.name)";
const NAMESPACE_NAMES: &str = r#"k8s.get("namespaces").map(|n| n.metadata.name)"#;
const HPA_NAMES: &str = r#"k8s.get("hpa").map(|h| h.metadata.name)"#;
const CRONJOB_NAMES: &str = r#"k8s.get("cronjobs").map(|c| c.metadata.name)"#;

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "k8s",
    doc: "Kubernetes: the current kubeconfig context and namespace (KUBECONFIG, ~/.kube/config, or in-cluster), or [kube.NAME] targets. Mutations validate with server-side dry run under --dry-run.",
    target: Some(crate::config::Kind::Kube),
    primitives: &[
        select::CONTEXT,
        select::NS,
        reads::GET,
        reads::DEPLOYMENTS,
        reads::PODS,
        reads::EVENTS,
        logs::LOGS,
        logs::TOP_PODS,
        logs::TOP_NODES,
        reads::CAN_I,
        reads::HPA,
        reads::ROLLOUT_HISTORY,
        rollout::ROLLOUT_STATUS,
        export::EXPORT_NS,
        deploy::SCALE,
        deploy::ROLLOUT_RESTART,
        deploy::ROLLOUT_UNDO,
        objects::DELETE_POD,
        objects::PATCH_HPA,
        deploy::SET_ENV,
        deploy::SET_IMAGE,
        objects::CREATE_JOB_FROM,
        objects::SECRET_SET,
        apply::APPLY,
        objects::PATCH_SERVICE_SELECTOR,
        generic::PATCH,
        generic::DELETE,
        generic::SET_RESOURCES,
        generic::AUTOSCALE,
        generic::DESCRIBE,
        exec::EXEC,
        watch::WATCH,
    ],
};
