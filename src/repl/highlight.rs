//! Colours for the line being typed: keywords, strings, numbers, comments,
//! module names, and mutating primitives in a warning colour so that
//! `pg.terminate(` stands out before Enter is pressed.

use super::state::Shared;
use crate::engine::lex::{self, Kind};
use crate::registry;
use nu_ansi_term::{Color, Style};

/// Paints `text[from..]`, having lexed all of `text` so that a line inside a
/// multi-line string or comment is coloured as such.
pub fn paint(text: &str, from: usize, shared: &Shared) -> String {
    let toks = lex::lex(text);
    let sig: Vec<usize> = toks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.significant())
        .map(|(i, _)| i)
        .collect();
    let mut out = String::with_capacity(text.len() * 2);
    for (i, t) in toks.iter().enumerate() {
        if t.end <= from {
            continue;
        }
        let start = t.start.max(from);
        let piece = &text[start..t.end];
        let style = match t.kind {
            Kind::Keyword => Some(Color::Purple.normal()),
            Kind::Str { .. } => Some(Color::Green.normal()),
            Kind::Number => Some(Color::Cyan.normal()),
            Kind::Comment { .. } => Some(Style::new().dimmed()),
            Kind::Ident => ident_style(text, &toks, &sig, i, shared),
            Kind::Punct | Kind::Space => None,
        };
        match style {
            Some(s) => out.push_str(&s.paint(piece).to_string()),
            None => out.push_str(piece),
        }
    }
    out
}

fn ident_style(
    text: &str,
    toks: &[lex::Token],
    sig: &[usize],
    i: usize,
    shared: &Shared,
) -> Option<Style> {
    let word = toks[i].text(text);
    let at = sig.iter().position(|&s| s == i)?;
    let prev = |k: usize| at.checked_sub(k).map(|j| toks[sig[j]].text(text));
    let next = sig.get(at + 1).map(|&j| toks[j].text(text));
    if prev(1) == Some(".") {
        let receiver = prev(2)?;
        let module = shared.module_of(receiver)?;
        let p = registry::find(module, word)?;
        return p.mutates().then(|| Color::Yellow.bold());
    }
    if next == Some("(") {
        return registry::find("", word)
            .filter(|p| p.mutates())
            .map(|_| Color::Yellow.bold());
    }
    if registry::value_modules().any(|m| m.name == word)
        && !shared.vars().iter().any(|v| v.name == word)
    {
        return Some(Color::Blue.bold());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_without_changing_the_text() {
        let s = Shared::default();
        let src = r#"let n = pg.exec("delete from t") + 1; // why"#;
        let painted = paint(src, 0, &s);
        let plain: String = strip(&painted);
        assert_eq!(plain, src);
        assert!(painted.contains(&Color::Yellow.bold().paint("exec").to_string()));
        assert!(painted.contains(&Color::Blue.bold().paint("pg").to_string()));
        assert!(!painted.contains(&Color::Yellow.bold().paint("query").to_string()));
        let from = src.find("+").unwrap();
        assert_eq!(strip(&paint(src, from, &s)), &src[from..]);
    }

    #[test]
    fn code_inside_an_interpolation_is_coloured_as_code() {
        let s = Shared::default();
        let src = "`gone: ${pg.exec(\"delete from t\")}`";
        let painted = paint(src, 0, &s);
        assert_eq!(strip(&painted), src);
        assert!(painted.contains(&Color::Yellow.bold().paint("exec").to_string()));
        assert!(painted.contains(&Color::Green.normal().paint("\"delete from t\"").to_string()));
    }

    fn strip(s: &str) -> String {
        let mut out = String::new();
        let mut esc = false;
        for c in s.chars() {
            match (esc, c) {
                (false, '\u{1b}') => esc = true,
                (true, 'm') => esc = false,
                (true, _) => {}
                (false, c) => out.push(c),
            }
        }
        out
    }
}
