//! Without a configured default, the ecosystem's environment conventions
//! name the target: each kind's variable (`DATABASE_URL`, `REDIS_URL`, ...),
//! then its further convention if it has one (libpq's `PG*` variables).

use super::{err, ConfigError, Kind, Target};
use crate::redact;

/// An environment convention beyond the kind's one variable.
pub struct Fallback {
    /// How the hint words it: "set VAR or {describe}, ...".
    pub describe: &'static str,
    /// The name of the target it gives.
    pub target_name: &'static str,
    /// The url, when the convention applies.
    pub url: fn() -> Option<String>,
}

/// libpq's convention: the PG* variables, when any is set.
pub const PG_VARIABLES: Fallback = Fallback {
    describe: "the PG* variables",
    target_name: "PG* environment",
    url: pg_env_url,
};

/// The default target of `kind` from the environment, or an error saying
/// how to name one.
pub(super) fn default_target(kind: Kind) -> Result<Target, ConfigError> {
    let info = kind.info();
    let var = info.env_var;
    if let Some(url) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
        redact::register_url(&url);
        return Ok(from_env(kind, var, url));
    }
    if let Some(f) = &info.env_fallback {
        if let Some(url) = (f.url)() {
            return Ok(from_env(kind, f.target_name, url));
        }
    }
    Err(err(
        format!("no {} target given and no default configured", info.name),
        Some(hint(kind)),
    ))
}

/// Whether the kind's own variable (`DATABASE_URL`, not the PG* ones,
/// which are often set for psql alone) is set.
pub(super) fn kind_var_set(kind: Kind) -> bool {
    std::env::var_os(kind.info().env_var).is_some_and(|v| !v.is_empty())
}

/// Says once per kind that the environment won over `[defaults]`.
pub(super) fn warn_both(kind: Kind, name: &str) {
    static WARNED: std::sync::Mutex<Vec<Kind>> = std::sync::Mutex::new(Vec::new());
    let Ok(mut warned) = WARNED.lock() else {
        return;
    };
    if warned.contains(&kind) {
        return;
    }
    warned.push(kind);
    let info = kind.info();
    tracing::warn!(
        "{var} is set and the config says `[defaults] {k} = \"{name}\"`: using {var} (the environment wins); unset {var} or pass --target {k}={name} to use the config's",
        var = info.env_var,
        k = info.name,
    );
}

fn from_env(kind: Kind, name: &str, url: String) -> Target {
    Target {
        kind,
        name: name.to_string(),
        url,
        protected: false,
        bearer: None,
        ca_file: None,
    }
}

fn hint(kind: Kind) -> String {
    let info = kind.info();
    let also = info
        .env_fallback
        .as_ref()
        .map(|f| format!(" or {}", f.describe))
        .unwrap_or_default();
    format!(
        "set {}{also}, or name a default with `[defaults] {} = \"NAME\"` in the config",
        info.env_var, info.name
    )
}

fn pg_env_url() -> Option<String> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if ["PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"]
        .iter()
        .all(|k| get(k).is_none())
    {
        return None;
    }
    let user = get("PGUSER")
        .or_else(|| get("USER"))
        .unwrap_or_else(|| "postgres".into());
    let mut u = url::Url::parse("postgres://localhost").ok()?;
    u.set_host(Some(&get("PGHOST").unwrap_or_else(|| "localhost".into())))
        .ok()?;
    u.set_port(get("PGPORT").and_then(|p| p.parse().ok()).or(Some(5432)))
        .ok()?;
    u.set_username(&user).ok()?;
    if let Some(pw) = get("PGPASSWORD") {
        redact::register_secret(&pw);
        u.set_password(Some(&pw)).ok()?;
    }
    u.set_path(&get("PGDATABASE").unwrap_or(user));
    Some(u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_the_variables_and_the_defaults_key() {
        assert_eq!(
            hint(Kind::Pg),
            "set DATABASE_URL or the PG* variables, or name a default with `[defaults] pg = \"NAME\"` in the config"
        );
        assert_eq!(
            hint(Kind::Redis),
            "set REDIS_URL, or name a default with `[defaults] redis = \"NAME\"` in the config"
        );
    }
}
