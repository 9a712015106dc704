//! meta.k8s.io/v1 Table answers, which plain `kubectl get` asks for: the
//! columns the real API server prints for each kind.

use super::discovery::Res;
use super::store::{age_secs, meta_str};
use serde_json::{json, Value};

pub fn age(ts: &str) -> String {
    let s = age_secs(ts);
    match s {
        0..=119 => format!("{s}s"),
        120..=599 => format!("{}m{}s", s / 60, s % 60),
        600..=10799 => format!("{}m", s / 60),
        10800..=172799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

fn col(name: &str, ty: &str, priority: u8) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": ty, "format": format, "description": name, "priority": priority})
}

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn containers(o: &Value, field: &str) -> String {
    o["spec"]["template"]["spec"]["containers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c[field].as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn pod_status(p: &Value) -> String {
    if let Some(cs) = p["status"]["containerStatuses"].as_array() {
        for c in cs {
            if let Some(r) = c["state"]["waiting"]["reason"].as_str() {
                return r.to_string();
            }
            if let Some(r) = c["state"]["terminated"]["reason"].as_str() {
                return r.to_string();
            }
        }
    }
    p["status"]["phase"]
        .as_str()
        .unwrap_or("Pending")
        .to_string()
}

fn columns_and_cells(r: &Res, o: &Value) -> (Vec<Value>, Vec<Value>) {
    let name = json!(meta_str(o, "name"));
    let created = age(meta_str(o, "creationTimestamp"));
    match r.kind {
        "Deployment" => (
            vec![
                col("Name", "string", 0),
                col("Ready", "string", 0),
                col("Up-to-date", "integer", 0),
                col("Available", "integer", 0),
                col("Age", "string", 0),
                col("Containers", "string", 1),
                col("Images", "string", 1),
                col("Selector", "string", 1),
            ],
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    i(&o["status"]["readyReplicas"]),
                    i(&o["spec"]["replicas"])
                )),
                json!(i(&o["status"]["updatedReplicas"])),
                json!(i(&o["status"]["availableReplicas"])),
                json!(created),
                json!(containers(o, "name")),
                json!(containers(o, "image")),
                json!(super::controllers::selector_of(o)),
            ],
        ),
        "ReplicaSet" => (
            vec![
                col("Name", "string", 0),
                col("Desired", "integer", 0),
                col("Current", "integer", 0),
                col("Ready", "integer", 0),
                col("Age", "string", 0),
                col("Containers", "string", 1),
                col("Images", "string", 1),
            ],
            vec![
                name,
                json!(i(&o["spec"]["replicas"])),
                json!(i(&o["status"]["replicas"])),
                json!(i(&o["status"]["readyReplicas"])),
                json!(created),
                json!(containers(o, "name")),
                json!(containers(o, "image")),
            ],
        ),
        "Pod" => {
            let cs = o["status"]["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let ready = cs.iter().filter(|c| c["ready"] == true).count();
            let total = o["spec"]["containers"]
                .as_array()
                .map(|a| a.len())
                .unwrap_or(0);
            let restarts: i64 = cs.iter().map(|c| i(&c["restartCount"])).sum();
            (
                vec![
                    col("Name", "string", 0),
                    col("Ready", "string", 0),
                    col("Status", "string", 0),
                    col("Restarts", "string", 0),
                    col("Age", "string", 0),
                    col("IP", "string", 1),
                    col("Node", "string", 1),
                ],
                vec![
                    name,
                    json!(format!("{ready}/{total}")),
                    json!(pod_status(o)),
                    json!(restarts.to_string()),
                    json!(created),
                    json!(o["status"]["podIP"].as_str().unwrap_or("<none>")),
                    json!(o["spec"]["nodeName"].as_str().unwrap_or("<none>")),
                ],
            )
        }
        "HorizontalPodAutoscaler" => {
            let util =
                i(&o["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"]);
            let want = i(&o["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"]);
            (
                vec![
                    col("Name", "string", 0),
                    col("Reference", "string", 0),
                    col("Targets", "string", 0),
                    col("MinPods", "string", 0),
                    col("MaxPods", "integer", 0),
                    col("Replicas", "integer", 0),
                    col("Age", "string", 0),
                ],
                vec![
                    name,
                    json!(format!(
                        "Deployment/{}",
                        o["spec"]["scaleTargetRef"]["name"].as_str().unwrap_or("")
                    )),
                    json!(format!("cpu: {util}%/{want}%")),
                    json!(i(&o["spec"]["minReplicas"]).to_string()),
                    json!(i(&o["spec"]["maxReplicas"])),
                    json!(i(&o["status"]["currentReplicas"])),
                    json!(created),
                ],
            )
        }
        "Event" => (
            vec![
                col("Last Seen", "string", 0),
                col("Type", "string", 0),
                col("Reason", "string", 0),
                col("Object", "string", 0),
                col("Message", "string", 0),
            ],
            vec![
                json!(age(o["lastTimestamp"].as_str().unwrap_or(""))),
                o["type"].clone(),
                o["reason"].clone(),
                json!(format!(
                    "{}/{}",
                    o["involvedObject"]["kind"]
                        .as_str()
                        .unwrap_or("")
                        .to_lowercase(),
                    o["involvedObject"]["name"].as_str().unwrap_or("")
                )),
                o["message"].clone(),
            ],
        ),
        "Service" => {
            let ports = o["spec"]["ports"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|p| {
                            format!(
                                "{}/{}",
                                i(&p["port"]),
                                p["protocol"].as_str().unwrap_or("TCP")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            (
                vec![
                    col("Name", "string", 0),
                    col("Type", "string", 0),
                    col("Cluster-IP", "string", 0),
                    col("Ports", "string", 0),
                    col("Age", "string", 0),
                    col("Selector", "string", 1),
                ],
                vec![
                    name,
                    json!(o["spec"]["type"].as_str().unwrap_or("ClusterIP")),
                    json!(o["spec"]["clusterIP"].as_str().unwrap_or("None")),
                    json!(ports),
                    json!(created),
                    json!(o["spec"]["selector"]
                        .as_object()
                        .map(|m| m
                            .iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                            .collect::<Vec<_>>()
                            .join(","))
                        .unwrap_or_default()),
                ],
            )
        }
        "Job" => (
            vec![
                col("Name", "string", 0),
                col("Status", "string", 0),
                col("Completions", "string", 0),
                col("Age", "string", 0),
            ],
            vec![
                name,
                json!(if i(&o["status"]["succeeded"]) > 0 {
                    "Complete"
                } else {
                    "Running"
                }),
                json!(format!(
                    "{}/{}",
                    i(&o["status"]["succeeded"]),
                    o["spec"]["completions"].as_i64().unwrap_or(1)
                )),
                json!(created),
            ],
        ),
        "CronJob" => (
            vec![
                col("Name", "string", 0),
                col("Schedule", "string", 0),
                col("Suspend", "boolean", 0),
                col("Active", "integer", 0),
                col("Age", "string", 0),
            ],
            vec![
                name,
                o["spec"]["schedule"].clone(),
                json!(o["spec"]["suspend"].as_bool().unwrap_or(false)),
                json!(o["status"]["active"]
                    .as_array()
                    .map(|a| a.len())
                    .unwrap_or(0)),
                json!(created),
            ],
        ),
        "Namespace" => (
            vec![
                col("Name", "string", 0),
                col("Status", "string", 0),
                col("Age", "string", 0),
            ],
            vec![name, json!("Active"), json!(created)],
        ),
        "Node" => (
            vec![
                col("Name", "string", 0),
                col("Status", "string", 0),
                col("Roles", "string", 0),
                col("Age", "string", 0),
                col("Version", "string", 0),
            ],
            vec![
                name,
                json!("Ready"),
                json!("<none>"),
                json!(created),
                json!("v1.31.0"),
            ],
        ),
        _ => (
            vec![col("Name", "string", 0), col("Age", "string", 0)],
            vec![name, json!(created)],
        ),
    }
}

pub fn table(r: &Res, items: &[Value], rv: u64) -> Value {
    let mut columns = None;
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let (c, cells) = columns_and_cells(r, o);
            columns.get_or_insert(c);
            json!({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}})
        })
        .collect();
    let columns = columns.unwrap_or_else(|| columns_and_cells(r, &json!({})).0);
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv.to_string()}, "columnDefinitions": columns, "rows": rows})
}
