//! The k8s module against the behaviours of a real cluster that the test
//! server now has (issue 17): HPAs that undo a scale, and the primitives
//! the runbooks needed kubectl for.

use crate::support::*;

#[test]
fn scale_under_an_hpa_verifies_the_count_and_refuses_what_the_hpa_would_undo() {
    let k = kube();
    k.wait_rolled_out("api");
    let env = Env::new();
    // The seed's HPA keeps api within 2..10: 1 would be undone.
    env.script(r#"k8s.scale("api", 1)"#)
        .kube(&k)
        .run()
        .assert_code(3)
        .assert_stderr_contains("HorizontalPodAutoscaler api keeps deployment api between 2 and 10")
        .assert_stderr_contains("override_hpa");
    assert_eq!(k.replicas("api"), 3, "a refused scale changes nothing");
    // Forced through, the wait sees the HPA put it back and says so.
    env.script(r#"k8s.scale("api", 1, #{override_hpa: true, wait: true, timeout: "20s"})"#)
        .kube(&k)
        .run()
        .assert_code(2)
        .assert_stderr_contains("was scaled to 1 but now wants 2 replicas")
        .assert_stderr_contains("the HorizontalPodAutoscaler api (min 2, max 10) changed it");
    // 0 switches the HPA off: the count holds, and the result says why.
    env.script(r#"let r = k8s.scale("api", 0, #{wait: true, timeout: "20s"}); print(`to=${r.to} ready=${r.ready} ${r.warning}`);"#)
        .kube(&k)
        .run()
        .assert_code(0)
        .assert_stdout_contains("to=0 ready=0 the HorizontalPodAutoscaler api (min 2, max 10) stops acting");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(k.replicas("api"), 0);
    assert!(k.pods("api").is_empty());
}

#[test]
fn patch_delete_set_resources_and_autoscale_change_the_server_and_dry_run_does_not() {
    let k = kube();
    k.wait_rolled_out("api");
    k.wait_rolled_out("worker");
    let before_api = k.object("Deployment", "default", "api").unwrap();
    let env = Env::new();
    // Dry run: every plan is validated by the server, nothing changes.
    env.script(
        r#"
        print(k8s.patch("deploy", "api", #{spec: #{minReadySeconds: 5}}).dry_run);
        k8s.delete("pods", "app=api", #{max: 3});
        k8s.set_resources("worker", #{limits: #{memory: "512Mi"}});
        k8s.autoscale("web-blue", #{min: 2, max: 4});
    "#,
    )
    .kube(&k)
    .flag("--dry-run")
    .run()
    .assert_code(0)
    .assert_stderr_contains("would patch deployments api in default: spec.minReadySeconds")
    .assert_stderr_contains("would delete 3 pods in default matching the selector")
    .assert_stderr_contains("would set the resources of container worker of deployment worker")
    .assert_stderr_contains("would create HorizontalPodAutoscaler web-blue");
    assert_eq!(
        k.object("Deployment", "default", "api").unwrap()["spec"],
        before_api["spec"]
    );
    assert_eq!(k.pods("api").len(), 3);
    assert!(k
        .object("HorizontalPodAutoscaler", "default", "web-blue")
        .is_none());

    let api_pods: Vec<String> = k
        .pods("api")
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    env.script(
        r#"
        let p = k8s.patch("deploy", "api", #{spec: #{minReadySeconds: 5}}, #{type: "merge"});
        print(`merge ${p.diff["spec.minReadySeconds"].to}`);
        let j = k8s.patch("cm", "api-config", [#{op: "replace", path: "/data/CACHE_TTL", value: "600"}]);
        print(`json ${j.diff["data.CACHE_TTL"].from}->${j.diff["data.CACHE_TTL"].to}`);
        let r = k8s.set_resources("worker", #{limits: #{memory: "512Mi"}, requests: #{cpu: "200m"}});
        print(`resources ${r.container} ${r.diff.len()}`);
        let a = k8s.autoscale("web-blue", #{min: 2, max: 4, cpu_percent: 65});
        print(`hpa ${a.hpa} ${a.min}..${a.max}`);
        let d = k8s.delete("pods", "app=api", #{max: 3});
        print(`deleted ${d.deleted.len()}`);
    "#,
    )
    .kube(&k)
    .run()
    .assert_code(0)
    .assert_stdout_contains("merge 5")
    .assert_stdout_contains("json 300->600")
    .assert_stdout_contains("resources worker 2")
    .assert_stdout_contains("hpa web-blue 2..4")
    .assert_stdout_contains("deleted 3");
    assert_eq!(
        k.object("Deployment", "default", "api").unwrap()["spec"]["minReadySeconds"],
        5
    );
    assert_eq!(
        k.object("ConfigMap", "default", "api-config").unwrap()["data"]["CACHE_TTL"],
        "600"
    );
    let worker = k.object("Deployment", "default", "worker").unwrap();
    let res = &worker["spec"]["template"]["spec"]["containers"][0]["resources"];
    assert_eq!(res["limits"]["memory"], "512Mi", "{res}");
    assert_eq!(res["requests"]["cpu"], "200m", "{res}");
    assert_eq!(
        res["requests"]["memory"], "128Mi",
        "other fields kept: {res}"
    );
    let hpa = k
        .object("HorizontalPodAutoscaler", "default", "web-blue")
        .unwrap();
    assert_eq!(
        hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        65
    );
    for p in &api_pods {
        assert!(k.object("Pod", "default", p).is_none(), "{p} still there");
    }
    let audit = env.audit();
    for prim in [
        "k8s.patch",
        "k8s.set_resources",
        "k8s.autoscale",
        "k8s.delete",
    ] {
        assert!(
            audit
                .iter()
                .any(|a| a["primitive"] == prim && a["outcome"] == "ok"),
            "{prim} not audited: {audit:?}"
        );
    }

    // More matches than max: refused before anything is deleted.
    k.wait_pods_ready("api", 3);
    env.script(r#"k8s.delete("pods", "app=api")"#)
        .kube(&k)
        .run()
        .assert_code(3)
        .assert_stderr_contains("app=api selects 3 pods in default, more than max 1");
    assert_eq!(k.pods("api").len(), 3);
    // A stale UID never deletes the object now under that name.
    let victim = k.pods("api")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    env.script(&format!(
        r#"k8s.delete("pod", "{victim}", #{{uid: "00000000-gone"}})"#
    ))
    .kube(&k)
    .run()
    .assert_code(2)
    .assert_stderr_contains("Precondition failed");
    assert!(k.object("Pod", "default", &victim).is_some());
}

#[test]
fn logs_of_workloads_default_containers_follow_describe_and_top_with_a_selector() {
    let k = kube();
    k.wait_rolled_out("api");
    let mut two = k.object("Deployment", "default", "api").unwrap();
    let m = two["metadata"].as_object_mut().unwrap();
    m.retain(|key, _| key == "name" || key == "labels");
    two["metadata"]["name"] = "sidecar".into();
    two["metadata"]["labels"]["app"] = "sidecar".into();
    two["spec"]["selector"]["matchLabels"]["app"] = "sidecar".into();
    two["spec"]["template"]["metadata"]["labels"]["app"] = "sidecar".into();
    two["spec"]["replicas"] = 1.into();
    let c = two["spec"]["template"]["spec"]["containers"][0].clone();
    let mut proxy = c.clone();
    proxy["name"] = "proxy".into();
    two["spec"]["template"]["spec"]["containers"] = serde_json::json!([proxy, c]);
    two.as_object_mut().unwrap().remove("status");
    k.put("Deployment", "default", two).unwrap();
    k.wait_pods_ready("sidecar", 1);
    let env = Env::new();
    env.script(
        r#"
        let l = k8s.logs("deploy/api", #{tail: 1});
        print(`deploy ${l.len()} ${l.map(|x| x.pod).filter(|p| p.starts_with("api-")).len()}`);
        let s = k8s.logs("deploy/sidecar", #{tail: 1});
        print(`sidecar ${s.len()}`);
        let f = k8s.logs("deploy/sidecar", #{follow: "2500ms"});
        print(`follow ${f.len() > s.len()}`);
        let t = timestamp();
        let one = k8s.logs(k8s.pods(#{selector: "app=api"})[0].name, #{tail: 1, follow: "20s", stop_at: "level="});
        print(`stop_at ${one.len()} ${t.elapsed < 10.0}`);
        let d = k8s.describe("pod", k8s.pods(#{selector: "app=api"})[0].name);
        print(`describe ${d.owners.len()} ${d.owners[1]} ${d.events.filter(|e| e.reason == "Scheduled").len()}`);
        let dd = k8s.describe("deploy", "api");
        print(`pods ${dd.pods.len()}`);
        let t = k8s.top_pods(#{selector: "app=api"});
        print(`top ${t.len()} ${k8s.top_pods().len() > t.len()}`);
    "#,
    )
    .kube(&k)
    .run()
    .assert_code(0)
    .assert_stdout_contains("deploy 3 3")
    .assert_stdout_contains("sidecar 1")
    .assert_stderr_contains("defaulted container \"proxy\" out of: proxy, api")
    .assert_stdout_contains("follow true")
    .assert_stdout_contains("stop_at 1 true")
    .assert_stdout_contains("describe 2 Deployment/api 1")
    .assert_stdout_contains("pods 3")
    .assert_stdout_contains("top 3 true");
}

#[test]
fn exec_runs_in_the_pod_is_audited_and_dry_run_runs_nothing() {
    let k = kube();
    k.wait_rolled_out("api");
    let pod = k.pods("api")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = k.pod_dir("default", &pod);
    let env = Env::new();
    let run = format!(r#"k8s.exec("{pod}", ["sh", "-c", "echo ran >> ran.txt"])"#);
    env.script(&run)
        .kube(&k)
        .flag("--dry-run")
        .run()
        .assert_code(0)
        .assert_stderr_contains(&format!(
            "would run [\"sh\", \"-c\", \"echo ran >> ran.txt\"] in {pod} (api)"
        ));
    assert!(!dir.join("ran.txt").exists(), "a dry run ran the command");
    let script = format!(
        r#"
        {run};
        let r = k8s.exec("{pod}", ["sh", "-c", "echo out; echo err >&2"]);
        print(`exit=${{r.exit_code}} ${{r.stdout == "out\n"}} ${{r.stderr == "err\n"}}`);
        let w = k8s.exec("{pod}", ["wc", "-c"], #{{stdin: "0123456789"}});
        print(`stdin=${{w.stdout.parse_int()}}`);
        let all = k8s.exec("app=api", ["sh", "-c", "echo $LOG_LEVEL"], #{{all: true}});
        print(`all=${{all.len()}} ${{all.all(|x| x.stdout == "info\n")}}`);
        let f = k8s.exec("{pod}", ["sh", "-c", "exit 4"], #{{check: false}});
        print(`code=${{f.exit_code}}`);
        k8s.exec("{pod}", ["sh", "-c", "echo broken >&2; exit 5"]);
    "#
    );
    env.script(&script)
        .kube(&k)
        .run()
        .assert_code(2)
        .assert_stdout_contains("exit=0 true true")
        .assert_stdout_contains("stdin=10")
        .assert_stdout_contains("all=3 true")
        .assert_stdout_contains("code=4")
        .assert_stderr_contains("exited with 5: broken");
    assert_eq!(
        std::fs::read_to_string(dir.join("ran.txt")).unwrap(),
        "ran\n"
    );
    let audit = env.audit();
    assert!(
        audit
            .iter()
            .any(|a| a["primitive"] == "k8s.exec" && a["outcome"] == "ok"),
        "{audit:?}"
    );
    // The read-only context may not exec: a clear error, nothing run.
    env.script(&format!(
        r#"k8s.context("sandbox-viewer").exec("{pod}", ["touch", "viewer.txt"])"#
    ))
    .kube(&k)
    .run()
    .assert_code(2)
    .assert_stderr_contains("may not create pods/exec");
    assert!(!dir.join("viewer.txt").exists());
}

#[test]
fn watch_returns_the_changes_until_the_condition_and_is_bounded() {
    let k = kube();
    k.wait_rolled_out("api");
    let victim = k.pods("api")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let env = Env::new();
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(1500));
            k.delete("Pod", "default", &victim).unwrap();
        });
        env.script(
            r#"
            let ev = k8s.watch("pods", #{selector: "app=api", duration: "20s", stop: |e| e.type == "DELETED"});
            let last = ev[ev.len() - 1];
            print(`last ${last.type} ${last.name}`);
            let quiet = k8s.watch("cronjobs", #{duration: "1s"});
            print(`quiet ${quiet.len()}`);
        "#,
        )
        .kube(&k)
        .run()
        .assert_code(0)
        .assert_stdout_contains(&format!("last DELETED {victim}"))
        .assert_stdout_contains("quiet 0");
    });
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "until did not stop the watch"
    );
}
