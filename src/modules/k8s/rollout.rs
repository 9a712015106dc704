//! Waiting for a rollout, judged as `kubectl rollout status` judges it:
//! the spec change observed, every replica updated, old ones gone, the new
//! ones available; a Progressing condition with ProgressDeadlineExceeded
//! is a failure. Progress lines go to stderr while it waits; it follows a
//! watch on the Deployment rather than polling.

use super::api::{deploy_path, enc, i, s};
use super::client::{unreachable_or, Kube};
use super::reads::{deployment_row, revision, DEPLOYMENT};
use super::DEPLOYMENT_NAMES;
use crate::dispatch::{Call, OpError};
use crate::registry::{field, join, opt, req, Field, Primitive, Ty};
use futures_util::TryStreamExt;
use kube::api::WatchEvent;
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

/// Waits until the rollout is complete, the deadline passes, or it fails:
/// a watch on the one Deployment (as kubectl does), re-opened when the
/// server ends it; polling once a second if the watch is refused.
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
    let what = format!("rollout status {name}");
    let bar = crate::progress::start(format!("waiting for the rollout of {name}"), None);
    let result = call.block_on(async {
        let mut last = String::new();
        let mut judge = |d: &Value| -> Result<Option<Value>, OpError> {
            match waiting_for(d) {
                Ok(None) => Ok(Some(d.clone())),
                Err(failed) => Err(OpError::failed(failed).with_hint(format!(
                    "see k8s.events(#{{involved: \"{name}\"}}) and k8s.pods(#{{not_ready: true}}); k8s.rollout_undo(\"{name}\") returns to the previous revision"
                ))),
                Ok(Some(msg)) => {
                    bar.set(msg.clone());
                    if started.elapsed() >= timeout {
                        return Err(OpError::new(crate::dispatch::ErrorKind::Timeout, format!("rollout of {name} not complete after {}: {msg}", humantime::format_duration(timeout)))
                            .with_hint("raise #{timeout: \"10m\"} if it is slow, or look at k8s.pods(#{not_ready: true}) and k8s.events()"));
                    }
                    if progress && msg != last {
                        out.note(&format!("rollout {name}: {msg}"));
                        last = msg;
                    }
                    Ok(None)
                }
            }
        };
        loop {
            let d = k.request("GET", &path, None, None).await.map_err(|e| unreachable_or(k, &what, e))?;
            if let Some(done) = judge(&d)? {
                return Ok(done);
            }
            let left = timeout.saturating_sub(started.elapsed());
            let rv = d["metadata"]["resourceVersion"].as_str().unwrap_or("0").to_string();
            let watch = format!(
                "/apis/apps/v1/namespaces/{}/deployments?fieldSelector={}&watch=1&resourceVersion={rv}&timeoutSeconds={}",
                k.namespace,
                enc(&format!("metadata.name={name}")),
                left.as_secs().clamp(1, 300)
            );
            let request = http::Request::builder().uri(watch).body(Vec::new()).map_err(|e| OpError::failed(format!("{what}: {e}")))?;
            let events = match k.client.request_events::<Value>(request).await {
                Ok(events) => events,
                Err(_) => {
                    // No watch permission or support: poll instead.
                    tokio::time::sleep(Duration::from_secs(1).min(left)).await;
                    continue;
                }
            };
            let mut events = Box::pin(events);
            let deadline = tokio::time::sleep(left);
            tokio::pin!(deadline);
            loop {
                let next = tokio::select! {
                    e = events.try_next() => e,
                    _ = &mut deadline => break,
                };
                match next {
                    Ok(Some(WatchEvent::Added(d) | WatchEvent::Modified(d))) => {
                        if let Some(done) = judge(&d)? {
                            return Ok(done);
                        }
                    }
                    Ok(Some(WatchEvent::Deleted(_))) => return Err(OpError::failed(format!("{what}: deployment {name} was deleted while waiting"))),
                    // Ended, expired (410) or broken: read again and re-watch.
                    Ok(None) | Ok(Some(WatchEvent::Error(_))) | Err(_) => break,
                    Ok(Some(WatchEvent::Bookmark(_))) => {}
                }
            }
        }
    });
    bar.finish();
    match result {
        // A timeout says which pod holds the rollout back, and why.
        Err(e) if e.kind == crate::dispatch::ErrorKind::Timeout && e.cancelled.is_none() => {
            let blocking = call
                .block_on(async { Ok(blocking_pod(k, &path).await) })
                .ok()
                .flatten();
            Err(match blocking {
                Some(why) => OpError {
                    message: format!("{}; {why}", e.message),
                    ..e
                },
                None => e,
            })
        }
        other => other,
    }
}

/// The first pod of the deployment that is not ready, with the reason its
/// container waits (`ImagePullBackOff`) and the kubelet's message.
async fn blocking_pod(k: &Kube, deploy: &str) -> Option<String> {
    let d = k.request("GET", deploy, None, None).await.ok()?;
    let labels = d["spec"]["selector"]["matchLabels"].as_object()?;
    let selector: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    let path = format!(
        "/api/v1/namespaces/{}/pods?labelSelector={}",
        k.namespace,
        enc(&selector.join(","))
    );
    let list = k.request("GET", &path, None, None).await.ok()?;
    let pods = super::api::items(&list);
    let ready = |p: &Value| {
        p["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
    };
    // A waiting container names the cause; else any pod not ready.
    let waiting = |p: &Value| {
        p["status"]["containerStatuses"]
            .as_array()?
            .iter()
            .find_map(|c| {
                let w = &c["state"]["waiting"];
                let reason = w["reason"].as_str()?;
                Some(match w["message"].as_str() {
                    Some(m) if !m.is_empty() => format!("{reason}: {m}"),
                    _ => reason.to_string(),
                })
            })
    };
    let pod = pods
        .iter()
        .filter(|p| !ready(p))
        .max_by_key(|p| waiting(p).is_some())?;
    let name = pod["metadata"]["name"].as_str().unwrap_or("?");
    Some(match waiting(pod) {
        Some(why) => format!("pod {name} is waiting: {why}"),
        None => format!(
            "pod {name} is not ready (phase {})",
            pod["status"]["phase"].as_str().unwrap_or("unknown")
        ),
    })
}

/// How long a wait for a rollout lasts when the script does not say.
pub const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(300);

const ROLLED_OUT: [Field; 11] = join(&[
    DEPLOYMENT,
    &[
        field("complete", Ty::Bool).doc("always true: an incomplete rollout is an error"),
        field("waited_ms", Ty::Int).doc("how long it waited"),
    ],
]);

pub const ROLLOUT_STATUS: Primitive = Primitive::read("rollout_status", rollout_status)
    .params(&[
        req("deployment", Ty::Str).names(DEPLOYMENT_NAMES),
        opt(
            "opts",
            Ty::Record(&[field("timeout", Ty::Duration).doc("default \"5m\"")]),
        ),
    ])
    .returns(Ty::Record(&ROLLED_OUT))
    .doc("Wait until the deployment's rollout is complete (as `kubectl rollout status` judges it), showing progress on stderr.\n\
          Fails at once when the rollout exceeded its progress deadline, and with a timeout error when it is not complete in time. Returns the deployment's row as k8s.deployments shows it, once complete.")
    .example(r#"k8s.rollout_status("api", #{timeout: "3m"})"#)
    .unbounded();
fn rollout_status(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = call.str("deployment")?;
    let opts = call.opts("opts")?;
    let timeout = opts.duration("timeout")?.unwrap_or(ROLLOUT_TIMEOUT);
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
