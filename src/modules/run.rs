//! Globals for unattended runs and fleets: recording check results for
//! `--report`, and running a function over many configured targets.

use crate::config::Kind;
use crate::dispatch::{Call, OpError};
use crate::modules::sys::{PARALLEL, PARALLEL_OPTS, PARALLEL_ROWS};
use crate::registry::{opt, req, Class, ModuleDecl, Prim, Primitive, Ty};
use rhai::{Dynamic, Map};

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "",
    doc: "Unattended runs and fleets: check results for the run report, targets by glob, and fan-out over them.",
    target: None,
    primitives: &[RECORD_CHECKS, TARGETS, FOR_EACH_TARGET],
};

pub const RECORD_CHECKS: Primitive = Primitive::read("record_checks", record_checks)
    .params(&[req("results", Ty::List(&Ty::Map))])
    .returns(Ty::Int)
    .doc("Record check results (#{check, status, value, detail}) in the run report (`--report`); returns how many.\n\
          status is \"PASS\", \"WARN\" or \"FAIL\"; other keys of a result are ignored. `checks::report` calls it, so scripts using the checks stdlib need not.")
    .example(r#"record_checks([#{check: "disk", status: "PASS", value: 42, detail: "42% used"}])"#)
    .class(Class::Control);

fn record_checks(call: &mut Call) -> Result<Dynamic, OpError> {
    let results = call.array("results")?;
    let mut n = 0;
    for r in results {
        let Some(m) = r.try_cast::<Map>() else {
            return Err(OpError::bad_input(
                "each result must be a map #{check, status, value, detail}",
            ));
        };
        let text = |k: &str| m.get(k).map(|d| d.to_string()).unwrap_or_default();
        let json = |k: &str| {
            m.get(k)
                .map(|d| match crate::value::to_json(d) {
                    serde_json::Value::String(s) => {
                        serde_json::Value::String(crate::redact::redact(&s))
                    }
                    other => other,
                })
                .unwrap_or(serde_json::Value::Null)
        };
        let status = text("status");
        if !matches!(status.as_str(), "PASS" | "WARN" | "FAIL") {
            return Err(OpError::bad_input(format!(
                "check {:?}: status must be \"PASS\", \"WARN\" or \"FAIL\", got {status:?}",
                text("check")
            )));
        }
        call.session.journal.check(crate::report::Check {
            check: crate::redact::redact(&text("check")),
            status,
            value: json("value"),
            detail: json("detail"),
        });
        n += 1;
    }
    Ok(Dynamic::from_int(n))
}

fn names(call: &Call) -> Result<Vec<String>, OpError> {
    let kind_s = call.str("kind")?;
    let kind = Kind::parse(&kind_s).ok_or_else(|| {
        OpError::bad_input(format!("unknown target kind {kind_s:?}"))
            .with_hint(format!("kinds: {}", Kind::ALL.map(Kind::name).join(", ")))
    })?;
    let pattern = call.opt_str("pattern")?.unwrap_or_else(|| "*".into());
    Ok(match call.session.config.read() {
        Ok(c) => c.matching_targets(kind, &pattern),
        Err(p) => p.into_inner().matching_targets(kind, &pattern),
    })
}

pub const TARGETS: Primitive = Primitive::read("targets", targets)
    .params(&[req("kind", Ty::Str), opt("pattern", Ty::Str)])
    .returns(Ty::List(&Ty::Str))
    .doc("Names of the configured targets of a kind (pg, redis, prom, ...) matching a glob (`*`, `?`; default `*`), sorted.")
    .example(r#"for t in targets("pg", "prod-*") { print(t) }"#)
    .class(Class::Local);

fn targets(call: &mut Call) -> Result<Dynamic, OpError> {
    Ok(Dynamic::from_array(
        names(call)?.into_iter().map(Dynamic::from).collect(),
    ))
}

pub const FOR_EACH_TARGET: Primitive = Primitive::read("for_each_target", for_each_target)
    .params(&[
        req("kind", Ty::Str),
        req("pattern", Ty::Str),
        req("f", Ty::Fn),
        opt("opts", Ty::Record(PARALLEL_OPTS)),
    ])
    .returns(Ty::Rows(PARALLEL_ROWS))
    .doc("`parallel` over `targets(kind, pattern)`: calls `f(name)` for each, concurrently; returns one row per target.\n\
          opts as for `parallel`. `f` connects itself, e.g. `|t| pg.connect(t).ping()`.")
    .example(r#"let r = for_each_target("pg", "prod-*", |t| pg.connect(t).ping(), #{concurrency: 4, max_failures: 2});"#)
    .class(Class::Control)
    .unbounded();

fn for_each_target(call: &mut Call) -> Result<Dynamic, OpError> {
    let items: rhai::Array = names(call)?.into_iter().map(Dynamic::from).collect();
    let parallel = Prim {
        module: &crate::modules::sys::MODULE,
        decl: &PARALLEL,
    };
    let f = call.value("f")?.cloned().unwrap_or(Dynamic::UNIT);
    let opts = call.value("opts")?.cloned().unwrap_or(Dynamic::UNIT);
    crate::dispatch::invoke(
        call.engine,
        call.session,
        parallel,
        None,
        vec![Dynamic::from_array(items), f, opts],
    )
    .map_err(|e| match crate::diagnostic::leaf(&e) {
        rhai::EvalAltResult::ErrorRuntime(v, _) if v.is::<crate::dispatch::PrimitiveError>() => {
            let pe = v.clone().cast::<crate::dispatch::PrimitiveError>();
            OpError::new(pe.kind, pe.message)
        }
        other => OpError::failed(other.to_string()),
    })
}
