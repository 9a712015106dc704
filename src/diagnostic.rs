//! Errors as the operator sees them: what failed, where (file:line:col with
//! the source line and a caret), the target, the cause, and what to try.
//! Rendered once, at the top, for `opsh run`, `opsh check` and the REPL.

use crate::dispatch::{ErrorKind, PrimitiveError};
use crate::engine::memory::MemoryExceeded;
use crate::engine::Sources;
use crate::redact::redact;
use nu_ansi_term::{Color, Style};
use rhai::{EvalAltResult, ParseError, Position};

pub struct Renderer<'a> {
    pub sources: &'a Sources,
    pub color: bool,
}

struct Frame {
    note: String,
    source: String,
    pos: Position,
}

impl Renderer<'_> {
    fn paint(&self, style: Style, s: &str) -> String {
        if self.color {
            style.paint(s).to_string()
        } else {
            s.to_string()
        }
    }

    /// The `--> file:line:col` block with the source line and a caret.
    /// `pg` in `pg.qeury(...)` when the error points at `qeury`: the
    /// identifier before the dot, if any.
    fn receiver(&self, source: &str, pos: Position) -> Option<String> {
        let (line, col) = (pos.line()?, pos.position()?);
        let all = self.sources.get(source)?;
        let text = all.lines().nth(line - 1)?;
        let before: String = text.chars().take(col.saturating_sub(1)).collect();
        let before = before.strip_suffix('.')?;
        let ident: String = before
            .chars()
            .rev()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        (!ident.is_empty()).then(|| ident.chars().rev().collect())
    }

    fn snippet(&self, source: &str, pos: Position) -> String {
        let (Some(line), col) = (pos.line(), pos.position().unwrap_or(1)) else {
            return format!("  {} {source}\n", self.paint(Color::Blue.bold(), "-->"));
        };
        let mut out = format!(
            "  {} {source}:{line}:{col}\n",
            self.paint(Color::Blue.bold(), "-->")
        );
        if let Some(text) = self
            .sources
            .get(source)
            .and_then(|t| t.lines().nth(line - 1).map(str::to_string))
        {
            let num = line.to_string();
            let gutter = " ".repeat(num.len());
            let bar = self.paint(Color::Blue.bold(), "|");
            out.push_str(&format!(" {gutter} {bar}\n"));
            out.push_str(&format!(
                " {} {bar} {}\n",
                self.paint(Color::Blue.bold(), &num),
                redact(&text)
            ));
            // Columns count characters; tabs keep their width in the marker line.
            let lead: String = text
                .chars()
                .take(col.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            out.push_str(&format!(
                " {gutter} {bar} {lead}{}\n",
                self.paint(Color::Red.bold(), "^")
            ));
        }
        out
    }

    fn header(&self, msg: &str) -> String {
        format!(
            "{}: {}\n",
            self.paint(Color::Red.bold(), "error"),
            self.paint(Style::new().bold(), &redact(msg))
        )
    }

    fn note(&self, label: &str, text: &str) -> String {
        format!(
            "   {} {label}: {}\n",
            self.paint(Color::Blue.bold(), "="),
            redact(text)
        )
    }

    /// A problem found outside Rhai (by `opsh check`), at a known place.
    pub fn custom(&self, msg: &str, source: &str, line: usize, col: usize, hint: &str) -> String {
        let pos = Position::new(
            u16::try_from(line).unwrap_or(u16::MAX),
            u16::try_from(col).unwrap_or(u16::MAX),
        );
        let mut out = self.header(msg);
        out.push_str(&self.snippet(source, pos));
        out.push_str(&self.note("hint", hint));
        out
    }

    pub fn parse_error(&self, source: &str, err: &ParseError) -> String {
        let mut out = self.header(&err.err_type().to_string());
        out.push_str(&self.snippet(source, err.position()));
        out
    }

    /// Renders a runtime error raised while running `main_source`.
    pub fn eval_error(&self, main_source: &str, err: &EvalAltResult) -> String {
        self.eval_error_in(main_source, err, None)
    }

    /// The same, with the main script's top-level variables as the run left
    /// them: a missing field of a map held in one is shown with its keys.
    pub fn eval_error_in(
        &self,
        main_source: &str,
        err: &EvalAltResult,
        scope: Option<&rhai::Scope>,
    ) -> String {
        let mut frames = Vec::new();
        let (leaf, leaf_source) = unwrap_frames(err, main_source.to_string(), &mut frames);
        let mut out = String::new();
        let pos = leaf.position();
        match leaf {
            // `fail(msg)` is the script's verdict, not a bug in it: its
            // message (and the lines after it, one per failing check from
            // `checks::report`), without source or frames.
            EvalAltResult::ErrorRuntime(v, _)
                if v.read_lock::<PrimitiveError>()
                    .is_some_and(|e| e.kind == ErrorKind::CheckFailed) =>
            {
                let pe = v.clone().cast::<PrimitiveError>();
                let mut lines = pe.message.lines();
                out.push_str(&self.header(&format!(
                    "check failed: {}",
                    lines.next().unwrap_or_default()
                )));
                for l in lines {
                    out.push_str(&format!("  {}\n", redact(l)));
                }
                if let Some(h) = &pe.hint {
                    out.push_str(&self.note("hint", h));
                }
                return out;
            }
            EvalAltResult::ErrorRuntime(v, _) if v.is::<PrimitiveError>() => {
                let pe = v.clone().cast::<PrimitiveError>();
                let head = match pe.kind {
                    ErrorKind::Refused => format!("{} refused: {}", pe.primitive, pe.message),
                    _ => format!("{} failed: {}", pe.primitive, pe.message),
                };
                out.push_str(&self.header(&head));
                out.push_str(&self.snippet(&leaf_source, pos));
                if let Some(t) = &pe.target {
                    out.push_str(&self.note("target", t));
                }
                if let Some(c) = &pe.cause {
                    out.push_str(&self.note("cause", c));
                }
                if let Some(h) = &pe.hint {
                    out.push_str(&self.note("hint", h));
                }
            }
            EvalAltResult::ErrorRuntime(v, _) => {
                let msg = if v.is_string() {
                    v.to_string()
                } else {
                    format!("{v:?}")
                };
                out.push_str(&self.header(&format!("script error: {msg}")));
                out.push_str(&self.snippet(&leaf_source, pos));
            }
            EvalAltResult::ErrorTerminated(v, _) if v.is::<MemoryExceeded>() => {
                out.push_str(&self.header(&v.clone().cast::<MemoryExceeded>().to_string()));
                out.push_str(&self.snippet(&leaf_source, pos));
                out.push_str(&self.note(
                    "hint",
                    "raise it with --max-memory, or `[defaults] max_memory` in the config",
                ));
            }
            EvalAltResult::ErrorTerminated(v, _) => {
                out.push_str(&self.header(&format!("run stopped: {v}")));
                out.push_str(&self.snippet(&leaf_source, pos));
            }
            EvalAltResult::ErrorFunctionNotFound(sig, _) => {
                out.push_str(&self.header(&format!("function not found: {sig}")));
                out.push_str(&self.snippet(&leaf_source, pos));
                if let Some(h) = function_hint(sig, self.receiver(&leaf_source, pos).as_deref()) {
                    out.push_str(&self.note("hint", &h));
                }
            }
            EvalAltResult::ErrorPropertyNotFound(prop, _) => {
                let scope = scope.filter(|_| frames.is_empty());
                out.push_str(&self.missing_field(&leaf_source, prop, pos, scope));
            }
            EvalAltResult::ErrorTooManyOperations(_) => {
                out.push_str(
                    &self.header("the script exceeded its operation limit (a runaway loop?)"),
                );
                out.push_str(&self.snippet(&leaf_source, pos));
                out.push_str(&self.note(
                    "hint",
                    "raise it with --max-operations, or `[defaults] max_operations` in the config",
                ));
            }
            other => {
                out.push_str(&self.header(&strip_position(&other.to_string())));
                out.push_str(&self.snippet(&leaf_source, pos));
            }
        }
        for f in frames.iter().rev() {
            out.push_str(&format!(
                "{}: {}\n",
                self.paint(Color::Cyan.bold(), "note"),
                f.note
            ));
            out.push_str(&self.snippet(&f.source, f.pos));
        }
        out
    }
}

impl Renderer<'_> {
    /// `c.saturaton_pct` read a key the map does not have: named after the
    /// primitive whose result it is when the script says (`let c =
    /// pg.connections()`, as `opsh check` reads it), else after the
    /// variable, with its keys when the run left it in `scope`.
    fn missing_field(
        &self,
        source: &str,
        prop: &str,
        pos: Position,
        scope: Option<&rhai::Scope>,
    ) -> String {
        let text = self.sources.get(source).unwrap_or_default();
        let modules: Vec<&str> = crate::registry::value_modules().map(|m| m.name).collect();
        let declared = crate::engine::scan::scan(&text, &modules)
            .unknown_fields
            .into_iter()
            .find(|f| Some(f.line) == pos.line() && Some(f.col) == pos.position());
        let path = self.receiver_path(source, pos);
        let recv = path.as_ref().map(|p| p.join("."));
        let optional = format!(
            "an optional field is tested with `\"{prop}\" in {r}` and read with `{r}.get(\"{prop}\") ?? default`",
            r = recv.as_deref().unwrap_or("m")
        );
        // A declared result has every field it declares (`Ty::complete`):
        // what it lacks is not optional, so no note on optional reads.
        let (msg, hint, optional) = match declared {
            Some(f) => (f.message(), f.hint(), None),
            None => {
                let keys = path
                    .as_deref()
                    .and_then(|p| scope.and_then(|s| keys_at(s, p)))
                    .filter(|k| !k.iter().any(|k| k == prop));
                let on = match &recv {
                    Some(r) => format!("map {r}"),
                    None => "this map".to_string(),
                };
                let mut msg = format!("no field {prop} on {on}");
                let hint = match keys {
                    Some(keys) => {
                        if let Some(s) = crate::engine::scan::suggest_field(
                            prop,
                            keys.iter().map(String::as_str),
                        ) {
                            msg.push_str(&format!("; did you mean {s}?"));
                        }
                        let mut shown: Vec<&str> =
                            keys.iter().take(12).map(String::as_str).collect();
                        if keys.len() > shown.len() {
                            shown.push("...");
                        }
                        format!("its keys: {}", shown.join(", "))
                    }
                    None => String::new(),
                };
                (msg, hint, Some(optional))
            }
        };
        let mut out = self.header(&msg);
        out.push_str(&self.snippet(source, pos));
        if !hint.is_empty() {
            out.push_str(&self.note("hint", &hint));
        }
        if let Some(o) = optional {
            out.push_str(&self.note("note", &o));
        }
        out
    }

    /// `d.status` in `d.status.x` or `d.status["x"]` when the error points
    /// at `x`: the variable and fields read before it.
    fn receiver_path(&self, source: &str, pos: Position) -> Option<Vec<String>> {
        let (line, col) = (pos.line()?, pos.position()?);
        let all = self.sources.get(source)?;
        let text = all.lines().nth(line - 1)?;
        let before: String = text.chars().take(col.saturating_sub(1)).collect();
        let before = before
            .strip_suffix('.')
            .or_else(|| before.strip_suffix('['))?;
        let chain: String = before
            .chars()
            .rev()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let parts: Vec<String> = chain.split('.').map(str::to_string).collect();
        let ident = |p: &String| {
            p.chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
        };
        parts.iter().all(ident).then_some(parts)
    }
}

/// The keys of the map at `path` (a variable, then fields) in `scope`.
fn keys_at(scope: &rhai::Scope, path: &[String]) -> Option<Vec<String>> {
    let (first, rest) = path.split_first()?;
    let mut v: rhai::Dynamic = scope.get_value(first)?;
    for p in rest {
        let next = v.read_lock::<rhai::Map>()?.get(p.as_str())?.clone();
        v = next;
    }
    let m = v.read_lock::<rhai::Map>()?;
    Some(m.keys().map(|k| k.to_string()).collect())
}

/// Walks `ErrorInFunctionCall` / `ErrorInModule` down to the real error,
/// collecting each call site on the way.
fn unwrap_frames<'e>(
    err: &'e EvalAltResult,
    source: String,
    frames: &mut Vec<Frame>,
) -> (&'e EvalAltResult, String) {
    match err {
        EvalAltResult::ErrorInFunctionCall(name, src, inner, pos) => {
            let note = if name.starts_with("anon$") {
                "in a closure called from here".to_string()
            } else {
                format!("in function `{name}`, called from here")
            };
            frames.push(Frame {
                note,
                source: source.clone(),
                pos: *pos,
            });
            let inner_source = if src.is_empty() { source } else { src.clone() };
            unwrap_frames(inner, inner_source, frames)
        }
        EvalAltResult::ErrorInModule(path, inner, pos) => {
            frames.push(Frame {
                note: format!("while loading module `{path}`, imported here"),
                source: source.clone(),
                pos: *pos,
            });
            unwrap_frames(inner, path.clone(), frames)
        }
        other => (other, source),
    }
}

/// The innermost error, for exit codes.
/// `exit(n)` ends a run quietly: nothing to render.
pub fn is_exit(err: &EvalAltResult) -> bool {
    match leaf(err) {
        EvalAltResult::Exit(..) => true,
        EvalAltResult::ErrorTerminated(v, _) => v.is::<crate::dispatch::ExitCode>(),
        _ => false,
    }
}

pub fn leaf(err: &EvalAltResult) -> &EvalAltResult {
    match err {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
        | EvalAltResult::ErrorInModule(_, inner, _) => leaf(inner),
        other => other,
    }
}

fn strip_position(s: &str) -> String {
    match s.rfind(" (line ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s.to_string(),
    }
}

/// For `pg.qeury(...)`: Rhai reports "qeury (module, ...)"; suggest the
/// registry's nearest names, of that module when the receiver names one
/// (a variable holding a handle could be any).
fn function_hint(sig: &str, receiver: Option<&str>) -> Option<String> {
    let name = sig.split(" (").next()?.trim();
    let on_module = sig.contains("(module");
    let module =
        receiver.filter(|r| on_module && crate::registry::value_modules().any(|m| m.name == *r));
    let candidates: Vec<(String, String)> = crate::registry::all()
        .filter(|p| p.is_global() != on_module)
        .filter(|p| module.is_none_or(|m| p.module.name == m))
        .map(|p| (p.name.to_string(), p.signature()))
        .collect();
    let same: Vec<&String> = candidates
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, s)| s)
        .collect();
    if !same.is_empty() {
        let sigs: Vec<&str> = same.iter().map(|s| s.as_str()).collect();
        return Some(format!(
            "wrong number or type of arguments; expected {}",
            sigs.join(" or ")
        ));
    }
    let best = crate::registry::suggest(name, candidates.iter().map(|(n, _)| n.as_str()))?;
    let full: Vec<String> = crate::registry::all()
        .filter(|p| p.name == best && module.is_none_or(|m| p.module.name == m))
        .map(|p| p.full_name())
        .collect();
    Some(format!("did you mean {}?", full.join(" or ")))
}

/// The exit code a failed run ends with.
pub fn exit_code(err: &EvalAltResult, cancel: Option<crate::cancel::Reason>) -> i32 {
    match leaf(err) {
        EvalAltResult::Exit(v, _) => v
            .as_int()
            .ok()
            .and_then(|i| i32::try_from(i).ok())
            .unwrap_or(0),
        EvalAltResult::ErrorTerminated(v, _) if v.is::<crate::dispatch::ExitCode>() => {
            v.clone().cast::<crate::dispatch::ExitCode>().0
        }
        EvalAltResult::ErrorTerminated(v, _) if v.is::<MemoryExceeded>() => crate::exit::ERROR,
        EvalAltResult::ErrorTerminated(..) => cancel
            .map(|r| r.exit_code())
            .unwrap_or(crate::exit::INTERRUPTED),
        EvalAltResult::ErrorRuntime(v, _) if v.is::<PrimitiveError>() => {
            v.clone().cast::<PrimitiveError>().exit_code()
        }
        _ => crate::exit::ERROR,
    }
}
