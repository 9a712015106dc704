//! Integration tests: the real binary against real servers that each test
//! starts for itself (opsh's own sandbox), in parallel, sharing nothing.

// Helpers outside #[test] functions panic on purpose, as assertions do
// (clippy.toml allows unwrap and expect inside the tests themselves).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod backup;
mod cli;
mod errors;
mod http;
mod interrupt;
mod k8s;
mod k8s_incluster;
mod k8s_kubectl;
mod pg;
mod pg_admin;
mod pg_replication;
mod pg_tls;
mod prom;
mod redis;
mod repl;
mod runbooks;
mod safety;
mod safety_modules;
mod sandbox;
mod terminal;
mod unattended;
