//! What lives for one opsh process: the tokio runtime that drives every
//! client, the options, the config, cancellation, audit and client caches.
//! Built once; primitives borrow it through `Call`.

use crate::audit::Audit;
use crate::cancel::Cancel;
use crate::config::{Config, ConfigError, Kind, Target};
use crate::dispatch::OpError;
use crate::output::Output;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

pub struct Options {
    pub dry_run: bool,
    pub yes: bool,
    pub call_timeout: Duration,
    pub max_operations: u64,
    /// Heap bytes a run may add (engine/memory.rs); 0: no limit.
    pub max_memory: u64,
    /// The script's `args` constant.
    pub args: rhai::Map,
    /// How the run is named in the audit log.
    pub script: String,
    /// `--quiet`: no line per mutation on stderr.
    pub quiet: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            dry_run: false,
            yes: false,
            call_timeout: Duration::from_secs(30),
            max_operations: 100_000_000,
            max_memory: crate::engine::memory::DEFAULT_BUDGET,
            args: rhai::Map::new(),
            script: "-".into(),
            quiet: false,
        }
    }
}

type ClientKey = (TypeId, String);
type AnyClient = Box<dyn Any + Send + Sync>;

/// The run's clients (pools, connections) by type and key, at most `cap`
/// of them: past that, the least recently used goes. A fan-out over
/// thousands of targets would otherwise hold a socket per target until the
/// run ends, past a soft limit of 1024 open files, and every connection's
/// buffers with it (500 Redis targets: ~2,000 pages faulted in). A client
/// still in use elsewhere lives on in its clones; one dropped from here is
/// opened again if it is needed again.
struct Clients {
    map: HashMap<ClientKey, (AnyClient, u64)>,
    /// Ticks on every use: the smallest stamp is the least recently used.
    clock: u64,
    cap: usize,
}

impl Clients {
    fn new() -> Clients {
        Clients {
            map: HashMap::new(),
            clock: 0,
            cap: clients_cap(),
        }
    }

    fn get<T: Clone + 'static>(&mut self, k: &ClientKey) -> Option<T> {
        self.clock += 1;
        let (c, used) = self.map.get_mut(k)?;
        *used = self.clock;
        c.downcast_ref::<T>().cloned()
    }

    /// Inserts `c`; returns what it evicted, to be dropped after the lock
    /// is released (closing a pool is not free).
    fn insert(&mut self, k: ClientKey, c: AnyClient) -> Vec<AnyClient> {
        self.clock += 1;
        let mut evicted: Vec<AnyClient> = self
            .map
            .insert(k, (c, self.clock))
            .map(|(old, _)| old)
            .into_iter()
            .collect();
        while self.map.len() > self.cap {
            let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            evicted.extend(self.map.remove(&oldest).map(|(c, _)| c));
        }
        evicted
    }
}

/// How many clients a run keeps: 128, or a quarter of the open-file limit
/// when that is lower, leaving descriptors for the connections in flight.
fn clients_cap() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into `lim`.
    let files = match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } {
        0 => usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX),
        _ => 1024,
    };
    (files / 4).clamp(8, 128)
}

/// One change a run made, as its mutation line says it.
#[derive(Debug, Clone)]
pub struct Change {
    pub line: String,
    /// false: the mutation was sent and its outcome is unknown.
    pub known: bool,
}

pub struct Session {
    /// Shut down without waiting for its worker threads (see `Drop`).
    pub rt: std::mem::ManuallyDrop<tokio::runtime::Runtime>,
    pub config: RwLock<Config>,
    pub cancel: Cancel,
    pub audit: Audit,
    pub out: Output,
    pub yes: bool,
    pub call_timeout: Duration,
    pub max_operations: u64,
    pub max_memory: u64,
    pub args: rhai::Map,
    /// The script declares its arguments (`//! args:`): `args` holds every
    /// declared name, and reading another is an error (script_args::Args).
    pub args_declared: bool,
    /// Stubs, call log, recording and replay (`opsh test`, --record, --replay).
    pub hooks: std::sync::Arc<crate::testing::hooks::Hooks>,
    /// `--only` / `--skip`: check names (or `prefix*`) the `checks` stdlib
    /// runs or leaves out, read through `run_options()`.
    pub only: Vec<String>,
    pub skip: Vec<String>,
    /// Checks and mutations of this run, for `--report`.
    pub journal: crate::report::Journal,
    /// `--quiet`: dispatch prints no line per mutation.
    pub quiet: bool,
    /// What this run changed, in order: the exit code and the end of a
    /// stopped run say it (see `crate::exit::after_changes`).
    changes: Mutex<Vec<Change>>,
    /// Refusals a script did not see as errors (an item of `parallel`).
    swallowed_refusals: Mutex<Vec<String>>,
    dry_run: AtomicBool,
    /// The running script's functions, so `parallel` can call named
    /// function pointers from worker threads.
    script: RwLock<Option<std::sync::Arc<rhai::AST>>>,
    clients: Mutex<Clients>,
}

impl Session {
    pub fn new(
        opts: Options,
        config: Config,
        out: Output,
        audit: Audit,
    ) -> std::io::Result<Session> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("opsh-io")
            // Blocking-pool threads come and go: what each counted goes
            // to the process's memory count before it ends.
            .on_thread_stop(crate::engine::memory::flush_thread)
            .build()?;
        Ok(Session {
            rt: std::mem::ManuallyDrop::new(rt),
            config: RwLock::new(config),
            cancel: Cancel::default(),
            audit,
            out,
            yes: opts.yes,
            call_timeout: opts.call_timeout,
            max_operations: opts.max_operations,
            max_memory: opts.max_memory,
            args: opts.args,
            args_declared: false,
            hooks: Default::default(),
            only: Vec::new(),
            skip: Vec::new(),
            journal: Default::default(),
            quiet: opts.quiet,
            changes: Mutex::new(Vec::new()),
            swallowed_refusals: Mutex::new(Vec::new()),
            dry_run: AtomicBool::new(opts.dry_run),
            script: RwLock::new(None),
            clients: Mutex::new(Clients::new()),
        })
    }

    /// A real mutation that changed something (`known`), or whose outcome
    /// is unknown (`!known`), as its one line says it.
    pub fn record_change(&self, line: String, known: bool) {
        if let Ok(mut v) = self.changes.lock() {
            v.push(Change { line, known });
        }
    }

    pub fn changes(&self) -> Vec<Change> {
        self.changes.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// A refusal inside `parallel`/`for_each_target`: the item reports it,
    /// and the run's exit code too (see docs/unattended.md).
    pub fn record_swallowed_refusal(&self, what: String) {
        if let Ok(mut v) = self.swallowed_refusals.lock() {
            v.push(what);
        }
    }

    pub fn swallowed_refusals(&self) -> Vec<String> {
        self.swallowed_refusals
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    pub fn dry_run(&self) -> bool {
        self.dry_run.load(Ordering::Relaxed)
    }

    pub fn set_dry_run(&self, on: bool) {
        self.dry_run.store(on, Ordering::Relaxed);
    }

    pub fn set_script(&self, ast: std::sync::Arc<rhai::AST>) {
        if let Ok(mut s) = self.script.write() {
            *s = Some(ast);
        }
    }

    pub fn script(&self) -> std::sync::Arc<rhai::AST> {
        self.script
            .read()
            .ok()
            .and_then(|s| s.clone())
            .unwrap_or_default()
    }

    pub fn resolve(&self, kind: Kind, name_or_url: Option<&str>) -> Result<Target, ConfigError> {
        match self.config.read() {
            Ok(c) => c.resolve(kind, name_or_url),
            Err(poisoned) => poisoned.into_inner().resolve(kind, name_or_url),
        }
    }

    /// A client (pool, connection) per key, created on first use and reused
    /// for the rest of the run. The lock is not held while connecting.
    pub fn client<T: Clone + Send + Sync + 'static>(
        &self,
        key: &str,
        make: impl FnOnce() -> Result<T, OpError>,
    ) -> Result<T, OpError> {
        let k = (TypeId::of::<T>(), key.to_string());
        if let Some(c) = self.clients.lock().ok().and_then(|mut m| m.get::<T>(&k)) {
            return Ok(c);
        }
        let c = make()?;
        let evicted = match self.clients.lock() {
            Ok(mut m) => m.insert(k, Box::new(c.clone())),
            Err(_) => Vec::new(),
        };
        drop(evicted);
        Ok(c)
    }

    /// Forgets a cached client, e.g. after its server went away.
    pub fn drop_client<T: 'static>(&self, key: &str) {
        let removed = match self.clients.lock() {
            Ok(mut m) => m.map.remove(&(TypeId::of::<T>(), key.to_string())),
            Err(_) => None,
        };
        drop(removed);
    }
}

impl Drop for Session {
    /// Dropping a runtime joins its worker threads, idle or not: at the end
    /// of a run that is time for nothing (start-up benchmarks saw it).
    fn drop(&mut self) {
        // SAFETY: `rt` is taken once, here, and never used again.
        let rt = unsafe { std::mem::ManuallyDrop::take(&mut self.rt) };
        rt.shutdown_background();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ClientKey {
        (TypeId::of::<u8>(), name.to_string())
    }

    #[test]
    fn past_its_cap_the_cache_drops_the_least_recently_used_client() {
        let mut c = Clients::new();
        c.cap = 2;
        assert!(c.insert(key("a"), Box::new(1u8)).is_empty());
        assert!(c.insert(key("b"), Box::new(2u8)).is_empty());
        // `a` is used again, so `b` is the one to go.
        assert_eq!(c.get::<u8>(&key("a")), Some(1));
        let gone = c.insert(key("c"), Box::new(3u8));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].downcast_ref::<u8>(), Some(&2));
        assert_eq!(c.get::<u8>(&key("b")), None);
        assert_eq!(c.get::<u8>(&key("a")), Some(1));
        assert_eq!(c.get::<u8>(&key("c")), Some(3));
        // Replacing a key hands back the old client, and evicts nothing.
        let old = c.insert(key("c"), Box::new(4u8));
        assert_eq!(old.len(), 1);
        assert_eq!(c.map.len(), 2);
    }
}
