//! HTTP/1.1 serving on hyper: authentication by bearer token, routing of
//! discovery and resource paths, the verbs, and watch streams.

use super::auth::{Access, Auth, ADMIN};
use super::convert::{served, stored};
use super::discovery::{self, Res};
use super::patch;
use super::store::{self, at_path, field_matches, leaf_paths, meta_str, ApiError, Selector, Store};
use super::validate::validate;
use super::{logs, metrics, table};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::{Request, Response};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

pub struct Shared {
    pub store: Store,
    /// Whether metrics.k8s.io is served (tests turn it off to see the error).
    pub metrics: std::sync::atomic::AtomicBool,
    /// (kind, namespace, name, patch): the next write to it is preceded by
    /// another writer's change, as a concurrent client would make: an
    /// annotation, and the strategic merge `patch` unless it is null.
    pub interfere: std::sync::Mutex<Option<(String, String, String, Value)>>,
    /// Tokens and RBAC grants (see auth.rs).
    pub auth: std::sync::RwLock<Auth>,
    /// Served over TLS: every request must carry an issued bearer token.
    pub secure: bool,
    /// Set when the controller loop died: why.
    pub failed: std::sync::Mutex<Option<String>>,
    /// The server's directory (exec runs in DIR/pods/NS/POD).
    pub dir: std::path::PathBuf,
}

/// A response body: whole, or a stream of watch events.
pub enum Body {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Body::Full(None) => SizeHint::with_exact(0),
            Body::Stream(_) => SizeHint::default(),
        }
    }
}

enum Reply {
    Json(u16, Value, String),
    Text(String),
    Stream(mpsc::Receiver<Bytes>),
    /// Plain text that goes on arriving (`logs -f`).
    TextStream(mpsc::Receiver<Bytes>),
}

fn ok(v: Value) -> Result<Reply, ApiError> {
    Ok(Reply::Json(200, v, "application/json".into()))
}

fn response(reply: Reply) -> Response<Body> {
    let (status, ctype, body) = match reply {
        Reply::Json(s, v, ct) => (s, ct, Body::Full(Some(Bytes::from(v.to_string())))),
        Reply::Text(t) => (200, "text/plain".into(), Body::Full(Some(Bytes::from(t)))),
        Reply::Stream(rx) => (200, "application/json".into(), Body::Stream(rx)),
        Reply::TextStream(rx) => (200, "text/plain".into(), Body::Stream(rx)),
    };
    let mut r = Response::new(body);
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    if let Ok(v) = ctype.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    if super::exec::wants_exec(&req) {
        return Ok(super::exec::handle(shared, req));
    }
    let (parts, body) = req.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let reply = route(&shared, &parts, &bytes)
        .unwrap_or_else(|e| Reply::Json(e.code, e.status(), "application/json".into()));
    Ok(response(reply))
}

struct Req<'a> {
    method: &'a str,
    query: HashMap<String, String>,
    accept: String,
    ctype: String,
    body: &'a [u8],
    user: String,
}

impl Req<'_> {
    fn q(&self, k: &str) -> &str {
        self.query.get(k).map(String::as_str).unwrap_or("")
    }
    fn dry(&self) -> bool {
        self.q("dryRun") == "All"
    }
    fn manager(&self) -> Option<&str> {
        Some(self.q("fieldManager")).filter(|m| !m.is_empty())
    }
    fn json(&self) -> Result<Value, ApiError> {
        if self.ctype.contains("protobuf") {
            return super::proto::decode(self.body);
        }
        if self.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(self.body)
            .map_err(|e| ApiError::bad(format!("invalid JSON body: {e}")))
    }
}

fn route(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    body: &[u8],
) -> Result<Reply, ApiError> {
    if let Some(why) = shared.failed.lock().ok().and_then(|f| f.clone()) {
        return Err(ApiError::new(
            500,
            "InternalError",
            format!("the sandbox API server's controllers stopped ({why}): nothing reconciles any more; restart the sandbox"),
        ));
    }
    let header = |n: hyper::header::HeaderName| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let user = user_of(shared, &parts.headers)?;
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let req = Req {
        method: parts.method.as_str(),
        query,
        accept: header(hyper::header::ACCEPT),
        ctype: header(hyper::header::CONTENT_TYPE),
        body,
        user,
    };
    let path = parts.uri.path().trim_end_matches('/');
    let metrics = shared.metrics.load(std::sync::atomic::Ordering::Relaxed);
    if !metrics && path.starts_with("/apis/metrics.k8s.io") {
        return Err(not_served());
    }
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => ok(discovery::version()),
        ["healthz"] | ["livez"] | ["readyz"] => Ok(Reply::Text("ok".into())),
        ["api"] | ["apis"] => {
            let core = segs[0] == "api";
            match discovery::aggregated_version(&req.accept) {
                Some(v) => Ok(Reply::Json(
                    200,
                    discovery::aggregated(core, v, metrics),
                    discovery::aggregated_content_type(v),
                )),
                None if core => ok(discovery::api_versions()),
                None => ok(discovery::api_group_list(metrics)),
            }
        }
        ["openapi", "v3"] => ok(discovery::openapi_root()),
        ["openapi", "v3", "api", v] => discovery::openapi_gv("", v)
            .map(ok)
            .unwrap_or_else(|| Err(not_served())),
        ["openapi", "v3", "apis", g, v] => discovery::openapi_gv(g, v)
            .map(ok)
            .unwrap_or_else(|| Err(not_served())),
        ["api", v] => discovery::resource_list("", v)
            .map(ok)
            .unwrap_or_else(|| Err(not_served())),
        ["apis", g, v] => discovery::resource_list(g, v)
            .map(ok)
            .unwrap_or_else(|| Err(not_served())),
        ["api", v, rest @ ..] => resource(shared, &req, "", v, rest),
        ["apis", g, v, rest @ ..] => resource(shared, &req, g, v, rest),
        _ => Err(not_served()),
    }
}

/// Who is asking: the user of an issued bearer token over TLS; over HTTP
/// (no tokens) admin, unless impersonating someone else.
pub fn user_of(shared: &Shared, headers: &hyper::HeaderMap) -> Result<String, ApiError> {
    if shared.secure {
        let token = headers
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let user = token
            .strip_prefix("Bearer ")
            .and_then(|t| shared.auth.read().ok()?.user(t.trim()).map(str::to_string));
        return user.ok_or_else(|| ApiError::new(401, "Unauthorized", "Unauthorized"));
    }
    Ok(headers
        .get("impersonate-user")
        .and_then(|v| v.to_str().ok())
        .unwrap_or(ADMIN)
        .to_string())
}

fn not_served() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

fn forbidden(req: &Req, r: &Res, a: &Access) -> ApiError {
    let what = match a.name {
        Some(n) => format!("{} \"{n}\"", store::qualified(r)),
        None => store::qualified(r),
    };
    let mut m = format!(
        "{what} is forbidden: User \"{}\" cannot {} resource \"{}\" in API group \"{}\"",
        req.user, a.verb, a.resource, r.group
    );
    let ns = a.namespace;
    if !ns.is_empty() {
        m.push_str(&format!(" in the namespace \"{ns}\""));
    }
    ApiError::new(403, "Forbidden", m)
}

/// A SelfSubjectAccessReview (`kubectl auth can-i`): the request's own user
/// against the same rules every request meets.
fn access_review(shared: &Shared, req: &Req) -> Result<Value, ApiError> {
    let mut review = req.json()?;
    let a = &review["spec"]["resourceAttributes"];
    if !a.is_object() {
        return Err(ApiError::bad(
            "spec.resourceAttributes is required (non-resource URLs are not supported)",
        ));
    }
    let field = |k: &str| a[k].as_str().unwrap_or("").to_string();
    let (verb, group, ns, name) = (
        field("verb"),
        field("group"),
        field("namespace"),
        field("name"),
    );
    let resource = match field("subresource").as_str() {
        "" => field("resource"),
        sub => format!("{}/{sub}", field("resource")),
    };
    let access = Access {
        verb: &verb,
        group: &group,
        resource: &resource,
        namespace: &ns,
        name: Some(name.as_str()).filter(|n| !n.is_empty()),
    };
    let allowed = allows(shared, &req.user, &access);
    review["status"] = if allowed {
        json!({"allowed": true, "reason": format!("RBAC: allowed for User \"{}\"", req.user)})
    } else {
        json!({"allowed": false})
    };
    review["apiVersion"] = json!("authorization.k8s.io/v1");
    review["kind"] = json!("SelfSubjectAccessReview");
    Ok(review)
}

fn resource(
    shared: &Shared,
    req: &Req,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Reply, ApiError> {
    let (ns, rest) = match rest {
        ["namespaces", ns, more @ ..] if !more.is_empty() => (*ns, more),
        other => ("", other),
    };
    let Some((plural, rest)) = rest.split_first() else {
        return Err(not_served());
    };
    let r = discovery::find(group, version, plural).ok_or_else(not_served)?;
    let name = rest.first().copied();
    let sub = rest.get(1).copied();
    let st = &shared.store;
    let verb = match (req.method, name) {
        ("GET", None) if matches!(req.q("watch"), "1" | "true") => "watch",
        ("GET", None) => "list",
        ("GET", Some(_)) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", _) => "delete",
        _ => return Err(ApiError::new(405, "MethodNotAllowed", "method not allowed")),
    };
    // Anyone authenticated may ask what they may do (system:basic-user).
    if r.review() {
        return match verb {
            "create" => match r.kind {
                "SelfSubjectRulesReview" => rules_review(shared, req),
                "SelfSubjectReview" => whoami(r, req),
                _ => access_review(shared, req),
            }
            .map(|v| Reply::Json(201, v, "application/json".into())),
            _ => Err(ApiError::new(
                405,
                "MethodNotAllowed",
                format!("{verb} is not supported on access reviews"),
            )),
        };
    }
    let resource = match sub {
        Some(s) => format!("{}/{s}", r.plural),
        None => r.plural.to_string(),
    };
    let access = Access {
        verb,
        group,
        resource: &resource,
        namespace: ns,
        name,
    };
    if !allows(shared, &req.user, &access) {
        return Err(forbidden(req, r, &access));
    }
    if let Some(sub @ ("attach" | "portforward" | "ephemeralcontainers" | "proxy")) = sub {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("the sandbox API server does not implement {}/{sub} (kubectl attach, port-forward and debug): exec is served", r.plural),
        ));
    }
    // A server-side dry run is a read as far as another writer is concerned:
    // the concurrent change lands between a plan and its write.
    if matches!(verb, "update" | "patch" | "delete") && !req.dry() {
        interfere(shared, r, ns, name.unwrap_or(""));
    }
    if r.computed() {
        let mut m = metrics::serve(st, r, ns, name, verb)?;
        if let Some(list) = m["items"].as_array().cloned() {
            m["items"] = Value::Array(filter(list, req)?);
        }
        return ok(m);
    }
    match (verb, name, sub) {
        ("watch", _, _) => watch(st, r, ns, req),
        ("list", _, _) => {
            let (items, rv) = st.list(r, ns);
            let items = filter(items, req)?;
            if req.accept.contains("as=Table") {
                return ok(table::table(r, &items, rv, req.q("includeObject")));
            }
            let items: Vec<Value> = items.into_iter().map(|o| served(r, o)).collect();
            ok(
                json!({"kind": format!("{}List", r.kind), "apiVersion": r.api_version(), "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
            )
        }
        ("get", Some(n), None) => {
            let o = st.get(r, ns, n).ok_or_else(|| ApiError::not_found(r, n))?;
            if req.accept.contains("as=Table") {
                return ok(table::table(
                    r,
                    &[o],
                    st.resource_version(),
                    req.q("includeObject"),
                ));
            }
            ok(served(r, o))
        }
        ("get", Some(n), Some("scale")) => ok(scale_of(
            &st.get(r, ns, n).ok_or_else(|| ApiError::not_found(r, n))?,
        )),
        ("get", Some(n), Some("status")) => ok(served(
            r,
            st.get(r, ns, n).ok_or_else(|| ApiError::not_found(r, n))?,
        )),
        ("get", Some(n), Some("log")) => {
            let p = st.get(r, ns, n).ok_or_else(|| ApiError::not_found(r, n))?;
            let text = logs::pod_log(&p, &req.query)?;
            if req.q("follow") == "true" && logs::still_running(&p) {
                return follow_log(st, r, p, text);
            }
            Ok(Reply::Text(text))
        }
        ("create", Some(n), Some("eviction")) => evict(st, ns, n, req),
        ("create", None, None) => {
            let obj = stored(r, req.json()?);
            let ns = if ns.is_empty() && r.namespaced {
                meta_str(&obj, "namespace").to_string()
            } else {
                ns.to_string()
            };
            let ns = if ns.is_empty() && r.namespaced {
                "default".to_string()
            } else {
                ns
            };
            let obj = prepare(r, obj);
            validate(r, &obj, None)?;
            let o = st.create(r, &ns, obj, req.dry(), req.manager())?;
            Ok(Reply::Json(201, served(r, o), "application/json".into()))
        }
        ("update", Some(n), None) => {
            let obj = prepare(r, stored(r, req.json()?));
            let old = st.get(r, ns, n).ok_or_else(|| ApiError::not_found(r, n))?;
            validate(r, &obj, Some(&old))?;
            ok(served(
                r,
                st.update(r, ns, n, obj, req.dry(), req.manager())?,
            ))
        }
        ("update", Some(n), Some("status")) => {
            let mut cur = st.get(r, ns, n).ok_or_else(|| ApiError::not_found(r, n))?;
            let body = req.json()?;
            cur["status"] = body["status"].clone();
            cur["metadata"]["resourceVersion"] = body["metadata"]["resourceVersion"].clone();
            ok(st.update(r, ns, n, cur, req.dry(), req.manager())?)
        }
        ("update", Some(n), Some("scale")) => {
            let body = req.json()?;
            let old = st.get(r, ns, n).ok_or_else(|| ApiError::not_found(r, n))?;
            let mut cur = old.clone();
            cur["spec"]["replicas"] = body["spec"]["replicas"].clone();
            cur["metadata"]["resourceVersion"] = body["metadata"]["resourceVersion"].clone();
            validate(r, &cur, Some(&old))?;
            ok(scale_of(&st.update(
                r,
                ns,
                n,
                cur,
                req.dry(),
                req.manager(),
            )?))
        }
        ("patch", Some(n), sub) => patch_object(st, r, ns, n, sub, req),
        ("delete", Some(n), None) => {
            let opts = req.json()?;
            let opts = if opts.is_null() { json!({}) } else { opts };
            let dry = req.dry()
                || opts["dryRun"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == "All"));
            let o = st.delete(r, ns, n, &opts, dry)?;
            if r.kind == "Namespace" && !dry {
                delete_namespace_contents(st, n);
            }
            ok(served(r, o))
        }
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{verb} is not supported on this path"),
        )),
    }
}

fn interfere(shared: &Shared, r: &Res, ns: &str, name: &str) {
    let Ok(mut slot) = shared.interfere.lock() else {
        return;
    };
    if slot
        .as_ref()
        .is_some_and(|(k, n, o, _)| k == r.kind && n == ns && o == name)
    {
        let change = slot.take().map(|s| s.3).unwrap_or(Value::Null);
        if let Some(mut o) = shared.store.get(r, ns, name) {
            o["metadata"]["annotations"]["sandbox.opsh.dev/touched-by"] = json!("another-client");
            if !change.is_null() {
                patch::strategic(&mut o, &change);
            }
            let _ = shared
                .store
                .update(r, ns, name, o, false, Some("another-client"));
        }
    }
}

/// Defaults the API server fills in, so clients see what they would see.
fn prepare(r: &Res, mut obj: Value) -> Value {
    match r.kind {
        "Deployment" => {
            if obj["spec"]["replicas"].is_null() {
                obj["spec"]["replicas"] = json!(1);
            }
            if obj["spec"]["strategy"].is_null() {
                obj["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}});
            }
            if obj["spec"]["revisionHistoryLimit"].is_null() {
                obj["spec"]["revisionHistoryLimit"] = json!(10);
            }
            if obj["spec"]["progressDeadlineSeconds"].is_null() {
                obj["spec"]["progressDeadlineSeconds"] = json!(600);
            }
        }
        "Job" => {
            // The API server always answers a status, `{}` before the
            // controller has seen the Job (scripts test `"failed" in job.status`).
            if !obj["status"].is_object() {
                obj["status"] = json!({});
            }
            for (k, v) in [
                ("backoffLimit", json!(6)),
                ("completions", json!(1)),
                ("parallelism", json!(1)),
                ("completionMode", json!("NonIndexed")),
                ("suspend", json!(false)),
            ] {
                if obj["spec"][k].is_null() {
                    obj["spec"][k] = v;
                }
            }
        }
        "Service" => {
            if obj["spec"]["type"].is_null() {
                obj["spec"]["type"] = json!("ClusterIP");
            }
            if obj["spec"]["clusterIP"].is_null() {
                obj["spec"]["clusterIP"] = json!(format!(
                    "10.96.{}.{}",
                    fastrand::u8(0..250),
                    fastrand::u8(1..250)
                ));
            }
        }
        "Secret" => {
            // stringData is write-only: it lands base64-encoded in data.
            if let Some(sd) = obj["stringData"].as_object().cloned() {
                for (k, v) in sd {
                    obj["data"][k] = json!(B64.encode(v.as_str().unwrap_or("")));
                }
                if let Some(o) = obj.as_object_mut() {
                    o.remove("stringData");
                }
            }
            if obj["type"].is_null() {
                obj["type"] = json!("Opaque");
            }
        }
        _ => {}
    }
    obj
}

fn delete_namespace_contents(st: &Store, ns: &str) {
    for r in discovery::RESOURCES
        .iter()
        .filter(|r| r.namespaced && !r.computed())
    {
        let (items, _) = st.list(r, ns);
        for o in items {
            let _ = st.delete(r, ns, meta_str(&o, "name"), &Value::Null, false);
        }
    }
}

fn filter(items: Vec<Value>, req: &Req) -> Result<Vec<Value>, ApiError> {
    let labels = Selector::parse(req.q("labelSelector"))?;
    let fields = req.q("fieldSelector");
    Ok(items
        .into_iter()
        .filter(|o| labels.matches(&o["metadata"]["labels"]) && field_matches(fields, o))
        .collect())
}

fn scale_of(o: &Value) -> Value {
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": o["metadata"]["name"], "namespace": o["metadata"]["namespace"], "uid": o["metadata"]["uid"],
                     "resourceVersion": o["metadata"]["resourceVersion"], "creationTimestamp": o["metadata"]["creationTimestamp"]},
        "spec": {"replicas": o["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {"replicas": o["status"]["replicas"].as_i64().unwrap_or(0), "selector": super::controllers::selector_of(o)},
    })
}

fn patch_object(
    st: &Store,
    r: &Res,
    ns: &str,
    name: &str,
    sub: Option<&str>,
    req: &Req,
) -> Result<Reply, ApiError> {
    let ctype = req.ctype.split(';').next().unwrap_or("").trim();
    if ctype == "application/apply-patch+yaml" || ctype == "application/apply-patch+json" {
        return apply(st, r, ns, name, req);
    }
    let body = req.json()?;
    let cur = st
        .get(r, ns, name)
        .ok_or_else(|| ApiError::not_found(r, name))?;
    let mut doc = if sub == Some("scale") {
        scale_of(&cur)
    } else {
        served(r, cur.clone())
    };
    match ctype {
        "application/merge-patch+json" => patch::merge(&mut doc, &body),
        "application/json-patch+json" => patch::json_patch(&mut doc, &body)?,
        "application/strategic-merge-patch+json" => patch::strategic(&mut doc, &body),
        other => return Err(ApiError::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"))),
    }
    match sub {
        Some("scale") => {
            let mut obj = cur.clone();
            obj["spec"]["replicas"] = doc["spec"]["replicas"].clone();
            obj["metadata"]["resourceVersion"] = doc["metadata"]["resourceVersion"].clone();
            validate(r, &obj, Some(&cur))?;
            ok(scale_of(&st.update(
                r,
                ns,
                name,
                obj,
                req.dry(),
                req.manager(),
            )?))
        }
        Some("status") | None => {
            let doc = prepare(r, stored(r, doc));
            if sub.is_none() {
                validate(r, &doc, Some(&cur))?;
            }
            ok(served(
                r,
                st.update(r, ns, name, doc, req.dry(), req.manager())?,
            ))
        }
        Some(_) => Err(not_served()),
    }
}

/// Server-side apply: the applied fields become the manager's; a field
/// another manager set to a different value is a conflict unless forced.
fn apply(st: &Store, r: &Res, ns: &str, name: &str, req: &Req) -> Result<Reply, ApiError> {
    let Some(manager) = req.manager() else {
        return Err(ApiError::bad(
            "PATCH requests of type apply must provide a fieldManager",
        ));
    };
    let text =
        std::str::from_utf8(req.body).map_err(|_| ApiError::bad("the apply body is not UTF-8"))?;
    let applied: Value = serde_saphyr::from_str(text)
        .map_err(|e| ApiError::bad(format!("invalid apply body: {e}")))?;
    let applied = stored(r, applied);
    let mut paths = Vec::new();
    leaf_paths(&applied, "", &mut paths);
    let Some(cur) = st.get(r, ns, name) else {
        let obj = prepare(r, applied);
        validate(r, &obj, None)?;
        let o = st.create(r, ns, obj, req.dry(), Some(manager))?;
        return Ok(Reply::Json(201, o, "application/json".into()));
    };
    let owners = st.owners(r, ns, name);
    let force = req.q("force") == "true";
    let conflicts: Vec<(String, String)> = paths
        .iter()
        .filter(|p| at_path(&cur, p) != at_path(&applied, p))
        .filter_map(|p| {
            owners
                .get(p)
                .filter(|m| m.as_str() != manager)
                .map(|m| (p.clone(), m.clone()))
        })
        .collect();
    if !conflicts.is_empty() && !force {
        let causes: Vec<Value> = conflicts.iter().map(|(p, m)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{m}\""), "field": format!(".{p}")})).collect();
        let list = conflicts
            .iter()
            .map(|(p, m)| format!("conflict with \"{m}\": .{p}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut e = ApiError::new(
            409,
            "Conflict",
            format!(
                "Apply failed with {} conflict{}: {list}",
                conflicts.len(),
                if conflicts.len() == 1 { "" } else { "s" }
            ),
        );
        e.details =
            Some(json!({"name": name, "group": r.group, "kind": r.plural, "causes": causes}));
        return Err(e);
    }
    let mut doc = cur.clone();
    patch::strategic(&mut doc, &applied);
    doc["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
    let doc = prepare(r, doc);
    validate(r, &doc, Some(&cur))?;
    let o = st.update(r, ns, name, doc, req.dry(), None)?;
    if !req.dry() {
        st.set_owners(r, ns, name, manager, &paths);
    }
    ok(o)
}

fn watch(st: &Store, r: &'static Res, ns: &str, req: &Req) -> Result<Reply, ApiError> {
    let labels = Selector::parse(req.q("labelSelector"))?;
    let fields = req.q("fieldSelector").to_string();
    let rv: u64 = req.q("resourceVersion").parse().unwrap_or(0);
    let timeout = req.q("timeoutSeconds").parse().unwrap_or(1800u64);
    let res = store::rkey(r);
    // A streaming list (`sendInitialEvents`, which kubectl 1.37's
    // `rollout status` asks for): the current state, a bookmark that marks
    // its end, then changes. The client waits for that bookmark.
    let initial_events = req.q("sendInitialEvents") == "true";
    let (mut past, mut rx) = st.watch_from(&res, if initial_events { 0 } else { rv })?;
    let mut last = past.iter().map(|e| e.rv).max().unwrap_or(rv);
    let mut bookmark = None;
    if rv == 0 || initial_events {
        // No resourceVersion: the current state as ADDED events, then changes.
        let (items, now_rv) = st.list(r, ns);
        if initial_events {
            bookmark = Some(json!({"type": "BOOKMARK", "object": {
                "kind": r.kind,
                "apiVersion": r.api_version(),
                "metadata": {
                    "resourceVersion": now_rv.to_string(),
                    "annotations": {"k8s.io/initial-events-end": "true"},
                },
            }}));
        }
        past = items
            .into_iter()
            .map(|o| store::Event {
                rv: now_rv,
                res: res.clone(),
                ns: meta_str(&o, "namespace").to_string(),
                kind: "ADDED",
                object: o,
            })
            .collect();
        last = now_rv;
    }
    let ns = ns.to_string();
    let keep = move |e: &store::Event| {
        e.res == res
            && (ns.is_empty() || e.ns == ns)
            && labels.matches(&e.object["metadata"]["labels"])
            && field_matches(&fields, &e.object)
    };
    // `get -w` watches in Table form: each event carries a one-row Table,
    // so updates show the same columns as the first listing.
    let as_table = req.accept.contains("as=Table");
    let include = req.q("includeObject").to_string();
    let (tx, out) = mpsc::channel::<Bytes>(256);
    tokio::spawn(async move {
        let line = |e: &store::Event| {
            let object = if as_table {
                table::table(r, std::slice::from_ref(&e.object), e.rv, &include)
            } else {
                served(r, e.object.clone())
            };
            Bytes::from(format!("{}\n", json!({"type": e.kind, "object": object})))
        };
        for e in past.iter().filter(|e| keep(e)) {
            if tx.send(line(e)).await.is_err() {
                return;
            }
        }
        if let Some(b) = bookmark {
            if tx.send(Bytes::from(format!("{b}\n"))).await.is_err() {
                return;
            }
        }
        let end = tokio::time::Instant::now() + std::time::Duration::from_secs(timeout);
        loop {
            let e = tokio::select! {
                e = rx.recv() => e,
                _ = tokio::time::sleep_until(end) => return,
                _ = tx.closed() => return,
            };
            match e {
                Ok(e) if e.rv > last && keep(&e) => {
                    last = e.rv;
                    if tx.send(line(&e)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_))
                | Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Ok(Reply::Stream(out))
}

/// `logs -f`: what the pod has logged, then a line a second while it runs;
/// the stream ends when the pod is deleted or its containers finish.
fn follow_log(st: &Store, r: &'static Res, pod: Value, text: String) -> Result<Reply, ApiError> {
    let (_, mut rx) = st.watch_from(&store::rkey(r), st.resource_version())?;
    let uid = pod["metadata"]["uid"].clone();
    let name = meta_str(&pod, "name").to_string();
    let mut i = logs::next_line(&pod);
    let (tx, out) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        if tx.send(Bytes::from(text)).await.is_err() {
            return;
        }
        let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
        every.tick().await;
        loop {
            tokio::select! {
                _ = every.tick() => {
                    let l = format!("{}\n", logs::line(i, &name));
                    i += 1;
                    if tx.send(Bytes::from(l)).await.is_err() {
                        return;
                    }
                }
                e = rx.recv() => match e {
                    Ok(e) if e.object["metadata"]["uid"] == uid
                        && (e.kind == "DELETED" || !logs::still_running(&e.object)) => return,
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = tx.closed() => return,
            }
        }
    });
    Ok(Reply::TextStream(out))
}

/// The built-in users, the grants of `KubeServer::grant`, and the Roles,
/// ClusterRoles and bindings stored in the cluster, like any RBAC object.
pub fn allows(shared: &Shared, user: &str, access: &Access) -> bool {
    shared
        .auth
        .read()
        .map(|a| a.allows(user, access))
        .unwrap_or(false)
        || super::auth::stored_rules(&shared.store, user, access.namespace)
            .iter()
            .any(|r| r.allows(access))
}

/// SelfSubjectRulesReview (`kubectl auth can-i --list`): what the user may
/// do in a namespace.
fn rules_review(shared: &Shared, req: &Req) -> Result<Value, ApiError> {
    let mut review = req.json()?;
    let ns = review["spec"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let mut rules: Vec<Value> = match req.user.as_str() {
        ADMIN => vec![json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})],
        super::auth::VIEWER => {
            vec![json!({"verbs": ["get", "list", "watch"], "apiGroups": ["*"], "resources": ["*"]})]
        }
        user => {
            let mut r: Vec<Value> = shared
                .auth
                .read()
                .map(|a| a.rules_json(user, &ns))
                .unwrap_or_default();
            r.extend(
                super::auth::stored_rules(&shared.store, user, &ns)
                    .iter()
                    .map(super::auth::Rule::to_json),
            );
            r
        }
    };
    // What every authenticated user may do (system:basic-user).
    rules.push(json!({"verbs": ["create"], "apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]}));
    rules.push(json!({"verbs": ["create"], "apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"]}));
    review["status"] = json!({"resourceRules": rules, "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/", "/api", "/api/*", "/apis", "/apis/*"]}], "incomplete": false});
    review["apiVersion"] = json!("authorization.k8s.io/v1");
    review["kind"] = json!("SelfSubjectRulesReview");
    Ok(review)
}

/// SelfSubjectReview (`kubectl auth whoami`).
fn whoami(r: &Res, req: &Req) -> Result<Value, ApiError> {
    let mut groups = vec!["system:authenticated"];
    if req.user.starts_with("system:serviceaccount:") {
        groups.insert(0, "system:serviceaccounts");
    }
    Ok(
        json!({"kind": "SelfSubjectReview", "apiVersion": r.api_version(),
              "metadata": {"creationTimestamp": store::now()},
              "status": {"userInfo": {"username": req.user, "groups": groups}}}),
    )
}

/// An Eviction (`kubectl drain`): the pod goes unless a PodDisruptionBudget
/// selecting it has no disruption left, which is a 429 as in Kubernetes.
fn evict(st: &Store, ns: &str, name: &str, req: &Req) -> Result<Reply, ApiError> {
    let pr = discovery::by_kind("Pod").ok_or_else(not_served)?;
    let pod = st
        .get(pr, ns, name)
        .ok_or_else(|| ApiError::not_found(pr, name))?;
    let body = req.json()?;
    let dry = req.dry()
        || body["deleteOptions"]["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "All"));
    if let Some(pdbr) = discovery::by_kind("PodDisruptionBudget") {
        let (pdbs, _) = st.list(pdbr, ns);
        let (pods, _) = st.list(pr, ns);
        for b in pdbs {
            let selects = super::validate::selector_string(&b["spec"]["selector"])
                .and_then(|s| Selector::parse(&s).ok())
                .is_some_and(|sel| sel.matches(&pod["metadata"]["labels"]));
            let Some((allowed, healthy, desired, _)) =
                super::controllers::budget(&b, &pods).filter(|_| selects)
            else {
                continue;
            };
            if allowed <= 0 {
                let mut e = ApiError::new(
                    429,
                    "TooManyRequests",
                    "Cannot evict pod as it would violate the pod's disruption budget.",
                );
                e.details = Some(
                    json!({"causes": [{"reason": "DisruptionBudget", "message": format!("The disruption budget {} needs {desired} healthy pods and has {healthy} currently", meta_str(&b, "name"))}]}),
                );
                return Err(e);
            }
        }
    }
    st.delete(pr, ns, name, &body["deleteOptions"], dry)?;
    Ok(Reply::Json(
        201,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        "application/json".into(),
    ))
}
