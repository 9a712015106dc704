//! The Rhai engine: limits, the module values (`pg`, `redis`, ...), every
//! primitive registered from the registry and routed through dispatch, the
//! stdlib and script-directory module resolver.

pub mod lex;
pub mod memory;
pub mod resolver;
pub mod scan;
pub mod stdlib;

use crate::dispatch::{self, PrimitiveError};
use crate::registry;
use crate::session::Session;
use rhai::{Dynamic, Engine, EvalAltResult, Position};
use std::any::TypeId;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A module value as scripts see it: `pg` is `Handle { module: "pg", target:
/// None }` (the default target); `pg.connect("staging")` returns one with a
/// target. Both have the same methods, so scripts read the same either way.
#[derive(Debug, Clone)]
pub struct Handle {
    pub module: &'static str,
    pub target: Option<String>,
}

impl std::fmt::Display for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.target {
            Some(t) => write!(f, "{} target {}", self.module, crate::redact::redact(t)),
            None => write!(f, "{} module (default target)", self.module),
        }
    }
}

/// Every source text a run has compiled, by the name its AST carries, so a
/// diagnostic can show the line an error is on, in the main script or in an
/// imported module.
#[derive(Default)]
pub struct Sources(Mutex<HashMap<String, String>>);

impl Sources {
    pub fn insert(&self, name: &str, text: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(name.to_string(), text.to_string());
        }
    }
    pub fn get(&self, name: &str) -> Option<String> {
        self.0.lock().ok().and_then(|m| m.get(name).cloned())
    }
}

/// `Engine::new()` started early on a thread of its own: Rhai's standard
/// packages (about a thousand functions hashed into tables) were a third of
/// an empty `opsh run`'s start-up, and the main thread has the command
/// line, the config, the script and the runtime to see to meanwhile.
static PREBUILT: Mutex<Option<std::thread::JoinHandle<Engine>>> = Mutex::new(None);

/// Starts building the engine the next `build*` call takes, for a command
/// that will build one (`opsh run`). A command that ends before building
/// it leaves the thread to the process's exit.
pub fn prebuild() {
    let Ok(thread) = std::thread::Builder::new().name("engine".into()).spawn(|| {
        let engine = Engine::new();
        memory::flush_thread();
        engine
    }) else {
        return;
    };
    if let Ok(mut slot) = PREBUILT.lock() {
        *slot = Some(thread);
    }
}

/// The prebuilt engine, or a new one.
fn new_engine() -> Engine {
    let prebuilt = PREBUILT.lock().ok().and_then(|mut slot| slot.take());
    prebuilt.and_then(|t| t.join().ok()).unwrap_or_default()
}

fn rt_error(msg: String) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(msg.into(), Position::NONE))
}

/// Builds the engine for one session. `base_dir` is where script-relative
/// imports resolve from.
pub fn build(session: Arc<Session>, sources: Arc<Sources>, base_dir: PathBuf) -> Engine {
    build_with(session, sources, base_dir, Vars::Hook)
}

/// Builds the engine for running `text` (`build` otherwise): without the
/// variable hook when the script cannot need it.
pub fn build_for(
    session: Arc<Session>,
    sources: Arc<Sources>,
    base_dir: PathBuf,
    text: &str,
) -> Engine {
    let vars = match may_capture(text) {
        true => Vars::Hook,
        false => Vars::Constants,
    };
    build_with(session, sources, base_dir, vars)
}

/// How scripts find the module values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vars {
    /// Constants of a global module: free for every other variable.
    Constants,
    /// The constants and an `on_var` hook, which a closure needs.
    Hook,
}

/// Whether a closure of `text` (or of a module it imports) may capture a
/// module value. A closure captures the outer variables its body names when
/// it is created, and Rhai looks for them in the scope only, never among a
/// global module's constants: `|t| redis.connect(t)` fails without the
/// hook. There is no closure without a `|`, and imports are compiled later
/// with the same engine, so either one keeps the hook. The hook runs before
/// every variable lookup (5-20% of a tight loop, docs/performance.md).
fn may_capture(text: &str) -> bool {
    lex::significant(text).iter().any(|t| match t.kind {
        lex::Kind::Punct => t.text(text) == "|",
        lex::Kind::Keyword | lex::Kind::Ident => t.text(text) == "import",
        _ => false,
    })
}

/// The variable hook: a module value for a name the scope does not have,
/// which is what a closure capturing `pg` needs. Rhai runs it before every
/// variable lookup, so the common case costs one comparison: a variable the
/// parser resolved to a local slot (`index > 0`) returns at once.
fn install_var_hook(engine: &mut Engine, values: &rhai::Module) {
    let globals: Vec<(String, Dynamic)> = values
        .iter_var()
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect();
    #[allow(deprecated)] // volatile, not deprecated: see its docs
    engine.on_var(move |name, index, ctx| {
        if index > 0 {
            return Ok(None);
        }
        let Some((_, value)) = globals.iter().find(|(n, _)| n == name) else {
            return Ok(None);
        };
        if ctx.scope().contains(name) {
            return Ok(None);
        }
        Ok(Some(value.clone()))
    });
}

fn build_with(
    session: Arc<Session>,
    sources: Arc<Sources>,
    base_dir: PathBuf,
    vars: Vars,
) -> Engine {
    let mut engine = new_engine();

    // Limits: a runaway script is stopped rather than eating the machine.
    // No Rhai size limits: they re-measure a collection after each
    // operation (quadratic loops); the memory budget bounds every value at
    // O(1) per operation instead (memory.rs, checked in the progress hook).
    engine.set_max_operations(session.max_operations);
    engine.set_max_call_levels(64);
    engine.set_max_expr_depths(128, 64);
    engine.set_max_modules(256);
    engine.disable_symbol("eval");
    // A misspelt field must not read as () and let a threshold check pass
    // by accident: reading a key a map does not have is an error, for every
    // map (docs/scripting.md, "Results and maps"). `"k" in m` and
    // `m.get("k") ?? default` read optional keys.
    engine.set_fail_on_invalid_map_property(true);
    memory::arm(session.max_memory);

    engine.register_type_with_name::<Handle>("module");
    engine.register_fn("to_string", |h: &mut Handle| h.to_string());
    engine.register_fn("to_debug", |h: &mut Handle| h.to_string());

    engine.register_type_with_name::<PrimitiveError>("error");
    engine.register_fn("to_string", |e: &mut PrimitiveError| e.to_string());
    engine.register_fn("to_debug", |e: &mut PrimitiveError| e.to_string());
    engine.register_get("message", |e: &mut PrimitiveError| e.message.clone());
    engine.register_get("primitive", |e: &mut PrimitiveError| e.primitive.clone());
    engine.register_get("kind", |e: &mut PrimitiveError| e.kind_name().to_string());
    engine.register_get("target", |e: &mut PrimitiveError| opt_dyn(&e.target));
    engine.register_get("cause", |e: &mut PrimitiveError| opt_dyn(&e.cause));
    engine.register_get("hint", |e: &mut PrimitiveError| opt_dyn(&e.hint));

    crate::script_args::register(&mut engine);
    // `pg`, `redis`, ... and `args`: constants of a global module, which
    // Rhai reads only after the scope has no variable of that name, so a
    // script's own variable, a parameter or a captured variable wins, and
    // ordinary variable lookups pay nothing. Rhai's optimizer would
    // propagate such constants into function bodies, over a parameter of
    // the same name (`fn f(pg) { pg }`), so it is off: on opsh's scripts and
    // Rhai's own benchmarks it changed nothing measurable.
    engine.set_optimization_level(rhai::OptimizationLevel::None);
    let mut values = rhai::Module::new();
    values.set_var(
        "args",
        crate::script_args::value(&session.args, session.args_declared).into_read_only(),
    );
    for m in registry::value_modules() {
        let h = Dynamic::from(Handle {
            module: m.name,
            target: None,
        });
        values.set_var(m.name, h.into_read_only());
    }
    if vars == Vars::Hook {
        install_var_hook(&mut engine, &values);
    }
    engine.register_global_module(values.into());

    register_primitives(&mut engine, &session);

    let s = session.clone();
    engine.on_print(move |text| s.out.print(text));
    let s = session.clone();
    engine.on_debug(move |text, src, pos| {
        s.out.note(&format!(
            "[debug] {}:{} {}",
            src.unwrap_or("-"),
            pos,
            crate::redact::redact(text)
        ))
    });
    let cancel = session.cancel.clone();
    engine.on_progress(move |ops| {
        // Every 64th operation: Ctrl-C and the memory budget are still
        // honoured within microseconds, for a fraction of the hook's cost.
        if ops & 63 != 0 {
            return None;
        }
        if let Some(r) = cancel.reason() {
            return Some(Dynamic::from(r.describe().to_string()));
        }
        memory::exceeded().map(Dynamic::from)
    });

    engine.set_module_resolver(resolver::Resolver::new(base_dir, sources));
    engine
}

fn opt_dyn(v: &Option<String>) -> Dynamic {
    v.clone().map(Dynamic::from).unwrap_or(Dynamic::UNIT)
}

/// Registers one Rhai function per (name, arity) that the registry declares.
/// Methods of all modules share the `Handle` receiver type, so a method
/// picks its declaration by the handle's module at call time: `pg.info()`
/// and `redis.info()` are one Rhai function with two declarations.
fn register_primitives(engine: &mut Engine, session: &Arc<Session>) {
    let mut methods: HashMap<(&'static str, usize), Vec<registry::Prim>> = HashMap::new();
    let mut globals: HashSet<(&'static str, usize)> = HashSet::new();
    for p in registry::all() {
        for n in p.min_args()..=p.params.len() {
            if !p.is_global() {
                methods.entry((p.name, n)).or_default().push(p);
                continue;
            }
            if !globals.insert((p.name, n)) {
                continue;
            }
            let s = session.clone();
            let types = vec![TypeId::of::<Dynamic>(); n];
            engine.register_raw_fn(p.name, types, move |ctx, args| {
                let args: Vec<Dynamic> = args.iter().map(|a| (**a).clone()).collect();
                dispatch::invoke(ctx.engine(), &s, p, None, args)
            });
        }
    }
    // Rhai's own `sleep(INT)` and `sleep(FLOAT)` block the thread: no
    // --timeout, no SIGTERM, two Ctrl-C, and a panic on `sleep(1e20)`. A
    // function with exact parameter types is found before one taking
    // Dynamic, and the engine's own functions before its packages', so
    // these make every numeric form opsh's cancellable sleep.
    if let Some(p) = registry::all().find(|p| p.is_global() && p.name == "sleep") {
        for ty in [TypeId::of::<rhai::INT>(), TypeId::of::<rhai::FLOAT>()] {
            let s = session.clone();
            engine.register_raw_fn(p.name, [ty], move |ctx, args| {
                let args: Vec<Dynamic> = args.iter().map(|a| (**a).clone()).collect();
                dispatch::invoke(ctx.engine(), &s, p, None, args)
            });
        }
    }
    for ((name, n), candidates) in methods {
        let s = session.clone();
        let mut types = vec![TypeId::of::<Handle>()];
        types.extend(std::iter::repeat_n(TypeId::of::<Dynamic>(), n));
        engine.register_raw_fn(name, types, move |ctx, args| {
            let handle = args
                .first()
                .and_then(|a| (**a).clone().try_cast::<Handle>())
                .ok_or_else(|| rt_error(format!("{name}: not called on a module")))?;
            let Some(prim) = candidates
                .iter()
                .find(|p| p.module.name == handle.module)
                .copied()
                .or_else(|| registry::find(handle.module, name))
            else {
                return Err(no_such_method(handle.module, name));
            };
            let rest: Vec<Dynamic> = args.iter().skip(1).map(|a| (**a).clone()).collect();
            if rest.len() < prim.min_args() || rest.len() > prim.params.len() {
                return Err(rt_error(format!(
                    "{} takes {} arguments, got {}: {}",
                    prim.full_name(),
                    prim.arity_text(),
                    rest.len(),
                    prim.signature()
                )));
            }
            dispatch::invoke(ctx.engine(), &s, prim, handle.target, rest)
        });
    }
}

fn no_such_method(module: &str, name: &str) -> Box<EvalAltResult> {
    let names = registry::module(module)
        .map(|m| m.primitives.iter().map(|p| p.name).collect::<Vec<_>>())
        .unwrap_or_default();
    let hint = match registry::suggest(name, names.iter().copied()) {
        Some(s) => format!("did you mean {module}.{s}?"),
        None => format!("{module} has: {}", names.join(", ")),
    };
    rt_error(format!("{module} has no function `{name}`; {hint}"))
}
