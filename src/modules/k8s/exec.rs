//! `k8s.exec`: a command in a pod's container, as `kubectl exec` runs it
//! (over WebSocket). A mutation: what a command does inside a pod is not
//! known, so dry run only resolves the pods and shows what would run, a
//! protected target asks first, and the audit records the command (argv
//! only, never stdin). A non-zero exit is an error unless `check: false`.

use super::api::{core, enc, get, s};
use super::client::{connect, Kube};
use super::reads::list_pods;
use super::POD_NAMES;
use crate::dispatch::{Call, ErrorKind, OpError, Plan};
use crate::registry::{field, opt, req, Field, Primitive, Ty};
use crate::value::map_of;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use rhai::{Array, Dynamic};
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Exec {
    k: Kube,
    /// (pod, container) to run in.
    targets: Vec<(String, String)>,
    argv: Vec<String>,
    stdin: Option<String>,
    check: bool,
    timeout: Duration,
    one: bool,
}

fn container_of(p: &Value, wanted: Option<&str>) -> Result<String, OpError> {
    let names: Vec<&str> = p["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    match wanted {
        Some(c) if names.contains(&c) => Ok(c.to_string()),
        Some(c) => Err(OpError::bad_input(format!(
            "pod {} has no container {c}; it has {}",
            s(p, "metadata.name"),
            names.join(", ")
        ))),
        None => Ok(
            p["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"]
                .as_str()
                .filter(|c| names.contains(c))
                .or(names.first().copied())
                .unwrap_or("")
                .to_string(),
        ),
    }
}

fn ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn exec_args(call: &mut Call) -> Result<Exec, OpError> {
    let target = call.str("pod_or_selector")?;
    let argv: Vec<String> = call
        .strings("argv")?
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            OpError::bad_input("k8s.exec needs the command as a list, e.g. [\"df\", \"-h\"]")
        })?;
    let opts = call.opts("opts")?;
    let container = opts.str("container")?;
    let all = opts.bool("all")?;
    let (k, _) = connect(call)?;
    let by_selector = target.contains('=');
    let pods: Vec<Value> = if by_selector {
        let found: Vec<Value> = list_pods(call, &k, &target)?
            .into_iter()
            .filter(ready)
            .collect();
        if found.is_empty() {
            return Err(OpError::failed(format!(
                "no ready pod matches {target} in namespace {}",
                k.namespace
            )));
        }
        if all {
            found
        } else {
            found.into_iter().take(1).collect()
        }
    } else {
        vec![get(
            call,
            &k,
            &format!("get pod {target}"),
            &format!("{}/{}", core(&k.namespace, "pods"), enc(&target)),
        )?]
    };
    let targets = pods
        .iter()
        .map(|p| {
            Ok((
                s(p, "metadata.name").to_string(),
                container_of(p, container.as_deref())?,
            ))
        })
        .collect::<Result<Vec<_>, OpError>>()?;
    Ok(Exec {
        k,
        targets,
        argv,
        stdin: opts.str("stdin")?,
        check: opts.opt_bool("check")?.unwrap_or(true),
        timeout: opts
            .duration("timeout")?
            .unwrap_or(Duration::from_secs(300)),
        one: !(by_selector && all),
    })
}

fn plan_exec(call: &mut Call) -> Result<Plan, OpError> {
    let e = exec_args(call)?;
    let pods: Vec<String> = e
        .targets
        .iter()
        .map(|(p, c)| format!("{p} ({c})"))
        .collect();
    Ok(super::api::plan(
        format!(
            "would run {:?} in {} in {}{}",
            e.argv,
            pods.join(", "),
            e.k.namespace,
            if e.stdin.is_some() {
                ", with stdin"
            } else {
                ""
            }
        ),
        map_of([(
            "argv",
            e.argv
                .iter()
                .cloned()
                .map(Dynamic::from)
                .collect::<Array>()
                .into(),
        )]),
    ))
}

const RESULT: &[Field] = &[
    field("pod", Ty::Str),
    field("container", Ty::Str),
    field("exit_code", Ty::Int),
    field("stdout", Ty::Str),
    field("stderr", Ty::Str),
];

pub const EXEC: Primitive = Primitive::mutate("exec", plan_exec, exec)
    .params(&[
        req("pod_or_selector", Ty::Str).names(POD_NAMES),
        req("argv", Ty::List(&Ty::Str)),
        opt(
            "opts",
            Ty::Record(&[
                field("container", Ty::Str).doc("default: the pod's default container (annotation), else the first"),
                field("stdin", Ty::Str).doc("text fed to the command's standard input"),
                field("all", Ty::Bool).doc("with a selector: run in every ready pod (a list of results); default the first ready one"),
                field("check", Ty::Bool).doc("false: a non-zero exit is returned in exit_code instead of failing"),
                field("timeout", Ty::Duration).doc("default \"5m\""),
            ]),
        ),
    ])
    .returns(Ty::OneOf(&[Ty::Record(RESULT), Ty::Rows(RESULT)]))
    .doc("Run a command in a pod's container, like kubectl exec: by pod name, or in the first ready pod of a selector (all: every one). \
          A mutation (dry run shows what would run; audited with its argv). A non-zero exit fails with the end of its stderr, unless check: false.")
    .example(r#"let r = k8s.exec("app=postgres", ["df", "-h", "/var/lib/postgresql"]); print(r.stdout)"#)
    .unbounded();
fn exec(call: &mut Call) -> Result<Dynamic, OpError> {
    let e = exec_args(call)?;
    let mut results = Array::new();
    for (pod, container) in &e.targets {
        let r = run_one(call, &e, pod, container)?;
        let code = r.0;
        if e.check && code != 0 {
            let tail: String =
                r.2.lines()
                    .rev()
                    .take(5)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
            return Err(OpError::failed(format!(
                "{:?} in pod {pod} exited with {code}{}",
                e.argv,
                if tail.is_empty() {
                    String::new()
                } else {
                    format!(": {tail}")
                }
            ))
            .with_hint("pass #{check: false} to get the exit code and output instead"));
        }
        results.push(Dynamic::from_map(map_of([
            ("pod", pod.clone().into()),
            ("container", container.clone().into()),
            ("exit_code", code.into()),
            ("stdout", r.1.into()),
            ("stderr", r.2.into()),
        ])));
    }
    if e.one {
        return Ok(results.into_iter().next().unwrap_or(Dynamic::UNIT));
    }
    Ok(results.into())
}

/// (exit code, stdout, stderr) of the command in one pod.
fn run_one(
    call: &Call,
    e: &Exec,
    pod: &str,
    container: &str,
) -> Result<(i64, String, String), OpError> {
    let what = format!("exec in {pod}");
    let api: Api<Pod> = Api::namespaced(e.k.client.clone(), &e.k.namespace);
    let ap = AttachParams::default()
        .container(container)
        .stdin(e.stdin.is_some())
        .stdout(true)
        .stderr(true);
    let fail = |err: kube::Error| {
        let cause = crate::dispatch::root_cause(&err);
        let hint = if cause.contains("403") || cause.to_lowercase().contains("forbidden") {
            format!("{} may not create pods/exec here", e.k.identity)
        } else {
            "check that the pod is running (k8s.pods()) and the cluster allows exec".to_string()
        };
        OpError::failed(format!("{what}: {cause}")).with_hint(hint)
    };
    let timeout = e.timeout;
    call.block_on(async {
        let run = async {
            let mut p = api.exec(pod, e.argv.clone(), &ap).await.map_err(fail)?;
            let status = p.take_status();
            if let (Some(input), Some(mut w)) = (&e.stdin, p.stdin()) {
                w.write_all(input.as_bytes())
                    .await
                    .map_err(|x| OpError::failed(format!("{what}: stdin: {x}")))?;
                w.shutdown()
                    .await
                    .map_err(|x| OpError::failed(format!("{what}: stdin: {x}")))?;
            }
            let (mut out, mut err) = (String::new(), String::new());
            let (so, se) = (p.stdout(), p.stderr());
            let read_out = async {
                if let Some(mut r) = so {
                    let _ = r.read_to_string(&mut out).await;
                }
            };
            let read_err = async {
                if let Some(mut r) = se {
                    let _ = r.read_to_string(&mut err).await;
                }
            };
            tokio::join!(read_out, read_err);
            let st = match status {
                Some(f) => f.await,
                None => None,
            };
            let _ = p.join().await;
            let code = match st {
                Some(st) if st.status.as_deref() == Some("Success") => 0,
                Some(st) => st
                    .details
                    .as_ref()
                    .and_then(|d| d.causes.as_ref())
                    .and_then(|c| c.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
                    .and_then(|c| c.message.as_deref()?.parse().ok())
                    .unwrap_or(1),
                None => 0,
            };
            Ok::<_, OpError>((code, out, err))
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(OpError::new(
                ErrorKind::Timeout,
                format!(
                    "{what}: not finished after {}",
                    humantime::format_duration(timeout)
                ),
            )
            .with_hint("raise #{timeout: \"30m\"} for a long command")),
        }
    })
}
