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

/// Before an error that quotes a file (a parser's message, the lines around
/// the fault) is shown: remembers the secrets the file holds, the values of
/// secret-named keys (`token: ..`, `password = ".."`) and URL passwords, so
/// that `redact` masks them wherever the error quotes them. A file that
/// does not parse is read line by line, loosely: YAML (block and flow) and
/// TOML assignments.
pub fn register_file_secrets(text: &str) {
    for line in text.lines() {
        for word in line.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']') {
            if word.contains("://") {
                register_url(word.trim_matches(|c| c == '"' || c == '\''));
            }
        }
        for segment in line.split([',', '{', '}']) {
            if let Some((key, value)) = assignment(segment) {
                if is_secret_key(key) {
                    register_secret(value);
                }
            }
        }
    }
}

/// `key: value` or `key = value` in one segment of a line, quotes removed.
fn assignment(segment: &str) -> Option<(&str, &str)> {
    let sep = segment.char_indices().find(|&(i, c)| {
        c == '='
            || (c == ':'
                && segment[i + 1..]
                    .chars()
                    .next()
                    .is_none_or(char::is_whitespace))
    })?;
    let key = segment[..sep.0]
        .trim()
        .trim_start_matches("- ")
        .trim_matches(|c| c == '"' || c == '\'');
    let value = segment[sep.0 + 1..]
        .trim()
        .trim_matches(|c| c == '"' || c == '\'');
    let plain_key = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.');
    (plain_key && !value.is_empty()).then_some((key, value))
}

/// Masks what follows a secret-named key on any line of `text` (the file
/// lines a parser's error quotes): a value the loose scan of
/// `register_file_secrets` could not isolate, a half-written one say, is
/// not shown either.
pub fn mask_secret_assignments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        out.push_str(&mask_line(body));
        out.push_str(end);
    }
    out
}

fn mask_line(line: &str) -> String {
    let mut start = 0;
    for (i, c) in line.char_indices() {
        let is_sep =
            c == '=' || (c == ':' && line[i + 1..].chars().next().is_none_or(char::is_whitespace));
        if !is_sep {
            continue;
        }
        let before = &line[start..i];
        let key = before
            .rsplit(|ch: char| !(ch.is_alphanumeric() || ch == '_' || ch == '-'))
            .next()
            .unwrap_or("");
        if !key.is_empty() && is_secret_key(key) && !line[i + 1..].trim().is_empty() {
            return format!("{} {MASK}", &line[..=i]);
        }
        start = i + 1;
    }
    line.to_string()
}

/// A parser's error about a file, fit to show: the file's secrets masked
/// wherever the message quotes them (by value, and on any quoted line of
/// a secret-named key).
pub fn file_error(message: &str, file_text: &str) -> String {
    register_file_secrets(file_text);
    redact(&mask_secret_assignments(message))
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
        "routing_key",
        "private-key",
        // A kubeconfig's client-key-data is a private key.
        "client-key",
        "client_key",
        "credential",
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
    fn an_error_quoting_a_file_masks_its_secrets() {
        let file = "users:\n- name: u\n  user:\n    token: Tok3nValue99\n    password: [1, 2\nx: {client-key-data: K3yData77, user: bob}\n[pg.p]\nurl = \"postgres://u:Pw0rd55@h/db\"\n";
        let msg = "error at line 5\n 4 |     token: Tok3nValue99\n 5 |     password: [1, 2\n 6 | x: {client-key-data: K3yData77, user: bob}\n 8 | url = \"postgres://u:Pw0rd55@h/db\n";
        let shown = file_error(msg, file);
        for secret in ["Tok3nValue99", "[1, 2", "K3yData77", "Pw0rd55"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("error at line 5"), "{shown}");
        assert!(shown.contains("token: ***"), "{shown}");
        // Later messages that quote the values mask them too.
        assert_eq!(redact("got Tok3nValue99"), "got ***");
    }

    #[test]
    fn masks_registered_values() {
        register_url("postgres://u:Zebra%2FPass99@h/db");
        assert_eq!(redact("password Zebra/Pass99 wrong"), "password *** wrong");
    }
}
