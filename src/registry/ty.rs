//! The types a declaration speaks in: of a parameter, of an option key, of a
//! result field. Dispatch checks every argument against its declared type
//! before the primitive runs, so a wrong type or an unknown option key is
//! the same clear error in every module, and `help` prints the same names.

use crate::value::type_name;
use rhai::{Dynamic, Map};

#[derive(Debug, Clone, Copy)]
pub enum Ty {
    /// Anything (the value is the data, e.g. `json.stringify(x)`).
    Any,
    /// `()`: returns nothing.
    Unit,
    /// Does not return (`fail`, `exit`).
    Never,
    Str,
    Int,
    /// A number: an int is accepted where a float is declared.
    Float,
    Bool,
    /// "10m", "1h 30m", or seconds as a number.
    Duration,
    /// Bytes as an int, or a string like "10MB", "1.5GiB".
    Size,
    /// A function pointer or closure (`|x| ...`).
    Fn,
    /// A module handle (`pg`, `pg.connect("staging")`).
    Handle,
    /// An array of anything.
    Array,
    /// An array whose every element has this type.
    List(&'static Ty),
    /// A map whose keys are not known in advance (a Kubernetes object, an
    /// INFO section, a script's own data).
    Map,
    /// A map with these keys: for an argument, the only keys accepted (an
    /// options map); for a result, its documented fields.
    Record(&'static [Field]),
    /// An array of records with these fields: a table.
    Rows(&'static [Field]),
    /// A result map with these documented fields and possibly others that
    /// depend on the server (CLIENT LIST's fields across Redis versions).
    /// As an argument it accepts any map.
    Fields(&'static [Field]),
    /// Any one of these.
    OneOf(&'static [Ty]),
}

/// A string, or a list of strings: `"app"` or `["app", "web"]`.
pub const STRINGS: Ty = Ty::OneOf(&[Ty::Str, Ty::List(&Ty::Str)]);

/// One key of an options map or one field of a result.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub ty: Ty,
    /// What it means, when its name does not say (units, "() when ...").
    pub doc: &'static str,
    /// A table shows this column only with `-o wide` (as kubectl's).
    pub wide: bool,
}

/// A field or option key: `field("limit", Ty::Int)`.
pub const fn field(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        doc: "",
        wide: false,
    }
}

/// Option keys or fields from several lists, as one list: a filter shared
/// by several primitives plus each one's own keys. `N` is the total length;
/// a wrong `N` fails to compile.
pub const fn join<const N: usize>(parts: &[&[Field]]) -> [Field; N] {
    let mut out = [field("", Ty::Any); N];
    let mut n = 0;
    let mut i = 0;
    while i < parts.len() {
        let mut j = 0;
        while j < parts[i].len() {
            out[n] = parts[i][j];
            n += 1;
            j += 1;
        }
        i += 1;
    }
    assert!(n == N, "join: N is not the total length of the parts");
    out
}

impl Field {
    pub const fn doc(self, doc: &'static str) -> Field {
        Field { doc, ..self }
    }

    /// Shown in tables only with `-o wide`: detail that would crowd out the
    /// columns people scan (kubectl's default and wide columns).
    pub const fn wide(self) -> Field {
        Field { wide: true, ..self }
    }
}

impl Ty {
    /// The fields of a record, or of each row of a table.
    pub fn fields(&self) -> Option<&'static [Field]> {
        match self {
            Ty::Record(f) | Ty::Rows(f) | Ty::Fields(f) => Some(f),
            _ => None,
        }
    }

    /// The name scripts and `help` know this type by.
    pub fn name(&self) -> String {
        match self {
            Ty::Any => "any".into(),
            Ty::Unit => "()".into(),
            Ty::Never => "never".into(),
            Ty::Str => "string".into(),
            Ty::Int => "int".into(),
            Ty::Float => "float".into(),
            Ty::Bool => "bool".into(),
            Ty::Duration => "duration".into(),
            Ty::Size => "size".into(),
            Ty::Fn => "function".into(),
            Ty::Handle => "handle".into(),
            Ty::Array => "array".into(),
            Ty::List(t) => format!("array of {}", plural(t)),
            Ty::Map | Ty::Record(_) | Ty::Fields(_) => "map".into(),
            Ty::Rows(_) => "array of maps".into(),
            Ty::OneOf(ts) => ts.iter().map(Ty::name).collect::<Vec<_>>().join("|"),
        }
    }

    /// "a string", "an int": for "must be ..." messages.
    fn expected(&self) -> String {
        match self {
            Ty::Duration => "a duration (\"5m\" or seconds)".into(),
            Ty::Size => "a size (bytes, or a string like \"10MB\")".into(),
            Ty::Float => "a number".into(),
            Ty::Bool => "true or false".into(),
            Ty::Fn => "a function (|x| ...)".into(),
            Ty::Record(_) | Ty::Map | Ty::Fields(_) => "a map like #{key: value}".into(),
            Ty::Array | Ty::List(_) | Ty::Rows(_) => "an array".into(),
            Ty::OneOf(ts) => {
                // An int is a number: "a string or a number", not "... or
                // an int or a number".
                let has_float = ts.iter().any(|t| matches!(t, Ty::Float));
                let mut names: Vec<String> = ts
                    .iter()
                    .filter(|t| !(has_float && matches!(t, Ty::Int)))
                    .map(Ty::expected)
                    .collect();
                names.dedup();
                match names.split_last() {
                    Some((last, rest)) if !rest.is_empty() => {
                        format!("{} or {last}", rest.join(", "))
                    }
                    _ => names.concat(),
                }
            }
            other => {
                let n = other.name();
                let article = if n.starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                };
                format!("{article} {n}")
            }
        }
    }

    /// Checks a value against this type. `what` names it in the message
    /// ("argument `sql`", "option `limit`"). `()` passes: whether an absent
    /// value is allowed is the caller's business.
    pub fn check(&self, v: &Dynamic, what: &str) -> Result<(), TypeError> {
        if v.is_unit() {
            return Ok(());
        }
        let ok = match self {
            Ty::Any => true,
            Ty::Unit | Ty::Never => false,
            Ty::Str => v.is_string(),
            Ty::Int => v.is_int(),
            Ty::Float => v.is_int() || v.is_float(),
            Ty::Bool => v.is_bool(),
            Ty::Duration => {
                if v.is_string() || v.is_int() || v.is_float() {
                    return crate::value::parse_duration(v)
                        .map(|_| ())
                        .map_err(|e| TypeError::new(format!("{what}: {e}")));
                }
                false
            }
            Ty::Size => {
                if v.is_string() || v.is_int() {
                    return crate::value::parse_size(v)
                        .map(|_| ())
                        .map_err(|e| TypeError::new(format!("{what}: {e}")));
                }
                false
            }
            Ty::Fn => v.is::<rhai::FnPtr>(),
            Ty::Handle => v.is::<crate::engine::Handle>(),
            Ty::Array => v.is_array(),
            Ty::List(t) => {
                let Some(items) = v.read_lock::<rhai::Array>() else {
                    return Err(self.mismatch(v, what));
                };
                for (i, item) in items.iter().enumerate() {
                    if item.is_unit() {
                        return Err(TypeError::new(format!(
                            "{what}[{i}] must be {}, got ()",
                            t.expected()
                        )));
                    }
                    t.check(item, &format!("{what}[{i}]"))?;
                }
                true
            }
            Ty::Map | Ty::Fields(_) => v.is_map(),
            Ty::Record(fields) => {
                let Some(m) = v.read_lock::<Map>() else {
                    return Err(self.mismatch(v, what));
                };
                return check_record(fields, &m, what);
            }
            Ty::Rows(_) => v.is_array(),
            Ty::OneOf(ts) => {
                // The first alternative of the value's own shape decides, so
                // a map is checked against the record it was meant for and
                // its error names the bad key.
                let shaped = ts.iter().find(|t| t.same_shape(v));
                return match shaped {
                    Some(t) => t.check(v, what),
                    None => Err(self.mismatch(v, what)),
                };
            }
        };
        if ok {
            Ok(())
        } else {
            Err(self.mismatch(v, what))
        }
    }

    /// Whether a value of this type may hold map keys nobody declared (an
    /// INFO section, a Kubernetes object, a query's rows).
    pub fn is_open(&self) -> bool {
        match self {
            Ty::Any | Ty::Map | Ty::Fields(_) => true,
            Ty::List(t) => t.is_open(),
            Ty::Record(f) | Ty::Rows(f) => f.iter().any(|f| f.ty.is_open()),
            Ty::OneOf(ts) => ts.iter().any(Ty::is_open),
            _ => false,
        }
    }

    /// Gives a result every field its declaration lists, `()` where the
    /// primitive left one out (a failed row of `parallel`, a mutation's plan
    /// under `--dry-run`, a stub): reading a declared field never fails,
    /// while reading an undeclared one does (maps are strict, engine/mod.rs).
    pub fn complete(&self, v: &mut Dynamic) {
        match self {
            Ty::Record(f) | Ty::Fields(f) if !f.is_empty() => {
                if let Some(mut m) = v.write_lock::<Map>() {
                    complete_fields(&mut m, f);
                }
            }
            Ty::Rows(f) | Ty::List(Ty::Record(f) | Ty::Fields(f)) if !f.is_empty() => {
                if let Some(mut rows) = v.write_lock::<rhai::Array>() {
                    for r in rows.iter_mut() {
                        if let Some(mut m) = r.write_lock::<Map>() {
                            complete_fields(&mut m, f);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// A value of this type with every declared field present: what the
    /// examples test answers calls with, so an example that reads a field
    /// its primitive does not declare fails there.
    pub fn sample(&self) -> Dynamic {
        match self {
            Ty::Any | Ty::Unit | Ty::Never | Ty::Fn | Ty::Handle => Dynamic::UNIT,
            Ty::Str | Ty::Duration | Ty::Size => Dynamic::from(String::new()),
            Ty::Int => Dynamic::from_int(0),
            Ty::Float => Dynamic::from_float(0.0),
            Ty::Bool => Dynamic::FALSE,
            Ty::Array => Dynamic::from_array(Vec::new()),
            Ty::List(t) => Dynamic::from_array(vec![t.sample()]),
            Ty::Map => Dynamic::from_map(Map::new()),
            Ty::Record(fields) => Dynamic::from_map(
                fields
                    .iter()
                    .map(|f| (f.name.into(), f.ty.sample()))
                    .collect(),
            ),
            Ty::Fields(fields) => Ty::Record(fields).sample(),
            Ty::Rows(fields) => Dynamic::from_array(vec![Ty::Record(fields).sample()]),
            // The first alternative that is a value, not (), so field reads
            // are checked.
            Ty::OneOf(ts) => ts
                .iter()
                .find(|t| !matches!(t, Ty::Unit | Ty::Any))
                .or(ts.first())
                .map(Ty::sample)
                .unwrap_or(Dynamic::UNIT),
        }
    }

    fn same_shape(&self, v: &Dynamic) -> bool {
        match self {
            Ty::Any => true,
            Ty::Unit | Ty::Never => v.is_unit(),
            Ty::Str => v.is_string(),
            Ty::Int => v.is_int(),
            Ty::Float => v.is_int() || v.is_float(),
            Ty::Bool => v.is_bool(),
            Ty::Duration => v.is_string() || v.is_int() || v.is_float(),
            Ty::Size => v.is_string() || v.is_int(),
            Ty::Fn => v.is::<rhai::FnPtr>(),
            Ty::Handle => v.is::<crate::engine::Handle>(),
            Ty::Array | Ty::List(_) | Ty::Rows(_) => v.is_array(),
            Ty::Map | Ty::Record(_) | Ty::Fields(_) => v.is_map(),
            Ty::OneOf(ts) => ts.iter().any(|t| t.same_shape(v)),
        }
    }

    fn mismatch(&self, v: &Dynamic, what: &str) -> TypeError {
        TypeError::new(format!(
            "{what} must be {}, got {} ({})",
            self.expected(),
            type_name(v),
            crate::redact::redact(&short(v))
        ))
    }
}

fn plural(t: &Ty) -> String {
    match t {
        Ty::Record(_) | Ty::Map | Ty::Fields(_) => "maps".into(),
        Ty::Any => "values".into(),
        Ty::List(t) => format!("arrays of {}", plural(t)),
        Ty::Rows(_) => "arrays of maps".into(),
        other => format!("{}s", other.name()),
    }
}

fn short(v: &Dynamic) -> String {
    let s = if v.is_string() {
        format!("{:?}", v.to_string())
    } else {
        v.to_string()
    };
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

/// An options map: every key must be declared, every value of its type.
fn check_record(fields: &[Field], m: &Map, what: &str) -> Result<(), TypeError> {
    for (k, v) in m {
        let Some(f) = fields.iter().find(|f| f.name == k.as_str()) else {
            let names = fields.iter().map(|f| f.name);
            let hint = match crate::registry::suggest(k, names.clone()) {
                Some(s) => format!("did you mean `{s}`?"),
                None if fields.is_empty() => format!("{what} takes no options"),
                None => format!("known options: {}", names.collect::<Vec<_>>().join(", ")),
            };
            return Err(TypeError {
                message: format!("unknown option `{k}`"),
                hint: Some(hint),
            });
        };
        f.ty.check(v, &format!("option `{k}`"))?;
    }
    Ok(())
}

/// Why an argument does not fit its declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeError {
    pub message: String,
    pub hint: Option<String>,
}

fn complete_fields(m: &mut Map, fields: &[Field]) {
    for f in fields {
        match m.get_mut(f.name) {
            Some(v) => f.ty.complete(v),
            None => {
                m.insert(f.name.into(), Dynamic::UNIT);
            }
        }
    }
}

impl TypeError {
    fn new(message: String) -> TypeError {
        TypeError {
            message,
            hint: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTS: Ty = Ty::Record(&[
        field("current", Ty::Int),
        field("wait", Ty::Bool),
        field("timeout", Ty::Duration),
        field("names", STRINGS),
    ]);

    fn map(pairs: &[(&str, Dynamic)]) -> Dynamic {
        Dynamic::from_map(
            pairs
                .iter()
                .map(|(k, v)| ((*k).into(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn a_string_where_an_int_is_declared_names_the_option() {
        let e = OPTS
            .check(&map(&[("current", "3".into())]), "argument `opts`")
            .unwrap_err();
        assert_eq!(
            e.message,
            "option `current` must be an int, got string (\"3\")"
        );
    }

    #[test]
    fn an_unknown_key_is_refused_with_the_closest_name() {
        let e = OPTS
            .check(&map(&[("curent", Dynamic::from_int(3))]), "x")
            .unwrap_err();
        assert_eq!(e.message, "unknown option `curent`");
        assert_eq!(e.hint.as_deref(), Some("did you mean `current`?"));
    }

    #[test]
    fn durations_and_lists_are_checked_inside() {
        assert!(OPTS.check(&map(&[("timeout", "5m".into())]), "x").is_ok());
        let e = OPTS
            .check(&map(&[("timeout", "5 parsecs".into())]), "x")
            .unwrap_err();
        assert!(
            e.message.starts_with("option `timeout`: invalid duration"),
            "{e:?}"
        );
        let list = Dynamic::from_array(vec!["a".into(), Dynamic::from_int(1)]);
        let e = OPTS.check(&map(&[("names", list)]), "x").unwrap_err();
        assert_eq!(e.message, "option `names`[1] must be a string, got int (1)");
    }

    #[test]
    fn an_int_is_a_float_and_unit_is_absent() {
        assert!(Ty::Float.check(&Dynamic::from_int(2), "x").is_ok());
        assert!(Ty::Str.check(&Dynamic::UNIT, "x").is_ok());
        assert!(Ty::Int.check(&Dynamic::from_float(2.5), "x").is_err());
    }

    #[test]
    fn names_read_as_scripts_know_them() {
        assert_eq!(STRINGS.name(), "string|array of strings");
        assert_eq!(Ty::Rows(&[]).name(), "array of maps");
        assert_eq!(OPTS.name(), "map");
    }
}
