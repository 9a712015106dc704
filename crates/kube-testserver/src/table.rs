//! meta.k8s.io/v1 Table answers, which plain `kubectl get` asks for: the
//! columns the real API server prints for each kind.

use super::discovery::Res;
use super::store::{age_secs, label_pairs, meta_str};
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

/// A column definition and this object's value in it, side by side.
fn cell(name: &str, ty: &str, priority: u8, value: Value) -> (Value, Value) {
    let format = if name == "Name" { "name" } else { "" };
    (
        json!({"name": name, "type": ty, "format": format, "description": name, "priority": priority}),
        value,
    )
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

/// The `ready/desired` column Deployments and StatefulSets share.
fn ready_of_desired(o: &Value) -> (Value, Value) {
    cell(
        "Ready",
        "string",
        0,
        json!(format!(
            "{}/{}",
            i(&o["status"]["readyReplicas"]),
            i(&o["spec"]["replicas"])
        )),
    )
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
    cells(r, o).into_iter().unzip()
}

fn cells(r: &Res, o: &Value) -> Vec<(Value, Value)> {
    let name = json!(meta_str(o, "name"));
    let created = age(meta_str(o, "creationTimestamp"));
    match r.kind {
        "Deployment" => vec![
            cell("Name", "string", 0, name),
            ready_of_desired(o),
            cell(
                "Up-to-date",
                "integer",
                0,
                json!(i(&o["status"]["updatedReplicas"])),
            ),
            cell(
                "Available",
                "integer",
                0,
                json!(i(&o["status"]["availableReplicas"])),
            ),
            cell("Age", "string", 0, json!(created)),
            cell("Containers", "string", 1, json!(containers(o, "name"))),
            cell("Images", "string", 1, json!(containers(o, "image"))),
            cell(
                "Selector",
                "string",
                1,
                json!(super::controllers::selector_of(o)),
            ),
        ],
        "ReplicaSet" => vec![
            cell("Name", "string", 0, name),
            cell("Desired", "integer", 0, json!(i(&o["spec"]["replicas"]))),
            cell("Current", "integer", 0, json!(i(&o["status"]["replicas"]))),
            cell(
                "Ready",
                "integer",
                0,
                json!(i(&o["status"]["readyReplicas"])),
            ),
            cell("Age", "string", 0, json!(created)),
            cell("Containers", "string", 1, json!(containers(o, "name"))),
            cell("Images", "string", 1, json!(containers(o, "image"))),
        ],
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
            vec![
                cell("Name", "string", 0, name),
                cell("Ready", "string", 0, json!(format!("{ready}/{total}"))),
                cell("Status", "string", 0, json!(pod_status(o))),
                cell("Restarts", "string", 0, json!(restarts.to_string())),
                cell("Age", "string", 0, json!(created)),
                cell(
                    "IP",
                    "string",
                    1,
                    json!(o["status"]["podIP"].as_str().unwrap_or("<none>")),
                ),
                cell(
                    "Node",
                    "string",
                    1,
                    json!(o["spec"]["nodeName"].as_str().unwrap_or("<none>")),
                ),
            ]
        }
        "HorizontalPodAutoscaler" => {
            let util =
                i(&o["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"]);
            let want = i(&o["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"]);
            vec![
                cell("Name", "string", 0, name),
                cell(
                    "Reference",
                    "string",
                    0,
                    json!(format!(
                        "Deployment/{}",
                        o["spec"]["scaleTargetRef"]["name"].as_str().unwrap_or("")
                    )),
                ),
                cell(
                    "Targets",
                    "string",
                    0,
                    json!(format!("cpu: {util}%/{want}%")),
                ),
                cell(
                    "MinPods",
                    "string",
                    0,
                    json!(i(&o["spec"]["minReplicas"]).to_string()),
                ),
                cell("MaxPods", "integer", 0, json!(i(&o["spec"]["maxReplicas"]))),
                cell(
                    "Replicas",
                    "integer",
                    0,
                    json!(i(&o["status"]["currentReplicas"])),
                ),
                cell("Age", "string", 0, json!(created)),
            ]
        }
        "Event" => vec![
            cell(
                "Last Seen",
                "string",
                0,
                json!(age(o["lastTimestamp"].as_str().unwrap_or(""))),
            ),
            cell("Type", "string", 0, o["type"].clone()),
            cell("Reason", "string", 0, o["reason"].clone()),
            cell(
                "Object",
                "string",
                0,
                json!(format!(
                    "{}/{}",
                    o["involvedObject"]["kind"]
                        .as_str()
                        .unwrap_or("")
                        .to_lowercase(),
                    o["involvedObject"]["name"].as_str().unwrap_or("")
                )),
            ),
            cell("Message", "string", 0, o["message"].clone()),
        ],
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
            vec![
                cell("Name", "string", 0, name),
                cell(
                    "Type",
                    "string",
                    0,
                    json!(o["spec"]["type"].as_str().unwrap_or("ClusterIP")),
                ),
                cell(
                    "Cluster-IP",
                    "string",
                    0,
                    json!(o["spec"]["clusterIP"].as_str().unwrap_or("None")),
                ),
                cell(
                    "External-IP",
                    "string",
                    0,
                    json!(o["status"]["loadBalancer"]["ingress"][0]["ip"]
                        .as_str()
                        .unwrap_or("<none>")),
                ),
                cell("Port(s)", "string", 0, json!(ports)),
                cell("Age", "string", 0, json!(created)),
                cell(
                    "Selector",
                    "string",
                    1,
                    json!(label_pairs(&o["spec"]["selector"])),
                ),
            ]
        }
        "Job" => vec![
            cell("Name", "string", 0, name),
            cell(
                "Status",
                "string",
                0,
                json!(if i(&o["status"]["succeeded"]) > 0 {
                    "Complete"
                } else {
                    "Running"
                }),
            ),
            cell(
                "Completions",
                "string",
                0,
                json!(format!(
                    "{}/{}",
                    i(&o["status"]["succeeded"]),
                    o["spec"]["completions"].as_i64().unwrap_or(1)
                )),
            ),
            cell("Age", "string", 0, json!(created)),
        ],
        "CronJob" => vec![
            cell("Name", "string", 0, name),
            cell("Schedule", "string", 0, o["spec"]["schedule"].clone()),
            cell(
                "Suspend",
                "boolean",
                0,
                json!(o["spec"]["suspend"].as_bool().unwrap_or(false)),
            ),
            cell(
                "Active",
                "integer",
                0,
                json!(o["status"]["active"]
                    .as_array()
                    .map(|a| a.len())
                    .unwrap_or(0)),
            ),
            cell("Age", "string", 0, json!(created)),
        ],
        "Secret" => vec![
            cell("Name", "string", 0, name),
            cell(
                "Type",
                "string",
                0,
                json!(o["type"].as_str().unwrap_or("Opaque")),
            ),
            cell(
                "Data",
                "integer",
                0,
                json!(o["data"].as_object().map(|m| m.len()).unwrap_or(0)),
            ),
            cell("Age", "string", 0, json!(created)),
        ],
        "ConfigMap" => vec![
            cell("Name", "string", 0, name),
            cell(
                "Data",
                "integer",
                0,
                json!(
                    o["data"].as_object().map(|m| m.len()).unwrap_or(0)
                        + o["binaryData"].as_object().map(|m| m.len()).unwrap_or(0)
                ),
            ),
            cell("Age", "string", 0, json!(created)),
        ],
        "StatefulSet" => vec![
            cell("Name", "string", 0, name),
            ready_of_desired(o),
            cell("Age", "string", 0, json!(created)),
            cell("Containers", "string", 1, json!(containers(o, "name"))),
            cell("Images", "string", 1, json!(containers(o, "image"))),
        ],
        "DaemonSet" => vec![
            cell("Name", "string", 0, name),
            cell(
                "Desired",
                "integer",
                0,
                json!(i(&o["status"]["desiredNumberScheduled"])),
            ),
            cell(
                "Current",
                "integer",
                0,
                json!(i(&o["status"]["currentNumberScheduled"])),
            ),
            cell("Ready", "integer", 0, json!(i(&o["status"]["numberReady"]))),
            cell(
                "Up-to-date",
                "integer",
                0,
                json!(i(&o["status"]["updatedNumberScheduled"])),
            ),
            cell(
                "Available",
                "integer",
                0,
                json!(i(&o["status"]["numberAvailable"])),
            ),
            cell(
                "Node Selector",
                "string",
                0,
                json!(
                    Some(label_pairs(&o["spec"]["template"]["spec"]["nodeSelector"]))
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| "<none>".into())
                ),
            ),
            cell("Age", "string", 0, json!(created)),
        ],
        "PersistentVolumeClaim" => vec![
            cell("Name", "string", 0, name),
            cell(
                "Status",
                "string",
                0,
                json!(o["status"]["phase"].as_str().unwrap_or("Pending")),
            ),
            cell(
                "Volume",
                "string",
                0,
                json!(o["spec"]["volumeName"].as_str().unwrap_or("")),
            ),
            cell(
                "Capacity",
                "string",
                0,
                json!(o["status"]["capacity"]["storage"].as_str().unwrap_or("")),
            ),
            cell(
                "Access Modes",
                "string",
                0,
                json!(o["spec"]["accessModes"]
                    .as_array()
                    .map(|a| a
                        .iter()
                        .filter_map(Value::as_str)
                        .map(|m| match m {
                            "ReadWriteOnce" => "RWO",
                            "ReadOnlyMany" => "ROX",
                            "ReadWriteMany" => "RWX",
                            "ReadWriteOncePod" => "RWOP",
                            other => other,
                        })
                        .collect::<Vec<_>>()
                        .join(","))
                    .unwrap_or_default()),
            ),
            cell(
                "StorageClass",
                "string",
                0,
                json!(o["spec"]["storageClassName"].as_str().unwrap_or("standard")),
            ),
            cell("Age", "string", 0, json!(created)),
        ],
        "Endpoints" => {
            let eps: Vec<String> = o["subsets"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|s| {
                    let ports: Vec<i64> = s["ports"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|p| i(&p["port"]))
                        .collect();
                    s["addresses"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .flat_map(move |a| {
                            let ip = a["ip"].as_str().unwrap_or("").to_string();
                            ports.clone().into_iter().map(move |p| format!("{ip}:{p}"))
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            vec![
                cell("Name", "string", 0, name),
                cell(
                    "Endpoints",
                    "string",
                    0,
                    json!(if eps.is_empty() {
                        "<none>".to_string()
                    } else {
                        eps.join(",")
                    }),
                ),
                cell("Age", "string", 0, json!(created)),
            ]
        }
        "Ingress" => {
            let hosts: Vec<&str> = o["spec"]["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["host"].as_str())
                .collect();
            vec![
                cell("Name", "string", 0, name),
                cell(
                    "Class",
                    "string",
                    0,
                    json!(o["spec"]["ingressClassName"].as_str().unwrap_or("<none>")),
                ),
                cell(
                    "Hosts",
                    "string",
                    0,
                    json!(if hosts.is_empty() {
                        "*".to_string()
                    } else {
                        hosts.join(",")
                    }),
                ),
                cell(
                    "Address",
                    "string",
                    0,
                    json!(o["status"]["loadBalancer"]["ingress"][0]["ip"]
                        .as_str()
                        .unwrap_or("")),
                ),
                cell(
                    "Ports",
                    "string",
                    0,
                    json!(if o["spec"]["tls"].is_array() {
                        "80, 443"
                    } else {
                        "80"
                    }),
                ),
                cell("Age", "string", 0, json!(created)),
            ]
        }
        "PodDisruptionBudget" => {
            let show = |v: &Value| match v {
                Value::Null => "N/A".to_string(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            vec![
                cell("Name", "string", 0, name),
                cell(
                    "Min Available",
                    "string",
                    0,
                    json!(show(&o["spec"]["minAvailable"])),
                ),
                cell(
                    "Max Unavailable",
                    "string",
                    0,
                    json!(show(&o["spec"]["maxUnavailable"])),
                ),
                cell(
                    "Allowed Disruptions",
                    "integer",
                    0,
                    json!(i(&o["status"]["disruptionsAllowed"])),
                ),
                cell("Age", "string", 0, json!(created)),
            ]
        }
        "Namespace" => vec![
            cell("Name", "string", 0, name),
            cell("Status", "string", 0, json!("Active")),
            cell("Age", "string", 0, json!(created)),
        ],
        "Node" => {
            let ready = o["status"]["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                .is_some_and(|c| c["status"] == "True");
            let mut status = if ready { "Ready" } else { "NotReady" }.to_string();
            if o["spec"]["unschedulable"] == true {
                status.push_str(",SchedulingDisabled");
            }
            let address = |t: &str| {
                o["status"]["addresses"]
                    .as_array()
                    .and_then(|a| a.iter().find(|a| a["type"] == t))
                    .and_then(|a| a["address"].as_str())
                    .unwrap_or("<none>")
                    .to_string()
            };
            let info = &o["status"]["nodeInfo"];
            let text = |v: &Value| json!(v.as_str().unwrap_or("<unknown>"));
            vec![
                cell("Name", "string", 0, name),
                cell("Status", "string", 0, json!(status)),
                cell("Roles", "string", 0, json!("<none>")),
                cell("Age", "string", 0, json!(created)),
                cell("Version", "string", 0, text(&info["kubeletVersion"])),
                cell("Internal-IP", "string", 1, json!(address("InternalIP"))),
                cell("External-IP", "string", 1, json!(address("ExternalIP"))),
                cell("OS-Image", "string", 1, text(&info["osImage"])),
                cell("Kernel-Version", "string", 1, text(&info["kernelVersion"])),
                cell(
                    "Container-Runtime",
                    "string",
                    1,
                    text(&info["containerRuntimeVersion"]),
                ),
            ]
        }
        _ => vec![
            cell("Name", "string", 0, name),
            cell("Age", "string", 0, json!(created)),
        ],
    }
}

/// A Table of `items`; `include` is the request's includeObject: `Object`
/// carries each whole object (kubectl asks for it to `--sort-by` a field
/// outside metadata), `None` nothing, anything else the metadata.
pub fn table(r: &Res, items: &[Value], rv: u64, include: &str) -> Value {
    let mut columns = None;
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let (c, cells) = columns_and_cells(r, o);
            columns.get_or_insert(c);
            match include {
                "Object" => json!({"cells": cells, "object": o}),
                "None" => json!({"cells": cells}),
                _ => json!({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}}),
            }
        })
        .collect();
    let columns = columns.unwrap_or_else(|| columns_and_cells(r, &json!({})).0);
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv.to_string()}, "columnDefinitions": columns, "rows": rows})
}
