//! The shape of a declaration. Everything true of a primitive is said once,
//! beside its function, with a const builder:
//!
//! ```ignore
//! pub const CONNECTIONS: Primitive = Primitive::read("connections", connections)
//!     .returns(Ty::Record(&[field("total", Ty::Int), ...]))
//!     .doc("Client connections at a glance ...")
//!     .example("let c = pg.connections(); ...");
//! ```
//!
//! The module is not part of it: a primitive belongs to the module whose
//! list names it (see `ModuleDecl`), so it cannot disagree with that list.

use super::ty::Ty;
use crate::dispatch::{Call, OpError, Plan};
use rhai::Dynamic;

#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub ty: Ty,
    pub optional: bool,
    /// This argument names the target the call acts on (`pg.dump(target,
    /// path)`): confirmation and audit see that target, not the module's
    /// default.
    pub target: bool,
    /// For an argument that names something on the target (a deployment,
    /// a namespace): a script listing those names, which the REPL runs in
    /// the background to complete the argument.
    pub names: Option<&'static str>,
}

pub const fn req(name: &'static str, ty: Ty) -> Param {
    Param {
        name,
        ty,
        optional: false,
        target: false,
        names: None,
    }
}

pub const fn opt(name: &'static str, ty: Ty) -> Param {
    Param {
        optional: true,
        ..req(name, ty)
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

    /// Declares that this argument names the call's target.
    pub const fn target(self) -> Param {
        Param {
            target: true,
            ..self
        }
    }
}

pub type RunFn = fn(&mut Call) -> Result<Dynamic, OpError>;
pub type PlanFn = fn(&mut Call) -> Result<Plan, OpError>;
/// How a mutation's outcome reads, in the past tense, from its call and
/// result ("scaled deployment api 3 -> 5"); dispatch adds where it
/// happened. `dispatch::said` reads the result.
pub type SaysFn = fn(&Call, &Dynamic) -> String;

/// Whether a primitive changes the world. A mutation must say what it would
/// do (`plan`, used by --dry-run) separately from doing it (`apply`), so a
/// dry run can never reach the code that changes things.
#[derive(Clone, Copy)]
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

/// How a primitive takes part in `opsh test` stubs, the call log and
/// `--record`/`--replay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Talks to a system. The default: under `opsh test` an unstubbed read
    /// fails and an unstubbed mutation is planned, not applied, so a new
    /// primitive can never reach a real server from a test by accident.
    System,
    /// Local and side-effect free (clock, env, parsing): stubbable and
    /// recorded, but runs for real when not stubbed.
    Local,
    /// Waits (`sleep`): stubbable and recorded; returns at once under test.
    Wait,
    /// Returns a handle (`pg.connect`): under test or replay the handle is
    /// made without connecting. `narrows`: the argument narrows the handle
    /// it is called on (`k8s.context("prod").ns("web")` is "prod/web")
    /// instead of naming a target of its own.
    Handle { narrows: bool },
    /// `show`: captured, not printed, under test.
    Show,
    /// Control flow and the testing primitives themselves: never stubbed,
    /// logged or recorded.
    Control,
}

pub struct Primitive {
    pub name: &'static str,
    pub params: &'static [Param],
    pub returns: Ty,
    /// First line: summary. The rest: a paragraph for `opsh help NAME`.
    pub doc: &'static str,
    pub example: &'static str,
    pub effect: Effect,
    pub class: Class,
    pub timeout: CallTimeout,
    /// A mutation's one line on stderr after it is applied; None: a
    /// generic line naming the primitive.
    pub says: Option<SaysFn>,
}

impl Primitive {
    /// A primitive that reads (or, for local ones, computes).
    pub const fn read(name: &'static str, run: RunFn) -> Primitive {
        Primitive {
            name,
            params: &[],
            returns: Ty::Unit,
            doc: "",
            example: "",
            effect: Effect::Read(run),
            class: Class::System,
            timeout: CallTimeout::Default,
            says: None,
        }
    }

    /// A mutation: `plan` says what `apply` would do, from real state.
    pub const fn mutate(name: &'static str, plan: PlanFn, apply: RunFn) -> Primitive {
        Primitive {
            effect: Effect::Mutate { plan, apply },
            ..Primitive::read(name, apply)
        }
    }

    /// A primitive that returns a handle on a target (`pg.connect`).
    pub const fn handle(name: &'static str, run: RunFn, narrows: bool) -> Primitive {
        Primitive {
            class: Class::Handle { narrows },
            returns: Ty::Handle,
            ..Primitive::read(name, run)
        }
    }

    pub const fn params(self, params: &'static [Param]) -> Primitive {
        Primitive { params, ..self }
    }

    pub const fn returns(self, returns: Ty) -> Primitive {
        Primitive { returns, ..self }
    }

    pub const fn doc(self, doc: &'static str) -> Primitive {
        Primitive { doc, ..self }
    }

    pub const fn example(self, example: &'static str) -> Primitive {
        Primitive { example, ..self }
    }

    /// How the applied mutation's outcome reads (see `SaysFn`).
    pub const fn says(self, says: SaysFn) -> Primitive {
        Primitive {
            says: Some(says),
            ..self
        }
    }

    pub const fn class(self, class: Class) -> Primitive {
        Primitive { class, ..self }
    }

    /// No per-call timeout: only the run timeout and cancellation end it
    /// (a dump, a wait for a rollout, `sleep`).
    pub const fn unbounded(self) -> Primitive {
        Primitive {
            timeout: CallTimeout::Unbounded,
            ..self
        }
    }

    pub fn mutates(&self) -> bool {
        matches!(self.effect, Effect::Mutate { .. })
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

    /// The parameter that names the call's target, if one does.
    pub fn target_param(&self) -> Option<usize> {
        self.params.iter().position(|p| p.target)
    }

    pub fn param(&self, name: &str) -> Option<(usize, &'static Param)> {
        self.params.iter().enumerate().find(|(_, p)| p.name == name)
    }
}
