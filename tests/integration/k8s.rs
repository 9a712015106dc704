//! The k8s module against the Kubernetes API test server: every primitive,
//! asserting on what the server holds afterwards.

use crate::support::*;
use serde_json::Value;

fn pod_names(k: &Kube, app: &str) -> Vec<(String, String)> {
    k.pods(app)
        .iter()
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap().to_string(),
                p["metadata"]["uid"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn reads_agree_with_the_server() {
    let k = kube();
    k.wait_rolled_out("api");
    k.wait_worker_oom_killed();
    // A pod that has been OOM-killed and restarted: it has Warning events.
    let worker = k.pods("worker")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let env = Env::new();
    let r = env
        .script(
            &r#"
        let d = k8s.deployments().filter(|d| d.name == "api")[0];
        print(`deploy ${d.replicas} ${d.ready} ${d.images} ${d.revision}`);
        let pods = k8s.pods(#{selector: "app=api"});
        print(`pods ${pods.len()} ready=${pods.filter(|p| p.ready).len()}`);
        let bad = k8s.pods(#{not_ready: true});
        print(`oom ${bad.filter(|p| p.last_termination == "OOMKilled").len()} of ${bad.len()}`);
        let h = k8s.hpa("api");
        print(`hpa ${h.min} ${h.max} ${h.cpu_target_pct}`);
        print(`get ${k8s.get("deploy", "api").spec.replicas} ${k8s.get("netpol").len()} ${k8s.get("cm", "api-config").data.CACHE_TTL}`);
        print(`top ${k8s.top_pods().len()} ${k8s.top_nodes().len()}`);
        let lines = k8s.logs(pods[0].name, #{tail: 2});
        print(`logs ${lines.len()}`);
        let all = k8s.logs("app=api");
        let info = k8s.logs("app=api", #{grep: "level=INFO"});
        print(`grep ${info.len() > 0} ${info.all(|l| l.line.contains("level=INFO"))} ${info.len() < all.len()}`);
        print(`history ${k8s.rollout_history("api").len()}`);
        let ev = k8s.events(#{type: "Warning", involved: "WORKER"});
        print(`events ${ev.len() > 0} ${ev.all(|e| e.type == "Warning" && e.object == "pod/WORKER")} ${ev.filter(|e| e.reason == "BackOff").len()}`);
        print(`other ns ${k8s.ns("kube-system").pods().len()}`);
        let exported = k8s.export_ns();
        print(`export ${exported.filter(|o| o.kind == "Deployment").len()} ${exported.filter(|o| o.kind == "Secret")[0].data.DB_PASSWORD}`);
    "#
            .replace("WORKER", &worker),
        )
        .kube(&k)
        .run();
    r.assert_code(0);
    let out = &r.stdout;
    assert!(
        out.contains("deploy 3 3 registry.example/api:1.4.2 1"),
        "{out}"
    );
    assert!(out.contains("pods 3 ready=3"), "{out}");
    let workers = k.pods("worker").len();
    assert!(
        out.contains(&format!("oom {workers} of {workers}")),
        "{out}"
    );
    assert!(out.contains("hpa 2 10 70"), "{out}");
    assert!(out.contains("get 3 2 300"), "{out}");
    let running = k
        .objects("Pod", "default")
        .into_iter()
        .filter(|p| p["status"]["phase"] == "Running")
        .count();
    assert!(out.contains(&format!("top {running} 2")), "{out}");
    assert!(out.contains("logs 2"), "{out}");
    // Some lines match, all that match contain the text, and the filter
    // dropped the WARN and ERROR lines.
    assert!(out.contains("grep true true true"), "{out}");
    assert!(out.contains("history 1"), "{out}");
    // The restarted worker pod has Warning events, all about it, one
    // of them the BackOff the test server records for a crash loop.
    assert!(out.contains("events true true 1"), "{out}");
    assert!(out.contains("other ns 0"), "{out}");
    assert!(out.contains("export 4 ***"), "{out}");
    assert!(!out.contains("initial-sandbox-password"), "{out}");
}

#[test]
fn scale_changes_replicas_and_waits_until_ready() {
    let k = kube();
    k.wait_rolled_out("api");
    let env = Env::new();
    env.script(r#"let r = k8s.scale("api", 5, #{current: 3, wait: true, timeout: "20s"}); print(`${r.from}->${r.to} ready=${r.ready}`);"#)
        .kube(&k)
        .run()
        .assert_code(0)
        .assert_stdout_contains("3->5 ready=5");
    assert_eq!(k.replicas("api"), 5);
    assert_eq!(pod_names(&k, "api").len(), 5);
    let audit = env.audit();
    assert!(
        audit
            .iter()
            .any(|a| a["primitive"] == "k8s.scale" && a["outcome"] == "ok"),
        "{audit:?}"
    );
}

#[test]
fn dry_run_is_validated_by_the_server_and_changes_nothing() {
    let k = kube();
    k.wait_rolled_out("api");
    let before = k.object("Deployment", "default", "api").unwrap();
    let env = Env::new();
    let r = env
        .script(
            r#"
        let p = k8s.scale("api", 7);
        print(`plan ${p.from} ${p.to} ${p.dry_run}`);
        k8s.set_image("api", "api", "registry.example/api:9.9");
        k8s.rollout_restart("api");
        k8s.set_env("api", #{LOG_LEVEL: "debug"});
        k8s.patch_hpa("api", #{max: 20});
        k8s.create_job_from("nightly-report");
        k8s.secret_set("api-credentials", #{DB_PASSWORD: "n3w-dry-run-pw"});
        k8s.patch_service_selector("web", #{app: "web", version: "green"});
        let pod = k8s.pods(#{selector: "app=api"})[0];
        k8s.delete_pod(pod.name);
        k8s.apply("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dry\ndata:\n  a: \"1\"\n");
    "#,
        )
        .kube(&k)
        .flag("--dry-run")
        .run();
    r.assert_code(0)
        .assert_stdout_contains("plan 3 7 true")
        .assert_stderr_contains("would scale deployment api in default from 3 to 7")
        .assert_stderr_contains("from registry.example/api:1.4.2 to registry.example/api:9.9")
        .assert_stderr_lacks("n3w-dry-run-pw")
        .assert_stdout_lacks("n3w-dry-run-pw");
    let after = k.object("Deployment", "default", "api").unwrap();
    assert_eq!(
        before["spec"], after["spec"],
        "dry run changed the deployment"
    );
    assert_eq!(
        k.object("HorizontalPodAutoscaler", "default", "api")
            .unwrap()["spec"]["maxReplicas"],
        10
    );
    assert!(k.objects("Job", "default").is_empty());
    assert!(k.object("ConfigMap", "default", "dry").is_none());
    assert_eq!(
        k.object("Service", "default", "web").unwrap()["spec"]["selector"]["version"],
        "blue"
    );
    assert_eq!(pod_names(&k, "api").len(), 3);
    let secret = k.object("Secret", "default", "api-credentials").unwrap();
    assert_eq!(
        secret["data"]["DB_PASSWORD"],
        "aW5pdGlhbC1zYW5kYm94LXBhc3N3b3Jk"
    );
    // The server was asked to validate: a bad value fails the dry run.
    env.script(r#"k8s.set_image("api", "nope", "x:1")"#)
        .kube(&k)
        .flag("--dry-run")
        .run()
        .assert_code(2)
        .assert_stderr_contains("has no container nope");
}

#[test]
fn rollout_set_image_status_history_undo() {
    let k = kube();
    k.wait_rolled_out("api");
    let original_rs: Vec<Value> = k
        .objects("ReplicaSet", "default")
        .into_iter()
        .filter(|r| r["metadata"]["labels"]["app"] == "api")
        .collect();
    assert_eq!(original_rs.len(), 1);
    let first = original_rs[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let env = Env::new();
    let r = env
        .script(
            r#"
        k8s.set_image("api", "api", "registry.example/api:1.5.0");
        let s = k8s.rollout_status("api", #{timeout: "30s"});
        print(`status ${s.complete} rev=${s.revision} ${s.images}`);
        let h = k8s.rollout_history("api");
        print(`history ${h.map(|x| x.revision)} current=${h.filter(|x| x.current)[0].images}`);
        let u = k8s.rollout_undo("api");
        print(`undo ${u.from_revision}->${u.to_revision} ${u.images}`);
        k8s.rollout_status("api");
    "#,
        )
        .kube(&k)
        .run();
    r.assert_code(0)
        .assert_stdout_contains("status true rev=2 registry.example/api:1.5.0")
        .assert_stdout_contains("history [1, 2] current=registry.example/api:1.5.0")
        .assert_stdout_contains("undo 2->1 registry.example/api:1.4.2");
    assert!(
        r.stderr.contains("rollout api:"),
        "progress on stderr: {}",
        r.stderr
    );
    // The old ReplicaSet was revived with the next revision; no third one was made.
    let rs = k.object("ReplicaSet", "default", &first).unwrap();
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    assert_eq!(rs["spec"]["replicas"], 3);
    let d = k.object("Deployment", "default", "api").unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/api:1.4.2"
    );
    assert_eq!(
        k.objects("ReplicaSet", "default")
            .into_iter()
            .filter(|r| r["metadata"]["labels"]["app"] == "api")
            .count(),
        2
    );
}

#[test]
fn rollout_restart_and_set_env_make_new_revisions() {
    let k = kube();
    k.wait_rolled_out("api");
    let env = Env::new();
    let r = env
        .script(
            r#"
        k8s.rollout_restart("api");
        k8s.rollout_status("api");
        let e = k8s.set_env("api", #{LOG_LEVEL: "debug", NEW_FLAG: "1"});
        print(`changed ${e.changed.keys().len()}`);
        k8s.rollout_status("api");
        let again = k8s.set_env("api", #{LOG_LEVEL: "debug"});
        print(`again ${again.changed.keys().len()}`);
    "#,
        )
        .kube(&k)
        .run();
    r.assert_code(0)
        .assert_stdout_contains("changed 2")
        .assert_stdout_contains("again 0");
    let d = k.object("Deployment", "default", "api").unwrap();
    assert!(
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string()
    );
    let env_vars = &d["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env_vars
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "LOG_LEVEL" && e["value"] == "debug"),
        "{env_vars}"
    );
    assert!(
        env_vars
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "NEW_FLAG"),
        "{env_vars}"
    );
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    env.script(r#"k8s.set_env("api", #{NEW_FLAG: ()})"#)
        .kube(&k)
        .run()
        .assert_code(0);
    let d = k.object("Deployment", "default", "api").unwrap();
    assert!(!d["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "NEW_FLAG"));
}

#[test]
fn delete_pod_uses_its_uid_and_a_replacement_appears() {
    let k = kube();
    k.wait_rolled_out("api");
    let (name, uid) = pod_names(&k, "api")[0].clone();
    let env = Env::new();
    // A stale uid (the pod was replaced meanwhile) is a 409 and deletes nothing.
    let r = env
        .script(&format!(
            r#"k8s.delete_pod("{name}", #{{uid: "00000000-dead-4bee-f000-000000000000"}})"#
        ))
        .kube(&k)
        .run();
    r.assert_code(2)
        .assert_stderr_contains("a different pod now has that name")
        .assert_stderr_contains("Precondition failed: UID");
    assert!(k.object("Pod", "default", &name).is_some());
    env.script(&format!(
        r#"let d = k8s.delete_pod("{name}", #{{uid: "{uid}"}}); print(d.uid)"#
    ))
    .kube(&k)
    .run()
    .assert_code(0)
    .assert_stdout_contains(&uid);
    assert!(k.object("Pod", "default", &name).is_none());
    k.wait_pods_ready("api", 3);
    let now = pod_names(&k, "api");
    assert_eq!(now.len(), 3);
    assert!(
        now.iter().all(|(_, u)| *u != uid),
        "the deleted pod's uid is gone"
    );
}

#[test]
fn scale_precondition_and_stale_writes_are_refused_clearly() {
    let k = kube();
    let env = Env::new();
    env.script(r#"k8s.scale("api", 6, #{current: 2})"#)
        .kube(&k)
        .run()
        .assert_code(2)
        .assert_stderr_contains("has 3 replicas, not the 2 expected");
    assert_eq!(k.replicas("api"), 3);
    // Another writer changes the HPA between our read and our write: the write carries the old resourceVersion.
    let mut h = k
        .object("HorizontalPodAutoscaler", "default", "api")
        .unwrap();
    let stale_rv = h["metadata"]["resourceVersion"].clone();
    h["spec"]["maxReplicas"] = 15.into();
    k.put("HorizontalPodAutoscaler", "default", h).unwrap();
    env.script(r#"k8s.patch_hpa("api", #{min: 3}); print(`min ${k8s.hpa("api").min}`);"#)
        .kube(&k)
        .run()
        .assert_code(0)
        .assert_stdout_contains("min 3");
    assert_eq!(
        k.object("HorizontalPodAutoscaler", "default", "api")
            .unwrap()["spec"]["maxReplicas"],
        15,
        "the other writer's change survives"
    );
    assert_ne!(
        stale_rv,
        k.object("HorizontalPodAutoscaler", "default", "api")
            .unwrap()["metadata"]["resourceVersion"]
    );
    env.script(r#"k8s.patch_hpa("api", #{min: 9, max: 4})"#)
        .kube(&k)
        .run()
        .assert_code(2)
        .assert_stderr_contains("min <= max");
}

#[test]
fn jobs_secrets_selectors_and_apply() {
    let k = kube();
    k.wait_rolled_out("web-green");
    let env = Env::new();
    let r = env
        .script(
            r#"
        let j = k8s.create_job_from("nightly-report", "report-now");
        print(`job ${j.job}`);
        let s = k8s.secret_set("api-credentials", #{DB_PASSWORD: "Rotated-Pa55-xyz", NEW_KEY: "v"});
        print(`secret changed=${s.changed} added=${s.added}`);
        let sw = k8s.patch_service_selector("web", #{app: "web", version: "green"});
        print(`switch ${sw.from} -> ${sw.to} (${sw.ready_pods})`);
        let a = k8s.apply("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: flags\ndata:\n  checkout: \"on\"\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: batch\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: batch}\n  template:\n    metadata:\n      labels: {app: batch}\n    spec:\n      containers:\n      - name: batch\n        image: registry.example/batch:1\n");
        print(`apply ${a.map(|x| x.action)}`);
        let b = k8s.apply("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: flags\ndata:\n  checkout: \"on\"\n");
        print(`again ${b[0].action}`);
    "#,
        )
        .kube(&k)
        .run();
    r.assert_code(0);
    let out = &r.stdout;
    assert!(out.contains("job report-now"), "{out}");
    assert!(
        out.contains(r#"secret changed=["DB_PASSWORD"] added=["NEW_KEY"]"#),
        "{out}"
    );
    assert!(
        out.contains("switch app=web,version=blue -> app=web,version=green (2)"),
        "{out}"
    );
    assert!(out.contains(r#"apply ["created", "created"]"#), "{out}");
    assert!(out.contains("again unchanged"), "{out}");
    // Server state.
    let job = k.object("Job", "default", "report-now").unwrap();
    assert_eq!(
        job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
        "manual"
    );
    assert_eq!(
        job["metadata"]["ownerReferences"][0]["name"],
        "nightly-report"
    );
    eventually(secs(10), "job report-now to succeed", || {
        k.object("Job", "default", "report-now")
            .is_some_and(|j| j["status"]["succeeded"] == 1)
    });
    let secret = k.object("Secret", "default", "api-credentials").unwrap();
    assert_eq!(secret["data"]["DB_PASSWORD"], "Um90YXRlZC1QYTU1LXh5eg==");
    assert_eq!(
        k.object("Service", "default", "web").unwrap()["spec"]["selector"]["version"],
        "green"
    );
    assert_eq!(
        k.object("ConfigMap", "default", "flags").unwrap()["data"]["checkout"],
        "on"
    );
    k.wait_rolled_out("batch");
    // The secret value appears nowhere: not in output, not in the audit log.
    let audit = std::fs::read_to_string(env.audit_path()).unwrap();
    for text in [&r.stdout, &r.stderr, &audit] {
        assert!(!text.contains("Rotated-Pa55-xyz"), "secret leaked: {text}");
    }
    // A selector no ready pod matches is refused; nothing changes.
    env.script(r#"k8s.patch_service_selector("web", #{app: "web", version: "purple"})"#)
        .kube(&k)
        .run()
        .assert_code(3)
        .assert_stderr_contains("no ready pod matches");
    assert_eq!(
        k.object("Service", "default", "web").unwrap()["spec"]["selector"]["version"],
        "green"
    );
}

#[test]
fn apply_conflicts_are_reported_never_forced() {
    let k = kube();
    let env = Env::new();
    // spec.replicas of `api` belongs to the manager that created it.
    let r = env
        .script(r#"k8s.apply("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  replicas: 9\n")"#)
        .kube(&k)
        .run();
    r.assert_code(2)
        .assert_stderr_contains("conflict on .spec.replicas");
    assert!(
        r.stderr.contains("sandbox-seed"),
        "names the other manager: {}",
        r.stderr
    );
    assert_eq!(k.replicas("api"), 3);
}

#[test]
fn protected_context_needs_yes() {
    let k = kube();
    let env = Env::new();
    let kc = k.kubeconfig();
    env.write_config(&format!(
        "[kube.prod]\nkubeconfig = \"{kc}\"\ncontext = \"sandbox\"\nprotected = true\n"
    ));
    env.script(r#"k8s.context("prod").scale("api", 4)"#)
        .run()
        .assert_code(3)
        .assert_stderr_contains("protected");
    assert_eq!(k.replicas("api"), 3);
    // The same cluster as the current context of KUBECONFIG: protected by context name too.
    env.write_config("[kube.sandbox]\nprotected = true\n");
    env.script(r#"k8s.scale("api", 4)"#)
        .kube(&k)
        .run()
        .assert_code(3)
        .assert_stderr_contains("protected target current-context needs confirmation");
    assert_eq!(k.replicas("api"), 3);
    env.script(r#"k8s.scale("api", 4)"#)
        .kube(&k)
        .flag("--yes")
        .run()
        .assert_code(0);
    assert_eq!(k.replicas("api"), 4);
}

#[test]
fn forbidden_names_the_identity() {
    let k = kube();
    let env = Env::new();
    env.script(
        r#"let v = k8s.context("sandbox-viewer"); print(v.deployments().len()); v.scale("api", 5)"#,
    )
    .kube(&k)
    .run()
    .assert_code(2)
    // The viewer may read.
    .assert_stdout(&format!("{}\n", k.objects("Deployment", "default").len()))
    .assert_stderr_contains("forbidden for user `viewer`");
    assert_eq!(k.replicas("api"), 3);
}

#[test]
fn missing_or_broken_kubeconfig_is_a_clear_error() {
    let env = Env::new();
    env.script("k8s.deployments()")
        .run()
        .assert_code(2)
        .assert_stderr_contains("no kubeconfig");
    env.script("k8s.deployments()")
        .kubeconfig("/nonexistent/kubeconfig")
        .run()
        .assert_code(2)
        .assert_stderr_contains("/nonexistent/kubeconfig")
        .assert_stderr_contains("does not exist");
    let broken = env.write("broken.yaml", "apiVersion: v1\nclusters: [oops\n");
    env.script("k8s.deployments()")
        .kubeconfig(broken.to_str().unwrap())
        .run()
        .assert_code(2)
        .assert_stderr_contains("cannot load kubeconfig");
    let k = kube();
    let r = env.script(r#"k8s.context("nope")"#).kube(&k).run();
    r.assert_code(2)
        .assert_stderr_contains("no context `nope`")
        .assert_stderr_contains("sandbox-viewer");
    env.script(r#"k8s.get("widgets")"#)
        .kube(&k)
        .run()
        .assert_code(2)
        .assert_stderr_contains("no resource type `widgets`");
}

#[test]
fn rollout_status_fails_when_the_rollout_is_stuck() {
    let k = kube();
    k.wait_rolled_out("api");
    let env = Env::new();
    env
        .script(r#"k8s.set_image("api", "api", "registry.example/api:does-not-exist"); k8s.rollout_status("api", #{timeout: "2s"})"#)
        .kube(&k)
        .run().assert_code(4).assert_stderr_contains("rollout of api not complete after 2s")
        // The timeout names the pod that holds it back, and why.
        .assert_stderr_contains("is waiting: ImagePullBackOff");
    let bad = k
        .objects("Pod", "default")
        .into_iter()
        .filter(|p| {
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
        })
        .count();
    assert!(bad >= 1);
}

#[test]
fn top_without_a_metrics_api_is_a_clear_error() {
    let k = kube();
    k.serve_metrics(false);
    let env = Env::new();
    env.script("k8s.top_pods()")
        .kube(&k)
        .run()
        .assert_code(2)
        .assert_stderr_contains("serves no metrics API (metrics.k8s.io)")
        .assert_stderr_contains("metrics-server");
}

#[test]
fn progress_deadline_and_previous_logs_after_an_oom_kill() {
    let k = kube();
    k.wait_worker_oom_killed();
    let mut d = k.object("Deployment", "default", "api").unwrap();
    d["spec"]["progressDeadlineSeconds"] = 1.into();
    k.put("Deployment", "default", d).unwrap();
    let env = Env::new();
    let worker = k
        .objects("Pod", "default")
        .into_iter()
        .find(|p| p["metadata"]["labels"]["app"] == "worker")
        .unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let r = env
        .script(
            &format!(
            r#"
            print(`previous ${{k8s.logs("{worker}", #{{previous: true}}).filter(|l| l.line.contains("out of memory")).len()}}`);
            print(`by selector ${{k8s.logs("app=api", #{{previous: true}}).len()}}`);
            k8s.set_image("api", "api", "registry.example/api:broken");
            k8s.rollout_status("api", #{{timeout: "20s"}});
            "#
        ),
        )
        .kube(&k)
        .run();
    // The image was set, then the rollout failed: a partial run.
    r.assert_code(4)
        .assert_stdout_contains("previous 1")
        .assert_stdout_contains("by selector 0")
        .assert_stderr_contains("k8s.logs: skipping api-")
        .assert_stderr_contains("deployment api exceeded its progress deadline");
    assert!(
        r.stderr.contains("rollout_undo"),
        "the hint says how to go back: {}",
        r.stderr
    );
}

#[test]
fn opsh_sandbox_run_has_a_cluster() {
    let env = Env::new();
    let file = env.write("check.rhai", r#"let d = k8s.deployments(); print(`deployments ${d.len()}`); k8s.scale("api", 4); print(k8s.get("deploy", "api").spec.replicas)"#);
    env.opsh(["sandbox", "run"])
        .arg(&file)
        .run()
        .assert_code(0)
        // The seed's four deployments, and api scaled to 4.
        .assert_stdout("deployments 4\n4\n")
        .assert_stderr_contains("Kubernetes API on 127.0.0.1:");
}

#[test]
fn a_concurrent_change_is_a_409_that_says_what_changed() {
    let k = kube();
    let env = Env::new();
    for (kind, name, script) in [
        (
            "HorizontalPodAutoscaler",
            "api",
            r#"k8s.patch_hpa("api", #{max: 20})"#,
        ),
        (
            "Service",
            "web",
            r#"k8s.patch_service_selector("web", #{app: "web", version: "green"})"#,
        ),
    ] {
        if kind == "Service" {
            k.wait_rolled_out("web-green");
        }
        k.interfere(kind, "default", name);
        let r = env.script(script).kube(&k).run();
        r.assert_code(2)
            .assert_stderr_contains(
                "conflict, someone else changed it since it was read (resourceVersion ",
            )
            .assert_stderr_contains("nothing was changed");
        let after = k.object(kind, "default", name).unwrap();
        assert_eq!(
            after["metadata"]["annotations"]["sandbox.opsh.dev/touched-by"],
            "another-client"
        );
    }
    assert_eq!(k.replicas("api"), 3);
    assert_eq!(
        k.object("HorizontalPodAutoscaler", "default", "api")
            .unwrap()["spec"]["maxReplicas"],
        10
    );
    assert_eq!(
        k.object("Service", "default", "web").unwrap()["spec"]["selector"]["version"],
        "blue"
    );
    // Read again and it goes through.
    env.script(r#"k8s.scale("api", 5)"#)
        .kube(&k)
        .run()
        .assert_code(0);
    assert_eq!(k.replicas("api"), 5);
}

#[test]
fn scale_retries_past_an_unrelated_change_but_not_past_a_replicas_change() {
    let k = kube();
    let env = Env::new();
    // Another client touches the Deployment between opsh's read and write:
    // the write conflicts, opsh reads again and scales, keeping their change.
    k.interfere("Deployment", "default", "api");
    env.script(r#"k8s.scale("api", 5, #{current: 3})"#)
        .kube(&k)
        .run()
        .assert_code(0);
    assert_eq!(k.replicas("api"), 5);
    let after = k.object("Deployment", "default", "api").unwrap();
    assert_eq!(
        after["metadata"]["annotations"]["sandbox.opsh.dev/touched-by"],
        "another-client"
    );
    // The precondition is checked on every read: replicas are 5 now, not 3.
    env.script(r#"k8s.scale("api", 7, #{current: 3})"#)
        .kube(&k)
        .run()
        .assert_code(2)
        .assert_stderr_contains("has 5 replicas, not the 3 expected");
    assert_eq!(k.replicas("api"), 5);
}

/// Every `names` script a parameter declares (what the REPL completes
/// live) runs against a cluster and lists the demo objects by name.
#[test]
fn declared_name_lists_run_against_the_cluster() {
    let k = kube();
    let env = Env::new();
    k.wait_pods_ready("api", 3);
    let mut scripts: Vec<&str> = opsh::registry::all()
        .flat_map(|p| p.params.iter().filter_map(|x| x.names))
        .collect();
    scripts.sort();
    scripts.dedup();
    assert_eq!(scripts.len(), 5, "{scripts:?}");
    for s in scripts {
        let r = env
            .script(&format!("print(json.stringify({s}))"))
            .kube(&k)
            .run();
        r.assert_code(0);
        let names: Vec<String> = serde_json::from_str(r.stdout.trim())
            .unwrap_or_else(|e| panic!("{s}: {e}: {}", r.stdout));
        let expected = ["api", "default", "nightly-report"];
        assert!(
            names
                .iter()
                .any(|n| expected.contains(&n.as_str()) || n.starts_with("api-")),
            "{s} listed {names:?}"
        );
    }
}

/// Issue 14: a `current` given as a string used to be ignored, so the
/// scale went ahead without its safety precondition. The declaration says
/// `current` is an int: a string, or a misspelt key, is refused before
/// anything is read or written.
#[test]
fn a_mistyped_scale_option_is_refused_before_anything_changes() {
    let k = kube();
    k.wait_rolled_out("api");
    let env = Env::new();
    env.script(r#"k8s.scale("api", 3, #{current: "3"})"#)
        .kube(&k)
        .run()
        .assert_code(2)
        .assert_stderr_contains(r#"option `current` must be an int, got string ("3")"#);
    // Had the precondition been skipped again, this would scale to 5.
    env.script(r#"k8s.scale("api", 5, #{current: "2"})"#)
        .kube(&k)
        .run()
        .assert_code(2)
        .assert_stderr_contains("option `current` must be an int");
    assert_eq!(k.replicas("api"), 3);
    env.script(r#"k8s.scale("api", 5, #{curent: 3})"#)
        .kube(&k)
        .run()
        .assert_code(2)
        .assert_stderr_contains("unknown option `curent`")
        .assert_stderr_contains("did you mean `current`?");
    assert_eq!(k.replicas("api"), 3);
}
