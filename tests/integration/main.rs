//! Integration tests: the real binary against real servers that each test
//! starts for itself (opsh's own sandbox), in parallel, sharing nothing.

// Helpers outside #[test] functions panic on purpose, as assertions do
// (clippy.toml allows unwrap and expect inside the tests themselves).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod backup;
mod change_control;
mod changes;
mod cli;
mod drills;
mod errors;
mod http;
mod incident;
mod interrupt;
mod k8s;
mod k8s_fidelity;
mod k8s_incluster;
mod k8s_kubectl;
mod limits;
mod loki;
mod pg;
mod pg_admin;
mod pg_replication;
mod pg_tls;
mod prom;
mod redis;
mod repl;
mod results;
mod runbooks;
mod safety;
mod safety_modules;
mod sandbox;
mod script_args;
mod terminal;
mod unattended;
