//! Wires completion, hints and highlighting into rustyline. Each reads the
//! whole entry typed so far (earlier lines of an unfinished entry plus the
//! current line), so a continued call is understood in context.

use super::completion::{self, Source};
use super::live::Live;
use super::state::Shared;
use super::{highlight, hint};
use nu_ansi_term::Style;
use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};
use std::borrow::Cow;
use std::sync::Arc;

pub struct ReplHelper {
    pub shared: Arc<Shared>,
    sources: Vec<Box<dyn Source>>,
    files: FilenameCompleter,
    live: Arc<Live>,
}

impl ReplHelper {
    pub fn new(shared: Arc<Shared>, live: Arc<Live>) -> ReplHelper {
        let mut sources = completion::default_sources();
        sources.push(Box::new(live.clone()));
        ReplHelper {
            shared,
            sources,
            files: FilenameCompleter::new(),
            live,
        }
    }

    /// The entry so far and where the current line starts in it.
    fn entry(&self, line: &str) -> (String, usize) {
        let pending = self.shared.pending();
        let offset = pending.len();
        (pending + line, offset)
    }
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        if line.trim_start().starts_with(":load ") {
            return self.files.complete(line, pos, ctx);
        }
        let (text, offset) = self.entry(line);
        let (start, found) = completion::complete(&self.sources, &self.shared, &text, offset + pos);
        if start < offset {
            return Ok((pos, Vec::new()));
        }
        let pairs = found
            .into_iter()
            .map(|s| Pair {
                display: s.display,
                replacement: s.replacement,
            })
            .collect();
        Ok((start - offset, pairs))
    }
}

impl Hinter for ReplHelper {
    type Hint = String;

    fn hint(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> Option<String> {
        let (text, offset) = self.entry(line);
        self.live.prefetch(&text, offset + pos, &self.shared);
        hint::signature_hint(&text, offset + pos, &self.shared)
    }
}

impl Highlighter for ReplHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        if !self.shared.color || line.trim_start().starts_with(':') {
            return Cow::Borrowed(line);
        }
        let (text, offset) = self.entry(line);
        Cow::Owned(highlight::paint(&text, offset, &self.shared))
    }

    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        if self.shared.color {
            Cow::Owned(Style::new().dimmed().paint(hint).to_string())
        } else {
            Cow::Borrowed(hint)
        }
    }

    fn highlight_char(&self, _line: &str, _pos: usize, _kind: CmdKind) -> bool {
        // Any keystroke can change what a word is (`pg` vs `pgx`).
        self.shared.color
    }
}

/// Entries are split by the loop (validate.rs), which can then show a
/// continuation prompt; rustyline's own multi-line buffer has none.
impl Validator for ReplHelper {}

impl Helper for ReplHelper {}
