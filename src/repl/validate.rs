//! Is an entry complete? Rhai's parser decides, not bracket counting: an
//! entry is unfinished when the parser ran out of input (an open block,
//! `k8s.scale("api",`, an open map) or a string is still open. Any other
//! parse error is a real one and is reported at once.

use super::last;
use crate::engine::lex::{self, Kind};
use rhai::{Engine, LexError, ParseErrorType};

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Complete,
    Incomplete,
    /// A syntax error that more input cannot fix; the loop renders it.
    Invalid,
}

pub struct Checker {
    engine: Engine,
}

impl Default for Checker {
    fn default() -> Self {
        // Syntax only: a raw engine parses exactly what the session's engine
        // does, because opsh adds functions but no custom syntax.
        Checker {
            engine: Engine::new_raw(),
        }
    }
}

impl Checker {
    pub fn check(&self, entry: &str) -> Verdict {
        let text = last::rewrite_last(entry);
        if text.trim().is_empty() || text.trim_start().starts_with(':') {
            return Verdict::Complete;
        }
        // Rhai accepts an unterminated block comment; a console should not.
        if lex::lex(&text)
            .last()
            .is_some_and(|t| t.kind == Kind::Comment { closed: false })
        {
            return Verdict::Incomplete;
        }
        let err = match self.engine.compile(&text) {
            Ok(_) => return Verdict::Complete,
            Err(e) => e,
        };
        if matches!(
            err.err_type(),
            ParseErrorType::UnexpectedEOF | ParseErrorType::BadInput(LexError::UnterminatedString)
        ) {
            return Verdict::Incomplete;
        }
        // "Expecting '}' to terminate this block" and the like are reported
        // at the end of the input when the input simply stopped.
        let pos = err.position();
        let (end_line, end_col) = end_of(&text);
        match (pos.line(), pos.position()) {
            (Some(l), Some(c)) if (l, c) >= (end_line, end_col) => Verdict::Incomplete,
            (None, _) => Verdict::Incomplete,
            _ => Verdict::Invalid,
        }
    }
}

/// Where the parser stands after the last non-blank character (1-based).
fn end_of(text: &str) -> (usize, usize) {
    let trimmed = text.trim_end();
    let line = trimmed.lines().count().max(1);
    let last = trimmed.rsplit('\n').next().unwrap_or("");
    (line, last.chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfinished_input_continues() {
        let c = Checker::default();
        for s in [
            "fn f(x) {",
            "k8s.scale(\"api\",",
            "let s = \"abc",
            "let m = #{a: 1,",
            "let x = 1 +",
            "let x = [1,\n 2,",
            "if x {\n  print(1);\n",
            "/* note",
            "let t = `multi\nline",
        ] {
            assert_eq!(c.check(s), Verdict::Incomplete, "{s:?}");
        }
    }

    #[test]
    fn complete_and_broken_input_are_told_apart() {
        let c = Checker::default();
        for s in [
            "1 + 2",
            "fn f(x) {\n  x * 2\n}",
            "let _x = _;",
            ":help pg",
            "",
        ] {
            assert_eq!(c.check(s), Verdict::Complete, "{s:?}");
        }
        for s in [
            "let = 5",
            "foo(1,2))",
            "let x = 1 2",
            "fn f() {\n let a = 1 +;\n",
        ] {
            assert_eq!(c.check(s), Verdict::Invalid, "{s:?}");
        }
    }
}
