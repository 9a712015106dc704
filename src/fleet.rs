//! `--each-target KIND:GLOB`: the same script once per matching target, each
//! in its own `opsh run` child process (isolated: its own session, lock-free,
//! its target as the default of KIND), with bounded concurrency, a failure
//! budget and a per-target summary.

use crate::args::Flag;
use crate::cancel::Cancel;
use crate::config::Kind;
use crate::exit;
use rhai::{Dynamic, Map};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `*` any run of characters, `?` one character; everything else literal.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

pub fn matching(names: &[String], pattern: &str) -> Vec<String> {
    let mut v: Vec<String> = names
        .iter()
        .filter(|n| glob_match(pattern, n))
        .cloned()
        .collect();
    v.sort();
    v
}

/// `pg:prod-*` -> (Kind::Pg, "prod-*").
pub fn parse_spec(spec: &str) -> Result<(Kind, String), String> {
    let (k, pat) = spec.split_once(':').unwrap_or((spec, "*"));
    let kind = Kind::parse(k).ok_or_else(|| {
        format!(
            "--each-target {spec:?}: unknown kind {k:?} (kinds: {})",
            Kind::ALL.map(Kind::name).join(", ")
        )
    })?;
    Ok((
        kind,
        if pat.is_empty() {
            "*".into()
        } else {
            pat.into()
        },
    ))
}

/// The command line minus `parent` flags (`--x v`, `--x=v`, `--flag`):
/// the rest is what each child runs.
pub fn child_args(argv: &[OsString], parent: &[Flag]) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut args = argv.iter();
    while let Some(a) = args.next() {
        let flag = a.to_str().and_then(|s| s.strip_prefix("--"));
        let (name, inline_value) = match flag.map(|f| f.split_once('=')) {
            Some(Some((n, _))) => (Some(n), true),
            Some(None) => (flag, false),
            None => (None, false),
        };
        match name.and_then(|n| parent.iter().find(|f| f.long == n)) {
            Some(f) => {
                if f.takes_value && !inline_value {
                    args.next();
                }
            }
            None => out.push(a.clone()),
        }
    }
    out
}

/// `out/report.json` + `prod-1` -> `out/report.prod-1.json`.
pub fn per_target_report(path: &std::path::Path, target: &str) -> std::path::PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    path.with_file_name(format!("{stem}.{target}{ext}"))
}

pub struct Plan {
    pub kind: Kind,
    pub targets: Vec<String>,
    pub concurrency: usize,
    pub max_failures: usize,
    pub report: Option<std::path::PathBuf>,
}

struct Outcome {
    code: Option<i32>,
    secs: f64,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Waits for a child, forwarding SIGTERM when the run is cancelled.
pub fn wait_forwarding(child: &mut Child, cancel: &Cancel) -> std::io::Result<i32> {
    let mut forwarded = false;
    loop {
        if let Some(st) = child.try_wait()? {
            use std::os::unix::process::ExitStatusExt;
            return Ok(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)));
        }
        if !forwarded && cancel.reason().is_some() {
            terminate(child);
            forwarded = true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

pub fn terminate(child: &Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
}

fn run_one(plan: &Plan, args: &[OsString], target: &str, cancel: &Cancel) -> Outcome {
    let started = Instant::now();
    let exe = std::env::current_exe().unwrap_or_else(|_| "opsh".into());
    let mut cmd = Command::new(exe);
    // After the user's flags, so this --target wins over one of theirs; the
    // parent holds the lock, so children take none (not even the script's).
    cmd.args(args)
        .arg("--no-lock")
        .arg("--target")
        .arg(format!("{}={target}", plan.kind.name()));
    if let Some(r) = &plan.report {
        cmd.arg("--report").arg(per_target_report(r, target));
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("OPSH_FLEET_TARGET", target);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Outcome {
                code: None,
                secs: 0.0,
                stdout: Vec::new(),
                stderr: format!("cannot start opsh: {e}\n").into_bytes(),
            }
        }
    };
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let code = wait_forwarding(&mut child, cancel).ok();
    Outcome {
        code,
        secs: started.elapsed().as_secs_f64(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

fn prefixed(target: &str, bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| format!("[{target}] {l}\n"))
        .collect()
}

/// Runs the fleet, each child with `args` (`child_args`), and returns the
/// exit code: 0 when every target passed; else the failing targets' code
/// when they all agree, 2 otherwise.
pub fn run(plan: &Plan, args: &[OsString], cancel: &Cancel) -> i32 {
    let next = AtomicUsize::new(0);
    let failures = AtomicUsize::new(0);
    let rows: Mutex<Vec<Option<Map>>> = Mutex::new(vec![None; plan.targets.len()]);
    tracing::info!(
        kind = plan.kind.name(),
        targets = plan.targets.len(),
        "fleet run started"
    );
    std::thread::scope(|s| {
        for _ in 0..plan.concurrency.clamp(1, 256).min(plan.targets.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(t) = plan.targets.get(i) else { break };
                let mut row = crate::value::map_of([("target", Dynamic::from(t.clone()))]);
                if failures.load(Ordering::SeqCst) >= plan.max_failures || cancel.reason().is_some()
                {
                    row.insert("status".into(), "skipped".into());
                    row.insert("exit".into(), Dynamic::UNIT);
                    row.insert("seconds".into(), Dynamic::UNIT);
                    row.insert(
                        "detail".into(),
                        "failure budget spent or run stopping".into(),
                    );
                } else {
                    let o = run_one(plan, args, t, cancel);
                    let _ = std::io::stdout().write_all(prefixed(t, &o.stdout).as_bytes());
                    let _ = std::io::stderr().write_all(prefixed(t, &o.stderr).as_bytes());
                    let code = o.code.unwrap_or(exit::ERROR);
                    if code != exit::OK {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                    let last_err = String::from_utf8_lossy(&o.stderr)
                        .lines()
                        .find(|l| l.starts_with("error") || l.contains("checks failed"))
                        .unwrap_or("")
                        .to_string();
                    tracing::info!(target_name = %t, exit = code, "fleet target finished");
                    row.insert("status".into(), crate::report::status_name(code).into());
                    row.insert("exit".into(), Dynamic::from_int(i64::from(code)));
                    row.insert(
                        "seconds".into(),
                        Dynamic::from_float((o.secs * 10.0).round() / 10.0),
                    );
                    row.insert("detail".into(), last_err.into());
                }
                if let Ok(mut r) = rows.lock() {
                    r[i] = Some(row);
                }
            });
        }
    });
    let rows: Vec<Map> = rows
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect();
    let codes: Vec<Option<i64>> = rows
        .iter()
        .map(|r| r.get("exit").and_then(|d| d.as_int().ok()))
        .collect();
    let columns = ["target", "status", "exit", "seconds", "detail"].map(String::from);
    crate::stdio::outln(format_args!(
        "{}",
        crate::output::table(&rows, &columns, false).trim_end()
    ));
    crate::stdio::outln(format_args!(
        "{} targets: {} ok, {} failed, {} skipped",
        rows.len(),
        codes.iter().filter(|c| **c == Some(0)).count(),
        codes
            .iter()
            .filter(|c| matches!(c, Some(x) if *x != 0))
            .count(),
        codes.iter().filter(|c| c.is_none()).count()
    ));
    if let Some(r) = cancel.reason() {
        return r.exit_code();
    }
    fleet_code(&codes)
}

/// The fleet's code from its children's (None: skipped). 3 promises that
/// nothing was changed, so it stands only when no target ran through or
/// changed something: refusals beside targets that completed (0) or
/// stopped after changes (4) make the fleet partial (4).
fn fleet_code(codes: &[Option<i64>]) -> i32 {
    let failed: Vec<i64> = codes
        .iter()
        .map(|c| c.unwrap_or(-1))
        .filter(|c| *c != 0)
        .collect();
    let went_through = codes.iter().any(|c| matches!(c, Some(0) | Some(4)));
    let code = match failed.first() {
        None => exit::OK,
        Some(&c) if c > 0 && failed.iter().all(|x| *x == c) => c as i32,
        Some(_) => exit::ERROR,
    };
    match code {
        exit::REFUSED if went_through => exit::PARTIAL,
        _ if failed.contains(&i64::from(exit::PARTIAL)) && code == exit::ERROR => exit::PARTIAL,
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fleet_is_refused_only_when_nothing_went_through() {
        assert_eq!(fleet_code(&[Some(3), Some(3)]), exit::REFUSED);
        assert_eq!(fleet_code(&[Some(0), Some(3)]), exit::PARTIAL);
        assert_eq!(fleet_code(&[Some(4), Some(2)]), exit::PARTIAL);
        assert_eq!(fleet_code(&[Some(1), Some(2)]), exit::ERROR);
        assert_eq!(fleet_code(&[Some(0), None]), exit::ERROR);
        assert_eq!(fleet_code(&[Some(0), Some(0)]), exit::OK);
    }

    #[test]
    fn globs() {
        assert!(glob_match("prod-*", "prod-eu-1"));
        assert!(glob_match("*", ""));
        assert!(glob_match("p?od-*-1", "prod-eu-1"));
        assert!(!glob_match("prod-*", "staging-1"));
        assert!(!glob_match("prod", "prod-1"));
    }

    #[test]
    fn child_args_drop_parent_flags() {
        let parent = crate::args::fleet_parent_flags();
        let v: Vec<OsString> = [
            "--each-target",
            "pg:x*",
            "--concurrency=3",
            "-y",
            "--lock",
            "l",
            "--no-lock",
            "run",
            "f.rhai",
            "--report",
            "r.json",
            "--arg",
            "lock=x",
            "--reporting",
        ]
        .map(OsString::from)
        .to_vec();
        assert_eq!(
            child_args(&v, &parent),
            ["-y", "run", "f.rhai", "--arg", "lock=x", "--reporting"].map(OsString::from)
        );
        assert_eq!(
            per_target_report(std::path::Path::new("out/r.json"), "prod-1"),
            std::path::PathBuf::from("out/r.prod-1.json")
        );
    }
}
