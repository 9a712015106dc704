//! Waiting for a rollout, judged as `kubectl rollout status` judges it:
//! the spec change observed, every replica updated, old ones gone, the new
//! ones available; a Progressing condition with ProgressDeadlineExceeded
//! is a failure. Progress lines go to stderr while it waits.

use super::api::{deploy_path, enc, i, s};
use super::client::{unreachable_or, Kube};
use super::mutations::timeout_opt;
use super::reads::{deployment_row, revision};
use crate::dispatch::{Call, OpError};
use rhai::Dynamic;
use serde_json::Value;
use std::time::{Duration, Instant};

/// None when complete, else what it is waiting for.
fn waiting_for(d: &Value) -> Result<Option<String>, String> {
    let name = s(d, "metadata.name");
    if i(d, "metadata.generation") > i(d, "status.observedGeneration") {
        return Ok(Some(
            "waiting for the deployment spec update to be observed".into(),
        ));
    }
    let conds = d["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if conds
        .iter()
        .any(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded")
    {
        return Err(format!("deployment {name} exceeded its progress deadline"));
    }
    let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let updated = i(d, "status.updatedReplicas");
    let total = i(d, "status.replicas");
    let available = i(d, "status.availableReplicas");
    if updated < want {
        return Ok(Some(format!("{updated} of {want} new replicas updated")));
    }
    if total > updated {
        return Ok(Some(format!(
            "{} old replicas pending termination",
            total - updated
        )));
    }
    if available < updated {
        return Ok(Some(format!(
            "{available} of {updated} updated replicas available"
        )));
    }
    Ok(None)
}

/// Polls until the rollout is complete, the deadline passes, or it fails.
pub fn wait_rollout(
    call: &Call,
    k: &Kube,
    name: &str,
    timeout: Duration,
    progress: bool,
) -> Result<Value, OpError> {
    let path = deploy_path(&k.namespace, &enc(name));
    let started = Instant::now();
    let out = &call.session.out;
    call.block_on(async {
        let mut last = String::new();
        loop {
            let d = k.request("GET", &path, None, None).await.map_err(|e| unreachable_or(k, &format!("rollout status {name}"), e))?;
            match waiting_for(&d) {
                Ok(None) => return Ok(d),
                Err(failed) => {
                    return Err(OpError::failed(failed).with_hint(format!("see k8s.events(#{{involved: \"{name}\"}}) and k8s.pods(#{{not_ready: true}}); k8s.rollout_undo(\"{name}\") returns to the previous revision")))
                }
                Ok(Some(msg)) => {
                    if progress && msg != last {
                        out.note(&format!("rollout {name}: {msg}"));
                        last = msg.clone();
                    }
                    if started.elapsed() >= timeout {
                        return Err(OpError::new(crate::dispatch::ErrorKind::Timeout, format!("rollout of {name} not complete after {}: {msg}", humantime::format_duration(timeout)))
                            .with_hint("raise #{timeout: \"10m\"} if it is slow, or look at k8s.pods(#{not_ready: true}) and k8s.events()"));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
}

pub fn rollout_status(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = call.str_arg(0)?;
    let opts = call.opt_map(1)?;
    let timeout = timeout_opt(&opts, 300)?;
    let (k, _) = super::client::connect(call)?;
    let started = Instant::now();
    let d = wait_rollout(call, &k, &name, timeout, true)?;
    let mut row = deployment_row(&d);
    row.insert("revision".into(), revision(&d).into());
    row.insert("complete".into(), true.into());
    row.insert(
        "waited_ms".into(),
        (started.elapsed().as_millis() as i64).into(),
    );
    Ok(Dynamic::from_map(row))
}
