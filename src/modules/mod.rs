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

/// Starts, in the background, the connections to the default targets the
/// script calls (`pg.<name>`, `redis.<name>`), so a sequential script pays
/// the slowest connect rather than the sum, overlapped with building the
/// engine. Lazy: a prewarm that fails is forgotten, and the first call
/// connects again and reports its own error.
pub fn prewarm(session: &crate::session::Session, src: &str) {
    use crate::engine::lex::{significant, Kind};
    let toks = significant(src);
    let text = |i: usize| toks.get(i).map(|t| &src[t.start..t.end]);
    // `x.connect(..)` names its own target.
    let calls = |module: &str| {
        toks.iter().enumerate().any(|(i, t)| {
            t.kind == Kind::Ident
                && text(i) == Some(module)
                && text(i + 1) == Some(".")
                && toks.get(i + 2).is_some_and(|n| n.kind == Kind::Ident)
                && text(i + 2) != Some("connect")
        })
    };
    if calls("pg") {
        pg::conn::prewarm(session);
    }
    if calls("redis") {
        redis::prewarm(session);
    }
}

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
