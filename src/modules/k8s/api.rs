//! Paths and small helpers shared by the k8s primitives: well-known
//! resource paths, discovery for any kind, JSON <-> script values, ages.

use super::client::{unreachable_or, ApiErr, Kube};
use crate::dispatch::{Call, OpError, Plan};
use crate::value::map_of;
use rhai::Dynamic;
use rhai::Map;
use serde_json::Value;
use std::sync::Arc;

pub const MANAGER: &str = "opsh";

/// GET a Deployment of the handle's namespace.
pub fn get_deployment(call: &Call, k: &Kube, name: &str) -> Result<Value, OpError> {
    get(
        call,
        k,
        &format!("get deployment {name}"),
        &deploy_path(&k.namespace, &enc(name)),
    )
}

pub fn deploy_path(ns: &str, name: &str) -> String {
    format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}")
}

pub fn core(ns: &str, plural: &str) -> String {
    format!("/api/v1/namespaces/{ns}/{plural}")
}

pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Runs one request on the session runtime under the call's deadline.
pub fn req(
    call: &Call,
    k: &Kube,
    what: &str,
    method: &str,
    path: &str,
    ctype: Option<&str>,
    body: Option<&Value>,
) -> Result<Value, OpError> {
    let bytes = body.map(|b| b.to_string().into_bytes());
    let sent_rv = body.and_then(read_version);
    call.block_on(async {
        match k.request(method, path, ctype, bytes).await {
            Ok(v) => Ok(v),
            Err(e) if e.code == 409 && e.reason == "Conflict" && sent_rv.is_some() => {
                // Say what changed: the version the write was based on, and the one there now.
                let object = path.split('?').next().unwrap_or(path).trim_end_matches("/scale");
                let now = k.request("GET", object, None, None).await.ok();
                let mut err = unreachable_or(k, what, e);
                if let (Some(sent), Some(now)) = (&sent_rv, now) {
                    err.message = format!(
                        "{what}: conflict, someone else changed it since it was read (resourceVersion {sent} -> {}); nothing was changed",
                        now["metadata"]["resourceVersion"].as_str().unwrap_or("?")
                    );
                }
                Err(err)
            }
            Err(e) => Err(unreachable_or(k, what, e)),
        }
    })
}

/// The resourceVersion a write is conditioned on: in the object, or in a
/// JSON patch operation on it.
fn read_version(body: &Value) -> Option<String> {
    if let Some(rv) = body["metadata"]["resourceVersion"].as_str() {
        return Some(rv.to_string());
    }
    body.as_array()?
        .iter()
        .find(|op| op["path"] == "/metadata/resourceVersion")
        .and_then(|op| op["value"].as_str().map(String::from))
}

pub fn get(call: &Call, k: &Kube, what: &str, path: &str) -> Result<Value, OpError> {
    req(call, k, what, "GET", path, None, None)
}

/// `dryRun=All` when planning, so the server validates without persisting.
pub fn with_dry(path: &str, dry: bool) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut p = format!("{path}{sep}fieldManager={MANAGER}");
    if dry {
        p.push_str("&dryRun=All");
    }
    p
}

/// A PATCH that the plan sends with `dry` (the server validates and answers
/// the object it would store) and the write sends for real, so the plan shows
/// exactly what the write will do.
pub fn patch(
    call: &Call,
    k: &Kube,
    what: &str,
    path: &str,
    ctype: Option<&str>,
    body: &Value,
    dry: bool,
) -> Result<Value, OpError> {
    let what = if dry {
        format!("{what} (server dry run)")
    } else {
        what.to_string()
    };
    req(
        call,
        k,
        &what,
        "PATCH",
        &with_dry(path, dry),
        ctype,
        Some(body),
    )
}

pub fn items(list: &Value) -> Vec<Value> {
    list["items"].as_array().cloned().unwrap_or_default()
}

pub fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    path.split('.').fold(v, |v, k| &v[k]).as_str().unwrap_or("")
}

pub fn i(v: &Value, path: &str) -> i64 {
    path.split('.').fold(v, |v, k| &v[k]).as_i64().unwrap_or(0)
}

pub fn age_secs(ts: &str) -> i64 {
    humantime::parse_rfc3339(ts)
        .ok()
        .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn to_dyn(v: &Value) -> Dynamic {
    crate::value::from_json(v)
}

/// An object without the fields nobody reads in a script or a backup.
pub fn tidy(mut o: Value) -> Value {
    if let Some(m) = o["metadata"].as_object_mut() {
        m.remove("managedFields");
    }
    o
}

/// A resource as discovery describes it.
#[derive(Debug, Clone)]
pub struct ApiRes {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub kind: String,
    pub namespaced: bool,
    pub short: Vec<String>,
}

impl ApiRes {
    pub fn collection(&self, ns: &str) -> String {
        let prefix = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        if self.namespaced {
            format!("{prefix}/namespaces/{ns}/{}", self.plural)
        } else {
            format!("{prefix}/{}", self.plural)
        }
    }
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    fn answers_to(&self, name: &str) -> bool {
        let n = name.to_ascii_lowercase();
        let (n, group) = match n.split_once('.') {
            Some((a, g)) => (a.to_string(), Some(g.to_string())),
            None => (n, None),
        };
        if group.is_some_and(|g| g != self.group) {
            return false;
        }
        n == self.plural || n == self.kind.to_ascii_lowercase() || self.short.contains(&n)
    }
}

const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

async fn fetch(k: &Kube, path: &str, accept: &str) -> Result<Value, ApiErr> {
    let req = http::Request::builder()
        .uri(path)
        .header("Accept", accept)
        .body(Vec::new())
        .map_err(ApiErr::bad_request)?;
    Ok(k.client.request::<Value>(req).await?)
}

fn from_aggregated(doc: &Value, out: &mut Vec<ApiRes>) {
    for g in doc["items"].as_array().into_iter().flatten() {
        let group = g["metadata"]["name"].as_str().unwrap_or("");
        // The first version listed is the preferred one.
        let Some(v) = g["versions"].as_array().and_then(|a| a.first()) else {
            continue;
        };
        for r in v["resources"].as_array().into_iter().flatten() {
            out.push(ApiRes {
                group: group.to_string(),
                version: v["version"].as_str().unwrap_or("v1").to_string(),
                plural: r["resource"].as_str().unwrap_or("").to_string(),
                kind: r["responseKind"]["kind"].as_str().unwrap_or("").to_string(),
                namespaced: r["scope"] == "Namespaced",
                short: short_names(r),
            });
        }
    }
}

fn from_legacy(group: &str, version: &str, doc: &Value, out: &mut Vec<ApiRes>) {
    for r in doc["resources"].as_array().into_iter().flatten() {
        let plural = r["name"].as_str().unwrap_or("");
        if plural.contains('/') {
            continue;
        }
        out.push(ApiRes {
            group: group.to_string(),
            version: version.to_string(),
            plural: plural.to_string(),
            kind: r["kind"].as_str().unwrap_or("").to_string(),
            namespaced: r["namespaced"].as_bool().unwrap_or(true),
            short: short_names(r),
        });
    }
}

/// `shortNames` reads the same in both discovery formats.
fn short_names(resource: &Value) -> Vec<String> {
    resource["shortNames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(String::from))
        .collect()
}

/// Every resource the server serves: aggregated discovery when the server
/// has it (one request each for /api and /apis), else the legacy walk.
pub fn discover(call: &Call, k: &Kube, key: &str) -> Result<Arc<Vec<ApiRes>>, OpError> {
    call.session
        .client::<Arc<Vec<ApiRes>>>(&format!("discovery:{key}"), || {
            call.block_on(async {
                let wrap = |e| unreachable_or(k, "discovery", e);
                let mut out = Vec::new();
                let core = fetch(k, "/api", AGGREGATED).await.map_err(wrap)?;
                if core["kind"] == "APIGroupDiscoveryList" {
                    from_aggregated(&core, &mut out);
                    let apis = fetch(k, "/apis", AGGREGATED).await.map_err(wrap)?;
                    from_aggregated(&apis, &mut out);
                } else {
                    let v1 = fetch(k, "/api/v1", "application/json")
                        .await
                        .map_err(wrap)?;
                    from_legacy("", "v1", &v1, &mut out);
                    let groups = fetch(k, "/apis", "application/json").await.map_err(wrap)?;
                    for g in groups["groups"].as_array().into_iter().flatten() {
                        let name = g["name"].as_str().unwrap_or("");
                        let ver = g["preferredVersion"]["version"].as_str().unwrap_or("v1");
                        if let Ok(doc) =
                            fetch(k, &format!("/apis/{name}/{ver}"), "application/json").await
                        {
                            from_legacy(name, ver, &doc, &mut out);
                        }
                    }
                }
                Ok(Arc::new(out))
            })
        })
}

pub fn resolve_kind(call: &Call, k: &Kube, key: &str, kind: &str) -> Result<ApiRes, OpError> {
    let all = discover(call, k, key)?;
    // metrics.k8s.io also serves "pods" and "nodes": the core kinds win.
    let mut found: Vec<&ApiRes> = all.iter().filter(|r| r.answers_to(kind)).collect();
    found.sort_by_key(|r| (r.group == "metrics.k8s.io", r.group.clone()));
    found.first().map(|r| (*r).clone()).ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|r| r.plural.as_str()).collect();
        let hint = crate::registry::suggest(&kind.to_ascii_lowercase(), names.iter().copied())
            .map(|s| format!("did you mean `{s}`?"))
            .unwrap_or_else(|| "`kubectl api-resources` lists what this cluster serves".into());
        OpError::bad_input(format!("the cluster serves no resource type `{kind}`")).with_hint(hint)
    })
}

// Shared by the mutations.

pub const MERGE: Option<&str> = Some("application/merge-patch+json");
pub const STRATEGIC: Option<&str> = Some("application/strategic-merge-patch+json");
pub const JSON_PATCH: Option<&str> = Some("application/json-patch+json");

pub fn change(from: impl Into<Dynamic>, to: impl Into<Dynamic>) -> Dynamic {
    Dynamic::from_map(map_of([("from", from.into()), ("to", to.into())]))
}

pub fn plan(summary: String, details: Map) -> Plan {
    Plan { summary, details }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Discovery reads kube's errors through the one mapping: a refused
    // connection says so, not kube's outer "ServiceError: client error".
    #[test]
    fn discovery_errors_keep_their_root_cause() {
        let (rt, k) = super::super::client::tests::unanswered();
        let Err(e) = rt.block_on(fetch(&k, "/api", AGGREGATED)) else {
            panic!("nothing listens on {}", k.server);
        };
        assert_eq!(e.code, 0);
        assert!(e.message.contains("Connection refused"), "{e:?}");
    }
}
