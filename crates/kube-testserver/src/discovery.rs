//! The resource kinds the test server knows, and the discovery documents
//! (/api, /apis, /version) kubectl and the kube crate read first.

use serde_json::{json, Value};

pub struct Res {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short: &'static [&'static str],
    /// Subresources served besides the object itself.
    pub subs: &'static [(&'static str, &'static str, &'static str, &'static str)],
}

impl Res {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    /// Metrics are computed on request, never stored or written.
    pub fn computed(&self) -> bool {
        self.group == "metrics.k8s.io"
    }
    /// Self-subject reviews: created to ask a question, never stored.
    pub fn review(&self) -> bool {
        self.group == "authorization.k8s.io" || self.group == "authentication.k8s.io"
    }
    /// The categories kubectl expands (`kubectl get all`).
    pub fn categories(&self) -> &'static [&'static str] {
        match self.kind {
            "Pod" | "Service" | "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet"
            | "Job" | "CronJob" => &["all"],
            "HorizontalPodAutoscaler" if self.version == "v2" => &["all"],
            _ => &[],
        }
    }
}

const SCALE: (&str, &str, &str, &str) = ("scale", "autoscaling", "v1", "Scale");

pub static RESOURCES: &[Res] = &[
    Res {
        group: "",
        version: "v1",
        plural: "namespaces",
        kind: "Namespace",
        namespaced: false,
        short: &["ns"],
        subs: &[],
    },
    Res {
        group: "",
        version: "v1",
        plural: "nodes",
        kind: "Node",
        namespaced: false,
        short: &["no"],
        subs: &[],
    },
    Res {
        group: "",
        version: "v1",
        plural: "pods",
        kind: "Pod",
        namespaced: true,
        short: &["po"],
        subs: &[
            ("log", "", "v1", "Pod"),
            ("status", "", "v1", "Pod"),
            ("eviction", "policy", "v1", "Eviction"),
        ],
    },
    Res {
        group: "",
        version: "v1",
        plural: "services",
        kind: "Service",
        namespaced: true,
        short: &["svc"],
        subs: &[],
    },
    Res {
        group: "",
        version: "v1",
        plural: "configmaps",
        kind: "ConfigMap",
        namespaced: true,
        short: &["cm"],
        subs: &[],
    },
    Res {
        group: "",
        version: "v1",
        plural: "secrets",
        kind: "Secret",
        namespaced: true,
        short: &[],
        subs: &[],
    },
    Res {
        group: "",
        version: "v1",
        plural: "events",
        kind: "Event",
        namespaced: true,
        short: &["ev"],
        subs: &[],
    },
    Res {
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        kind: "ServiceAccount",
        namespaced: true,
        short: &["sa"],
        subs: &[],
    },
    Res {
        group: "apps",
        version: "v1",
        plural: "deployments",
        kind: "Deployment",
        namespaced: true,
        short: &["deploy"],
        subs: &[SCALE, ("status", "apps", "v1", "Deployment")],
    },
    Res {
        group: "apps",
        version: "v1",
        plural: "replicasets",
        kind: "ReplicaSet",
        namespaced: true,
        short: &["rs"],
        subs: &[SCALE, ("status", "apps", "v1", "ReplicaSet")],
    },
    Res {
        group: "autoscaling",
        version: "v2",
        plural: "horizontalpodautoscalers",
        kind: "HorizontalPodAutoscaler",
        namespaced: true,
        short: &["hpa"],
        subs: &[("status", "autoscaling", "v2", "HorizontalPodAutoscaler")],
    },
    // The same objects as autoscaling/v2, converted (convert.rs): by_kind
    // finds the v2 entry above first.
    Res {
        group: "autoscaling",
        version: "v1",
        plural: "horizontalpodautoscalers",
        kind: "HorizontalPodAutoscaler",
        namespaced: true,
        short: &["hpa"],
        subs: &[("status", "autoscaling", "v1", "HorizontalPodAutoscaler")],
    },
    Res {
        group: "apps",
        version: "v1",
        plural: "statefulsets",
        kind: "StatefulSet",
        namespaced: true,
        short: &["sts"],
        subs: &[SCALE, ("status", "apps", "v1", "StatefulSet")],
    },
    Res {
        group: "apps",
        version: "v1",
        plural: "daemonsets",
        kind: "DaemonSet",
        namespaced: true,
        short: &["ds"],
        subs: &[("status", "apps", "v1", "DaemonSet")],
    },
    Res {
        group: "",
        version: "v1",
        plural: "persistentvolumeclaims",
        kind: "PersistentVolumeClaim",
        namespaced: true,
        short: &["pvc"],
        subs: &[("status", "", "v1", "PersistentVolumeClaim")],
    },
    Res {
        group: "",
        version: "v1",
        plural: "endpoints",
        kind: "Endpoints",
        namespaced: true,
        short: &["ep"],
        subs: &[],
    },
    Res {
        group: "discovery.k8s.io",
        version: "v1",
        plural: "endpointslices",
        kind: "EndpointSlice",
        namespaced: true,
        short: &[],
        subs: &[],
    },
    Res {
        group: "networking.k8s.io",
        version: "v1",
        plural: "ingresses",
        kind: "Ingress",
        namespaced: true,
        short: &["ing"],
        subs: &[("status", "networking.k8s.io", "v1", "Ingress")],
    },
    Res {
        group: "policy",
        version: "v1",
        plural: "poddisruptionbudgets",
        kind: "PodDisruptionBudget",
        namespaced: true,
        short: &["pdb"],
        subs: &[("status", "policy", "v1", "PodDisruptionBudget")],
    },
    Res {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "roles",
        kind: "Role",
        namespaced: true,
        short: &[],
        subs: &[],
    },
    Res {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "rolebindings",
        kind: "RoleBinding",
        namespaced: true,
        short: &[],
        subs: &[],
    },
    Res {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "clusterroles",
        kind: "ClusterRole",
        namespaced: false,
        short: &[],
        subs: &[],
    },
    Res {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "clusterrolebindings",
        kind: "ClusterRoleBinding",
        namespaced: false,
        short: &[],
        subs: &[],
    },
    Res {
        group: "batch",
        version: "v1",
        plural: "jobs",
        kind: "Job",
        namespaced: true,
        short: &[],
        subs: &[("status", "batch", "v1", "Job")],
    },
    Res {
        group: "batch",
        version: "v1",
        plural: "cronjobs",
        kind: "CronJob",
        namespaced: true,
        short: &["cj"],
        subs: &[("status", "batch", "v1", "CronJob")],
    },
    Res {
        group: "networking.k8s.io",
        version: "v1",
        plural: "networkpolicies",
        kind: "NetworkPolicy",
        namespaced: true,
        short: &["netpol"],
        subs: &[],
    },
    Res {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "selfsubjectaccessreviews",
        kind: "SelfSubjectAccessReview",
        namespaced: false,
        short: &[],
        subs: &[],
    },
    Res {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "selfsubjectrulesreviews",
        kind: "SelfSubjectRulesReview",
        namespaced: false,
        short: &[],
        subs: &[],
    },
    Res {
        group: "authentication.k8s.io",
        version: "v1",
        plural: "selfsubjectreviews",
        kind: "SelfSubjectReview",
        namespaced: false,
        short: &[],
        subs: &[],
    },
    // kubectl 1.27 asks `auth whoami` of v1beta1.
    Res {
        group: "authentication.k8s.io",
        version: "v1beta1",
        plural: "selfsubjectreviews",
        kind: "SelfSubjectReview",
        namespaced: false,
        short: &[],
        subs: &[],
    },
    Res {
        group: "metrics.k8s.io",
        version: "v1beta1",
        plural: "pods",
        kind: "PodMetrics",
        namespaced: true,
        short: &[],
        subs: &[],
    },
    Res {
        group: "metrics.k8s.io",
        version: "v1beta1",
        plural: "nodes",
        kind: "NodeMetrics",
        namespaced: false,
        short: &[],
        subs: &[],
    },
];

pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Res> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

pub fn by_kind(kind: &str) -> Option<&'static Res> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && !r.computed() && !r.review())
}

fn verbs(r: &Res) -> Value {
    if r.computed() {
        json!(["get", "list"])
    } else if r.review() {
        json!(["create"])
    } else {
        json!(["create", "delete", "get", "list", "patch", "update", "watch"])
    }
}

fn group_names<'a>(all: &[(&'a str, &str)]) -> Vec<&'a str> {
    let mut names: Vec<&str> = Vec::new();
    for (g, _) in all {
        if !names.contains(g) {
            names.push(g);
        }
    }
    names
}

fn sub_verbs(sub: &str) -> Value {
    match sub {
        "eviction" => json!(["create"]),
        "log" => json!(["get"]),
        _ => json!(["get", "patch", "update"]),
    }
}

fn groups(metrics: bool) -> Vec<(&'static str, &'static str)> {
    let mut g: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if (metrics || !r.computed()) && !r.group.is_empty() && !g.contains(&(r.group, r.version)) {
            g.push((r.group, r.version));
        }
    }
    g
}

/// The aggregated discovery version the client asked for (kubectl 1.27-1.29
/// only know v2beta1), if it asked for aggregated discovery at all.
pub fn aggregated_version(accept: &str) -> Option<&'static str> {
    if !accept.contains("apidiscovery.k8s.io") {
        return None;
    }
    Some(if accept.contains("v=v2;") || accept.contains("v=v2,") {
        "v2"
    } else {
        "v2beta1"
    })
}

pub fn aggregated_content_type(v: &str) -> String {
    format!("application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList")
}

fn resource_entry(r: &Res) -> Value {
    let subs: Vec<Value> = r
        .subs
        .iter()
        .map(|(s, g, v, k)| {
            json!({"subresource": s, "responseKind": {"group": g, "version": v, "kind": k}, "verbs": sub_verbs(s)})
        })
        .collect();
    json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.kind.to_lowercase(),
        "shortNames": r.short,
        "categories": r.categories(),
        "verbs": verbs(r),
        "subresources": subs,
    })
}

/// `/api` (core = true) or `/apis` as an APIGroupDiscoveryList.
pub fn aggregated(core: bool, v: &str, metrics: bool) -> Value {
    let items: Vec<Value> = if core {
        let res: Vec<Value> = RESOURCES
            .iter()
            .filter(|r| r.group.is_empty())
            .map(resource_entry)
            .collect();
        vec![
            json!({"metadata": {"name": ""}, "versions": [{"version": "v1", "resources": res, "freshness": "Current"}]}),
        ]
    } else {
        // One item per group, its versions preferred first (autoscaling: v2, v1).
        let all = groups(metrics);
        let names = group_names(&all);
        names
            .into_iter()
            .map(|g| {
                let versions: Vec<Value> = all
                    .iter()
                    .filter(|(gg, _)| *gg == g)
                    .map(|(_, ver)| {
                        let res: Vec<Value> = RESOURCES
                            .iter()
                            .filter(|r| r.group == g && r.version == *ver)
                            .map(resource_entry)
                            .collect();
                        json!({"version": ver, "resources": res, "freshness": "Current"})
                    })
                    .collect();
                json!({"metadata": {"name": g}, "versions": versions})
            })
            .collect()
    };
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": format!("apidiscovery.k8s.io/{v}"), "metadata": {}, "items": items})
}

pub fn api_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
}

pub fn api_group_list(metrics: bool) -> Value {
    let all = groups(metrics);
    let names = group_names(&all);
    let groups: Vec<Value> = names
        .into_iter()
        .map(|g| {
            let versions: Vec<Value> = all
                .iter()
                .filter(|(gg, _)| *gg == g)
                .map(|(_, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            json!({"name": g, "preferredVersion": versions[0], "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// The legacy per-group-version document, for clients without aggregated
/// discovery (the kube crate, older kubectl).
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        resources.push(json!({
            "name": r.plural, "singularName": r.kind.to_lowercase(), "namespaced": r.namespaced,
            "kind": r.kind, "verbs": verbs(r), "shortNames": r.short, "categories": r.categories(),
        }));
        for (s, g, v, k) in r.subs {
            resources.push(json!({"name": format!("{}/{s}", r.plural), "namespaced": r.namespaced, "kind": k, "group": g, "version": v, "verbs": sub_verbs(s)}));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// Minor 31: the kubectl dispatcher then runs a kubectl that sends JSON
/// bodies (1.32+ send protobuf for some creates).
pub fn version() -> Value {
    json!({"major": "1", "minor": "31", "gitVersion": "v1.31.0-opsh-sandbox", "gitCommit": "0000000", "gitTreeState": "clean",
           "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.22", "compiler": "gc", "platform": "linux/amd64"})
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: the group-version documents kubectl fetches before
/// `apply --server-side`.
pub fn openapi_root() -> Value {
    let mut paths = serde_json::Map::new();
    let mut gvs: Vec<(&str, &str)> = vec![("", "v1")];
    gvs.extend(groups(false));
    for (g, v) in gvs {
        let p = gv_path(g, v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash=0")}),
        );
    }
    json!({"paths": paths})
}

/// One group-version's document: per kind, the object path with the patch
/// operation, its GVK and the fieldValidation parameter (so kubectl leaves
/// validation to the server).
pub fn openapi_gv(group: &str, version: &str) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version && !r.computed() && !r.review())
    {
        let ns = if r.namespaced {
            "/namespaces/{namespace}"
        } else {
            ""
        };
        let path = format!("/{}{ns}/{}/{{name}}", gv_path(group, version), r.plural);
        let op = json!({
            "operationId": format!("patch{}", r.kind),
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": r.kind},
            "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                           {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                           {"name": "force", "in": "query", "schema": {"type": "boolean"}},
                           {"name": "dryRun", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "OK"}},
        });
        paths.insert(path, json!({"patch": op}));
    }
    if paths.is_empty() {
        return None;
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.31.0"}, "paths": paths, "components": {"schemas": {}}}),
    )
}
