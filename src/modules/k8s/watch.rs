//! `k8s.watch`: the changes to objects of a kind as they happen, like
//! `kubectl get -w`, but bounded: for a duration, a number of events, or
//! until a function of an event says stop. Ctrl-C cancels it.

use super::api::{enc, get, resolve_kind, s, tidy, to_dyn};
use super::client::connect;
use crate::dispatch::{Call, OpError};
use crate::registry::{field, opt, req, Field, Primitive, Ty};
use crate::value::map_of;
use futures_util::TryStreamExt;
use kube::api::WatchEvent;
use rhai::{Array, Dynamic};
use serde_json::Value;
use std::time::{Duration, Instant};

const EVENT: &[Field] = &[
    field("type", Ty::Str).doc("ADDED, MODIFIED or DELETED"),
    field("name", Ty::Str),
    field("object", Ty::Map).doc("the object after the change (managedFields dropped)"),
];

pub const WATCH: Primitive = Primitive::read("watch", watch)
    .params(&[
        req("kind", Ty::Str),
        opt(
            "opts",
            Ty::Record(&[
                field("name", Ty::Str).doc("only this object"),
                field("selector", Ty::Str).doc("only objects matching this label selector"),
                field("duration", Ty::Duration).doc("how long to watch; default \"1m\""),
                field("max", Ty::Int).doc("stop after this many events"),
                field("stop", Ty::Fn).doc("stop after the first event for which |e| returns true"),
            ]),
        ),
    ])
    .returns(Ty::Rows(EVENT))
    .doc("Changes to objects of a kind from now on, like kubectl get -w, bounded by time (duration), count (max) or a condition (stop). \
          Returns the events seen; Ctrl-C cancels.")
    .example(r#"k8s.watch("pods", #{selector: "app=api", duration: "2m", stop: |e| e.type == "DELETED"})"#)
    .unbounded();
fn watch(call: &mut Call) -> Result<Dynamic, OpError> {
    let kind = call.str("kind")?;
    let opts = call.opts("opts")?;
    let stop = match opts.get("stop") {
        Some(f) => Some(f.clone().try_cast::<rhai::FnPtr>().ok_or_else(|| {
            OpError::bad_input(
                "stop must be a function of the event, e.g. |e| e.type == \"DELETED\"",
            )
        })?),
        None => None,
    };
    let limit = opts
        .duration("duration")?
        .unwrap_or(Duration::from_secs(60));
    let max = opts.int("max")?.map(|m| m.max(1) as usize);
    let (k, t) = connect(call)?;
    let r = resolve_kind(call, &k, &t.url, &kind)?;
    let base = r.collection(&k.namespace);
    let mut q = Vec::new();
    if let Some(n) = opts.str("name")? {
        q.push(format!(
            "fieldSelector={}",
            enc(&format!("metadata.name={n}"))
        ));
    }
    if let Some(sel) = opts.str("selector")? {
        q.push(format!("labelSelector={}", enc(&sel)));
    }
    // From the current state on: the list's resourceVersion.
    let list_path = if q.is_empty() {
        base.clone()
    } else {
        format!("{base}?{}", q.join("&"))
    };
    let list = get(call, &k, &format!("list {}", r.plural), &list_path)?;
    let rv = s(&list, "metadata.resourceVersion").to_string();
    q.push("watch=1".into());
    q.push(format!("resourceVersion={}", enc(&rv)));
    q.push(format!("timeoutSeconds={}", limit.as_secs().max(1)));
    let path = format!("{base}?{}", q.join("&"));
    let what = format!("watch {}", r.plural);
    let started = Instant::now();
    let stream = call.block_on(async {
        let request = http::Request::builder()
            .uri(&path)
            .body(Vec::new())
            .map_err(|e| OpError::failed(format!("{what}: {e}")))?;
        k.client
            .request_events::<Value>(request)
            .await
            .map_err(|e| OpError::failed(format!("{what}: {}", crate::dispatch::root_cause(&e))))
    })?;
    let mut stream = Box::pin(stream);
    let mut out = Array::new();
    loop {
        let left = limit.saturating_sub(started.elapsed());
        if left.is_zero() {
            break;
        }
        let next = call.block_on(async {
            match tokio::time::timeout(left, stream.try_next()).await {
                Ok(Ok(e)) => Ok(e),
                Ok(Err(e)) => Err(OpError::failed(format!(
                    "{what}: {}",
                    crate::dispatch::root_cause(&e)
                ))),
                Err(_) => Ok(None),
            }
        })?;
        let (ty, o) = match next {
            Some(WatchEvent::Added(o)) => ("ADDED", o),
            Some(WatchEvent::Modified(o)) => ("MODIFIED", o),
            Some(WatchEvent::Deleted(o)) => ("DELETED", o),
            Some(WatchEvent::Bookmark(_)) => continue,
            Some(WatchEvent::Error(e)) => {
                return Err(OpError::failed(format!("{what}: {}", e.message)))
            }
            None => break,
        };
        let event = Dynamic::from_map(map_of([
            ("type", ty.into()),
            ("name", s(&o, "metadata.name").to_string().into()),
            ("object", to_dyn(&tidy(o))),
        ]));
        out.push(event.clone());
        if let Some(f) = &stop {
            let stop = f
                .call::<Dynamic>(call.engine, &call.session.script(), (event,))
                .map_err(|e| OpError::failed(format!("{what}: stop: {e}")))?;
            if stop.as_bool().unwrap_or(false) {
                break;
            }
        }
        if max.is_some_and(|m| out.len() >= m) {
            break;
        }
    }
    Ok(out.into())
}
