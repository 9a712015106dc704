//! A light scan of script text for what Rhai's parser cannot know: calls to
//! `module.function(` that the registry does not declare, and the modules
//! a script imports. Strings and comments are skipped. Used by `opsh check`
//! (and by the REPL for highlighting and completion later).

/// A `module.function` reference found in source, 1-based line/column.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub module: String,
    pub name: String,
    pub line: usize,
    pub col: usize,
    /// How many arguments the call passes; None when the call is not closed.
    pub args: Option<usize>,
}

#[derive(Debug, Default)]
pub struct Scan {
    pub calls: Vec<Reference>,
    /// `import "path"` string literals, with their position.
    pub imports: Vec<(String, usize, usize)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Punct(char),
}

fn tokens(src: &str) -> Vec<(Tok, usize, usize)> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line, mut col) = (0usize, 1usize, 1usize);
    let advance = |i: &mut usize, line: &mut usize, col: &mut usize, c: char| {
        *i += 1;
        if c == '\n' {
            *line += 1;
            *col = 1;
        } else {
            *col += 1;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let (l0, c0) = (line, col);
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                {
                    let ch = chars[i];
                    advance(&mut i, &mut line, &mut col, ch);
                }
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    advance(&mut i, &mut line, &mut col, '/');
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    advance(&mut i, &mut line, &mut col, '*');
                    if depth == 0 {
                        advance(&mut i, &mut line, &mut col, '/');
                        break;
                    }
                }
                {
                    let ch = chars[i];
                    advance(&mut i, &mut line, &mut col, ch);
                }
            }
        } else if c == '"' || c == '`' || c == '\'' {
            let quote = c;
            let mut text = String::new();
            advance(&mut i, &mut line, &mut col, c);
            while i < chars.len() && chars[i] != quote {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    advance(&mut i, &mut line, &mut col, '\\');
                }
                text.push(chars[i]);
                {
                    let ch = chars[i];
                    advance(&mut i, &mut line, &mut col, ch);
                }
            }
            if i < chars.len() {
                advance(&mut i, &mut line, &mut col, quote);
            }
            out.push((Tok::Str(text), l0, c0));
        } else if c.is_alphabetic() || c == '_' {
            let mut id = String::new();
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                id.push(chars[i]);
                {
                    let ch = chars[i];
                    advance(&mut i, &mut line, &mut col, ch);
                }
            }
            out.push((Tok::Ident(id), l0, c0));
        } else {
            if !c.is_whitespace() {
                out.push((Tok::Punct(c), l0, c0));
            }
            advance(&mut i, &mut line, &mut col, c);
        }
    }
    out
}

/// The number of arguments of the call whose `(` is `toks[0]`: commas at
/// its own nesting level, closure parameter lists (`|a, b|`) skipped.
fn count_args(toks: &[(Tok, usize, usize)]) -> Option<usize> {
    let mut depth = 0usize;
    let mut commas = 0usize;
    let mut empty = true;
    // The previous significant token at depth 1, to tell a closure's `|`
    // (after `(` or `,`) from an or-operator.
    let mut after_sep = true;
    let mut i = 1;
    while i < toks.len() {
        let t = &toks[i].0;
        match t {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') if depth == 0 => {
                return Some(if empty { 0 } else { commas + 1 });
            }
            Tok::Punct(')' | ']' | '}') => depth -= 1,
            Tok::Punct(',') if depth == 0 => {
                commas += 1;
                after_sep = true;
                i += 1;
                continue;
            }
            Tok::Punct('|') if depth == 0 && after_sep => {
                // `||` lexes as two `|`: an empty parameter list.
                i += 1;
                while i < toks.len() && toks[i].0 != Tok::Punct('|') {
                    i += 1;
                }
            }
            _ => {}
        }
        empty = false;
        after_sep = false;
        i += 1;
    }
    None
}

pub fn scan(src: &str, modules: &[&str]) -> Scan {
    let toks = tokens(src);
    let mut s = Scan::default();
    for (i, w) in toks.windows(4).enumerate() {
        if let [(Tok::Ident(m), line, col), (Tok::Punct('.'), ..), (Tok::Ident(n), ..), (Tok::Punct('('), ..)] =
            w
        {
            // `x.pg.query(` is a field of x, not the module.
            let field = i > 0 && toks[i - 1].0 == Tok::Punct('.');
            if modules.contains(&m.as_str()) && !field {
                s.calls.push(Reference {
                    module: m.clone(),
                    name: n.clone(),
                    line: *line,
                    col: *col,
                    args: count_args(&toks[i + 3..]),
                });
            }
        }
    }
    for w in toks.windows(2) {
        if let [(Tok::Ident(kw), line, col), (Tok::Str(path), ..)] = w {
            if kw == "import" {
                s.imports.push((path.clone(), *line, *col));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
