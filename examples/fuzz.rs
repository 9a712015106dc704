//! The fuzzer's command line (`dev/fuzz` runs it): every target of
//! `opsh::fuzz`, or those named, for a bounded time; prints executions and
//! findings per target and exits 1 when anything panicked.
//!
//! ```sh
//! cargo run --example fuzz -- --seconds 60            # all targets
//! cargo run --example fuzz -- --seconds 20 run check  # two of them
//! ```
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Duration;

fn main() {
    let mut seconds = 60u64;
    let mut seed: Option<u64> = None;
    let mut names: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(seconds),
            "--seed" => seed = args.next().and_then(|s| s.parse().ok()),
            "--list" => {
                for t in opsh::fuzz::TARGETS {
                    println!("{}", t.name);
                }
                return;
            }
            other => names.push(other.to_string()),
        }
    }
    let targets: Vec<&'static opsh::fuzz::Target> = opsh::fuzz::TARGETS
        .iter()
        .filter(|t| names.is_empty() || names.iter().any(|n| n == t.name))
        .collect();
    if targets.is_empty() {
        eprintln!("no such target; --list shows them");
        std::process::exit(64);
    }
    let seed = seed.unwrap_or_else(|| fastrand::u64(..));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    println!(
        "fuzzing {} target(s) for {seconds}s, seed {seed}",
        targets.len()
    );
    let reports = opsh::fuzz::run(
        &targets,
        Duration::from_secs(seconds),
        seed,
        Some(root.join("seeds")),
        Some(root.join("findings")),
    );
    let mut total = 0;
    let mut found = 0;
    for r in &reports {
        total += r.execs;
        found += r.findings.len();
        println!(
            "{:<12} {:>9} execs  corpus {:>4}  findings {}",
            r.target,
            r.execs,
            r.corpus,
            r.findings.len()
        );
        for f in &r.findings {
            println!("  PANIC {}: {}", f.target, f.message);
        }
    }
    println!("{total} executions, {found} finding(s)");
    if found > 0 {
        println!("inputs saved under {}", root.join("findings").display());
        std::process::exit(1);
    }
}
