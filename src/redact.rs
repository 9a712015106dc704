//! Secrets never reach output, errors or logs. Every string that leaves
//! opsh through a diagnostic or the audit log passes through `redact`.
//! Two layers: passwords embedded in URLs are masked wherever they appear,
//! and every secret opsh has learned (URL passwords, password_env values)
//! is masked by value, which also catches a driver echoing it back.

use std::sync::{OnceLock, RwLock};

pub const MASK: &str = "***";

fn known() -> &'static RwLock<Vec<String>> {
    static KNOWN: OnceLock<RwLock<Vec<String>>> = OnceLock::new();
    KNOWN.get_or_init(|| RwLock::new(Vec::new()))
}

/// Remembers a secret value so that it is masked everywhere from now on.
/// Very short values are ignored: masking "a" would mangle every message.
pub fn register_secret(secret: &str) {
    if secret.len() < 4 {
        return;
    }
    if let Ok(mut k) = known().write() {
        if !k.iter().any(|s| s == secret) {
            k.push(secret.to_string());
            // Longest first so that a secret containing another is masked whole.
            k.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }
}

/// Registers the password of a URL, both raw and percent-decoded.
pub fn register_url(url: &str) {
    if let Ok(u) = url::Url::parse(url) {
        if let Some(p) = u.password() {
            register_secret(p);
            if let Ok(dec) = percent_decode(p) {
                register_secret(&dec);
            }
        }
    }
}

fn percent_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out)
}

/// Masks `user:password@` in any `scheme://` URL inside `text`, then every
/// known secret value.
pub fn redact(text: &str) -> String {
    let mut out = mask_url_passwords(text);
    if let Ok(k) = known().read() {
        for s in k.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
    }
    out
}

/// `redact` for the panic hook: a panic while the secret list is locked for
/// writing must not deadlock the report of it, so the list is only tried.
pub fn redact_nonblocking(text: &str) -> String {
    let mut out = mask_url_passwords(text);
    if let Ok(k) = known().try_read() {
        for s in k.iter() {
            out = out.replace(s.as_str(), MASK);
        }
    }
    out
}

fn mask_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(idx) = rest.find("://") {
        let (head, tail) = rest.split_at(idx + 3);
        out.push_str(head);
        // The authority ends at the first '/', '?', '#' or whitespace.
        let end = tail
            .find(|c: char| {
                c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"' || c == '\''
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon + 1]);
                out.push_str(MASK);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// A key that by its name holds a secret: its value is masked in the audit
/// log whatever it looks like.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "authorization",
        "api_key",
        "apikey",
        "bearer",
        "cookie",
        "private_key",
    ]
    .iter()
    .any(|s| k.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_url_password() {
        assert_eq!(
            redact("connect postgres://app:s3cr%40t@db:5432/x failed"),
            "connect postgres://app:***@db:5432/x failed"
        );
        assert_eq!(redact("redis://:hunter22@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact("http://h/x?a=b"), "http://h/x?a=b");
        assert_eq!(redact("user@host"), "user@host");
    }

    #[test]
    fn masks_registered_values() {
        register_url("postgres://u:Zebra%2FPass99@h/db");
        assert_eq!(redact("password Zebra/Pass99 wrong"), "password *** wrong");
    }
}
