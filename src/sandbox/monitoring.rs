//! A real monitoring stack from the Debian packages: Prometheus scraping
//! itself, the Pushgateway and the exporters of the sandbox's PostgreSQL
//! and Redis every second, with Alertmanager wired in and alert rules a
//! test can make fire by pushing a metric.

use super::proc::{free_port, log_tail, spawn, stop, which};
use super::{err, SandboxError};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The binaries, by Debian name; `OPSH_<NAME>` (e.g. OPSH_PROMETHEUS)
/// overrides each.
const PROMETHEUS: &str = "prometheus";
const ALERTMANAGER: &str = "prometheus-alertmanager";
const PUSHGATEWAY: &str = "prometheus-pushgateway";
const PG_EXPORTER: &str = "prometheus-postgres-exporter";
const REDIS_EXPORTER: &str = "prometheus-redis-exporter";

/// Alert rules the sandbox's Prometheus evaluates every second. Pushing
/// `opsh_sandbox_alert` > 0 fires `OpshSandboxAlert` after 1s; pushing
/// `opsh_sandbox_pending` > 0 keeps `OpshSandboxPending` pending for an hour.
const RULES: &str = r#"groups:
  - name: opsh-sandbox
    interval: 1s
    rules:
      - alert: OpshSandboxAlert
        expr: opsh_sandbox_alert > 0
        for: 1s
        labels:
          severity: warning
        annotations:
          summary: "opsh_sandbox_alert is {{ $value }}"
      - alert: OpshSandboxPending
        expr: opsh_sandbox_pending > 0
        for: 1h
        labels:
          severity: info
        annotations:
          summary: "opsh_sandbox_pending is {{ $value }}"
      - alert: RedisTooManyKeys
        expr: sum(redis_db_keys) > 1000
        for: 1s
        labels:
          severity: warning
        annotations:
          summary: "Redis holds {{ $value }} keys"
"#;

const ALERTMANAGER_CONFIG: &str = r#"route:
  receiver: sink
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: sink
"#;

pub fn binary(name: &str) -> Option<PathBuf> {
    let var = format!(
        "OPSH_{}",
        name.trim_start_matches("prometheus-")
            .replace('-', "_")
            .to_uppercase()
    );
    match std::env::var_os(&var).filter(|v| !v.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None => which(name).or_else(|| {
            let p = Path::new("/usr/bin").join(name);
            p.is_file().then_some(p)
        }),
    }
}

/// Whether Prometheus, Alertmanager and the Pushgateway are installed (the
/// exporters are optional: without one, its service is not scraped).
pub fn available() -> bool {
    [PROMETHEUS, ALERTMANAGER, PUSHGATEWAY]
        .iter()
        .all(|b| binary(b).is_some())
}

fn need(name: &str) -> Result<PathBuf, SandboxError> {
    binary(name).ok_or_else(|| {
        err(format!(
            "{name} not found: install it (`apt-get install {name}`) or set OPSH_{}",
            name.trim_start_matches("prometheus-")
                .replace('-', "_")
                .to_uppercase()
        ))
    })
}

/// One HTTP server process on a loopback port.
pub struct Daemon {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Daemon {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        stop(&mut self.child, libc::SIGTERM, Duration::from_secs(5));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts `bin` on a free port until it answers 200 on `ready_path`;
/// retries on another port when the chosen one was taken meanwhile.
fn start_daemon(
    what: &str,
    bin: &Path,
    dir: &Path,
    ready_path: &str,
    configure: impl Fn(&mut Command, u16),
) -> Result<Daemon, SandboxError> {
    let log = dir.join(format!("{what}.log"));
    let mut last = String::new();
    for _attempt in 0..4 {
        let port = free_port()?;
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir);
        configure(&mut cmd, port);
        let mut child = spawn(&mut cmd, &log, None)?;
        match wait_http(&mut child, port, ready_path, &log, what) {
            Ok(()) => return Ok(Daemon { child, port, log }),
            Err(e) => {
                stop(&mut child, libc::SIGTERM, Duration::from_secs(2));
                last = e.0;
                if !last.contains("in use") {
                    break;
                }
            }
        }
    }
    Err(err(format!("{what} did not start: {last}")))
}

fn wait_http(
    child: &mut Child,
    port: u16,
    path: &str,
    log: &Path,
    what: &str,
) -> Result<(), SandboxError> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(err(format!("{what} exited ({status}): {}", log_tail(log))));
        }
        if http_get(port, path).is_some_and(|(code, _)| code == 200) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err(err(format!(
        "{what} was not ready within 30s: {}",
        log_tail(log)
    )))
}

/// A minimal blocking GET on loopback, enough for readiness polling
/// without an async runtime: (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((code, body))
}

/// Field order is stop order: Prometheus first, so it does not log
/// scrape failures of exporters that are going away.
pub struct Monitoring {
    pub prometheus: Daemon,
    pub alertmanager: Daemon,
    pub pushgateway: Daemon,
    pub postgres_exporter: Option<Daemon>,
    pub redis_exporter: Option<Daemon>,
    /// In-process (super::loki): Grafana Loki is not packaged for Debian.
    pub loki: super::LokiServer,
}

impl Monitoring {
    /// `pg_url`/`redis_url`: the sandbox servers to export, when started.
    pub fn start(
        dir: &Path,
        pg_url: Option<&str>,
        redis_url: Option<&str>,
    ) -> Result<Monitoring, SandboxError> {
        let (prom_bin, am_bin, pgw_bin) =
            (need(PROMETHEUS)?, need(ALERTMANAGER)?, need(PUSHGATEWAY)?);
        std::fs::create_dir_all(dir).map_err(|e| err(format!("mkdir {}: {e}", dir.display())))?;
        let write = |name: &str, text: &str| {
            std::fs::write(dir.join(name), text)
                .map_err(|e| err(format!("write {}: {e}", dir.join(name).display())))
        };

        let pushgateway = start_daemon("pushgateway", &pgw_bin, dir, "/-/ready", |c, port| {
            c.arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--persistence.file=")
                .arg("--log.level=warn");
        })?;

        write("alertmanager.yml", ALERTMANAGER_CONFIG)?;
        let am_data = dir.join("alertmanager-data");
        let alertmanager = start_daemon("alertmanager", &am_bin, dir, "/-/ready", |c, port| {
            c.arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg(format!(
                    "--config.file={}",
                    dir.join("alertmanager.yml").display()
                ))
                .arg(format!("--storage.path={}", am_data.display()))
                // No gossip: clustering would bind a fixed port (9094).
                .arg("--cluster.listen-address=")
                .arg("--log.level=warn");
        })?;

        let postgres_exporter = match (pg_url, binary(PG_EXPORTER)) {
            (Some(url), Some(bin)) => {
                let dsn = if url.contains('?') {
                    format!("{url}&sslmode=disable")
                } else {
                    format!("{url}?sslmode=disable")
                };
                Some(start_daemon(
                    "postgres_exporter",
                    &bin,
                    dir,
                    "/metrics",
                    |c, port| {
                        c.env("DATA_SOURCE_NAME", &dsn)
                            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                            .arg("--log.level=warn");
                    },
                )?)
            }
            _ => None,
        };
        let redis_exporter = match (redis_url, binary(REDIS_EXPORTER)) {
            (Some(url), Some(bin)) => Some(start_daemon(
                "redis_exporter",
                &bin,
                dir,
                "/metrics",
                |c, port| {
                    c.arg("-redis.addr")
                        .arg(url)
                        .arg("-web.listen-address")
                        .arg(format!("127.0.0.1:{port}"));
                },
            )?),
            _ => None,
        };

        write("rules.yml", RULES)?;
        let mut jobs = vec![
            ("pushgateway", pushgateway.addr(), true),
            ("alertmanager", alertmanager.addr(), false),
        ];
        if let Some(d) = &postgres_exporter {
            jobs.push(("postgres", d.addr(), false));
        }
        if let Some(d) = &redis_exporter {
            jobs.push(("redis", d.addr(), false));
        }
        let tsdb = dir.join("tsdb");
        let config_path = dir.join("prometheus.yml");
        let am_addr = alertmanager.addr();
        let prometheus = start_daemon("prometheus", &prom_bin, dir, "/-/ready", |c, port| {
            // Prometheus scrapes itself, so its config names its own port:
            // written per attempt.
            let mut all = jobs.clone();
            all.insert(0, ("prometheus", format!("127.0.0.1:{port}"), false));
            let _ = std::fs::write(&config_path, prometheus_config(&all, &am_addr, dir));
            c.arg(format!("--config.file={}", config_path.display()))
                .arg(format!("--storage.tsdb.path={}", tsdb.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn");
        })?;
        let mut loki = super::LokiServer::start()?;
        loki.start_workload()?;
        let m = Monitoring {
            loki,
            prometheus,
            alertmanager,
            pushgateway,
            postgres_exporter,
            redis_exporter,
        };
        m.wait_scraped(jobs.len() + 1)?;
        Ok(m)
    }

    /// Ready means every target has been scraped once, so a script's first
    /// query already sees data. Polls `up`, never a fixed sleep. This takes
    /// ~5 s whatever the scrape interval: Prometheus 2.x applies discovered
    /// targets on a fixed 5 s tick.
    fn wait_scraped(&self, targets: usize) -> Result<(), SandboxError> {
        let start = Instant::now();
        let mut seen = 0;
        while start.elapsed() < Duration::from_secs(30) {
            if let Some((200, body)) = http_get(self.prometheus.port, "/api/v1/query?query=up") {
                seen = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["data"]["result"].as_array().map(Vec::len))
                    .unwrap_or(0);
                if seen >= targets {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(err(format!(
            "Prometheus scraped {seen} of {targets} targets within 30s: {}",
            log_tail(&self.prometheus.log)
        )))
    }

    pub fn describe(&self) -> String {
        let mut parts = vec![
            format!("Prometheus on {}", self.prometheus.addr()),
            format!("Alertmanager on {}", self.alertmanager.addr()),
            format!("Pushgateway on {}", self.pushgateway.addr()),
            format!("Loki on {}", self.loki.addr()),
        ];
        if let Some(d) = &self.postgres_exporter {
            parts.push(format!("postgres_exporter on {}", d.addr()));
        }
        if let Some(d) = &self.redis_exporter {
            parts.push(format!("redis_exporter on {}", d.addr()));
        }
        parts.join(", ")
    }
}

fn prometheus_config(jobs: &[(&str, String, bool)], alertmanager: &str, dir: &Path) -> String {
    let mut s = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{alertmanager}']\n\
         rule_files:\n  - '{}'\n\
         scrape_configs:\n",
        dir.join("rules.yml").display()
    );
    for (job, addr, honor) in jobs {
        s.push_str(&format!(
            "  - job_name: '{job}'\n    honor_labels: {honor}\n    static_configs:\n      - targets: ['{addr}']\n"
        ));
    }
    s
}
