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

use crate::registry::{opt, req, ModuleDecl, Primitive, Ty};
use apply::*;
use deploy::*;
use export::*;
use logs::*;
use objects::*;
use reads::*;

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
        Primitive::handle("context", select::context, true)
            .params(&[req("name", Ty::Str)])
            .doc("A handle on another kubeconfig context (or [kube.NAME] target), with the same methods as `k8s`.\n\
             Loads the kubeconfig at once, so an unknown context fails on this line. Protection comes from `protected = true` in [kube.NAME].")
            .example(r#"let prod = k8s.context("prod"); prod.deployments()"#),
        Primitive::handle("ns", select::ns, true)
            .params(&[req("name", Ty::Str).names(NAMESPACES)])
            .doc("A handle on another namespace of the same context: `k8s.ns(\"web\")`, `k8s.context(\"prod\").ns(\"web\")`.")
            .example(r#"k8s.ns("kube-system").pods()"#),
        Primitive::read("get", get_any)
            .params(&[req("kind", Ty::Str), opt("name", Ty::Str)])
            .returns(Ty::OneOf(&[Ty::Map, Ty::Rows(&[])]))
            .doc("Any kind the cluster serves, resolved through discovery (plural, singular, Kind or short name: \"deploy\", \"hpa\", \"networkpolicies\").\n\
             With a name: that object (managedFields dropped); without: every object of the kind in the namespace.")
            .example(r#"let d = k8s.get("deploy", "api"); d.spec.replicas"#),
        Primitive::read("deployments", deployments)
            .returns(Ty::Rows(&[]))
            .doc("Deployments of the namespace: #{name, replicas, ready, updated, available, images, revision, progressing, age} (age in seconds).")
            .example("show(k8s.deployments())"),
        Primitive::read("pods", pods)
            .params(&[opt("opts", Ty::Map)])
            .returns(Ty::Rows(&[]))
            .doc("Pods: #{name, phase, status, ready, restarts, last_termination, node, ip, age, owner, uid}.\n\
             opts: selector (label selector \"app=api\"), phase (\"Running\"...), not_ready (true: only pods not Ready, completed ones excluded). last_termination is the reason of a container's last exit, e.g. \"OOMKilled\".")
            .example(r#"let bad = k8s.pods(#{not_ready: true}); let oom = k8s.pods().filter(|p| p.last_termination == "OOMKilled");"#),
        Primitive::read("events", events)
            .params(&[opt("opts", Ty::Map)])
            .returns(Ty::Rows(&[]))
            .doc("Events, newest first: #{ago, type, reason, object, message, count} (ago in seconds).\n\
             opts: since (\"10m\"), type (\"Warning\"), involved (an object name, or kind/name).")
            .example(r#"show(k8s.events(#{since: "15m", type: "Warning"}))"#),
        Primitive::read("logs", logs)
            .params(&[req("pod_or_selector", Ty::Str).names(PODS), opt("opts", Ty::Map)])
            .returns(Ty::Rows(&[]))
            .doc("Log lines of a pod, or of every pod matching a label selector (\"app=api\"): #{pod, line}.\n\
             opts: container, tail (lines per pod), since (\"5m\"), grep (substring), previous (the last terminated container, after a crash).")
            .example(r#"let errors = k8s.logs("app=api", #{tail: 200, grep: "ERROR"}); errors.len()"#),
        Primitive::read("top_pods", top_pods)
            .returns(Ty::Rows(&[]))
            .doc("CPU and memory per pod from metrics.k8s.io: #{name, cpu_m, memory_mi}, busiest first. A clear error when the cluster serves no metrics API.")
            .example("show(k8s.top_pods())"),
        Primitive::read("top_nodes", top_nodes)
            .returns(Ty::Rows(&[]))
            .doc("CPU and memory per node from metrics.k8s.io: #{name, cpu_m, memory_mi}, busiest first. A clear error when the cluster serves no metrics API.")
            .example("show(k8s.top_nodes())"),
        Primitive::read("can_i", can_i)
            .params(&[req("verb", Ty::Str), req("resource", Ty::Str), opt("name", Ty::Str)])
            .returns(Ty::Bool)
            .doc("Whether this identity may do `verb` on `resource` in the handle's namespace, as `kubectl auth can-i` asks the API server (a SelfSubjectAccessReview).\n\
             `resource` is a kind as k8s.get takes it, with an optional subresource: \"deployments/scale\", \"pods/log\". A runbook checks before its first change, so it never stops half-way for lack of a permission.")
            .example(r#"if !k8s.can_i("patch", "deployments/scale") { fail("this identity may not scale deployments"); }"#),
        Primitive::read("hpa", hpa)
            .params(&[opt("name", Ty::Str).names(HPAS)])
            .returns(Ty::OneOf(&[Ty::Map, Ty::Rows(&[])]))
            .doc("HorizontalPodAutoscalers (autoscaling/v2): #{name, target, min, max, current, desired, cpu_pct, cpu_target_pct, limited}.")
            .example(r#"let h = k8s.hpa("api"); if h.current == h.max { print("api is at its HPA maximum") }"#),
        Primitive::read("rollout_history", rollout_history)
            .params(&[req("deployment", Ty::Str).names(DEPLOYMENTS)])
            .returns(Ty::Rows(&[]))
            .doc("The deployment's revisions, from its own ReplicaSets: #{revision, replicaset, images, replicas, current, change_cause, age}.")
            .example(r#"show(k8s.rollout_history("api"))"#),
        Primitive::read("rollout_status", rollout::rollout_status)
            .params(&[req("deployment", Ty::Str).names(DEPLOYMENTS), opt("opts", Ty::Map)])
            .returns(Ty::Map)
            .doc("Wait until the deployment's rollout is complete (as `kubectl rollout status` judges it), showing progress on stderr.\n\
             opts: timeout (default \"5m\"). Fails at once when the rollout exceeded its progress deadline.")
            .example(r#"k8s.rollout_status("api", #{timeout: "3m"})"#)
            .unbounded(),
        Primitive::read("export_ns", export)
            .params(&[opt("namespace", Ty::Str)])
            .returns(Ty::Rows(&[]))
            .doc("Every Deployment, Service, ConfigMap, Secret, ServiceAccount, HPA, CronJob and NetworkPolicy of a namespace, ready to re-apply (status and server-set metadata removed).\n\
             Named export_ns because `export` is a Rhai keyword. \
             Secret values are masked (keys kept): a backup printed to a terminal must not leak them.")
            .example(r#"let objs = k8s.export_ns("default"); print(json.stringify(objs))"#),
        Primitive::mutate("scale", plan_scale, scale)
            .params(&[req("deployment", Ty::Str).names(DEPLOYMENTS), req("replicas", Ty::Int), opt("opts", Ty::Map)])
            .returns(Ty::Map)
            .doc("Scale a deployment. Returns #{deployment, from, to} (and ready with wait).\n\
             opts: current (refuse unless it has exactly this many now, like kubectl --current-replicas), wait (true: until the replicas are ready), timeout (for wait, default \"5m\"). The write carries the resourceVersion read, so a concurrent change is a conflict, not overwritten.")
            .example(r#"k8s.scale("api", 5, #{current: 3, wait: true})"#)
            .unbounded(),
        Primitive::mutate("rollout_restart", plan_rollout_restart, rollout_restart)
            .params(&[req("deployment", Ty::Str).names(DEPLOYMENTS)])
            .returns(Ty::Map)
            .doc("Restart a deployment's pods by a rolling update (the restartedAt annotation, as kubectl rollout restart).")
            .example(r#"k8s.rollout_restart("api"); k8s.rollout_status("api")"#),
        Primitive::mutate("rollout_undo", plan_rollout_undo, rollout_undo)
            .params(&[req("deployment", Ty::Str).names(DEPLOYMENTS), opt("opts", Ty::Map)])
            .returns(Ty::Map)
            .doc("Return a deployment to its previous revision, or #{to_revision: N}. Returns #{deployment, from_revision, to_revision, images}; --dry-run shows the images it returns to.")
            .example(r#"k8s.rollout_undo("api", #{to_revision: 2})"#),
        Primitive::mutate("delete_pod", plan_delete_pod, delete_pod)
            .params(&[req("pod", Ty::Str).names(PODS), opt("opts", Ty::Map)])
            .returns(Ty::Map)
            .doc("Delete a pod with a UID precondition, so a replacement with the same name is never deleted. opts: uid (the exact pod to delete, e.g. from k8s.pods()).")
            .example(r#"let p = k8s.pods(#{selector: "app=api"})[0]; k8s.delete_pod(p.name, #{uid: p.uid})"#),
        Primitive::mutate("patch_hpa", plan_patch_hpa, patch_hpa)
            .params(&[req("name", Ty::Str).names(HPAS), req("opts", Ty::Map)])
            .returns(Ty::Map)
            .doc("Change an HPA's bounds: #{min, max} (either). Refuses min > max.")
            .example(r#"k8s.patch_hpa("api", #{min: 4, max: 20})"#),
        Primitive::mutate("set_env", plan_set_env, set_env)
            .params(&[req("deployment", Ty::Str).names(DEPLOYMENTS), req("vars", Ty::Map), opt("opts", Ty::Map)])
            .returns(Ty::Map)
            .doc("Set (or with () remove) environment variables on the deployment's containers, or #{container: NAME} only. Starts a rollout when anything changes.")
            .example(r#"k8s.set_env("api", #{LOG_LEVEL: "debug", OLD_FLAG: ()})"#),
        Primitive::mutate("set_image", plan_set_image, set_image)
            .params(&[req("deployment", Ty::Str).names(DEPLOYMENTS), req("container", Ty::Str), req("image", Ty::Str)])
            .returns(Ty::Map)
            .doc("Change one container's image (a rollout). Nothing is sent when it already runs that image.")
            .example(r#"k8s.set_image("api", "api", "registry.example/api:1.5.0")"#),
        Primitive::mutate("create_job_from", plan_create_job_from, create_job_from)
            .params(&[req("cronjob", Ty::Str).names(CRONJOBS), opt("name", Ty::Str)])
            .returns(Ty::Map)
            .doc("Run a CronJob now: a Job from its template, owned by it (as kubectl create job --from=cronjob/NAME). Returns #{job, cronjob, uid}.")
            .example(r#"k8s.create_job_from("nightly-report")"#),
        Primitive::mutate("secret_set", plan_secret_set, secret_set)
            .params(&[req("name", Ty::Str), req("secrets", Ty::Map)])
            .returns(Ty::Map)
            .doc("Set keys of a Secret (created when missing). Values are never printed, audited or shown in errors; the result lists keys added, changed and unchanged.")
            .example(r#"k8s.secret_set("api-credentials", #{DB_PASSWORD: env("NEW_DB_PASSWORD")}); k8s.rollout_restart("api")"#),
        Primitive::mutate("apply", plan_apply, apply)
            .params(&[req("manifest", Ty::Str)])
            .returns(Ty::Rows(&[]))
            .doc("Server-side apply of a YAML (or JSON) manifest, one or more documents, as field manager `opsh`. Returns #{kind, name, namespace, action} per object.\n\
             Never forced: a field another manager owns is a conflict, reported with the fields and their manager.")
            .example(r#"k8s.apply("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: flags\ndata:\n  checkout: \"on\"\n")"#),
        Primitive::mutate("patch_service_selector", plan_patch_service_selector, patch_service_selector)
            .params(&[req("service", Ty::Str), req("selector", Ty::Map), opt("opts", Ty::Map)])
            .returns(Ty::Map)
            .doc("Point a Service at other pods (a blue/green switch). Refuses a selector no ready pod matches unless #{allow_empty: true}.")
            .example(r#"k8s.patch_service_selector("web", #{app: "web", version: "green"})"#),
    ],
};
