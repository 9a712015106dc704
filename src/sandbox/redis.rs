//! A throwaway redis-server: no persistence, loopback only.

use super::proc::{free_port, log_tail, spawn, stop, which};
use super::{err, SandboxError};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
    tls: bool,
}

fn binary() -> Result<PathBuf, SandboxError> {
    if let Some(p) = std::env::var_os("OPSH_REDIS_SERVER").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    which("redis-server").ok_or_else(|| err("redis-server not found: install it (`apt-get install redis-server`) or set OPSH_REDIS_SERVER"))
}

impl RedisServer {
    pub fn start(dir: &Path) -> Result<RedisServer, SandboxError> {
        Self::start_with(dir, None, &[])
    }

    /// A node with cluster mode on; the caller assigns slots and MEETs.
    pub fn start_cluster_node(dir: &Path) -> Result<RedisServer, SandboxError> {
        let conf = dir.join("nodes.conf");
        let conf = conf.to_string_lossy().into_owned();
        Self::start_with(
            dir,
            None,
            &["--cluster-enabled", "yes", "--cluster-config-file", &conf],
        )
    }

    /// A TLS-only server (`rediss://`) with the given PEM certificate and key;
    /// clients are not asked for certificates.
    pub fn start_tls(dir: &Path, cert: &Path, key: &Path) -> Result<RedisServer, SandboxError> {
        Self::start_with(dir, Some((cert, key)), &[])
    }

    /// A Sentinel monitoring the master on `master_port` under the name
    /// `service`: the sandbox's stand-in for a managed HA Redis.
    pub fn start_sentinel(
        dir: &Path,
        service: &str,
        master_port: u16,
    ) -> Result<RedisServer, SandboxError> {
        let bin = binary()?;
        std::fs::create_dir_all(dir).map_err(|e| err(format!("mkdir {}: {e}", dir.display())))?;
        let log = dir.join("sentinel.log");
        let port = free_port()?;
        // Sentinel rewrites its config file, so it must be its own writable file.
        let conf = dir.join("sentinel.conf");
        let text = format!(
            "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor {service} 127.0.0.1 {master_port} 1\nsentinel down-after-milliseconds {service} 5000\n",
            dir.display()
        );
        std::fs::write(&conf, text).map_err(|e| err(format!("write {}: {e}", conf.display())))?;
        let mut cmd = Command::new(&bin);
        cmd.arg(&conf).arg("--sentinel");
        let mut child = spawn(&mut cmd, &log, None)?;
        match wait_ready(&mut child, port, &log) {
            Ok(()) => Ok(RedisServer {
                child,
                port,
                log,
                tls: false,
            }),
            Err(e) => {
                stop(&mut child, libc::SIGTERM, Duration::from_secs(2));
                Err(e)
            }
        }
    }

    fn start_with(
        dir: &Path,
        tls: Option<(&Path, &Path)>,
        extra: &[&str],
    ) -> Result<RedisServer, SandboxError> {
        let bin = binary()?;
        std::fs::create_dir_all(dir).map_err(|e| err(format!("mkdir {}: {e}", dir.display())))?;
        let log = dir.join("redis.log");
        let mut last = String::new();
        for _attempt in 0..4 {
            let port = free_port()?;
            let mut cmd = Command::new(&bin);
            match tls {
                None => cmd.args(["--port", &port.to_string()]),
                Some((cert, key)) => cmd
                    .args([
                        "--port",
                        "0",
                        "--tls-port",
                        &port.to_string(),
                        "--tls-auth-clients",
                        "no",
                    ])
                    .arg("--tls-cert-file")
                    .arg(cert)
                    .arg("--tls-key-file")
                    .arg(key),
            };
            cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args([
                    "--daemonize",
                    "no",
                    "--protected-mode",
                    "no",
                    "--logfile",
                    "",
                ])
                .args(extra)
                .arg("--dir")
                .arg(dir);
            let mut child = spawn(&mut cmd, &log, None)?;
            let ready = match tls {
                None => wait_ready(&mut child, port, &log),
                Some(_) => wait_log(&mut child, &log, "Ready to accept connections"),
            };
            match ready {
                Ok(()) => {
                    return Ok(RedisServer {
                        child,
                        port,
                        log,
                        tls: tls.is_some(),
                    })
                }
                Err(e) => {
                    stop(&mut child, libc::SIGTERM, Duration::from_secs(2));
                    last = e.0;
                    if !last.contains("in use") {
                        break;
                    }
                }
            }
        }
        Err(err(format!("redis-server did not start: {last}")))
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    pub fn stop(&mut self) {
        stop(&mut self.child, libc::SIGTERM, Duration::from_secs(5));
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wait_ready(child: &mut Child, port: u16, log: &Path) -> Result<(), SandboxError> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(err(format!(
                "redis-server exited ({status}): {}",
                log_tail(log)
            )));
        }
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
            let mut buf = [0u8; 64];
            if s.write_all(b"PING\r\n").is_ok() {
                if let Ok(n) = s.read(&mut buf) {
                    if buf[..n].starts_with(b"+PONG") {
                        return Ok(());
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(err(format!(
        "redis-server was not ready within 30s: {}",
        log_tail(log)
    )))
}

/// Readiness from the server's own log, for a TLS port a plain PING cannot probe.
fn wait_log(child: &mut Child, log: &Path, needle: &str) -> Result<(), SandboxError> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(err(format!(
                "redis-server exited ({status}): {}",
                log_tail(log)
            )));
        }
        if std::fs::read_to_string(log).is_ok_and(|t| t.contains(needle)) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(err(format!(
        "redis-server was not ready within 30s: {}",
        log_tail(log)
    )))
}
