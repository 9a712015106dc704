//! The interactive console: `opsh` with no arguments on a terminal. Each
//! entry is compiled and merged into one running AST (functions stay
//! defined) and evaluated in one persistent scope (variables stay set), on
//! the same engine, dispatch, dry-run, confirmation and audit as `opsh run`.

mod completion;
mod context;
mod helper;
mod highlight;
mod hint;
mod history;
mod last;
mod live;
mod meta;
mod state;
mod validate;

use crate::cancel::Reason;
use crate::config::Kind;
use crate::diagnostic::{self, Renderer};
use crate::engine::{self, Handle, Sources};
use crate::error::CliError;
use crate::session::Session;
use crate::{exit, help};
use helper::ReplHelper;
use nu_ansi_term::Color;
use rhai::{Dynamic, Engine, Map, Scope, AST};
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{CompletionType, Editor};
use state::{Shared, Var};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use validate::{Checker, Verdict};

const CONTINUATION: &str = "  ...> ";

enum Flow {
    Continue,
    Quit(i32),
}

struct Repl {
    session: Arc<Session>,
    engine: Engine,
    sources: Arc<Sources>,
    scope: Scope<'static>,
    /// Every function defined so far; statements are dropped after each run.
    ast: AST,
    entries: usize,
    /// Which entry (or loaded file) defined each function, so an error
    /// inside one shows that entry's line, not the calling entry's.
    fn_sources: std::collections::HashMap<String, String>,
    shared: Arc<Shared>,
    /// `--timeout`: each entry's deadline.
    timeout: Option<std::time::Duration>,
}

/// Runs the console until `:quit`, Ctrl-D or `exit(n)`; returns the exit
/// code. `timeout` limits each entry, as it limits a whole `opsh run`.
pub fn run(session: Arc<Session>, timeout: Option<std::time::Duration>) -> Result<i32, CliError> {
    session.cancel.set_interactive(true);
    session.cancel.install_signal_handlers(&session.rt);
    let color = session.out.color;
    let shared = Arc::new(Shared::new(color));
    let sources = Arc::new(Sources::default());
    // Entries import as a script on stdin does.
    let base = crate::context::script_base(Path::new("-"));
    let engine = engine::build(session.clone(), sources.clone(), base);
    let mut repl = Repl {
        session,
        engine,
        sources,
        scope: Scope::new(),
        ast: AST::empty(),
        entries: 0,
        fn_sources: Default::default(),
        shared: shared.clone(),
        timeout,
    };
    repl.refresh();

    let config = rustyline::Config::builder()
        .auto_add_history(false)
        .history_ignore_space(true)
        .history_ignore_dups(true)
        .and_then(|b| b.max_history_size(10_000))
        .map(|b| b.completion_type(CompletionType::List).build());
    let mut editor = config
        .and_then(Editor::<ReplHelper, FileHistory>::with_config)
        .map_err(|e| CliError::failed(format!("cannot start the line editor: {e}")))?;
    let live = Arc::new(live::Live::start(repl.session.clone()));
    editor.set_helper(Some(ReplHelper::new(shared.clone(), live)));
    let history = history::path();
    if let Some(dir) = history.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    // A missing file is the first session; anything else is worth a word.
    if history.exists() {
        if let Err(e) = editor.load_history(&history) {
            repl.session.out.note(&format!(
                "warning: cannot read history {}: {e}",
                history.display()
            ));
        }
    }
    crate::stdio::errln(format_args!(
        "opsh {}: :help for commands and primitives, Tab to complete, Ctrl-D to leave",
        env!("CARGO_PKG_VERSION")
    ));

    let checker = Checker::default();
    let mut pending = String::new();
    loop {
        shared.set_pending(&pending);
        let prompt = if pending.is_empty() {
            repl.prompt()
        } else {
            (CONTINUATION.to_string(), CONTINUATION.to_string())
        };
        let line = match editor.readline(&prompt) {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => {
                pending.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(CliError::failed(format!("reading input: {e}"))),
        };
        let entry = format!("{pending}{line}");
        if checker.check(&entry) == Verdict::Incomplete {
            pending = format!("{entry}\n");
            continue;
        }
        pending.clear();
        if entry.trim().is_empty() {
            continue;
        }
        remember(&mut editor, &entry, &history);
        let flow = if entry.trim_start().starts_with(':') {
            // A console command's error is rendered as the command line's
            // are, and the console goes on.
            repl.meta(entry.trim(), &mut editor).unwrap_or_else(|e| {
                crate::stdio::err(format_args!("{}", e.render()));
                Flow::Continue
            })
        } else {
            repl.eval(&entry)
        };
        repl.refresh();
        if let Flow::Quit(code) = flow {
            return Ok(code);
        }
    }
    Ok(exit::OK)
}

/// In-memory and on-disk history, except for entries holding a credential.
fn remember(editor: &mut Editor<ReplHelper, FileHistory>, entry: &str, file: &Path) {
    if history::holds_secret(entry) {
        return;
    }
    if let Ok(true) = editor.add_history_entry(entry) {
        // Appending per entry keeps history from sessions that end abruptly.
        let _ = editor.append_history(file);
    }
}

impl Repl {
    fn renderer(&self) -> Renderer<'_> {
        Renderer {
            sources: &self.sources,
            color: self.session.out.err_color,
        }
    }

    /// `opsh [pg:prod! dry-run]> `: default targets named in the config, with
    /// `!` on protected ones, and dry-run; red when a default is protected.
    fn prompt(&self) -> (String, String) {
        let mut parts = Vec::new();
        let mut protected = false;
        if let Ok(cfg) = self.session.config.read() {
            for kind in Kind::ALL {
                if let Some(name) = cfg.default_name(kind) {
                    let p = cfg.resolve(kind, None).is_ok_and(|t| t.protected);
                    protected |= p;
                    parts.push(format!(
                        "{}:{name}{}",
                        kind.name(),
                        if p { "!" } else { "" }
                    ));
                }
            }
        }
        // Without a configured kube default, the kubeconfig's current
        // context is what k8s.* talks to: show it, as kubectl users expect.
        let kube_configured = self
            .session
            .config
            .read()
            .is_ok_and(|c| c.default_name(Kind::Kube).is_some());
        if !kube_configured {
            if let Some(label) = crate::modules::k8s::current_context_label() {
                parts.push(format!("kube:{label}"));
            }
        }
        let dry = self.session.dry_run();
        if dry {
            parts.push("dry-run".into());
        }
        let raw = if parts.is_empty() {
            "opsh> ".to_string()
        } else {
            format!("opsh [{}]> ", parts.join(" "))
        };
        if !self.shared.color {
            return (raw.clone(), raw);
        }
        let style = if protected {
            Color::Red.bold()
        } else if dry {
            Color::Yellow.bold()
        } else {
            Color::Green.bold()
        };
        let styled = style.paint(&raw).to_string();
        (raw, styled)
    }

    /// Refreshes what completion knows: variables (and which hold handles),
    /// functions, configured targets.
    fn refresh(&self) {
        let mut vars: Vec<Var> = self
            .scope
            .iter_raw()
            .map(|(name, _, value)| Var {
                name: name.to_string(),
                module: value.read_lock::<Handle>().map(|h| h.module),
            })
            .collect();
        vars.extend(self.ast.iter_functions().map(|f| Var {
            name: f.name.to_string(),
            module: None,
        }));
        // Shadowed variables appear once, with their latest value.
        let mut seen = std::collections::HashSet::new();
        vars.reverse();
        vars.retain(|v| seen.insert(v.name.clone()));
        self.shared.set_vars(vars);
        if let Ok(cfg) = self.session.config.read() {
            let targets: BTreeMap<Kind, Vec<String>> = Kind::ALL
                .into_iter()
                .map(|k| (k, cfg.target_names(k)))
                .collect();
            self.shared.set_targets(targets);
        }
    }

    fn eval(&mut self, entry: &str) -> Flow {
        self.entries += 1;
        let name = format!("<repl:{}>", self.entries);
        let code = last::rewrite_last(entry);
        self.sources.insert(&name, &code);
        self.run_text(&name, &code, true)
    }

    /// Compiles `code`, merges its functions into the session, runs its
    /// statements, and prints the result when `show` is set.
    fn run_text(&mut self, name: &str, code: &str, show: bool) -> Flow {
        let ast = match self.engine.compile_with_scope(&self.scope, code) {
            Ok(a) => a,
            Err(e) => {
                crate::stdio::err(format_args!("{}", self.renderer().parse_error(name, &e)));
                return Flow::Continue;
            }
        };
        for f in ast.iter_functions() {
            self.fn_sources.insert(f.name.to_string(), name.to_string());
        }
        // A Ctrl-C that arrived while idle must not cancel this entry.
        self.session.cancel.reset();
        self.ast += ast;
        self.ast.set_source(name);
        let deadline = self
            .timeout
            .map(|t| self.session.cancel.arm_timeout(&self.session.rt, t));
        let result = self
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut self.scope, &self.ast);
        if let Some(d) = deadline {
            d.abort();
        }
        self.ast.clear_statements();
        let reason = self.session.cancel.reason();
        self.session.cancel.reset();
        match result {
            Ok(v) => {
                if show && !v.is_unit() {
                    self.show(&v);
                    self.scope.set_value(last::LAST, v);
                }
                Flow::Continue
            }
            Err(err) if diagnostic::is_exit(&err) => {
                Flow::Quit(diagnostic::exit_code(&err, reason))
            }
            Err(mut err) => {
                self.attribute_functions(name, &mut err);
                match reason {
                    Some(Reason::Terminated) => return Flow::Quit(exit::INTERRUPTED),
                    // The terminal echoed `^C` without a newline.
                    Some(Reason::Interrupted) => crate::stdio::errln(format_args!("")),
                    _ => {}
                }
                crate::stdio::err(format_args!("{}", self.renderer().eval_error(name, &err)));
                Flow::Continue
            }
        }
    }

    /// Rhai reports a session function's frame with the running entry as
    /// its source (all functions live in one merged AST); name the entry
    /// that defined it instead. Frames of imported modules keep theirs.
    fn attribute_functions(&self, current: &str, err: &mut rhai::EvalAltResult) {
        if let rhai::EvalAltResult::ErrorInFunctionCall(name, src, inner, _) = err {
            if src.is_empty() || src == current {
                if let Some(defined_in) = self.fn_sources.get(name.as_str()) {
                    *src = defined_in.clone();
                }
            }
            self.attribute_functions(current, inner);
        }
    }

    fn show(&self, v: &Dynamic) {
        if let Some(h) = v.read_lock::<Handle>() {
            crate::stdio::outln(format_args!("{}", *h));
            return;
        }
        self.session.out.show(v, &[]);
    }

    fn meta(
        &mut self,
        line: &str,
        editor: &mut Editor<ReplHelper, FileHistory>,
    ) -> Result<Flow, CliError> {
        let mut words = line[1..].split_whitespace();
        let word = words.next().unwrap_or("");
        let args: Vec<&str> = words.collect();
        let Some(command) = meta::canonical(word) else {
            let hint = meta::suggest(word)
                .map(|s| format!("; did you mean :{s}?"))
                .unwrap_or_default();
            return Err(CliError::usage(format!(
                "unknown command :{word}{hint} (:help lists them)"
            )));
        };
        let color = self.session.out.color;
        match (command, args.as_slice()) {
            ("help", []) => {
                crate::stdio::out(format_args!("{}{}", help::overview(color), meta::usage()))
            }
            ("help", [name]) => crate::stdio::out(format_args!(
                "{}",
                help::lookup(name, color).map_err(CliError::usage)?
            )),
            ("load", [file]) => return self.load(Path::new(file)),
            ("dry-run", []) => crate::stdio::outln(format_args!(
                "dry-run is {}",
                if self.session.dry_run() { "on" } else { "off" }
            )),
            ("dry-run", ["on"]) => self.session.set_dry_run(true),
            ("dry-run", ["off"]) => self.session.set_dry_run(false),
            ("target", []) => self.list_targets(),
            ("target", [kind, name]) => self.switch_target(kind, name)?,
            ("context", [name]) => self.narrow_kube(Some(name), None),
            ("ns", [name]) => self.narrow_kube(None, Some(name)),
            ("audit", []) => self.audit(),
            ("clear", []) => {
                let _ = editor.clear_screen();
            }
            ("quit", []) => return Ok(Flow::Quit(exit::OK)),
            _ => {
                let c = meta::COMMANDS.iter().find(|c| c.name == command);
                let usage = c.map(|c| c.args).unwrap_or("");
                return Err(CliError::usage(format!("usage: :{command} {usage}")));
            }
        }
        Ok(Flow::Continue)
    }

    fn load(&mut self, file: &Path) -> Result<Flow, CliError> {
        let text = std::fs::read_to_string(file)
            .map(crate::script_args::source)
            .map_err(|e| CliError::failed(format!("cannot read {}: {e}", file.display())))?;
        let name = file.display().to_string();
        self.sources.insert(&name, &text);
        let before: Vec<String> = self
            .ast
            .iter_functions()
            .map(|f| f.name.to_string())
            .collect();
        let flow = self.run_text(&name, &text, false);
        let added: Vec<String> = self
            .ast
            .iter_functions()
            .map(|f| f.name.to_string())
            // Closures compile to functions named `anon$HASH`: not
            // something the file defines for the operator to call.
            .filter(|n| !before.contains(n) && !n.starts_with("anon$"))
            .collect();
        if !added.is_empty() {
            self.session
                .out
                .note(&format!("loaded {name}: defines {}", added.join(", ")));
        }
        Ok(flow)
    }

    fn list_targets(&self) {
        let Ok(cfg) = self.session.config.read() else {
            return;
        };
        for kind in Kind::ALL {
            let names = cfg.target_names(kind);
            let default = cfg.default_name(kind);
            if names.is_empty() && default.is_none() {
                continue;
            }
            let listed: Vec<String> = names
                .iter()
                .map(|n| {
                    if Some(n) == default {
                        format!("{n} (default)")
                    } else {
                        n.clone()
                    }
                })
                .collect();
            crate::stdio::outln(format_args!("{}: {}", kind.name(), listed.join(", ")));
        }
    }

    fn switch_target(&self, kind: &str, name: &str) -> Result<(), CliError> {
        let Some(k) = Kind::parse(kind) else {
            let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
            return Err(CliError::usage(format!(
                "unknown target kind `{kind}`; kinds are {}",
                kinds.join(", ")
            )));
        };
        let Ok(mut cfg) = self.session.config.write() else {
            return Ok(());
        };
        let names = cfg.target_names(k);
        // A kube name may be a kubeconfig context (`sandbox-viewer`) or
        // `CONTEXT/NAMESPACE`, as `--target kube=...` takes it.
        if k != Kind::Kube && !names.iter().any(|n| n == name) {
            let hint = crate::registry::suggest(name, names.iter().map(String::as_str))
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| format!("configured {kind} targets: {}", names.join(", ")));
            return Err(CliError::usage(format!(
                "no {kind} target named `{name}`; {hint}"
            )));
        }
        cfg.set_default(k, name);
        Ok(())
    }

    fn narrow_kube(&self, context: Option<&str>, namespace: Option<&str>) {
        if let Ok(mut cfg) = self.session.config.write() {
            cfg.narrow_kube(context, namespace);
        }
    }

    /// This session's records in the audit log (one run id per session).
    fn audit(&self) {
        let path = self.session.audit.path();
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let id = self.session.audit.run_id();
        let columns = ["ts", "primitive", "target", "mode", "phase", "outcome"];
        let rows: Vec<Dynamic> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|r| r["run_id"] == id && r["event"] == "primitive")
            .map(|r| {
                let m: Map = columns
                    .iter()
                    .map(|c| {
                        let v = r[*c].as_str().unwrap_or("").to_string();
                        ((*c).into(), Dynamic::from(v))
                    })
                    .collect();
                Dynamic::from_map(m)
            })
            .collect();
        if rows.is_empty() {
            crate::stdio::outln(format_args!(
                "no audited actions in this session ({})",
                path.display()
            ));
            return;
        }
        let cols: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        self.session.out.show(&Dynamic::from_array(rows), &cols);
    }
}

/// What the console does with typed text before anything runs (meta
/// commands, the history's secret filter, completion and hint contexts,
/// highlighting), for the fuzzer (src/fuzz.rs): none of it may panic on
/// any text, at any cursor position.
#[doc(hidden)]
pub fn fuzz_typed(text: &str) {
    if let Some(rest) = text.strip_prefix(':') {
        let word = rest.split_whitespace().next().unwrap_or("");
        let _ = meta::canonical(word);
        let _ = meta::suggest(word);
    }
    let _ = history::holds_secret(text);
    let shared = state::Shared::new(true);
    let _ = highlight::paint(text, 0, &shared);
    // Every cursor position up to a bound: completion reads from it.
    for (pos, _) in text.char_indices().chain([(text.len(), ' ')]).take(64) {
        let _ = context::spot(text, pos, &shared);
        let _ = context::call_at(text, pos, &shared);
        let _ = hint::signature_hint(text, pos, &shared);
    }
}
