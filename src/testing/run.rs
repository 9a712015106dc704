//! `run("scripts/x.rhai", #{..})` inside a test: runs a runbook in a child
//! session that shares the test's stubs and call log (so its calls are
//! stubbed and inspectable), with its own `args`, and returns what a test
//! asserts on: exit code, printed lines, shown values, the last one shown
//! (the report) and the rendered error. The runbook's output is always
//! text: `opsh test --output json` is about the test report.

use crate::audit::Audit;
use crate::diagnostic::Renderer;
use crate::dispatch::OpError;
use crate::engine::{self, Sources};
use crate::output::{ColorChoice, Output};
use crate::session::{Options, Session};
use crate::value::map_of;
use rhai::{Dynamic, Map, Scope};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// `opts`: dry_run, only, skip (as the command-line flags).
pub fn run_script(parent: &Session, file: &str, args: Map, opts: &Map) -> Result<Map, OpError> {
    let list = |k: &str, inherited: &Vec<String>| match opts.get(k) {
        Some(v) => v
            .clone()
            .try_cast::<rhai::Array>()
            .unwrap_or_else(|| vec![v.clone()])
            .iter()
            .map(|d| d.to_string())
            .collect(),
        None => inherited.clone(),
    };
    let text = std::fs::read_to_string(file)
        .map(crate::script_args::source)
        .map_err(|e| {
            OpError::bad_input(format!("cannot read runbook {file}"))
                .with_cause(e)
                .with_hint(
                    "paths are relative to the directory opsh test runs in (the repository root)",
                )
        })?;
    // The same checks as `opsh run --arg`: a test of a wrong argument sees
    // exit 64 and the message an operator would.
    let args = match checked_args(file, &text, args) {
        Ok(a) => a,
        Err((code, error)) => {
            return Ok(map_of([
                ("exit_code", Dynamic::from_int(i64::from(code))),
                ("ok", Dynamic::from_bool(false)),
                ("report", Dynamic::UNIT),
                ("shows", Dynamic::from_array(Vec::new())),
                ("output", Dynamic::from_array(Vec::new())),
                ("error", Dynamic::from(error)),
            ]))
        }
    };
    let opts = Options {
        dry_run: opts
            .get("dry_run")
            .and_then(|d| d.as_bool().ok())
            .unwrap_or(parent.dry_run()),
        yes: parent.yes,
        call_timeout: parent.call_timeout,
        max_operations: parent.max_operations,
        args,
        script: file.to_string(),
        quiet: parent.quiet,
    };
    let config = match parent.config.read() {
        Ok(c) => c.clone(),
        Err(p) => p.into_inner().clone(),
    };
    let audit = Audit::new(parent.audit.path().to_path_buf(), file);
    let mut child = Session::new(
        opts,
        config,
        Output::new(crate::output::Format::Text, ColorChoice::Never),
        audit,
    )
    .map_err(|e| OpError::failed("cannot start a runtime for the runbook").with_cause(e))?;
    child.hooks = parent.hooks.clone();
    child.args_declared = matches!(crate::script_args::declaration(&text), Ok(Some(_)));
    child.cancel = parent.cancel.clone();
    child.only = list("only", &parent.only);
    child.skip = list("skip", &parent.skip);
    let child = Arc::new(child);
    let shows_before = parent.hooks.shows().len();

    let sources = Arc::new(Sources::default());
    sources.insert(file, &text);
    let mut engine = engine::build(
        child.clone(),
        sources.clone(),
        crate::context::script_base(Path::new(file)),
    );
    let printed = Arc::new(Mutex::new(Vec::<Dynamic>::new()));
    let sink = printed.clone();
    engine.on_print(move |s| {
        if let Ok(mut p) = sink.lock() {
            p.push(s.into());
        }
    });
    let renderer = Renderer {
        sources: &sources,
        color: false,
    };
    let (code, error) = match engine.compile(&text) {
        Err(e) => (crate::exit::ERROR, Some(renderer.parse_error(file, &e))),
        Ok(mut ast) => {
            ast.set_source(file);
            let ast = Arc::new(ast);
            child.set_script(ast.clone());
            match engine.run_ast_with_scope(&mut Scope::new(), &ast) {
                Ok(()) => (crate::exit::OK, None),
                Err(err) => {
                    let code = crate::diagnostic::exit_code(&err, child.cancel.reason());
                    let text = (!crate::diagnostic::is_exit(&err))
                        .then(|| renderer.eval_error(file, &err));
                    (code, text)
                }
            }
        }
    };
    let shows: rhai::Array = parent
        .hooks
        .shows()
        .into_iter()
        .skip(shows_before)
        .collect();
    let output = printed.lock().map(|p| p.clone()).unwrap_or_default();
    Ok(map_of([
        ("exit_code", Dynamic::from_int(i64::from(code))),
        ("ok", Dynamic::from_bool(code == crate::exit::OK)),
        ("report", shows.last().cloned().unwrap_or(Dynamic::UNIT)),
        ("shows", Dynamic::from_array(shows)),
        ("output", Dynamic::from_array(output)),
        ("error", error.map(Dynamic::from).unwrap_or(Dynamic::UNIT)),
    ]))
}

/// The runbook's `args` as `opsh run` would give them, or the exit code and
/// rendered error it would end with.
fn checked_args(file: &str, text: &str, args: Map) -> Result<Map, (i32, String)> {
    use crate::script_args::{self as sa, Given};
    let decl = sa::declaration(text).map_err(|e| {
        (
            crate::exit::ERROR,
            format!(
                "error: {file}:{}:{}: bad argument declaration: {}\n",
                e.line, e.col, e.message
            ),
        )
    })?;
    let given = args
        .into_iter()
        .map(|(k, v)| (k.to_string(), Given::Value(v)))
        .collect();
    sa::resolve(file, decl.as_ref(), given).map_err(|e| {
        (
            crate::exit::USAGE,
            format!("error: {}\n   = hint: {}\n", e.message, e.hint),
        )
    })
}
