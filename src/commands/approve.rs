//! `opsh approve plan.json`: an approval by the current identity, an
//! HMAC-SHA256 over the plan's canonical content with the shared key of
//! `[approvals]`, appended to the plan file. `opsh apply` counts the valid
//! ones against the `[[approval]]` rules of the plan's targets.

use crate::config::Config;
use crate::error::CliError;
use crate::exit;
use hmac::Mac;
use serde_json::{json, Value};
use std::path::Path;

fn refused(msg: impl Into<String>) -> CliError {
    CliError::new(exit::REFUSED, msg)
}

/// The approvals a plan needs: the most any `[[approval]]` rule matching
/// one of its targets asks for, and that rule's globs.
pub fn required(cfg: &Config, doc: &Value) -> (i64, String) {
    let ids: Vec<String> = doc["mutations"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    format!(
                        "{}:{}",
                        s["kind"].as_str().unwrap_or("-"),
                        s["target"].as_str().unwrap_or("-")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    cfg.policy
        .approval
        .iter()
        .filter(|r| {
            ids.iter().any(|id| {
                r.targets
                    .iter()
                    .any(|g| crate::policy::target_matches(g, id))
            })
        })
        .map(|r| (r.required, r.targets.join(", ")))
        .max_by_key(|(n, _)| *n)
        .unwrap_or((0, String::new()))
}

fn key(cfg: &Config) -> Result<Vec<u8>, String> {
    let a = &cfg.policy.approvals;
    if let Some(var) = &a.key_env {
        return std::env::var(var)
            .ok()
            .filter(|k| !k.is_empty())
            .map(String::into_bytes)
            .ok_or_else(|| format!("[approvals] key_env: {var} is not set"));
    }
    if let Some(f) = &a.key_file {
        return std::fs::read(f)
            .map(|k| k.trim_ascii().to_vec())
            .ok()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                format!(
                    "[approvals] key_file {} cannot be read or is empty",
                    f.display()
                )
            });
    }
    Err("no approval key is configured ([approvals] key_file or key_env)".into())
}

fn sign(key: &[u8], by: &str, doc: &Value) -> Result<String, String> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key)
        .map_err(|e| format!("the approval key is unusable: {e}"))?;
    mac.update(by.as_bytes());
    mac.update(b"\n");
    mac.update(crate::plan::canonical(doc).as_bytes());
    Ok(mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Err: why `opsh apply` must not apply this plan yet.
pub fn check_approvals(cfg: &Config, doc: &Value) -> Result<(), String> {
    let (need, rule) = required(cfg, doc);
    if need <= 0 {
        return Ok(());
    }
    let key = key(cfg)?;
    let planner = doc["planned_by"].as_str().unwrap_or_default();
    let mut valid: Vec<String> = Vec::new();
    for a in doc["approvals"].as_array().into_iter().flatten() {
        let by = a["by"].as_str().unwrap_or_default();
        let ok = by != planner
            && !valid.iter().any(|v| v == by)
            && sign(&key, by, doc).is_ok_and(|s| Some(s.as_str()) == a["hmac"].as_str());
        if ok {
            valid.push(by.to_string());
        }
    }
    if (valid.len() as i64) < need {
        return Err(format!(
            "its targets ({rule}) need {need} approval{} by someone other than the planner, and it has {} valid{}",
            if need == 1 { "" } else { "s" },
            valid.len(),
            if valid.is_empty() { String::new() } else { format!(" ({})", valid.join(", ")) }
        ));
    }
    Ok(())
}

pub fn approve(ctx: &crate::context::Context, path: &Path) -> Result<i32, CliError> {
    let mut doc = super::plan::read(path)?;
    crate::plan::verify(&doc, chrono::Utc::now())
        .map_err(|e| refused(format!("{}: {e}; not approved", path.display())))?;
    let cfg = ctx.config()?;
    let me = super::plan::identity();
    if doc["planned_by"].as_str() == Some(me.as_str()) {
        return Err(refused(format!(
            "{me} made this plan, and a plan needs approval by someone else; not approved"
        )));
    }
    if doc["approvals"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x["by"].as_str() == Some(me.as_str())))
    {
        return Err(refused(format!("{me} has already approved this plan")));
    }
    let key = key(&cfg)
        .map_err(|e| CliError::usage(e).with_hint("see docs/change-control.md, Approvals"))?;
    let sig = sign(&key, &me, &doc).map_err(CliError::failed)?;
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let entry = json!({"by": me, "at": at, "hmac": sig});
    match doc.get_mut("approvals").and_then(Value::as_array_mut) {
        Some(a) => a.push(entry),
        None => {
            if let Some(o) = doc.as_object_mut() {
                o.insert("approvals".into(), json!([entry]));
            }
        }
    }
    let body = serde_json::to_string_pretty(&doc)
        .map_err(|e| CliError::failed(format!("cannot encode the plan: {e}")))?;
    std::fs::write(path, format!("{body}\n"))
        .map_err(|e| CliError::failed(format!("cannot write {}: {e}", path.display())))?;
    let (need, _) = required(&cfg, &doc);
    let have = doc["approvals"].as_array().map(Vec::len).unwrap_or(0);
    crate::stdio::out(format_args!(
        "approved {} as {me} ({have} approval{} of {need} required)\n",
        path.display(),
        if have == 1 { "" } else { "s" }
    ));
    Ok(exit::OK)
}
