//! The connection to a cluster: kubeconfig (or in-cluster) loading for the
//! handle's context and namespace, one kube::Client per target, raw JSON
//! requests, and API errors turned into messages that say who was refused
//! and what changed.

use crate::config::{Target, IN_CLUSTER};
use crate::dispatch::{Call, ErrorKind, OpError};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;
use std::path::PathBuf;

#[derive(Clone)]
pub struct Kube {
    pub client: kube::Client,
    pub namespace: String,
    /// Context name ("in-cluster" inside a pod).
    pub context: String,
    /// Who the API sees: the kubeconfig user, and whom it impersonates.
    pub identity: String,
    pub server: String,
}

/// `CONTEXT/NAMESPACE[@KUBECONFIG]`, as config.rs resolves kube targets.
fn parse_url(url: &str) -> (Option<String>, Option<String>, Option<PathBuf>) {
    let (spec, file) = match url.split_once('@') {
        Some((s, f)) => (s, Some(PathBuf::from(f))),
        None => (url, None),
    };
    let (ctx, ns) = spec.split_once('/').unwrap_or((spec, ""));
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    (some(ctx), some(ns), file)
}

fn config_error(what: String, e: impl std::fmt::Display, files: &[PathBuf]) -> OpError {
    // The YAML error quotes the lines around the fault, a token's among
    // them: mask the file's secrets in it.
    let text: String = files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .collect::<Vec<_>>()
        .join("\n");
    let cause = crate::redact::file_error(&e.to_string(), &text);
    OpError::bad_input(what).with_cause(cause).with_hint(
        "check the file with `kubectl config view`; opsh reads KUBECONFIG, else ~/.kube/config, or `kubeconfig` in [kube.NAME]",
    )
}

fn load_kubeconfig(file: Option<PathBuf>) -> Result<Option<(Kubeconfig, String)>, OpError> {
    if let Some(f) = file {
        let kc = Kubeconfig::read_from(&f).map_err(|e| {
            config_error(
                format!("cannot load kubeconfig {}", f.display()),
                e,
                std::slice::from_ref(&f),
            )
        })?;
        return Ok(Some((kc, f.display().to_string())));
    }
    if let Some(v) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let shown = v.to_string_lossy().into_owned();
        for p in std::env::split_paths(&v) {
            if !p.exists() {
                return Err(OpError::bad_input(format!(
                    "KUBECONFIG names {}, which does not exist",
                    p.display()
                ))
                .with_hint("fix KUBECONFIG, or unset it to use ~/.kube/config"));
            }
        }
        let files: Vec<PathBuf> = std::env::split_paths(&v).collect();
        let kc = Kubeconfig::from_env()
            .map_err(|e| config_error(format!("cannot load kubeconfig {shown}"), e, &files))?;
        return Ok(kc.map(|k| (k, shown)));
    }
    let home = crate::config::home().map(|h| h.join(".kube/config"));
    match home {
        Some(p) if p.exists() => {
            let kc = Kubeconfig::read_from(&p).map_err(|e| {
                config_error(
                    format!("cannot load kubeconfig {}", p.display()),
                    e,
                    std::slice::from_ref(&p),
                )
            })?;
            Ok(Some((kc, p.display().to_string())))
        }
        _ => Ok(None),
    }
}

/// `context/namespace` of the current kubeconfig context, for the REPL
/// prompt; None when there is no usable kubeconfig.
pub fn current_context_label() -> Option<String> {
    let Some((kc, _)) = load_kubeconfig(None).ok()? else {
        // In a pod: the service account's namespace.
        std::env::var_os("KUBERNETES_SERVICE_HOST")?;
        return Some(format!("{IN_CLUSTER}/{}", super::incluster::namespace()));
    };
    let name = kc.current_context.clone()?;
    let ns = kc
        .contexts
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.context.as_ref())
        .and_then(|c| c.namespace.clone())
        .unwrap_or_else(|| "default".into());
    Some(format!("{name}/{ns}"))
}

pub fn connect(call: &mut Call) -> Result<(Kube, Target), OpError> {
    let t = call.target()?;
    let call: &Call = call;
    let k = call.session.client::<Kube>(&t.url, || {
        let (ctx, ns, file) = parse_url(&t.url);
        let loaded = load_kubeconfig(file)?;
        // `context = "in-cluster"` names the pod's service account, unless a
        // kubeconfig really has a context of that name.
        let named_in_cluster = ctx.as_deref() == Some(IN_CLUSTER)
            && !loaded
                .as_ref()
                .is_some_and(|(kc, _)| kc.contexts.iter().any(|c| c.name == IN_CLUSTER));
        let in_pod = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
        let (config, context, identity) = match loaded {
            Some((kc, source)) if !named_in_cluster => {
                let context = match ctx.clone().or_else(|| kc.current_context.clone()) {
                    Some(c) => c,
                    None => {
                        return Err(OpError::bad_input(format!("kubeconfig {source} has no current context"))
                            .with_hint("name one with k8s.context(\"NAME\") or `kubectl config use-context`"))
                    }
                };
                let Some(named) = kc.contexts.iter().find(|c| c.name == context) else {
                    let names: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
                    return Err(OpError::bad_input(format!("no context `{context}` in kubeconfig {source}"))
                        .with_hint(format!("contexts there: {}", names.join(", "))));
                };
                let user = named.context.as_ref().and_then(|c| c.user.clone()).unwrap_or_default();
                // A token inline in the kubeconfig is masked like any secret.
                for a in kc.auth_infos.iter().filter_map(|a| a.auth_info.as_ref()) {
                    for secret in [&a.token, &a.password, &a.client_key_data].into_iter().flatten() {
                        crate::redact::register_secret(secrecy::ExposeSecret::expose_secret(secret));
                    }
                }
                let acting = kc
                    .auth_infos
                    .iter()
                    .find(|a| a.name == user)
                    .and_then(|a| a.auth_info.as_ref())
                    .and_then(|a| a.impersonate.clone());
                let identity = match acting {
                    Some(a) if a != user => format!("user `{user}` acting as `{a}` (context {context})"),
                    Some(_) => format!("user `{user}` (context {context})"),
                    None => format!("user `{user}` (context {context})"),
                };
                let opts = KubeConfigOptions { context: Some(context.clone()), ..Default::default() };
                let config = call.block_on(async {
                    kube::Config::from_custom_kubeconfig(kc, &opts)
                        .await
                        .map_err(|e| config_error(format!("cannot use context `{context}` of kubeconfig {source}"), e, &[]))
                })?;
                (config, context, identity)
            }
            _ if in_pod && (named_in_cluster || ctx.is_none()) => {
                let (config, identity) = super::incluster::config()?;
                (config, IN_CLUSTER.to_string(), identity)
            }
            _ if named_in_cluster => {
                return Err(OpError::bad_input("context `in-cluster` is the service account of the pod opsh runs in, and KUBERNETES_SERVICE_HOST is not set: this is not a pod")
                    .with_hint("outside the cluster, name a kubeconfig context instead"))
            }
            _ => {
                return Err(OpError::bad_input("no kubeconfig: KUBECONFIG is not set and ~/.kube/config does not exist")
                    .with_hint("export KUBECONFIG=/path/to/kubeconfig, or name a file with `kubeconfig` in [kube.NAME] of the opsh config"))
            }
        };
        let namespace = ns.unwrap_or_else(|| config.default_namespace.clone());
        let server = config.cluster_url.to_string();
        // The client spawns its connection buffer task on the session runtime.
        let _rt = call.session.rt.enter();
        let client = kube::Client::try_from(config)
            .map_err(|e| OpError::failed(format!("cannot build a Kubernetes client for {context}")).with_cause(e))?;
        Ok(Kube { client, namespace, context, identity, server })
    })?;
    Ok((k, t))
}

/// Who and where a change goes, for the audit log: the API server, the
/// kubeconfig context, the namespace and the identity the API sees.
pub fn identity(call: &mut Call) -> Result<serde_json::Value, OpError> {
    let (k, _) = connect(call)?;
    Ok(serde_json::json!({
        "server": k.server,
        "context": k.context,
        "namespace": k.namespace,
        "user": k.identity,
    }))
}

/// An API failure, decoded. `code` 0: the request got no answer from the
/// API server (unreachable_or says so).
#[derive(Debug)]
pub struct ApiErr {
    pub code: u16,
    pub reason: String,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiErr {
    /// A request that could not be built: nothing was sent.
    pub fn bad_request(e: http::Error) -> Self {
        ApiErr {
            code: 0,
            reason: "BadRequest".into(),
            message: e.to_string(),
            details: None,
        }
    }
}

/// The one reading of a kube client error. An answer of the API keeps its
/// status, reason and details (api_error words 403, 404 and 409 from them).
/// Anything else got no API answer, and the innermost error of its chain is
/// the line that says why ("Connection refused", "invalid peer
/// certificate"), where the outer ones only say "client error (Connect)".
impl From<kube::Error> for ApiErr {
    fn from(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(s) => ApiErr {
                code: s.code,
                reason: s.reason,
                message: s.message,
                details: s.details.and_then(|d| serde_json::to_value(d).ok()),
            },
            // An answer that is not JSON: serde's own line would not say
            // that it was the answer it could not read.
            e @ kube::Error::SerdeError(_) => ApiErr {
                code: 0,
                reason: "Unreachable".into(),
                message: e.to_string(),
                details: None,
            },
            other => ApiErr {
                code: 0,
                reason: "Unreachable".into(),
                message: crate::dispatch::root_cause(&other),
                details: None,
            },
        }
    }
}

impl Kube {
    pub fn api_error(&self, what: &str, e: ApiErr) -> OpError {
        let cause = crate::redact::redact(&e.message);
        match e.code {
            401 => OpError::failed(format!(
                "{what}: the API server did not accept the credentials of {}",
                self.identity
            ))
            .with_cause(cause)
            .with_hint(
                "refresh the credentials (token expired?) and check with `kubectl auth whoami`",
            ),
            403 => OpError::new(
                ErrorKind::Failed,
                format!("{what}: forbidden for {}", self.identity),
            )
            .with_cause(cause)
            .with_hint("this identity lacks the RBAC permission; check with `kubectl auth can-i`"),
            404 => OpError::failed(format!("{what}: not found in namespace {}", self.namespace))
                .with_cause(cause),
            409 => {
                let causes: Vec<String> = e
                    .details
                    .as_ref()
                    .and_then(|d| d["causes"].as_array())
                    .map(|a| {
                        a.iter()
                            .map(|c| {
                                format!(
                                    "{} ({})",
                                    c["field"].as_str().unwrap_or("?"),
                                    c["message"].as_str().unwrap_or("")
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let mut err = OpError::failed(format!(
                    "{what}: conflict, the object changed since it was read"
                ))
                .with_cause(cause);
                if !causes.is_empty() {
                    err.message = format!("{what}: conflict on {}", causes.join(", "));
                }
                err.with_hint("read it again and decide; nothing was changed")
            }
            422 | 400 => {
                OpError::bad_input(format!("{what}: the API server rejected it ({})", e.reason))
                    .with_cause(cause)
            }
            _ => OpError::failed(format!(
                "{what}: the API server answered {} {}",
                e.code, e.reason
            ))
            .with_cause(cause),
        }
    }

    /// One request with a JSON answer. `path` starts with /api or /apis.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        ctype: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Value, ApiErr> {
        let mut b = http::Request::builder()
            .method(method)
            .uri(path)
            .header("Accept", "application/json");
        if let Some(c) = ctype {
            b = b.header("Content-Type", c);
        }
        let req = b
            .body(body.unwrap_or_default())
            .map_err(ApiErr::bad_request)?;
        let resp = self.client.send(req.map(kube::client::Body::from)).await?;
        let status = resp.status().as_u16();
        let bytes = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .map(|c| c.to_bytes())?;
        let v: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        if status >= 400 {
            return Err(ApiErr {
                code: status,
                reason: v["reason"].as_str().unwrap_or("").to_string(),
                message: v["message"]
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| v.to_string()),
                details: v.get("details").cloned(),
            });
        }
        Ok(v)
    }

    /// A text answer (pod logs).
    pub async fn request_text(&self, path: &str) -> Result<String, ApiErr> {
        match self.request("GET", path, None, None).await? {
            Value::String(s) => Ok(s),
            other => Ok(other.to_string()),
        }
    }
}

fn unreachable_hint(k: &Kube, cause: &str) -> String {
    let in_cluster = k.context == IN_CLUSTER;
    if cause.contains("certificate") {
        return if in_cluster {
            format!(
                "the API server's certificate is not signed by the CA in {}/ca.crt",
                super::incluster::service_account_dir().display()
            )
        } else {
            format!("the API server's certificate is not signed by the certificate-authority of context {}; check the kubeconfig", k.context)
        };
    }
    if in_cluster {
        "is the API server reachable from this pod (KUBERNETES_SERVICE_HOST/PORT, egress NetworkPolicy)?".into()
    } else {
        format!(
            "is the cluster of context {0} up? `kubectl --context {0} cluster-info` tells",
            k.context
        )
    }
}

pub fn unreachable_or(k: &Kube, what: &str, e: ApiErr) -> OpError {
    if e.code == 0 {
        return OpError::failed(format!(
            "{what}: cannot reach the Kubernetes API at {}",
            k.server
        ))
        .with_cause(crate::redact::redact(&e.message))
        .with_hint(unreachable_hint(k, &e.message));
    }
    k.api_error(what, e)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::dispatch::OpError;
    use serde_json::json;

    /// A client of a port nothing listens on (it was free a moment ago), and
    /// the runtime its requests run on.
    pub(in crate::modules::k8s) fn unanswered() -> (tokio::runtime::Runtime, Kube) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let server = format!("http://127.0.0.1:{port}");
        let config = kube::Config::new(server.parse().expect("a URI"));
        let client = {
            let _rt = rt.enter();
            kube::Client::try_from(config).expect("a client")
        };
        let k = Kube {
            client,
            namespace: "shop".into(),
            context: "test".into(),
            identity: "user `ci` (context test)".into(),
            server,
        };
        (rt, k)
    }

    fn answer(status: Value) -> ApiErr {
        let s: kube::core::Status = serde_json::from_value(status).expect("a Status");
        ApiErr::from(kube::Error::Api(Box::new(s)))
    }

    fn cause(e: &OpError) -> &str {
        e.cause.as_deref().unwrap_or("")
    }

    #[test]
    fn api_answers_keep_status_reason_and_cause() {
        let (_rt, k) = unanswered();
        let e = unreachable_or(
            &k,
            "scale api",
            answer(json!({"code": 403, "reason": "Forbidden",
                "message": "deployments.apps \"api\" is forbidden: User \"ci\" cannot patch resource"})),
        );
        assert_eq!(
            e.message,
            "scale api: forbidden for user `ci` (context test)"
        );
        assert!(cause(&e).contains("cannot patch resource"), "{e:?}");
        assert!(e.hint.as_deref().unwrap_or("").contains("RBAC"), "{e:?}");

        let e = unreachable_or(
            &k,
            "get deployment api",
            answer(json!({"code": 404, "reason": "NotFound",
                "message": "deployments.apps \"api\" not found"})),
        );
        assert_eq!(e.message, "get deployment api: not found in namespace shop");
        assert_eq!(cause(&e), "deployments.apps \"api\" not found");

        // The details of a 409 survive the mapping: they name the field.
        let e = unreachable_or(
            &k,
            "scale api",
            answer(json!({"code": 409, "reason": "Conflict",
                "message": "Operation cannot be fulfilled: the object has been modified",
                "details": {"name": "api", "causes": [{"field": "spec.replicas", "message": "changed"}]}})),
        );
        assert_eq!(e.message, "scale api: conflict on spec.replicas (changed)");
        assert!(cause(&e).contains("the object has been modified"), "{e:?}");
        assert!(
            e.hint.as_deref().unwrap_or("").contains("read it again"),
            "{e:?}"
        );
    }

    #[test]
    fn an_unanswered_request_keeps_its_root_cause() {
        let (rt, k) = unanswered();
        let Err(e) = rt.block_on(k.request("GET", "/api", None, None)) else {
            panic!("nothing listens on {}", k.server);
        };
        assert_eq!(e.code, 0);
        // The innermost error, not kube's "ServiceError: client error (Connect)".
        assert!(e.message.contains("Connection refused"), "{e:?}");
        let e = unreachable_or(&k, "list pods", e);
        assert_eq!(
            e.message,
            format!("list pods: cannot reach the Kubernetes API at {}", k.server)
        );
        assert!(cause(&e).contains("Connection refused"), "{e:?}");
        assert!(
            e.hint.as_deref().unwrap_or("").contains("context test"),
            "{e:?}"
        );
    }
}
