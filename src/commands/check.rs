//! `opsh check FILE...`: syntax (Rhai stops at the first syntax error of a
//! file), unknown primitives, argument counts and the keys of literal
//! option maps (all read from the declarations), reads of fields a
//! primitive's declared result does not have (`scan::FieldRead`), and
//! imports that do not resolve or compile. Every problem of every file is
//! reported together.

use crate::audit::Audit;
use crate::config::Config;
use crate::context::{self, Context};
use crate::diagnostic::Renderer;
use crate::engine::{self, Sources};
use crate::error::CliError;
use crate::output::{ColorChoice, Format, Output};
use crate::session::{Options, Session};
use crate::{exit, registry};
use std::path::PathBuf;
use std::sync::Arc;

pub fn run(ctx: &Context, files: &[PathBuf]) -> Result<i32, CliError> {
    let color = ctx.output().err_color;
    let modules: Vec<&str> = registry::value_modules().map(|m| m.name).collect();
    let mut problems: Vec<String> = Vec::new();
    for file in files {
        let (name, text) = match context::read_script(file) {
            Ok(x) => x,
            Err(e) => {
                problems.push(e.render());
                continue;
            }
        };
        let sources = Sources::default();
        sources.insert(&name, &text);
        let renderer = Renderer {
            sources: &sources,
            color,
        };
        let engine = check_engine();
        if let Err(e) = engine.compile(&text) {
            problems.push(renderer.parse_error(&name, &e));
        }
        arg_problems(&renderer, &name, &text, &mut problems);
        let scan = engine::scan::scan(&text, &modules);
        for r in &scan.calls {
            if let Some(p) = registry::find(&r.module, &r.name) {
                let min = p.params.iter().filter(|x| !x.optional).count();
                let max = p.params.len();
                if let Some(n) = r.args.filter(|n| *n < min || *n > max) {
                    let wanted = match (min, max) {
                        (a, b) if a == b => format!("{a}"),
                        (a, b) => format!("{a} to {b}"),
                    };
                    problems.push(renderer.custom(
                        &format!(
                            "{}.{} takes {wanted} argument(s), this call passes {n}",
                            r.module, r.name
                        ),
                        &name,
                        r.line,
                        r.col,
                        &p.signature(),
                    ));
                }
                // Literal option maps are held to the declared keys here,
                // before anything runs (`#{older_thn: "1m"}`).
                for (arg, key, line, col) in &r.keys {
                    let Some(fields) = p.params.get(*arg).and_then(|x| options_of(&x.ty)) else {
                        continue;
                    };
                    if fields.iter().any(|f| f.name == key.as_str()) {
                        continue;
                    }
                    let known = fields.iter().map(|f| f.name);
                    let hint = registry::suggest(key, known.clone())
                        .map(|s| format!("did you mean `{s}`?"))
                        .unwrap_or_else(|| {
                            format!("known options: {}", known.collect::<Vec<_>>().join(", "))
                        });
                    problems.push(renderer.custom(
                        &format!("{} has no option `{key}`", p.full_name()),
                        &name,
                        *line,
                        *col,
                        &hint,
                    ));
                }
                continue;
            }
            let names = registry::module(&r.module)
                .map(|m| m.primitives.iter().map(|p| p.name).collect::<Vec<_>>())
                .unwrap_or_default();
            let hint = registry::suggest(&r.name, names.iter().copied())
                .map(|s| format!("did you mean {}.{s}?", r.module))
                .unwrap_or_else(|| format!("{} has: {}", r.module, names.join(", ")));
            problems.push(renderer.custom(
                &format!("unknown primitive {}.{}", r.module, r.name),
                &name,
                r.line,
                r.col,
                &hint,
            ));
        }
        for f in &scan.unknown_fields {
            problems.push(renderer.custom(&f.message(), &name, f.line, f.col, &f.hint()));
        }
        let resolver = engine::resolver::Resolver::new(
            context::script_base(file),
            Arc::new(Sources::default()),
        );
        let mut imports = Imports {
            resolver: &resolver,
            engine: &engine,
            modules: &modules,
            sources: &sources,
            renderer: &renderer,
            seen: Vec::new(),
            problems: &mut problems,
        };
        let root = engine::resolver::Resolver::real_name(&name);
        let mut chain: Vec<String> = root.into_iter().collect();
        imports.walk(&name, &scan.imports, &mut chain);
    }
    if problems.is_empty() {
        crate::stdio::errln(format_args!("ok: {} file(s) checked", files.len()));
        return Ok(exit::OK);
    }
    let mut text = problems.concat();
    text.push_str(&format!("{} problem(s) found\n", problems.len()));
    Err(CliError::rendered(exit::ERROR, text))
}

/// The `//! args:` block (its form, types and defaults) and the script's
/// reads of `args.NAME` against it (`args.saturaton_pct`).
fn arg_problems(renderer: &Renderer, name: &str, text: &str, problems: &mut Vec<String>) {
    let decl = match crate::script_args::declaration(text) {
        Ok(Some(d)) => d,
        Ok(None) => return,
        Err(e) => {
            problems.push(renderer.custom(
                &format!("bad argument declaration: {}", e.message),
                name,
                e.line,
                e.col,
                "docs/scripting.md#arguments describes the `//! args:` block",
            ));
            return;
        }
    };
    for (arg, line, col) in crate::script_args::uses(text) {
        if decl.get(&arg).is_some() {
            continue;
        }
        let hint = match registry::suggest(&arg, decl.names()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!(
                "declared (line {}): {}",
                decl.line,
                decl.names().collect::<Vec<_>>().join(", ")
            ),
        };
        problems.push(renderer.custom(
            &format!("`args.{arg}` is not a declared argument of this script"),
            name,
            line,
            col,
            &hint,
        ));
    }
}

/// The imports of a script and, transitively, of its modules: each must
/// resolve and compile, and none may close a cycle (which `run` would
/// report only when it gets there).
struct Imports<'a> {
    resolver: &'a engine::resolver::Resolver,
    engine: &'a rhai::Engine,
    modules: &'a [&'a str],
    sources: &'a Sources,
    renderer: &'a Renderer<'a>,
    /// Modules already walked (a module imported twice is checked once).
    seen: Vec<String>,
    problems: &'a mut Vec<String>,
}

impl Imports<'_> {
    /// `chain`: the real names of the modules from the script down to
    /// `name`, which imports `imports`.
    fn walk(&mut self, name: &str, imports: &[(String, usize, usize)], chain: &mut Vec<String>) {
        for (path, line, col) in imports {
            let (mname, mtext) = match self.resolver.locate(Some(name), path) {
                Ok(x) => x,
                Err(msg) => {
                    self.problems.push(self.renderer.custom(
                        &msg,
                        name,
                        *line,
                        *col,
                        "imports resolve from the stdlib and the script's directory",
                    ));
                    continue;
                }
            };
            if chain.contains(&mname) {
                let msg = self.resolver.cycle_error(chain, &mname);
                self.problems.push(self.renderer.custom(
                    &msg,
                    name,
                    *line,
                    *col,
                    "move what both need into a third module that imports neither",
                ));
                continue;
            }
            if self.seen.contains(&mname) {
                continue;
            }
            self.seen.push(mname.clone());
            self.sources.insert(&mname, &mtext);
            if let Err(e) = self.engine.compile(&mtext) {
                self.problems.push(self.renderer.parse_error(&mname, &e));
                continue;
            }
            let nested = engine::scan::scan(&mtext, self.modules).imports;
            chain.push(mname.clone());
            self.walk(&mname, &nested, chain);
            chain.pop();
        }
    }
}

/// The declared keys of an options parameter: a record, or the record
/// among its alternatives.
fn options_of(ty: &registry::Ty) -> Option<&'static [registry::Field]> {
    match ty {
        registry::Ty::Record(f) => Some(f),
        registry::Ty::OneOf(ts) => ts.iter().find_map(options_of),
        _ => None,
    }
}

/// An engine that knows every primitive's name and arity but can run none:
/// enough to compile. Building a Session is cheap (no connections).
fn check_engine() -> rhai::Engine {
    let session = Session::new(
        Options::default(),
        Config::default(),
        Output::new(Format::Text, ColorChoice::Never),
        Audit::new(PathBuf::from("/dev/null"), "check"),
    );
    match session {
        Ok(s) => engine::build(
            Arc::new(s),
            Arc::new(Sources::default()),
            PathBuf::from("."),
        ),
        Err(_) => rhai::Engine::new(),
    }
}
