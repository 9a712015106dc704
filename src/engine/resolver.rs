//! Where `import` looks: the embedded stdlib by bare name, then files in the
//! script's own directory (and below). Absolute paths and `..` escapes are
//! refused: a runbook cannot pull in arbitrary files from the machine. The
//! rule holds for the file's real path, so a symlink cannot lead out either.
//! A module that imports itself, directly or through others, is an error
//! naming the cycle (rather than a stack overflow).

use super::{stdlib, Sources};
use rhai::{Engine, EvalAltResult, Module, ModuleResolver, Position, Scope};

type SharedModule = Arc<Module>;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

pub struct Resolver {
    base: PathBuf,
    sources: Arc<Sources>,
    cache: Mutex<HashMap<String, SharedModule>>,
    /// The modules being loaded, outermost first: an import of one of them
    /// closes a cycle.
    loading: Mutex<Vec<String>>,
}

impl Resolver {
    pub fn new(base: PathBuf, sources: Arc<Sources>) -> Self {
        // The base is compared with real paths: make it one.
        let base = base.canonicalize().unwrap_or(base);
        Resolver {
            base,
            sources,
            cache: Mutex::new(HashMap::new()),
            loading: Mutex::new(Vec::new()),
        }
    }

    /// A module's name as people read it: relative to the script's
    /// directory when it is below it.
    pub fn short<'a>(&self, name: &'a str) -> std::borrow::Cow<'a, str> {
        match Path::new(name).strip_prefix(&self.base) {
            Ok(rel) => rel.display().to_string().into(),
            Err(_) => name.into(),
        }
    }

    /// The error for an import that closes a cycle: `chain` is the modules
    /// being loaded, outermost first, and `name` the one imported again.
    pub fn cycle_error(&self, chain: &[String], name: &str) -> String {
        let start = chain.iter().position(|c| c == name).unwrap_or(0);
        let names: Vec<String> = chain[start..]
            .iter()
            .map(String::as_str)
            .chain([name])
            .map(|n| self.short(n).into_owned())
            .collect();
        format!(
            "import cycle: {} (a module cannot import itself, directly or through others)",
            names.join(" -> ")
        )
    }

    /// The real path of a script, as the resolver names modules, when it is
    /// a file (not stdin or the console).
    pub fn real_name(script: &str) -> Option<String> {
        Path::new(script)
            .canonicalize()
            .ok()
            .map(|p| p.display().to_string())
    }

    /// Finds the source of an import: (name for diagnostics, text).
    pub fn locate(&self, importer: Option<&str>, path: &str) -> Result<(String, String), String> {
        if let Some(text) = stdlib::get(path) {
            return Ok((format!("stdlib/{path}.rhai"), text.to_string()));
        }
        let rel = Path::new(path);
        if rel.is_absolute() || rel.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(format!(
                "import \"{path}\" is refused: imports resolve from the stdlib and the script's own directory, without absolute paths or `..`"
            ));
        }
        // Relative to the importing module's directory when it is a file.
        let dir = importer
            .filter(|s| !s.starts_with("stdlib/"))
            .map(Path::new)
            .and_then(Path::parent)
            .filter(|p| p.starts_with(&self.base))
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.base.clone());
        let mut file = dir.join(rel);
        if file.extension().is_none() {
            file.set_extension("rhai");
        }
        // The rule applies to where the file really is: a symlink in the
        // script's directory may not lead out of it.
        let real = match file.canonicalize() {
            Ok(real) if !real.starts_with(&self.base) => {
                return Err(format!(
                "import \"{path}\" is refused: {} leads to {}, outside the script's directory {}",
                file.display(),
                real.display(),
                self.base.display()
            ))
            }
            Ok(real) => real,
            Err(_) => file.clone(),
        };
        match std::fs::read_to_string(&real) {
            Ok(text) => Ok((real.display().to_string(), crate::script_args::source(text))),
            Err(_) => {
                let known: Vec<&str> = stdlib::STDLIB.iter().map(|(n, _)| *n).collect();
                Err(format!(
                    "module \"{path}\" not found: not in the stdlib ({}) and no file {}",
                    known.join(", "),
                    file.display()
                ))
            }
        }
    }
}

impl ModuleResolver for Resolver {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        let (name, text) = self
            .locate(source, path)
            .map_err(|m| Box::new(EvalAltResult::ErrorRuntime(m.into(), pos)))?;
        let mut chain = self.loading.lock().map(|l| l.clone()).unwrap_or_default();
        if chain.is_empty() {
            // The script itself is not loaded through here, but importing
            // it closes a cycle all the same.
            chain.extend(source.and_then(Self::real_name));
        }
        if chain.contains(&name) {
            return Err(Box::new(EvalAltResult::ErrorRuntime(
                self.cycle_error(&chain, &name).into(),
                pos,
            )));
        }
        if let Some(m) = self.cache.lock().ok().and_then(|c| c.get(&name).cloned()) {
            return Ok(m);
        }
        self.sources.insert(&name, &text);
        let mut inner = chain;
        inner.push(name.clone());
        let outer = self
            .loading
            .lock()
            .map(|mut l| std::mem::replace(&mut *l, inner))
            .unwrap_or_default();
        let loaded = self.load(engine, &name, &text, pos);
        if let Ok(mut l) = self.loading.lock() {
            *l = outer;
        }
        let module = loaded?;
        if let Ok(mut c) = self.cache.lock() {
            c.insert(name, module.clone());
        }
        Ok(module)
    }
}

impl Resolver {
    fn load(
        &self,
        engine: &Engine,
        name: &str,
        text: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        let in_module =
            |e: Box<EvalAltResult>| Box::new(EvalAltResult::ErrorInModule(name.into(), e, pos));
        let mut ast = engine.compile(text).map_err(|e| in_module(e.into()))?;
        ast.set_source(name);
        Ok(Module::eval_ast_as_new(Scope::new(), &ast, engine)
            .map_err(in_module)?
            .into())
    }
}
