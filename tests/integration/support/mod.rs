//! What every integration test shares: the opsh command builder and its
//! isolated environment ([`opsh`]), the sandbox servers ([`services`]),
//! the Kubernetes test server ([`kube`]), independent probes of server
//! state ([`probes`]), polling with a deadline ([`eventually`]) and
//! certificates ([`certs`]).

pub mod certs;
mod eventually;
mod kube;
mod opsh;
mod probes;
pub mod recorder;
mod services;

pub use eventually::{eventually, poll, secs};
pub use kube::{kube, Kube};
pub use opsh::{outcome_records, repo_file, repo_path, signal, wait_output, Env, Lines, Opsh, Run};
pub use probes::{pg_exec, pg_scalar, redis_query};
pub use services::Service::{Monitoring, Pg, Redis};
pub use services::{sandbox, Sandbox};
