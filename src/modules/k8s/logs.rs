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
            ]),
        ),
    ])
    .returns(Ty::Rows(&[
        field("pod", Ty::Str),
        field("line", Ty::Str),
    ]))
    .doc("Log lines of a pod, or of every pod matching a label selector (\"app=api\").\n\
          With a selector, a pod that has no log to give yet (still starting, or no previous container) is skipped with a note on stderr.")
    .example(r#"let errors = k8s.logs("app=api", #{tail: 200, grep: "ERROR"}); errors.len()"#);
fn logs(call: &mut Call) -> Result<Dynamic, OpError> {
    let target = call.str("pod_or_selector")?;
    let opts = call.opts("opts")?;
    let (k, _) = connect(call)?;
    let by_selector = target.contains('=');
    let pods: Vec<String> = if by_selector {
        let found = list_pods(call, &k, &target)?;
        if found.is_empty() {
            return Err(OpError::failed(format!(
                "no pods match {target} in namespace {}",
                k.namespace
            )));
        }
        found
            .iter()
            .map(|p| s(p, "metadata.name").to_string())
            .collect()
    } else {
        vec![target]
    };
    let mut q = Vec::new();
    if let Some(c) = opts.str("container")? {
        q.push(format!("container={}", enc(&c)));
    }
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
    let mut out = Array::new();
    for pod in pods {
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
    let (k, _) = connect(call)?;
    let path = if nodes {
        "/apis/metrics.k8s.io/v1beta1/nodes".to_string()
    } else {
        format!(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods",
            k.namespace
        )
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
    .returns(Ty::Rows(USAGE))
    .doc("CPU and memory per pod from metrics.k8s.io, busiest first. A clear error when the cluster serves no metrics API.")
    .example("show(k8s.top_pods())");
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
