//! A Kubernetes API test server per test, seeded with the demo objects,
//! and waits on what its controllers do.

use super::eventually::{eventually, secs};
use opsh::sandbox::{KubeServer, TempDir};

/// A Kubernetes API test server of its own, with the demo objects.
pub struct Kube {
    pub api: KubeServer,
    _dir: TempDir,
}

impl std::ops::Deref for Kube {
    type Target = KubeServer;
    fn deref(&self) -> &Self::Target {
        &self.api
    }
}

pub fn kube() -> Kube {
    let dir = TempDir::new("opsh-kube-test").expect("temp dir");
    let api = KubeServer::start(dir.path())
        .unwrap_or_else(|e| panic!("kube test server did not start: {e}"));
    Kube { api, _dir: dir }
}

impl Kube {
    pub fn kubeconfig(&self) -> String {
        self.api.kubeconfig.to_string_lossy().into_owned()
    }

    /// Waits until the deployment's pods are all ready at its desired count.
    #[track_caller]
    pub fn wait_rolled_out(&self, name: &str) {
        eventually(secs(15), &format!("deployment {name} to roll out"), || {
            self.api.rolled_out(name)
        });
    }

    /// Waits until exactly `n` pods labelled app=`app` exist, all Running and Ready.
    #[track_caller]
    pub fn wait_pods_ready(&self, app: &str, n: usize) {
        eventually(secs(10), &format!("{n} ready {app} pods"), || {
            self.api.pods_ready(app, n)
        });
    }

    /// Waits until both `worker` pods have been OOM-killed at least once.
    #[track_caller]
    pub fn wait_worker_oom_killed(&self) {
        eventually(secs(10), "both worker pods to be OOM-killed", || {
            let w = self.pods("worker");
            w.len() == 2
                && w.iter().all(|p| {
                    p["status"]["containerStatuses"][0]["lastState"]["terminated"]["reason"]
                        == "OOMKilled"
                })
        });
    }

    /// The image of the first container of deployment `name` in default.
    pub fn image(&self, name: &str) -> String {
        self.api
            .object("Deployment", "default", name)
            .expect("deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub fn replicas(&self, name: &str) -> i64 {
        self.api
            .object("Deployment", "default", name)
            .expect("deployment")["spec"]["replicas"]
            .as_i64()
            .unwrap_or(-1)
    }
}
