//! Blast-radius limits: how much one call, one run or one fleet run may
//! touch. `[limits]` holds the global values; a sub-table named by a target
//! glob (`[limits."pg:prod*"]`) overrides them for the targets it matches.

use crate::config::Target;
use crate::dispatch::OpError;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The limits, each unset unless configured.
#[derive(Debug, Default, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Rows one pg.exec may affect; over it, the statement is rolled back.
    pub max_rows: Option<i64>,
    /// Keys one redis.del / del_matching may delete.
    pub max_keys: Option<i64>,
    /// Sessions one pg.terminate_idle / terminate / cancel may act on.
    pub max_sessions: Option<i64>,
    /// Pods one k8s.delete_pod / rollout_restart may replace, per call.
    pub max_pods: Option<i64>,
    /// The fewest replicas a k8s.scale may leave.
    pub min_available: Option<i64>,
    /// Mutations one run (one process; the console: one session) may make.
    pub max_mutations: Option<i64>,
    /// Targets one `--each-target` run may act on (unless --dry-run).
    pub max_targets: Option<i64>,
}

/// One limit, by its config name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    MaxRows,
    MaxKeys,
    MaxSessions,
    MaxPods,
    MinAvailable,
    MaxMutations,
    MaxTargets,
}

impl Limit {
    pub fn name(self) -> &'static str {
        match self {
            Limit::MaxRows => "max_rows",
            Limit::MaxKeys => "max_keys",
            Limit::MaxSessions => "max_sessions",
            Limit::MaxPods => "max_pods",
            Limit::MinAvailable => "min_available",
            Limit::MaxMutations => "max_mutations",
            Limit::MaxTargets => "max_targets",
        }
    }
}

impl Limits {
    pub fn get(&self, l: Limit) -> Option<i64> {
        match l {
            Limit::MaxRows => self.max_rows,
            Limit::MaxKeys => self.max_keys,
            Limit::MaxSessions => self.max_sessions,
            Limit::MaxPods => self.max_pods,
            Limit::MinAvailable => self.min_available,
            Limit::MaxMutations => self.max_mutations,
            Limit::MaxTargets => self.max_targets,
        }
    }
}

/// `[limits]` as written: global values and per-target-glob tables.
#[derive(Debug, Default, Clone)]
pub struct LimitsConfig {
    pub global: Limits,
    /// (glob over `kind:name`, its limits), in file order.
    pub scoped: Vec<(String, Limits)>,
}

impl<'de> Deserialize<'de> for LimitsConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw: BTreeMap<String, toml::Value> = BTreeMap::deserialize(d)?;
        let mut global = toml::Table::new();
        let mut scoped = Vec::new();
        for (k, v) in raw {
            if v.is_table() {
                let l = Limits::deserialize(v)
                    .map_err(|e| de::Error::custom(format!("[limits.\"{k}\"]: {e}")))?;
                scoped.push((k, l));
            } else {
                global.insert(k, v);
            }
        }
        let global = Limits::deserialize(toml::Value::Table(global))
            .map_err(|e| de::Error::custom(format!("[limits]: {e}")))?;
        for (name, l) in std::iter::once(("[limits]".to_string(), &global))
            .chain(scoped.iter().map(|(k, l)| (format!("[limits.\"{k}\"]"), l)))
        {
            for lim in ALL {
                if l.get(lim).is_some_and(|n| n < 0) {
                    return Err(de::Error::custom(format!(
                        "{name}: {} cannot be negative",
                        lim.name()
                    )));
                }
            }
        }
        Ok(LimitsConfig { global, scoped })
    }
}

const ALL: [Limit; 7] = [
    Limit::MaxRows,
    Limit::MaxKeys,
    Limit::MaxSessions,
    Limit::MaxPods,
    Limit::MinAvailable,
    Limit::MaxMutations,
    Limit::MaxTargets,
];

/// Where a limit's value came from, for the refusal to name it.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub value: i64,
    pub from: String,
}

impl LimitsConfig {
    /// The limit for targets named `identity` (`pg:prod`): the first scoped
    /// table that matches and sets it, else the global value.
    pub fn for_identity(&self, identity: &str, l: Limit) -> Option<Applied> {
        self.scoped
            .iter()
            .filter(|(glob, _)| super::target_matches(glob, identity))
            .find_map(|(glob, lim)| {
                lim.get(l).map(|value| Applied {
                    value,
                    from: format!("[limits.\"{glob}\"] {}", l.name()),
                })
            })
            .or_else(|| {
                self.global.get(l).map(|value| Applied {
                    value,
                    from: format!("[limits] {}", l.name()),
                })
            })
    }

    pub fn for_target(&self, t: Option<&Target>, l: Limit) -> Option<Applied> {
        match t {
            Some(t) => self.for_identity(&super::identity(t), l),
            None => self.global.get(l).map(|value| Applied {
                value,
                from: format!("[limits] {}", l.name()),
            }),
        }
    }
}

/// The refusal for a call over a limit: exit 3, nothing changed.
pub fn over(what: &str, a: &Applied, nothing: &str) -> OpError {
    OpError::refused(format!(
        "{what}, over the limit {} = {}; {nothing}",
        a.from, a.value
    ))
    .with_hint("narrow the change, or raise the limit in the config deliberately (see docs/change-control.md)")
}
