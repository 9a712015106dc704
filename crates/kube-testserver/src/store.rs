//! The object store: every object as JSON, one cluster-wide resourceVersion
//! counter, uids, generations, a bounded history of changes for watches
//! that start from an older resourceVersion, and field ownership for
//! server-side apply conflicts.

use super::discovery::Res;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::SystemTime;
use tokio::sync::broadcast;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }
    pub fn not_found(r: &Res, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(r)),
        )
    }
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }
    pub fn conflict(r: &Res, name: &str) -> Self {
        Self::new(409, "Conflict", format!("Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again", qualified(r)))
    }
    pub fn status(&self) -> Value {
        let mut v = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": self.message, "reason": self.reason, "code": self.code});
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

/// `deployments.apps`, as the API names a resource in messages.
pub fn qualified(r: &Res) -> String {
    if r.group.is_empty() {
        r.plural.to_string()
    } else {
        format!("{}.{}", r.plural, r.group)
    }
}

pub fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

pub fn age_secs(ts: &str) -> u64 {
    humantime::parse_rfc3339(ts)
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn uid() -> String {
    let r = || fastrand::u32(..);
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:08x}{:04x}",
        r(),
        r() & 0xffff,
        r() & 0xfff,
        r() & 0xfff,
        r(),
        r() & 0xffff
    )
}

pub fn suffix(n: usize) -> String {
    const CH: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..n)
        .map(|_| CH[fastrand::usize(..CH.len())] as char)
        .collect()
}

#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    pub res: String,
    pub ns: String,
    pub kind: &'static str,
    pub object: Value,
}

type Key = (String, String, String);

pub fn rkey(r: &Res) -> String {
    format!("{}/{}", r.group, r.plural)
}

/// Where an object lives in the store: cluster-scoped kinds have no namespace.
fn object_key(r: &Res, ns: &str, name: &str) -> Key {
    let ns = if r.namespaced {
        ns.to_string()
    } else {
        String::new()
    };
    (rkey(r), ns, name.to_string())
}

#[derive(Default)]
struct Inner {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Event>,
    /// Per object: field path -> the field manager that last set it.
    owners: HashMap<Key, BTreeMap<String, String>>,
}

pub struct Store {
    inner: Mutex<Inner>,
    pub tx: broadcast::Sender<Event>,
}

const HISTORY: usize = 4000;

pub fn meta_str<'a>(o: &'a Value, field: &str) -> &'a str {
    o["metadata"][field].as_str().unwrap_or("")
}

fn spec_changed(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
            m.remove("kind");
            m.remove("apiVersion");
        }
        v
    };
    strip(a) != strip(b)
}

/// Leaf paths of a JSON object, for field ownership.
pub fn leaf_paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                if prefix.is_empty() && (k == "status" || k == "kind" || k == "apiVersion") {
                    continue;
                }
                if prefix == "metadata" && !(k == "labels" || k == "annotations") {
                    continue;
                }
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaf_paths(x, &p, out);
            }
        }
        _ => {
            if !prefix.is_empty() {
                out.push(prefix.to_string());
            }
        }
    }
}

pub fn at_path<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| &v[k])
}

impl Default for Store {
    fn default() -> Self {
        Store {
            inner: Mutex::new(Inner::default()),
            tx: broadcast::channel(4096).0,
        }
    }
}

impl Store {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    fn record(&self, inner: &mut Inner, res: &str, ns: &str, kind: &'static str, object: &Value) {
        let ev = Event {
            rv: inner.rv,
            res: res.to_string(),
            ns: ns.to_string(),
            kind,
            object: object.clone(),
        };
        inner.history.push_back(ev.clone());
        while inner.history.len() > HISTORY {
            inner.history.pop_front();
        }
        let _ = self.tx.send(ev);
    }

    /// Changes after `rv` for one resource, and a receiver for later ones.
    /// Err when `rv` is older than the history kept (410 Gone).
    pub fn watch_from(
        &self,
        res: &str,
        rv: u64,
    ) -> Result<(Vec<Event>, broadcast::Receiver<Event>), ApiError> {
        let inner = self.lock();
        let rx = self.tx.subscribe();
        if let Some(first) = inner.history.front() {
            if rv + 1 < first.rv && rv != 0 {
                return Err(ApiError::new(
                    410,
                    "Expired",
                    format!("too old resource version: {rv} ({})", first.rv),
                ));
            }
        }
        let past = inner
            .history
            .iter()
            .filter(|e| e.rv > rv && e.res == res)
            .cloned()
            .collect();
        Ok((past, rx))
    }

    pub fn get(&self, r: &Res, ns: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(&(rkey(r), ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Objects of a resource in a namespace ("" = all), and the list's resourceVersion.
    pub fn list(&self, r: &Res, ns: &str) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let res = rkey(r);
        let items = inner
            .objects
            .iter()
            .filter(|((k, n, _), _)| *k == res && (ns.is_empty() || n == ns))
            .map(|(_, v)| v.clone())
            .collect();
        (items, inner.rv)
    }

    pub fn namespace_exists(&self, ns: &str) -> bool {
        self.lock().objects.contains_key(&(
            "/namespaces".to_string(),
            String::new(),
            ns.to_string(),
        ))
    }

    pub fn create(
        &self,
        r: &Res,
        ns: &str,
        mut obj: Value,
        dry: bool,
        manager: Option<&str>,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad("the body must be a JSON object"));
        }
        if r.namespaced && !self.namespace_exists(ns) {
            return Err(ApiError::new(
                404,
                "NotFound",
                format!("namespaces \"{ns}\" not found"),
            ));
        }
        let mut name = meta_str(&obj, "name").to_string();
        if name.is_empty() {
            let gen = meta_str(&obj, "generateName");
            if gen.is_empty() {
                return Err(ApiError::new(422, "Invalid", format!("{} is invalid: metadata.name: Required value: name or generateName is required", r.kind)));
            }
            name = format!("{gen}{}", suffix(5));
        }
        let mut inner = self.lock();
        let key = object_key(r, ns, &name);
        if inner.objects.contains_key(&key) {
            return Err(ApiError::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", qualified(r)),
            ));
        }
        let rv = inner.rv + 1;
        obj["kind"] = json!(r.kind);
        obj["apiVersion"] = json!(r.api_version());
        let m = &mut obj["metadata"];
        if !m.is_object() {
            *m = json!({});
        }
        m["name"] = json!(name);
        if r.namespaced {
            m["namespace"] = json!(ns);
        } else if let Some(o) = m.as_object_mut() {
            o.remove("namespace");
        }
        m["uid"] = json!(uid());
        m["resourceVersion"] = json!(rv.to_string());
        m["creationTimestamp"] = json!(now());
        m["generation"] = json!(1);
        super::validate::with_uid(r, &mut obj);
        if dry {
            return Ok(obj);
        }
        inner.rv = rv;
        if let Some(mgr) = manager {
            let mut paths = Vec::new();
            leaf_paths(&obj, "", &mut paths);
            inner.owners.insert(
                key.clone(),
                paths.into_iter().map(|p| (p, mgr.to_string())).collect(),
            );
        }
        inner.objects.insert(key, obj.clone());
        self.record(&mut inner, &rkey(r), ns, "ADDED", &obj);
        Ok(obj)
    }

    /// Replaces an object. A resourceVersion in `obj` must match (409 if not);
    /// without one the write is unconditional, as in the real API.
    pub fn update(
        &self,
        r: &Res,
        ns: &str,
        name: &str,
        mut obj: Value,
        dry: bool,
        manager: Option<&str>,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let key = object_key(r, ns, name);
        let Some(cur) = inner.objects.get(&key).cloned() else {
            return Err(ApiError::not_found(r, name));
        };
        let want = meta_str(&obj, "resourceVersion");
        if !want.is_empty() && want != meta_str(&cur, "resourceVersion") {
            return Err(ApiError::conflict(r, name));
        }
        let body_name = meta_str(&obj, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        for f in [
            "uid",
            "creationTimestamp",
            "namespace",
            "name",
            "ownerReferences",
            "deletionTimestamp",
        ] {
            if !cur["metadata"][f].is_null()
                && (f != "ownerReferences" || obj["metadata"][f].is_null())
            {
                obj["metadata"][f] = cur["metadata"][f].clone();
            }
        }
        obj["kind"] = json!(r.kind);
        obj["apiVersion"] = json!(r.api_version());
        let generation = cur["metadata"]["generation"].as_i64().unwrap_or(1);
        let changed = spec_changed(&cur, &obj);
        obj["metadata"]["generation"] = json!(if changed { generation + 1 } else { generation });
        if obj == cur {
            return Ok(cur);
        }
        let rv = inner.rv + 1;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        if dry {
            return Ok(obj);
        }
        if let Some(mgr) = manager {
            let mut paths = Vec::new();
            leaf_paths(&obj, "", &mut paths);
            let owners = inner.owners.entry(key.clone()).or_default();
            for p in paths {
                if at_path(&obj, &p) != at_path(&cur, &p) {
                    owners.insert(p, mgr.to_string());
                }
            }
        }
        inner.rv = rv;
        inner.objects.insert(key, obj.clone());
        self.record(&mut inner, &rkey(r), ns, "MODIFIED", &obj);
        Ok(obj)
    }

    pub fn owners(&self, r: &Res, ns: &str, name: &str) -> BTreeMap<String, String> {
        self.lock()
            .owners
            .get(&(rkey(r), ns.to_string(), name.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    pub fn set_owners(&self, r: &Res, ns: &str, name: &str, manager: &str, paths: &[String]) {
        let mut inner = self.lock();
        let o = inner
            .owners
            .entry((rkey(r), ns.to_string(), name.to_string()))
            .or_default();
        for p in paths {
            o.insert(p.clone(), manager.to_string());
        }
    }

    pub fn delete(
        &self,
        r: &Res,
        ns: &str,
        name: &str,
        opts: &Value,
        dry: bool,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let key = object_key(r, ns, name);
        let Some(cur) = inner.objects.get(&key).cloned() else {
            return Err(ApiError::not_found(r, name));
        };
        if let Some(want) = opts["preconditions"]["uid"].as_str() {
            let have = meta_str(&cur, "uid");
            if want != have {
                return Err(ApiError::new(409, "Conflict", format!("Precondition failed: UID in precondition: {want}, UID in object meta: {have}")));
            }
        }
        if let Some(want) = opts["preconditions"]["resourceVersion"].as_str() {
            if want != meta_str(&cur, "resourceVersion") {
                return Err(ApiError::new(409, "Conflict", format!("Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {}", meta_str(&cur, "resourceVersion"))));
            }
        }
        if dry {
            return Ok(cur);
        }
        inner.objects.remove(&key);
        inner.owners.remove(&key);
        inner.rv += 1;
        let mut gone = cur.clone();
        gone["metadata"]["resourceVersion"] = json!(inner.rv.to_string());
        self.record(&mut inner, &rkey(r), ns, "DELETED", &gone);
        Ok(cur)
    }
}

/// A parsed label selector: `a=b,c!=d,e in (x,y),f notin (z),g,!h`.
pub struct Selector(Vec<(String, Op)>);

enum Op {
    Eq(String),
    Ne(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    Absent,
}

impl Selector {
    pub fn parse(s: &str) -> Result<Selector, ApiError> {
        let mut out = Vec::new();
        let mut parts = Vec::new();
        let (mut depth, mut cur) = (0, String::new());
        for c in s.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(std::mem::take(&mut cur));
                    continue;
                }
                _ => {}
            }
            cur.push(c);
        }
        parts.push(cur);
        for p in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
            let set = |rest: &str| -> Vec<String> {
                rest.trim()
                    .trim_start_matches('(')
                    .trim_end_matches(')')
                    .split(',')
                    .map(|x| x.trim().to_string())
                    .collect()
            };
            if let Some((k, v)) = p.split_once("!=") {
                out.push((k.trim().into(), Op::Ne(v.trim().into())));
            } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
                out.push((k.trim().into(), Op::Eq(v.trim().into())));
            } else if let Some((k, v)) = p.split_once(" notin ") {
                out.push((k.trim().into(), Op::NotIn(set(v))));
            } else if let Some((k, v)) = p.split_once(" in ") {
                out.push((k.trim().into(), Op::In(set(v))));
            } else if let Some(k) = p.strip_prefix('!') {
                out.push((k.trim().into(), Op::Absent));
            } else if p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            {
                out.push((p.into(), Op::Exists));
            } else {
                return Err(ApiError::bad(format!("unable to parse requirement: {p}")));
            }
        }
        Ok(Selector(out))
    }

    pub fn matches(&self, labels: &Value) -> bool {
        self.0.iter().all(|(k, op)| {
            let v = labels[k.as_str()].as_str();
            match op {
                Op::Eq(x) => v == Some(x.as_str()),
                Op::Ne(x) => v != Some(x.as_str()),
                Op::In(xs) => v.is_some_and(|v| xs.iter().any(|x| x == v)),
                Op::NotIn(xs) => v.is_none_or(|v| xs.iter().all(|x| x != v)),
                Op::Exists => v.is_some(),
                Op::Absent => v.is_none(),
            }
        })
    }
}

/// `metadata.name=x,status.phase!=Running`: any dotted path, compared as text.
pub fn field_matches(sel: &str, obj: &Value) -> bool {
    sel.split(',').filter(|p| !p.is_empty()).all(|p| {
        let (path, want, neg) = match p.split_once("!=") {
            Some((a, b)) => (a, b, true),
            None => match p.split_once("==").or_else(|| p.split_once('=')) {
                Some((a, b)) => (a, b, false),
                None => return true,
            },
        };
        let v = at_path(obj, path.trim());
        let have = match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        (have == want.trim()) != neg
    })
}

/// matchLabels as a selector string, `app=api,tier=web`.
pub fn match_labels_string(sel: &Value) -> String {
    label_pairs(&sel["matchLabels"])
}

/// `k=v,k=v` of a label map (matchLabels, a Service selector, a
/// nodeSelector); empty when absent.
pub fn label_pairs(m: &Value) -> String {
    m.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_and_field_selectors() {
        let labels = json!({"app": "web", "version": "blue"});
        for (sel, want) in [
            ("app=web", true),
            ("app==web,version!=green", true),
            ("version in (green, blue)", true),
            ("version notin (blue)", false),
            ("app,!tier", true),
            ("tier", false),
            ("", true),
        ] {
            assert_eq!(
                Selector::parse(sel).unwrap().matches(&labels),
                want,
                "{sel}"
            );
        }
        let o = json!({"metadata": {"name": "api"}, "status": {"phase": "Running"}});
        assert!(field_matches("metadata.name=api,status.phase!=Pending", &o));
        assert!(!field_matches("metadata.name=web", &o));
    }

    #[test]
    fn stale_resource_version_is_a_conflict_and_uid_preconditions_hold() {
        let st = Store::default();
        let r = super::super::discovery::by_kind("ConfigMap").unwrap();
        let ns = super::super::discovery::by_kind("Namespace").unwrap();
        st.create(
            ns,
            "",
            json!({"metadata": {"name": "default"}}),
            false,
            None,
        )
        .unwrap();
        let a = st
            .create(
                r,
                "default",
                json!({"metadata": {"name": "c"}, "data": {"k": "1"}}),
                false,
                None,
            )
            .unwrap();
        let mut b = a.clone();
        b["data"]["k"] = json!("2");
        st.update(r, "default", "c", b, false, None).unwrap();
        let mut stale = a.clone();
        stale["data"]["k"] = json!("3");
        assert_eq!(
            st.update(r, "default", "c", stale, false, None)
                .unwrap_err()
                .code,
            409
        );
        let e = st
            .delete(
                r,
                "default",
                "c",
                &json!({"preconditions": {"uid": "other"}}),
                false,
            )
            .unwrap_err();
        assert_eq!(e.code, 409);
        assert!(st
            .delete(
                r,
                "default",
                "c",
                &json!({"preconditions": {"uid": a["metadata"]["uid"]}}),
                true
            )
            .is_ok());
        assert!(
            st.get(r, "default", "c").is_some(),
            "a dry-run delete keeps it"
        );
    }
}
