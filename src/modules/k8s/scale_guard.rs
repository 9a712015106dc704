//! What stands between `k8s.scale` and the count it asked for: a
//! HorizontalPodAutoscaler on the same Deployment. Kubernetes' HPA puts a
//! count outside its [min, max] back within it (and moves one inside it
//! with the load), except 0, which switches it off until the Deployment is
//! scaled up again. So a scale the HPA will undo is refused unless
//! `override_hpa` says to go ahead, one it may move is a warning, and a
//! wait verifies the count the script asked for, not only the rollout.

use super::api::{deploy_path, enc, get, i, items, s};
use super::client::Kube;
use crate::dispatch::{Call, ErrorKind, OpError, Opts};
use serde_json::Value;
use std::time::{Duration, Instant};

pub struct Hpa {
    pub name: String,
    pub min: i64,
    pub max: i64,
}

/// The HPA whose target is Deployment `name`, if one can be read.
pub fn hpa_of(call: &Call, k: &Kube, name: &str) -> Option<Hpa> {
    let path = format!(
        "/apis/autoscaling/v2/namespaces/{}/horizontalpodautoscalers",
        k.namespace
    );
    // Unreadable (no RBAC to list HPAs): the scale goes on as it would with kubectl.
    let list = get(call, k, "list hpa", &path).ok()?;
    items(&list)
        .into_iter()
        .find(|h| {
            s(h, "spec.scaleTargetRef.kind") == "Deployment"
                && s(h, "spec.scaleTargetRef.name") == name
        })
        .map(|h: Value| Hpa {
            name: s(&h, "metadata.name").to_string(),
            min: h["spec"]["minReplicas"].as_i64().unwrap_or(1),
            max: i(&h, "spec.maxReplicas"),
        })
}

/// Ok(warning) when the scale may go ahead, Err when the HPA would undo it.
pub fn check(
    call: &Call,
    k: &Kube,
    name: &str,
    n: i64,
    opts: &Opts,
) -> Result<Option<String>, OpError> {
    let Some(h) = hpa_of(call, k, name) else {
        return Ok(None);
    };
    let Hpa {
        name: hname,
        min,
        max,
    } = &h;
    if n == 0 {
        return Ok(Some(format!(
            "the HorizontalPodAutoscaler {hname} (min {min}, max {max}) stops acting on deployment {name} at 0 replicas; scaling it up again turns it back on"
        )));
    }
    if (*min..=*max).contains(&n) {
        return Ok(Some(format!(
            "the HorizontalPodAutoscaler {hname} (min {min}, max {max}) manages deployment {name}: it may change {n} with the load"
        )));
    }
    let msg = format!(
        "the HorizontalPodAutoscaler {hname} keeps deployment {name} between {min} and {max} replicas: it would undo a scale to {n}"
    );
    if opts.bool("override_hpa")? {
        return Ok(Some(format!("{msg} (override_hpa: scaling anyway)")));
    }
    Err(OpError::refused(msg).with_hint(format!(
        "change its bounds first (k8s.patch_hpa(\"{hname}\", #{{min: ..., max: ...}})), scale to 0 to switch it off, or pass #{{override_hpa: true}} to scale anyway"
    )))
}

/// After the rollout wait, which a scale down passes at once (kubectl's
/// rule reads updated and available replicas): waits until the Deployment
/// has exactly `n` replicas and all are ready. Fails at once when it wants
/// another count (an HPA, or another client, changed it).
pub fn verify(
    call: &Call,
    k: &Kube,
    name: &str,
    n: i64,
    timeout: Duration,
) -> Result<Value, OpError> {
    let path = deploy_path(&k.namespace, &enc(name));
    let started = Instant::now();
    loop {
        let d = get(call, k, &format!("get deployment {name}"), &path)?;
        let wants = i(&d, "spec.replicas");
        let ready = i(&d, "status.readyReplicas");
        let total = i(&d, "status.replicas");
        if wants != n {
            let who = match hpa_of(call, k, name) {
                Some(h) => format!(
                    ": the HorizontalPodAutoscaler {} (min {}, max {}) changed it",
                    h.name, h.min, h.max
                ),
                None => ": another client changed it".to_string(),
            };
            return Err(OpError::failed(format!(
                "deployment {name} was scaled to {n} but now wants {wants} replicas ({ready} ready){who}"
            ))
            .with_hint(format!("see k8s.hpa() and k8s.events(#{{involved: \"{name}\"}})")));
        }
        if ready == n && total == n {
            return Ok(d);
        }
        if started.elapsed() >= timeout {
            return Err(OpError::new(
                ErrorKind::Timeout,
                format!(
                    "deployment {name} has {total} replicas, {ready} ready, not the {n} asked for after {}",
                    humantime::format_duration(timeout)
                ),
            )
            .with_hint("raise #{timeout: \"10m\"} if it is slow, or look at k8s.pods(#{not_ready: true}) and k8s.events()"));
        }
        call.block_on(async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(())
        })?;
    }
}
