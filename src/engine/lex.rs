//! The one Rhai tokenizer in opsh. `opsh check` (scan.rs) reads calls and
//! imports from it; the REPL colours, completes, hints, validates and
//! rewrites `_` from it. One tokenizer means both agree on what is code, a
//! string or a comment. It is forgiving, for text being typed: byte spans,
//! never an error; an unfinished string or comment is a token with
//! `closed: false`. Rhai's own parser still decides what is valid.
//!
//! Where Rhai's tokenizer (rhai/src/tokenizer.rs) has a rule, this follows
//! it: back-tick strings are verbatim (`\` is a character there) and their
//! `${ .. }` is code; `#"..."#` is a raw string; a doubled quote inside a
//! string is a quote; a `"` string ends with its line unless the line ends
//! in `\`; block comments nest.

use crate::registry;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ident,
    Keyword,
    Number,
    /// `"..."`, `'c'`, `` `...` ``, `#"..."#`, or a piece of an interpolated
    /// back-tick string around its `${ .. }`; `closed` is false while it is
    /// being typed.
    Str {
        closed: bool,
    },
    Comment {
        closed: bool,
    },
    /// One character, or `${` opening an interpolation.
    Punct,
    Space,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
    /// What is between a string's delimiters (the whole token otherwise).
    /// Kept by the lexer because a piece after `}` has no opening quote and
    /// a piece before `${` no closing one, so the text alone cannot tell.
    body: (usize, usize),
}

impl Token {
    pub fn text<'a>(&self, src: &'a str) -> &'a str {
        &src[self.start..self.end]
    }

    /// A string's contents as written (escapes not processed), else the text.
    pub fn body<'a>(&self, src: &'a str) -> &'a str {
        &src[self.body.0..self.body.1]
    }

    /// Where [`Token::body`] starts.
    pub fn body_start(&self) -> usize {
        self.body.0
    }

    /// The text of punctuation, None for anything else: a string piece can
    /// read `(` too.
    pub fn punct<'a>(&self, src: &'a str) -> Option<&'a str> {
        (self.kind == Kind::Punct).then(|| self.text(src))
    }

    /// `(`, `[`, `{` or `${`: what a `)`, `]` or `}` closes.
    pub fn opens(&self, src: &str) -> bool {
        matches!(self.punct(src), Some("(" | "[" | "{" | "${"))
    }

    pub fn closes(&self, src: &str) -> bool {
        matches!(self.punct(src), Some(")" | "]" | "}"))
    }

    /// Not space and not a comment: what the meaning is made of.
    pub fn significant(&self) -> bool {
        !matches!(self.kind, Kind::Space | Kind::Comment { .. })
    }
}

pub const KEYWORDS: &[&str] = &[
    "let", "const", "fn", "private", "if", "else", "switch", "do", "while", "until", "loop", "for",
    "in", "break", "continue", "return", "throw", "try", "catch", "import", "export", "as", "true",
    "false", "this", "global", "Fn",
];

pub fn lex(src: &str) -> Vec<Token> {
    let mut lexer = Lexer {
        src,
        i: 0,
        out: Vec::new(),
        open: Vec::new(),
    };
    while lexer.i < src.len() {
        lexer.token();
    }
    lexer.out
}

/// The tokens that matter for meaning: no spaces, no comments.
pub fn significant(src: &str) -> Vec<Token> {
    lex(src).into_iter().filter(Token::significant).collect()
}

struct Lexer<'a> {
    src: &'a str,
    i: usize,
    out: Vec<Token>,
    /// One entry per `${` not closed yet: how many `{` are open inside it,
    /// so that the `}` that ends it is told from a block's or a map's.
    open: Vec<usize>,
}

impl Lexer<'_> {
    fn byte(&self, at: usize) -> Option<u8> {
        self.src.as_bytes().get(at).copied()
    }

    fn push(&mut self, kind: Kind, start: usize) {
        self.out.push(Token {
            kind,
            start,
            end: self.i,
            body: (start, self.i),
        });
    }

    fn push_str(&mut self, start: usize, body: (usize, usize), closed: bool) {
        self.out.push(Token {
            kind: Kind::Str { closed },
            start,
            end: self.i,
            body,
        });
    }

    fn token(&mut self) {
        let start = self.i;
        let rest = &self.src[start..];
        let c = rest.chars().next().unwrap_or(' ');
        if rest.starts_with("//") {
            self.i = rest.find('\n').map_or(self.src.len(), |n| start + n);
            self.push(Kind::Comment { closed: true }, start);
        } else if rest.starts_with("/*") {
            self.block_comment();
        } else if c == '"' || c == '\'' {
            self.quoted(c as u8);
        } else if c == '`' {
            self.i += 1;
            self.backtick(start);
        } else if let Some(hashes) = raw_string_hashes(rest) {
            self.raw(hashes);
        } else if c == '}' && self.open.last() == Some(&0) {
            // The end of a `${ .. }`: the string goes on.
            self.open.pop();
            self.i += 1;
            self.push(Kind::Punct, start);
            self.backtick(self.i);
        } else if c.is_ascii_digit() {
            self.number();
        } else if c.is_alphabetic() || c == '_' {
            self.i = start
                + rest
                    .find(|ch: char| !ch.is_alphanumeric() && ch != '_')
                    .unwrap_or(rest.len());
            let kind = if KEYWORDS.contains(&&self.src[start..self.i]) {
                Kind::Keyword
            } else {
                Kind::Ident
            };
            self.push(kind, start);
        } else if c.is_whitespace() {
            self.i = start
                + rest
                    .find(|ch: char| !ch.is_whitespace())
                    .unwrap_or(rest.len());
            self.push(Kind::Space, start);
        } else {
            if let Some(depth) = self.open.last_mut() {
                match c {
                    '{' => *depth += 1,
                    '}' => *depth = depth.saturating_sub(1),
                    _ => {}
                }
            }
            self.i += c.len_utf8();
            self.push(Kind::Punct, start);
        }
    }

    fn block_comment(&mut self) {
        let start = self.i;
        let mut depth = 0;
        let mut closed = false;
        while self.i < self.src.len() {
            let rest = &self.src[self.i..];
            if rest.starts_with("/*") {
                depth += 1;
                self.i += 2;
            } else if rest.starts_with("*/") {
                depth -= 1;
                self.i += 2;
                if depth == 0 {
                    closed = true;
                    break;
                }
            } else {
                self.i += rest.chars().next().map_or(1, char::len_utf8);
            }
        }
        self.push(Kind::Comment { closed }, start);
    }

    /// `"..."` or `'c'`: `\` escapes the next character (a line break too:
    /// a continued line); an unescaped line break ends it unclosed.
    fn quoted(&mut self, quote: u8) {
        let start = self.i;
        self.i += 1;
        loop {
            match self.byte(self.i) {
                None | Some(b'\n') => {
                    return self.push_str(start, (start + 1, self.i), false);
                }
                Some(b'\\') => {
                    let next = self.src[self.i + 1..].chars().next();
                    self.i += 1 + next.map_or(0, char::len_utf8);
                }
                Some(b) if b == quote && self.byte(self.i + 1) == Some(quote) => self.i += 2,
                Some(b) if b == quote => {
                    self.i += 1;
                    return self.push_str(start, (start + 1, self.i - 1), true);
                }
                Some(_) => self.i += 1,
            }
        }
    }

    /// A back-tick string from `self.i`, where its text starts (after the
    /// opening back-tick, or after the `}` of an interpolation): verbatim,
    /// multi-line, until a back-tick or a `${`.
    fn backtick(&mut self, start: usize) {
        let body_start = self.i;
        loop {
            match self.byte(self.i) {
                None => {
                    // Nothing typed yet after a `}` is no token.
                    if self.i > start {
                        self.push_str(start, (body_start, self.i), false);
                    }
                    return;
                }
                Some(b'`') if self.byte(self.i + 1) == Some(b'`') => self.i += 2,
                Some(b'`') => {
                    self.i += 1;
                    return self.push_str(start, (body_start, self.i - 1), true);
                }
                Some(b'\\') if self.src[self.i..].starts_with("\\${") => self.i += 3,
                Some(b'$') if self.byte(self.i + 1) == Some(b'{') => {
                    if self.i > start {
                        self.push_str(start, (body_start, self.i), true);
                    }
                    let open = self.i;
                    self.i += 2;
                    self.push(Kind::Punct, open);
                    self.open.push(0);
                    return;
                }
                Some(_) => self.i += 1,
            }
        }
    }

    /// `#"..."#` with `hashes` `#`s on each side; nothing is an escape.
    fn raw(&mut self, hashes: usize) {
        let start = self.i;
        let body_start = start + hashes + 1;
        let close = format!("\"{}", "#".repeat(hashes));
        match self.src[body_start..].find(&close) {
            Some(n) => {
                self.i = body_start + n + close.len();
                self.push_str(start, (body_start, body_start + n), true);
            }
            None => {
                self.i = self.src.len();
                self.push_str(start, (body_start, self.i), false);
            }
        }
    }

    /// Digits, `_`, `0x..`, `1.5`, `1e5`, `1.5e-3`; `1..3` is a range and
    /// `1.max(2)` a method call.
    fn number(&mut self) {
        let start = self.i;
        let bytes = self.src.as_bytes();
        while let Some(b) = self.byte(self.i) {
            let exponent_sign = (b == b'-' || b == b'+')
                && matches!(bytes[self.i - 1], b'e' | b'E')
                && !self.src[start..].starts_with("0x");
            let fraction = b == b'.' && self.byte(self.i + 1).is_some_and(|d| d.is_ascii_digit());
            if b.is_ascii_alphanumeric() || b == b'_' || fraction || exponent_sign {
                self.i += 1;
            } else {
                break;
            }
        }
        self.push(Kind::Number, start);
    }
}

/// `Some(n)` when `rest` starts a raw string `#..#"` with n `#`s.
fn raw_string_hashes(rest: &str) -> Option<usize> {
    let hashes = rest.len() - rest.trim_start_matches('#').len();
    (hashes > 0 && rest[hashes..].starts_with('"')).then_some(hashes)
}

/// Index of the opening bracket matching the `)`, `]` or `}` that `toks`
/// ends with (`${` opens too).
pub fn matching_open(src: &str, toks: &[Token]) -> Option<usize> {
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate().rev() {
        if t.closes(src) {
            depth += 1;
        } else if t.opens(src) {
            depth = depth.checked_sub(1)?;
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

/// The module of the expression that the significant tokens `toks` end
/// with, and the index where that expression starts: a name (`module_of`
/// says whether it is a module or a variable holding a handle), or a call
/// on one that returns a handle (`pg.connect(..)`, `k8s.ns(..)`). `x.pg` is
/// a field of x, not the module.
pub fn receiver<'m>(
    src: &str,
    toks: &[Token],
    module_of: &dyn Fn(&str) -> Option<&'m str>,
) -> Option<(&'m str, usize)> {
    let (last, head) = toks.split_last()?;
    match last.kind {
        Kind::Ident => {
            if head.last().and_then(|t| t.punct(src)) == Some(".") {
                return None;
            }
            module_of(last.text(src)).map(|m| (m, head.len()))
        }
        Kind::Punct if last.text(src) == ")" => {
            let open = matching_open(src, toks)?;
            let (name, head) = toks.get(..open)?.split_last()?;
            let (dot, head) = head.split_last()?;
            if name.kind != Kind::Ident || dot.punct(src) != Some(".") {
                return None;
            }
            let (module, start) = receiver(src, head, module_of)?;
            returns_handle(module, name.text(src)).then_some((module, start))
        }
        _ => None,
    }
}

/// Whether `module.name(..)` gives a handle of the same module, as its
/// declaration says.
fn returns_handle(module: &str, name: &str) -> bool {
    registry::find(module, name).is_some_and(|p| matches!(p.returns, registry::Ty::Handle))
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

    const OPEN: Kind = Kind::Str { closed: false };
    const STR: Kind = Kind::Str { closed: true };

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
                (STR, r#""a \" b""#),
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
                (OPEN, "\"sta")
            ]
        );
        assert_eq!(
            kinds("/* a /* b */"),
            vec![(Kind::Comment { closed: false }, "/* a /* b */")]
        );
        assert_eq!(kinds("1..3").len(), 4);
        assert_eq!(
            kinds("1e5 0x1e-5 1_000"),
            vec![
                (Kind::Number, "1e5"),
                (Kind::Number, "0x1e"),
                (Kind::Punct, "-"),
                (Kind::Number, "5"),
                (Kind::Number, "1_000"),
            ]
        );
    }

    /// Text being typed: every prefix of a script lexes, without a panic,
    /// into tokens that tile it.
    #[test]
    fn every_prefix_is_tiled() {
        let src = "let é = #{a: `x ${pg.q(\"a\\\"\", 'c', ##\"r\"#\"##)} `` \\${}`}; /* /* n */ */ 1.5e-3 // end\n\"\\é\"";
        for (n, _) in src.char_indices().chain([(src.len(), ' ')]) {
            let prefix = &src[..n];
            let mut at = 0;
            for t in lex(prefix) {
                assert_eq!(t.start, at, "{prefix:?}");
                assert!(t.end > t.start, "{prefix:?}");
                assert!(t.body.0 >= t.start && t.body.1 <= t.end, "{prefix:?}");
                at = t.end;
            }
            assert_eq!(at, prefix.len(), "{prefix:?}");
        }
    }

    // The cases below are where the two tokenizers opsh had (engine/scan.rs
    // and repl/lex.rs) both went wrong, each assert against Rhai's rule.

    #[test]
    fn backslash_in_a_backtick_string_is_a_character() {
        // Both old ones took \` for an escape and read the rest as string.
        assert_eq!(
            kinds(r"let p = `C:\tmp\`; pg.ping()")[3..6],
            [(STR, r"`C:\tmp\`"), (Kind::Punct, ";"), (Kind::Ident, "pg"),]
        );
    }

    #[test]
    fn interpolation_is_code() {
        let src = "`up ${pg.ping()} ms, ${#{a: `x`}.a}`";
        assert_eq!(
            kinds(src),
            vec![
                (STR, "`up "),
                (Kind::Punct, "${"),
                (Kind::Ident, "pg"),
                (Kind::Punct, "."),
                (Kind::Ident, "ping"),
                (Kind::Punct, "("),
                (Kind::Punct, ")"),
                (Kind::Punct, "}"),
                (STR, " ms, "),
                (Kind::Punct, "${"),
                (Kind::Punct, "#"),
                (Kind::Punct, "{"),
                (Kind::Ident, "a"),
                (Kind::Punct, ":"),
                (STR, "`x`"),
                (Kind::Punct, "}"),
                (Kind::Punct, "."),
                (Kind::Ident, "a"),
                (Kind::Punct, "}"),
                (STR, "`"),
            ]
        );
        let bodies: Vec<&str> = lex(src)
            .iter()
            .filter(|t| matches!(t.kind, Kind::Str { .. }))
            .map(|t| t.body(src))
            .collect();
        assert_eq!(bodies, vec!["up ", " ms, ", "x", ""]);
        // `\${` is a literal `${`, not an interpolation.
        assert_eq!(kinds(r"`a \${b}`"), vec![(STR, r"`a \${b}`")]);
        // Being typed: the piece after `}` is open, its body has no quote.
        let t = lex("`a ${b} c").pop().unwrap();
        assert_eq!((t.kind, t.body("`a ${b} c")), (OPEN, " c"));
    }

    #[test]
    fn raw_strings() {
        let src = r###"let p = #"C:\dir\"#; let q = ##"say "#hi"#"##; x"###;
        let strs: Vec<(Kind, &str)> = lex(src)
            .iter()
            .filter(|t| matches!(t.kind, Kind::Str { .. }))
            .map(|t| (t.kind, t.body(src)))
            .collect();
        assert_eq!(strs, vec![(STR, r"C:\dir\"), (STR, r##"say "#hi"#"##)]);
        assert_eq!(kinds(src).last(), Some(&(Kind::Ident, "x")));
        // `#{` is a map, `#` alone a character.
        assert_eq!(kinds("#{a: 1}")[0], (Kind::Punct, "#"));
    }

    #[test]
    fn doubled_quotes_and_line_ends() {
        assert_eq!(kinds(r#""a""b" x"#)[0], (STR, r#""a""b""#));
        assert_eq!(kinds("`a``b` x")[0], (STR, "`a``b`"));
        // An unescaped line break ends a "..." string (Rhai: unterminated),
        // so the next line is read as code again; `\` continues it.
        assert_eq!(
            kinds("\"abc\npg.ping()")[..2],
            [(OPEN, "\"abc"), (Kind::Ident, "pg")]
        );
        assert_eq!(kinds("\"abc\\\ndef\" x")[0], (STR, "\"abc\\\ndef\""));
        // A back-tick string is multi-line.
        assert_eq!(kinds("`a\nb` x")[0], (STR, "`a\nb`"));
        // An escape before a multi-byte character stays on char boundaries.
        assert_eq!(kinds("\"\\é\" x")[0], (STR, "\"\\é\""));
    }

    #[test]
    fn comment_markers_inside_strings_and_strings_inside_comments() {
        assert_eq!(
            kinds(r#"http.get("http://x/*") /* "*/ x"#),
            vec![
                (Kind::Ident, "http"),
                (Kind::Punct, "."),
                (Kind::Ident, "get"),
                (Kind::Punct, "("),
                (STR, r#""http://x/*""#),
                (Kind::Punct, ")"),
                (Kind::Comment { closed: true }, r#"/* "*/"#),
                (Kind::Ident, "x"),
            ]
        );
        assert_eq!(kinds("'\\''")[0], (STR, "'\\''"));
    }
}
