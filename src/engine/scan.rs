//! A light scan of script text for what Rhai's parser cannot know: calls to
//! `module.function(..)` that the registry may not declare, with the number
//! of arguments they pass, and the modules a script imports. It reads the
//! tokens of lex.rs, so a string, a comment or a `${ .. }` is what the REPL
//! takes it for. Used by `opsh check`.

use super::lex::{self, Kind, Token};
use crate::registry::{self, Field, Ty};
use std::collections::{HashMap, HashSet};

/// A `module.function` reference found in source, 1-based line/column.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub module: String,
    pub name: String,
    pub line: usize,
    pub col: usize,
    /// How many arguments the call passes; None when the call is not closed.
    pub args: Option<usize>,
    /// The keys of `#{..}` literals passed as arguments: (argument index,
    /// key, line, column), so `check` can hold them to the declaration.
    pub keys: Vec<(usize, String, usize, usize)>,
}

#[derive(Debug, Default)]
pub struct Scan {
    pub calls: Vec<Reference>,
    /// `import "path"` string literals, with their position.
    pub imports: Vec<(String, usize, usize)>,
    /// Reads of fields that a primitive's declared result does not have.
    pub unknown_fields: Vec<FieldRead>,
}

/// `c.saturaton_pct` where `c` holds the result of a primitive whose
/// declaration lists its fields (a `Record`, or a row of `Rows`), and the
/// field is not one of them. Found through `let x = prim(..)`, `for x in
/// prim(..)` (or a variable holding one), `[i]` on a table, a declared
/// field holding a record or table, and a call read directly
/// (`pg.connections().x`). A mutation's result is not held to its
/// declaration: under `--dry-run` it is the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldRead {
    pub field: String,
    /// "the result of pg.connections()", "a row of pg.activity()".
    pub on: String,
    /// The declared fields.
    pub known: Vec<&'static str>,
    /// The variable read from, when it is one (for the hint).
    pub var: Option<String>,
    /// 1-based, of the field name (where Rhai points at run time too).
    pub line: usize,
    pub col: usize,
}

impl FieldRead {
    /// `no field saturaton_pct on the result of pg.connections(); did you
    /// mean saturation_pct?`
    pub fn message(&self) -> String {
        let mut m = format!("no field {} on {}", self.field, self.on);
        if let Some(s) = suggest_field(&self.field, self.known.iter().copied()) {
            m.push_str(&format!("; did you mean {s}?"));
        }
        m
    }

    pub fn hint(&self) -> String {
        format!("its fields: {}", self.known.join(", "))
    }
}

/// The closest field name: the registry's suggestion, else one a swap of
/// two letters or one letter away (`pdi` for `pid`, too short for the
/// registry's similarity to see).
pub fn suggest_field<'a>(
    wanted: &str,
    candidates: impl Iterator<Item = &'a str> + Clone,
) -> Option<&'a str> {
    registry::suggest(wanted, candidates.clone()).or_else(|| {
        candidates
            .filter(|c| strsim::osa_distance(c, wanted) == 1)
            .min_by_key(|c| c.len().abs_diff(wanted.len()))
    })
}

/// What a value is, as far as the text says: the result of a primitive
/// (`form` its declared type), or a row of one.
#[derive(Debug, Clone)]
struct Shape {
    /// The expression, as the message names it: `pg.activity()`,
    /// `pg.replication().slots`.
    expr: String,
    form: Form,
}

#[derive(Debug, Clone, Copy)]
enum Form {
    Value(&'static Ty),
    Row(&'static [Field]),
}

impl Shape {
    /// A mutation's result under `--dry-run` is its plan (other fields), so
    /// only reads' results are held to their declaration.
    fn result(p: registry::Prim) -> Option<Shape> {
        if matches!(p.effect, registry::Effect::Mutate { .. }) {
            return None;
        }
        Some(Shape {
            expr: format!("{}()", p.full_name()),
            form: Form::Value(&p.decl.returns),
        })
    }

    /// The declared fields a read is held to: a record's, or a row's.
    /// Fields that depend on the server (`Ty::Fields`) are not.
    fn fields(&self) -> Option<&'static [Field]> {
        match self.form {
            Form::Value(Ty::Record(f)) => Some(f),
            Form::Row(f) => Some(f),
            _ => None,
        }
    }

    fn describe(&self) -> String {
        match self.form {
            Form::Row(_) => format!("a row of {}", self.expr),
            Form::Value(_) => format!("the result of {}", self.expr),
        }
    }

    fn field(&self, name: &str) -> Option<Shape> {
        let f = self.fields()?.iter().find(|f| f.name == name)?;
        let expr = match self.form {
            Form::Row(_) => format!("{}[..].{name}", self.expr),
            Form::Value(_) => format!("{}.{name}", self.expr),
        };
        Some(Shape {
            expr,
            form: Form::Value(&f.ty),
        })
    }

    /// One element: a row of a table.
    fn element(&self) -> Option<Shape> {
        let row = match self.form {
            Form::Value(Ty::Rows(f)) => *f,
            Form::Value(Ty::List(Ty::Record(f))) => *f,
            _ => return None,
        };
        Some(Shape {
            expr: self.expr.clone(),
            form: Form::Row(row),
        })
    }
}

/// What a name holds, as far as the scan knows.
#[derive(Debug, Clone, Default)]
struct Binding<'m> {
    /// A handle of this module (`let db = pg.connect(..)`).
    module: Option<&'m str>,
    /// A primitive's result, or a row of one.
    shape: Option<Shape>,
}

pub fn scan(src: &str, modules: &[&str]) -> Scan {
    let toks = lex::significant(src);
    let at = positions(src, &toks);
    let mut names = Names::new(modules);
    names.unknown = uncertain_names(src, &toks);
    let mut s = Scan::default();
    for (i, t) in toks.iter().enumerate() {
        names.step(src, &toks, i);
        let punct = |j: usize| toks.get(j).and_then(|t| t.punct(src));
        // A property read (not a method call, not an assignment to it).
        let assigned = punct(i + 1) == Some("=") && !matches!(punct(i + 2), Some("=" | ">"));
        let is_read = t.kind == Kind::Ident
            && i >= 1
            && punct(i - 1) == Some(".")
            && punct(i + 1) != Some("(")
            && !assigned;
        if is_read {
            if let Some((shape, start)) = names.shape_of(src, &toks[..i - 1]) {
                let name = t.text(src);
                if let Some(fields) = shape.fields().filter(|f| !f.iter().any(|f| f.name == name)) {
                    let var = (start + 2 == i && toks[start].kind == Kind::Ident)
                        .then(|| toks[start].text(src).to_string());
                    s.unknown_fields.push(FieldRead {
                        field: name.to_string(),
                        on: shape.describe(),
                        known: fields.iter().map(|f| f.name).collect(),
                        var,
                        line: at[i].0,
                        col: at[i].1,
                    });
                }
            }
        }
        let is_call = t.kind == Kind::Ident
            && i >= 2
            && punct(i - 1) == Some(".")
            && punct(i + 1) == Some("(");
        if is_call {
            let head = &toks[..i - 1];
            if let Some((module, start)) = lex::receiver(src, head, &|n| names.module_of(n)) {
                // `pg.nope(` points at `pg`; `pg.connect(..).nope(` at `nope`.
                let (line, col) = if start + 1 == head.len() {
                    at[start]
                } else {
                    at[i]
                };
                let (args, keys) = arguments(src, &toks[i + 1..]);
                s.calls.push(Reference {
                    module: module.to_string(),
                    name: t.text(src).to_string(),
                    line,
                    col,
                    args,
                    keys: keys
                        .into_iter()
                        .map(|(arg, key, j)| {
                            let (l, c) = at[i + 1 + j];
                            (arg, key, l, c)
                        })
                        .collect(),
                });
            }
        }
        if t.kind == Kind::Keyword && t.text(src) == "import" {
            let path = toks
                .get(i + 1)
                .filter(|p| p.kind == (Kind::Str { closed: true }) && punct(i + 2) != Some("${"));
            if let Some(p) = path {
                s.imports.push((literal(src, p), at[i].0, at[i].1));
            }
        }
    }
    s
}

/// 1-based line and column (in characters) of each token's start.
fn positions(src: &str, toks: &[Token]) -> Vec<(usize, usize)> {
    let (mut line, mut col, mut from) = (1, 1, 0);
    let mut out = Vec::with_capacity(toks.len());
    for t in toks {
        for c in src[from..t.start].chars() {
            if c == '\n' {
                line += 1;
                col = 1;
            } else {
                col += 1;
            }
        }
        from = t.start;
        out.push((line, col));
    }
    out
}

/// What an identifier stands for at a point of the script, as the engine
/// decides it (engine/mod.rs, `on_var`): a variable of the script wins over
/// a module of the same name, and a variable set from a handle
/// (`let db = pg.connect(..)`) calls that module. A function sees only its
/// own variables. Blocks are not scopes here: a variable used after its
/// block ended is an error Rhai reports anyway.
struct Names<'s, 'm> {
    modules: &'s [&'m str],
    /// The top level, then each function body being read: its variables
    /// (with the module of the handle each holds), and the brace depth at
    /// which the body opened.
    scopes: Vec<(usize, HashMap<&'s str, Binding<'m>>)>,
    depth: usize,
    /// `fn` seen, its body's `{` not yet.
    in_signature: bool,
    /// Bindings that take effect where their statement ends (token index):
    /// in `let x = x.connect(..)` the right side reads the old `x`.
    pending: Vec<(usize, &'s str, Binding<'m>)>,
    /// Names whose value the scan cannot follow: closure parameters (a
    /// closure's `|c|` shadows an outer `c`) and the script's own functions
    /// (`fn info()` is not the global `info`).
    unknown: HashSet<&'s str>,
}

impl<'s, 'm> Names<'s, 'm> {
    fn new(modules: &'s [&'m str]) -> Self {
        Names {
            modules,
            scopes: vec![(0, HashMap::new())],
            depth: 0,
            in_signature: false,
            pending: Vec::new(),
            unknown: HashSet::new(),
        }
    }

    fn module_of(&self, name: &str) -> Option<&'m str> {
        if let Some(binding) = self.scopes.last().and_then(|(_, vars)| vars.get(name)) {
            return binding.module;
        }
        self.modules.iter().copied().find(|m| *m == name)
    }

    /// The shape of the expression `toks` ends with, and where that
    /// expression starts: a variable, a primitive call, a field of either,
    /// an element `[i]` of a table.
    fn shape_of(&self, src: &str, toks: &[Token]) -> Option<(Shape, usize)> {
        let (last, head) = toks.split_last()?;
        let punct = |t: Option<&Token>| t.and_then(|t| t.punct(src));
        match last.kind {
            Kind::Ident if punct(head.last()) == Some(".") => {
                let (base, start) = self.shape_of(src, &head[..head.len() - 1])?;
                Some((base.field(last.text(src))?, start))
            }
            Kind::Ident => {
                let name = last.text(src);
                if self.unknown.contains(name) {
                    return None;
                }
                let (_, vars) = self.scopes.last()?;
                Some((vars.get(name)?.shape.clone()?, head.len()))
            }
            Kind::Punct if last.text(src) == ")" => {
                let open = lex::matching_open(src, toks)?;
                let (name, before) = toks.get(..open)?.split_last()?;
                if name.kind != Kind::Ident {
                    return None;
                }
                if punct(before.last()) == Some(".") {
                    let recv = &before[..before.len() - 1];
                    let (module, start) = lex::receiver(src, recv, &|n| self.module_of(n))?;
                    let p = registry::find(module, name.text(src))?;
                    return Some((Shape::result(p)?, start));
                }
                if self.unknown.contains(name.text(src)) {
                    return None;
                }
                let p = registry::find("", name.text(src))?;
                Some((Shape::result(p)?, before.len()))
            }
            Kind::Punct if last.text(src) == "]" => {
                let open = lex::matching_open(src, toks)?;
                let (base, start) = self.shape_of(src, toks.get(..open)?)?;
                Some((base.element()?, start))
            }
            _ => None,
        }
    }

    /// Takes in token `i`, before it is read.
    fn step(&mut self, src: &'s str, toks: &[Token], i: usize) {
        let mut k = 0;
        while k < self.pending.len() {
            if self.pending[k].0 <= i {
                let (_, name, binding) = self.pending.swap_remove(k);
                if let Some((_, vars)) = self.scopes.last_mut() {
                    vars.insert(name, binding);
                }
            } else {
                k += 1;
            }
        }
        let t = &toks[i];
        let text = |j: usize| toks.get(j).map(|t| t.text(src));
        match (t.kind, t.text(src)) {
            (Kind::Keyword, "fn") => self.in_signature = true,
            (Kind::Punct, "{" | "${") => {
                self.depth += 1;
                if self.in_signature {
                    self.in_signature = false;
                    self.scopes.push((self.depth, HashMap::new()));
                }
            }
            (Kind::Punct, "}") => {
                if self.scopes.len() > 1 && self.scopes.last().map(|s| s.0) == Some(self.depth) {
                    self.scopes.pop();
                }
                self.depth = self.depth.saturating_sub(1);
            }
            // `let x = ..`, `const x = ..`, `x = ..` (not `x == ..`, `_ => ..`,
            // nor a property `a.x = ..`).
            (Kind::Ident, name)
                if text(i + 1) == Some("=")
                    && !matches!(text(i + 2), Some("=" | ">"))
                    && (i == 0 || text(i - 1) != Some(".")) =>
            {
                let from = i + 2;
                let end = statement_end(src, toks, from);
                let value = toks.get(from..end).unwrap_or_default();
                let module = lex::receiver(src, value, &|n| self.module_of(n))
                    .filter(|(_, start)| *start == 0)
                    .map(|(m, _)| m);
                let shape = self
                    .shape_of(src, value)
                    .filter(|(_, start)| *start == 0)
                    .map(|(s, _)| s);
                self.pending.push((end, name, Binding { module, shape }));
            }
            // `for x in EXPR {` and `for (x, i) in EXPR {`: x is an element
            // of EXPR from the loop's body on.
            (Kind::Keyword, "for") => {
                let mut j = i + 1;
                let mut vars = Vec::new();
                while let Some(t) = toks.get(j) {
                    match t.kind {
                        Kind::Ident => vars.push(t.text(src)),
                        Kind::Keyword if t.text(src) == "in" => break,
                        Kind::Punct if matches!(t.text(src), "(" | "," | ")") => {}
                        _ => return,
                    }
                    j += 1;
                }
                let from = j + 1;
                let mut depth = 0usize;
                let mut body = None;
                for (k, t) in toks.iter().enumerate().skip(from) {
                    if depth == 0 && t.punct(src) == Some("{") {
                        body = Some(k);
                        break;
                    }
                    if t.opens(src) {
                        depth += 1;
                    } else if t.closes(src) {
                        if depth == 0 {
                            return;
                        }
                        depth -= 1;
                    }
                }
                let Some(body) = body else { return };
                let row = self
                    .shape_of(src, toks.get(from..body).unwrap_or_default())
                    .filter(|(_, start)| *start == 0)
                    .and_then(|(s, _)| s.element());
                for (n, var) in vars.into_iter().enumerate() {
                    let shape = if n == 0 { row.clone() } else { None };
                    self.pending.push((
                        body,
                        var,
                        Binding {
                            module: None,
                            shape,
                        },
                    ));
                }
            }
            _ => {}
        }
    }
}

/// Closure parameters (`|a, b|` where a closure starts: after `(`, `,`,
/// `=`, `[`, `:` or `return`) and the names of the script's own functions.
fn uncertain_names<'s>(src: &'s str, toks: &[Token]) -> HashSet<&'s str> {
    let mut out = HashSet::new();
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        if t.kind == Kind::Keyword && t.text(src) == "fn" {
            if let Some(n) = toks.get(i + 1).filter(|n| n.kind == Kind::Ident) {
                out.insert(n.text(src));
            }
        }
        let starts_closure = t.punct(src) == Some("|")
            && (i == 0
                || matches!(toks[i - 1].punct(src), Some("(" | "," | "=" | "[" | ":"))
                || toks[i - 1].text(src) == "return");
        if starts_closure {
            i += 1;
            while let Some(p) = toks.get(i).filter(|p| p.punct(src) != Some("|")) {
                if p.kind == Kind::Ident {
                    out.insert(p.text(src));
                }
                i += 1;
            }
        }
        i += 1;
    }
    out
}

/// Where the expression starting at `from` ends: a `;` or the bracket that
/// closes what it stands in.
fn statement_end(src: &str, toks: &[Token], from: usize) -> usize {
    let mut depth = 0usize;
    for (j, t) in toks.iter().enumerate().skip(from) {
        if t.opens(src) {
            depth += 1;
        } else if t.closes(src) {
            if depth == 0 {
                return j;
            }
            depth -= 1;
        } else if depth == 0 && t.punct(src) == Some(";") {
            return j;
        }
    }
    toks.len()
}

/// The arguments of the call whose `(` is `toks[0]`: how many (commas at
/// its own nesting level, closure parameter lists `|a, b|` skipped; None
/// when the call is not closed), and the top-level keys of each `#{..}`
/// literal that starts an argument, as (argument index, key, token index).
fn arguments(src: &str, toks: &[Token]) -> (Option<usize>, Vec<(usize, String, usize)>) {
    let mut depth = 0usize;
    let mut commas = 0usize;
    let mut empty = true;
    let mut keys = Vec::new();
    // The previous significant token at depth 1, to tell a closure's `|`
    // (after `(` or `,`) from an or-operator, and a map literal that is a
    // whole argument from one inside an expression.
    let mut after_sep = true;
    let mut i = 1;
    while i < toks.len() {
        let t = &toks[i];
        if depth == 0 && after_sep && t.punct(src) == Some("#") {
            map_keys(src, toks, i + 1, commas, &mut keys);
        }
        if t.opens(src) {
            depth += 1;
        } else if t.closes(src) {
            if depth == 0 {
                return (Some(if empty { 0 } else { commas + 1 }), keys);
            }
            depth -= 1;
        } else if depth == 0 && t.punct(src) == Some(",") {
            commas += 1;
            after_sep = true;
            i += 1;
            continue;
        } else if depth == 0 && after_sep && t.punct(src) == Some("|") {
            // `||` lexes as two `|`: an empty parameter list.
            i += 1;
            while i < toks.len() && toks[i].punct(src) != Some("|") {
                i += 1;
            }
        }
        empty = false;
        after_sep = false;
        i += 1;
    }
    (None, keys)
}

/// The keys of the map literal whose `{` is `toks[open]`: an identifier or
/// a string right after `{` or `,` at the map's own level, followed by `:`.
fn map_keys(
    src: &str,
    toks: &[Token],
    open: usize,
    arg: usize,
    out: &mut Vec<(usize, String, usize)>,
) {
    let punct = |j: usize| toks.get(j).and_then(|t| t.punct(src));
    if punct(open) != Some("{") {
        return;
    }
    let mut depth = 0usize;
    for (j, u) in toks.iter().enumerate().skip(open) {
        if u.opens(src) {
            depth += 1;
        } else if u.closes(src) {
            depth -= 1;
            if depth == 0 {
                return;
            }
        } else if depth == 1
            && matches!(punct(j - 1), Some("{" | ","))
            && punct(j + 1) == Some(":")
            && matches!(u.kind, Kind::Ident | Kind::Str { closed: true })
        {
            let key = match u.kind {
                Kind::Ident => u.text(src).to_string(),
                _ => literal(src, u),
            };
            out.push((arg, key, j));
        }
    }
}

/// The value of a string literal, for an import path: in `"..."` a `\`
/// stands for the character after it; other kinds are verbatim.
fn literal(src: &str, t: &Token) -> String {
    let body = t.body(src);
    if !t.text(src).starts_with('"') {
        return body.to_string();
    }
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODULES: &[&str] = &["pg", "redis", "k8s", "backup"];

    fn calls(src: &str) -> Vec<(String, String, usize, usize)> {
        scan(src, MODULES)
            .calls
            .into_iter()
            .map(|r| (r.module, r.name, r.line, r.col))
            .collect()
    }

    fn names(src: &str) -> Vec<String> {
        scan(src, MODULES)
            .calls
            .into_iter()
            .map(|r| format!("{}.{}", r.module, r.name))
            .collect()
    }

    #[test]
    fn finds_calls_outside_strings_and_comments() {
        let src = "let a = pg.query(\"redis.info()\"); // pg.nope()\n/* redis.x() */ redis.info();\nimport \"checks\" as c;";
        let s = scan(src, &["pg", "redis"]);
        let names: Vec<_> = s
            .calls
            .iter()
            .map(|r| (r.module.as_str(), r.name.as_str(), r.line, r.col))
            .collect();
        assert_eq!(names, vec![("pg", "query", 1, 9), ("redis", "info", 2, 17)]);
        assert_eq!(s.imports, vec![("checks".to_string(), 3, 1)]);
    }

    #[test]
    fn counts_arguments_at_the_calls_own_level() {
        let args = |src: &str| scan(src, &["pg", "k8s"]).calls[0].args;
        assert_eq!(args("pg.ping()"), Some(0));
        assert_eq!(args("pg.query(\"select $1, $2\", [1, 2])"), Some(2));
        assert_eq!(args("pg.query(f(a, b), #{x: 1, y: [2, 3]})"), Some(2));
        assert_eq!(
            args("k8s.scale(\"api\", if a || b { 1 } else { 2 })"),
            Some(2)
        );
        assert_eq!(args("pg.x(|a, b| a + b, || 1, 3)"), Some(3));
        assert_eq!(args("pg.query(\"select 1\""), None);
        assert!(scan("let v = cfg.pg.query(1)", &["pg"]).calls.is_empty());
        assert_eq!(args("pg.x(\"http://a,b\", ')', 1e5)"), Some(3));
        assert_eq!(args("pg.x(a /* b, c) */, // d, e)\n f)"), Some(2));
        // A piece of an interpolated string can read `,` or `)`: it is text.
        assert_eq!(args("pg.x(`${a},${b})`, 2)"), Some(2));
        assert_eq!(args("pg.x(`${f(a, b)}`)"), Some(1));
    }

    // The old scanner took every back-tick or `#"` string for an escaped
    // "..." string: a call in `${ .. }`, or after a string with a `\`
    // before its closing quote, was not seen.

    #[test]
    fn finds_calls_inside_interpolation() {
        assert_eq!(
            calls("print(`took ${pg.qeury(\"x\").len()} rows`);"),
            vec![("pg".into(), "qeury".into(), 1, 15)]
        );
    }

    #[test]
    fn finds_calls_after_strings_ending_in_a_backslash() {
        assert_eq!(names("let p = `C:\\`; pg.qeury(1);"), vec!["pg.qeury"]);
        assert_eq!(names("let p = #\"C:\\\"#; pg.qeury(1);"), vec!["pg.qeury"]);
    }

    // The REPL knew that `db` after `let db = pg.connect(..)` calls pg;
    // `opsh check` did not see calls on handles at all.

    #[test]
    fn calls_on_handles_are_calls_of_their_module() {
        assert_eq!(
            calls("let db = pg.connect(\"staging\");\ndb.qeury(1);"),
            vec![
                ("pg".into(), "connect".into(), 1, 10),
                ("pg".into(), "qeury".into(), 2, 1)
            ]
        );
        assert_eq!(
            names(
                "redis.connect(\"c\").get(\"k\"); k8s.context(\"x\").ns(\"y\").scale(\"api\", 2)"
            ),
            vec![
                "redis.connect",
                "redis.get",
                "k8s.context",
                "k8s.ns",
                "k8s.scale"
            ]
        );
        // A chained call is pointed at by its name.
        assert_eq!(
            calls("redis.connect(\"c\").gte(1)")[1],
            ("redis".into(), "gte".into(), 1, 20)
        );
        // Not every call returns a handle.
        assert_eq!(names("pg.query(\"x\").len()"), vec!["pg.query"]);
    }

    #[test]
    fn a_variable_wins_over_a_module_and_functions_see_only_their_own() {
        // scripts/sqlite_integrity.rhai has a variable named like a module.
        assert!(names("let backup = arg(\"backup_path\", ()); backup.len()").is_empty());
        assert!(names("let db = pg.connect(\"a\"); db = 5; db.x()") == vec!["pg.connect"]);
        assert!(
            names("let db = pg.connect(\"a\"); if db == 1 { db.ping() }")
                .contains(&"pg.ping".to_string())
        );
        // The right side reads the variable as it was.
        assert_eq!(
            names("let db = pg.connect(\"a\"); let db = db.connect(\"b\"); db.ping()"),
            vec!["pg.connect", "pg.connect", "pg.ping"]
        );
        let src = "let pg = 1; let db = redis.connect(\"c\");\nfn f(db) { pg.ping(); db.get(\"k\") }\ndb.get(\"k\")";
        assert_eq!(
            calls(src),
            vec![
                ("redis".into(), "connect".into(), 1, 22),
                ("pg".into(), "ping".into(), 2, 12),
                ("redis".into(), "get".into(), 3, 1)
            ]
        );
    }

    #[test]
    fn keys_of_literal_option_maps_are_found_with_their_argument() {
        let s = scan(
            "pg.activity(#{older_thn: \"1m\", \"states\": [\"idle\"], pids: #{x: 1}});\nk8s.scale(\"api\", 3, #{curent: 3})",
            MODULES,
        );
        let keys: Vec<(usize, &str, usize, usize)> = s
            .calls
            .iter()
            .flat_map(|c| {
                c.keys
                    .iter()
                    .map(|(a, k, l, col)| (*a, k.as_str(), *l, *col))
            })
            .collect();
        assert_eq!(
            keys,
            vec![
                (0, "older_thn", 1, 15),
                (0, "states", 1, 32),
                (0, "pids", 1, 52),
                (2, "curent", 2, 23)
            ]
        );
        // A closure's `|a, b|` is not an argument separator.
        let s = scan("parallel.x([1], |a, b| a, #{concurency: 2})", &["parallel"]);
        assert_eq!(s.calls[0].args, Some(3));
        assert_eq!(s.calls[0].keys[0].0, 2);
    }

    fn unknown(src: &str) -> Vec<(String, String, usize, usize)> {
        scan(src, &["pg", "redis", "k8s", "backup"])
            .unknown_fields
            .into_iter()
            .map(|f| (f.message(), f.var.unwrap_or_default(), f.line, f.col))
            .collect()
    }

    #[test]
    fn reads_of_undeclared_result_fields_are_found() {
        assert_eq!(
            unknown("let c = pg.connections();\nif c.saturaton_pct > 90 { fail(\"x\") }"),
            vec![(
                "no field saturaton_pct on the result of pg.connections(); did you mean saturation_pct?".into(),
                "c".into(),
                2,
                6
            )]
        );
        // Directly on the call, through a handle, on a row, in a for-loop.
        assert_eq!(unknown("pg.connections().totl").len(), 1);
        assert_eq!(
            unknown("let db = pg.connect(\"a\"); let c = db.connections(); c.nope")[0].0,
            "no field nope on the result of pg.connections()"
        );
        let rows = unknown("let rows = pg.activity(); rows[0].pdi; for s in rows { s.stat }\nfor r in pg.activity() { print(r.querry) }");
        let msgs: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert!(
            msgs.iter().all(|m| m.contains("a row of pg.activity()")),
            "{msgs:?}"
        );
        // Declared fields, assignments, methods and open results are fine.
        assert!(unknown("let c = pg.connections(); c.total; c.extra = 1; c.keys(); let d = k8s.get(\"deploy\", \"a\"); d.spec").is_empty());
    }

    #[test]
    fn what_the_scan_cannot_follow_is_not_held_to_a_declaration() {
        // Rebound, shadowed by a closure parameter, inside a function, or
        // built from more than the call.
        assert!(unknown("let c = pg.connections(); c = #{x: 1}; c.x").is_empty());
        assert!(unknown("let c = pg.connections(); [#{x: 1}].map(|c| c.x)").is_empty());
        assert!(unknown("let c = pg.connections(); fn f(c) { c.x }").is_empty());
        assert!(unknown("let c = pg.connections() + #{x: 1}; c.x").is_empty());
        assert!(unknown("for (s, i) in pg.activity() { i.x }").is_empty());
    }

    #[test]
    fn imports_are_whole_literals() {
        let imports = |src: &str| scan(src, MODULES).imports;
        assert_eq!(
            imports("import `lib/a` as a;\nimport #\"b\"# as b;"),
            vec![("lib/a".to_string(), 1, 1), ("b".to_string(), 2, 1)]
        );
        assert!(imports("import `lib/${name}` as a;").is_empty());
    }
}
