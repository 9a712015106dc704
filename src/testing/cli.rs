//! `opsh test [PATH...]`: a fresh session per test file, in test mode.

use crate::audit::Audit;
use crate::cli::{audit_path, load_config, options, output, Global, TestArgs};
use crate::output::Format;
use crate::session::{Options, Session};
use std::sync::Arc;
use std::time::Instant;

pub fn main(g: &Global, a: &TestArgs) -> i32 {
    #[cfg(not(feature = "sandbox"))]
    if a.sandbox {
        return crate::cli::without_sandbox("`opsh test --sandbox`");
    }
    // Only the sandbox adds targets.
    #[cfg_attr(not(feature = "sandbox"), allow(unused_mut))]
    let mut cfg = match load_config(g) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let files = match super::discover(&a.paths) {
        Ok(f) if f.is_empty() => {
            eprintln!("error: no *_test.rhai files found");
            return crate::exit::ERROR;
        }
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return crate::exit::ERROR;
        }
    };
    // Held for the whole run: dropping it stops the servers.
    #[cfg(feature = "sandbox")]
    let _sandbox = if a.sandbox {
        // PostgreSQL, Redis and the Kubernetes API test server.
        match crate::sandbox::Sandbox::start(crate::sandbox::Services::default()) {
            Ok(sb) => {
                for (kind, url) in sb.targets() {
                    cfg.add_target(kind, "sandbox", &url, false);
                    cfg.set_default(kind, "sandbox");
                }
                Some(sb)
            }
            Err(e) => {
                eprintln!("error: cannot start the sandbox: {e}");
                return crate::exit::ERROR;
            }
        }
    } else {
        None
    };
    let started = Instant::now();
    let mut outcomes = Vec::new();
    for file in &files {
        let name = file.display().to_string();
        // Tests never stop at a confirmation prompt.
        let opts = Options {
            yes: true,
            ..options(g, &cfg, &name, rhai::Map::new())
        };
        let audit = Audit::new(audit_path(g, &cfg), &name);
        let session = match Session::new(opts, cfg.clone(), output(g), audit) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                eprintln!("error: cannot start the runtime: {e}");
                return crate::exit::ERROR;
            }
        };
        session.hooks.set_test_mode(true, a.sandbox);
        session.cancel.install_signal_handlers(&session.rt);
        outcomes.extend(super::run_file(file, session, a.filter.as_deref()));
    }
    let ms = (started.elapsed().as_secs_f64() * 1e3).round();
    let json = matches!(output(g).format, Format::Json);
    super::report(&outcomes, json, a.junit.as_deref(), ms)
}
