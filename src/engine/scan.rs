//! A light scan of script text for what Rhai's parser cannot know: calls to
//! `module.function(..)` that the registry may not declare, with the number
//! of arguments they pass, and the modules a script imports. It reads the
//! tokens of lex.rs, so a string, a comment or a `${ .. }` is what the REPL
//! takes it for. Used by `opsh check`.

use super::lex::{self, Kind, Token};
use std::collections::HashMap;

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
}

pub fn scan(src: &str, modules: &[&str]) -> Scan {
    let toks = lex::significant(src);
    let at = positions(src, &toks);
    let mut names = Names::new(modules);
    let mut s = Scan::default();
    for (i, t) in toks.iter().enumerate() {
        names.step(src, &toks, i);
        let punct = |j: usize| toks.get(j).and_then(|t| t.punct(src));
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
    scopes: Vec<(usize, HashMap<&'s str, Option<&'m str>>)>,
    depth: usize,
    /// `fn` seen, its body's `{` not yet.
    in_signature: bool,
    /// Bindings that take effect where their statement ends (token index):
    /// in `let x = x.connect(..)` the right side reads the old `x`.
    pending: Vec<(usize, &'s str, Option<&'m str>)>,
}

impl<'s, 'm> Names<'s, 'm> {
    fn new(modules: &'s [&'m str]) -> Self {
        Names {
            modules,
            scopes: vec![(0, HashMap::new())],
            depth: 0,
            in_signature: false,
            pending: Vec::new(),
        }
    }

    fn module_of(&self, name: &str) -> Option<&'m str> {
        if let Some(binding) = self.scopes.last().and_then(|(_, vars)| vars.get(name)) {
            return *binding;
        }
        self.modules.iter().copied().find(|m| *m == name)
    }

    /// Takes in token `i`, before it is read.
    fn step(&mut self, src: &'s str, toks: &[Token], i: usize) {
        let mut k = 0;
        while k < self.pending.len() {
            if self.pending[k].0 <= i {
                let (_, name, module) = self.pending.swap_remove(k);
                if let Some((_, vars)) = self.scopes.last_mut() {
                    vars.insert(name, module);
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
                self.pending.push((end, name, module));
            }
            _ => {}
        }
    }
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
