//! Benchmark: `redis.info()` over N sandbox redis-servers, sequential loop
//! versus `parallel(...)`, through the real opsh binary.
//!
//!   cargo build --release && cargo run --release --example redis_fanout -- 50
//!
//! OPSH_BIN selects the binary (default target/release/opsh).

use std::process::Command;
use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50);
    let bin = std::env::var("OPSH_BIN").unwrap_or_else(|_| "target/release/opsh".into());
    let started = Instant::now();
    let mut servers = Vec::with_capacity(n);
    for _ in 0..n {
        match opsh::sandbox::Sandbox::start(opsh::sandbox::Services {
            postgres: false,
            redis: true,
            monitoring: false,
            kube: false,
        }) {
            Ok(s) => servers.push(s),
            Err(e) => {
                eprintln!("cannot start redis-server: {e}");
                std::process::exit(1);
            }
        }
    }
    eprintln!("{n} redis-servers up in {:.1?}", started.elapsed());
    let urls: Vec<String> = servers
        .iter()
        .filter_map(|s| s.redis.as_ref().map(|r| r.url()))
        .collect();
    let list = serde_json::to_string(&urls).unwrap_or_default();
    let scripts = [
        ("sequential", "let t = now(); for u in args.urls { redis.connect(u).info(); } print(now() - t);"),
        ("parallel(16)", "let t = now(); let r = parallel(args.urls, |u| redis.connect(u).info(), #{concurrency: 16}); if r.filter(|x| !x.ok).len() > 0 { fail(\"errors\") } print(now() - t);"),
        ("parallel(50)", "let t = now(); let r = parallel(args.urls, |u| redis.connect(u).info(), #{concurrency: 50}); if r.filter(|x| !x.ok).len() > 0 { fail(\"errors\") } print(now() - t);"),
    ];
    let dir = std::env::temp_dir().join(format!("opsh-fanout-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    for (name, script) in scripts {
        let file = dir.join("s.rhai");
        let _ = std::fs::write(&file, script);
        let mut times = Vec::new();
        for _ in 0..5 {
            let out = Command::new(&bin)
                .arg("run")
                .arg(&file)
                .arg("--arg")
                .arg(format!("urls={list}"))
                .env("OPSH_AUDIT_LOG", dir.join("audit.jsonl"))
                .output();
            match out {
                Ok(o) if o.status.success() => {
                    let s = String::from_utf8_lossy(&o.stdout);
                    times.push(s.trim().parse::<f64>().unwrap_or(f64::NAN) * 1000.0);
                }
                Ok(o) => eprintln!("{name}: {}", String::from_utf8_lossy(&o.stderr)),
                Err(e) => eprintln!("{name}: cannot run {bin}: {e}"),
            }
        }
        times.sort_by(f64::total_cmp);
        let median = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
        println!(
            "{name:>14}: median {median:.1} ms over {} runs ({n} servers, INFO each)",
            times.len()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
