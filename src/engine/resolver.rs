//! Where `import` looks: the embedded stdlib by bare name, then files in the
//! script's own directory (and below). Absolute paths and `..` escapes are
//! refused: a runbook cannot pull in arbitrary files from the machine.

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
}

impl Resolver {
    pub fn new(base: PathBuf, sources: Arc<Sources>) -> Self {
        Resolver {
            base,
            sources,
            cache: Mutex::new(HashMap::new()),
        }
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
        match std::fs::read_to_string(&file) {
            Ok(text) => Ok((file.display().to_string(), crate::script_args::source(text))),
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
        if let Some(m) = self.cache.lock().ok().and_then(|c| c.get(&name).cloned()) {
            return Ok(m);
        }
        self.sources.insert(&name, &text);
        let in_module =
            |e: Box<EvalAltResult>| Box::new(EvalAltResult::ErrorInModule(name.clone(), e, pos));
        let mut ast = engine.compile(&text).map_err(|e| in_module(e.into()))?;
        ast.set_source(name.as_str());
        let module: SharedModule = Module::eval_ast_as_new(Scope::new(), &ast, engine)
            .map_err(in_module)?
            .into();
        if let Ok(mut c) = self.cache.lock() {
            c.insert(name, module.clone());
        }
        Ok(module)
    }
}
