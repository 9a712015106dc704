//! What the cursor is in: a word, a member after `x.`, a string argument,
//! the call being typed, a meta command. Shared by completion and hints.

use super::state::Shared;
use crate::engine::lex::{self, Kind, Token};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spot<'a> {
    Word {
        prefix: &'a str,
    },
    /// After `receiver.`; `module` is set when the receiver is a module or a
    /// handle (`pg`, `db` after `let db = pg.connect(..)`).
    Member {
        receiver: &'a str,
        module: Option<&'static str>,
        prefix: &'a str,
    },
    /// Inside an open string that is argument `index` of a call.
    StringArg {
        module: Option<&'static str>,
        /// The identifier the call is made on (`k8s`, `db`), "" otherwise.
        receiver: &'a str,
        function: &'a str,
        index: usize,
        prefix: &'a str,
    },
    Meta {
        prefix: &'a str,
    },
    MetaArg {
        command: &'a str,
        index: usize,
        previous: Vec<&'a str>,
        prefix: &'a str,
    },
}

impl Spot<'_> {
    pub fn prefix(&self) -> &str {
        match self {
            Spot::Word { prefix }
            | Spot::Member { prefix, .. }
            | Spot::StringArg { prefix, .. }
            | Spot::Meta { prefix }
            | Spot::MetaArg { prefix, .. } => prefix,
        }
    }
}

/// A call being typed: `module` is "" for a global function, `None` when
/// the receiver is not known to be a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callee<'a> {
    pub module: Option<&'static str>,
    /// The identifier before the dot (`k8s` in `k8s.scale(`), "" for a
    /// global function or a receiver that is an expression.
    pub receiver: &'a str,
    pub name: &'a str,
    /// Which argument the cursor is in (0-based).
    pub index: usize,
}

/// Classifies the text before `pos`; returns where the completed word
/// starts, in bytes, and the spot.
pub fn spot<'a>(text: &'a str, pos: usize, shared: &Shared) -> Option<(usize, Spot<'a>)> {
    let before = text.get(..pos)?;
    let trimmed = before.trim_start();
    if trimmed.starts_with(':') {
        return Some(meta_spot(before));
    }
    let toks = lex::lex(before);
    let last = toks.last();
    match last {
        None => Some((pos, Spot::Word { prefix: "" })),
        Some(t) if t.kind == (Kind::Str { closed: false }) => {
            let sig = significant(&toks);
            let call = enclosing_call(before, &sig[..sig.len() - 1], shared)?;
            let start = t.body_start();
            Some((
                start,
                Spot::StringArg {
                    module: call.module,
                    receiver: call.receiver,
                    function: call.name,
                    index: call.index,
                    prefix: &before[start..],
                },
            ))
        }
        Some(t) if matches!(t.kind, Kind::Ident | Kind::Keyword) => {
            let sig = significant(&toks);
            let prefix = t.text(before);
            let rest = &sig[..sig.len() - 1];
            Some((t.start, member_or_word(before, rest, prefix, shared)))
        }
        Some(t) if t.kind == Kind::Punct && t.text(before) == "." => {
            let sig = significant(&toks);
            Some((pos, member_or_word(before, &sig, "", shared)))
        }
        Some(t) if matches!(t.kind, Kind::Space | Kind::Punct) => {
            Some((pos, Spot::Word { prefix: "" }))
        }
        _ => None,
    }
}

fn significant(toks: &[Token]) -> Vec<Token> {
    toks.iter().copied().filter(Token::significant).collect()
}

/// `rest` ends just before the word being typed.
fn member_or_word<'a>(src: &'a str, rest: &[Token], prefix: &'a str, shared: &Shared) -> Spot<'a> {
    match rest.split_last() {
        Some((dot, head)) if dot.punct(src) == Some(".") => {
            let receiver = head.last().map(|t| t.text(src)).unwrap_or("");
            Spot::Member {
                receiver,
                module: receiver_module(src, head, shared),
                prefix,
            }
        }
        _ => Spot::Word { prefix },
    }
}

/// The module of the expression that `toks` ends with: a module name, a
/// variable holding a handle, or a call that returns one (`pg.connect(..)`).
fn receiver_module(src: &str, toks: &[Token], shared: &Shared) -> Option<&'static str> {
    lex::receiver(src, toks, &|name| shared.module_of(name)).map(|(m, _)| m)
}

/// The innermost call whose `(` is still open at the end of `toks`.
pub fn enclosing_call<'a>(src: &'a str, toks: &[Token], shared: &Shared) -> Option<Callee<'a>> {
    let mut depth = 0usize;
    let mut index = 0usize;
    for (i, t) in toks.iter().enumerate().rev() {
        match t.punct(src).unwrap_or("") {
            ")" | "]" | "}" => depth += 1,
            "(" | "[" | "{" | "${" if depth > 0 => depth -= 1,
            // Inside an array or map literal that is itself an argument:
            // the commas seen so far were the literal's.
            "[" => index = 0,
            "{" if i > 0 && toks[i - 1].punct(src) == Some("#") => index = 0,
            // In a block or an interpolation, not in the call's arguments.
            "{" | "${" | ";" => return None,
            "," if depth == 0 => index += 1,
            "(" => {
                let head = &toks[..i];
                let (name, head) = head.split_last()?;
                if name.kind != Kind::Ident {
                    return None;
                }
                let (module, receiver) = match head.split_last() {
                    Some((dot, recv)) if dot.punct(src) == Some(".") => (
                        receiver_module(src, recv, shared),
                        recv.last()
                            .filter(|t| t.kind == Kind::Ident)
                            .map_or("", |t| t.text(src)),
                    ),
                    _ => (Some(""), ""),
                };
                return Some(Callee {
                    module,
                    receiver,
                    name: name.text(src),
                    index,
                });
            }
            _ => {}
        }
    }
    None
}

/// The call the cursor is in, if any.
pub fn call_at<'a>(text: &'a str, pos: usize, shared: &Shared) -> Option<Callee<'a>> {
    let before = text.get(..pos)?;
    let mut sig = lex::significant(before);
    if sig
        .last()
        .is_some_and(|t| t.kind == (Kind::Str { closed: false }))
    {
        sig.pop();
    }
    enclosing_call(before, &sig, shared)
}

fn meta_spot(before: &str) -> (usize, Spot<'_>) {
    let lead = before.len() - before.trim_start().len();
    let body = &before[lead..];
    let words: Vec<&str> = body.split_whitespace().collect();
    let ends_in_space = body.ends_with(char::is_whitespace);
    if words.len() <= 1 && !ends_in_space {
        return (lead, Spot::Meta { prefix: body });
    }
    let command = words[0].trim_start_matches(':');
    let (previous, prefix) = if ends_in_space {
        (words[1..].to_vec(), "")
    } else {
        (
            words[1..words.len() - 1].to_vec(),
            words.last().copied().unwrap_or(""),
        )
    };
    (
        before.len() - prefix.len(),
        Spot::MetaArg {
            command,
            index: previous.len(),
            previous,
            prefix,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repl::state::Var;

    fn shared() -> Shared {
        let s = Shared::default();
        s.set_vars(vec![Var {
            name: "db".into(),
            module: Some("pg"),
        }]);
        s
    }

    #[test]
    fn classifies_the_cursor() {
        let s = shared();
        let t = "pg.connect(\"sta";
        assert_eq!(
            spot(t, t.len(), &s),
            Some((
                12,
                Spot::StringArg {
                    module: Some("pg"),
                    receiver: "pg",
                    function: "connect",
                    index: 0,
                    prefix: "sta"
                }
            ))
        );
        assert_eq!(member_of("redis.connect(\"c\").", &s), Some(Some("redis")));
        let t = ":target pg st";
        assert_eq!(
            spot(t, t.len(), &s),
            Some((
                11,
                Spot::MetaArg {
                    command: "target",
                    index: 1,
                    previous: vec!["pg"],
                    prefix: "st"
                }
            ))
        );
    }

    /// The module whose functions complete at the end of `t`, when that
    /// is after `receiver.`.
    fn member_of(t: &str, s: &Shared) -> Option<Option<&'static str>> {
        match spot(t, t.len(), s)? {
            (_, Spot::Member { module, .. }) => Some(module),
            _ => None,
        }
    }

    // Where the tokenizer the REPL had went wrong (engine/lex.rs).
    #[test]
    fn reads_interpolations_raw_strings_and_fields() {
        let s = shared();
        // `${ .. }` is code, not the string it stands in.
        assert_eq!(member_of("print(`rows: ${db.qu", &s), Some(Some("pg")));
        let t = "pg.query(`${";
        assert_eq!(
            spot(t, t.len(), &s),
            Some((t.len(), Spot::Word { prefix: "" }))
        );
        assert_eq!(call_at(t, t.len(), &s), None);
        // The prefix of a raw string starts after `#"`.
        let t = "pg.connect(#\"sta";
        assert!(matches!(
            spot(t, t.len(), &s),
            Some((13, Spot::StringArg { prefix: "sta", .. }))
        ));
        // `cfg.pg` is a field of cfg, not the module.
        assert_eq!(member_of("cfg.pg.", &s), Some(None));
        // A handle from k8s.context(..) has k8s's methods, as declared.
        assert_eq!(member_of("k8s.context(\"prod\").sc", &s), Some(Some("k8s")));
    }

    #[test]
    fn finds_the_call_being_typed() {
        let s = shared();
        let t = "db.query(\"select $1\", [f(1), ";
        let c = call_at(t, t.len(), &s).unwrap();
        assert_eq!((c.module, c.name, c.index), (Some("pg"), "query", 1));
        let t = "sleep(";
        let c = call_at(t, t.len(), &s).unwrap();
        assert_eq!((c.module, c.name), (Some(""), "sleep"));
        assert_eq!(call_at("x.len()", 7, &s), None);
    }
}
