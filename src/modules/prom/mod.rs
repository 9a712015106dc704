//! Prometheus: PromQL queries as data, targets, alerts, rules, health.

pub mod client;
pub mod exposition;
pub(crate) mod query;
mod status;
pub(crate) mod time;

use crate::config::Kind;
use crate::registry::ModuleDecl;

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "prom",
    doc: "Prometheus: PromQL queries, targets, alerts, rules. Targets come from [prom.NAME] in the config or PROMETHEUS_URL.",
    target: Some(Kind::Prom),
    primitives: &[
        status::CONNECT,
        query::QUERY,
        query::VALUE,
        query::QUERY_RANGE,
        query::SERIES,
        query::LABELS,
        status::TARGETS,
        status::ALERTS,
        status::RULES,
        status::HEALTHY,
        status::READY,
    ],
};
