//! Runs the real opsh binary in an isolated environment (own HOME, XDG
//! dirs, audit log, no inherited targets) and captures what it did.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

pub use opsh::sandbox::{Sandbox, Services};

pub struct Env {
    pub dir: opsh::sandbox::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// A path in the repository (scripts/..., docs/...), as the binary is given it.
pub fn repo_path(rel: &str) -> String {
    format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"))
}

/// A file of the repository, read.
pub fn repo_file(rel: &str) -> String {
    std::fs::read_to_string(repo_path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

pub fn sandbox(pg: bool, redis: bool) -> Sandbox {
    sandbox_with(Services {
        postgres: pg,
        redis,
        monitoring: false,
        kube: false,
    })
}

pub fn sandbox_with(services: Services) -> Sandbox {
    match Sandbox::start(services) {
        Ok(s) => s,
        Err(e) => panic!("sandbox did not start: {e}"),
    }
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: opsh::sandbox::TempDir::new("opsh-test").expect("temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::write(&p, text).expect("write");
        p
    }

    pub fn audit_path(&self) -> PathBuf {
        self.path("state/audit.jsonl")
    }

    pub fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.audit_path())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect()
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_opsh"));
        for var in [
            "DATABASE_URL",
            "REDIS_URL",
            "PROMETHEUS_URL",
            "ALERTMANAGER_URL",
            "PUSHGATEWAY_URL",
            "PGHOST",
            "PGPORT",
            "PGUSER",
            "PGPASSWORD",
            "PGDATABASE",
            "OPSH_CONFIG",
            "XDG_RUNTIME_DIR",
            "KUBECONFIG",
            "KUBERNETES_SERVICE_HOST",
            "KUBERNETES_SERVICE_PORT",
            "OPSH_SERVICEACCOUNT_DIR",
        ] {
            c.env_remove(var);
        }
        c.env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("XDG_STATE_HOME", self.path("xdgstate"))
            .env("XDG_DATA_HOME", self.path("data"))
            .env("OPSH_AUDIT_LOG", self.audit_path())
            .env("NO_COLOR", "1")
            .env("RUST_BACKTRACE", "0")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        c
    }

    /// `opsh ARGS...` with extra env.
    pub fn opsh(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut c = self.command();
        c.args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        Run::from(c.output().expect("run opsh"))
    }

    /// Writes `script` to a file and runs `opsh [flags] run FILE`.
    pub fn run(&self, script: &str, flags: &[&str], env: &[(&str, &str)]) -> Run {
        let file = self.write("script.rhai", script);
        let mut args: Vec<&str> = flags.to_vec();
        args.push("run");
        let f = file.to_string_lossy().into_owned();
        args.push(&f);
        self.opsh(&args, env)
    }

    pub fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> Child {
        let mut c = self.command();
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        c.spawn().expect("spawn opsh")
    }

    pub fn write_config(&self, toml: &str) -> PathBuf {
        let p = self.write("config/opsh/config.toml", toml);
        let _ = std::io::stdout().flush();
        p
    }
}

pub fn wait_output(child: Child) -> Run {
    Run::from(child.wait_with_output().expect("wait"))
}

/// A second, independent connection to check what the server really holds.
fn with_pg<T>(url: &str, f: impl AsyncFnOnce(&mut sqlx::PgConnection) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
        f(&mut c).await
    })
}

pub fn pg_scalar(url: &str, sql: &str) -> i64 {
    with_pg(url, async |c| {
        sqlx::query_scalar(sql).fetch_one(c).await.expect("query")
    })
}

pub fn pg_exec(url: &str, sql: &str) {
    with_pg(url, async |c| {
        sqlx::raw_sql(sql).execute(c).await.expect("exec");
    })
}

/// A Kubernetes API test server of its own, with the demo objects.
pub struct Kube {
    pub api: opsh::sandbox::KubeServer,
    _dir: opsh::sandbox::TempDir,
}

impl std::ops::Deref for Kube {
    type Target = opsh::sandbox::KubeServer;
    fn deref(&self) -> &Self::Target {
        &self.api
    }
}

impl Kube {
    pub fn kubeconfig(&self) -> String {
        self.api.kubeconfig.to_string_lossy().into_owned()
    }

    /// Waits until the deployment's pods are all ready at its desired count.
    #[track_caller]
    pub fn wait_rolled_out(&self, name: &str) {
        let ok = self.api.wait_for(std::time::Duration::from_secs(15), |k| {
            k.object("Deployment", "default", name).is_some_and(|d| {
                let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
                d["status"]["readyReplicas"].as_i64().unwrap_or(0) == want
                    && d["status"]["replicas"].as_i64().unwrap_or(0) == want
                    && d["status"]["updatedReplicas"].as_i64().unwrap_or(0) == want
                    && d["status"]["observedGeneration"] == d["metadata"]["generation"]
            })
        });
        assert!(
            ok,
            "deployment {name} did not roll out: {:?}",
            self.api
                .object("Deployment", "default", name)
                .map(|d| d["status"].clone())
        );
    }

    /// Waits until exactly `n` pods labelled app=`app` exist, all Running and Ready.
    #[track_caller]
    pub fn wait_pods_ready(&self, app: &str, n: usize) {
        let ok = self.api.wait_for(std::time::Duration::from_secs(10), |k| {
            let pods: Vec<_> = k
                .objects("Pod", "default")
                .into_iter()
                .filter(|p| p["metadata"]["labels"]["app"] == app)
                .collect();
            pods.len() == n
                && pods.iter().all(|p| {
                    p["status"]["conditions"].as_array().is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
                })
        });
        assert!(ok, "{n} ready {app} pods did not appear");
    }

    /// Waits until both `worker` pods have been OOM-killed at least once.
    #[track_caller]
    pub fn wait_worker_oom_killed(&self) {
        let ok = self.api.wait_for(std::time::Duration::from_secs(10), |k| {
            let w: Vec<_> = k
                .objects("Pod", "default")
                .into_iter()
                .filter(|p| p["metadata"]["labels"]["app"] == "worker")
                .collect();
            w.len() == 2
                && w.iter().all(|p| {
                    p["status"]["containerStatuses"][0]["lastState"]["terminated"]["reason"]
                        == "OOMKilled"
                })
        });
        assert!(ok, "worker pods were not OOM-killed");
    }

    pub fn replicas(&self, name: &str) -> i64 {
        self.api
            .object("Deployment", "default", name)
            .expect("deployment")["spec"]["replicas"]
            .as_i64()
            .unwrap_or(-1)
    }
}

pub fn kube() -> Kube {
    let dir = opsh::sandbox::TempDir::new("opsh-kube-test").expect("temp dir");
    let api = opsh::sandbox::KubeServer::start(dir.path())
        .unwrap_or_else(|e| panic!("kube test server did not start: {e}"));
    Kube { api, _dir: dir }
}

/// One Redis command over an independent connection, to set up or check
/// what the server holds.
pub fn redis_query<T: ::redis::FromRedisValue>(url: &str, args: &[&str]) -> T {
    let client = ::redis::Client::open(url).expect("client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let mut c = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        let mut cmd = ::redis::cmd(args[0]);
        cmd.arg(&args[1..]);
        cmd.query_async(&mut c).await.expect("redis command")
    })
}

/// Certificates made with the openssl CLI, for the TLS tests.
pub mod certs {
    use std::path::Path;
    use std::process::Command;

    #[track_caller]
    pub fn openssl(dir: &Path, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    const EC: [&str; 5] = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];

    /// A self-signed CA in `dir`: NAME.pem and NAME.key.
    pub fn ca(dir: &Path, name: &str) {
        let (key, pem, subj) = (
            format!("{name}.key"),
            format!("{name}.pem"),
            format!("/CN={name}"),
        );
        let mut a = vec!["req", "-x509"];
        a.extend(EC);
        a.extend(["-keyout", &key, "-out", &pem, "-days", "2", "-subj", &subj]);
        openssl(dir, &a);
    }

    /// NAME.pem and NAME.key in `dir`: a certificate for localhost and
    /// 127.0.0.1, signed by the CA `ca` made by [`ca`].
    pub fn server(dir: &Path, ca: &str, name: &str) {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        let mut a = vec!["req"];
        a.extend(EC);
        a.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=localhost"]);
        openssl(dir, &a);
        let ext = format!("{name}.ext");
        std::fs::write(
            dir.join(&ext),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .expect("write ext");
        let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_pem,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }
}
