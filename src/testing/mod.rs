//! `opsh test`: discovers `*_test.rhai` files, compiles each once, and runs
//! every `fn test_*()` in it with fresh stubs and call log, in test mode
//! (see `hooks`). Reports pass/fail with timing and the failing position,
//! as text, JSON lines (`--output json`) or JUnit XML (`--junit FILE`).

#[cfg(test)]
mod examples;
pub mod hooks;
mod junit;
pub mod run;

use crate::diagnostic::Renderer;
use crate::engine::{self, Sources};
use crate::session::Session;
use rhai::{Dynamic, EvalAltResult, Scope};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

pub struct Outcome {
    pub file: String,
    pub name: String,
    pub ms: f64,
    /// None when the test passed.
    pub failure: Option<Failure>,
}

pub struct Failure {
    pub message: String,
    pub location: String,
    /// The error as `opsh run` renders it (source line, caret, hint).
    pub rendered: String,
}

/// The test files under the given paths (default `tests/runbooks`).
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let default = [PathBuf::from("tests/runbooks")];
    let paths = if paths.is_empty() {
        &default[..]
    } else {
        paths
    };
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.to_string_lossy().ends_with("_test.rhai"))
                .collect();
            found.sort();
            files.extend(found);
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            return Err(format!("{}: no such file or directory", p.display()));
        }
    }
    Ok(files)
}

/// Runs every test of one file; `make` builds a fresh session for it.
pub fn run_file(file: &Path, session: Arc<Session>, filter: Option<&str>) -> Vec<Outcome> {
    let name = file.display().to_string();
    let failed = |msg: String, rendered: String| {
        vec![Outcome {
            file: name.clone(),
            name: "(compile)".into(),
            ms: 0.0,
            failure: Some(Failure {
                message: msg,
                location: name.clone(),
                rendered,
            }),
        }]
    };
    let text = match std::fs::read_to_string(file) {
        Ok(t) => crate::script_args::source(t),
        Err(e) => return failed(format!("cannot read {name}: {e}"), String::new()),
    };
    let sources = Arc::new(Sources::default());
    sources.insert(&name, &text);
    let engine = engine::build(
        session.clone(),
        sources.clone(),
        crate::context::script_base(file),
    );
    let renderer = Renderer {
        sources: &sources,
        color: session.out.err_color,
    };
    let mut ast = match engine.compile(&text) {
        Ok(a) => a,
        Err(e) => {
            return failed(
                format!("does not compile: {}", e.err_type()),
                renderer.parse_error(&name, &e),
            )
        }
    };
    ast.set_source(name.as_str());
    let ast = Arc::new(ast);
    session.set_script(ast.clone());
    let mut tests: Vec<String> = ast
        .iter_functions()
        .filter(|f| f.name.starts_with("test_") && f.params.is_empty())
        .filter(|f| filter.is_none_or(|s| f.name.contains(s)))
        .map(|f| f.name.to_string())
        .collect();
    // In source order.
    tests.sort_by_key(|t| text.find(&format!("fn {t}(")).unwrap_or(usize::MAX));
    let mut out = Vec::new();
    for t in tests {
        session.hooks.reset();
        session.cancel.reset();
        let started = Instant::now();
        let r = engine.call_fn::<Dynamic>(&mut Scope::new(), &ast, &t, ());
        let ms = (started.elapsed().as_secs_f64() * 1e4).round() / 10.0;
        let failure = r.err().map(|err| Failure {
            message: message(&err),
            location: location(&err, &name),
            rendered: renderer.eval_error(&name, &err),
        });
        out.push(Outcome {
            file: name.clone(),
            name: t,
            ms,
            failure,
        });
    }
    out
}

fn message(err: &EvalAltResult) -> String {
    match crate::diagnostic::leaf(err) {
        EvalAltResult::ErrorRuntime(v, _) if v.is::<crate::dispatch::PrimitiveError>() => v
            .clone()
            .cast::<crate::dispatch::PrimitiveError>()
            .to_string(),
        EvalAltResult::ErrorRuntime(v, _) => v.to_string(),
        other => other.to_string(),
    }
}

/// file:line:col of the innermost position the error carries.
fn location(err: &EvalAltResult, main: &str) -> String {
    let mut source = main.to_string();
    let mut best = (source.clone(), err.position());
    let mut e = err;
    loop {
        match e {
            EvalAltResult::ErrorInFunctionCall(_, src, inner, pos) => {
                if !pos.is_none() {
                    best = (source.clone(), *pos);
                }
                if !src.is_empty() {
                    source = src.clone();
                }
                e = inner;
            }
            EvalAltResult::ErrorInModule(path, inner, pos) => {
                if !pos.is_none() {
                    best = (source.clone(), *pos);
                }
                source = path.clone();
                e = inner;
            }
            leaf => {
                if !leaf.position().is_none() {
                    best = (source, leaf.position());
                }
                break;
            }
        }
    }
    match (best.1.line(), best.1.position()) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}", best.0),
        (Some(l), None) => format!("{}:{l}", best.0),
        _ => best.0,
    }
}

/// Prints the outcomes and returns the exit code.
pub fn report(
    outcomes: &[Outcome],
    json_lines: bool,
    junit: Option<&Path>,
    ms: f64,
) -> Result<i32, crate::error::CliError> {
    let failed = outcomes.iter().filter(|o| o.failure.is_some()).count();
    let passed = outcomes.len() - failed;
    if json_lines {
        for o in outcomes {
            let mut v = json!({
                "file": o.file, "test": o.name, "ms": o.ms,
                "status": if o.failure.is_some() { "fail" } else { "pass" },
            });
            if let Some(f) = &o.failure {
                v["message"] = f.message.clone().into();
                v["location"] = f.location.clone().into();
            }
            crate::stdio::outln(format_args!("{v}"));
        }
        crate::stdio::outln(format_args!(
            "{}",
            json!({"summary": {"passed": passed, "failed": failed, "ms": ms}})
        ));
    } else {
        let mut file = "";
        for o in outcomes {
            if o.file != file {
                file = &o.file;
                crate::stdio::outln(format_args!("{file}"));
            }
            match &o.failure {
                None => crate::stdio::outln(format_args!("  ok    {} ({} ms)", o.name, o.ms)),
                Some(f) => {
                    crate::stdio::outln(format_args!(
                        "  FAIL  {} ({} ms) at {}",
                        o.name, o.ms, f.location
                    ));
                    for line in f.rendered.lines() {
                        crate::stdio::outln(format_args!("        {line}"));
                    }
                }
            }
        }
        crate::stdio::outln(format_args!(
            "\n{passed} passed, {failed} failed, {} tests in {ms} ms",
            outcomes.len()
        ));
    }
    if let Some(path) = junit {
        std::fs::write(path, junit::xml(outcomes)).map_err(|e| {
            crate::error::CliError::failed(format!("cannot write {}: {e}", path.display()))
        })?;
    }
    Ok(if failed > 0 {
        crate::exit::CHECK_FAILED
    } else {
        crate::exit::OK
    })
}
