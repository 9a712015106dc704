//! Pod logs (one pod or a selector, tail/since/grep/previous) and
//! metrics.k8s.io usage per pod and node.

use super::api::*;
use super::client::connect;
use super::reads::list_pods;
use super::POD_NAMES;
use crate::dispatch::{Call, OpError};
use crate::registry::{field, opt, req, Field, Primitive, Ty};
use crate::value::map_of;
use rhai::{Array, Dynamic, Map};

pub const LOGS: Primitive = Primitive::read("logs", logs)
    .params(&[
        req("pod_or_selector", Ty::Str).names(POD_NAMES),
        opt(
            "opts",
            Ty::Record(&[
                field("container", Ty::Str).doc("which container, for a pod with several"),
                field("tail", Ty::Int).doc("the last lines, per pod"),
                field("since", Ty::Duration).doc("lines written within this long (\"5m\")"),
                field("grep", Ty::Str).doc("only lines containing this substring"),
                field("previous", Ty::Bool)
                    .doc("the last terminated container's log, after a crash"),
                field("follow", Ty::Duration).doc(
                    "keep reading new lines for this long (\"30s\"), like kubectl logs -f but bounded (Ctrl-C cancels it)",
                ),
                field("stop_at", Ty::Str)
                    .doc("with follow: stop at the first new line containing this"),
            ]),
        ),
    ])
    .returns(Ty::Rows(&[
        field("pod", Ty::Str),
        field("line", Ty::Str),
    ]))
    .doc("Log lines of a pod, of every pod matching a label selector (\"app=api\"), or of every pod of a workload \
          (\"deploy/api\", \"job/nightly-1\", \"sts/db\", \"ds/agent\", \"rs/api-7d9\"; \"pod/NAME\" too).\n\
          A pod with several containers gives its default one (the kubectl.kubernetes.io/default-container annotation, else the first) unless container says, with a note on stderr.\n\
          With a selector, a pod that has no log to give yet (still starting, or no previous container) is skipped with a note on stderr.")
    .example(r#"let errors = k8s.logs("app=api", #{tail: 200, grep: "ERROR"}); errors.len()"#);
fn logs(call: &mut Call) -> Result<Dynamic, OpError> {
    let target = call.str("pod_or_selector")?;
    let opts = call.opts("opts")?;
    let (k, _) = connect(call)?;
    let (selector, by_selector) = match workload_selector(call, &k, &target)? {
        Some(sel) => (sel, true),
        None => (target.clone(), target.contains('=')),
    };
    let pods: Vec<serde_json::Value> = if by_selector {
        let found = list_pods(call, &k, &selector)?;
        if found.is_empty() {
            return Err(OpError::failed(format!(
                "no pods match {target} in namespace {}",
                k.namespace
            )));
        }
        found
    } else {
        let pod = target
            .strip_prefix("pod/")
            .or(target.strip_prefix("pods/"))
            .unwrap_or(&target);
        vec![get(
            call,
            &k,
            &format!("get pod {pod}"),
            &format!("{}/{}", core(&k.namespace, "pods"), enc(pod)),
        )?]
    };
    let container = opts.str("container")?;
    let mut q = Vec::new();
    if let Some(n) = opts.int("tail")? {
        q.push(format!("tailLines={n}"));
    }
    if let Some(d) = opts.duration("since")? {
        q.push(format!("sinceSeconds={}", d.as_secs().max(1)));
    }
    if opts.bool("previous")? {
        q.push("previous=true".into());
    }
    let grep = opts.str("grep")?;
    let follow = opts.duration("follow")?;
    let until = opts.str("stop_at")?;
    let mut out = Array::new();
    for p in pods {
        let pod = s(&p, "metadata.name").to_string();
        let mut q = q.clone();
        let c = match &container {
            Some(c) => c.clone(),
            None => default_container(call, &p),
        };
        if !c.is_empty() {
            q.push(format!("container={}", enc(&c)));
        }
        if let Some(d) = follow {
            let path = format!(
                "{}/{}/log?follow=true&{}",
                core(&k.namespace, "pods"),
                enc(&pod),
                q.join("&")
            );
            for line in follow_lines(call, &k, &path, d, until.as_deref())? {
                if grep.as_ref().is_some_and(|g| !line.contains(g.as_str())) {
                    continue;
                }
                out.push(Dynamic::from_map(map_of([
                    ("pod", pod.clone().into()),
                    ("line", line.into()),
                ])));
            }
            continue;
        }
        let path = format!(
            "{}/{}/log?{}",
            core(&k.namespace, "pods"),
            enc(&pod),
            q.join("&")
        );
        let what = format!("logs of {pod}");
        let text = match call.block_on(async { Ok(k.request_text(&path).await) })? {
            Ok(t) => t,
            // With a selector, one pod still starting (or without a previous
            // container) does not hide the others' logs.
            Err(e) if by_selector && e.code == 400 => {
                call.session.out.note(&format!(
                    "{}: skipping {pod}: {}",
                    call.prim.full_name(),
                    e.message
                ));
                continue;
            }
            Err(e) => return Err(super::client::unreachable_or(&k, &what, e)),
        };
        for line in text.lines() {
            if grep.as_ref().is_some_and(|g| !line.contains(g.as_str())) {
                continue;
            }
            out.push(Dynamic::from_map(map_of([
                ("pod", pod.clone().into()),
                ("line", line.to_string().into()),
            ])));
        }
    }
    Ok(out.into())
}

/// The label selector of `kind/NAME` (deploy, job, sts, ds, rs), as the
/// pods of that workload; None for a pod name or a selector.
fn workload_selector(
    call: &Call,
    k: &super::client::Kube,
    target: &str,
) -> Result<Option<String>, OpError> {
    let Some((kind, name)) = target.split_once('/') else {
        return Ok(None);
    };
    let path = match kind {
        "pod" | "pods" | "po" => return Ok(None),
        "deploy" | "deployment" | "deployments" => deploy_path(&k.namespace, &enc(name)),
        "job" | "jobs" => format!("/apis/batch/v1/namespaces/{}/jobs/{}", k.namespace, enc(name)),
        "sts" | "statefulset" | "statefulsets" => format!("/apis/apps/v1/namespaces/{}/statefulsets/{}", k.namespace, enc(name)),
        "ds" | "daemonset" | "daemonsets" => format!("/apis/apps/v1/namespaces/{}/daemonsets/{}", k.namespace, enc(name)),
        "rs" | "replicaset" | "replicasets" => format!("/apis/apps/v1/namespaces/{}/replicasets/{}", k.namespace, enc(name)),
        other => {
            return Err(OpError::bad_input(format!(
                "logs of {other}/...: give a pod name, a selector, or deploy/, job/, sts/, ds/, rs/ or pod/NAME"
            )))
        }
    };
    let o = get(call, k, &format!("get {target}"), &path)?;
    let sel = &o["spec"]["selector"];
    let mut parts: Vec<String> = sel["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(a, b)| format!("{a}={}", b.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let vals: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        match s(e, "operator") {
            "In" => parts.push(format!("{} in ({})", s(e, "key"), vals.join(","))),
            "NotIn" => parts.push(format!("{} notin ({})", s(e, "key"), vals.join(","))),
            "Exists" => parts.push(s(e, "key").to_string()),
            "DoesNotExist" => parts.push(format!("!{}", s(e, "key"))),
            _ => {}
        }
    }
    if parts.is_empty() {
        return Err(OpError::failed(format!(
            "{target} has no label selector to find its pods by"
        )));
    }
    Ok(Some(parts.join(",")))
}

/// kubectl's choice when no container is named: the default-container
/// annotation, else the first; a note says so when there were several.
fn default_container(call: &Call, p: &serde_json::Value) -> String {
    let names: Vec<&str> = p["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    if names.len() < 2 {
        return String::new();
    }
    let chosen = p["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"]
        .as_str()
        .filter(|c| names.contains(c))
        .unwrap_or(names[0])
        .to_string();
    call.session.out.note(&format!(
        "{}: {}: defaulted container \"{chosen}\" out of: {}",
        call.prim.full_name(),
        s(p, "metadata.name"),
        names.join(", ")
    ));
    chosen
}

/// Lines of a followed log for up to `d`, or until one contains `stop_at`
/// (Ctrl-C cancels the call, as any other).
fn follow_lines(
    call: &Call,
    k: &super::client::Kube,
    path: &str,
    d: std::time::Duration,
    until: Option<&str>,
) -> Result<Vec<String>, OpError> {
    use futures_util::{AsyncBufReadExt, StreamExt};
    let what = format!("follow {path}");
    call.block_on(async {
        let req = http::Request::builder()
            .uri(path)
            .body(Vec::new())
            .map_err(|e| OpError::failed(format!("{what}: {e}")))?;
        let body =
            k.client.request_stream(req).await.map_err(|e| {
                OpError::failed(format!("logs: {}", crate::dispatch::root_cause(&e)))
            })?;
        let mut lines = body.lines();
        let mut out = Vec::new();
        let end = tokio::time::sleep(d);
        tokio::pin!(end);
        loop {
            let next = tokio::select! {
                l = lines.next() => l,
                _ = &mut end => break,
            };
            match next {
                Some(Ok(l)) => {
                    let stop = until.is_some_and(|u| l.contains(u));
                    out.push(l);
                    if stop {
                        break;
                    }
                }
                Some(Err(_)) | None => break,
            }
        }
        Ok(out)
    })
}

/// "250m" -> 250, "1" -> 1000, "1500000n" -> 1 (millicores).
pub fn millicores(q: &str) -> i64 {
    if let Some(n) = q.strip_suffix('n') {
        n.parse::<i64>().map(|v| v / 1_000_000).unwrap_or(0)
    } else if let Some(u) = q.strip_suffix('u') {
        u.parse::<i64>().map(|v| v / 1000).unwrap_or(0)
    } else if let Some(m) = q.strip_suffix('m') {
        m.parse().unwrap_or(0)
    } else {
        q.parse::<f64>().map(|v| (v * 1000.0) as i64).unwrap_or(0)
    }
}

/// "34Mi" -> 34, "1Gi" -> 1024, "123456Ki" -> 120 (MiB).
pub fn mebibytes(q: &str) -> i64 {
    let units = [
        ("Ki", 1.0 / 1024.0),
        ("Mi", 1.0),
        ("Gi", 1024.0),
        ("Ti", 1024.0 * 1024.0),
        ("k", 1000.0 / 1048576.0),
        ("M", 1e6 / 1048576.0),
        ("G", 1e9 / 1048576.0),
    ];
    for (u, f) in units {
        if let Some(n) = q.strip_suffix(u) {
            return n
                .parse::<f64>()
                .map(|v| (v * f).round() as i64)
                .unwrap_or(0);
        }
    }
    q.parse::<f64>()
        .map(|v| (v / 1048576.0).round() as i64)
        .unwrap_or(0)
}

/// A row of k8s.top_pods and k8s.top_nodes.
const USAGE: &[Field] = &[
    field("name", Ty::Str),
    field("cpu_m", Ty::Int).doc("CPU in millicores"),
    field("memory_mi", Ty::Int).doc("memory in MiB"),
];

fn metrics(call: &mut Call, nodes: bool) -> Result<Dynamic, OpError> {
    let selector = if nodes {
        None
    } else {
        call.opts("opts")?.str("selector")?
    };
    let (k, _) = connect(call)?;
    let path = if nodes {
        "/apis/metrics.k8s.io/v1beta1/nodes".to_string()
    } else {
        let mut p = format!(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods",
            k.namespace
        );
        if let Some(sel) = &selector {
            p.push_str(&format!("?labelSelector={}", enc(sel)));
        }
        p
    };
    let what = if nodes { "top nodes" } else { "top pods" };
    let list = call.block_on(async {
        k.request("GET", &path, None, None).await.map_err(|e| {
            if e.code == 404 || e.code == 503 {
                OpError::failed(format!("{what}: this cluster serves no metrics API (metrics.k8s.io)"))
                    .with_cause(e.message)
                    .with_hint("install metrics-server, or check `kubectl get apiservice v1beta1.metrics.k8s.io`")
            } else {
                super::client::unreachable_or(&k, what, e)
            }
        })
    })?;
    let mut rows: Vec<Map> = items(&list)
        .iter()
        .map(|m| {
            let (cpu, mem) = if nodes {
                (
                    millicores(s(m, "usage.cpu")),
                    mebibytes(s(m, "usage.memory")),
                )
            } else {
                m["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .fold((0, 0), |(c, me), x| {
                        (
                            c + millicores(s(x, "usage.cpu")),
                            me + mebibytes(s(x, "usage.memory")),
                        )
                    })
            };
            map_of([
                ("name", s(m, "metadata.name").into()),
                ("cpu_m", cpu.into()),
                ("memory_mi", mem.into()),
            ])
        })
        .collect();
    rows.sort_by_key(|r| -r.get("cpu_m").and_then(|v| v.as_int().ok()).unwrap_or(0));
    Ok(rows
        .into_iter()
        .map(Dynamic::from_map)
        .collect::<Array>()
        .into())
}

pub const TOP_PODS: Primitive = Primitive::read("top_pods", top_pods)
    .params(&[opt(
        "opts",
        Ty::Record(&[field("selector", Ty::Str).doc("only pods matching this label selector (\"app=api\")")]),
    )])
    .returns(Ty::Rows(USAGE))
    .doc("CPU and memory per pod from metrics.k8s.io, busiest first. A clear error when the cluster serves no metrics API.")
    .example(r#"show(k8s.top_pods(#{selector: "app=worker"}))"#);
fn top_pods(call: &mut Call) -> Result<Dynamic, OpError> {
    metrics(call, false)
}

pub const TOP_NODES: Primitive = Primitive::read("top_nodes", top_nodes)
    .returns(Ty::Rows(USAGE))
    .doc("CPU and memory per node from metrics.k8s.io, busiest first. A clear error when the cluster serves no metrics API.")
    .example("show(k8s.top_nodes())");
fn top_nodes(call: &mut Call) -> Result<Dynamic, OpError> {
    metrics(call, true)
}
