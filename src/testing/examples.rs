//! Every declared example runs, as nushell runs its commands' examples. In
//! test mode, with each unstubbed call answered by a value of its declared
//! result type (every field present) and with reads of undeclared map
//! fields an error, an example fails here when it passes an argument its
//! primitive does not accept or reads a field the primitive does not
//! declare: the declaration and its documentation cannot drift apart.
//! Results whose keys are data (`Ty::Map`) are read leniently.

use crate::audit::Audit;
use crate::config::Config;
use crate::dispatch::{ErrorKind, PrimitiveError};
use crate::engine::{self, Sources};
use crate::output::{ColorChoice, Format, Output};
use crate::registry::{self, Prim};
use crate::session::{Options, Session};
use crate::testing::hooks::Stub;
use rhai::EvalAltResult;
use std::path::PathBuf;
use std::sync::Arc;

fn session() -> Arc<Session> {
    let session = Session::new(
        Options::default(),
        Config::default(),
        Output::new(Format::Text, ColorChoice::Never),
        Audit::new(PathBuf::from("/dev/null"), "examples"),
    )
    .expect("a session without connections starts");
    session.hooks.set_test_mode(true, false);
    session.hooks.set_synthesize(true);
    Arc::new(session)
}

/// Runs one example; Err says why it is broken.
fn run(session: &Arc<Session>, p: Prim) -> Result<(), String> {
    session.hooks.reset();
    // Examples read their secrets from the environment, as scripts should
    // (`notify.slack(env("SLACK_WEBHOOK_URL"), ..)`); this one has none set.
    session.hooks.stub(
        "env".into(),
        Stub::Value(rhai::Dynamic::from(
            "https://example.invalid/from-the-environment",
        )),
    );
    let sources = Arc::new(Sources::default());
    let mut engine = engine::build(session.clone(), sources, PathBuf::from("."));
    // Where the result's keys are data (INFO, a Kubernetes object), the
    // sample cannot know them; only declared results are held to them.
    engine.set_fail_on_invalid_map_property(!p.returns.is_open());
    let mut ast = engine.compile(p.example).map_err(|e| e.to_string())?;
    ast.set_source(p.full_name());
    let ast = Arc::new(ast);
    session.set_script(ast.clone());
    let Err(err) = engine.run_ast(&ast) else {
        return Ok(());
    };
    // Ending the run is what `exit` and `fail` examples show.
    if crate::diagnostic::is_exit(&err) {
        return Ok(());
    }
    match crate::diagnostic::leaf(&err) {
        EvalAltResult::ErrorRuntime(v, _)
            if v.read_lock::<PrimitiveError>()
                .is_some_and(|e| e.kind == ErrorKind::CheckFailed) =>
        {
            Ok(())
        }
        // Where the result's keys are data, the sample is an empty map and
        // a nested read (`d.spec.replicas`) reaches (): not the example's
        // fault.
        EvalAltResult::ErrorDotExpr(..) if p.returns.is_open() => Ok(()),
        EvalAltResult::ErrorRuntime(v, pos) if v.is::<PrimitiveError>() => {
            let e = v.clone().cast::<PrimitiveError>();
            Err(format!(
                "{e} ({pos}){}",
                e.hint
                    .as_ref()
                    .map(|h| format!("; hint: {h}"))
                    .unwrap_or_default()
            ))
        }
        _ => Err(err.to_string()),
    }
}

#[test]
fn every_declared_example_runs() {
    let session = session();
    let failures: Vec<String> = registry::all()
        .filter_map(|p| {
            run(&session, p)
                .err()
                .map(|e| format!("{}: {e}\n    example: {}", p.full_name(), p.example))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} examples fail:\n{}",
        failures.len(),
        registry::all().count(),
        failures.join("\n")
    );
}

#[test]
fn an_example_that_reads_an_undeclared_field_fails() {
    static BROKEN: registry::Primitive =
        registry::Primitive::read("broken", |_| Ok(rhai::Dynamic::UNIT))
            .returns(registry::Ty::Record(&[registry::field(
                "total",
                registry::Ty::Int,
            )]))
            .doc("A test declaration.")
            .example("let c = pg.connections(); if c.saturaton_pct > 90.0 { fail(\"full\") }");
    let p = Prim {
        module: registry::module("pg").expect("pg is declared"),
        decl: &BROKEN,
    };
    let e = run(&session(), p).expect_err("a misspelt field is an error");
    assert!(e.contains("saturaton_pct"), "{e}");
}
