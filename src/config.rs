//! Targets and settings. One TOML file at the XDG path, overridable with
//! `--config` / `OPSH_CONFIG`; without one, the ecosystem's environment
//! conventions (`DATABASE_URL`, `PG*`, `REDIS_URL`, `PROMETHEUS_URL`) apply.

use crate::redact;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Pg,
    Redis,
    Prom,
    Kube,
    Alertmanager,
    Pushgateway,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Pg,
        Kind::Redis,
        Kind::Prom,
        Kind::Kube,
        Kind::Alertmanager,
        Kind::Pushgateway,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Pg => "pg",
            Kind::Redis => "redis",
            Kind::Prom => "prom",
            Kind::Kube => "kube",
            Kind::Alertmanager => "alertmanager",
            Kind::Pushgateway => "pushgateway",
        }
    }

    /// The environment variable naming the default target of this kind.
    pub fn env_var(self) -> &'static str {
        match self {
            Kind::Pg => "DATABASE_URL",
            Kind::Redis => "REDIS_URL",
            Kind::Prom => "PROMETHEUS_URL",
            Kind::Kube => "KUBECONFIG",
            Kind::Alertmanager => "ALERTMANAGER_URL",
            Kind::Pushgateway => "PUSHGATEWAY_URL",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }

    fn env_hint(self) -> &'static str {
        match self {
            Kind::Pg => "set DATABASE_URL or the PG* variables, or name a default with `[defaults] pg = \"NAME\"` in the config",
            Kind::Redis => "set REDIS_URL, or name a default with `[defaults] redis = \"NAME\"` in the config",
            Kind::Prom => "set PROMETHEUS_URL, or name a default with `[defaults] prom = \"NAME\"` in the config",
            Kind::Kube => "set KUBECONFIG or name a default with `[defaults] kube = \"NAME\"` in the config",
            Kind::Alertmanager => "set ALERTMANAGER_URL, or name a default with `[defaults] alertmanager = \"NAME\"` in the config",
            Kind::Pushgateway => "set PUSHGATEWAY_URL, or name a default with `[defaults] pushgateway = \"NAME\"` in the config",
        }
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub pg: BTreeMap<String, TargetConfig>,
    #[serde(default)]
    pub redis: BTreeMap<String, TargetConfig>,
    #[serde(default)]
    pub prom: BTreeMap<String, TargetConfig>,
    #[serde(default)]
    pub kube: BTreeMap<String, TargetConfig>,
    #[serde(default)]
    pub alertmanager: BTreeMap<String, TargetConfig>,
    #[serde(default)]
    pub pushgateway: BTreeMap<String, TargetConfig>,
    /// `--notify NAME` destinations.
    #[serde(default)]
    pub notify: BTreeMap<String, NotifyConfig>,
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    pub pg: Option<String>,
    pub redis: Option<String>,
    pub prom: Option<String>,
    pub kube: Option<String>,
    pub alertmanager: Option<String>,
    pub pushgateway: Option<String>,
    /// Per-call timeout for primitives, e.g. "30s".
    pub timeout: Option<String>,
    pub max_operations: Option<u64>,
    /// How long a new PostgreSQL connection may take, e.g. "10s".
    pub pg_connect_timeout: Option<String>,
    /// Server-side statement_timeout for opsh's PostgreSQL sessions, e.g.
    /// "30s"; "0" disables it. Unset: the per-call timeout.
    pub pg_statement_timeout: Option<String>,
    /// Most sessions pg.terminate_idle / terminate / cancel act on when a
    /// script gives no `max` (fallback 50).
    pub pg_max_terminate: Option<i64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    pub path: Option<PathBuf>,
}

/// `[notify.NAME]`: one of a Slack incoming webhook or a generic JSON
/// webhook, each given inline or (better: it is a secret) from the env.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    pub slack_webhook: Option<String>,
    pub slack_webhook_env: Option<String>,
    pub webhook_url: Option<String>,
    pub webhook_url_env: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyKind {
    Slack,
    Webhook,
}

impl Config {
    /// Resolves `--notify VALUE`: a `[notify.NAME]` entry, or an http(s) URL
    /// (a generic webhook). The URL is registered as a secret.
    pub fn notify_target(&self, value: &str) -> Result<(NotifyKind, String), ConfigError> {
        if value.starts_with("http://") || value.starts_with("https://") {
            redact::register_secret(value);
            return Ok((NotifyKind::Webhook, value.to_string()));
        }
        let Some(n) = self.notify.get(value) else {
            let names: Vec<&str> = self.notify.keys().map(String::as_str).collect();
            return Err(err(
                format!("unknown notify target {value:?}"),
                Some(if names.is_empty() {
                    "define it as [notify.NAME] in the config (see docs/unattended.md), or pass an http(s) URL".into()
                } else {
                    format!("configured: {}", names.join(", "))
                }),
            ));
        };
        let from_env = |var: &str| {
            std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    err(
                        format!("notify target {value:?}: environment variable {var} is not set"),
                        Some(format!("export {var}, or check the Secret it comes from")),
                    )
                })
        };
        let (kind, url) =
            match n {
                NotifyConfig {
                    slack_webhook: Some(u),
                    ..
                } => (NotifyKind::Slack, u.clone()),
                NotifyConfig {
                    slack_webhook_env: Some(v),
                    ..
                } => (NotifyKind::Slack, from_env(v)?),
                NotifyConfig {
                    webhook_url: Some(u),
                    ..
                } => (NotifyKind::Webhook, u.clone()),
                NotifyConfig {
                    webhook_url_env: Some(v),
                    ..
                } => (NotifyKind::Webhook, from_env(v)?),
                _ => return Err(err(
                    format!("notify target {value:?} has no destination"),
                    Some(
                        "set one of slack_webhook_env, slack_webhook, webhook_url_env, webhook_url"
                            .into(),
                    ),
                )),
            };
        redact::register_secret(&url);
        Ok((kind, url))
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub url: Option<String>,
    /// Take the whole URL from this environment variable.
    pub url_env: Option<String>,
    /// Put the password into the URL from this environment variable...
    pub password_env: Option<String>,
    /// ...or from the first line of this file (a mounted Kubernetes secret).
    pub password_file: Option<PathBuf>,
    /// HTTP targets (prom, alertmanager, pushgateway): a bearer token from
    /// this environment variable...
    pub bearer_env: Option<String>,
    /// ...or from the first line of this file.
    pub bearer_file: Option<PathBuf>,
    /// HTTP targets: a PEM CA bundle to trust in addition to the system's.
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub protected: bool,
    pub description: Option<String>,
    /// kube only: the kubeconfig context (default: the target's name, or
    /// the file's current context when `kubeconfig`/`url` names a file).
    pub context: Option<String>,
    /// kube only: the namespace (default: the context's).
    pub namespace: Option<String>,
    /// kube only: the kubeconfig file (default: KUBECONFIG, ~/.kube/config).
    /// `url` is read as this too, which is how the sandbox announces itself.
    pub kubeconfig: Option<PathBuf>,
}

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
        // A kube target's url is only how modules/k8s finds it again.
        if self.kind == Kind::Kube {
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

#[derive(Debug)]
pub struct ConfigError {
    pub message: String,
    pub hint: Option<String>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn err(message: impl Into<String>, hint: Option<String>) -> ConfigError {
    ConfigError {
        message: message.into(),
        hint,
    }
}

pub fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var).filter(|v| !v.is_empty()) {
        Some(v) => PathBuf::from(v),
        None => home().unwrap_or_else(std::env::temp_dir).join(fallback),
    }
}

pub fn config_dir() -> PathBuf {
    xdg("XDG_CONFIG_HOME", ".config").join("opsh")
}
pub fn state_dir() -> PathBuf {
    xdg("XDG_STATE_HOME", ".local/state").join("opsh")
}
pub fn data_dir() -> PathBuf {
    xdg("XDG_DATA_HOME", ".local/share").join("opsh")
}

/// Where a running `opsh sandbox` announces its servers to other opsh
/// processes, which then see them as the target `sandbox`.
pub fn sandbox_state_file() -> PathBuf {
    state_dir().join("sandbox.json")
}

impl Config {
    /// `explicit` comes from `--config` or `OPSH_CONFIG`; a missing explicit
    /// file is an error, a missing default file is not.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let env_path = std::env::var_os("OPSH_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let (path, required) = match explicit.map(Path::to_path_buf).or(env_path) {
            Some(p) => (p, true),
            None => (config_dir().join("config.toml"), false),
        };
        let mut cfg = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mut cfg: Config = toml::from_str(&text).map_err(|e| {
                    err(
                        format!("invalid config {}: {}", path.display(), e.message()),
                        Some(format!(
                            "see docs/config.md for the format (error near byte {:?})",
                            e.span().map(|s| s.start)
                        )),
                    )
                })?;
                cfg.path = Some(path);
                cfg
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Config::default(),
            Err(e) => {
                return Err(err(
                    format!("cannot read config {}: {e}", path.display()),
                    None,
                ))
            }
        };
        cfg.load_sandbox_announcement();
        Ok(cfg)
    }

    fn table(&self, kind: Kind) -> &BTreeMap<String, TargetConfig> {
        match kind {
            Kind::Pg => &self.pg,
            Kind::Redis => &self.redis,
            Kind::Prom => &self.prom,
            Kind::Kube => &self.kube,
            Kind::Alertmanager => &self.alertmanager,
            Kind::Pushgateway => &self.pushgateway,
        }
    }

    fn table_mut(&mut self, kind: Kind) -> &mut BTreeMap<String, TargetConfig> {
        match kind {
            Kind::Pg => &mut self.pg,
            Kind::Redis => &mut self.redis,
            Kind::Prom => &mut self.prom,
            Kind::Kube => &mut self.kube,
            Kind::Alertmanager => &mut self.alertmanager,
            Kind::Pushgateway => &mut self.pushgateway,
        }
    }

    pub fn default_name(&self, kind: Kind) -> Option<&String> {
        match kind {
            Kind::Pg => self.defaults.pg.as_ref(),
            Kind::Redis => self.defaults.redis.as_ref(),
            Kind::Prom => self.defaults.prom.as_ref(),
            Kind::Kube => self.defaults.kube.as_ref(),
            Kind::Alertmanager => self.defaults.alertmanager.as_ref(),
            Kind::Pushgateway => self.defaults.pushgateway.as_ref(),
        }
    }

    pub fn set_default(&mut self, kind: Kind, name: &str) {
        let slot = match kind {
            Kind::Pg => &mut self.defaults.pg,
            Kind::Redis => &mut self.defaults.redis,
            Kind::Prom => &mut self.defaults.prom,
            Kind::Kube => &mut self.defaults.kube,
            Kind::Alertmanager => &mut self.defaults.alertmanager,
            Kind::Pushgateway => &mut self.defaults.pushgateway,
        };
        *slot = Some(name.to_string());
    }

    /// Adds (or replaces) a named target, as the sandbox does.
    pub fn add_target(&mut self, kind: Kind, name: &str, url: &str, protected: bool) {
        redact::register_url(url);
        self.table_mut(kind).insert(
            name.to_string(),
            TargetConfig {
                url: Some(url.to_string()),
                protected,
                ..Default::default()
            },
        );
    }

    pub fn target_names(&self, kind: Kind) -> Vec<String> {
        self.table(kind).keys().cloned().collect()
    }

    /// Resolves what a script named (a target name or a URL), or the default
    /// target of this kind when it named nothing.
    pub fn resolve(&self, kind: Kind, name_or_url: Option<&str>) -> Result<Target, ConfigError> {
        if kind == Kind::Kube {
            return Ok(self.resolve_kube(name_or_url.unwrap_or("")));
        }
        match name_or_url {
            Some(s) if s.contains("://") => {
                redact::register_url(s);
                Ok(Target {
                    kind,
                    name: redact::redact(s),
                    url: s.to_string(),
                    protected: false,
                    bearer: None,
                    ca_file: None,
                })
            }
            Some(name) => self.named(kind, name),
            None => match self.default_name(kind) {
                Some(name) => self.named(kind, name),
                None => self.env_default(kind),
            },
        }
    }

    fn named(&self, kind: Kind, name: &str) -> Result<Target, ConfigError> {
        let Some(tc) = self.table(kind).get(name) else {
            let names = self.target_names(kind);
            let suggestion = names
                .iter()
                .filter(|n| strsim::jaro_winkler(n, name) > 0.8)
                .max_by(|a, b| {
                    strsim::jaro_winkler(a, name).total_cmp(&strsim::jaro_winkler(b, name))
                });
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
            return Err(err(
                format!("no {} target named `{name}`", kind.name()),
                Some(hint),
            ));
        };
        let mut url = match (&tc.url, &tc.url_env) {
            (_, Some(var)) => std::env::var(var).map_err(|_| {
                err(
                    format!(
                        "{} target `{name}`: environment variable {var} (url_env) is not set",
                        kind.name()
                    ),
                    Some(format!("export {var}=... before running opsh")),
                )
            })?,
            (Some(u), None) => u.clone(),
            (None, None) => {
                return Err(err(
                    format!("{} target `{name}` has no url", kind.name()),
                    Some("add `url = \"...\"` or `url_env = \"VAR\"`".into()),
                ))
            }
        };
        let password = if let Some(var) = &tc.password_env {
            Some(std::env::var(var).map_err(|_| {
                err(
                    format!(
                        "{} target `{name}`: environment variable {var} (password_env) is not set",
                        kind.name()
                    ),
                    Some(format!("export {var}=... before running opsh")),
                )
            })?)
        } else if let Some(file) = &tc.password_file {
            let text = std::fs::read_to_string(file).map_err(|e| {
                err(
                    format!(
                        "{} target `{name}`: cannot read password_file {}: {e}",
                        kind.name(),
                        file.display()
                    ),
                    None,
                )
            })?;
            Some(text.lines().next().unwrap_or("").to_string())
        } else {
            None
        };
        if let Some(pw) = password {
            redact::register_secret(&pw);
            let mut parsed = url::Url::parse(&url).map_err(|e| {
                err(
                    format!("{} target `{name}`: invalid url: {e}", kind.name()),
                    None,
                )
            })?;
            if parsed.set_password(Some(&pw)).is_err() {
                return Err(err(
                    format!(
                        "{} target `{name}`: this url cannot carry a password",
                        kind.name()
                    ),
                    None,
                ));
            }
            url = parsed.to_string();
        }
        redact::register_url(&url);
        let bearer = match (&tc.bearer_env, &tc.bearer_file) {
            (Some(var), _) => Some(std::env::var(var).map_err(|_| {
                err(
                    format!(
                        "{} target `{name}`: environment variable {var} (bearer_env) is not set",
                        kind.name()
                    ),
                    Some(format!("export {var}=... before running opsh")),
                )
            })?),
            (None, Some(file)) => Some(
                std::fs::read_to_string(file)
                    .map_err(|e| {
                        err(
                            format!(
                                "{} target `{name}`: cannot read bearer_file {}: {e}",
                                kind.name(),
                                file.display()
                            ),
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

    /// A kube handle names `TARGET/NAMESPACE`, either part may be empty.
    /// TARGET is a `[kube.NAME]` entry, or else a kubeconfig context. The
    /// result's `url` is `CONTEXT/NAMESPACE[@KUBECONFIG]` (empty parts:
    /// the kubeconfig's current context and that context's namespace);
    /// modules/k8s reads the kubeconfig itself.
    fn resolve_kube(&self, spec: &str) -> Target {
        let (given, ns) = spec.split_once('/').unwrap_or((spec, ""));
        let name = match given {
            "" => self.defaults.kube.clone().unwrap_or_default(),
            g => g.to_string(),
        };
        let entry = self.kube.get(&name).or_else(|| {
            self.kube
                .values()
                .find(|t| !name.is_empty() && t.context.as_deref() == Some(name.as_str()))
        });
        let file = entry.and_then(|e| {
            e.kubeconfig
                .clone()
                .or_else(|| e.url.as_ref().map(PathBuf::from))
        });
        let context = match entry {
            Some(e) => e.context.clone().or_else(|| {
                (file.is_none() && self.kube.contains_key(&name)).then(|| name.clone())
            }),
            None => (!name.is_empty()).then(|| name.clone()),
        };
        let namespace = match ns {
            "" => entry.and_then(|e| e.namespace.clone()),
            n => Some(n.to_string()),
        };
        // With no target and no context named, the current context applies:
        // the kubeconfig's, or in a pod without one, the pod's service
        // account, which `context = "in-cluster"` names.
        let current = if entry.is_none() && context.is_none() {
            kube_current_context(file.as_deref()).or_else(|| {
                std::env::var_os("KUBERNETES_SERVICE_HOST")
                    .is_some()
                    .then(|| IN_CLUSTER.to_string())
            })
        } else {
            None
        };
        // Protection follows the current context too.
        let protected = match entry {
            Some(e) => e.protected,
            None if context.is_none() => current.as_ref().is_some_and(|c| {
                self.kube.iter().any(|(n, t)| {
                    t.protected && (n == c || t.context.as_deref() == Some(c.as_str()))
                })
            }),
            None => false,
        };
        let mut url = format!(
            "{}/{}",
            context.as_deref().unwrap_or(""),
            namespace.as_deref().unwrap_or("")
        );
        if let Some(f) = &file {
            url.push('@');
            url.push_str(&f.to_string_lossy());
        }
        let mut shown = if !name.is_empty() {
            name
        } else if current.as_deref() == Some(IN_CLUSTER) {
            IN_CLUSTER.to_string()
        } else {
            "current-context".to_string()
        };
        if !ns.is_empty() {
            shown = format!("{shown}/{ns}");
        }
        Target {
            kind: Kind::Kube,
            name: shown,
            url,
            protected,
            bearer: None,
            ca_file: None,
        }
    }

    fn env_default(&self, kind: Kind) -> Result<Target, ConfigError> {
        let var = kind.env_var();
        if let Some(url) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
            redact::register_url(&url);
            return Ok(Target {
                kind,
                name: var.to_string(),
                url,
                protected: false,
                bearer: None,
                ca_file: None,
            });
        }
        if kind == Kind::Pg {
            if let Some(url) = pg_env_url() {
                return Ok(Target {
                    kind,
                    name: "PG* environment".into(),
                    url,
                    protected: false,
                    bearer: None,
                    ca_file: None,
                });
            }
        }
        Err(err(
            format!("no {} target given and no default configured", kind.name()),
            Some(kind.env_hint().to_string()),
        ))
    }

    /// Reads what a running `opsh sandbox` announced, if that process is
    /// still alive, and exposes its servers as targets named `sandbox`.
    fn load_sandbox_announcement(&mut self) {
        let Ok(text) = std::fs::read_to_string(sandbox_state_file()) else {
            return;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            return;
        };
        let alive = v["pid"]
            .as_i64()
            .is_some_and(|pid| pid > 0 && unsafe { libc::kill(pid as i32, 0) } == 0);
        if !alive {
            return;
        }
        for kind in Kind::ALL {
            if let Some(url) = v["targets"][kind.name()].as_str() {
                if !self.table(kind).contains_key("sandbox") {
                    self.add_target(kind, "sandbox", url, false);
                }
            }
        }
    }
}

/// The context name that stands for the pod's own service account
/// (in-cluster config), in `[kube.NAME] context` and in messages.
pub const IN_CLUSTER: &str = "in-cluster";

/// `current-context:` of the kubeconfig that applies (the file, else the
/// first KUBECONFIG entry that has one, else ~/.kube/config): a line scan,
/// enough to decide whether a protected target is in use.
pub fn kube_current_context(file: Option<&Path>) -> Option<String> {
    let files: Vec<PathBuf> = match file {
        Some(f) => vec![f.to_path_buf()],
        None => match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
            Some(v) => std::env::split_paths(&v).collect(),
            None => home().map(|h| h.join(".kube/config")).into_iter().collect(),
        },
    };
    files.iter().find_map(|f| {
        let text = std::fs::read_to_string(f).ok()?;
        text.lines().find_map(|l| {
            let v = l
                .strip_prefix("current-context:")?
                .trim()
                .trim_matches('"')
                .trim_matches('\'');
            (!v.is_empty()).then(|| v.to_string())
        })
    })
}

/// libpq's convention: the PG* variables, when any is set.
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
    fn kube_targets_name_a_context_and_namespace() {
        let cfg: Config = toml::from_str(
            "[kube.prod]\ncontext = \"gke-prod\"\nnamespace = \"web\"\nkubeconfig = \"/k/prod\"\nprotected = true\n",
        )
        .unwrap();
        let t = cfg.resolve(Kind::Kube, Some("prod/")).unwrap();
        assert_eq!(
            (t.url.as_str(), t.protected),
            ("gke-prod/web@/k/prod", true)
        );
        assert_eq!(t.display(), "prod");
        // Named by its context, another namespace: still protected.
        let t = cfg.resolve(Kind::Kube, Some("gke-prod/api")).unwrap();
        assert_eq!(
            (t.url.as_str(), t.protected),
            ("gke-prod/api@/k/prod", true)
        );
        // An unconfigured context is used as is.
        let t = cfg.resolve(Kind::Kube, Some("kind-dev/")).unwrap();
        assert_eq!((t.url.as_str(), t.protected), ("kind-dev/", false));
    }

    #[test]
    fn unknown_fields_rejected() {
        assert!(toml::from_str::<Config>("[pg.x]\nurll = \"a\"\n").is_err());
    }
}
