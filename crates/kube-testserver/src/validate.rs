//! What the API server refuses before anything is stored: the subset of
//! Kubernetes' validation that scripts and runbooks meet (negative counts,
//! selectors that do not select the template, immutable fields, service
//! affinity), answered as real `422 Invalid` Status bodies with one cause
//! per field, so a client sees exactly what a real cluster would say.

use super::discovery::Res;
use super::store::{meta_str, ApiError, Selector};
use serde_json::{json, Value};

struct Problems {
    causes: Vec<(String, String, &'static str)>,
}

impl Problems {
    fn invalid(&mut self, field: &str, value: &Value, why: &str) {
        let shown = match value {
            Value::String(s) => format!("\"{s}\""),
            other => other.to_string(),
        };
        self.causes.push((
            field.to_string(),
            format!("Invalid value: {shown}: {why}"),
            "FieldValueInvalid",
        ));
    }
    fn required(&mut self, field: &str, what: &str) {
        self.causes.push((
            field.to_string(),
            format!(
                "Required value{}",
                if what.is_empty() {
                    String::new()
                } else {
                    format!(": {what}")
                }
            ),
            "FieldValueRequired",
        ));
    }
    fn non_negative(&mut self, o: &Value, path: &[&str]) {
        let v = path.iter().fold(o, |v, k| &v[*k]);
        if v.as_i64().is_some_and(|n| n < 0) {
            self.invalid(&path.join("."), v, "must be greater than or equal to 0");
        }
    }
}

/// The full label selector (matchLabels and matchExpressions) as the
/// string form `Selector::parse` reads; None when it is malformed.
pub fn selector_string(sel: &Value) -> Option<String> {
    let mut parts: Vec<String> = sel["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str()?;
        let values: Vec<&str> = e["values"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        parts.push(match e["operator"].as_str()? {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return None,
        });
    }
    Some(parts.join(","))
}

fn dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// A workload's selector: present, non-empty, selecting its own template,
/// and (on update) unchanged.
fn selector(p: &mut Problems, kind: &str, o: &Value, old: Option<&Value>) {
    let sel = &o["spec"]["selector"];
    let labels = &o["spec"]["template"]["metadata"]["labels"];
    if sel.is_null() {
        p.required("spec.selector", "");
    } else {
        match selector_string(sel).map(|s| (Selector::parse(&s), s)) {
            Some((Ok(parsed), s)) => {
                if s.is_empty() {
                    p.invalid(
                        "spec.selector",
                        sel,
                        &format!("empty selector is invalid for {}", kind.to_lowercase()),
                    );
                } else if !parsed.matches(labels) {
                    p.invalid(
                        "spec.template.metadata.labels",
                        labels,
                        "`selector` does not match template `labels`",
                    );
                }
            }
            _ => p.invalid("spec.selector", sel, "invalid label selector"),
        }
    }
    if let Some(old) = old {
        if !old["spec"]["selector"].is_null() && old["spec"]["selector"] != *sel {
            p.invalid("spec.selector", sel, "field is immutable");
        }
    }
}

fn containers(p: &mut Problems, spec: &Value, path: &str) {
    let Some(cs) = spec["containers"].as_array().filter(|c| !c.is_empty()) else {
        p.required(&format!("{path}.containers"), "");
        return;
    };
    for (i, c) in cs.iter().enumerate() {
        if c["name"].as_str().is_none_or(str::is_empty) {
            p.required(&format!("{path}.containers[{i}].name"), "");
        }
        if c["image"].as_str().is_none_or(str::is_empty) {
            p.required(&format!("{path}.containers[{i}].image"), "");
        }
    }
}

/// Checks an object about to be created (`old` None) or to replace `old`.
pub fn validate(r: &Res, o: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let mut p = Problems { causes: Vec::new() };
    let name = meta_str(o, "name");
    if old.is_none() && !name.is_empty() && !dns_subdomain(name) && r.kind != "Event" {
        p.invalid(
            "metadata.name",
            &json!(name),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        );
    }
    match r.kind {
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => {
            if r.kind != "DaemonSet" {
                p.non_negative(o, &["spec", "replicas"]);
            }
            p.non_negative(o, &["spec", "minReadySeconds"]);
            p.non_negative(o, &["spec", "revisionHistoryLimit"]);
            selector(&mut p, r.kind, o, old);
            containers(&mut p, &o["spec"]["template"]["spec"], "spec.template.spec");
        }
        "Job" => {
            for f in [
                "parallelism",
                "completions",
                "backoffLimit",
                "activeDeadlineSeconds",
            ] {
                p.non_negative(o, &["spec", f]);
            }
            // A Job without one gets a selector of its uid when it is stored.
            if !o["spec"]["selector"].is_null() || old.is_some() {
                selector(&mut p, r.kind, o, old);
            }
            containers(&mut p, &o["spec"]["template"]["spec"], "spec.template.spec");
        }
        "Pod" => containers(&mut p, &o["spec"], "spec"),
        "HorizontalPodAutoscaler" => {
            let min = &o["spec"]["minReplicas"];
            let max = &o["spec"]["maxReplicas"];
            if min.as_i64().is_some_and(|m| m < 1) {
                p.invalid(
                    "spec.minReplicas",
                    min,
                    "must be greater than or equal to 1",
                );
            }
            match max.as_i64() {
                None => p.required("spec.maxReplicas", ""),
                Some(m) if m < 1 => p.invalid(
                    "spec.maxReplicas",
                    max,
                    "must be greater than or equal to 1",
                ),
                Some(m) if m < min.as_i64().unwrap_or(1) => p.invalid(
                    "spec.maxReplicas",
                    max,
                    "must be greater than or equal to `minReplicas`",
                ),
                _ => {}
            }
            if o["spec"]["scaleTargetRef"]["name"]
                .as_str()
                .is_none_or(str::is_empty)
            {
                p.required("spec.scaleTargetRef.name", "");
            }
        }
        "Service" => service(&mut p, o, old),
        "PersistentVolumeClaim" => {
            if let Some(old) = old {
                if old["spec"]["accessModes"] != o["spec"]["accessModes"]
                    || old["spec"]["storageClassName"] != o["spec"]["storageClassName"]
                {
                    p.invalid(
                        "spec",
                        &json!("..."),
                        "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
                    );
                }
            }
        }
        "PodDisruptionBudget"
            if !o["spec"]["minAvailable"].is_null() && !o["spec"]["maxUnavailable"].is_null() =>
        {
            p.invalid(
                "spec",
                &o["spec"],
                "minAvailable and maxUnavailable cannot be both set",
            );
        }
        _ => {}
    }
    if p.causes.is_empty() {
        return Ok(());
    }
    let kind = if r.group.is_empty() {
        r.kind.to_string()
    } else {
        format!("{}.{}", r.kind, r.group)
    };
    let fields: Vec<String> = p
        .causes
        .iter()
        .map(|(f, m, _)| format!("{f}: {m}"))
        .collect();
    let list = if fields.len() == 1 {
        fields[0].clone()
    } else {
        format!("[{}]", fields.join(", "))
    };
    let mut e = ApiError::new(
        422,
        "Invalid",
        format!("{kind} \"{name}\" is invalid: {list}"),
    );
    let causes: Vec<Value> = p
        .causes
        .iter()
        .map(|(f, m, reason)| json!({"reason": reason, "message": m, "field": f}))
        .collect();
    e.details = Some(json!({"name": name, "group": r.group, "kind": r.kind, "causes": causes}));
    Err(e)
}

fn service(p: &mut Problems, o: &Value, old: Option<&Value>) {
    let spec = &o["spec"];
    let affinity = spec["sessionAffinity"].as_str().unwrap_or("None");
    if !matches!(affinity, "None" | "ClientIP") {
        p.causes.push((
            "spec.sessionAffinity".into(),
            format!("Unsupported value: \"{affinity}\": supported values: \"ClientIP\", \"None\""),
            "FieldValueNotSupported",
        ));
    }
    let config = &spec["sessionAffinityConfig"];
    if affinity == "ClientIP" {
        let t = &config["clientIP"]["timeoutSeconds"];
        if !t.is_null() && !t.as_i64().is_some_and(|t| (1..=86400).contains(&t)) {
            p.invalid(
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                t,
                "must be greater than 0 and less than 86400",
            );
        }
    } else if !config.is_null() {
        p.invalid(
            "spec.sessionAffinityConfig",
            config,
            "must not be set when `sessionAffinity` is None",
        );
    }
    for (i, port) in spec["ports"].as_array().into_iter().flatten().enumerate() {
        let n = &port["port"];
        if !n.as_i64().is_some_and(|n| (1..=65535).contains(&n)) {
            p.invalid(
                &format!("spec.ports[{i}].port"),
                n,
                "must be between 1 and 65535, inclusive",
            );
        }
    }
    if let Some(old) = old {
        let (a, b) = (&old["spec"]["clusterIP"], &spec["clusterIP"]);
        if !a.is_null() && !b.is_null() && a != b {
            p.invalid("spec.clusterIPs[0]", b, "may not change once set");
        }
    }
}

/// Defaults that need the uid the store has just given the object: a Job's
/// selector and its pod template's labels, as the real API server sets
/// them (so `kubectl logs job/X` finds its pods and no other workload's).
pub fn with_uid(r: &Res, o: &mut Value) {
    if r.kind != "Job" {
        return;
    }
    let uid = o["metadata"]["uid"].clone();
    let name = o["metadata"]["name"].clone();
    if o["spec"]["selector"].is_null() && o["spec"]["manualSelector"] != true {
        o["spec"]["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
        let t = &mut o["spec"]["template"]["metadata"];
        if !t.is_object() {
            *t = json!({});
        }
        for (k, v) in [
            ("batch.kubernetes.io/controller-uid", &uid),
            ("batch.kubernetes.io/job-name", &name),
            ("controller-uid", &uid),
            ("job-name", &name),
        ] {
            t["labels"][k] = v.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::by_kind;

    fn deployment(replicas: i64, sel: Value) -> Value {
        json!({"metadata": {"name": "web"}, "spec": {"replicas": replicas, "selector": sel,
               "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "w", "image": "nginx"}]}}}})
    }

    #[test]
    fn invalid_workloads_get_a_422_with_one_cause_per_field() {
        let r = by_kind("Deployment").unwrap();
        let ok = deployment(2, json!({"matchLabels": {"app": "web"}}));
        assert!(validate(r, &ok, None).is_ok());
        let e = validate(
            r,
            &deployment(-1, json!({"matchLabels": {"app": "web"}})),
            None,
        )
        .unwrap_err();
        assert_eq!((e.code, e.reason), (422, "Invalid"));
        assert_eq!(
            e.message,
            "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(e.details.unwrap()["causes"][0]["field"], "spec.replicas");
        let e = validate(
            r,
            &deployment(1, json!({"matchLabels": {"app": "api"}})),
            None,
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("`selector` does not match template `labels`"),
            "{}",
            e.message
        );
        let moved = deployment(
            1,
            json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}),
        );
        let e = validate(r, &moved, Some(&ok)).unwrap_err();
        assert!(
            e.message.contains("spec.selector: Invalid value")
                && e.message.contains("field is immutable"),
            "{}",
            e.message
        );
    }

    #[test]
    fn session_affinity_config_needs_client_ip_affinity_and_a_sane_timeout() {
        let r = by_kind("Service").unwrap();
        let svc = |aff: &str, t: i64| json!({"metadata": {"name": "s"}, "spec": {"sessionAffinity": aff, "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": t}}, "ports": [{"port": 80}]}});
        assert!(validate(r, &svc("ClientIP", 600), None).is_ok());
        assert!(validate(r, &svc("ClientIP", 0), None)
            .unwrap_err()
            .message
            .contains("timeoutSeconds"));
        assert!(validate(r, &svc("None", 600), None)
            .unwrap_err()
            .message
            .contains("must not be set"));
        assert!(validate(r, &svc("Sticky", 600), None)
            .unwrap_err()
            .message
            .contains("Unsupported value"));
    }
}
