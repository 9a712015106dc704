//! History in the XDG data dir, minus anything that looks like a credential:
//! a URL with a password, a secret-named key with a value, or a string
//! literal that looks like a token. Such an entry still runs; it is only
//! never written down.

use crate::engine::lex::{self, Kind};
use std::path::PathBuf;

pub fn path() -> PathBuf {
    crate::config::data_dir().join("history")
}

/// Well-known token shapes: GitHub, GitLab, Slack, OpenAI/Stripe-style,
/// AWS access keys, JWTs.
const TOKEN_PREFIXES: &[&str] = &[
    "ghp_",
    "gho_",
    "ghs_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "sk-",
    "sk_live_",
    "rk_live_",
    "AKIA",
    "eyJ",
];

pub fn holds_secret(entry: &str) -> bool {
    if crate::redact::redact(entry) != entry {
        return true;
    }
    let toks = lex::significant(entry);
    for (i, t) in toks.iter().enumerate() {
        match t.kind {
            Kind::Str { .. } if looks_like_token(t.body(entry)) => return true,
            // `password: "x"`, `token = "x"`, `#{api_key: "..."}`, and
            // http's `basic: ["user", "password"]`.
            Kind::Ident
                if crate::redact::is_secret_key(t.text(entry)) || t.text(entry) == "basic" =>
            {
                let sep = toks.get(i + 1).map(|n| n.text(entry));
                let is_str = |v: &lex::Token| matches!(v.kind, Kind::Str { .. });
                let value = match toks.get(i + 2) {
                    // A list: any string in it up to its `]`.
                    Some(v) if v.text(entry) == "[" => toks[i + 2..]
                        .iter()
                        .take_while(|v| v.text(entry) != "]")
                        .any(is_str),
                    Some(v) => is_str(v),
                    None => false,
                };
                if matches!(sep, Some(":" | "=")) && value {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

fn looks_like_token(s: &str) -> bool {
    let s = s.strip_prefix("Bearer ").unwrap_or(s);
    if s.len() < 16 || s.chars().any(char::is_whitespace) {
        return false;
    }
    if TOKEN_PREFIXES.iter().any(|p| s.starts_with(p)) && s.len() >= 20 {
        return true;
    }
    // A long run of mixed-case letters and digits reads as random: a key.
    let tokenish = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_+/=.".contains(c));
    let upper = s.chars().any(|c| c.is_ascii_uppercase());
    let lower = s.chars().any(|c| c.is_ascii_lowercase());
    let digits = s.chars().filter(char::is_ascii_digit).count();
    tokenish && s.len() >= 24 && upper && lower && digits >= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_recognised() {
        for s in [
            r#"pg.connect("postgres://app:hunter22@db/x")"#,
            r#"http.get(url, #{headers: #{authorization: "Bearer abc"}})"#,
            r#"let token = "ghp_abcdefghijklmnopqrstuvwx12""#,
            r#"vault("s.Hx7Kq2ZpR9vLmN3wT8yB4cD1")"#,
            r#"#{password: "x"}"#,
            r#"http.get(url, #{basic: ["ops", "not-a-token-shape"]})"#,
            // A raw string's delimiters are not part of the token.
            r##"let t = #"ghp_abcdefghijklmnopqrstuvwx12"#"##,
        ] {
            assert!(holds_secret(s), "{s}");
        }
        for s in [
            r#"pg.query("select * from pg_stat_activity where state = 'active'")"#,
            r#"pg.connect("staging")"#,
            r#"let token_count = 3"#,
            r#"http.get(url, #{basic: creds})"#,
            r#"sys.read("/var/lib/postgresql/16/main/postgresql.conf")"#,
            r#"redis.get("session:3f2a9c1e-77b0-4c52-9d1e-0a6b2c3d4e5f")"#,
        ] {
            assert!(!holds_secret(s), "{s}");
        }
    }
}
