//! A Kubernetes API server for tests and `opsh sandbox`: no real API server
//! or container runtime can run here, so this one serves the API that
//! kubectl and the kube crate use (discovery, CRUD with resourceVersion,
//! patches, watch, Table output, metrics) over a store that controllers
//! turn into a living cluster. It runs on its own thread and runtime, on a
//! free loopback port, and writes a kubeconfig with two users: `admin`
//! (context `sandbox`) and the read-only `viewer` (context `sandbox-viewer`).
//! Plain HTTP by default, so no credentials: client-go does not send bearer
//! tokens over HTTP, and identity comes from the impersonation header
//! (`as: viewer`), which both kubectl and the kube crate send. With
//! `start_tls` it serves HTTPS and authenticates bearer tokens, as a real
//! API server does for a pod's service account (auth.rs).
//!
//! It knows nothing of opsh: opsh's sandbox and its tests use it, and its
//! own tests (tests/kubectl.rs) hold it against the real kubectl.

mod auth;
mod controllers;
mod convert;
mod discovery;
mod exec;
mod http;
pub mod kubectl;
mod logs;
mod metrics;
mod patch;
mod proto;
mod seed;
mod store;
mod table;
mod validate;

use serde_json::Value;
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why the server could not start.
#[derive(Debug)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn err(msg: impl Into<String>) -> Error {
    Error(msg.into())
}

/// A loopback port below 32768 (Linux hands 32768-60999 to client sockets,
/// so a server there can collide with an outgoing connection) that is free
/// now. opsh's sandbox picks the ports of all its servers with it.
pub fn free_port() -> Result<u16, Error> {
    for _ in 0..200 {
        let port = fastrand::u16(20000..32000);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(err("no free port found in 20000-32000"))
}

pub struct KubeServer {
    pub port: u16,
    pub kubeconfig: PathBuf,
    /// Served over HTTPS with token authentication.
    pub tls: bool,
    shared: Arc<http::Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KubeServer {
    /// Starts the server with the demo objects of `seed.rs` in `default`.
    pub fn start(dir: &Path) -> Result<KubeServer, Error> {
        Self::start_with(dir, None)
    }

    /// Starts it serving HTTPS with the certificate and key of `tls`, whose
    /// CA the kubeconfig names; requests need a token from `issue_token`
    /// (the kubeconfig's users have one each).
    pub fn start_tls(dir: &Path, tls: &TlsFiles) -> Result<KubeServer, Error> {
        Self::start_with(dir, Some(tls))
    }

    fn start_with(dir: &Path, tls: Option<&TlsFiles>) -> Result<KubeServer, Error> {
        std::fs::create_dir_all(dir).map_err(|e| err(format!("mkdir {}: {e}", dir.display())))?;
        let acceptor = tls.map(acceptor).transpose()?;
        let shared = Arc::new(http::Shared {
            store: store::Store::default(),
            metrics: true.into(),
            interfere: Default::default(),
            auth: Default::default(),
            secure: tls.is_some(),
            failed: Default::default(),
            dir: dir.to_path_buf(),
        });
        seed::seed(&shared.store);
        // A port below the ephemeral range, like every sandbox server: the
        // listener is held from here on, so no other process can take it.
        let std_listener = (0..20)
            .find_map(|_| TcpListener::bind(("127.0.0.1", free_port().ok()?)).ok())
            .ok_or_else(|| err("cannot listen on a loopback port in 20000-31999"))?;
        let port = std_listener
            .local_addr()
            .map_err(|e| err(e.to_string()))?
            .port();
        std_listener
            .set_nonblocking(true)
            .map_err(|e| err(e.to_string()))?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("kube-testserver".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(run(std_listener, s, acceptor, stop_rx));
            })
            .map_err(|e| err(format!("cannot start the API server thread: {e}")))?;
        let server = KubeServer {
            port,
            kubeconfig: dir.join("kubeconfig"),
            tls: tls.is_some(),
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        };
        let text = kubeconfig_text(&server, tls.map(|t| t.ca.as_path()));
        std::fs::write(&server.kubeconfig, text)
            .map_err(|e| err(format!("write {}: {e}", server.kubeconfig.display())))?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// A bearer token that authenticates as `user` (over TLS), e.g.
    /// `system:serviceaccount:NS:NAME` for a pod's service account.
    pub fn issue_token(&self, user: &str) -> String {
        match self.shared.auth.write() {
            Ok(mut a) => a.issue(user),
            Err(_) => String::new(),
        }
    }

    /// Grants what the Roles of an RBAC manifest allow to the subjects of
    /// its RoleBindings; returns how many subjects were bound.
    pub fn grant(&self, rbac_manifest: &str) -> Result<usize, String> {
        self.shared
            .auth
            .write()
            .map_err(|_| "auth lock poisoned".to_string())?
            .grant(rbac_manifest)
    }

    /// An object as the server holds it, read directly: how tests check
    /// state independently of the client under test. `kind` is e.g. "Deployment".
    pub fn object(&self, kind: &str, ns: &str, name: &str) -> Option<Value> {
        discovery::by_kind(kind).and_then(|r| {
            self.shared
                .store
                .get(r, if r.namespaced { ns } else { "" }, name)
        })
    }

    pub fn objects(&self, kind: &str, ns: &str) -> Vec<Value> {
        discovery::by_kind(kind)
            .map(|r| self.shared.store.list(r, ns).0)
            .unwrap_or_default()
    }

    /// Who owns each field of an object under server-side apply: field
    /// path ("spec.replicas") to field manager ("kubectl").
    pub fn field_owners(&self, kind: &str, ns: &str, name: &str) -> BTreeMap<String, String> {
        discovery::by_kind(kind)
            .map(|r| {
                self.shared
                    .store
                    .owners(r, if r.namespaced { ns } else { "" }, name)
            })
            .unwrap_or_default()
    }

    /// Creates or replaces an object directly (tests arranging state).
    pub fn put(&self, kind: &str, ns: &str, obj: Value) -> Result<Value, String> {
        let r = discovery::by_kind(kind).ok_or_else(|| format!("unknown kind {kind}"))?;
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        let st = &self.shared.store;
        if st.get(r, ns, &name).is_some() {
            st.update(r, ns, &name, obj, false, Some("test"))
                .map_err(|e| e.message)
        } else {
            st.create(r, ns, obj, false, Some("test"))
                .map_err(|e| e.message)
        }
    }

    /// Why the controllers stopped, if they did (the API then answers 500).
    pub fn controllers_failed(&self) -> Option<String> {
        self.shared.failed.lock().ok().and_then(|f| f.clone())
    }

    /// The host directory where `kubectl exec` / `k8s.exec` run commands
    /// for this pod (made on first use).
    pub fn pod_dir(&self, ns: &str, pod: &str) -> PathBuf {
        exec::workdir(&self.shared, ns, pod)
    }

    /// Deletes an object directly, as another client would.
    pub fn delete(&self, kind: &str, ns: &str, name: &str) -> Result<Value, String> {
        let r = discovery::by_kind(kind).ok_or_else(|| format!("unknown kind {kind}"))?;
        let ns = if r.namespaced { ns } else { "" };
        self.shared
            .store
            .delete(r, ns, name, &Value::Null, false)
            .map_err(|e| e.message)
    }

    /// Stops (or resumes) serving metrics.k8s.io, as a cluster without metrics-server.
    pub fn serve_metrics(&self, on: bool) {
        self.shared
            .metrics
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Makes the next write to this object meet a concurrent change by
    /// another client (an annotation), so a write carrying the
    /// resourceVersion it read gets a 409.
    pub fn interfere(&self, kind: &str, ns: &str, name: &str) {
        self.interfere_with(kind, ns, name, Value::Null);
    }

    /// Like [`interfere`](Self::interfere), and the other client also
    /// applies `patch` (a strategic merge patch, e.g. a container's image).
    pub fn interfere_with(&self, kind: &str, ns: &str, name: &str, patch: Value) {
        if let Ok(mut s) = self.shared.interfere.lock() {
            *s = Some((kind.into(), ns.into(), name.into(), patch));
        }
    }

    /// Waits until `f` holds on the store, up to `timeout`.
    /// The pods of the default namespace labelled app=`app`.
    pub fn pods(&self, app: &str) -> Vec<Value> {
        self.objects("Pod", "default")
            .into_iter()
            .filter(|p| p["metadata"]["labels"]["app"] == app)
            .collect()
    }

    /// Whether a deployment of the default namespace has rolled out: all
    /// its pods ready and updated at its desired count, its latest spec
    /// observed. Err says where it stands.
    pub fn rolled_out(&self, name: &str) -> Result<(), String> {
        let d = self
            .object("Deployment", "default", name)
            .ok_or_else(|| format!("no deployment {name}"))?;
        let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let s = &d["status"];
        let done = ["readyReplicas", "replicas", "updatedReplicas"]
            .iter()
            .all(|f| s[f].as_i64().unwrap_or(0) == want)
            && s["observedGeneration"] == d["metadata"]["generation"];
        if done {
            Ok(())
        } else {
            Err(format!("deployment {name}: want {want}, status {s}"))
        }
    }

    /// Whether exactly `n` pods labelled app=`app` exist, all Ready.
    pub fn pods_ready(&self, app: &str, n: usize) -> bool {
        let pods = self.pods(app);
        pods.len() == n
            && pods.iter().all(|p| {
                p["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
    }

    pub fn wait_for(&self, timeout: Duration, f: impl Fn(&KubeServer) -> bool) -> bool {
        let end = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < end {
            if f(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        f(self)
    }
}

impl Drop for KubeServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const TICK: Duration = Duration::from_millis(100);

async fn run(
    listener: TcpListener,
    shared: Arc<http::Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let ctl_shared = shared.clone();
    let controllers = tokio::spawn(async move {
        let mut c = controllers::Controllers::default();
        let mut every = tokio::time::interval(TICK);
        loop {
            every.tick().await;
            let tick = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                c.tick(&ctl_shared.store)
            }));
            // Each object's reconcile is guarded; a panic here is the loop's
            // own. A cluster that no longer reconciles must not look alive:
            // from now on every request gets a 500 that says so.
            if let Err(p) = tick {
                let msg = controllers::panic_message(p.as_ref());
                eprintln!("kube-testserver: the controllers stopped: {msg}");
                if let Ok(mut f) = ctl_shared.failed.lock() {
                    *f = Some(msg);
                }
                return;
            }
        }
    });
    loop {
        tokio::select! {
            _ = &mut stop => break,
            conn = listener.accept() => {
                let Ok((stream, _)) = conn else { continue };
                let s = shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve(stream, s).await;
                            }
                        }
                        None => serve(stream, s).await,
                    }
                });
            }
        }
    }
    controllers.abort();
}

async fn serve<T>(io: T, shared: Arc<http::Shared>)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| http::handle(shared.clone(), req));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(io), svc)
        .with_upgrades()
        .await;
}

/// PEM files for serving HTTPS: the server's certificate chain and key, and
/// the CA that signed it (for the kubeconfig).
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

fn acceptor(tls: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, Error> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;
    let read = |p: &Path| std::fs::read(p).map_err(|e| err(format!("read {}: {e}", p.display())));
    let chain = CertificateDer::pem_slice_iter(&read(&tls.cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("{}: {e}", tls.cert.display())))?;
    let key = PrivateKeyDer::from_pem_slice(&read(&tls.key)?)
        .map_err(|e| err(format!("{}: {e}", tls.key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| err(format!("server certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Two contexts: `sandbox` (admin) and `sandbox-viewer`. Over HTTP the
/// viewer impersonates; over HTTPS each user has its own token.
fn kubeconfig_text(server: &KubeServer, ca: Option<&Path>) -> String {
    let url = server.url();
    let (ca_line, admin, viewer) = match ca {
        Some(ca) => (
            format!("\n    certificate-authority: {}", ca.display()),
            format!("\n    token: {}", server.issue_token(auth::ADMIN)),
            format!("token: {}", server.issue_token(auth::VIEWER)),
        ),
        None => (String::new(), " {}".to_string(), "as: viewer".to_string()),
    };
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: sandbox
  cluster:
    server: {url}{ca_line}
contexts:
- name: sandbox
  context:
    cluster: sandbox
    user: admin
    namespace: default
- name: sandbox-viewer
  context:
    cluster: sandbox
    user: viewer
    namespace: default
current-context: sandbox
users:
- name: admin
  user:{admin}
- name: viewer
  user:
    {viewer}
preferences: {{}}
"
    )
}
