//! Protobuf request bodies, which kubectl 1.32 and later send for the
//! built-in kinds it creates through typed clients (`create configmap`,
//! `create job --from`, `auth can-i`, `drain`'s evictions...) and never
//! retries as JSON. The body is the `k8s\0` magic and a runtime.Unknown
//! naming the kind; the object inside is decoded with the k8s-pb types and
//! turned into the JSON the rest of the server works on, through the
//! field names prost gives each message (its Debug form), so no kind needs
//! a converter of its own. Answers stay JSON, which kubectl accepts.

use super::store::ApiError;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use k8s_pb::api;
use prost::Message;
use serde_json::{json, Map, Value};

const MAGIC: &[u8] = b"k8s\0";

fn unsupported(what: &str) -> ApiError {
    ApiError::new(
        415,
        "UnsupportedMediaType",
        format!("the sandbox API server cannot decode {what} from protobuf: send it as JSON (application/json)"),
    )
}

/// The JSON object a protobuf request body carries.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let raw = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| ApiError::bad("a protobuf body must start with the k8s magic number"))?;
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown::decode(raw)
        .map_err(|e| ApiError::bad(format!("invalid protobuf envelope: {e}")))?;
    let tm = unknown.type_meta.unwrap_or_default();
    let api_version = tm.api_version.unwrap_or_default();
    let kind = tm.kind.unwrap_or_default();
    let inner = unknown.raw.unwrap_or_default();
    let debug = debug_of(&api_version, &kind, &inner)?;
    let parsed = Parser::new(&debug)
        .value()
        .ok_or_else(|| unsupported(&format!("{api_version} {kind} (unreadable message)")))?;
    let mut v = to_json(&parsed, "");
    if !v.is_object() {
        v = json!({});
    }
    v["apiVersion"] = json!(api_version);
    v["kind"] = json!(kind);
    Ok(v)
}

macro_rules! kinds {
    ($av:expr, $kind:expr, $raw:expr, $( ($v:literal, $k:literal) => $t:ty ),* $(,)?) => {
        match ($av, $kind) {
            $( ($v, $k) => <$t>::decode($raw)
                .map(|m| format!("{m:?}"))
                .map_err(|e| ApiError::bad(format!("invalid protobuf {} {}: {e}", $v, $k))), )*
            (v, k) => Err(unsupported(&format!("{v} {k}"))),
        }
    };
}

fn debug_of(api_version: &str, kind: &str, raw: &[u8]) -> Result<String, ApiError> {
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
    kinds!(api_version, kind, raw,
        ("v1", "ConfigMap") => api::core::v1::ConfigMap,
        ("v1", "Secret") => api::core::v1::Secret,
        ("v1", "Service") => api::core::v1::Service,
        ("v1", "Namespace") => api::core::v1::Namespace,
        ("v1", "Pod") => api::core::v1::Pod,
        ("v1", "ServiceAccount") => api::core::v1::ServiceAccount,
        ("v1", "PersistentVolumeClaim") => api::core::v1::PersistentVolumeClaim,
        ("v1", "Endpoints") => api::core::v1::Endpoints,
        ("v1", "Event") => api::core::v1::Event,
        ("v1", "DeleteOptions") => meta::DeleteOptions,
        ("apps/v1", "Deployment") => api::apps::v1::Deployment,
        ("apps/v1", "ReplicaSet") => api::apps::v1::ReplicaSet,
        ("apps/v1", "StatefulSet") => api::apps::v1::StatefulSet,
        ("apps/v1", "DaemonSet") => api::apps::v1::DaemonSet,
        ("batch/v1", "Job") => api::batch::v1::Job,
        ("batch/v1", "CronJob") => api::batch::v1::CronJob,
        ("autoscaling/v1", "HorizontalPodAutoscaler") => api::autoscaling::v1::HorizontalPodAutoscaler,
        ("autoscaling/v1", "Scale") => api::autoscaling::v1::Scale,
        ("autoscaling/v2", "HorizontalPodAutoscaler") => api::autoscaling::v2::HorizontalPodAutoscaler,
        ("networking.k8s.io/v1", "Ingress") => api::networking::v1::Ingress,
        ("networking.k8s.io/v1", "NetworkPolicy") => api::networking::v1::NetworkPolicy,
        ("policy/v1", "PodDisruptionBudget") => api::policy::v1::PodDisruptionBudget,
        ("policy/v1", "Eviction") => api::policy::v1::Eviction,
        ("rbac.authorization.k8s.io/v1", "Role") => api::rbac::v1::Role,
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => api::rbac::v1::RoleBinding,
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => api::rbac::v1::ClusterRole,
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => api::rbac::v1::ClusterRoleBinding,
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => api::authorization::v1::SelfSubjectAccessReview,
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview") => api::authorization::v1::SelfSubjectRulesReview,
        ("authentication.k8s.io/v1", "SelfSubjectReview") => api::authentication::v1::SelfSubjectReview,
        ("authentication.k8s.io/v1beta1", "SelfSubjectReview") => api::authentication::v1beta1::SelfSubjectReview,
        ("authentication.k8s.io/v1", "TokenRequest") => api::authentication::v1::TokenRequest,
    )
}

/// A value as prost's derived Debug prints it.
#[derive(Debug)]
enum D {
    Struct(String, Vec<(String, D)>),
    Some(Box<D>),
    None,
    Str(String),
    Num(String),
    Bool(bool),
    List(Vec<D>),
    Map(Vec<(D, D)>),
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Parser {
            s: s.as_bytes(),
            i: 0,
        }
    }
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }
    fn eat(&mut self, t: &str) -> bool {
        self.ws();
        if self.s[self.i..].starts_with(t.as_bytes()) {
            self.i += t.len();
            true
        } else {
            false
        }
    }
    fn ident(&mut self) -> Option<String> {
        self.ws();
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'#')
        {
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
    fn string(&mut self) -> Option<String> {
        // After the opening quote; Rust's Debug escapes.
        let mut out = Vec::new();
        loop {
            let c = *self.s.get(self.i)?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let e = *self.s.get(self.i)?;
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'0' => out.push(0),
                        b'u' => {
                            // \u{XXXX}
                            let close = self.s[self.i..].iter().position(|c| *c == b'}')?;
                            let hex =
                                std::str::from_utf8(&self.s[self.i + 1..self.i + close]).ok()?;
                            let ch = char::from_u32(u32::from_str_radix(hex, 16).ok()?)?;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                            self.i += close + 1;
                        }
                        other => out.push(other),
                    }
                }
                other => out.push(other),
            }
        }
    }
    fn value(&mut self) -> Option<D> {
        self.ws();
        let c = *self.s.get(self.i)?;
        match c {
            b'"' => {
                self.i += 1;
                self.string().map(D::Str)
            }
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    if self.eat("]") {
                        return Some(D::List(items));
                    }
                    items.push(self.value()?);
                    self.eat(",");
                }
            }
            b'{' => {
                self.i += 1;
                let mut entries = Vec::new();
                loop {
                    if self.eat("}") {
                        return Some(D::Map(entries));
                    }
                    let k = self.value()?;
                    if !self.eat(":") {
                        return None;
                    }
                    let v = self.value()?;
                    entries.push((k, v));
                    self.eat(",");
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = self.i;
                self.i += 1;
                while self.s.get(self.i).is_some_and(|c| {
                    c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'-' | b'+')
                }) {
                    self.i += 1;
                }
                Some(D::Num(
                    String::from_utf8_lossy(&self.s[start..self.i]).into_owned(),
                ))
            }
            _ => {
                let id = self.ident()?;
                match id.as_str() {
                    "None" => Some(D::None),
                    "true" => Some(D::Bool(true)),
                    "false" => Some(D::Bool(false)),
                    "Some" => {
                        if !self.eat("(") {
                            return None;
                        }
                        let v = self.value()?;
                        self.eat(")").then(|| D::Some(Box::new(v)))
                    }
                    _ => {
                        let mut fields = Vec::new();
                        if self.eat("{") {
                            loop {
                                if self.eat("}") {
                                    break;
                                }
                                let f = self.ident()?;
                                if !self.eat(":") {
                                    return None;
                                }
                                fields.push((f, self.value()?));
                                self.eat(",");
                            }
                        }
                        Some(D::Struct(id, fields))
                    }
                }
            }
        }
    }
}

/// JSON names with runs of capitals, which prost's snake_case loses
/// (hostIPC is host_ipc): keyed by the name without underscores, lowercased.
const ACRONYMS: &[&str] = &[
    "apiServerID",
    "bootID",
    "clientCIDR",
    "clientIP",
    "clusterIP",
    "clusterIPs",
    "containerID",
    "currentCPUUtilizationPercentage",
    "datasetUUID",
    "diskURI",
    "downwardAPI",
    "externalID",
    "externalIPs",
    "hostIP",
    "hostIPC",
    "hostIPs",
    "hostPID",
    "imageID",
    "insecureSkipTLSVerify",
    "loadBalancerIP",
    "machineID",
    "nodeID",
    "nonResourceURLs",
    "openAPIV3Schema",
    "pdID",
    "podCIDR",
    "podCIDRs",
    "podIP",
    "podIPs",
    "providerID",
    "resourceID",
    "scaleIO",
    "serverAddressByClientCIDRs",
    "setHostnameAsFQDN",
    "storagePolicyID",
    "systemUUID",
    "targetCPUUtilizationPercentage",
    "targetWWNs",
    "volumeID",
];

/// Fields whose bytes are base64 strings in JSON.
const BYTES: &[&str] = &["data", "binaryData", "caBundle"];

fn json_name(field: &str) -> String {
    let field = field.trim_start_matches("r#");
    let key: String = field
        .chars()
        .filter(|c| *c != '_')
        .collect::<String>()
        .to_lowercase();
    if let Some(a) = ACRONYMS.iter().find(|a| a.to_lowercase() == key) {
        return a.to_string();
    }
    let mut out = String::new();
    let mut up = false;
    for c in field.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn field<'a>(fields: &'a [(String, D)], name: &str) -> Option<&'a D> {
    fields
        .iter()
        .find(|(f, _)| f == name)
        .map(|(_, v)| match v {
            D::Some(v) => v.as_ref(),
            v => v,
        })
}

fn bytes(d: &D) -> Option<Vec<u8>> {
    match d {
        D::Some(v) => bytes(v),
        D::List(items) => items
            .iter()
            .map(|i| match i {
                D::Num(n) => n.parse().ok(),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

fn to_json(d: &D, name: &str) -> Value {
    match d {
        D::Some(v) => to_json(v, name),
        D::None => Value::Null,
        D::Str(s) => json!(s),
        D::Bool(b) => json!(b),
        D::Num(n) => n
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| n.parse::<f64>().map(Value::from))
            .unwrap_or(Value::Null),
        D::List(items) if BYTES.contains(&name) => {
            json!(B64.encode(bytes(d).unwrap_or_default()))
        }
        D::List(items) => Value::Array(items.iter().map(|i| to_json(i, "")).collect()),
        D::Map(entries) => {
            let mut m = Map::new();
            for (k, v) in entries {
                let key = match k {
                    D::Str(s) => s.clone(),
                    other => to_json(other, "").to_string(),
                };
                let value = match v {
                    D::List(_) if BYTES.contains(&name) => {
                        json!(B64.encode(bytes(v).unwrap_or_default()))
                    }
                    _ => to_json(v, ""),
                };
                m.insert(key, value);
            }
            Value::Object(m)
        }
        D::Struct(ty, fields) => match ty.as_str() {
            "Time" | "MicroTime" => {
                let secs = match field(fields, "seconds") {
                    Some(D::Num(n)) => n.parse::<u64>().unwrap_or(0),
                    _ => 0,
                };
                json!(humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)
                )
                .to_string())
            }
            "Quantity" => field(fields, "string")
                .map(|s| to_json(s, ""))
                .unwrap_or(Value::Null),
            "IntOrString" => {
                let is_str = matches!(field(fields, "r#type").or(field(fields, "type")), Some(D::Num(n)) if n == "1");
                if is_str {
                    field(fields, "str_val")
                        .map(|s| to_json(s, ""))
                        .unwrap_or(json!(""))
                } else {
                    field(fields, "int_val")
                        .map(|s| to_json(s, ""))
                        .unwrap_or(json!(0))
                }
            }
            "RawExtension" | "FieldsV1" => {
                let raw = field(fields, "raw").and_then(bytes).unwrap_or_default();
                serde_json::from_slice(&raw).unwrap_or(Value::Null)
            }
            _ => {
                let mut m = Map::new();
                for (f, v) in fields {
                    let key = json_name(f);
                    let value = to_json(v, &key);
                    let empty = value.is_null()
                        || value.as_array().is_some_and(Vec::is_empty)
                        || (value.as_object().is_some_and(Map::is_empty) && matches!(v, D::Map(_)));
                    if !empty {
                        m.insert(key, value);
                    }
                }
                Value::Object(m)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let u = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut out = MAGIC.to_vec();
        out.extend(u.encode_to_vec());
        out
    }

    #[test]
    fn a_secret_and_a_deployment_decode_to_their_json() {
        let secret = api::core::v1::Secret {
            metadata: Some(ObjectMeta {
                name: Some("db \"creds\"".into()),
                labels: [("app".to_string(), "pg".to_string())].into(),
                ..Default::default()
            }),
            data: [("password".to_string(), b"s3cr\xc3\xa9t".to_vec())].into(),
            r#type: Some("Opaque".into()),
            ..Default::default()
        };
        let v = decode(&envelope("v1", "Secret", secret.encode_to_vec())).unwrap();
        assert_eq!(v["metadata"]["name"], "db \"creds\"");
        assert_eq!(v["metadata"]["labels"]["app"], "pg");
        assert_eq!(v["data"]["password"], B64.encode(b"s3cr\xc3\xa9t"));
        assert_eq!(v["type"], "Opaque");
        assert_eq!(v["kind"], "Secret");

        use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
        let d = api::apps::v1::Deployment {
            spec: Some(api::apps::v1::DeploymentSpec {
                replicas: Some(2),
                strategy: Some(api::apps::v1::DeploymentStrategy {
                    rolling_update: Some(api::apps::v1::RollingUpdateDeployment {
                        max_surge: Some(IntOrString {
                            r#type: Some(1),
                            int_val: Some(0),
                            str_val: Some("25%".into()),
                        }),
                        max_unavailable: Some(IntOrString {
                            r#type: Some(0),
                            int_val: Some(1),
                            str_val: Some(String::new()),
                        }),
                    }),
                    ..Default::default()
                }),
                template: Some(api::core::v1::PodTemplateSpec {
                    spec: Some(api::core::v1::PodSpec {
                        host_ipc: Some(true),
                        containers: vec![api::core::v1::Container {
                            name: Some("web".into()),
                            image: Some("nginx".into()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let v = decode(&envelope("apps/v1", "Deployment", d.encode_to_vec())).unwrap();
        assert_eq!(v["spec"]["replicas"], 2);
        assert_eq!(v["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(v["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 1);
        assert_eq!(v["spec"]["template"]["spec"]["hostIPC"], true);
        assert_eq!(
            v["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx"
        );
    }

    #[test]
    fn an_unknown_kind_is_a_415_that_says_which() {
        let e = decode(&envelope("example.com/v1", "Widget", vec![])).unwrap_err();
        assert_eq!(e.code, 415);
        assert!(e.message.contains("example.com/v1 Widget"), "{}", e.message);
        assert_eq!(decode(b"{}").unwrap_err().code, 400);
    }
}
