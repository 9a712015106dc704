//! Ephemeral real services on free loopback ports, in a temp dir, torn down
//! on drop. `opsh sandbox` and the integration tests use this same code.

pub mod loki;
pub mod monitoring;
mod postgres;
mod proc;
mod redis;

pub use kube_testserver::{KubeServer, TlsFiles};
pub use loki::LokiServer;
pub use monitoring::Monitoring;
pub use postgres::Postgres;
pub use proc::free_port;
pub use redis::RedisServer;

use crate::config::Kind;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy)]
pub struct Services {
    pub postgres: bool,
    pub redis: bool,
    /// Prometheus, Alertmanager, Pushgateway, an exporter for each of the
    /// servers above, and Loki holding an API service's logs.
    pub monitoring: bool,
    /// The in-process Kubernetes API test server (crates/kube-testserver).
    pub kube: bool,
}

impl Default for Services {
    fn default() -> Self {
        Services {
            postgres: true,
            redis: true,
            monitoring: false,
            kube: true,
        }
    }
}

impl Services {
    /// Everything installed on this machine: what `opsh sandbox` starts.
    pub fn all_available() -> Services {
        Services {
            monitoring: monitoring::available(),
            ..Services::default()
        }
    }
}

#[derive(Debug)]
pub struct SandboxError(pub String);

impl std::fmt::Display for SandboxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SandboxError {}

impl From<kube_testserver::Error> for SandboxError {
    fn from(e: kube_testserver::Error) -> Self {
        SandboxError(e.to_string())
    }
}

pub(crate) fn err(msg: impl Into<String>) -> SandboxError {
    SandboxError(msg.into())
}

/// A directory removed with everything in it on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Result<TempDir, SandboxError> {
        let p = std::env::temp_dir().join(format!(
            "{prefix}-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&p)
            .map_err(|e| err(format!("cannot create {}: {e}", p.display())))?;
        Ok(TempDir(p))
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Field order matters: servers stop before their directory is removed,
/// and the monitoring stack before the servers it watches.
pub struct Sandbox {
    pub monitoring: Option<Monitoring>,
    pub postgres: Option<Postgres>,
    pub redis: Option<RedisServer>,
    pub kube: Option<KubeServer>,
    _dir: TempDir,
}

impl Sandbox {
    pub fn start(services: Services) -> Result<Sandbox, SandboxError> {
        let dir = TempDir::new("opsh-sandbox")?;
        let postgres = if services.postgres {
            Some(Postgres::start(&dir.path().join("pg"))?)
        } else {
            None
        };
        let redis = if services.redis {
            Some(RedisServer::start(&dir.path().join("redis"))?)
        } else {
            None
        };
        let mut monitoring = if services.monitoring {
            Some(Monitoring::start(
                &dir.path().join("monitoring"),
                postgres.as_ref().map(|p| p.url()).as_deref(),
                redis.as_ref().map(|r| r.url()).as_deref(),
            )?)
        } else {
            None
        };
        let kube = if services.kube {
            Some(KubeServer::start(&dir.path().join("kube"))?)
        } else {
            None
        };
        if let (Some(m), Some(k)) = (&mut monitoring, &kube) {
            m.loki.ship_kube(k.port);
        }
        Ok(Sandbox {
            monitoring,
            postgres,
            redis,
            kube,
            _dir: dir,
        })
    }

    pub fn targets(&self) -> Vec<(Kind, String)> {
        let mut t = Vec::new();
        if let Some(p) = &self.postgres {
            t.push((Kind::Pg, p.url()));
        }
        if let Some(r) = &self.redis {
            t.push((Kind::Redis, r.url()));
        }
        if let Some(m) = &self.monitoring {
            t.push((Kind::Prom, m.prometheus.url()));
            t.push((Kind::Alertmanager, m.alertmanager.url()));
            t.push((Kind::Pushgateway, m.pushgateway.url()));
            t.push((Kind::Loki, m.loki.url()));
        }
        if let Some(k) = &self.kube {
            t.push((Kind::Kube, k.kubeconfig.display().to_string()));
        }
        t
    }

    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(p) = &self.postgres {
            parts.push(format!("PostgreSQL on 127.0.0.1:{}", p.port));
        }
        if let Some(r) = &self.redis {
            parts.push(format!("Redis on 127.0.0.1:{}", r.port));
        }
        if let Some(m) = &self.monitoring {
            parts.push(m.describe());
        }
        if let Some(k) = &self.kube {
            parts.push(format!("Kubernetes API on 127.0.0.1:{}", k.port));
        }
        parts.join(", ")
    }
}
