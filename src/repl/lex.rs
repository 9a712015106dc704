//! A forgiving tokenizer for text being typed: byte spans, never an error.
//! Highlighting, completion, hints and the `_` rewrite all read the same
//! tokens, so they agree on what is a string or a comment. Rhai's own
//! parser still decides what is valid (validate.rs).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ident,
    Keyword,
    Number,
    /// `"..."`, `` `...` `` or `'c'`; `closed` is false while it is being typed.
    Str {
        closed: bool,
    },
    Comment {
        closed: bool,
    },
    Punct,
    Space,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

impl Token {
    pub fn text<'a>(&self, src: &'a str) -> &'a str {
        &src[self.start..self.end]
    }
}

pub const KEYWORDS: &[&str] = &[
    "let", "const", "fn", "private", "if", "else", "switch", "do", "while", "until", "loop", "for",
    "in", "break", "continue", "return", "throw", "try", "catch", "import", "export", "as", "true",
    "false", "this", "global", "Fn",
];

pub fn lex(src: &str) -> Vec<Token> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < src.len() {
        let start = i;
        let c = src[i..].chars().next().unwrap_or(' ');
        let kind = if src[i..].starts_with("//") {
            i = src[i..].find('\n').map_or(src.len(), |n| i + n);
            Kind::Comment { closed: true }
        } else if src[i..].starts_with("/*") {
            // Rhai block comments nest.
            let mut depth = 0;
            let mut closed = false;
            while i < src.len() {
                if src[i..].starts_with("/*") {
                    depth += 1;
                    i += 2;
                } else if src[i..].starts_with("*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        closed = true;
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            Kind::Comment { closed }
        } else if c == '"' || c == '`' || c == '\'' {
            i += 1;
            let mut closed = false;
            while i < src.len() {
                match bytes[i] {
                    b'\\' => i += 2,
                    b if b == c as u8 => {
                        i += 1;
                        closed = true;
                        break;
                    }
                    _ => i += 1,
                }
            }
            i = i.min(src.len());
            Kind::Str { closed }
        } else if c.is_ascii_digit() {
            while i < src.len() {
                let b = bytes[i];
                let exponent_sign = (b == b'-' || b == b'+')
                    && matches!(bytes[i - 1], b'e' | b'E')
                    && !src[start..].starts_with("0x");
                let fraction = b == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
                if b.is_ascii_alphanumeric() || b == b'_' || fraction || exponent_sign {
                    i += 1;
                } else {
                    break;
                }
            }
            Kind::Number
        } else if c.is_alphabetic() || c == '_' {
            while i < src.len() {
                let ch = src[i..].chars().next().unwrap_or(' ');
                if ch.is_alphanumeric() || ch == '_' {
                    i += ch.len_utf8();
                } else {
                    break;
                }
            }
            if KEYWORDS.contains(&&src[start..i]) {
                Kind::Keyword
            } else {
                Kind::Ident
            }
        } else if c.is_whitespace() {
            while i < src.len() {
                let ch = src[i..].chars().next().unwrap_or('x');
                if ch.is_whitespace() {
                    i += ch.len_utf8();
                } else {
                    break;
                }
            }
            Kind::Space
        } else {
            i += c.len_utf8();
            Kind::Punct
        };
        out.push(Token {
            kind,
            start,
            end: i,
        });
    }
    out
}

/// The tokens that matter for meaning: no spaces, no comments.
pub fn significant(src: &str) -> Vec<Token> {
    lex(src)
        .into_iter()
        .filter(|t| !matches!(t.kind, Kind::Space | Kind::Comment { .. }))
        .collect()
}

/// Rhai reserves `_` (it is not a valid variable name), so the REPL stores
/// the last result as `_last` and rewrites a lone `_` that is used as a
/// value. `_ =>` (a switch's default arm) is left alone.
pub const LAST: &str = "_last";

pub fn rewrite_last(src: &str) -> String {
    let toks = significant(src);
    let mut out = String::with_capacity(src.len());
    let mut copied = 0;
    for (i, t) in toks.iter().enumerate() {
        if t.kind != Kind::Ident || t.text(src) != "_" {
            continue;
        }
        let next = toks.get(i + 1).map(|n| n.text(src));
        let after = toks.get(i + 2).map(|n| n.text(src));
        if next == Some("=") && after == Some(">") {
            continue;
        }
        out.push_str(&src[copied..t.start]);
        out.push_str(LAST);
        copied = t.end;
    }
    out.push_str(&src[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<(Kind, &str)> {
        lex(src)
            .into_iter()
            .filter(|t| t.kind != Kind::Space)
            .map(|t| (t.kind, t.text(src)))
            .collect()
    }

    #[test]
    fn spans_cover_strings_comments_numbers() {
        assert_eq!(
            kinds(r#"let x = pg.query("a \" b", 1.5e-3) // hi"#),
            vec![
                (Kind::Keyword, "let"),
                (Kind::Ident, "x"),
                (Kind::Punct, "="),
                (Kind::Ident, "pg"),
                (Kind::Punct, "."),
                (Kind::Ident, "query"),
                (Kind::Punct, "("),
                (Kind::Str { closed: true }, r#""a \" b""#),
                (Kind::Punct, ","),
                (Kind::Number, "1.5e-3"),
                (Kind::Punct, ")"),
                (Kind::Comment { closed: true }, "// hi"),
            ]
        );
        assert_eq!(
            kinds("connect(\"sta"),
            vec![
                (Kind::Ident, "connect"),
                (Kind::Punct, "("),
                (Kind::Str { closed: false }, "\"sta")
            ]
        );
        assert_eq!(
            kinds("/* a /* b */"),
            vec![(Kind::Comment { closed: false }, "/* a /* b */")]
        );
        assert_eq!(kinds("1..3").len(), 4);
    }

    #[test]
    fn rewrites_lone_underscore_only() {
        assert_eq!(rewrite_last("_.len() + _x"), "_last.len() + _x");
        assert_eq!(rewrite_last("show(_)"), "show(_last)");
        assert_eq!(
            rewrite_last(r#"switch x { 1 => "a", _ => "b" }"#),
            r#"switch x { 1 => "a", _ => "b" }"#
        );
        assert_eq!(rewrite_last(r#""_" + _"#), r#""_" + _last"#);
    }
}
