//! Tab completion. The text before the cursor is classified once into a
//! [`Spot`] (a bare word, a member after `x.`, a string argument of a call,
//! a meta command); then every [`Source`] adds what it knows for that spot.
//! The registry, the session's scope and the config are sources, and
//! live.rs adds the cluster's names from a cache: completion must never
//! wait on a network.

use super::context::{self, Spot};
use super::meta;
use super::state::Shared;
use crate::config::Kind;
use crate::registry;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    /// What the list shows.
    pub display: String,
    /// What replaces the word being completed.
    pub replacement: String,
}

impl Suggestion {
    fn same(s: impl Into<String>) -> Self {
        let s = s.into();
        Suggestion {
            display: s.clone(),
            replacement: s,
        }
    }
}

pub trait Source {
    /// Adds suggestions for `spot`; matching against the prefix is done by
    /// the caller, so a source may simply list what it knows.
    fn suggest(&self, spot: &Spot<'_>, shared: &Shared, out: &mut Vec<Suggestion>);
}

/// Module names, global primitives, and a module's functions after `pg.`
/// or after a variable holding a handle (`db.`).
pub struct Registry;

impl Source for Registry {
    fn suggest(&self, spot: &Spot<'_>, _: &Shared, out: &mut Vec<Suggestion>) {
        match spot {
            Spot::Word { .. } => {
                for m in registry::value_modules() {
                    out.push(Suggestion::same(m.name));
                }
                for p in registry::all().filter(|p| p.is_global()) {
                    out.push(Suggestion {
                        display: p.name.to_string(),
                        replacement: format!("{}(", p.name),
                    });
                }
            }
            Spot::Member {
                module: Some(m), ..
            } => {
                if let Some(decl) = registry::module(m) {
                    for p in decl.primitives {
                        out.push(Suggestion {
                            display: p.name.to_string(),
                            replacement: format!("{}(", p.name),
                        });
                    }
                }
            }
            _ => {}
        }
    }
}

/// Variables and constants defined in the session, and `_`.
pub struct Scope;

impl Source for Scope {
    fn suggest(&self, spot: &Spot<'_>, shared: &Shared, out: &mut Vec<Suggestion>) {
        if let Spot::Word { .. } = spot {
            for v in shared.vars() {
                out.push(Suggestion::same(v.name));
            }
        }
    }
}

/// Configured target names: in an argument declared to name a target
/// (`pg.connect("`, `pg.dump("`) and after `:target KIND`.
pub struct Targets;

impl Source for Targets {
    fn suggest(&self, spot: &Spot<'_>, shared: &Shared, out: &mut Vec<Suggestion>) {
        let kind = match spot {
            Spot::StringArg {
                module: Some(m),
                function,
                index,
                ..
            } => registry::find(m, function)
                .filter(|p| p.params.get(*index).is_some_and(|x| x.target))
                .and_then(|p| p.module.target),
            Spot::MetaArg {
                command: "target",
                index: 1,
                previous,
                ..
            } => previous.first().and_then(|k| Kind::parse(k)),
            _ => None,
        };
        let Some(kind) = kind else { return };
        for name in shared.target_names(kind) {
            let replacement = match spot {
                // Close the string and the call: the name is the whole argument.
                Spot::StringArg { .. } => format!("{name}\")"),
                _ => name.clone(),
            };
            out.push(Suggestion {
                display: name,
                replacement,
            });
        }
    }
}

/// `:help`, `:load` ... and their arguments.
pub struct Meta;

impl Source for Meta {
    fn suggest(&self, spot: &Spot<'_>, _: &Shared, out: &mut Vec<Suggestion>) {
        match spot {
            Spot::Meta { .. } => {
                for c in meta::COMMANDS {
                    out.push(Suggestion::same(format!(":{}", c.name)));
                }
            }
            Spot::MetaArg {
                command: "help",
                index: 0,
                ..
            } => {
                for m in registry::value_modules() {
                    out.push(Suggestion::same(m.name));
                }
                for p in registry::all() {
                    out.push(Suggestion::same(p.full_name()));
                }
                out.push(Suggestion::same("exit-codes"));
            }
            Spot::MetaArg {
                command: "dry-run",
                index: 0,
                ..
            } => {
                out.push(Suggestion::same("on"));
                out.push(Suggestion::same("off"));
            }
            Spot::MetaArg {
                command: "target",
                index: 0,
                ..
            } => {
                for k in Kind::ALL {
                    out.push(Suggestion::same(k.name()));
                }
            }
            _ => {}
        }
    }
}

pub fn default_sources() -> Vec<Box<dyn Source>> {
    vec![
        Box::new(Meta),
        Box::new(Scope),
        Box::new(Registry),
        Box::new(Targets),
    ]
}

/// The completions at `pos` in `text` (the whole entry so far): where the
/// replaced word starts, and the candidates, sorted, without duplicates.
pub fn complete(
    sources: &[Box<dyn Source>],
    shared: &Shared,
    text: &str,
    pos: usize,
) -> (usize, Vec<Suggestion>) {
    let Some((start, spot)) = context::spot(text, pos, shared) else {
        return (pos, Vec::new());
    };
    let prefix = spot.prefix();
    let mut all = Vec::new();
    for s in sources {
        s.suggest(&spot, shared, &mut all);
    }
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<Suggestion> = all
        .into_iter()
        .filter(|s| s.display.starts_with(prefix) && seen.insert(s.display.clone()))
        .collect();
    out.sort_by(|a, b| a.display.cmp(&b.display));
    (start, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repl::state::Var;

    fn names(text: &str, shared: &Shared) -> (usize, Vec<String>) {
        let (start, c) = complete(&default_sources(), shared, text, text.len());
        (start, c.into_iter().map(|s| s.display).collect())
    }

    #[test]
    fn module_members_and_handles() {
        let shared = Shared::default();
        shared.set_vars(vec![Var {
            name: "db".into(),
            module: Some("pg"),
        }]);
        let (start, pg) = names("pg.qu", &shared);
        assert_eq!(start, 3);
        assert!(pg.contains(&"query".to_string()), "{pg:?}");
        let (_, db) = names("let n = db.", &shared);
        assert!(db.contains(&"exec".to_string()) && db.contains(&"query".to_string()));
        let (_, words) = names("d", &shared);
        assert!(words.contains(&"db".to_string()));
        let (_, meta) = names(":he", &shared);
        assert_eq!(meta, vec![":help".to_string()]);
        let (_, dr) = names(":dry-run o", &shared);
        assert_eq!(dr, vec!["off".to_string(), "on".to_string()]);
    }
}
