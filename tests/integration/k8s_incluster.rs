//! opsh inside a pod: no kubeconfig, only KUBERNETES_SERVICE_HOST/PORT and
//! the mounted service-account token, CA and namespace. The Kubernetes API
//! test server serves HTTPS here, accepts only the tokens it issued, and
//! enforces the Role of docs/deploy/rbac.yaml for the service account, so
//! these tests also prove that the Role shipped for the CronJob lets the
//! runbooks do their job and refuses more. kubectl, given the same token
//! and CA, agrees.

use crate::support::{certs, eventually, repo_file, repo_path, secs, Env, Opsh};
use opsh::sandbox::{KubeServer, TlsFiles};
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;

const SA: &str = "system:serviceaccount:opsh:opsh";

struct Pod {
    env: Env,
    api: KubeServer,
    token: String,
    /// The mounted service-account directory: token, ca.crt, namespace.
    sa: PathBuf,
    port: String,
}

impl Pod {
    fn new() -> Pod {
        let env = Env::new();
        let pki = env.dir("pki");
        certs::ca(&pki, "ca");
        certs::ca(&pki, "other-ca");
        certs::server(&pki, "ca", "server");
        let api = KubeServer::start_tls(
            &env.path("kube"),
            &TlsFiles {
                cert: pki.join("server.pem"),
                key: pki.join("server.key"),
                ca: pki.join("ca.pem"),
            },
        )
        .unwrap_or_else(|e| panic!("kube test server did not start: {e}"));
        let rbac = repo_file("docs/deploy/rbac.yaml");
        assert_eq!(api.grant(&rbac), Ok(1), "one subject bound");
        let token = api.issue_token(SA);

        // The opsh namespace, with a copy of the demo `api` deployment.
        api.put(
            "Namespace",
            "",
            json!({"metadata": {"name": "opsh"}, "status": {"phase": "Active"}}),
        )
        .unwrap();
        let demo = api.object("Deployment", "default", "api").unwrap();
        api.put(
            "Deployment",
            "opsh",
            json!({"metadata": {"name": "api", "labels": demo["metadata"]["labels"]}, "spec": demo["spec"]}),
        )
        .unwrap();

        let sa = env.dir("serviceaccount");
        std::fs::write(sa.join("token"), &token).unwrap();
        std::fs::copy(pki.join("ca.pem"), sa.join("ca.crt")).unwrap();
        std::fs::write(sa.join("namespace"), "opsh").unwrap();
        let port = api.port.to_string();
        Pod {
            env,
            api,
            token,
            sa,
            port,
        }
    }

    /// The environment the kubelet gives a pod.
    fn in_pod<'e>(&self, o: Opsh<'e>) -> Opsh<'e> {
        o.env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
            .env("KUBERNETES_SERVICE_PORT", &self.port)
            .env("OPSH_SERVICEACCOUNT_DIR", self.sa.to_str().unwrap())
    }

    /// `script` run inside the pod.
    fn script(&self, script: &str) -> Opsh<'_> {
        self.in_pod(self.env.script(script))
    }

    fn deployment(&self) -> serde_json::Value {
        self.api.object("Deployment", "opsh", "api").unwrap()
    }

    #[track_caller]
    fn wait_ready(&self, n: i64) {
        eventually(secs(15), &format!("{n} ready api replicas in opsh"), || {
            self.deployment()["status"]["readyReplicas"].as_i64() == Some(n)
        });
    }

    /// kubectl as the pod's service account: flags, no kubeconfig.
    fn kubectl(&self, token: &str, args: &[&str]) -> (i32, String, String) {
        let ca = self.env.path("pki/ca.pem");
        let o = Command::new("kubectl")
            .arg(format!("--server={}", self.api.url()))
            .arg(format!("--certificate-authority={}", ca.display()))
            .arg(format!("--token={token}"))
            .args(args)
            .env_remove("KUBECONFIG")
            .env("HOME", self.env.path("home"))
            .env("KUBECACHEDIR", self.env.path("kubecache"))
            .output()
            .expect("run kubectl");
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }
}

#[test]
fn in_cluster_config_acts_as_the_pods_service_account_under_the_shipped_role() {
    let pod = Pod::new();
    pod.wait_ready(3);

    // Reads land in the namespace of the mounted namespace file, and the
    // scale subresource the Role grants works.
    pod.script(
        r#"
        print(`deployments ${k8s.deployments().map(|d| d.name)}`);
        let s = k8s.scale("api", 2);
        print(`scaled ${s.from} -> ${s.to}`);
        "#,
    )
    .run()
    .assert_code(0)
    .assert_stdout_contains(r#"deployments ["api"]"#)
    .assert_stdout_contains("scaled 3 -> 2");
    // In the namespace of the mounted namespace file, not `default`.
    assert_eq!(pod.deployment()["spec"]["replicas"], 2);
    let demo = pod.api.object("Deployment", "default", "api").unwrap();
    assert_eq!(demo["spec"]["replicas"], 3);
    pod.wait_ready(2);

    // The morning health runbook needs only what the Role grants.
    let script = repo_path("scripts/morning_health.rhai");
    pod.in_pod(pod.env.opsh(["run", &script]))
        .script_arg("namespaces", r#"["opsh"]"#)
        .script_arg("check_db", false)
        .run()
        .assert_code(0)
        .assert_stdout_contains("pods opsh");

    // A runbook can ask first: the answers follow the Role exactly.
    let r = pod
        .script(
            r#"
        for q in [["patch", "deployments/scale"], ["get", "pods/log"], ["list", "hpa"],
                  ["patch", "deployments"], ["delete", "pods"], ["create", "secrets"]] {
            print(`${q[0]} ${q[1]} ${k8s.can_i(q[0], q[1])}`);
        }
        print(`other ns ${k8s.ns("default").can_i("list", "pods")}`);
        "#,
        )
        .run();
    r.assert_code(0);
    for line in [
        "patch deployments/scale true",
        "get pods/log true",
        "list hpa true",
        "patch deployments false",
        "delete pods false",
        "create secrets false",
        "other ns false",
    ] {
        r.assert_stdout_contains(line);
    }

    // More than the Role grants is refused by the server, named as the
    // service account, and nothing changes. rollout_restart patches the
    // deployment itself, which the Role does not allow.
    let before = pod.deployment();
    pod.script(r#"k8s.rollout_restart("api")"#)
        .run()
        .assert_code(2)
        .assert_stderr_contains(&format!("forbidden for `{SA}` (in-cluster)"))
        .assert_stderr_contains("kubectl auth can-i")
        .assert_stderr_contains("target: in-cluster")
        // The token is a secret: never printed, logged or audited.
        .assert_output_lacks(&pod.token);
    let after = pod.deployment();
    assert_eq!(before["spec"], after["spec"]);
    // Nor may it read outside its namespace.
    pod.script(r#"k8s.ns("default").deployments()"#)
        .run()
        .assert_code(2)
        .assert_stderr_contains("forbidden")
        .assert_output_lacks(&pod.token);
    let audit = pod.env.audit_text();
    assert!(audit.contains("scale"), "{audit}");
    assert!(!audit.contains(&pod.token));
}

#[test]
fn in_cluster_config_fails_clearly() {
    let pod = Pod::new();
    let probe = "print(k8s.deployments().len())";
    // The pod's environment with one variable changed.
    let with = |var: &str, value: &str| pod.script(probe).env(var, value).run();
    // Another mounted service-account directory: this token (or none) and CA.
    let with_sa = |name: &str, token: Option<&str>, ca: &str| {
        let dir = pod.env.dir(name);
        if let Some(t) = token {
            std::fs::write(dir.join("token"), t).unwrap();
        }
        std::fs::write(dir.join("ca.crt"), ca).unwrap();
        with("OPSH_SERVICEACCOUNT_DIR", dir.to_str().unwrap())
    };

    // No token mounted (automountServiceAccountToken: false).
    let ca = std::fs::read_to_string(pod.sa.join("ca.crt")).unwrap();
    with_sa("no-token", None, &ca)
        .assert_code(2)
        .assert_stderr_contains("cannot read the service account token")
        .assert_stderr_contains("automountServiceAccountToken");

    // A CA that did not sign the server's certificate.
    let other_ca = std::fs::read_to_string(pod.env.path("pki/other-ca.pem")).unwrap();
    with_sa("wrong-ca", Some(&pod.token), &other_ca)
        .assert_code(2)
        .assert_stderr_contains("invalid peer certificate: UnknownIssuer")
        .assert_stderr_contains("not signed by the CA in")
        .assert_stderr_contains("wrong-ca/ca.crt")
        .assert_stderr_lacks(&pod.token);

    // A token the API server did not issue.
    let bad = format!("{}x", pod.token);
    with_sa("forged", Some(&bad), &ca)
        .assert_code(2)
        .assert_stderr_contains("did not accept the credentials")
        .assert_stderr_lacks(&bad);

    // The kubelet sets both variables; half a pod environment is named.
    with("KUBERNETES_SERVICE_PORT", "")
        .assert_code(2)
        .assert_stderr_contains("KUBERNETES_SERVICE_PORT is not set");

    // A kubeconfig, when there is one, wins over the pod environment: the
    // deployments listed are those of the kubeconfig's namespace (default,
    // the demo's), not the one of the pod's service account (opsh, one).
    let in_default = pod.api.objects("Deployment", "default").len();
    assert_ne!(in_default, pod.api.objects("Deployment", "opsh").len());
    with("KUBECONFIG", pod.api.kubeconfig.to_str().unwrap())
        .assert_code(0)
        .assert_stdout(&format!("{in_default}\n"));
}

/// The HTTPS server is what a real API server is to kubectl: the shipped
/// Role allows the scale subresource and refuses the deployment itself,
/// and a token it did not issue is not logged in.
#[test]
fn kubectl_agrees_about_the_service_accounts_rights() {
    let pod = Pod::new();
    let t = pod.token.as_str();
    let (code, out, err) =
        pod.kubectl(t, &["-n", "opsh", "get", "deployment", "api", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let d: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["metadata"]["namespace"], "opsh");

    let (code, _, err) = pod.kubectl(
        t,
        &["-n", "opsh", "scale", "deployment/api", "--replicas=4"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(pod.deployment()["spec"]["replicas"], 4);

    let (code, _, err) = pod.kubectl(t, &["-n", "opsh", "delete", "pod", "--all"]);
    assert_ne!(code, 0);
    assert!(err.contains(&format!("User \"{SA}\" cannot")), "{err}");
    let (code, _, err) = pod.kubectl(t, &["-n", "default", "get", "pods"]);
    assert_ne!(code, 0);
    assert!(err.contains("forbidden"), "{err}");

    // kubectl auth can-i asks the same question opsh's k8s.can_i does.
    for (args, yes) in [
        (
            &[
                "auth",
                "can-i",
                "patch",
                "deployments",
                "--subresource=scale",
                "-n",
                "opsh",
            ][..],
            true,
        ),
        (
            &["auth", "can-i", "patch", "deployments", "-n", "opsh"][..],
            false,
        ),
        (
            &["auth", "can-i", "list", "pods", "-n", "default"][..],
            false,
        ),
    ] {
        let (code, out, err) = pod.kubectl(t, args);
        let want = if yes { "yes" } else { "no" };
        assert_eq!(out.trim(), want, "{args:?}: {err}");
        assert_eq!(code == 0, yes, "{args:?}");
    }

    let (code, _, err) = pod.kubectl("not-issued", &["-n", "opsh", "get", "pods"]);
    assert_ne!(code, 0);
    assert!(err.contains("Unauthorized"), "{err}");

    // The admin kubeconfig of the HTTPS server (CA file and token) works too.
    let o = Command::new("kubectl")
        .args(["get", "deployments", "-A", "-o", "name"])
        .env("KUBECONFIG", &pod.api.kubeconfig)
        .env("HOME", pod.env.path("home"))
        .env("KUBECACHEDIR", pod.env.path("kubecache-admin"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("deployment.apps/api"), "{out}");
}

/// `context = "in-cluster"` names the pod's service account in the config,
/// so an in-cluster target can be protected: an unattended run (no TTY)
/// is refused without --yes, and nothing changes.
#[test]
fn an_in_cluster_target_can_be_protected() {
    let pod = Pod::new();
    pod.env
        .write_config("[kube.cluster]\ncontext = \"in-cluster\"\nprotected = true\n");
    // The default target (no context named) is the in-cluster one, which
    // the config protects; so is the named target.
    for script in [
        r#"k8s.scale("api", 1)"#,
        r#"k8s.context("cluster").scale("api", 1)"#,
    ] {
        pod.script(script)
            .run()
            .assert_code(3)
            .assert_stderr_contains("needs confirmation");
        assert_eq!(pod.deployment()["spec"]["replicas"], 3);
    }
    pod.script(r#"print(k8s.context("cluster").scale("api", 1).to)"#)
        .flag("--yes")
        .run()
        .assert_code(0)
        .assert_stdout("1\n");
    assert_eq!(pod.deployment()["spec"]["replicas"], 1);

    // Outside a pod the name says what is wrong.
    pod.env
        .script(r#"k8s.context("cluster").deployments()"#)
        .run()
        .assert_code(2)
        .assert_stderr_contains("this is not a pod");
}
