//! The Kubernetes API test server driven by the real kubectl, and opsh and
//! kubectl agreeing about what they see and do. Skipped (with a note) when
//! kubectl is not installed; dev/test installs it.

use crate::support::{kube, Env, Kube};
use std::process::Command;

fn kubectl_path() -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("kubectl"))
            .find(|f| f.is_file())
    })
}

struct Ctl<'a> {
    k: &'a Kube,
    env: Env,
    /// The client's minor version: Debian's kubernetes-client is 1.20,
    /// which knows no batch/v1 CronJob and validates apply with OpenAPI v2.
    minor: u32,
}

impl Ctl<'_> {
    fn new(k: &Kube) -> Option<Ctl<'_>> {
        // dev/test installs kubectl; a missing one is a broken setup, not a
        // reason to pass without testing.
        assert!(
            kubectl_path().is_some(),
            "kubectl is not installed: run ./dev/test, which installs it"
        );
        let env = Env::new();
        let o = Command::new("kubectl")
            .args(["version", "--client", "-o", "json"])
            .env("KUBECONFIG", k.kubeconfig())
            .env("HOME", env.path("home"))
            .output()
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        let minor = v["clientVersion"]["minor"]
            .as_str()
            .and_then(|m| m.trim_end_matches('+').parse().ok())
            .unwrap_or(0);
        Some(Ctl { k, env, minor })
    }

    /// Whether this kubectl does what a step needs; says so when not.
    fn at_least(&self, minor: u32, what: &str) -> bool {
        if self.minor < minor {
            eprintln!(
                "kubectl 1.{} is older than 1.{minor}: skipping {what}",
                self.minor
            );
        }
        self.minor >= minor
    }

    /// kubectl with its own kubeconfig and discovery cache.
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let o = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", self.k.kubeconfig())
            .env("KUBECACHEDIR", self.env.path("kubecache"))
            .env("HOME", self.env.path("home"))
            .output()
            .expect("run kubectl");
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(
            code, 0,
            "kubectl {args:?}\n--- stdout\n{out}\n--- stderr\n{err}"
        );
        out
    }

    fn opsh(&self, script: &str) -> String {
        let kc = self.k.kubeconfig();
        let r = self.env.run(script, &[], &[("KUBECONFIG", kc.as_str())]);
        r.assert_code(0);
        r.stdout
    }
}

#[test]
fn kubectl_get_and_opsh_agree() {
    let k = kube();
    let Some(c) = Ctl::new(&k) else { return };
    k.wait_rolled_out("api");
    k.wait_worker_oom_killed();
    let out = c.ok(&["get", "deploy,pods"]);
    assert!(
        out.contains("deployment.apps/api") && out.contains("3/3"),
        "{out}"
    );
    for p in k.objects("Pod", "default") {
        assert!(
            out.contains(p["metadata"]["name"].as_str().unwrap()),
            "{out}"
        );
    }
    assert!(
        out.contains("OOMKilled") || out.contains("CrashLoopBackOff"),
        "{out}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "pods", "-l", "app=api", "-o", "json"])).unwrap();
    let mut kubectl_names: Vec<String> = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    kubectl_names.sort();
    let opsh =
        c.opsh(r#"let n = k8s.pods(#{selector: "app=api"}).map(|p| p.name); n.sort(); print(n)"#);
    assert_eq!(opsh.trim(), format!("{kubectl_names:?}"));
    let hpa = c.ok(&["get", "hpa"]);
    assert!(
        hpa.contains("Deployment/api") && hpa.contains("cpu:"),
        "{hpa}"
    );
    let top = c.ok(&["top", "pods"]);
    assert!(top.contains("CPU(cores)"), "{top}");

    // `kubectl top nodes` and k8s.top_nodes() read the same NodeMetrics.
    // Usage follows the running pods, so compare two reads made while no
    // pod changed (a pod starting between them moves the numbers).
    let mut agreed = false;
    let mut last = String::new();
    for _ in 0..5 {
        let mut kubectl: Vec<String> = c
            .ok(&["top", "nodes", "--no-headers"])
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                format!("{} {} {}", f[0], f[1], f[3])
            })
            .collect();
        let opsh = c.opsh(
            r#"for n in k8s.top_nodes() { print(`${n.name} ${n.cpu_m}m ${n.memory_mi}Mi`) }"#,
        );
        let mut opsh: Vec<String> = opsh.lines().map(str::to_string).collect();
        assert_eq!(opsh.len(), 2, "two nodes: {opsh:?}");
        // opsh lists the busiest first; kubectl in the API's order.
        kubectl.sort();
        opsh.sort();
        if opsh == kubectl {
            agreed = true;
            break;
        }
        last = format!("kubectl {kubectl:?}\nopsh    {opsh:?}");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    assert!(agreed, "top nodes differ:\n{last}");
}

#[test]
fn kubectl_scale_and_opsh_scale_agree() {
    let k = kube();
    let Some(c) = Ctl::new(&k) else { return };
    c.ok(&["scale", "deploy/api", "--replicas=5"]);
    assert_eq!(k.replicas("api"), 5);
    assert!(c
        .opsh(r#"print(k8s.deployments().filter(|d| d.name == "api")[0].replicas)"#)
        .contains('5'));
    // --current-replicas: kubectl reads the Scale and PUTs it back with its resourceVersion.
    let (code, _, err) = c.run(&[
        "scale",
        "deploy/api",
        "--current-replicas=4",
        "--replicas=6",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("Expected replicas to be 4, was 5"), "{err}");
    c.ok(&[
        "scale",
        "deploy/api",
        "--current-replicas=5",
        "--replicas=2",
    ]);
    assert_eq!(k.replicas("api"), 2);
    c.opsh(r#"k8s.scale("api", 4, #{current: 2})"#);
    let d: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "deploy", "api", "-o", "json"])).unwrap();
    assert_eq!(d["spec"]["replicas"], 4);
    let (code, _, _) = c.run(&["scale", "deploy/api", "--replicas=8", "--dry-run=server"]);
    assert_eq!(code, 0);
    assert_eq!(k.replicas("api"), 4, "server dry run changes nothing");
}

#[test]
fn kubectl_rollout_history_undo_and_opsh_agree() {
    let k = kube();
    let Some(c) = Ctl::new(&k) else { return };
    k.wait_rolled_out("api");
    c.opsh(r#"k8s.set_image("api", "api", "registry.example/api:2.0.0")"#);
    let status = c.ok(&["rollout", "status", "deploy/api", "--timeout=30s"]);
    assert!(status.contains("successfully rolled out"), "{status}");
    let hist = c.ok(&["rollout", "history", "deploy/api"]);
    let revs: Vec<&str> = hist
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(revs, ["1", "2"], "{hist}");
    let opsh_revs = c.opsh(r#"print(k8s.rollout_history("api").map(|h| h.revision))"#);
    assert_eq!(opsh_revs.trim(), "[1, 2]");
    c.ok(&["rollout", "undo", "deploy/api"]);
    c.ok(&["rollout", "status", "deploy/api", "--timeout=30s"]);
    let now = c.opsh(r#"let h = k8s.rollout_history("api"); print(h.map(|x| x.revision)); print(h.filter(|x| x.current)[0].images)"#);
    assert!(
        now.contains("[2, 3]") && now.contains("registry.example/api:1.4.2"),
        "{now}"
    );
    // And opsh's undo is seen by kubectl.
    c.opsh(r#"k8s.rollout_undo("api"); k8s.rollout_status("api")"#);
    let img = c.ok(&[
        "get",
        "deploy",
        "api",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(img, "registry.example/api:2.0.0");
}

#[test]
fn kubectl_delete_pod_and_opsh_agree() {
    let k = kube();
    let Some(c) = Ctl::new(&k) else { return };
    k.wait_rolled_out("api");
    let victim = c
        .opsh(r#"print(k8s.pods(#{selector: "app=api"})[0].name)"#)
        .trim()
        .to_string();
    let out = c.ok(&["delete", "pod", &victim]);
    assert!(out.contains("deleted"), "{out}");
    assert!(k.object("Pod", "default", &victim).is_none());
    k.wait_pods_ready("api", 3);
    let names = c.opsh(r#"print(k8s.pods(#{selector: "app=api"}).map(|p| p.name))"#);
    assert!(!names.contains(&victim), "{names}");
    let listed = c.ok(&["get", "pods", "-l", "app=api", "-o", "name"]);
    assert_eq!(listed.lines().count(), 3, "{listed}");
    // kubectl patch and create job paths the server must accept.
    c.ok(&[
        "patch",
        "hpa",
        "api",
        "-p",
        r#"{"spec":{"maxReplicas":12}}"#,
    ]);
    assert!(c.opsh(r#"print(k8s.hpa("api").max)"#).contains("12"));
    if c.at_least(21, "create job --from=cronjob") {
        c.ok(&["create", "job", "manual-1", "--from=cronjob/nightly-report"]);
        assert!(k.object("Job", "default", "manual-1").is_some());
    }
    c.ok(&["set", "env", "deploy/api", "LOG_LEVEL=warn"]);
    assert!(c
        .opsh(r#"print(k8s.get("deploy", "api").spec.template.spec.containers[0].env)"#)
        .contains("warn"));
}

#[test]
fn kubectl_server_side_apply_and_opsh_see_the_same_field_owners() {
    let k = kube();
    let Some(c) = Ctl::new(&k) else { return };
    if !c.at_least(27, "apply --server-side (OpenAPI v3)") {
        return;
    }
    let manifest = c.env.write(
        "m.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-kubectl\ndata:\n  a: \"1\"\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  replicas: 7\n",
    );
    let m = manifest.to_str().unwrap();
    let (code, _, err) = c.run(&["apply", "--server-side", "-f", m]);
    assert_ne!(code, 0);
    assert!(
        err.contains(r#"conflict with "sandbox-seed": .spec.replicas"#),
        "{err}"
    );
    assert_eq!(k.replicas("api"), 3);
    c.ok(&["apply", "--server-side", "--force-conflicts", "-f", m]);
    assert_eq!(k.replicas("api"), 7);
    assert!(k.object("ConfigMap", "default", "from-kubectl").is_some());
    // kubectl now owns spec.replicas: opsh's apply is refused, naming it.
    let kc = k.kubeconfig();
    let r = c.env.run(
        r#"k8s.apply("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  replicas: 2\n")"#,
        &[],
        &[("KUBECONFIG", kc.as_str())],
    );
    r.assert_code(2);
    assert!(
        r.stderr.contains("conflict on .spec.replicas") && r.stderr.contains("kubectl"),
        "{}",
        r.stderr
    );
    assert_eq!(k.replicas("api"), 7);
}
