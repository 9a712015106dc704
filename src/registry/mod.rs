//! One declaration per primitive, beside its function (decl.rs says its
//! shape, ty.rs its types). The declarations drive Rhai registration
//! (engine), argument validation (dispatch), test-mode behaviour (testing),
//! help, REPL completion, the reference in docs/, `opsh check`, table column
//! order, and the test that runs every example. Nothing about a primitive is
//! kept anywhere else.

mod decl;
mod ty;

pub use decl::{opt, req, CallTimeout, Class, Effect, Param, PlanFn, Primitive, RunFn, SaysFn};
pub use ty::{field, join, Field, Ty, TypeError, STRINGS};

use crate::config::Kind;
use rhai::Dynamic;

/// A module: its name is how scripts reach it (`pg`; "" for global
/// functions), and every primitive it lists belongs to it.
pub struct ModuleDecl {
    pub name: &'static str,
    pub doc: &'static str,
    /// The kind of target the module's functions talk to, if any.
    pub target: Option<Kind>,
    pub primitives: &'static [Primitive],
}

impl ModuleDecl {
    /// This module's primitives, each with its module.
    pub fn prims(&'static self) -> impl Iterator<Item = Prim> {
        self.primitives
            .iter()
            .map(move |decl| Prim { module: self, decl })
    }
}

/// A primitive together with the module that lists it: what the rest of the
/// program holds. It reads as the declaration (`prim.name`, `prim.params`).
#[derive(Clone, Copy)]
pub struct Prim {
    pub module: &'static ModuleDecl,
    pub decl: &'static Primitive,
}

impl std::ops::Deref for Prim {
    type Target = Primitive;
    fn deref(&self) -> &Primitive {
        self.decl
    }
}

impl std::fmt::Debug for Prim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.full_name())
    }
}

impl Prim {
    pub fn is_global(&self) -> bool {
        self.module.name.is_empty()
    }

    /// `pg.query` or `sleep`.
    pub fn full_name(&self) -> String {
        if self.is_global() {
            self.name.to_string()
        } else {
            format!("{}.{}", self.module.name, self.name)
        }
    }

    pub fn signature(&self) -> String {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|p| {
                format!(
                    "{}{}: {}",
                    p.name,
                    if p.optional { "?" } else { "" },
                    p.ty.name()
                )
            })
            .collect();
        let returns = match self.returns {
            Ty::Handle => format!("{} handle", self.module.name),
            r => r.name(),
        };
        format!("{}({}) -> {returns}", self.full_name(), params.join(", "))
    }

    /// "2" or "1 to 3".
    pub fn arity_text(&self) -> String {
        if self.min_args() == self.params.len() {
            self.min_args().to_string()
        } else {
            format!("{} to {}", self.min_args(), self.params.len())
        }
    }

    /// Checks the arguments of one call against the declaration: a missing
    /// required argument, a wrong type, an unknown option key. The error
    /// names the parameter; the hint is the signature or the closest key.
    pub fn check_args(&self, args: &[Dynamic]) -> Result<(), TypeError> {
        for (i, p) in self.params.iter().enumerate() {
            let v = args.get(i).unwrap_or(&Dynamic::UNIT);
            // `()` is a value like any other where any value is declared
            // (`assert_eq(x, ())`, a stub answering `()`).
            if v.is_unit() && !p.optional && !matches!(p.ty, Ty::Any) {
                return Err(TypeError {
                    message: format!("argument `{}` is required", p.name),
                    hint: Some(format!("signature: {}", self.signature())),
                });
            }
            if let Err(mut e) = p.ty.check(v, &format!("argument `{}`", p.name)) {
                if e.hint.is_none() {
                    e.hint = Some(format!("signature: {}", self.signature()));
                }
                return Err(e);
            }
        }
        Ok(())
    }
}

pub fn modules() -> &'static [&'static ModuleDecl] {
    crate::modules::MODULES
}

pub fn module(name: &str) -> Option<&'static ModuleDecl> {
    modules().iter().copied().find(|m| m.name == name)
}

pub fn all() -> impl Iterator<Item = Prim> {
    modules().iter().flat_map(|m| m.prims())
}

/// Global functions come from several lists (sys, run, testing), all named
/// "": every list of the name is searched.
pub fn find(module: &str, name: &str) -> Option<Prim> {
    all().find(|p| p.module.name == module && p.name == name)
}

/// `pg.query` or `sleep`.
pub fn lookup(full: &str) -> Option<Prim> {
    match full.split_once('.') {
        Some((m, n)) => find(m, n),
        None => find("", full),
    }
}

/// Names of modules that scripts reach as values (`pg`, `redis`, ...).
pub fn value_modules() -> impl Iterator<Item = &'static ModuleDecl> {
    modules().iter().copied().filter(|m| !m.name.is_empty())
}

/// The column order of a table whose columns are all fields of one
/// declared table (Rhai maps are sorted by key, so a table would otherwise
/// show `age` first): a result's rows, or a table nested in a result
/// (`backup.verify(..).checks`). The first declaration that covers every
/// column wins.
pub fn column_order(columns: &[String]) -> Option<Vec<String>> {
    // Collected once per process: `show` asks on every table.
    static TABLES: std::sync::OnceLock<Vec<&'static [Field]>> = std::sync::OnceLock::new();
    let tables = TABLES.get_or_init(|| {
        let mut tables = Vec::new();
        for p in all() {
            declared_tables(&p.returns, &mut tables);
        }
        tables
    });
    tables
        .iter()
        .find(|fields| {
            columns
                .iter()
                .all(|c| fields.iter().any(|f| f.name == c.as_str()))
        })
        .map(|fields| {
            fields
                .iter()
                .filter(|f| columns.iter().any(|c| c.as_str() == f.name))
                .map(|f| f.name.to_string())
                .collect()
        })
}

/// The declared table whose fields cover every column, as `column_order`
/// finds it: its `wide` flags say which columns a default table leaves out.
pub fn declared_table(columns: &[String]) -> Option<&'static [Field]> {
    static TABLES: std::sync::OnceLock<Vec<&'static [Field]>> = std::sync::OnceLock::new();
    let tables = TABLES.get_or_init(|| {
        let mut tables = Vec::new();
        for p in all() {
            declared_tables(&p.returns, &mut tables);
        }
        tables
    });
    tables.iter().copied().find(|fields| {
        columns
            .iter()
            .all(|c| fields.iter().any(|f| f.name == c.as_str()))
    })
}

/// The key order of a result map: the declared record (or table row) that
/// names the most of these keys (at least half of them), its fields first
/// in declared order, then the keys it does not declare as they are.
/// Rhai maps are sorted by key, so `show(pg.stats())` would otherwise list
/// its fields alphabetically.
pub fn field_order(keys: &[String]) -> Option<Vec<String>> {
    static RECORDS: std::sync::OnceLock<Vec<&'static [Field]>> = std::sync::OnceLock::new();
    let records = RECORDS.get_or_init(|| {
        let mut out = Vec::new();
        for p in all() {
            declared_records(&p.returns, &mut out);
        }
        out
    });
    let known = |fields: &[Field]| {
        keys.iter()
            .filter(|k| fields.iter().any(|f| f.name == k.as_str()))
            .count()
    };
    let best = records
        .iter()
        .copied()
        .map(|f| (known(f), f))
        .filter(|(n, _)| *n > 0 && n * 2 >= keys.len())
        // Most keys named; of those, the tightest declaration.
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.len().cmp(&a.1.len())))?
        .1;
    let mut order: Vec<String> = best
        .iter()
        .filter(|f| keys.iter().any(|k| k.as_str() == f.name))
        .map(|f| f.name.to_string())
        .collect();
    order.extend(
        keys.iter()
            .filter(|k| !best.iter().any(|f| f.name == k.as_str()))
            .cloned(),
    );
    Some(order)
}

fn declared_records(t: &Ty, out: &mut Vec<&'static [Field]>) {
    match t {
        Ty::Rows(f) | Ty::Record(f) | Ty::Fields(f) => {
            out.push(f);
            f.iter().for_each(|f| declared_records(&f.ty, out));
        }
        Ty::OneOf(ts) => ts.iter().for_each(|t| declared_records(t, out)),
        Ty::List(t) => declared_records(t, out),
        _ => {}
    }
}

fn declared_tables(t: &Ty, out: &mut Vec<&'static [Field]>) {
    match t {
        Ty::Rows(f) => {
            out.push(f);
            f.iter().for_each(|f| declared_tables(&f.ty, out));
        }
        Ty::Record(f) | Ty::Fields(f) => f.iter().for_each(|f| declared_tables(&f.ty, out)),
        Ty::OneOf(ts) => ts.iter().for_each(|t| declared_tables(t, out)),
        Ty::List(&Ty::Fields(f)) => {
            out.push(f);
            f.iter().for_each(|f| declared_tables(&f.ty, out));
        }
        Ty::List(t) => declared_tables(t, out),
        _ => {}
    }
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

    #[test]
    fn declarations_agree_with_their_module() {
        for p in all() {
            let targets = p.params.iter().filter(|x| x.target).count();
            assert!(
                targets <= 1,
                "{}: more than one target parameter",
                p.full_name()
            );
            if targets == 1 {
                assert!(
                    p.module.target.is_some(),
                    "{}: a target parameter in a module without targets",
                    p.full_name()
                );
            }
            if matches!(p.class, Class::Handle { .. }) {
                assert!(
                    p.module.target.is_some() && !p.mutates(),
                    "{}: a handle must read, on a module with targets",
                    p.full_name()
                );
            }
            if p.mutates() {
                assert_eq!(
                    p.class,
                    Class::System,
                    "{}: a mutation must be stubbed or planned under test",
                    p.full_name()
                );
            }
            // An empty field list would say "no fields"; keys that are data
            // are `Ty::Map` (or `Ty::List(&Ty::Map)`), and must say so.
            fn empty(t: &Ty) -> bool {
                match t {
                    Ty::Record(f) | Ty::Rows(f) | Ty::Fields(f) => {
                        f.is_empty() || f.iter().any(|f| empty(&f.ty))
                    }
                    Ty::OneOf(ts) => ts.iter().any(empty),
                    Ty::List(t) => empty(t),
                    _ => false,
                }
            }
            assert!(
                !empty(&p.returns) && !p.params.iter().any(|x| empty(&x.ty)),
                "{}: a record or table declared with no fields",
                p.full_name()
            );
            for f in p.returns.fields().unwrap_or_default() {
                assert!(
                    !f.name.is_empty()
                        && f.name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{}: result field {:?} is not a property name",
                    p.full_name(),
                    f.name
                );
            }
        }
    }

    #[test]
    fn arguments_are_checked_against_the_declaration() {
        let p = lookup("pg.activity").expect("declared");
        let bad = Dynamic::from_map(
            [("older_thn".into(), Dynamic::from("1m"))]
                .into_iter()
                .collect(),
        );
        let e = p.check_args(&[bad]).unwrap_err();
        assert_eq!(e.message, "unknown option `older_thn`");
        assert_eq!(e.hint.as_deref(), Some("did you mean `older_than`?"));
        // Globals from every list named "", not only the first.
        assert!(lookup("stub").is_some() && lookup("targets").is_some());
        let q = lookup("pg.query").expect("declared");
        let e = q.check_args(&[Dynamic::UNIT]).unwrap_err();
        assert_eq!(e.message, "argument `sql` is required");
    }
}
