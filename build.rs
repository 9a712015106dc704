//! Stamps the binary with the commit it was built from and the build date
//! (`opsh version`). Git is asked when the source is a checkout; a build
//! without one (a container build context, a tarball) takes
//! OPSH_BUILD_COMMIT or says "unknown". SOURCE_DATE_EPOCH fixes the date
//! for reproducible builds.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=OPSH_BUILD_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    // A new commit or checkout moves HEAD or the branch it points to.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
    }
    if let Some(dir) = git(&["rev-parse", "--git-common-dir"]) {
        println!("cargo:rerun-if-changed={dir}/refs/heads");
        println!("cargo:rerun-if-changed={dir}/packed-refs");
    }
    let commit = std::env::var("OPSH_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
    println!("cargo:rustc-env=OPSH_COMMIT={commit}");
    println!("cargo:rustc-env=OPSH_BUILD_DATE={}", date(secs));
    link_position_dependent();
}

/// Optimised builds on Linux link opsh as a position-dependent executable:
/// a PIE's 33k relative relocations made the loader write to every page of
/// `.data.rel.ro` (~150 copy-on-write faults, a fifth of an empty run's
/// start-up, docs/performance.md). The executable's own image then loads at
/// a fixed address, as kubectl's and helm's do; shared libraries, the heap,
/// the stack and mmap regions stay randomised. OPSH_PIE=1 keeps a PIE for a
/// packager whose policy requires one.
fn link_position_dependent() {
    println!("cargo:rerun-if-env-changed=OPSH_PIE");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    let pie = std::env::var_os("OPSH_PIE").is_some_and(|v| !v.is_empty() && v != "0");
    if release && linux && !pie {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}

/// YYYY-MM-DD of a Unix time (Howard Hinnant's days-to-civil).
fn date(secs: u64) -> String {
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}
