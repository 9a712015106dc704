//! Who is asking, and may they. Two built-in users: `admin` may do
//! anything, `viewer` may only read. With TLS on, a request must carry a
//! bearer token the server issued (as a pod's service-account token), and
//! any other user gets exactly what the Roles bound to it allow, so a test
//! can run opsh in-cluster under the Role that docs/deploy ships. Over
//! plain HTTP client-go sends no tokens, so identity is the impersonation
//! header there, and only the built-in users exist.

use super::discovery::by_kind;
use super::store::Store;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

pub const ADMIN: &str = "admin";
pub const VIEWER: &str = "viewer";

#[derive(Default)]
pub struct Auth {
    /// token → user name
    tokens: HashMap<String, String>,
    grants: Vec<Grant>,
}

/// A Role's rules, bound to one user in the Role's namespace.
struct Grant {
    user: String,
    namespace: String,
    rules: Vec<Rule>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default)]
    api_groups: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    resource_names: Vec<String>,
    #[serde(default)]
    verbs: Vec<String>,
}

/// What a request does, as RBAC sees it.
pub struct Access<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    /// `pods`, or `pods/log` for a subresource.
    pub resource: &'a str,
    pub namespace: &'a str,
    pub name: Option<&'a str>,
}

fn listed(list: &[String], item: &str) -> bool {
    list.iter().any(|x| x == "*" || x == item)
}

impl Rule {
    pub fn to_json(&self) -> Value {
        let mut v =
            json!({"verbs": self.verbs, "apiGroups": self.api_groups, "resources": self.resources});
        if !self.resource_names.is_empty() {
            v["resourceNames"] = json!(self.resource_names);
        }
        v
    }

    pub fn allows(&self, a: &Access) -> bool {
        listed(&self.verbs, a.verb)
            && listed(&self.api_groups, a.group)
            && listed(&self.resources, a.resource)
            && (self.resource_names.is_empty()
                || a.name.is_some_and(|n| listed(&self.resource_names, n)))
    }
}

/// Whether a binding subject is `user`: a user or service account by
/// name, or a group every authenticated user (or service account) is in.
fn subject_is(s: &Value, binding_ns: &str, user: &str) -> bool {
    match s["kind"].as_str() {
        Some("Group") => match s["name"].as_str() {
            Some("system:authenticated") => true,
            Some("system:serviceaccounts") => user.starts_with("system:serviceaccount:"),
            Some(g) => g
                .strip_prefix("system:serviceaccounts:")
                .is_some_and(|ns| user.starts_with(&format!("system:serviceaccount:{ns}:"))),
            None => false,
        },
        _ => subject_user(s, binding_ns).is_some_and(|u| u == user),
    }
}

/// What the Roles, ClusterRoles and their bindings stored in the cluster
/// grant `user` in namespace `ns` ("" for cluster-scoped requests, where
/// only ClusterRoleBindings count), so that RBAC applied with kubectl is
/// enforced like the built-in users.
pub fn stored_rules(st: &Store, user: &str, ns: &str) -> Vec<Rule> {
    let (Some(rr), Some(crr), Some(rbr), Some(crbr)) = (
        by_kind("Role"),
        by_kind("ClusterRole"),
        by_kind("RoleBinding"),
        by_kind("ClusterRoleBinding"),
    ) else {
        return Vec::new();
    };
    let rules_of = |o: Option<Value>| -> Vec<Rule> {
        o.and_then(|o| serde_json::from_value(o["rules"].clone()).ok())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    let (cluster_bindings, _) = st.list(crbr, "");
    for b in cluster_bindings {
        if b["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| subject_is(s, "", user))
        {
            out.extend(rules_of(st.get(
                crr,
                "",
                b["roleRef"]["name"].as_str().unwrap_or(""),
            )));
        }
    }
    if !ns.is_empty() {
        let (bindings, _) = st.list(rbr, ns);
        for b in bindings {
            if !b["subjects"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| subject_is(s, ns, user))
            {
                continue;
            }
            let role = b["roleRef"]["name"].as_str().unwrap_or("");
            out.extend(match b["roleRef"]["kind"].as_str() {
                Some("ClusterRole") => rules_of(st.get(crr, "", role)),
                _ => rules_of(st.get(rr, ns, role)),
            });
        }
    }
    out
}

/// The user a RoleBinding subject authenticates as.
fn subject_user(s: &Value, binding_ns: &str) -> Option<String> {
    let name = s["name"].as_str()?;
    match s["kind"].as_str()? {
        "ServiceAccount" => {
            let ns = s["namespace"].as_str().unwrap_or(binding_ns);
            Some(format!("system:serviceaccount:{ns}:{name}"))
        }
        "User" => Some(name.to_string()),
        _ => None,
    }
}

impl Auth {
    /// A new token for `user`, shaped like a service-account JWT (the
    /// subject in its payload) so that clients can name who they are; the
    /// server trusts only tokens it issued.
    pub fn issue(&mut self, user: &str) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(json!({"alg": "RS256", "kid": "sandbox"}).to_string());
        let payload = b64.encode(
            json!({"iss": "https://kubernetes.default.svc", "sub": user, "aud": ["https://kubernetes.default.svc"]})
                .to_string(),
        );
        let secret: Vec<u8> = (0..32).map(|_| fastrand::u8(..)).collect();
        let token = format!("{header}.{payload}.{}", b64.encode(secret));
        self.tokens.insert(token.clone(), user.to_string());
        token
    }

    pub fn user(&self, token: &str) -> Option<&str> {
        self.tokens.get(token).map(String::as_str)
    }

    /// Loads the Roles and RoleBindings of a manifest (other kinds are
    /// ignored); returns how many bindings were granted.
    pub fn grant(&mut self, manifest: &str) -> Result<usize, String> {
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(manifest).map_err(|e| format!("invalid YAML: {e}"))?;
        let mut roles: HashMap<(String, String), Vec<Rule>> = HashMap::new();
        for d in docs.iter().filter(|d| d["kind"] == "Role") {
            let key = (
                d["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default")
                    .to_string(),
                d["metadata"]["name"].as_str().unwrap_or("").to_string(),
            );
            let rules: Vec<Rule> = serde_json::from_value(d["rules"].clone())
                .map_err(|e| format!("Role {}/{}: {e}", key.0, key.1))?;
            roles.insert(key, rules);
        }
        let mut n = 0;
        for b in docs.iter().filter(|d| d["kind"] == "RoleBinding") {
            let ns = b["metadata"]["namespace"].as_str().unwrap_or("default");
            if b["roleRef"]["kind"] != "Role" {
                return Err("only RoleBindings to a Role are supported".into());
            }
            let role = b["roleRef"]["name"].as_str().unwrap_or("");
            let rules = roles
                .get(&(ns.to_string(), role.to_string()))
                .ok_or_else(|| {
                    format!(
                        "RoleBinding in {ns} names Role {role}, which the manifest does not define"
                    )
                })?;
            for s in b["subjects"].as_array().into_iter().flatten() {
                if let Some(user) = subject_user(s, ns) {
                    self.grants.push(Grant {
                        user,
                        namespace: ns.to_string(),
                        rules: rules.clone(),
                    });
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// The rules granted to `user` in `ns`, as a rules review lists them.
    pub fn rules_json(&self, user: &str, ns: &str) -> Vec<Value> {
        self.grants
            .iter()
            .filter(|g| g.user == user && g.namespace == ns)
            .flat_map(|g| g.rules.iter().map(Rule::to_json))
            .collect()
    }

    pub fn allows(&self, user: &str, a: &Access) -> bool {
        match user {
            ADMIN => true,
            VIEWER => matches!(a.verb, "get" | "list" | "watch"),
            _ => self.grants.iter().any(|g| {
                g.user == user
                    && !a.namespace.is_empty()
                    && g.namespace == a.namespace
                    && g.rules.iter().any(|r| r.allows(a))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RBAC: &str = "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: r, namespace: ops}
rules:
  - apiGroups: [\"apps\"]
    resources: [\"deployments\"]
    verbs: [\"get\", \"list\"]
  - apiGroups: [\"apps\"]
    resources: [\"deployments/scale\"]
    resourceNames: [\"api\"]
    verbs: [\"patch\"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: b, namespace: ops}
subjects: [{kind: ServiceAccount, name: bot, namespace: ops}]
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}
";

    fn access<'a>(
        verb: &'a str,
        resource: &'a str,
        ns: &'a str,
        name: Option<&'a str>,
    ) -> Access<'a> {
        Access {
            verb,
            group: "apps",
            resource,
            namespace: ns,
            name,
        }
    }

    #[test]
    fn roles_bound_to_a_service_account_allow_only_their_rules() {
        let mut auth = Auth::default();
        assert_eq!(auth.grant(RBAC), Ok(1));
        let bot = "system:serviceaccount:ops:bot";
        assert!(auth.allows(bot, &access("list", "deployments", "ops", None)));
        assert!(!auth.allows(bot, &access("list", "deployments", "default", None)));
        assert!(!auth.allows(bot, &access("list", "deployments", "", None)));
        assert!(!auth.allows(bot, &access("patch", "deployments", "ops", Some("api"))));
        assert!(auth.allows(
            bot,
            &access("patch", "deployments/scale", "ops", Some("api"))
        ));
        assert!(!auth.allows(
            bot,
            &access("patch", "deployments/scale", "ops", Some("web"))
        ));
        assert!(!auth.allows(
            "system:serviceaccount:ops:other",
            &access("get", "deployments", "ops", None)
        ));
        assert!(auth.allows(VIEWER, &access("get", "deployments", "", None)));
        assert!(!auth.allows(VIEWER, &access("patch", "deployments", "ops", None)));
    }

    #[test]
    fn only_issued_tokens_authenticate() {
        let mut auth = Auth::default();
        let t = auth.issue("system:serviceaccount:ops:bot");
        assert_eq!(auth.user(&t), Some("system:serviceaccount:ops:bot"));
        assert_eq!(t.split('.').count(), 3);
        assert_eq!(auth.user("forged"), None);
    }
}
