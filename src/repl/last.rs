//! Rhai reserves `_` (it is not a valid variable name), so the REPL stores
//! the last result as `_last` and rewrites a lone `_` that is used as a
//! value. `_ =>` (a switch's default arm) is left alone.

use crate::engine::lex::{self, Kind};

pub const LAST: &str = "_last";

pub fn rewrite_last(src: &str) -> String {
    let toks = lex::significant(src);
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

    #[test]
    fn rewrites_lone_underscore_only() {
        assert_eq!(rewrite_last("_.len() + _x"), "_last.len() + _x");
        assert_eq!(rewrite_last("show(_)"), "show(_last)");
        assert_eq!(
            rewrite_last(r#"switch x { 1 => "a", _ => "b" }"#),
            r#"switch x { 1 => "a", _ => "b" }"#
        );
        assert_eq!(rewrite_last(r#""_" + _"#), r#""_" + _last"#);
        // `${ .. }` is code: the old tokenizer left this `_` alone, and Rhai
        // then refused it.
        assert_eq!(rewrite_last("`got ${_} (_)`"), "`got ${_last} (_)`");
    }
}
