//! A Kubernetes API server for tests and `opsh sandbox`: no real API server
//! or container runtime can run here, so this one serves the API that
//! kubectl and the kube crate use (discovery, CRUD with resourceVersion,
//! patches, watch, Table output, metrics) over a store that controllers
//! turn into a living cluster. It runs on its own thread and runtime, on a
//! free loopback port, and writes a kubeconfig with two users: `admin`
//! (context `sandbox`) and the read-only `viewer` (context `sandbox-viewer`).
//! Plain HTTP, so no credentials: client-go does not send bearer tokens
//! over HTTP. Identity comes from the impersonation header (`as: viewer`),
//! which both kubectl and the kube crate send.

mod controllers;
mod discovery;
mod http;
mod logs;
mod metrics;
mod patch;
mod seed;
mod store;
mod table;

use super::{err, SandboxError};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub struct KubeServer {
    pub port: u16,
    pub kubeconfig: PathBuf,
    shared: Arc<http::Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KubeServer {
    /// Starts the server with the demo objects of `seed.rs` in `default`.
    pub fn start(dir: &Path) -> Result<KubeServer, SandboxError> {
        std::fs::create_dir_all(dir).map_err(|e| err(format!("mkdir {}: {e}", dir.display())))?;
        let shared = Arc::new(http::Shared {
            store: store::Store::default(),
            metrics: true.into(),
            interfere: Default::default(),
        });
        seed::seed(&shared.store);
        // A port below the ephemeral range, like every sandbox server: the
        // listener is held from here on, so no other process can take it.
        let std_listener = (0..20)
            .find_map(|_| {
                let port = super::free_port().ok()?;
                std::net::TcpListener::bind(("127.0.0.1", port)).ok()
            })
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
            .name("opsh-kube-api".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(run(std_listener, s, stop_rx));
            })
            .map_err(|e| err(format!("cannot start the API server thread: {e}")))?;
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_text(port))
            .map_err(|e| err(format!("write {}: {e}", kubeconfig.display())))?;
        Ok(KubeServer {
            port,
            kubeconfig,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
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
        if let Ok(mut s) = self.shared.interfere.lock() {
            *s = Some((kind.into(), ns.into(), name.into()));
        }
    }

    /// Waits until `f` holds on the store, up to `timeout`.
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
    listener: std::net::TcpListener,
    shared: Arc<http::Shared>,
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
            c.tick(&ctl_shared.store);
        }
    });
    loop {
        tokio::select! {
            _ = &mut stop => break,
            conn = listener.accept() => {
                let Ok((stream, _)) = conn else { continue };
                let s = shared.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| http::handle(s.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        }
    }
    controllers.abort();
}

fn kubeconfig_text(port: u16) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: sandbox
  cluster:
    server: http://127.0.0.1:{port}
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
  user: {{}}
- name: viewer
  user:
    as: viewer
preferences: {{}}
"
    )
}
