//! Plan files: what `opsh plan` recorded (every mutation a script would
//! make, with the state it was planned from) and what `opsh apply` checks
//! before replaying them. The file is JSON; `digest` is the SHA-256 of its
//! canonical content (everything but `digest` and `approvals`), so an edit
//! anywhere is seen. docs/change-control.md is the user's view.

use crate::config::Target;
use crate::dispatch::{audit_args, scrub_json, Plan};
use crate::registry::Prim;
use crate::value::to_json;
use rhai::Dynamic;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

pub const VERSION: i64 = 1;

/// Details of a dry run that change between two plans of the same state
/// (timestamps of a restart, a sample of keys) and so are not preconditions.
const VOLATILE: [&str; 3] = ["diff", "sample", "over_max"];

static RECORDING: AtomicBool = AtomicBool::new(false);
static STEPS: Mutex<Vec<Value>> = Mutex::new(Vec::new());

/// `opsh plan`: from now on every planned mutation is recorded.
pub fn start_recording() {
    RECORDING.store(true, Ordering::SeqCst);
}

pub fn recorded() -> Vec<Value> {
    STEPS.lock().map(|v| v.clone()).unwrap_or_default()
}

/// Called by dispatch for each mutation planned under --dry-run.
pub fn observe(prim: Prim, target: Option<&Target>, args: &[Dynamic], p: &Plan) {
    if !RECORDING.load(Ordering::SeqCst) {
        return;
    }
    let raw: Vec<Value> = args.iter().map(to_json).collect();
    let shown: Vec<Value> = raw.iter().map(|v| scrub_json(v.clone(), None)).collect();
    // An argument that held a secret is recorded masked, so it cannot be
    // replayed: apply refuses that step rather than send the mask.
    let named = audit_args(args, prim);
    let secret = raw != shown || named.to_string().contains(crate::redact::MASK);
    let preconditions: serde_json::Map<String, Value> = p
        .details
        .iter()
        .filter(|(k, _)| !VOLATILE.contains(&k.as_str()))
        .map(|(k, v)| (k.to_string(), scrub_json(to_json(v), Some(k))))
        .collect();
    let step = json!({
        "primitive": prim.full_name(),
        "kind": target.map(|t| t.kind.name()),
        "target": target.map(|t| crate::redact::redact(&t.name)),
        "args": shown,
        "named_args": named,
        "secret_args": secret,
        "summary": crate::redact::redact(&p.summary),
        "preconditions": Value::Object(preconditions),
    });
    if let Ok(mut v) = STEPS.lock() {
        v.push(step);
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The bytes that `digest` and approvals sign: the plan without them.
/// serde_json keeps object keys sorted, so this is canonical.
pub fn canonical(plan: &Value) -> String {
    let mut v = plan.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("digest");
        o.remove("approvals");
    }
    v.to_string()
}

pub fn seal(plan: &mut Value) {
    let d = sha256_hex(canonical(plan).as_bytes());
    if let Some(o) = plan.as_object_mut() {
        o.insert("digest".into(), Value::String(d));
        o.entry("approvals").or_insert_with(|| json!([]));
    }
}

/// Why a plan file cannot be applied as it is, if it cannot.
pub fn verify(plan: &Value, now: chrono::DateTime<chrono::Utc>) -> Result<(), String> {
    if plan["opsh_plan"].as_i64() != Some(VERSION) {
        return Err(format!(
            "not an opsh plan of version {VERSION} (field `opsh_plan`)"
        ));
    }
    let text = plan["script"]["text"].as_str().unwrap_or_default();
    let want = plan["script"]["sha256"].as_str().unwrap_or_default();
    if sha256_hex(text.as_bytes()) != want {
        return Err("the script in the plan does not match its sha256: the plan was modified after it was made".into());
    }
    if plan["digest"].as_str() != Some(sha256_hex(canonical(plan).as_bytes()).as_str()) {
        return Err(
            "the plan's content does not match its digest: the plan was modified after it was made"
                .into(),
        );
    }
    let expires = plan["expires_at"]
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .ok_or("the plan has no valid `expires_at`")?;
    if now > expires {
        return Err(format!(
            "the plan expired at {} (plans live `[plan] ttl`, default 1h): the state it was made from is too old",
            expires.to_rfc3339()
        ));
    }
    Ok(())
}

/// What identifies a row of a precondition list (a session, a pod, a key):
/// the rest of a row (an idle time, a query's age) changes by itself.
const ROW_IDENTITY: [&str; 6] = ["pid", "backend_start", "uid", "name", "key", "digest"];

/// A list of rows reduced to what identifies each row, when its rows say.
fn identity_of(v: &Value) -> Value {
    let Some(rows) = v.as_array() else {
        return v.clone();
    };
    Value::Array(
        rows.iter()
            .map(|r| match r.as_object() {
                Some(o) if o.keys().any(|k| ROW_IDENTITY.contains(&k.as_str())) => Value::Object(
                    o.iter()
                        .filter(|(k, _)| ROW_IDENTITY.contains(&k.as_str()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                ),
                _ => r.clone(),
            })
            .collect(),
    )
}

/// The preconditions that no longer hold: (field, planned, now).
pub fn drift(planned: &Value, now: &Value) -> Vec<(String, Value, Value)> {
    let Some(p) = planned.as_object() else {
        return Vec::new();
    };
    p.iter()
        .filter(|(k, _)| !VOLATILE.contains(&k.as_str()))
        .filter_map(|(k, v)| {
            let n = identity_of(&now.get(k).cloned().unwrap_or(Value::Null));
            let v = identity_of(v);
            (n != v).then(|| (k.clone(), v, n))
        })
        .collect()
}

/// Arguments that pin a replayed call to the state it was planned from,
/// where the primitive has its own precondition option: the server then
/// refuses a change that raced in between the check and the write.
pub fn pin(primitive: &str, args: &mut Vec<Dynamic>, pre: &Value) {
    let (i, key, value) = match primitive {
        "k8s.scale" => (2, "current", pre.get("from")),
        "k8s.delete_pod" => (1, "uid", pre.get("uid")),
        _ => return,
    };
    let Some(v) = value.filter(|v| !v.is_null()) else {
        return;
    };
    while args.len() <= i {
        args.push(Dynamic::UNIT);
    }
    let Some(slot) = args.get_mut(i) else {
        return;
    };
    let mut m = slot
        .read_lock::<rhai::Map>()
        .map(|m| m.clone())
        .unwrap_or_default();
    m.entry(key.into())
        .or_insert_with(|| crate::value::from_json(v));
    *slot = Dynamic::from_map(m);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed() -> Value {
        let text = "k8s.scale(\"api\", 2)";
        let mut p = json!({
            "opsh_plan": 1,
            "script": {"name": "s.rhai", "text": text, "sha256": sha256_hex(text.as_bytes())},
            "expires_at": "2099-01-01T00:00:00Z",
            "mutations": [{"primitive": "k8s.scale", "args": ["api", 2]}],
        });
        seal(&mut p);
        p
    }

    #[test]
    fn a_sealed_plan_verifies_and_any_edit_is_seen() {
        let now = chrono::Utc::now();
        let p = sealed();
        verify(&p, now).unwrap();
        let mut edited = p.clone();
        edited["mutations"][0]["args"][1] = json!(0);
        assert!(verify(&edited, now)
            .unwrap_err()
            .contains("does not match its digest"));
        let mut script = p.clone();
        script["script"]["text"] = json!("k8s.scale(\"api\", 0)");
        assert!(verify(&script, now).unwrap_err().contains("sha256"));
        // Approvals are outside the digest: adding one is not an edit.
        let mut approved = p.clone();
        approved["approvals"] = json!([{"by": "bob@h"}]);
        verify(&approved, now).unwrap();
        let late = chrono::DateTime::parse_from_rfc3339("2099-01-02T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert!(verify(&p, late).unwrap_err().contains("expired"));
    }

    #[test]
    fn drift_names_each_changed_precondition() {
        let d = drift(
            &json!({"from": 3, "deployment": "api", "diff": 1}),
            &json!({"from": 5, "deployment": "api", "diff": 2}),
        );
        assert_eq!(d, vec![("from".to_string(), json!(3), json!(5))]);
        // Sessions are the same sessions while their pids and start times
        // are, however long they have been idle.
        let planned = json!({"sessions": [{"pid": 7, "backend_start": "t0", "idle_s": 100}]});
        let later = json!({"sessions": [{"pid": 7, "backend_start": "t0", "idle_s": 160}]});
        assert!(drift(&planned, &later).is_empty());
        let reused = json!({"sessions": [{"pid": 7, "backend_start": "t1", "idle_s": 1}]});
        assert_eq!(drift(&planned, &reused).len(), 1);
    }

    #[test]
    fn a_replayed_scale_is_pinned_to_the_planned_replicas() {
        let mut args = vec![Dynamic::from("api"), Dynamic::from_int(2)];
        pin("k8s.scale", &mut args, &json!({"from": 3}));
        let m = args[2].read_lock::<rhai::Map>().unwrap().clone();
        assert_eq!(m["current"].as_int().unwrap(), 3);
    }
}
