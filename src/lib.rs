//! opsh: a scriptable operations shell. The binary is a thin wrapper over
//! this library so that integration tests and the sandbox harness share it.

pub mod args;
pub mod audit;
pub mod cancel;
pub mod commands;
pub mod config;
pub mod context;
pub mod diagnostic;
pub mod dispatch;
pub mod engine;
pub mod error;
pub mod exit;
pub mod fleet;
#[doc(hidden)]
pub mod fuzz;
pub mod help;
pub mod lock;
pub mod logging;
pub mod modules;
pub mod netcause;
pub mod output;
pub mod pgbin;
pub mod plan;
pub mod policy;
pub mod proc;
pub mod progress;
pub mod record;
pub mod redact;
pub mod registry;
pub mod repl;
pub mod report;
mod run;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod schedule;
pub mod script_args;
pub mod session;
pub mod stdio;
pub mod table;
pub mod testing;
pub mod unattended;
pub mod value;

pub use run::run;
