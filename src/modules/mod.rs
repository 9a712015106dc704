//! One file (or folder) per ops area. Each declares its primitives once, in
//! its `MODULE`; adding a module means adding it to `MODULES`.

pub mod alertmanager;
pub mod backup;
pub mod grafana;
pub mod http;
pub mod json;
pub mod k8s;
pub mod loki;
pub mod metrics;
pub mod notify;
pub mod pagerduty;
pub mod pg;
pub mod prom;
pub mod pushgateway;
pub mod redis;
pub mod run;
pub mod sqlite;
pub mod sys;
pub mod testing;
pub mod tls;
pub mod x509;

use crate::registry::ModuleDecl;

pub static MODULES: &[&ModuleDecl] = &[
    &sys::MODULE,
    &run::MODULE,
    &testing::MODULE,
    &sys::SYS,
    &tls::MODULE,
    &sqlite::MODULE,
    &json::MODULE,
    &http::MODULE,
    &pg::MODULE,
    &redis::MODULE,
    &prom::MODULE,
    &alertmanager::MODULE,
    &pushgateway::MODULE,
    &loki::MODULE,
    &metrics::MODULE,
    &k8s::MODULE,
    &notify::MODULE,
    &grafana::MODULE,
    &pagerduty::MODULE,
    &backup::MODULE,
];
