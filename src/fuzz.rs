//! Fuzzing on stable Rust: a small mutation fuzzer (no coverage feedback,
//! no nightly, no cargo-fuzz) over the engine entry (`check` and `run` of a
//! script, in-process, with tight limits) and every parser of outside input:
//! config TOML, kubeconfig YAML, `--arg`, Prometheus exposition text, Redis
//! INFO, dump headers (pg_dump archive listings, plain SQL, SQLite, RDB),
//! recordings, schedule files, what the console does with typed text, and
//! the redaction of error text that quotes files.
//!
//! Each input runs under `catch_unwind`; a panic is a finding, saved with
//! its input. Seeds come from `fuzz/seeds/TARGET/*` (committed) plus a few
//! built in here. `dev/fuzz` runs every target for a bounded time
//! (`cargo run --example fuzz -- --seconds 60`); `cargo test --lib fuzz`
//! runs a short smoke of each. docs/safety.md says how to read the output.

use crate::audit::Audit;
use crate::config::Config;
use crate::engine::{self, Sources};
use crate::output::{ColorChoice, Format, Output};
use crate::session::{Options, Session};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One thing to fuzz: a name (also its seed directory), tokens worth
/// inserting, seeds, and the function that feeds it one input.
pub struct Target {
    pub name: &'static str,
    dict: &'static [&'static str],
    seeds: &'static [&'static str],
    run: fn(&mut Ctx, &[u8]),
}

/// What a target may keep between inputs: a scratch directory, and the
/// session and engine of the engine targets (built once: a runtime per
/// input would measure tokio, not opsh).
pub struct Ctx {
    dir: PathBuf,
    engine: Option<(Arc<Session>, rhai::Engine)>,
}

impl Ctx {
    fn new() -> std::io::Result<Ctx> {
        let dir = std::env::temp_dir().join(format!(
            "opsh-fuzz-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&dir)?;
        // Modules the scripts may import, a cycle among them.
        std::fs::write(dir.join("lib.rhai"), "fn twice(x) { x * 2 }\n")?;
        std::fs::write(dir.join("loop_a.rhai"), "import \"loop_b\" as b;\n")?;
        std::fs::write(dir.join("loop_b.rhai"), "import \"loop_a\" as a;\n")?;
        Ok(Ctx { dir, engine: None })
    }

    /// A file in the scratch directory holding `data`.
    fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.dir.join(name);
        let _ = std::fs::write(&p, data);
        p
    }

    fn engine(&mut self) -> Option<&(Arc<Session>, rhai::Engine)> {
        if self.engine.is_none() {
            let opts = Options {
                max_operations: 20_000,
                call_timeout: Duration::from_millis(200),
                ..Options::default()
            };
            let session = Session::new(
                opts,
                Config::default(),
                Output::new(Format::Text, ColorChoice::Never),
                Audit::new(PathBuf::from("/dev/null"), "fuzz"),
            )
            .ok()?;
            // Test mode answering every system call with a sample of its
            // declared result: nothing leaves the process, yet the code
            // after each call runs.
            session.hooks.set_test_mode(true, false);
            session.hooks.set_synthesize(true);
            let session = Arc::new(session);
            let mut engine = engine::build(
                session.clone(),
                Arc::new(Sources::default()),
                self.dir.clone(),
            );
            engine.set_max_string_size(1 << 20);
            engine.set_max_array_size(100_000);
            engine.set_max_map_size(100_000);
            engine.on_print(|_| {});
            engine.on_debug(|_, _, _| {});
            self.engine = Some((session, engine));
        }
        self.engine.as_ref()
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

const SCRIPT_DICT: &[&str] = &[
    "let x = ",
    "fn f(a) { ",
    "}",
    "{",
    "(",
    ")",
    "[",
    "]",
    "#{",
    "a: 1",
    ", ",
    ";",
    "\n",
    "import \"lib\" as l;",
    "import \"loop_a\" as a;",
    "import \"checks\" as c;",
    "l::twice(",
    "pg.query(\"select 1\")",
    "pg.exec(\"delete from t\")",
    "redis.info()",
    "k8s.scale(\"web\", 3)",
    "sleep(",
    "sleep(1e20)",
    "sleep(-1)",
    "duration(\"",
    "parallel([1,2], |x| x)",
    "show(",
    "print(",
    "throw ",
    "try { } catch (e) { }",
    "fail(\"x\")",
    "exit(3)",
    "\"",
    "`${",
    "}`",
    "1e308",
    "-9223372036854775808",
    "9223372036854775807",
    "0.0",
    "/",
    "%",
    "**",
    "..",
    "..=",
    "while true { }",
    "loop { break; }",
    "for i in 0..10 { }",
    "args.x",
    "env(\"HOME\")",
    "metrics.parse(\"",
    "json.parse(\"",
    "http.hmac_sha256(\"k\", ",
    "to_string()",
    ".len()",
    "é",
    "\u{1F600}",
    "\u{feff}",
];

fn run_script(ctx: &mut Ctx, data: &[u8]) {
    let src = text(data);
    let Some((session, engine)) = ctx.engine() else {
        return;
    };
    session.hooks.reset();
    session.cancel.reset();
    let Ok(mut ast) = engine.compile(&src) else {
        return;
    };
    ast.set_source("fuzz.rhai");
    let ast = Arc::new(ast);
    session.set_script(ast.clone());
    // The operation limit ends loops; this ends waits the limit cannot see.
    let deadline = session
        .cancel
        .arm_timeout(&session.rt, Duration::from_secs(2));
    let result = engine.run_ast(&ast);
    deadline.abort();
    if let Err(e) = result {
        // What the operator would read: rendering must not panic either.
        let sources = Sources::default();
        sources.insert("fuzz.rhai", &src);
        let renderer = crate::diagnostic::Renderer {
            sources: &sources,
            color: false,
        };
        let _ = renderer.eval_error("fuzz.rhai", &e);
        let _ = crate::diagnostic::exit_code(&e, session.cancel.reason());
    }
}

fn check_script(ctx: &mut Ctx, data: &[u8]) {
    let src = text(data);
    let modules: Vec<&str> = crate::registry::value_modules().map(|m| m.name).collect();
    let _ = crate::engine::lex::lex(&src);
    let _ = crate::engine::lex::significant(&src);
    let scan = crate::engine::scan::scan(&src, &modules);
    let resolver = engine::resolver::Resolver::new(ctx.dir.clone(), Arc::new(Sources::default()));
    for (path, _, _) in &scan.imports {
        let _ = resolver.locate(None, path);
    }
    let Some((_, engine)) = ctx.engine() else {
        return;
    };
    if let Err(e) = engine.compile(&src) {
        let sources = Sources::default();
        sources.insert("fuzz.rhai", &src);
        let renderer = crate::diagnostic::Renderer {
            sources: &sources,
            color: false,
        };
        let _ = renderer.parse_error("fuzz.rhai", &e);
    }
}

fn config_toml(ctx: &mut Ctx, data: &[u8]) {
    let p = ctx.file("config.toml", data);
    if let Ok(cfg) = Config::load(Some(&p)) {
        for kind in &crate::config::Kind::ALL {
            for name in cfg.target_names(*kind) {
                let _ = cfg.resolve(*kind, Some(&name));
            }
            let _ = cfg.resolve(*kind, None);
        }
    }
}

fn kubeconfig(ctx: &mut Ctx, data: &[u8]) {
    let src = text(data);
    if let Err(e) = kube::config::Kubeconfig::from_yaml(&src) {
        let _ = crate::redact::file_error(&e.to_string(), &src);
    }
    let p = ctx.file("kubeconfig", data);
    let _ = crate::config::kube_current_context(Some(&p));
}

fn script_args(_: &mut Ctx, data: &[u8]) {
    let src = text(data);
    let pairs: Vec<String> = src.split('\n').map(str::to_string).collect();
    if let Ok(given) = crate::script_args::split_pairs(&pairs) {
        let _ = crate::script_args::resolve("fuzz.rhai", None, given);
    }
    // The same text as a script header: the `//! args:` block parser.
    if let Ok(Some(decl)) = crate::script_args::declaration(&src) {
        if let Ok(given) = crate::script_args::split_pairs(&pairs) {
            let _ = crate::script_args::resolve("fuzz.rhai", Some(&decl), given);
        }
    }
}

fn exposition(_: &mut Ctx, data: &[u8]) {
    let src = text(data);
    if let Ok(p) = crate::modules::prom::exposition::parse(&src) {
        let _ = crate::modules::metrics::to_rows(p);
    }
}

fn redis_info(_: &mut Ctx, data: &[u8]) {
    let _ = crate::modules::redis::info::parse_info(&text(data));
}

fn dump_header(ctx: &mut Ctx, data: &[u8]) {
    use crate::modules::backup::formats;
    let format = formats::detect(data);
    let _ = format.describe();
    if let Some(h) = formats::sqlite::header(data) {
        let _ = formats::sqlite::judge_size(&h, data.len() as u64);
    }
    if let Ok(info) = formats::sql::scan(&mut std::io::Cursor::new(data)) {
        let _ = info.judge();
        let _ = info.rows();
    }
    let toc = formats::pgarchive::parse_list(&text(data));
    let _ = toc.summary(&Default::default());
    let p = ctx.file("dump.rdb", data);
    if let Ok(info) = formats::rdb::read(&p) {
        let _ = info.judge();
    }
}

fn recording(ctx: &mut Ctx, data: &[u8]) {
    let p = ctx.file("recording.json", data);
    if let Ok(r) = crate::record::load(&p) {
        let _ = r.replay.unused();
    }
}

fn schedule(ctx: &mut Ctx, data: &[u8]) {
    let p = ctx.file("jobs.toml", data);
    let _ = crate::schedule::Schedule::load(&p);
}

fn redaction(_: &mut Ctx, data: &[u8]) {
    let src = text(data);
    let (a, b) = src.split_at(
        src.char_indices()
            .nth(src.chars().count() / 2)
            .map_or(0, |(i, _)| i),
    );
    let _ = crate::redact::redact(&src);
    let _ = crate::redact::file_error(a, b);
    let _ = crate::redact::mask_secret_assignments(&src);
    let d = rhai::Dynamic::from(src.clone());
    let _ = crate::value::parse_duration(&d);
    let _ = crate::value::size_from_str(&src);
}

fn console(_: &mut Ctx, data: &[u8]) {
    crate::repl::fuzz_typed(&text(data));
}

/// Every target, in the order `dev/fuzz` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "run",
        dict: SCRIPT_DICT,
        seeds: &[
            "let x = 1; while x < 10 { x += 1 } print(x);",
            "import \"lib\" as l; print(l::twice(21));",
            "import \"loop_a\" as a;",
            "let r = pg.query(\"select 1 as n\"); show(r); pg.exec(\"delete from t\");",
            "sleep(0); sleep(0.0); sleep(\"1ms\"); duration(\"5m\");",
            "let m = #{a: [1, 2.5, \"x\", ()], b: #{c: true}}; print(m.to_json());",
            "try { throw #{x: 1} } catch (e) { print(e) }",
            "parallel([1, 2, 3], |x| x * 2);",
            "fn f(n) { if n == 0 { 0 } else { f(n - 1) } } f(50);",
        ],
        run: run_script,
    },
    Target {
        name: "check",
        dict: SCRIPT_DICT,
        seeds: &[
            "pg.query(\"select 1\", #{older_thn: \"1m\"});",
            "import \"loop_a\" as a; import \"../x\" as y; import \"/etc/passwd\" as z;",
            "redis.info(\"memory\", 1, 2);",
            "fn f(a, b) { `${a}${b}` }\n// comment\n/* block */ let s = \"\\u{1F600}\";",
        ],
        run: check_script,
    },
    Target {
        name: "console",
        dict: &[":", ":help ", ":target pg ", ":load ", "é", "日本", "pg.", "k8s.scale(", "(", "\"", "#{", "basic: [", "password: \"", "\n", " "],
        seeds: &[":hlep", ":é", "pg.query(\"select 1\", ", "let db = pg.connect(\"postgres://u:pw@h/db\"); db.", "http.get(u, #{basic: [\"u\", \"p\"]})"],
        run: console,
    },
    Target {
        name: "config",
        dict: &[
            "[pg.", "[redis.", "[kube.", "[defaults]", "[notify.", "url = ", "protected = true",
            "password_env = ", "\"postgres://u:pw@h/db\"", "timeout = \"30s\"", "=", "\"", "'",
            "\n", "]", "[[", "{", "}",
        ],
        seeds: &[
            "[defaults]\ntimeout = \"30s\"\npg = \"prod\"\n\n[pg.prod]\nurl = \"postgres://app:pw@db/app\"\nprotected = true\n",
            "[redis.cache]\nurl_env = \"REDIS_URL\"\n[kube.prod]\ncontext = \"prod\"\nnamespace = \"web\"\nprotected = true\n",
        ],
        run: config_toml,
    },
    Target {
        name: "kubeconfig",
        dict: &[
            "token: ", "client-key-data: ", "password: ", "- name: ", "  ", "\n", ":", "[", "{",
            "current-context: ", "contexts:", "users:", "clusters:", "server: https://h:6443",
        ],
        seeds: &[
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\nusers:\n- name: u\n  user:\n    token: abcdef123456\ncontexts:\n- name: x\n  context: {cluster: c, user: u, namespace: web}\ncurrent-context: x\n",
        ],
        run: kubeconfig,
    },
    Target {
        name: "args",
        dict: &["=", "[", "]", "{", "}", "\"", "true", "1e309", "007", "-0", "\n", "_"],
        seeds: &["n=1\nname=web\nratio=0.5\nflag=true\nlist=[1,2]\nmap={\"a\":1}\nbig=12345678901234567890"],
        run: script_args,
    },
    Target {
        name: "exposition",
        dict: &[
            "# HELP ", "# TYPE ", " counter", " gauge", " histogram", "_bucket{le=\"+Inf\"} ", "{",
            "}", "=\"", "\"", ",", " ", "\n", "NaN", "+Inf", "-Inf", "1e308", "\\\"", "\\n",
        ],
        seeds: &[
            "# HELP up Whether up.\n# TYPE up gauge\nup{job=\"api\",instance=\"h:1\"} 1\nhttp_requests_total{code=\"200\"} 1027 1395066363000\nlat_bucket{le=\"0.5\"} 3\nlat_bucket{le=\"+Inf\"} 5\nlat_sum 2.5\nlat_count 5\nescaped{l=\"a\\\"b\\\\c\\n\"} NaN\n",
        ],
        run: exposition,
    },
    Target {
        name: "redis_info",
        dict: &["# ", ":", ",", "=", "\r\n", "db0:keys=1,expires=0", "used_memory:", "role:"],
        seeds: &[
            "# Server\r\nredis_version:7.2.4\r\nuptime_in_seconds:100\r\n# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n# Keyspace\r\ndb0:keys=10,expires=2,avg_ttl=0\r\n# Replication\r\nrole:master\r\nslave0:ip=10.0.0.2,port=6379,state=online,offset=100,lag=0\r\n",
        ],
        run: redis_info,
    },
    Target {
        name: "dump_header",
        dict: &[
            "PGDMP", "SQLite format 3\0", "REDIS0011", "COPY public.t (id) FROM stdin;\n", "\\.\n",
            "CREATE TABLE public.t (\n", ";", "; Archive created at ", "TABLE DATA public t ",
            "\u{ff}", "\0",
        ],
        seeds: &[
            "--\n-- PostgreSQL database dump\n--\nCREATE TABLE public.t (\n    id integer\n);\nCOPY public.t (id) FROM stdin;\n1\n2\n\\.\n-- PostgreSQL database dump complete\n",
            ";\n; Archive created at 2026-01-01 00:00:00 UTC\n;     dbname: app\n;     TOC Entries: 3\n;\n;\n; Selected TOC Entries:\n;\n210; 1259 16385 TABLE public t app\n3300; 0 16385 TABLE DATA public t app\n",
            "REDIS0011\u{fa}\tredis-ver\u{5}7.2.4\u{ff}\0\0\0\0\0\0\0\0",
        ],
        run: dump_header,
    },
    Target {
        name: "recording",
        dict: &["{", "}", "[", "]", "\"calls\":", "\"primitive\":", "\"args\":", "\"error\":", "null", ","],
        seeds: &[
            "{\"opsh_recording\": 1, \"script\": \"x.rhai\", \"args\": {\"id\": 1}, \"calls\": [{\"primitive\": \"pg.query\", \"args\": {\"sql\": \"select 1\"}, \"result\": [{\"n\": 1}]}, {\"primitive\": \"pg.exec\", \"args\": {}, \"error\": {\"kind\": \"timeout\", \"message\": \"m\"}}]}",
        ],
        run: recording,
    },
    Target {
        name: "schedule",
        dict: &["[[job]]", "name = ", "cron = ", "script = ", "timeout = ", "\"", "\n", "*", "/"],
        seeds: &[
            "timezone = \"utc\"\ngrace = \"30s\"\n\n[[job]]\nname = \"daily\"\ncron = \"0 15 6 * * *\"\nscript = \"check.rhai\"\ntimeout = \"15m\"\nargs = { max = 70 }\n",
        ],
        run: schedule,
    },
    Target {
        name: "redaction",
        dict: &["://", ":", "@", "/", "token: ", "password = \"", "%", "%4", "\n", "\"", "'", " | "],
        seeds: &[
            "connect postgres://app:s3cr%40t@db:5432/x failed\nuser:\n  token: abc\npassword = \"pw\" 5m 10MB",
        ],
        run: redaction,
    },
];

/// A panic the fuzzer provoked: where, and the input that did it.
pub struct Finding {
    pub target: &'static str,
    pub message: String,
    pub input: Vec<u8>,
}

/// How one target's run went.
pub struct Report {
    pub target: &'static str,
    pub execs: u64,
    pub corpus: usize,
    pub findings: Vec<Finding>,
}

/// The seeds of a target: built-in, then `seeds_dir/TARGET/*`.
fn seeds(t: &Target, seeds_dir: Option<&Path>) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = t.seeds.iter().map(|s| s.as_bytes().to_vec()).collect();
    if let Some(entries) = seeds_dir.and_then(|d| std::fs::read_dir(d.join(t.name)).ok()) {
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        out.extend(files.iter().filter_map(|f| std::fs::read(f).ok()));
    }
    out
}

fn mutate(rng: &mut fastrand::Rng, corpus: &[Vec<u8>], dict: &[&str]) -> Vec<u8> {
    let mut data = corpus[rng.usize(..corpus.len())].clone();
    for _ in 0..rng.usize(1..=4) {
        let len = data.len();
        match rng.u8(..8) {
            0 if len > 0 => {
                let i = rng.usize(..len);
                data[i] ^= 1 << rng.u8(..8);
            }
            1 if len > 0 => {
                let i = rng.usize(..len);
                data[i] = *rng
                    .choice(b"\0\xff\x7f\x80\"'\\{}[]()\n:=,;.$`-0123456789".iter())
                    .unwrap_or(&0);
            }
            2 | 3 if !dict.is_empty() => {
                let word = dict[rng.usize(..dict.len())].as_bytes();
                let at = rng.usize(..=len);
                data.splice(at..at, word.iter().copied());
            }
            4 if len > 0 => {
                let a = rng.usize(..len);
                let b = (a + rng.usize(1..=16)).min(len);
                data.drain(a..b);
            }
            5 if len > 0 => {
                let a = rng.usize(..len);
                let b = (a + rng.usize(1..=64)).min(len);
                let chunk: Vec<u8> = data[a..b].to_vec();
                let at = rng.usize(..=len);
                data.splice(at..at, chunk);
            }
            6 => {
                let other = &corpus[rng.usize(..corpus.len())];
                let cut = rng.usize(..=data.len());
                let from = rng.usize(..=other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            _ if len > 0 => data.truncate(rng.usize(..len)),
            _ => {}
        }
    }
    data.truncate(64 * 1024);
    data
}

/// The message and place of the last panic on a fuzz thread.
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);
const THREAD: &str = "opsh-fuzz";

/// Fuzzes `targets` for `budget` in all, split evenly; `seed` makes a run
/// repeatable. Findings are saved to `findings_dir` when given. Runs on a
/// thread of its own with a large stack, so deep recursion in a parser is
/// a finding of its own kind (an abort) rather than a test-harness crash.
pub fn run(
    targets: &[&'static Target],
    budget: Duration,
    seed: u64,
    seeds_dir: Option<PathBuf>,
    findings_dir: Option<PathBuf>,
) -> Vec<Report> {
    let targets: Vec<&'static Target> = targets.to_vec();
    let worker = std::thread::Builder::new()
        .name(THREAD.into())
        .stack_size(256 << 20)
        .spawn(move || {
            fuzz_all(
                &targets,
                budget,
                seed,
                seeds_dir.as_deref(),
                findings_dir.as_deref(),
            )
        });
    match worker.map(|w| w.join()) {
        Ok(Ok(reports)) => reports,
        _ => Vec::new(),
    }
}

fn fuzz_all(
    targets: &[&'static Target],
    budget: Duration,
    seed: u64,
    seeds_dir: Option<&Path>,
    findings_dir: Option<&Path>,
) -> Vec<Report> {
    let previous = std::sync::Arc::new(std::panic::take_hook());
    let chained = previous.clone();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() != Some(THREAD) {
            return chained(info);
        }
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = Some(format!("{what} (at {at})"));
        }
    }));
    let Ok(mut ctx) = Ctx::new() else {
        return Vec::new();
    };
    let mut rng = fastrand::Rng::with_seed(seed);
    let share = budget / u32::try_from(targets.len().max(1)).unwrap_or(1);
    let mut reports = Vec::new();
    for t in targets {
        let mut corpus = seeds(t, seeds_dir);
        let seeded = corpus.len();
        let mut report = Report {
            target: t.name,
            execs: 0,
            corpus: seeded,
            findings: Vec::new(),
        };
        let until = Instant::now() + share;
        let mut next_seed = 0;
        while Instant::now() < until {
            // Every seed once as it is, then mutations.
            let input = if next_seed < corpus.len().min(seeded) {
                next_seed += 1;
                corpus[next_seed - 1].clone()
            } else {
                mutate(&mut rng, &corpus, t.dict)
            };
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| (t.run)(&mut ctx, &input)));
            report.execs += 1;
            match outcome {
                Err(_) => {
                    let message = LAST_PANIC
                        .lock()
                        .ok()
                        .and_then(|mut l| l.take())
                        .unwrap_or_else(|| "panic".into());
                    // One finding per place: the message often quotes the input.
                    let place = |m: &str| m.rsplit(" (at ").next().map(str::to_string);
                    if !report
                        .findings
                        .iter()
                        .any(|f| place(&f.message) == place(&message))
                    {
                        if let Some(dir) = findings_dir {
                            let _ = std::fs::create_dir_all(dir);
                            let n = report.findings.len();
                            let _ = std::fs::write(dir.join(format!("{}-{n}", t.name)), &input);
                        }
                        report.findings.push(Finding {
                            target: t.name,
                            message,
                            input,
                        });
                    }
                    // A panic may leave the engine's session half-way.
                    ctx.engine = None;
                }
                // Inputs that ran are kept now and then, so that mutations
                // wander further from the seeds.
                Ok(()) if corpus.len() < 512 && rng.u8(..32) == 0 => corpus.push(input),
                Ok(()) => {}
            }
        }
        report.corpus = corpus.len();
        reports.push(report);
    }
    let _ = std::panic::take_hook();
    if let Ok(prev) = std::sync::Arc::try_unwrap(previous) {
        std::panic::set_hook(prev);
    }
    reports
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A few seconds of every target, as the test suite's smoke: the seeds
    /// and a few hundred mutations each must not panic.
    #[test]
    fn fuzz_smoke_finds_no_panic() {
        let targets: Vec<&'static Target> = TARGETS.iter().collect();
        let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
        let reports = run(&targets, Duration::from_secs(4), 7, Some(seeds), None);
        assert_eq!(reports.len(), TARGETS.len());
        for r in &reports {
            assert!(r.execs > 0, "{} ran nothing", r.target);
            let found: Vec<String> = r
                .findings
                .iter()
                .map(|f| format!("{}: {} on {:?}", f.target, f.message, text(&f.input)))
                .collect();
            assert!(found.is_empty(), "{found:#?}");
        }
    }
}
