//! In-cluster configuration: inside a pod with no kubeconfig, talk to the
//! API server the kubelet announces in KUBERNETES_SERVICE_HOST/PORT, as the
//! pod's service account, with the token, CA and namespace Kubernetes
//! mounts. kube's own `Config::incluster` reads a fixed directory; this one
//! honours OPSH_SERVICEACCOUNT_DIR for a token projected elsewhere, names
//! the service account in errors, and says which file is missing.

use crate::dispatch::OpError;
use base64::Engine as _;
use std::path::{Path, PathBuf};

pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

pub fn service_account_dir() -> PathBuf {
    std::env::var_os("OPSH_SERVICEACCOUNT_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(SERVICE_ACCOUNT_DIR))
}

fn env(name: &str) -> Result<String, OpError> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            OpError::bad_input(format!(
                "in-cluster config: {name} is not set (KUBERNETES_SERVICE_HOST is)"
            ))
            .with_hint("the kubelet sets both in every pod; outside one, set KUBECONFIG instead")
        })
}

fn read(dir: &Path, file: &str, what: &str) -> Result<String, OpError> {
    let path = dir.join(file);
    std::fs::read_to_string(&path).map_err(|e| {
        OpError::bad_input(format!("in-cluster config: cannot read the {what} {}", path.display()))
            .with_cause(e)
            .with_hint("is a service account token mounted (automountServiceAccountToken not false)? OPSH_SERVICEACCOUNT_DIR names another directory")
    })
}

/// The pod's namespace, as client-go finds it: the service account's
/// `namespace` file, else `default`.
pub fn namespace() -> String {
    std::fs::read_to_string(service_account_dir().join("namespace"))
        .ok()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".into())
}

/// `system:serviceaccount:NS:NAME`, from the token's payload (not
/// verified: only to say who the API server will see).
pub fn token_subject(token: &str) -> Option<String> {
    let payload = token.trim().split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims["sub"].as_str().map(str::to_string)
}

/// The client config and who it authenticates as.
pub fn config() -> Result<(kube::Config, String), OpError> {
    let host = env("KUBERNETES_SERVICE_HOST")?;
    let port = env("KUBERNETES_SERVICE_PORT")?;
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let url: http::Uri = format!("https://{authority}").parse().map_err(|e| {
        OpError::bad_input(format!(
            "in-cluster config: https://{authority} is not a valid API server address"
        ))
        .with_cause(e)
    })?;
    let dir = service_account_dir();
    let token = read(&dir, "token", "service account token")?;
    if token.trim().is_empty() {
        return Err(OpError::bad_input(format!(
            "in-cluster config: the service account token {} is empty",
            dir.join("token").display()
        )));
    }
    crate::redact::register_secret(token.trim());
    let ca = read(&dir, "ca.crt", "cluster CA")?;
    use tokio_rustls::rustls::pki_types::{pem::PemObject, CertificateDer};
    let roots: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(ca.as_bytes())
        .map(|c| c.map(|c| c.as_ref().to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| {
            OpError::bad_input(format!(
                "in-cluster config: {} is not a PEM certificate",
                dir.join("ca.crt").display()
            ))
            .with_cause(e)
        })?;
    if roots.is_empty() {
        return Err(OpError::bad_input(format!(
            "in-cluster config: {} holds no certificate",
            dir.join("ca.crt").display()
        )));
    }
    let namespace = namespace();
    let identity = match token_subject(&token) {
        Some(sub) => format!("`{sub}` (in-cluster)"),
        None => "the pod's service account (in-cluster)".to_string(),
    };
    let mut config = kube::Config::new(url);
    config.default_namespace = namespace;
    config.root_cert = Some(roots);
    // A file, not the token itself: kube re-reads it, so a projected token
    // that the kubelet rotates keeps working in a long-running schedule.
    config.auth_info.token_file = Some(dir.join("token").display().to_string());
    Ok((config, identity))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_comes_from_the_token_payload() {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = b64.encode(r#"{"sub":"system:serviceaccount:opsh:opsh"}"#);
        let token = format!("eyJhbGciOiJSUzI1NiJ9.{payload}.c2ln");
        assert_eq!(
            token_subject(&token).as_deref(),
            Some("system:serviceaccount:opsh:opsh")
        );
        assert_eq!(token_subject("not-a-jwt"), None);
        assert_eq!(token_subject("a.!!!.c"), None);
    }
}
