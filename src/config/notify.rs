//! `--notify` destinations: `[notify.NAME]` entries or a webhook URL.

use super::{err, Config, ConfigError};
use crate::redact;
use serde::Deserialize;

/// `[notify.NAME]`: one of a Slack incoming webhook or a generic JSON
/// webhook, each given inline or (better: it is a secret) from the env.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    pub slack_webhook: Option<String>,
    pub slack_webhook_env: Option<String>,
    pub webhook_url: Option<String>,
    pub webhook_url_env: Option<String>,
    /// A PagerDuty Events API v2 integration: its routing key (a secret:
    /// better from the env) and, for tests and proxies, its endpoint.
    pub pagerduty_routing_key: Option<String>,
    pub pagerduty_routing_key_env: Option<String>,
    pub pagerduty_events_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyKind {
    Slack,
    Webhook,
    PagerDuty,
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
                NotifyConfig {
                    pagerduty_routing_key: Some(k),
                    ..
                } => (NotifyKind::PagerDuty, k.clone()),
                NotifyConfig {
                    pagerduty_routing_key_env: Some(v),
                    ..
                } => (NotifyKind::PagerDuty, from_env(v)?),
                _ => return Err(err(
                    format!("notify target {value:?} has no destination"),
                    Some(
                        "set one of slack_webhook_env, slack_webhook, webhook_url_env, webhook_url, pagerduty_routing_key_env, pagerduty_routing_key"
                            .into(),
                    ),
                )),
            };
        redact::register_secret(&url);
        Ok((kind, url))
    }

    /// The Events API endpoint of a `[notify.NAME]` PagerDuty entry, when
    /// it names one.
    pub fn pagerduty_events_url(&self, value: &str) -> Option<String> {
        self.notify.get(value)?.pagerduty_events_url.clone()
    }
}
