//! The demo cluster every server starts with: namespaces, two nodes, and in
//! `default` the objects the runbooks talk about (an API with an HPA, a
//! worker that keeps getting OOM-killed, a blue/green pair behind a
//! Service, a CronJob, a Secret, a ConfigMap, network policies).

use super::controllers::OOM_ANNOTATION;
use super::discovery::by_kind;
use super::store::Store;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};

fn put(st: &Store, kind: &str, ns: &str, obj: Value) {
    if let Some(r) = by_kind(kind) {
        let _ = st.create(r, ns, obj, false, Some("sandbox-seed"));
    }
}

fn deployment(
    name: &str,
    labels: Value,
    replicas: i64,
    container: &str,
    image: &str,
    annotations: Value,
) -> Value {
    json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": {"containers": [{"name": container, "image": image, "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                                         "env": [{"name": "LOG_LEVEL", "value": "info"}],
                                         "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}}],
                         "restartPolicy": "Always"}
            }
        }
    })
}

pub fn seed(st: &Store) {
    for ns in ["default", "kube-system", "staging"] {
        put(
            st,
            "Namespace",
            "",
            json!({"metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
        );
    }
    for n in super::controllers::NODES {
        put(
            st,
            "Node",
            "",
            json!({"metadata": {"name": n, "labels": {"kubernetes.io/hostname": n, "kubernetes.io/os": "linux"}},
            "spec": {"podCIDR": format!("10.244.{}.0/24", &n[n.len() - 1..])},
            "status": {"capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"}, "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                       "addresses": [{"type": "InternalIP", "address": super::controllers::host_ip(n)}, {"type": "Hostname", "address": n}],
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                       "nodeInfo": {"kubeletVersion": "v1.31.0", "osImage": "Debian GNU/Linux 13 (trixie)", "kernelVersion": "6.12.0", "containerRuntimeVersion": "containerd://1.7.24", "operatingSystem": "linux", "architecture": "amd64"}}}),
        );
    }
    let d = "default";
    put(
        st,
        "ServiceAccount",
        d,
        json!({"metadata": {"name": "default"}}),
    );
    put(
        st,
        "Deployment",
        d,
        deployment(
            "api",
            json!({"app": "api"}),
            3,
            "api",
            "registry.example/api:1.4.2",
            json!({}),
        ),
    );
    put(
        st,
        "Deployment",
        d,
        deployment(
            "worker",
            json!({"app": "worker"}),
            2,
            "worker",
            "registry.example/worker:2.0.1",
            json!({OOM_ANNOTATION: "true"}),
        ),
    );
    put(
        st,
        "Deployment",
        d,
        deployment(
            "web-blue",
            json!({"app": "web", "version": "blue"}),
            2,
            "web",
            "registry.example/web:3.1.0",
            json!({}),
        ),
    );
    put(
        st,
        "Deployment",
        d,
        deployment(
            "web-green",
            json!({"app": "web", "version": "green"}),
            2,
            "web",
            "registry.example/web:3.2.0",
            json!({}),
        ),
    );
    put(
        st,
        "Service",
        d,
        json!({"metadata": {"name": "web"}, "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.20", "selector": {"app": "web", "version": "blue"}, "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}}),
    );
    put(
        st,
        "Service",
        d,
        json!({"metadata": {"name": "api"}, "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "selector": {"app": "api"}, "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}}),
    );
    put(
        st,
        "HorizontalPodAutoscaler",
        d,
        json!({"metadata": {"name": "api"}, "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}, "minReplicas": 2, "maxReplicas": 10,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]}}),
    );
    put(
        st,
        "CronJob",
        d,
        json!({"metadata": {"name": "nightly-report"}, "spec": {
        "schedule": "0 2 * * *", "concurrencyPolicy": "Forbid", "suspend": false, "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
        "jobTemplate": {"spec": {"backoffLimit": 2, "template": {"metadata": {"labels": {"app": "nightly-report"}},
            "spec": {"restartPolicy": "OnFailure", "containers": [{"name": "report", "image": "registry.example/report:1.0", "args": ["--since", "24h"]}]}}}}}}),
    );
    put(
        st,
        "Secret",
        d,
        json!({"metadata": {"name": "api-credentials"}, "type": "Opaque",
        "data": {"DB_PASSWORD": B64.encode(b"initial-sandbox-password"), "API_KEY": B64.encode(b"sandbox-api-key")}}),
    );
    put(
        st,
        "ConfigMap",
        d,
        json!({"metadata": {"name": "api-config"}, "data": {"FEATURE_CHECKOUT": "on", "CACHE_TTL": "300"}}),
    );
    put(
        st,
        "NetworkPolicy",
        d,
        json!({"metadata": {"name": "default-deny-ingress"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}),
    );
    put(
        st,
        "NetworkPolicy",
        d,
        json!({"metadata": {"name": "allow-web-to-api"}, "spec": {"podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"protocol": "TCP", "port": 8080}]}]}}),
    );
}
