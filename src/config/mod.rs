//! Targets and settings. One TOML file at the XDG path, overridable with
//! `--config` / `OPSH_CONFIG`; without one, the ecosystem's environment
//! conventions (`DATABASE_URL`, `PG*`, `REDIS_URL`, `PROMETHEUS_URL`) apply.
//!
//! What differs between kinds of target is one row each in `kinds.rs`;
//! the rest of this module reads the rows.

mod de;
mod env;
mod kinds;
mod kube;
mod notify;
mod paths;
mod sandbox;
mod target;

pub use kinds::{Kind, KindInfo};
pub use kube::{kube_current_context, IN_CLUSTER};
pub use notify::{NotifyConfig, NotifyKind};
pub use paths::{config_dir, data_dir, home, state_dir};
pub use sandbox::{announce_sandbox, running_sandbox, sandbox_state_file, withdraw_sandbox};
pub use target::Target;

use crate::redact;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The config file. Its TOML shape (`[defaults]`, `[audit]`,
/// `[KIND.NAME]` for each kind, `[notify.NAME]`, nothing else) is read
/// by `de.rs`.
#[derive(Debug, Default, Clone)]
pub struct Config {
    pub defaults: Defaults,
    pub audit: AuditConfig,
    /// `[KIND.NAME]` sections; a kind without any has no entry.
    targets: BTreeMap<Kind, BTreeMap<String, TargetConfig>>,
    /// `--notify NAME` destinations.
    pub notify: BTreeMap<String, NotifyConfig>,
    /// `[limits]` and `[[freeze]]`: change control (src/policy).
    pub policy: crate::policy::Policy,
    pub path: Option<PathBuf>,
}

#[derive(Debug, Default, Clone)]
pub struct Defaults {
    /// `KIND = "NAME"`: the target a script gets when it names none.
    targets: BTreeMap<Kind, String>,
    /// Kinds whose default this run chose (`--target`, `:target`, the
    /// sandbox) rather than the config file: these beat the environment.
    chosen: std::collections::BTreeSet<Kind>,
    /// Per-call timeout for primitives, e.g. "30s".
    pub timeout: Option<String>,
    pub max_operations: Option<u64>,
    /// Heap bytes a run may add ("512MiB", or a number of bytes; 0: none).
    pub max_memory: Option<u64>,
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
    /// Announced by a running `opsh sandbox`, not configured: a glob
    /// (`--each-target 'pg:*'`, `targets("pg")`) includes it only when it
    /// names it.
    #[serde(skip)]
    pub announced: bool,
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

/// A TOML parser's message, fit to show: serde quotes a value of the wrong
/// type (`invalid type: string "hunter2", expected a boolean`), which may
/// be a password typed on the wrong line, so quoted values are left out;
/// the line and column say where. Secrets of the file are masked.
fn shown_parse_error(message: &str, text: &str) -> String {
    let mut out = String::new();
    let mut rest = message;
    while let Some(i) = rest.find("string \"") {
        out.push_str(&rest[..i]);
        out.push_str("a string");
        let after = &rest[i + "string \"".len()..];
        rest = match after.find('"') {
            Some(end) => &after[end + 1..],
            None => "",
        };
    }
    out.push_str(rest);
    crate::redact::file_error(&out, text)
}

/// `FILE:LINE:COLUMN: message`, and the line itself in the hint, as a
/// compiler says it (toml gives a byte span).
fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let message = shown_parse_error(e.message().trim_end(), text);
    let Some(start) = e.span().map(|s| s.start.min(text.len())) else {
        return err(
            format!("invalid config {}: {message}", path.display()),
            Some("see docs/config.md for the format".into()),
        );
    };
    let before = text.get(..start).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let source = text[line_start..].lines().next().unwrap_or("").trim_end();
    // The line may hold a secret (a URL's password, `password = ...`).
    let key = source.split('=').next().unwrap_or("").trim();
    let source = if crate::redact::is_secret_key(key) {
        format!("{key} = ***")
    } else {
        crate::redact::redact(source)
    };
    err(
        format!(
            "invalid config {}:{line}:{column}: {message}",
            path.display()
        ),
        Some(format!(
            "line {line} reads `{source}`; see docs/config.md for the format"
        )),
    )
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
                let mut cfg: Config =
                    toml::from_str(&text).map_err(|e| toml_error(&path, &text, &e))?;
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
        static NONE: BTreeMap<String, TargetConfig> = BTreeMap::new();
        self.targets.get(&kind).unwrap_or(&NONE)
    }

    pub fn default_name(&self, kind: Kind) -> Option<&String> {
        self.defaults.targets.get(&kind)
    }

    pub fn set_default(&mut self, kind: Kind, name: &str) {
        self.defaults.targets.insert(kind, name.to_string());
        self.defaults.chosen.insert(kind);
    }

    /// Whether the default of `kind` was chosen for this run (a flag, the
    /// console) rather than read from the config file.
    pub fn default_chosen(&self, kind: Kind) -> bool {
        self.defaults.chosen.contains(&kind)
    }

    /// `--context`/`-n` and the console's `:context`/`:ns`: the kube
    /// default becomes `CONTEXT/NAMESPACE`, each part given replacing that
    /// part of the current default (or the kubeconfig's current context).
    pub fn narrow_kube(&mut self, context: Option<&str>, namespace: Option<&str>) {
        if context.is_none() && namespace.is_none() {
            return;
        }
        let current = self.default_name(Kind::Kube).cloned().unwrap_or_default();
        let (c, n) = current.split_once('/').unwrap_or((&current, ""));
        let c = match context {
            Some(c) => c.to_string(),
            // Named, so the prompt and messages say which context.
            None if c.is_empty() => kube_current_context(None).unwrap_or_default(),
            None => c.to_string(),
        };
        let n = namespace.unwrap_or(n);
        let spec = if n.is_empty() { c } else { format!("{c}/{n}") };
        self.set_default(Kind::Kube, &spec);
    }

    /// Adds (or replaces) a named target, as the sandbox does.
    pub fn add_target(&mut self, kind: Kind, name: &str, url: &str, protected: bool) {
        redact::register_url(url);
        self.targets.entry(kind).or_default().insert(
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

    /// The targets a fleet glob selects, sorted. An announced sandbox
    /// joins only when the pattern is its name: `pg:*` on a laptop with a
    /// sandbox running must not quietly add it to a production fleet.
    pub fn matching_targets(&self, kind: Kind, pattern: &str) -> Vec<String> {
        let names: Vec<String> = self
            .table(kind)
            .iter()
            .filter(|(name, t)| !t.announced || name.as_str() == pattern)
            .map(|(name, _)| name.clone())
            .collect();
        crate::fleet::matching(&names, pattern)
    }
}
