//! opsh and the real kubectl agreeing about what they see and do, through
//! the Kubernetes API test server. The server against kubectl alone is
//! tested in its own crate (crates/kube-testserver/tests/kubectl.rs). Each
//! test runs with the oldest and the newest kubectl at hand, each against
//! a server of its own; a missing kubectl fails them (./dev/test installs
//! it).

use crate::support::{kube, Env, Kube};
use kube_testserver::kubectl::{self, Kubectl};

struct Ctl<'a> {
    k: &'a Kube,
    bin: &'a Kubectl,
    env: Env,
}

/// Runs `test` once per kubectl under test, each with a fresh server.
fn each_kubectl(test: impl Fn(&Ctl)) {
    let set = kubectl::under_test().unwrap_or_else(|e| panic!("{e}"));
    for bin in set {
        eprintln!("--- with {}", bin.describe());
        let k = kube();
        test(&Ctl {
            k: &k,
            bin,
            env: Env::new(),
        });
    }
}

impl Ctl<'_> {
    /// kubectl with its own kubeconfig and discovery cache.
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.bin
            .run(&self.k.kubeconfig, &self.env.path("home"), args)
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

    fn opsh(&self, script: &str) -> String {
        self.env
            .script(script)
            .kube(self.k)
            .run()
            .assert_code(0)
            .stdout
            .clone()
    }
}

#[test]
fn kubectl_and_opsh_list_the_same_pods_and_node_usage() {
    each_kubectl(|c| {
        c.k.wait_rolled_out("api");
        let json: serde_json::Value =
            serde_json::from_str(&c.ok(&["get", "pods", "-l", "app=api", "-o", "json"])).unwrap();
        let mut kubectl_names: Vec<String> = json["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        kubectl_names.sort();
        assert_eq!(kubectl_names.len(), 3, "{kubectl_names:?}");
        let opsh = c.opsh(
            r#"let n = k8s.pods(#{selector: "app=api"}).map(|p| p.name); n.sort(); print(n)"#,
        );
        assert_eq!(opsh.trim(), format!("{kubectl_names:?}"));

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
    });
}

#[test]
fn kubectl_scale_and_opsh_scale_agree() {
    each_kubectl(|c| {
        c.ok(&["scale", "deploy/api", "--replicas=5"]);
        assert_eq!(c.k.replicas("api"), 5);
        assert_eq!(
            c.opsh(r#"print(k8s.deployments().filter(|d| d.name == "api")[0].replicas)"#)
                .trim(),
            "5"
        );
        c.opsh(r#"k8s.scale("api", 4, #{current: 5})"#);
        let d: serde_json::Value =
            serde_json::from_str(&c.ok(&["get", "deploy", "api", "-o", "json"])).unwrap();
        assert_eq!(d["spec"]["replicas"], 4);
    });
}

#[test]
fn kubectl_rollout_history_undo_and_opsh_agree() {
    each_kubectl(|c| {
        let k = c.k;
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
    });
}

#[test]
fn what_kubectl_deletes_and_patches_opsh_sees() {
    each_kubectl(|c| {
        let k = c.k;
        k.wait_rolled_out("api");
        let victim = c
            .opsh(r#"print(k8s.pods(#{selector: "app=api"})[0].name)"#)
            .trim()
            .to_string();
        c.ok(&["delete", "pod", &victim]);
        k.wait_pods_ready("api", 3);
        let names = c.opsh(r#"print(k8s.pods(#{selector: "app=api"}).map(|p| p.name))"#);
        assert!(!names.contains(&victim), "{names}");
        assert_eq!(names.matches("\"api-").count(), 3, "{names}");
        c.ok(&[
            "patch",
            "hpa",
            "api",
            "-p",
            r#"{"spec":{"maxReplicas":12}}"#,
        ]);
        assert_eq!(c.opsh(r#"print(k8s.hpa("api").max)"#).trim(), "12");
        c.ok(&["set", "env", "deploy/api", "LOG_LEVEL=warn"]);
        let env = c.opsh(r#"print(k8s.get("deploy", "api").spec.template.spec.containers[0].env)"#);
        assert!(env.contains("LOG_LEVEL") && env.contains("warn"), "{env}");
    });
}

#[test]
fn kubectl_server_side_apply_and_opsh_see_the_same_field_owners() {
    each_kubectl(|c| {
        let k = c.k;
        let manifest = c.env.write(
            "m.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  replicas: 7\n",
        );
        let mut args = vec![
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            manifest.to_str().unwrap(),
        ];
        // kubectl before 1.29 looks for the fieldValidation parameter in
        // OpenAPI v2, which the test server does not serve (it serves v3).
        if c.bin.minor < 29 {
            args.push("--validate=false");
        }
        c.ok(&args);
        assert_eq!(k.replicas("api"), 7);
        // kubectl now owns spec.replicas: opsh's apply is refused, naming it.
        c.env
            .script(r#"k8s.apply("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  replicas: 2\n")"#)
            .kube(k)
            .run()
            .assert_code(2)
            .assert_stderr_contains("conflict on .spec.replicas")
            .assert_stderr_contains("kubectl");
        assert_eq!(k.replicas("api"), 7);
    });
}

/// The RBAC that docs/kubernetes.md tells operators to apply, applied with
/// kubectl, holds for opsh's service account: it may scale, not delete.
#[test]
fn the_shipped_rbac_applies_and_is_enforced() {
    each_kubectl(|c| {
        let rbac = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/deploy/rbac.yaml");
        c.ok(&["create", "namespace", "opsh"]);
        c.ok(&["apply", "--validate=false", "-f", rbac]);
        let sa = "--as=system:serviceaccount:opsh:opsh";
        let can = |verb: &str, what: &str| {
            let mut args = vec!["auth", "can-i", verb, "-n", "opsh", sa];
            args.extend(what.split(' '));
            c.run(&args).1.trim().to_string()
        };
        assert_eq!(can("patch", "deployments.apps --subresource=scale"), "yes");
        assert_eq!(can("list", "pods"), "yes");
        assert_eq!(can("delete", "deployments.apps"), "no");
        assert_eq!(can("patch", "deployments.apps"), "no");
        let (code, _, err) = c.run(&["get", "pods", "-n", "default", sa]);
        assert_ne!(code, 0, "nothing outside its namespace");
        assert!(err.contains("forbidden"), "{err}");
    });
}
