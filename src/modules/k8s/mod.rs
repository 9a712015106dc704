//! Kubernetes, on the kube crate: the current kubeconfig context and
//! namespace by default, `k8s.context(..)` / `.ns(..)` for others, and
//! in-cluster config inside a pod. Declarations here; client.rs connects,
//! api.rs holds paths, discovery and shared helpers; reads.rs, logs.rs,
//! export.rs, rollout.rs, deploy.rs, objects.rs and apply.rs do the work.

mod api;
mod apply;
mod client;
mod deploy;
mod export;
mod incluster;
mod logs;
mod objects;
mod reads;
mod rollout;
mod select;

pub use client::current_context_label;

use crate::registry::{opt, req, CallTimeout, Effect, ModuleDecl, Primitive};
use apply::*;
use deploy::*;
use export::*;
use logs::*;
use objects::*;
use reads::*;

macro_rules! prim {
    ($name:expr, $params:expr, $returns:expr, $doc:expr, $example:expr, $effect:expr) => {
        prim!(
            $name,
            $params,
            $returns,
            $doc,
            $example,
            $effect,
            CallTimeout::Default
        )
    };
    ($name:expr, $params:expr, $returns:expr, $doc:expr, $example:expr, $effect:expr, $timeout:expr) => {
        Primitive {
            module: "k8s",
            name: $name,
            params: $params,
            returns: $returns,
            doc: $doc,
            example: $example,
            effect: $effect,
            timeout: $timeout,
        }
    };
}

// What name arguments name, for the REPL's live completion.
const DEPLOYMENTS: &str = "k8s.deployments().map(|d| d.name)";
const PODS: &str = "k8s.pods().map(|p| p.name)";
const NAMESPACES: &str = r#"k8s.get("namespaces").map(|n| n.metadata.name)"#;
const HPAS: &str = r#"k8s.get("hpa").map(|h| h.metadata.name)"#;
const CRONJOBS: &str = r#"k8s.get("cronjobs").map(|c| c.metadata.name)"#;

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "k8s",
    doc: "Kubernetes: the current kubeconfig context and namespace (KUBECONFIG, ~/.kube/config, or in-cluster), or [kube.NAME] targets. Mutations validate with server-side dry run under --dry-run.",
    target: Some(crate::config::Kind::Kube),
    primitives: &[
        prim!("context", &[req("name", "string")], "k8s handle",
            "A handle on another kubeconfig context (or [kube.NAME] target), with the same methods as `k8s`.\n\
             Loads the kubeconfig at once, so an unknown context fails on this line. Protection comes from `protected = true` in [kube.NAME].",
            r#"let prod = k8s.context("prod"); prod.deployments()"#, Effect::Read(select::context)),
        prim!("ns", &[req("name", "string").names(NAMESPACES)], "k8s handle",
            "A handle on another namespace of the same context: `k8s.ns(\"web\")`, `k8s.context(\"prod\").ns(\"web\")`.",
            r#"k8s.ns("kube-system").pods()"#, Effect::Read(select::ns)),
        prim!("get", &[req("kind", "string"), opt("name", "string")], "map or array of maps",
            "Any kind the cluster serves, resolved through discovery (plural, singular, Kind or short name: \"deploy\", \"hpa\", \"networkpolicies\").\n\
             With a name: that object (managedFields dropped); without: every object of the kind in the namespace.",
            r#"let d = k8s.get("deploy", "api"); d.spec.replicas"#, Effect::Read(get_any)),
        prim!("deployments", &[], "array of maps",
            "Deployments of the namespace: #{name, replicas, ready, updated, available, images, revision, progressing, age} (age in seconds).",
            "show(k8s.deployments())", Effect::Read(deployments)),
        prim!("pods", &[opt("opts", "map")], "array of maps",
            "Pods: #{name, phase, status, ready, restarts, last_termination, node, ip, age, owner, uid}.\n\
             opts: selector (label selector \"app=api\"), phase (\"Running\"...), not_ready (true: only pods not Ready, completed ones excluded). last_termination is the reason of a container's last exit, e.g. \"OOMKilled\".",
            r#"let bad = k8s.pods(#{not_ready: true}); let oom = k8s.pods().filter(|p| p.last_termination == "OOMKilled");"#, Effect::Read(pods)),
        prim!("events", &[opt("opts", "map")], "array of maps",
            "Events, newest first: #{ago, type, reason, object, message, count} (ago in seconds).\n\
             opts: since (\"10m\"), type (\"Warning\"), involved (an object name, or kind/name).",
            r#"show(k8s.events(#{since: "15m", type: "Warning"}))"#, Effect::Read(events)),
        prim!("logs", &[req("pod_or_selector", "string").names(PODS), opt("opts", "map")], "array of maps",
            "Log lines of a pod, or of every pod matching a label selector (\"app=api\"): #{pod, line}.\n\
             opts: container, tail (lines per pod), since (\"5m\"), grep (substring), previous (the last terminated container, after a crash).",
            r#"let errors = k8s.logs("app=api", #{tail: 200, grep: "ERROR"}); errors.len()"#, Effect::Read(logs)),
        prim!("top_pods", &[], "array of maps",
            "CPU and memory per pod from metrics.k8s.io: #{name, cpu_m, memory_mi}, busiest first. A clear error when the cluster serves no metrics API.",
            "show(k8s.top_pods())", Effect::Read(top_pods)),
        prim!("top_nodes", &[], "array of maps",
            "CPU and memory per node from metrics.k8s.io: #{name, cpu_m, memory_mi}, busiest first. A clear error when the cluster serves no metrics API.",
            "show(k8s.top_nodes())", Effect::Read(top_nodes)),
        prim!("can_i", &[req("verb", "string"), req("resource", "string"), opt("name", "string")], "bool",
            "Whether this identity may do `verb` on `resource` in the handle's namespace, as `kubectl auth can-i` asks the API server (a SelfSubjectAccessReview).\n\
             `resource` is a kind as k8s.get takes it, with an optional subresource: \"deployments/scale\", \"pods/log\". A runbook checks before its first change, so it never stops half-way for lack of a permission.",
            r#"if !k8s.can_i("patch", "deployments/scale") { fail("this identity may not scale deployments"); }"#, Effect::Read(can_i)),
        prim!("hpa", &[opt("name", "string").names(HPAS)], "map or array of maps",
            "HorizontalPodAutoscalers (autoscaling/v2): #{name, target, min, max, current, desired, cpu_pct, cpu_target_pct, limited}.",
            r#"let h = k8s.hpa("api"); if h.current == h.max { print("api is at its HPA maximum") }"#, Effect::Read(hpa)),
        prim!("rollout_history", &[req("deployment", "string").names(DEPLOYMENTS)], "array of maps",
            "The deployment's revisions, from its own ReplicaSets: #{revision, replicaset, images, replicas, current, change_cause, age}.",
            r#"show(k8s.rollout_history("api"))"#, Effect::Read(rollout_history)),
        prim!("rollout_status", &[req("deployment", "string").names(DEPLOYMENTS), opt("opts", "map")], "map",
            "Wait until the deployment's rollout is complete (as `kubectl rollout status` judges it), showing progress on stderr.\n\
             opts: timeout (default \"5m\"). Fails at once when the rollout exceeded its progress deadline.",
            r#"k8s.rollout_status("api", #{timeout: "3m"})"#, Effect::Read(rollout::rollout_status), CallTimeout::Unbounded),
        prim!("export_ns", &[opt("namespace", "string")], "array of maps",
            "Every Deployment, Service, ConfigMap, Secret, ServiceAccount, HPA, CronJob and NetworkPolicy of a namespace, ready to re-apply (status and server-set metadata removed).\n\
             Named export_ns because `export` is a Rhai keyword. \
             Secret values are masked (keys kept): a backup printed to a terminal must not leak them.",
            r#"let objs = k8s.export_ns("default"); print(json.stringify(objs))"#, Effect::Read(export)),
        prim!("scale", &[req("deployment", "string").names(DEPLOYMENTS), req("replicas", "int"), opt("opts", "map")], "map",
            "Scale a deployment. Returns #{deployment, from, to} (and ready with wait).\n\
             opts: current (refuse unless it has exactly this many now, like kubectl --current-replicas), wait (true: until the replicas are ready), timeout (for wait, default \"5m\"). The write carries the resourceVersion read, so a concurrent change is a conflict, not overwritten.",
            r#"k8s.scale("api", 5, #{current: 3, wait: true})"#, Effect::Mutate { plan: plan_scale, apply: scale }, CallTimeout::Unbounded),
        prim!("rollout_restart", &[req("deployment", "string").names(DEPLOYMENTS)], "map",
            "Restart a deployment's pods by a rolling update (the restartedAt annotation, as kubectl rollout restart).",
            r#"k8s.rollout_restart("api"); k8s.rollout_status("api")"#, Effect::Mutate { plan: plan_rollout_restart, apply: rollout_restart }),
        prim!("rollout_undo", &[req("deployment", "string").names(DEPLOYMENTS), opt("opts", "map")], "map",
            "Return a deployment to its previous revision, or #{to_revision: N}. Returns #{deployment, from_revision, to_revision, images}; --dry-run shows the images it returns to.",
            r#"k8s.rollout_undo("api", #{to_revision: 2})"#, Effect::Mutate { plan: plan_rollout_undo, apply: rollout_undo }),
        prim!("delete_pod", &[req("pod", "string").names(PODS), opt("opts", "map")], "map",
            "Delete a pod with a UID precondition, so a replacement with the same name is never deleted. opts: uid (the exact pod to delete, e.g. from k8s.pods()).",
            r#"let p = k8s.pods(#{selector: "app=api"})[0]; k8s.delete_pod(p.name, #{uid: p.uid})"#, Effect::Mutate { plan: plan_delete_pod, apply: delete_pod }),
        prim!("patch_hpa", &[req("name", "string").names(HPAS), req("opts", "map")], "map",
            "Change an HPA's bounds: #{min, max} (either). Refuses min > max.",
            r#"k8s.patch_hpa("api", #{min: 4, max: 20})"#, Effect::Mutate { plan: plan_patch_hpa, apply: patch_hpa }),
        prim!("set_env", &[req("deployment", "string").names(DEPLOYMENTS), req("vars", "map"), opt("opts", "map")], "map",
            "Set (or with () remove) environment variables on the deployment's containers, or #{container: NAME} only. Starts a rollout when anything changes.",
            r#"k8s.set_env("api", #{LOG_LEVEL: "debug", OLD_FLAG: ()})"#, Effect::Mutate { plan: plan_set_env, apply: set_env }),
        prim!("set_image", &[req("deployment", "string").names(DEPLOYMENTS), req("container", "string"), req("image", "string")], "map",
            "Change one container's image (a rollout). Nothing is sent when it already runs that image.",
            r#"k8s.set_image("api", "api", "registry.example/api:1.5.0")"#, Effect::Mutate { plan: plan_set_image, apply: set_image }),
        prim!("create_job_from", &[req("cronjob", "string").names(CRONJOBS), opt("name", "string")], "map",
            "Run a CronJob now: a Job from its template, owned by it (as kubectl create job --from=cronjob/NAME). Returns #{job, cronjob, uid}.",
            r#"k8s.create_job_from("nightly-report")"#, Effect::Mutate { plan: plan_create_job_from, apply: create_job_from }),
        prim!("secret_set", &[req("name", "string"), req("secrets", "map")], "map",
            "Set keys of a Secret (created when missing). Values are never printed, audited or shown in errors; the result lists keys added, changed and unchanged.",
            r#"k8s.secret_set("api-credentials", #{DB_PASSWORD: env("NEW_DB_PASSWORD")}); k8s.rollout_restart("api")"#, Effect::Mutate { plan: plan_secret_set, apply: secret_set }),
        prim!("apply", &[req("manifest", "string")], "array of maps",
            "Server-side apply of a YAML (or JSON) manifest, one or more documents, as field manager `opsh`. Returns #{kind, name, namespace, action} per object.\n\
             Never forced: a field another manager owns is a conflict, reported with the fields and their manager.",
            r#"k8s.apply("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: flags\ndata:\n  checkout: \"on\"\n")"#, Effect::Mutate { plan: plan_apply, apply }),
        prim!("patch_service_selector", &[req("service", "string"), req("selector", "map"), opt("opts", "map")], "map",
            "Point a Service at other pods (a blue/green switch). Refuses a selector no ready pod matches unless #{allow_empty: true}.",
            r#"k8s.patch_service_selector("web", #{app: "web", version: "green"})"#, Effect::Mutate { plan: plan_patch_service_selector, apply: patch_service_selector }),
    ],
};
