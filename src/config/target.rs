//! A resolved target, and how what a script names (a target, a URL, or
//! nothing) becomes one for the kinds that are reached by URL.

use super::{env, err, Config, ConfigError, Kind};
use crate::redact;
use std::path::PathBuf;

/// A resolved target: where a primitive talks to. `url` carries the secret
/// and must only ever be shown through `display()`.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub kind: Kind,
    pub name: String,
    pub url: String,
    pub protected: bool,
    /// HTTP targets: bearer token (a registered secret) and extra CA.
    pub bearer: Option<String>,
    pub ca_file: Option<PathBuf>,
}

impl Target {
    /// `host:port` of the URL, for hints like "is it running on ...?".
    pub fn host_port(&self, default_port: u16) -> String {
        url::Url::parse(&self.url)
            .ok()
            .map(|u| {
                format!(
                    "{}:{}",
                    u.host_str().unwrap_or("localhost"),
                    u.port().unwrap_or(default_port)
                )
            })
            .unwrap_or_else(|| "its host".into())
    }

    pub fn display(&self) -> String {
        if !self.kind.info().shows_url {
            return self.name.clone();
        }
        let url = redact::redact(&self.url);
        if self.name == url {
            url
        } else {
            format!("{} ({})", self.name, url)
        }
    }
}

impl Config {
    /// Resolves what a script named (a target name or a URL), or the default
    /// target of this kind when it named nothing.
    pub fn resolve(&self, kind: Kind, name_or_url: Option<&str>) -> Result<Target, ConfigError> {
        (kind.info().resolve)(self, kind, name_or_url)
    }

    fn named(&self, kind: Kind, name: &str) -> Result<Target, ConfigError> {
        let Some(tc) = self.table(kind).get(name) else {
            return Err(self.unknown(kind, name));
        };
        let what = |field: &str| format!("{} target `{name}`: {field}", kind.name());
        let unset = |var: &str, field: &str| {
            err(
                what(&format!("environment variable {var} ({field}) is not set")),
                Some(format!("export {var}=... before running opsh")),
            )
        };
        let mut url = match (&tc.url, &tc.url_env) {
            (_, Some(var)) => std::env::var(var).map_err(|_| unset(var, "url_env"))?,
            (Some(u), None) => u.clone(),
            (None, None) => {
                return Err(err(
                    format!("{} target `{name}` has no url", kind.name()),
                    Some("add `url = \"...\"` or `url_env = \"VAR\"`".into()),
                ))
            }
        };
        let password = if let Some(var) = &tc.password_env {
            Some(std::env::var(var).map_err(|_| unset(var, "password_env"))?)
        } else if let Some(file) = &tc.password_file {
            let text = std::fs::read_to_string(file).map_err(|e| {
                err(
                    what(&format!(
                        "cannot read password_file {}: {e}",
                        file.display()
                    )),
                    None,
                )
            })?;
            Some(text.lines().next().unwrap_or("").to_string())
        } else {
            None
        };
        if let Some(pw) = password {
            redact::register_secret(&pw);
            let mut parsed =
                url::Url::parse(&url).map_err(|e| err(what(&format!("invalid url: {e}")), None))?;
            if parsed.set_password(Some(&pw)).is_err() {
                return Err(err(what("this url cannot carry a password"), None));
            }
            url = parsed.to_string();
        }
        redact::register_url(&url);
        let bearer = match (&tc.bearer_env, &tc.bearer_file) {
            (Some(var), _) => Some(std::env::var(var).map_err(|_| unset(var, "bearer_env"))?),
            (None, Some(file)) => Some(
                std::fs::read_to_string(file)
                    .map_err(|e| {
                        err(
                            what(&format!("cannot read bearer_file {}: {e}", file.display())),
                            None,
                        )
                    })?
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        if let Some(b) = &bearer {
            redact::register_secret(b);
        }
        Ok(Target {
            kind,
            name: name.to_string(),
            url,
            protected: tc.protected,
            bearer,
            ca_file: tc.ca_file.clone(),
        })
    }

    /// No such target: the closest configured name, or what is configured.
    fn unknown(&self, kind: Kind, name: &str) -> ConfigError {
        let names = self.target_names(kind);
        let suggestion = names
            .iter()
            .filter(|n| strsim::jaro_winkler(n, name) > 0.8)
            .max_by(|a, b| strsim::jaro_winkler(a, name).total_cmp(&strsim::jaro_winkler(b, name)));
        let hint = match (suggestion, names.is_empty()) {
            (Some(s), _) => format!("did you mean `{s}`?"),
            (None, true) => format!(
                "no {} targets are configured{}; add `[{}.{name}]` with a url",
                kind.name(),
                self.path
                    .as_ref()
                    .map(|p| format!(" in {}", p.display()))
                    .unwrap_or_default(),
                kind.name()
            ),
            (None, false) => {
                format!("configured {} targets: {}", kind.name(), names.join(", "))
            }
        };
        err(
            format!("no {} target named `{name}`", kind.name()),
            Some(hint),
        )
    }
}

/// How the kinds reached by URL resolve: a URL as given, a `[KIND.NAME]`
/// entry, the `[defaults]` entry, or the environment's default.
pub(super) fn resolve_url(
    cfg: &Config,
    kind: Kind,
    name_or_url: Option<&str>,
) -> Result<Target, ConfigError> {
    match name_or_url {
        Some(s) if s.contains("://") => {
            redact::register_url(s);
            Ok(protect_alias(
                cfg,
                Target {
                    kind,
                    name: redact::redact(s),
                    url: s.to_string(),
                    protected: false,
                    bearer: None,
                    ca_file: None,
                },
            ))
        }
        Some(name) => cfg.named(kind, name),
        None => match cfg.default_name(kind) {
            // The environment beats the config file's `[defaults]`, as in
            // twelve-factor tools and the AWS CLI: a variable exported for
            // this shell is the more specific choice. `--target` beats both.
            Some(name) if !cfg.default_chosen(kind) && env::kind_var_set(kind) => {
                env::warn_both(kind, name);
                env::default_target(kind).map(|t| protect_alias(cfg, t))
            }
            Some(name) => cfg.named(kind, name),
            None => env::default_target(kind).map(|t| protect_alias(cfg, t)),
        },
    }
}

/// A URL (typed, or from `DATABASE_URL` and the like, which beat
/// `[defaults]`) that reaches the same server and database as a protected
/// target is protected too: another spelling of production must not skip
/// its confirmation.
fn protect_alias(cfg: &Config, mut t: Target) -> Target {
    let Some(here) = endpoint(&t.url) else {
        return t;
    };
    // Only protected targets are resolved (their URL may come from the
    // environment): a fleet of hundreds of targets pays nothing per URL.
    t.protected = t.protected
        || cfg
            .table(t.kind)
            .iter()
            .filter(|(_, tc)| tc.protected)
            .any(|(name, _)| {
                cfg.named(t.kind, name)
                    .is_ok_and(|o| endpoint(&o.url).as_ref() == Some(&here))
            });
    t
}

/// Host, port and path of a URL: what makes two URLs the same database
/// (user, password and parameters aside; `postgresql://` is `postgres://`).
fn endpoint(url: &str) -> Option<(String, String, Option<u16>, String)> {
    let u = url::Url::parse(url).ok()?;
    let scheme = match u.scheme() {
        "postgresql" => "postgres",
        s => s,
    };
    let port = u.port().or(match scheme {
        "postgres" => Some(5432),
        "redis" | "rediss" => Some(6379),
        _ => u.port_or_known_default(),
    });
    Some((
        scheme.to_string(),
        u.host_str()?.to_ascii_lowercase(),
        port,
        u.path().trim_matches('/').to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_target_suggests() {
        let mut c = Config::default();
        c.add_target(Kind::Pg, "staging", "postgres://u@h/db", false);
        let e = c.resolve(Kind::Pg, Some("stagin")).unwrap_err();
        assert!(e.hint.unwrap().contains("staging"));
    }

    #[test]
    fn protected_flag_and_display_redacts() {
        let cfg: Config =
            toml::from_str("[pg.prod]\nurl = \"postgres://app:pw1234@db/app\"\nprotected = true\n")
                .unwrap();
        let t = cfg.resolve(Kind::Pg, Some("prod")).unwrap();
        assert!(t.protected);
        assert_eq!(t.display(), "prod (postgres://app:***@db/app)");
    }

    #[test]
    fn another_spelling_of_a_protected_url_is_protected() {
        let cfg: Config = toml::from_str(
            "[pg.prod]\nurl = \"postgres://app:pw1234@DB:5432/app\"\nprotected = true\n[pg.staging]\nurl = \"postgres://app@db/staging\"\n",
        )
        .unwrap();
        let t = cfg
            .resolve(Kind::Pg, Some("postgresql://other@db/app?sslmode=require"))
            .unwrap();
        assert!(t.protected, "same host, port and database as prod");
        let t = cfg
            .resolve(Kind::Pg, Some("postgres://app@db/staging"))
            .unwrap();
        assert!(!t.protected);
        let t = cfg
            .resolve(Kind::Pg, Some("postgres://app@db:5433/app"))
            .unwrap();
        assert!(!t.protected, "another port is another server");
    }

    #[test]
    fn unset_variables_are_named() {
        let cfg: Config =
            toml::from_str("[redis.cache]\nurl_env = \"OPSH_TEST_SURELY_UNSET_URL\"\n").unwrap();
        let e = cfg.resolve(Kind::Redis, Some("cache")).unwrap_err();
        assert_eq!(
            e.message,
            "redis target `cache`: environment variable OPSH_TEST_SURELY_UNSET_URL (url_env) is not set"
        );
        assert_eq!(
            e.hint.as_deref(),
            Some("export OPSH_TEST_SURELY_UNSET_URL=... before running opsh")
        );
    }
}
