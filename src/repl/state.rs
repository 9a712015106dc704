//! What the line editor's helper needs to know about the session, as a
//! snapshot the loop refreshes after each entry. The helper never touches
//! the engine or the network, so completion and hints stay instant.

use crate::config::Kind;
use crate::registry;
use std::collections::BTreeMap;
use std::sync::RwLock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Var {
    pub name: String,
    /// Set when the variable holds a module handle (`let db = pg.connect(..)`).
    pub module: Option<&'static str>,
}

#[derive(Default)]
pub struct Shared {
    vars: RwLock<Vec<Var>>,
    targets: RwLock<BTreeMap<Kind, Vec<String>>>,
    /// Lines of an unfinished entry, so the current line is read in context.
    pending: RwLock<String>,
    /// Colour for highlighting, hints and the prompt.
    pub color: bool,
}

impl Shared {
    pub fn new(color: bool) -> Shared {
        Shared {
            color,
            ..Default::default()
        }
    }

    pub fn vars(&self) -> Vec<Var> {
        self.vars.read().map(|v| v.clone()).unwrap_or_default()
    }

    pub fn set_vars(&self, vars: Vec<Var>) {
        if let Ok(mut v) = self.vars.write() {
            *v = vars;
        }
    }

    pub fn set_targets(&self, targets: BTreeMap<Kind, Vec<String>>) {
        if let Ok(mut t) = self.targets.write() {
            *t = targets;
        }
    }

    pub fn target_names(&self, kind: Kind) -> Vec<String> {
        self.targets
            .read()
            .ok()
            .and_then(|t| t.get(&kind).cloned())
            .unwrap_or_default()
    }

    pub fn pending(&self) -> String {
        self.pending.read().map(|p| p.clone()).unwrap_or_default()
    }

    pub fn set_pending(&self, text: &str) {
        if let Ok(mut p) = self.pending.write() {
            *p = text.to_string();
        }
    }

    /// The module an identifier stands for: a session variable holding a
    /// handle, else a module name (a variable of the same name wins, as in
    /// the engine).
    pub fn module_of(&self, ident: &str) -> Option<&'static str> {
        if let Some(v) = self.vars().into_iter().find(|v| v.name == ident) {
            return v.module;
        }
        registry::value_modules()
            .find(|m| m.name == ident)
            .map(|m| m.name)
    }
}
