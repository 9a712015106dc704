//! The kinds of target, one row each. Everything the rest of config knows
//! about a kind (its name in scripts and in the TOML, its environment
//! conventions, how a name resolves, how a target shows) is read from its
//! row, so a new kind is a new row here plus the module that uses it.

use super::{env, kube, target, Config, ConfigError, Target};

/// What is true of one kind of target.
pub struct KindInfo {
    /// In scripts' handles, `[NAME.TARGET]` sections, `[defaults] NAME`,
    /// `--each-target NAME:PATTERN` and the sandbox announcement.
    pub name: &'static str,
    /// Names the default target when the config names none; also what
    /// `opsh sandbox` tells other shells to export.
    pub env_var: &'static str,
    /// Another environment convention, tried after `env_var`.
    pub env_fallback: Option<env::Fallback>,
    /// Turns what a script named (a target, a URL, or nothing) into a
    /// target.
    pub resolve: fn(&Config, Kind, Option<&str>) -> Result<Target, ConfigError>,
    /// Whether a target shows its (redacted) url beside its name; a kube
    /// target's url is only how modules/k8s finds it again.
    pub shows_url: bool,
}

/// Declares `Kind` with one variant per row, `Kind::ALL` in row order,
/// and the rows in that same order, so `KINDS[kind as usize]` is the row
/// of `kind` by construction.
macro_rules! kinds {
    ($($variant:ident => $info:expr,)+) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Kind {
            $($variant,)+
        }

        impl Kind {
            pub const ALL: [Kind; [$(Kind::$variant),+].len()] = [$(Kind::$variant),+];
        }

        const KINDS: &[KindInfo] = &[$($info,)+];
    };
}

kinds! {
    Pg => KindInfo {
        name: "pg",
        env_var: "DATABASE_URL",
        env_fallback: Some(env::PG_VARIABLES),
        resolve: target::resolve_url,
        shows_url: true,
    },
    Redis => KindInfo {
        name: "redis",
        env_var: "REDIS_URL",
        env_fallback: None,
        resolve: target::resolve_url,
        shows_url: true,
    },
    Prom => KindInfo {
        name: "prom",
        env_var: "PROMETHEUS_URL",
        env_fallback: None,
        resolve: target::resolve_url,
        shows_url: true,
    },
    Kube => KindInfo {
        name: "kube",
        env_var: "KUBECONFIG",
        env_fallback: None,
        resolve: kube::resolve,
        shows_url: false,
    },
    Alertmanager => KindInfo {
        name: "alertmanager",
        env_var: "ALERTMANAGER_URL",
        env_fallback: None,
        resolve: target::resolve_url,
        shows_url: true,
    },
    Pushgateway => KindInfo {
        name: "pushgateway",
        env_var: "PUSHGATEWAY_URL",
        env_fallback: None,
        resolve: target::resolve_url,
        shows_url: true,
    },
    Loki => KindInfo {
        name: "loki",
        env_var: "LOKI_URL",
        env_fallback: None,
        resolve: target::resolve_url,
        shows_url: true,
    },
    Grafana => KindInfo {
        name: "grafana",
        env_var: "GRAFANA_URL",
        env_fallback: None,
        resolve: target::resolve_url,
        shows_url: true,
    },
    Pagerduty => KindInfo {
        name: "pagerduty",
        env_var: "PAGERDUTY_URL",
        env_fallback: None,
        resolve: target::resolve_url,
        shows_url: true,
    },
}

impl Kind {
    pub fn info(self) -> &'static KindInfo {
        &KINDS[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// The environment variable naming the default target of this kind.
    pub fn env_var(self) -> &'static str {
        self.info().env_var
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_variables_are_distinct() {
        let mut names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        let mut vars: Vec<&str> = Kind::ALL.iter().map(|k| k.env_var()).collect();
        names.sort_unstable();
        names.dedup();
        vars.sort_unstable();
        vars.dedup();
        assert_eq!((names.len(), vars.len()), (KINDS.len(), KINDS.len()));
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.name()), Some(k));
        }
        assert_eq!(Kind::parse("postgres"), None);
    }
}
