//! One declaration per primitive. The declaration drives Rhai registration
//! (engine), help and REPL completion (help), the generated reference in
//! docs/, and the test that compiles every example.

use crate::config::Kind;
use crate::dispatch::{Call, OpError, Plan};
use rhai::Dynamic;

#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub ty: &'static str,
    pub optional: bool,
    /// For an argument that names something on the target (a deployment,
    /// a namespace): a script listing those names, which the REPL runs in
    /// the background to complete the argument.
    pub names: Option<&'static str>,
}

pub const fn req(name: &'static str, ty: &'static str) -> Param {
    Param {
        name,
        ty,
        optional: false,
        names: None,
    }
}

pub const fn opt(name: &'static str, ty: &'static str) -> Param {
    Param {
        name,
        ty,
        optional: true,
        names: None,
    }
}

impl Param {
    /// Declares the script that lists what this argument names.
    pub const fn names(self, script: &'static str) -> Param {
        Param {
            names: Some(script),
            ..self
        }
    }
}

pub type RunFn = fn(&mut Call) -> Result<Dynamic, OpError>;
pub type PlanFn = fn(&mut Call) -> Result<Plan, OpError>;

/// Whether a primitive changes the world. A mutation must say what it would
/// do (`plan`, used by --dry-run) separately from doing it (`apply`), so a
/// dry run can never reach the code that changes things.
pub enum Effect {
    Read(RunFn),
    Mutate { plan: PlanFn, apply: RunFn },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallTimeout {
    /// The run's per-call timeout (`--call-timeout`, config `defaults.timeout`).
    Default,
    /// Only the run timeout and cancellation apply (e.g. `sleep`).
    Unbounded,
}

pub struct Primitive {
    /// Module the function is called on (`pg`), or "" for a global function.
    pub module: &'static str,
    pub name: &'static str,
    pub params: &'static [Param],
    pub returns: &'static str,
    /// First line: summary. The rest: a paragraph for `opsh help NAME`.
    pub doc: &'static str,
    pub example: &'static str,
    pub effect: Effect,
    pub timeout: CallTimeout,
}

impl Primitive {
    pub fn mutates(&self) -> bool {
        matches!(self.effect, Effect::Mutate { .. })
    }

    pub fn full_name(&self) -> String {
        if self.module.is_empty() {
            self.name.to_string()
        } else {
            format!("{}.{}", self.module, self.name)
        }
    }

    pub fn summary(&self) -> &'static str {
        self.doc.lines().next().unwrap_or("")
    }

    pub fn details(&self) -> String {
        self.doc
            .lines()
            .skip(1)
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("\n")
            .trim()
            .to_string()
    }

    pub fn min_args(&self) -> usize {
        self.params.iter().filter(|p| !p.optional).count()
    }

    pub fn signature(&self) -> String {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|p| format!("{}{}: {}", p.name, if p.optional { "?" } else { "" }, p.ty))
            .collect();
        format!(
            "{}({}) -> {}",
            self.full_name(),
            params.join(", "),
            self.returns
        )
    }
}

pub struct ModuleDecl {
    pub name: &'static str,
    pub doc: &'static str,
    /// The kind of target the module's functions talk to, if any.
    pub target: Option<Kind>,
    pub primitives: &'static [Primitive],
}

pub fn modules() -> &'static [&'static ModuleDecl] {
    crate::modules::MODULES
}

pub fn module(name: &str) -> Option<&'static ModuleDecl> {
    modules().iter().copied().find(|m| m.name == name)
}

pub fn all() -> impl Iterator<Item = &'static Primitive> {
    modules().iter().flat_map(|m| m.primitives.iter())
}

pub fn find(module: &str, name: &str) -> Option<&'static Primitive> {
    all().find(|p| p.module == module && p.name == name)
}

/// `pg.query` or `sleep`.
pub fn lookup(full: &str) -> Option<&'static Primitive> {
    match full.split_once('.') {
        Some((m, n)) => find(m, n),
        None => find("", full),
    }
}

/// Names of modules that scripts reach as values (`pg`, `redis`, ...).
pub fn value_modules() -> impl Iterator<Item = &'static ModuleDecl> {
    modules().iter().copied().filter(|m| !m.name.is_empty())
}

/// The closest known names, for "did you mean" hints.
pub fn suggest<'a>(wanted: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::jaro_winkler(c, wanted), c))
        .filter(|(s, _)| *s > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_documented() {
        let mut seen = std::collections::HashSet::new();
        for p in all() {
            assert!(
                seen.insert(p.full_name()),
                "{} declared twice",
                p.full_name()
            );
            assert!(!p.summary().is_empty(), "{} has no doc", p.full_name());
            assert!(!p.example.is_empty(), "{} has no example", p.full_name());
            let mut optional_seen = false;
            for param in p.params {
                assert!(
                    !optional_seen || param.optional,
                    "{}: required param after optional",
                    p.full_name()
                );
                optional_seen |= param.optional;
            }
        }
    }
}
