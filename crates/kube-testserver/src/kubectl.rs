//! The kubectl binaries that tests hold the server against. One kubectl
//! proves little: what the server must serve changed across client
//! versions (kubectl before 1.29 validates with OpenAPI v2, before 1.21 it
//! knows no batch/v1 CronJob), so tests run with the oldest and the newest
//! kubectl found.
//!
//! Where they come from: `KUBE_TESTSERVER_KUBECTLS` (paths separated by
//! `:`) when set, else every `kubectl` and `kubectl.1.N` on PATH and beside
//! the real file of each `kubectl` (the Google Cloud SDK keeps its versions
//! there). opsh's `dev/test` installs what is missing, looking in the same
//! places.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The newest kubectl must be at least 1.29 (validation through the
/// server's OpenAPI v3), so that every step of every test runs with at
/// least one client.
pub const NEWEST_AT_LEAST: u32 = 29;

/// The environment variable that names the kubectls explicitly.
pub const ENV: &str = "KUBE_TESTSERVER_KUBECTLS";

#[derive(Debug, Clone)]
pub struct Kubectl {
    pub path: PathBuf,
    /// The client's minor version, e.g. 33 for 1.33.1.
    pub minor: u32,
    /// `gitVersion`, e.g. "v1.33.1".
    pub version: String,
}

impl Kubectl {
    /// Asks the binary for its version.
    pub fn probe(path: &Path) -> Result<Kubectl, String> {
        let o = Command::new(path)
            .args(["version", "--client", "-o", "json"])
            // No kubeconfig, no cache: only the client's own version.
            .env("KUBECONFIG", "/dev/null")
            .output()
            .map_err(|e| format!("{}: cannot run: {e}", path.display()))?;
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).map_err(|e| {
            format!(
                "{}: `version --client -o json` did not answer JSON ({e}): {}",
                path.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            )
        })?;
        let c = &v["clientVersion"];
        let minor = c["minor"]
            .as_str()
            .and_then(|m| m.trim_end_matches('+').parse().ok())
            .ok_or_else(|| format!("{}: no client minor version in {v}", path.display()))?;
        Ok(Kubectl {
            path: path.to_path_buf(),
            minor,
            version: c["gitVersion"].as_str().unwrap_or("?").to_string(),
        })
    }

    /// Runs this kubectl against the server of `kubeconfig`, with `home`
    /// as its HOME and discovery cache, so runs never share a cache:
    /// (exit code, stdout, stderr).
    pub fn run(
        &self,
        kubeconfig: &Path,
        home: &Path,
        args: &[&str],
    ) -> Result<(i32, String, String), String> {
        let o = Command::new(&self.path)
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("KUBECACHEDIR", home.join("kubecache"))
            .env("HOME", home)
            .output()
            .map_err(|e| format!("{}: cannot run: {e}", self.describe()))?;
        Ok((
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ))
    }

    /// The same command as `run`, to start and stop by hand (`-w`, `logs -f`).
    pub fn command(&self, kubeconfig: &Path, home: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(&self.path);
        c.args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("KUBECACHEDIR", home.join("kubecache"))
            .env("HOME", home);
        c
    }

    /// "kubectl v1.33.1 (/usr/bin/kubectl)", for messages.
    pub fn describe(&self) -> String {
        format!("kubectl {} ({})", self.version, self.path.display())
    }
}

/// The kubectls to test with: the oldest and the newest minor version
/// found, probed once per process. An error, never an empty list, when
/// fewer than two versions are there or the newest is too old.
pub fn under_test() -> Result<&'static [Kubectl], String> {
    static SET: OnceLock<Result<Vec<Kubectl>, String>> = OnceLock::new();
    SET.get_or_init(|| select(candidates()?))
        .as_deref()
        .map_err(Clone::clone)
}

fn candidates() -> Result<Vec<Kubectl>, String> {
    if let Some(list) = std::env::var_os(ENV).filter(|v| !v.is_empty()) {
        return std::env::split_paths(&list)
            .map(|p| Kubectl::probe(&p))
            .collect();
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    // A kubectl on PATH may be a link into a directory with more versions.
    let linked: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|d| std::fs::canonicalize(d.join("kubectl")).ok())
        .filter_map(|real| real.parent().map(Path::to_path_buf))
        .collect();
    dirs.extend(linked);
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut found = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name == "kubectl"
                    || name
                        .strip_prefix("kubectl.1.")
                        .is_some_and(|m| m.parse::<u32>().is_ok())
            })
            .map(|e| e.path())
            .collect();
        names.sort();
        for path in names {
            let real = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if !real.is_file() || seen.contains(&real) {
                continue;
            }
            seen.push(real);
            let k = Kubectl::probe(&path)?;
            // The Google Cloud SDK's dispatcher reports its own version but
            // runs the kubectl.1.N beside it that suits the server: those
            // are candidates themselves.
            if !k.version.contains("dispatcher") {
                found.push(k);
            }
        }
    }
    Ok(found)
}

fn select(mut found: Vec<Kubectl>) -> Result<Vec<Kubectl>, String> {
    let how = format!(
        "opsh's ./dev/test installs what the tests need, or name the kubectls in {ENV} (paths separated by ':')"
    );
    found.sort_by_key(|k| k.minor);
    let (Some(oldest), Some(newest)) = (found.first(), found.last()) else {
        return Err(format!("kubectl is not installed: {how}"));
    };
    if oldest.minor == newest.minor {
        return Err(format!(
            "the kubectl tests need two kubectl versions (the oldest and newest at hand), found only 1.{}: {}; {how}",
            newest.minor,
            found.iter().map(Kubectl::describe).collect::<Vec<_>>().join(", ")
        ));
    }
    if newest.minor < NEWEST_AT_LEAST {
        return Err(format!(
            "the newest kubectl found is {}; the tests need one of 1.{NEWEST_AT_LEAST} or newer: {how}",
            newest.describe()
        ));
    }
    Ok(vec![oldest.clone(), newest.clone()])
}
