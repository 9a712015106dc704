//! The server held against the real kubectl, the other client it must
//! satisfy besides the kube crate. Each test runs once with each kubectl of
//! `kubectl::under_test()` (the oldest and the newest at hand), against a
//! server of its own, and checks what the server holds afterwards. A
//! missing kubectl fails the tests: opsh's ./dev/test installs it.

// Helpers outside #[test] functions panic on purpose, as assertions do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kube_testserver::kubectl::{self, Kubectl};
use kube_testserver::KubeServer;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// A directory removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        let p = std::env::temp_dir().join(format!(
            "kube-testserver-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&p).expect("temp dir");
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One kubectl against one fresh server. Field order: the server stops
/// before its directory goes.
struct Ctl {
    bin: Kubectl,
    api: KubeServer,
    dir: Dir,
}

/// Runs `test` once per kubectl under test, each with a fresh server.
fn each_kubectl(test: impl Fn(&Ctl)) {
    let set = kubectl::under_test().unwrap_or_else(|e| panic!("{e}"));
    for bin in set {
        eprintln!("--- with {}", bin.describe());
        let dir = Dir::new();
        let api = KubeServer::start(&dir.0.join("api"))
            .unwrap_or_else(|e| panic!("the server did not start: {e}"));
        test(&Ctl {
            bin: bin.clone(),
            api,
            dir,
        });
    }
}

impl Ctl {
    /// kubectl with its own kubeconfig, HOME and discovery cache.
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.bin
            .run(&self.api.kubeconfig, &self.dir.0.join("home"), args)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(
            code,
            0,
            "{} {args:?}\n--- stdout\n{out}\n--- stderr\n{err}",
            self.bin.describe()
        );
        out
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.0.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    fn deployment(&self, name: &str) -> Value {
        self.api
            .object("Deployment", "default", name)
            .expect("deployment")
    }

    fn replicas(&self, name: &str) -> i64 {
        self.deployment(name)["spec"]["replicas"]
            .as_i64()
            .unwrap_or(-1)
    }

    fn pods(&self, app: &str) -> Vec<Value> {
        self.api.pods(app)
    }

    #[track_caller]
    fn wait(&self, what: &str, f: impl Fn(&KubeServer) -> bool) {
        assert!(
            self.api.wait_for(Duration::from_secs(15), f),
            "{what} did not happen"
        );
    }

    /// Until the deployment's pods are all ready at its desired count.
    #[track_caller]
    fn wait_rolled_out(&self, name: &str) {
        self.wait(&format!("rollout of {name}"), |k| {
            k.rolled_out(name).is_ok()
        });
    }

    /// Until exactly `n` pods labelled app=`app` exist, all Ready.
    #[track_caller]
    fn wait_pods_ready(&self, app: &str, n: usize) {
        self.wait(&format!("{n} ready {app} pods"), |k| k.pods_ready(app, n));
    }
}

fn names(objects: &[Value]) -> Vec<String> {
    let mut n: Vec<String> = objects
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect();
    n.sort();
    n
}

#[test]
fn get_renders_the_servers_tables_and_top_its_metrics() {
    each_kubectl(|c| {
        c.wait_rolled_out("api");
        c.wait("the worker pods' OOM kills", |_| {
            let w = c.pods("worker");
            w.len() == 2
                && w.iter().all(|p| {
                    p["status"]["containerStatuses"][0]["lastState"]["terminated"]["reason"]
                        == "OOMKilled"
                })
        });
        let out = c.ok(&["get", "deploy,pods"]);
        assert!(
            out.contains("deployment.apps/api") && out.contains("3/3"),
            "{out}"
        );
        for name in names(&c.api.objects("Pod", "default")) {
            assert!(out.contains(&name), "{name} missing from\n{out}");
        }
        assert!(
            out.contains("OOMKilled") || out.contains("CrashLoopBackOff"),
            "{out}"
        );

        let json: Value =
            serde_json::from_str(&c.ok(&["get", "pods", "-l", "app=api", "-o", "json"])).unwrap();
        let listed = names(json["items"].as_array().unwrap());
        assert_eq!(listed.len(), 3, "{listed:?}");
        assert_eq!(listed, names(&c.pods("api")));

        let hpa = c.ok(&["get", "hpa"]);
        assert!(
            hpa.contains("Deployment/api") && hpa.contains("cpu:"),
            "{hpa}"
        );
        let top = c.ok(&["top", "pods"]);
        assert!(top.contains("CPU(cores)"), "{top}");
        let nodes = c.ok(&["top", "nodes", "--no-headers"]);
        let listed: Vec<&str> = nodes
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert_eq!(listed, names(&c.api.objects("Node", "")), "{nodes}");
    });
}

#[test]
fn scale_honours_resource_version_and_server_dry_run() {
    each_kubectl(|c| {
        c.ok(&["scale", "deploy/api", "--replicas=5"]);
        assert_eq!(c.replicas("api"), 5);
        // --current-replicas: kubectl reads the Scale and PUTs it back with
        // its resourceVersion.
        let (code, _, err) = c.run(&[
            "scale",
            "deploy/api",
            "--current-replicas=4",
            "--replicas=6",
        ]);
        assert_ne!(code, 0);
        assert!(err.contains("Expected replicas to be 4, was 5"), "{err}");
        assert_eq!(c.replicas("api"), 5);
        c.ok(&[
            "scale",
            "deploy/api",
            "--current-replicas=5",
            "--replicas=2",
        ]);
        assert_eq!(c.replicas("api"), 2);
        c.ok(&["scale", "deploy/api", "--replicas=8", "--dry-run=server"]);
        assert_eq!(c.replicas("api"), 2, "a server dry run changes nothing");
    });
}

#[test]
fn rollout_status_history_and_undo() {
    let image = |c: &Ctl| {
        c.deployment("api")["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let revisions = |c: &Ctl| -> Vec<String> {
        c.ok(&["rollout", "history", "deploy/api"])
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|w| w.chars().all(|c| c.is_ascii_digit()))
            .map(str::to_string)
            .collect()
    };
    each_kubectl(|c| {
        c.wait_rolled_out("api");
        assert_eq!(image(c), "registry.example/api:1.4.2");
        c.ok(&[
            "set",
            "image",
            "deploy/api",
            "api=registry.example/api:2.0.0",
        ]);
        let status = c.ok(&["rollout", "status", "deploy/api", "--timeout=30s"]);
        assert!(status.contains("successfully rolled out"), "{status}");
        c.wait_rolled_out("api");
        assert_eq!(revisions(c), ["1", "2"]);
        c.ok(&["rollout", "undo", "deploy/api"]);
        c.ok(&["rollout", "status", "deploy/api", "--timeout=30s"]);
        assert_eq!(image(c), "registry.example/api:1.4.2");
        assert_eq!(revisions(c), ["2", "3"]);
    });
}

#[test]
fn delete_patch_create_job_and_set_env_change_what_the_server_holds() {
    each_kubectl(|c| {
        c.wait_rolled_out("api");
        let victim = names(&c.pods("api"))[0].clone();
        let out = c.ok(&["delete", "pod", &victim]);
        assert!(out.contains("deleted"), "{out}");
        assert!(c.api.object("Pod", "default", &victim).is_none());
        c.wait_pods_ready("api", 3);
        let listed = c.ok(&["get", "pods", "-l", "app=api", "-o", "name"]);
        assert_eq!(listed.lines().count(), 3, "{listed}");
        assert!(!listed.contains(&victim), "{listed}");

        c.ok(&[
            "patch",
            "hpa",
            "api",
            "-p",
            r#"{"spec":{"maxReplicas":12}}"#,
        ]);
        let hpa = c
            .api
            .object("HorizontalPodAutoscaler", "default", "api")
            .expect("hpa");
        assert_eq!(hpa["spec"]["maxReplicas"], 12);

        // Before 1.21 kubectl knows CronJob only as batch/v1beta1, which
        // the server (like Kubernetes since 1.25) no longer serves. From
        // 1.32 on it sends the Job as protobuf.
        if c.bin.minor >= 21 {
            c.ok(&["create", "job", "manual-1", "--from=cronjob/nightly-report"]);
            let job = c.api.object("Job", "default", "manual-1").expect("job");
            assert_eq!(
                job["metadata"]["ownerReferences"][0]["name"], "nightly-report",
                "{job}"
            );
            let cron = c
                .api
                .object("CronJob", "default", "nightly-report")
                .expect("cronjob");
            let (made, from) = (
                &job["spec"]["template"]["spec"]["containers"][0],
                &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0],
            );
            assert_eq!(
                (&made["image"], &made["args"]),
                (&from["image"], &from["args"])
            );
            assert!(job["status"].is_object(), "{job}");
        }

        c.ok(&["set", "env", "deploy/api", "LOG_LEVEL=warn"]);
        let env = &c.deployment("api")["spec"]["template"]["spec"]["containers"][0]["env"];
        assert!(
            env.as_array().is_some_and(|e| e
                .iter()
                .any(|v| v["name"] == "LOG_LEVEL" && v["value"] == "warn")),
            "{env}"
        );
    });
}

#[test]
fn server_side_apply_refuses_conflicts_and_force_takes_the_fields() {
    each_kubectl(|c| {
        let manifest = c.write(
            "m.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-kubectl\ndata:\n  a: \"1\"\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  replicas: 7\n",
        );
        let mut apply = vec!["apply", "--server-side", "-f", manifest.to_str().unwrap()];
        // kubectl before 1.29 looks for the fieldValidation parameter in
        // OpenAPI v2, which the server does not serve (it serves v3): its
        // validation stays off, the apply patch it sends is the same.
        if c.bin.minor < 29 {
            apply.push("--validate=false");
        }
        let (code, _, err) = c.run(&apply);
        assert_ne!(code, 0);
        assert!(
            err.contains(r#"conflict with "sandbox-seed": .spec.replicas"#),
            "{err}"
        );
        assert_eq!(c.replicas("api"), 3);
        let owners = c.api.field_owners("Deployment", "default", "api");
        assert_eq!(
            owners.get("spec.replicas").map(String::as_str),
            Some("sandbox-seed"),
            "{owners:?}"
        );
        apply.push("--force-conflicts");
        c.ok(&apply);
        assert_eq!(c.replicas("api"), 7);
        let cm = c
            .api
            .object("ConfigMap", "default", "from-kubectl")
            .expect("config map");
        assert_eq!(cm["data"]["a"], "1");
        // kubectl now owns spec.replicas, which the seed owned before.
        let owners = c.api.field_owners("Deployment", "default", "api");
        assert_eq!(
            owners.get("spec.replicas").map(String::as_str),
            Some("kubectl"),
            "{owners:?}"
        );
    });
}

impl Ctl {
    /// Starts kubectl (a watch, a follow), lets it run for `secs`, then
    /// stops it: (whether it was still running, its stdout).
    fn run_for(&self, args: &[&str], secs: f64, meanwhile: impl FnOnce()) -> (bool, String) {
        use std::io::Read;
        let mut child = self
            .bin
            .command(&self.api.kubeconfig, &self.dir.0.join("home"), args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn kubectl");
        std::thread::sleep(Duration::from_secs_f64(secs / 2.0));
        meanwhile();
        std::thread::sleep(Duration::from_secs_f64(secs / 2.0));
        let running = child.try_wait().expect("try_wait").is_none();
        let _ = child.kill();
        let _ = child.wait();
        let mut out = String::new();
        child
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut out)
            .expect("read stdout");
        (running, out)
    }
}

#[test]
fn invalid_objects_get_422_and_a_bad_object_does_not_stop_the_controllers() {
    each_kubectl(|c| {
        let bad = c.write(
            "bad.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bad}\nspec:\n  replicas: -1\n  selector: {matchLabels: {app: bad}}\n  template:\n    metadata: {labels: {app: bad}}\n    spec: {containers: [{name: b, image: nginx}]}\n",
        );
        let (code, _, err) = c.run(&["create", "--validate=false", "-f", bad.to_str().unwrap()]);
        assert_ne!(code, 0);
        assert!(
            err.contains("spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
            "{err}"
        );
        assert!(c.api.object("Deployment", "default", "bad").is_none());
        let (code, _, err) = c.run(&[
            "patch",
            "deploy/api",
            "--type=merge",
            "-p",
            r#"{"spec":{"selector":{"matchLabels":{"app":"api","tier":"x"}},"template":{"metadata":{"labels":{"tier":"x"}}}}}"#,
        ]);
        assert_ne!(code, 0);
        assert!(err.contains("field is immutable"), "{err}");
        let (code, _, err) = c.run(&[
            "patch",
            "svc/web",
            "--type=merge",
            "-p",
            r#"{"spec":{"sessionAffinity":"None","sessionAffinityConfig":{"clientIP":{"timeoutSeconds":30}}}}"#,
        ]);
        assert_ne!(code, 0);
        assert!(
            err.contains("must not be set when `sessionAffinity` is None"),
            "{err}"
        );
        // An invalid object that got in anyway (written directly, as an
        // older server or a bug would let it): the others still reconcile.
        let mut d = c.deployment("api");
        d["metadata"]["name"] = "broken".into();
        d["spec"]["replicas"] = (-1).into();
        for f in ["uid", "resourceVersion"] {
            d["metadata"].as_object_mut().unwrap().remove(f);
        }
        c.api.put("Deployment", "default", d).unwrap();
        c.ok(&["scale", "deploy/api", "--replicas=4"]);
        c.wait_pods_ready("api", 4);
        assert_eq!(c.api.controllers_failed(), None);
    });
}

#[test]
fn sort_by_watch_tables_follow_logs_and_job_selectors() {
    each_kubectl(|c| {
        c.wait_rolled_out("api");
        // --sort-by on a field outside metadata needs the whole objects.
        let out = c.ok(&["get", "events", "--sort-by=.lastTimestamp"]);
        assert!(out.contains("Scheduled") && out.contains("REASON"), "{out}");
        let out = c.ok(&["get", "pods", "--sort-by=.status.startTime", "-o", "name"]);
        assert!(out.lines().count() >= 3, "{out}");

        // A watch's updates carry the same columns as the first table.
        let victim = names(&c.pods("api"))[0].clone();
        let (_, out) = c.run_for(&["get", "pods", "-l", "app=api", "-w"], 3.0, || {
            c.api
                .delete("Pod", "default", &victim)
                .expect("delete the pod");
        });
        let rows: Vec<&str> = out.lines().skip(1).collect();
        assert!(rows.len() > 3, "no updates in\n{out}");
        for row in &rows {
            assert_eq!(row.split_whitespace().count(), 5, "{row:?} in\n{out}");
        }

        // logs -f keeps following.
        let pod = names(&c.pods("api"))[0].clone();
        let (running, out) = c.run_for(&["logs", "-f", &pod], 3.0, || {});
        assert!(running, "logs -f returned:\n{out}");
        assert!(out.contains("starting api"), "{out}");

        // A Job gets a selector of its own and a status; logs job/X reads its pod.
        let job = c.write(
            "job.yaml",
            "apiVersion: batch/v1\nkind: Job\nmetadata: {name: once}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: once, image: busybox}]\n",
        );
        let created: Value = serde_json::from_str(&c.ok(&[
            "create",
            "--validate=false",
            "-f",
            job.to_str().unwrap(),
            "-o",
            "json",
        ]))
        .unwrap();
        assert!(created["status"].is_object(), "{created}");
        let uid = created["metadata"]["uid"].as_str().unwrap();
        assert_eq!(
            created["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
            uid
        );
        c.wait("the job's pod", |k| {
            k.objects("Pod", "default").iter().any(|p| {
                p["metadata"]["labels"]["job-name"] == "once" && p["status"]["phase"] != "Pending"
            })
        });
        let out = c.ok(&["logs", "job/once"]);
        assert!(out.contains("pod=once-"), "{out}");
    });
}

#[test]
fn typed_creates_and_access_reviews_work_whatever_the_body_encoding() {
    // kubectl 1.32 and later send these bodies as protobuf.
    each_kubectl(|c| {
        c.ok(&["create", "configmap", "cfg", "--from-literal=mode=fast"]);
        let cm = c
            .api
            .object("ConfigMap", "default", "cfg")
            .expect("configmap");
        assert_eq!(cm["data"]["mode"], "fast");
        c.ok(&[
            "create",
            "secret",
            "generic",
            "creds",
            "--from-literal=password=s3cr\u{e9}t",
        ]);
        let s = c.api.object("Secret", "default", "creds").expect("secret");
        use base64::Engine as _;
        let pw = base64::engine::general_purpose::STANDARD
            .decode(s["data"]["password"].as_str().unwrap())
            .unwrap();
        assert_eq!(String::from_utf8(pw).unwrap(), "s3cr\u{e9}t");
        c.ok(&[
            "create",
            "deployment",
            "shop",
            "--image=nginx:1.27",
            "--replicas=2",
        ]);
        c.wait_pods_ready("shop", 2);
        assert_eq!(
            c.deployment("shop")["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1.27"
        );
        let yes = c.ok(&["auth", "can-i", "delete", "pods"]);
        assert_eq!(yes.trim(), "yes");
        let (code, no, _) = c.run(&["auth", "can-i", "delete", "pods", "--as=viewer"]);
        assert_eq!((code, no.trim()), (1, "no"));
    });
}

fn images(c: &Ctl, app: &str) -> Vec<String> {
    c.pods(app)
        .iter()
        .map(|p| {
            p["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

fn nodes_of(c: &Ctl, app: &str) -> Vec<String> {
    c.pods(app)
        .iter()
        .map(|p| p["spec"]["nodeName"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn pause_hpa_scale_to_zero_cordon_drain_and_relabel_behave_like_a_cluster() {
    each_kubectl(|c| {
        c.wait_rolled_out("api");
        // A paused deployment does not roll out a new template.
        c.ok(&["rollout", "pause", "deploy/api"]);
        c.ok(&[
            "set",
            "image",
            "deploy/api",
            "api=registry.example/api:2.0.0",
        ]);
        std::thread::sleep(Duration::from_millis(1500));
        assert!(
            images(c, "api").iter().all(|i| i.ends_with(":1.4.2")),
            "{:?}",
            images(c, "api")
        );
        c.ok(&["rollout", "resume", "deploy/api"]);
        c.ok(&["rollout", "status", "deploy/api", "--timeout=30s"]);
        c.wait("the new image everywhere", |_| {
            let i = images(c, "api");
            i.len() == 3 && i.iter().all(|i| i.ends_with(":2.0.0"))
        });

        // A pod relabelled out of its ReplicaSet is released and replaced.
        let odd = names(&c.pods("api"))[0].clone();
        c.ok(&["label", "pod", &odd, "app=debug", "--overwrite"]);
        c.wait_pods_ready("api", 3);
        let released = c.api.object("Pod", "default", &odd).expect("released pod");
        assert!(
            released["metadata"]["ownerReferences"]
                .as_array()
                .is_none_or(|a| a.is_empty()),
            "{released}"
        );

        // Cordoned: shown, and new pods go elsewhere.
        c.ok(&["cordon", "sandbox-node-1"]);
        let nodes = c.ok(&["get", "nodes"]);
        assert!(
            nodes
                .lines()
                .any(|l| l.starts_with("sandbox-node-1") && l.contains("Ready,SchedulingDisabled")),
            "{nodes}"
        );
        let before = names(&c.pods("api"));
        c.ok(&["scale", "deploy/api", "--replicas=6"]);
        c.wait_pods_ready("api", 6);
        let fresh: Vec<String> = c
            .pods("api")
            .iter()
            .filter(|p| !before.contains(&p["metadata"]["name"].as_str().unwrap_or("").to_string()))
            .map(|p| p["spec"]["nodeName"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(fresh, ["sandbox-node-2"; 3], "new pods on a cordoned node");

        // drain evicts, and the replacements avoid the drained node.
        c.ok(&["uncordon", "sandbox-node-1"]);
        c.ok(&[
            "drain",
            "sandbox-node-2",
            "--ignore-daemonsets",
            // The released pod has no controller.
            "--force",
            "--timeout=30s",
        ]);
        c.wait("api pods back, none on the drained node", |_| {
            c.api.pods_ready("api", 6) && nodes_of(c, "api").iter().all(|n| n == "sandbox-node-1")
        });
        // A budget that allows no disruption stops the eviction.
        c.ok(&["uncordon", "sandbox-node-2"]);
        c.ok(&[
            "create",
            "pdb",
            "api",
            "--selector=app=api",
            "--min-available=6",
        ]);
        c.wait("the budget's status", |k| {
            k.object("PodDisruptionBudget", "default", "api")
                .is_some_and(|b| b["status"]["currentHealthy"] == 6)
        });
        let (code, _, err) = c.run(&[
            "drain",
            "sandbox-node-1",
            "--ignore-daemonsets",
            "--force",
            "--timeout=2s",
        ]);
        assert_ne!(code, 0);
        assert!(err.contains("disruption budget"), "{err}");
        assert!(c.api.pods_ready("api", 6));
        c.ok(&["uncordon", "sandbox-node-1"]);

        // Scaled to zero, the target stays at zero: the HPA turns itself off.
        c.ok(&["scale", "deploy/api", "--replicas=0"]);
        c.wait("no api pods", |k| k.pods("api").is_empty());
        std::thread::sleep(Duration::from_millis(800));
        assert_eq!(c.replicas("api"), 0);
        let hpa = c
            .api
            .object("HorizontalPodAutoscaler", "default", "api")
            .expect("hpa");
        let active = hpa["status"]["conditions"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["type"] == "ScalingActive").cloned())
            .expect("ScalingActive");
        assert_eq!(active["reason"], "ScalingDisabled", "{hpa}");
    });
}

#[test]
fn the_missing_kinds_are_served_and_rbac_objects_are_enforced() {
    each_kubectl(|c| {
        c.wait_rolled_out("api");
        let all = c.ok(&["get", "all"]);
        for want in [
            "deployment.apps/api",
            "service/api",
            "replicaset.apps/api-",
            "cronjob.batch/nightly-report",
            "horizontalpodautoscaler.autoscaling/api",
        ] {
            assert!(all.contains(want), "{want} missing from\n{all}");
        }
        let m = c.write(
            "kinds.yaml",
            "apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: pg, image: postgres:16}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: a, image: agent:1}]}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: api}
spec:
  rules:
  - host: api.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: bot}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: scaler}
rules:
- {apiGroups: [apps], resources: [deployments], verbs: [get, list]}
- {apiGroups: [apps], resources: [deployments/scale], verbs: [get, patch, update]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bot-scaler}
subjects: [{kind: ServiceAccount, name: bot, namespace: default}]
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: scaler}
",
        );
        c.ok(&["apply", "--validate=false", "-f", m.to_str().unwrap()]);
        c.wait("db-0 and db-1 ready", |k| {
            k.pods_ready("db", 2)
                && k.object("StatefulSet", "default", "db")
                    .is_some_and(|s| s["status"]["readyReplicas"] == 2)
        });
        assert_eq!(names(&c.pods("db")), ["db-0", "db-1"]);
        c.wait("an agent pod per node", |k| k.pods_ready("agent", 2));
        let sts = c.ok(&["get", "sts", "db"]);
        assert!(sts.contains("2/2"), "{sts}");
        c.wait("the claim bound", |k| {
            k.object("PersistentVolumeClaim", "default", "data")
                .is_some_and(|p| p["status"]["phase"] == "Bound")
        });
        let ep = c.ok(&["get", "endpoints", "api", "-o", "json"]);
        let ep: Value = serde_json::from_str(&ep).unwrap();
        assert_eq!(
            ep["subsets"][0]["addresses"].as_array().map(Vec::len),
            Some(3),
            "{ep}"
        );
        let slices = c.ok(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=api",
            "-o",
            "name",
        ]);
        assert_eq!(slices.lines().count(), 1, "{slices}");
        assert!(c.ok(&["get", "ingress"]).contains("api.example"));

        // autoscaling/v1, as kubectl autoscale writes it.
        c.ok(&[
            "autoscale",
            "deploy/web-blue",
            "--min=2",
            "--max=5",
            "--cpu-percent=60",
        ]);
        let hpa = c
            .api
            .object("HorizontalPodAutoscaler", "default", "web-blue")
            .expect("hpa");
        assert_eq!(
            hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 60,
            "{hpa}"
        );
        let v1: Value = serde_json::from_str(&c.ok(&[
            "get",
            "--raw",
            "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/web-blue",
        ]))
        .unwrap();
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 60, "{v1}");

        // The Role applied above is enforced for its service account.
        let bot = "--as=system:serviceaccount:default:bot";
        c.ok(&["scale", "deploy/api", "--replicas=2", bot]);
        assert_eq!(c.replicas("api"), 2);
        let (code, _, err) = c.run(&["delete", "deploy/api", bot]);
        assert_ne!(code, 0);
        assert!(err.contains("forbidden"), "{err}");
        assert!(c.api.object("Deployment", "default", "api").is_some());
        let list = c.ok(&["auth", "can-i", "--list", bot]);
        assert!(list.contains("deployments.apps/scale"), "{list}");
        let who = c.ok(&["auth", "whoami", bot]);
        assert!(who.contains("system:serviceaccount:default:bot"), "{who}");
    });
}

#[test]
fn exec_runs_the_command_in_the_pods_directory_over_websocket() {
    each_kubectl(|c| {
        c.wait_rolled_out("api");
        let pod = names(&c.pods("api"))[0].clone();
        let args = [
            "exec",
            pod.as_str(),
            "--",
            "sh",
            "-c",
            "echo made > made.txt; echo \"LOG_LEVEL=$LOG_LEVEL\"; echo oops >&2; exit 3",
        ];
        let (code, out, err) = c.run(&args);
        if c.bin.minor < 30 {
            // SPDY, which the server does not speak: a clear refusal.
            assert_ne!(code, 0);
            assert!(err.contains("WebSocket only"), "{err}");
            return;
        }
        assert_eq!(code, 3, "{out}\n{err}");
        assert_eq!(out, "LOG_LEVEL=info\n");
        assert!(err.contains("oops"), "{err}");
        let made = c.api.pod_dir("default", &pod).join("made.txt");
        assert_eq!(std::fs::read_to_string(&made).unwrap(), "made\n");
        // stdin reaches the command.
        use std::io::Write;
        let mut child = c
            .bin
            .command(
                &c.api.kubeconfig,
                &c.dir.0.join("home"),
                &["exec", "-i", &pod, "--", "wc", "-c"],
            )
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"twelve bytes")
            .unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "12");
        // Who may not exec is told so.
        let (code, _, err) = c.run(&["exec", &pod, "--as=viewer", "--", "true"]);
        assert_ne!(code, 0);
        assert!(
            err.contains("forbidden") || err.contains("Forbidden"),
            "{err}"
        );
    });
}
