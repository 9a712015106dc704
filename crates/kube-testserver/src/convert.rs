//! Objects served in more than one version: the store holds the newest
//! (autoscaling/v2 HorizontalPodAutoscalers) and requests for an older one
//! (autoscaling/v1, which `kubectl autoscale` writes) are converted on the
//! way in and out, as the real API server does.

use super::discovery::Res;
use serde_json::{json, Value};

fn hpa_v1(r: &Res) -> bool {
    r.kind == "HorizontalPodAutoscaler" && r.version == "v1"
}

fn cpu_metric(metrics: &Value) -> Option<&Value> {
    metrics
        .as_array()?
        .iter()
        .find(|m| m["type"] == "Resource" && m["resource"]["name"] == "cpu")
}

/// The stored object as the requested version shows it.
pub fn served(r: &Res, mut o: Value) -> Value {
    if !hpa_v1(r) {
        return o;
    }
    o["apiVersion"] = json!("autoscaling/v1");
    let spec = &o["spec"];
    let mut v1 = json!({
        "scaleTargetRef": spec["scaleTargetRef"],
        "maxReplicas": spec["maxReplicas"],
    });
    if !spec["minReplicas"].is_null() {
        v1["minReplicas"] = spec["minReplicas"].clone();
    }
    if let Some(u) =
        cpu_metric(&spec["metrics"]).map(|m| &m["resource"]["target"]["averageUtilization"])
    {
        v1["targetCPUUtilizationPercentage"] = u.clone();
    }
    let st = &o["status"];
    let mut status = json!({
        "currentReplicas": st["currentReplicas"].as_i64().unwrap_or(0),
        "desiredReplicas": st["desiredReplicas"].as_i64().unwrap_or(0),
    });
    if !st["lastScaleTime"].is_null() {
        status["lastScaleTime"] = st["lastScaleTime"].clone();
    }
    if let Some(u) =
        cpu_metric(&st["currentMetrics"]).map(|m| &m["resource"]["current"]["averageUtilization"])
    {
        status["currentCPUUtilizationPercentage"] = u.clone();
    }
    o["spec"] = v1;
    o["status"] = status;
    o
}

/// An object sent in the requested version, as the store keeps it.
pub fn stored(r: &Res, mut o: Value) -> Value {
    if !hpa_v1(r) || !o.is_object() {
        return o;
    }
    o["apiVersion"] = json!("autoscaling/v2");
    let target = o["spec"]["targetCPUUtilizationPercentage"].clone();
    if let Some(spec) = o["spec"].as_object_mut() {
        spec.remove("targetCPUUtilizationPercentage");
        // Without a target, v1 means 80% CPU.
        let util = if target.is_null() { json!(80) } else { target };
        spec.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": util}}}]),
        );
    }
    if let Some(st) = o["status"].as_object_mut() {
        st.remove("currentCPUUtilizationPercentage");
    }
    o
}
