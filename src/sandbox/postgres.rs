//! A throwaway PostgreSQL: initdb once per machine into a template (per
//! binary version), copy it per instance, start postgres on a free port.
//! Copying the template makes a fresh server cost ~0.5 s instead of ~3 s.

use super::proc::{chown_tree, free_port, log_tail, service_user, spawn, stop};
use super::{err, SandboxError};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub struct Postgres {
    child: Child,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub log: PathBuf,
}

/// The directory with `postgres` and `initdb`: the one that
/// `crate::pgbin` finds `postgres` in.
pub fn bindir() -> Result<PathBuf, SandboxError> {
    crate::pgbin::find("postgres")
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .ok_or_else(|| err("PostgreSQL server binaries not found: install them (`apt-get install postgresql`) or set OPSH_PG_BINDIR"))
}

/// A file only its owner may read (0600 from the start, not chmod after).
fn write_private(path: &Path, text: &str) -> Result<(), SandboxError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| err(format!("cannot write {}: {e}", path.display())))?;
    f.write_all(text.as_bytes())
        .map_err(|e| err(format!("cannot write {}: {e}", path.display())))
}

fn random_password() -> String {
    (0..24).map(|_| fastrand::alphanumeric()).collect()
}

/// The initdb'd template for this binary directory, built on first use.
/// Concurrent builders race harmlessly: each builds privately, the first
/// rename wins, the others use the winner.
fn template(bin: &Path, ids: Option<(u32, u32)>) -> Result<PathBuf, SandboxError> {
    let tag: String = bin
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '_' })
        .collect();
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let final_dir = std::env::temp_dir().join(format!("opsh-pg-template-{uid}-{tag}"));
    if final_dir.join("data/PG_VERSION").is_file() && final_dir.join("password").is_file() {
        // A template from an older opsh wrote it world-readable.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(
            final_dir.join("password"),
            std::fs::Permissions::from_mode(0o600),
        );
        return Ok(final_dir);
    }
    let build = std::env::temp_dir().join(format!(
        "opsh-pg-build-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&build).map_err(|e| err(format!("mkdir {}: {e}", build.display())))?;
    let password = random_password();
    write_private(&build.join("password"), &password)?;
    chown_tree(&build, ids)?;
    let log = build.join("initdb.log");
    let mut cmd = Command::new(bin.join("initdb"));
    cmd.arg("-D")
        .arg(build.join("data"))
        .args([
            "-U",
            "opsh",
            "--auth=scram-sha-256",
            "--no-sync",
            "--no-instructions",
            "-E",
            "UTF8",
            "--locale=C",
        ])
        .arg(format!("--pwfile={}", build.join("password").display()));
    if let Err(e) = run_tool(&mut cmd, &log, ids, "initdb") {
        let _ = std::fs::remove_dir_all(&build);
        return Err(e);
    }
    if std::fs::rename(&build, &final_dir).is_err() {
        let _ = std::fs::remove_dir_all(&build);
    }
    if final_dir.join("data/PG_VERSION").is_file() {
        Ok(final_dir)
    } else {
        Err(err(format!(
            "the PostgreSQL template {} is incomplete",
            final_dir.display()
        )))
    }
}

impl Postgres {
    pub fn start(dir: &Path) -> Result<Postgres, SandboxError> {
        let bin = bindir()?;
        let ids = service_user();
        let tpl = template(&bin, ids)?;
        let password = std::fs::read_to_string(tpl.join("password"))
            .map_err(|e| err(e.to_string()))?
            .trim()
            .to_string();
        crate::redact::register_secret(&password);
        std::fs::create_dir_all(dir).map_err(|e| err(format!("mkdir {}: {e}", dir.display())))?;
        let status = Command::new("cp")
            .arg("-a")
            .arg(tpl.join("data"))
            .arg(dir.join("data"))
            .status()
            .map_err(|e| err(format!("cp: {e}")))?;
        if !status.success() {
            return Err(err("copying the PostgreSQL template failed"));
        }
        give_to(dir, ids)?;
        let mut pg = launch(&bin, dir, ids, password, &[])?;
        pg.own_password(&bin, dir)?;
        Ok(pg)
    }

    /// Every sandbox starts from one template, and so with its password:
    /// each instance sets its own, kept in `dir/password` (0600), so one
    /// sandbox's credentials do not open another's.
    fn own_password(&mut self, bin: &Path, dir: &Path) -> Result<(), SandboxError> {
        let fresh = random_password();
        let out = Command::new(bin.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .args(["-U", &self.user, "-d", "postgres", "-c"])
            // Alphanumeric: nothing to quote.
            .arg(format!("ALTER ROLE {} PASSWORD '{fresh}'", self.user))
            .env("PGPASSWORD", &self.password)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .map_err(|e| err(format!("psql: {e}")))?;
        if !out.status.success() {
            return Err(err(format!(
                "setting the sandbox's own password failed: {}",
                crate::redact::redact(String::from_utf8_lossy(&out.stderr).trim())
            )));
        }
        crate::redact::register_secret(&fresh);
        write_private(&dir.join("password"), &fresh)?;
        self.password = fresh;
        Ok(())
    }

    /// A hot standby of this server in `dir`: a base backup over the
    /// replication protocol (pg_basebackup -R, with a physical slot named
    /// `standby_NAME`), started streaming from it. Its walreceiver reports
    /// itself as `name` (cluster_name), which is what `pg_stat_replication`
    /// shows as application_name.
    pub fn start_standby(&self, dir: &Path, name: &str) -> Result<Postgres, SandboxError> {
        let bin = bindir()?;
        let ids = service_user();
        std::fs::create_dir_all(dir).map_err(|e| err(format!("mkdir {}: {e}", dir.display())))?;
        give_to(dir, ids)?;
        let log = dir.join("basebackup.log");
        let mut cmd = Command::new(bin.join("pg_basebackup"));
        cmd.arg("-D")
            .arg(dir.join("data"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                &self.user,
            ])
            .args(["-R", "-X", "stream", "-c", "fast", "--no-sync", "-C", "-S"])
            .arg(format!("standby_{name}"))
            .env("PGPASSWORD", &self.password);
        run_tool(&mut cmd, &log, ids, "pg_basebackup")?;
        let cluster_name = format!("cluster_name={name}");
        launch(
            &bin,
            dir,
            ids,
            self.password.clone(),
            &["-c", &cluster_name],
        )
    }
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    pub fn url_for(&self, db: &str) -> String {
        format!(
            "postgres://{}:{}@127.0.0.1:{}/{db}",
            self.user, self.password, self.port
        )
    }

    /// Stops the server now (tests use this to make it unreachable).
    pub fn stop(&mut self) {
        stop(&mut self.child, libc::SIGINT, Duration::from_secs(10));
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs a PostgreSQL tool to completion as the server's user; its output
/// goes to `log`, whose tail explains a failure.
fn run_tool(
    cmd: &mut Command,
    log: &Path,
    ids: Option<(u32, u32)>,
    what: &str,
) -> Result<(), SandboxError> {
    let mut child = spawn(cmd, log, ids)?;
    let status = child.wait().map_err(|e| err(e.to_string()))?;
    if status.success() {
        Ok(())
    } else {
        Err(err(format!("{what} failed: {}", log_tail(log))))
    }
}

/// Hands a server's directory to its user; the parent must be traversable
/// by that user too.
fn give_to(dir: &Path, ids: Option<(u32, u32)>) -> Result<(), SandboxError> {
    chown_tree(dir, ids)?;
    if let Some(parent) = dir.parent() {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755));
    }
    Ok(())
}

/// Starts postgres on the data directory `dir/data` on a free port (retried
/// when another process takes the port first) and waits until it accepts
/// connections.
fn launch(
    bin: &Path,
    dir: &Path,
    ids: Option<(u32, u32)>,
    password: String,
    extra: &[&str],
) -> Result<Postgres, SandboxError> {
    let log = dir.join("postgres.log");
    let preload = bin
        .parent()
        .map(|p| p.join("lib/pg_stat_statements.so"))
        .is_some_and(|p| p.is_file());
    let mut last = String::new();
    for _attempt in 0..4 {
        let port = free_port()?;
        let mut cmd = Command::new(bin.join("postgres"));
        cmd.arg("-D")
            .arg(dir.join("data"))
            .arg("-p")
            .arg(port.to_string())
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.display()))
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .args([
                "-c",
                "max_connections=100",
                "-c",
                "log_min_messages=warning",
            ]);
        cmd.args(extra);
        if preload {
            cmd.args([
                "-c",
                "shared_preload_libraries=pg_stat_statements",
                "-c",
                "pg_stat_statements.track=all",
            ]);
        }
        let mut child = spawn(&mut cmd, &log, ids)?;
        match wait_ready(&mut child, &dir.join("data/postmaster.pid"), &log) {
            Ok(()) => {
                return Ok(Postgres {
                    child,
                    port,
                    user: "opsh".into(),
                    password,
                    log,
                })
            }
            Err(e) => {
                stop(&mut child, libc::SIGINT, Duration::from_secs(5));
                last = e.0.clone();
                if !(last.contains("could not bind") || last.contains("in use")) {
                    break;
                }
            }
        }
    }
    Err(err(format!("PostgreSQL did not start: {last}")))
}

/// pg_ctl's own readiness test: the 8th line of postmaster.pid.
fn wait_ready(child: &mut Child, pidfile: &Path, log: &Path) -> Result<(), SandboxError> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(err(format!(
                "postgres exited ({status}): {}",
                log_tail(log)
            )));
        }
        if let Ok(text) = std::fs::read_to_string(pidfile) {
            // "standby" on a hot standby that accepts read-only connections.
            if text
                .lines()
                .nth(7)
                .is_some_and(|l| matches!(l.trim(), "ready" | "standby"))
            {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err(err(format!(
        "postgres was not ready within 60s: {}",
        log_tail(log)
    )))
}
