//! Live completion: the names a target has inside a string argument whose
//! declaration says what it names (`Param::names`): the cluster's
//! deployments after `k8s.scale("`, pods after `k8s.logs("`, namespaces
//! after `k8s.ns("`... Completion never waits on the network: a
//! Tab answers from a cache, and a stale or missing entry is fetched by a
//! background thread, which the signature hint already asks for as soon
//! as the call is typed, so the names are usually there by the first Tab.
//! The thread runs the same primitives a script would, through its own
//! engine on the session: targets, timeouts and redaction are those of any
//! call, and a failure (no kubeconfig, cluster down) only means no names.

use super::completion::{Source, Suggestion};
use super::context::{self, Spot};
use super::state::Shared;
use crate::registry;
use crate::session::Session;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long fetched names are shown without asking again.
const FRESH: Duration = Duration::from_secs(30);

/// The script listing what string argument `index` of `module.function`
/// names, from the primitive's declaration (`Param::names`).
fn query(module: &str, function: &str, index: usize) -> Option<&'static str> {
    registry::find(module, function)?.params.get(index)?.names
}

#[derive(Default)]
struct Entry {
    fetched: Option<Instant>,
    names: Vec<String>,
    in_flight: bool,
}

pub struct Live {
    cache: Arc<Mutex<HashMap<&'static str, Entry>>>,
    requests: Mutex<mpsc::Sender<&'static str>>,
}

impl Live {
    /// Starts the fetching thread; it builds its engine on first use.
    pub fn start(session: Arc<Session>) -> Live {
        let (tx, rx) = mpsc::channel::<&'static str>();
        let cache: Arc<Mutex<HashMap<&'static str, Entry>>> = Arc::default();
        let store = cache.clone();
        let _ = std::thread::Builder::new()
            .name("opsh-live-completion".into())
            .spawn(move || {
                let mut engine = None;
                for script in rx {
                    let engine = engine.get_or_insert_with(|| {
                        crate::engine::build(
                            session.clone(),
                            Arc::new(crate::engine::Sources::default()),
                            PathBuf::from("."),
                        )
                    });
                    let names: Vec<String> = engine
                        .eval::<rhai::Array>(script)
                        .map(|a| a.into_iter().map(|v| v.to_string()).collect())
                        .unwrap_or_default();
                    if let Ok(mut c) = store.lock() {
                        let e = c.entry(script).or_default();
                        e.names = names;
                        e.fetched = Some(Instant::now());
                        e.in_flight = false;
                    }
                }
            });
        Live {
            cache,
            requests: Mutex::new(tx),
        }
    }

    /// What `spot` can be completed with, if it is a live argument.
    fn script_for(spot: &Spot<'_>) -> Option<&'static str> {
        match spot {
            // Only calls on the module itself: a handle variable may point
            // at another context or namespace than the default target.
            Spot::StringArg {
                module: Some(m),
                receiver,
                function,
                index,
                ..
            } if receiver == m => query(m, function, *index),
            _ => None,
        }
    }

    /// The cached names for `script`, asking for a fetch when they are
    /// missing or stale.
    fn names(&self, script: &'static str) -> Vec<String> {
        let Ok(mut c) = self.cache.lock() else {
            return Vec::new();
        };
        let e = c.entry(script).or_default();
        let stale = e.fetched.is_none_or(|t| t.elapsed() > FRESH);
        if stale && !e.in_flight {
            e.in_flight = true;
            if let Ok(tx) = self.requests.lock() {
                let _ = tx.send(script);
            }
        }
        e.names.clone()
    }

    /// Called as the entry is typed (with the signature hint): starts the
    /// fetch the next Tab will want.
    pub fn prefetch(&self, text: &str, pos: usize, shared: &Shared) {
        if let Some((_, spot)) = context::spot(text, pos, shared) {
            if let Some(script) = Self::script_for(&spot) {
                self.names(script);
            }
        }
    }
}

impl Source for Live {
    fn suggest(&self, spot: &Spot<'_>, _: &Shared, out: &mut Vec<Suggestion>) {
        let Some(script) = Self::script_for(spot) else {
            return;
        };
        for name in self.names(script) {
            out.push(Suggestion {
                replacement: format!("{name}\""),
                display: name,
            });
        }
    }
}

impl Source for Arc<Live> {
    fn suggest(&self, spot: &Spot<'_>, shared: &Shared, out: &mut Vec<Suggestion>) {
        self.as_ref().suggest(spot, shared, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_name_arguments_of_the_module_itself_are_live() {
        let shared = Shared::default();
        let at = |text: &str| {
            context::spot(text, text.len(), &shared).and_then(|(_, s)| Live::script_for(&s))
        };
        assert_eq!(
            at("k8s.scale(\"ap"),
            Some("k8s.deployments().map(|d| d.name)")
        );
        assert_eq!(at("k8s.logs(\""), Some("k8s.pods().map(|p| p.name)"));
        assert!(at("k8s.ns(\"").is_some_and(|s| s.contains("namespaces")));
        // The second argument, another module, a handle, a chain: not live.
        assert_eq!(at("k8s.set_env(\"api\", \""), None);
        assert_eq!(at("pg.query(\""), None);
        assert_eq!(at("k8s.ns(\"web\").scale(\""), None);
    }
}
