//! The sandbox servers a test starts for itself: `sandbox(&[Pg])`,
//! `sandbox(&[Redis])`, `sandbox(&[Pg, Redis, Monitoring])`.

use opsh::sandbox::{Monitoring, Postgres, RedisServer};

/// A server `sandbox` can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Pg,
    Redis,
    /// Prometheus, Alertmanager, Pushgateway, and an exporter for each of
    /// the other servers started with it.
    Monitoring,
}

/// Starts exactly the `services` named, each on its own free port.
#[track_caller]
pub fn sandbox(services: &[Service]) -> Sandbox {
    let wanted = opsh::sandbox::Services {
        postgres: services.contains(&Service::Pg),
        redis: services.contains(&Service::Redis),
        monitoring: services.contains(&Service::Monitoring),
        kube: false,
    };
    match opsh::sandbox::Sandbox::start(wanted) {
        Ok(inner) => Sandbox { inner },
        Err(e) => panic!("sandbox {services:?} did not start: {e}"),
    }
}

/// opsh's sandbox, with accessors that name the service a test forgot to
/// start instead of unwrapping a `None`.
pub struct Sandbox {
    inner: opsh::sandbox::Sandbox,
}

impl std::ops::Deref for Sandbox {
    type Target = opsh::sandbox::Sandbox;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl std::ops::DerefMut for Sandbox {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

impl Sandbox {
    #[track_caller]
    pub fn pg(&self) -> &Postgres {
        self.inner
            .postgres
            .as_ref()
            .expect("this sandbox runs no PostgreSQL: start it with sandbox(&[Pg, ..])")
    }

    #[track_caller]
    pub fn pg_url(&self) -> String {
        self.pg().url()
    }

    #[track_caller]
    pub fn redis(&self) -> &RedisServer {
        self.inner
            .redis
            .as_ref()
            .expect("this sandbox runs no Redis: start it with sandbox(&[Redis, ..])")
    }

    #[track_caller]
    pub fn redis_url(&self) -> String {
        self.redis().url()
    }

    #[track_caller]
    pub fn monitoring(&self) -> &Monitoring {
        self.inner.monitoring.as_ref().expect(
            "this sandbox runs no monitoring stack: start it with sandbox(&[Monitoring, ..])",
        )
    }

    /// Each running server as the environment variable that makes it the
    /// default target of its kind.
    pub fn target_env(&self) -> Vec<(&'static str, String)> {
        let mut vars = Vec::new();
        if let Some(p) = &self.inner.postgres {
            vars.push(("DATABASE_URL", p.url()));
        }
        if let Some(r) = &self.inner.redis {
            vars.push(("REDIS_URL", r.url()));
        }
        if let Some(m) = &self.inner.monitoring {
            vars.push(("PROMETHEUS_URL", m.prometheus.url()));
            vars.push(("ALERTMANAGER_URL", m.alertmanager.url()));
            vars.push(("PUSHGATEWAY_URL", m.pushgateway.url()));
            vars.push(("LOKI_URL", m.loki.url()));
        }
        vars
    }
}
