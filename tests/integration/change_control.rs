//! Change control: blast-radius limits, empty selectors, freeze windows
//! and break-glass (docs/change-control.md), against real servers.

use crate::support::*;

fn pg_config(url: &str, extra: &str) -> String {
    format!("[defaults]\npg = \"prod\"\n[pg.prod]\nurl = \"{url}\"\n{extra}")
}

#[test]
fn an_update_over_max_rows_is_rolled_back_and_the_table_unchanged() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(
        &url,
        "create table jobs(id int, state text); insert into jobs select g, 'stuck' from generate_series(1, 10) g;",
    );
    let env = Env::new();
    env.write_config(&pg_config(&url, "[limits]\nmax_rows = 5\n"));
    env.script(r#"pg.exec("update jobs set state = 'queued'")"#)
        .run()
        .assert_code(3)
        .assert_stderr_contains("affected 10 rows, over the limit [limits] max_rows = 5")
        .assert_stderr_contains("rolled back");
    assert_eq!(
        pg_scalar(&url, "select count(*) from jobs where state = 'stuck'"),
        10
    );
    // Within the limit it is made, and committed.
    env.script(r#"let r = pg.exec("update jobs set state = 'queued' where id <= 5"); print(r.rows_affected)"#)
        .run()
        .assert_code(0)
        .assert_stdout_contains("5");
    assert_eq!(
        pg_scalar(&url, "select count(*) from jobs where state = 'queued'"),
        5
    );
    // A per-target table overrides the global value.
    env.write_config(&pg_config(
        &url,
        "[limits]\nmax_rows = 5\n[limits.\"pg:prod*\"]\nmax_rows = 2\n",
    ));
    env.script(r#"pg.exec("delete from jobs where id <= 3")"#)
        .run()
        .assert_code(3)
        .assert_stderr_contains("[limits.\"pg:prod*\"] max_rows = 2");
    assert_eq!(pg_scalar(&url, "select count(*) from jobs"), 10);
}

#[test]
fn max_mutations_stops_a_run_before_the_next_change() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(&url, "create table t(id int);");
    let env = Env::new();
    env.write_config(&pg_config(&url, "[limits]\nmax_mutations = 2\n"));
    // Two inserts were made before the refusal: a partial change (exit 4).
    env.script(r#"for i in 1..=5 { pg.exec("insert into t values ($1)", [i]); }"#)
        .run()
        .assert_code(4)
        .assert_stderr_contains(
            "mutation 3 of this run, over the limit [limits] max_mutations = 2",
        );
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 2);
}

#[test]
fn redis_deletes_are_bounded_by_max_keys_and_empty_patterns_refused() {
    let sb = sandbox(&[Redis]);
    let url = sb.redis_url();
    for i in 0..20 {
        let _: () = redis_query(&url, &["SET", &format!("cache:{i}"), "v"]);
    }
    let env = Env::new();
    env.write_config(&format!(
        "[defaults]\nredis = \"cache\"\n[redis.cache]\nurl = \"{url}\"\n[limits]\nmax_keys = 10\n"
    ));
    // The script's own max cannot raise the configured ceiling.
    env.script(r#"redis.del_matching("cache:*", #{max: 1000})"#)
        .run()
        .assert_code(3)
        .assert_stderr_contains("more than 10 keys match `cache:*` (the limit: [limits] max_keys)");
    env.script(r#"redis.del(["cache:1", "cache:2", "cache:3", "cache:4", "cache:5", "cache:6", "cache:7", "cache:8", "cache:9", "cache:10", "cache:11"])"#)
        .run()
        .assert_code(3)
        .assert_stderr_contains("redis.del of 11 keys, over the limit [limits] max_keys = 10");
    let n: i64 = redis_query(&url, &["DBSIZE"]);
    assert_eq!(n, 20);
    // An empty selector is refused before anything is read or deleted.
    env.script(r#"redis.del_matching("")"#)
        .run()
        .assert_code(3)
        .assert_stderr_contains("argument `pattern` is empty")
        .assert_stderr_contains("never means \"everything\"");
    env.script(r#"redis.del([])"#)
        .run()
        .assert_code(3)
        .assert_stderr_contains("argument `keys` is empty");
    // The existing option keeps working below the ceiling.
    env.script(r#"redis.del_matching("cache:1*", #{max: 5})"#)
        .run()
        .assert_code(3)
        .assert_stderr_contains("more than 5 keys match `cache:1*` (the limit: option `max`)");
    let n: i64 = redis_query(&url, &["DBSIZE"]);
    assert_eq!(n, 20);
    env.script(r#"print(redis.del_matching("cache:1?").deleted)"#)
        .run()
        .assert_code(0)
        .assert_stdout_contains("10");
    let n: i64 = redis_query(&url, &["DBSIZE"]);
    assert_eq!(n, 10);
}

fn kube_config(k: &Kube, extra: &str) -> String {
    format!(
        "[defaults]\nkube = \"prod\"\n[kube.prod]\nkubeconfig = \"{}\"\nnamespace = \"default\"\n{extra}",
        k.kubeconfig()
    )
}

#[test]
fn scale_below_min_available_and_restarts_over_max_pods_are_refused() {
    let k = kube();
    k.wait_rolled_out("api");
    let env = Env::new();
    env.write_config(&kube_config(
        &k,
        "[limits.\"kube:prod\"]\nmin_available = 2\nmax_pods = 2\n",
    ));
    env.script(r#"k8s.scale("api", 1)"#)
        .run()
        .assert_code(3)
        .assert_stderr_contains("would leave fewer than 2 available, over the limit [limits.\"kube:prod\"] min_available = 2");
    assert_eq!(k.replicas("api"), 3);
    env.script(r#"k8s.rollout_restart("api")"#)
        .run()
        .assert_code(3)
        .assert_stderr_contains(
            "would replace 3 pods, over the limit [limits.\"kube:prod\"] max_pods = 2",
        );
    let d = k.api.object("Deployment", "default", "api").unwrap();
    assert!(
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_null(),
        "{d}"
    );
    // Down to the minimum is allowed.
    env.script(r#"k8s.scale("api", 2)"#).run().assert_code(0);
    assert_eq!(k.replicas("api"), 2);
    // Both refusals are audited, naming the limit.
    let refused: Vec<_> = env
        .audit()
        .into_iter()
        .filter(|a| {
            a["outcome"] == "refused"
                && a["reason"]
                    .as_str()
                    .is_some_and(|e| e.contains("over the limit"))
        })
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
}

#[test]
fn an_empty_service_selector_is_refused() {
    let k = kube();
    let env = Env::new();
    env.write_config(&kube_config(&k, ""));
    let before = k.api.object("Service", "default", "web").unwrap()["spec"]["selector"].clone();
    env.script(r#"k8s.patch_service_selector("web", #{})"#)
        .run()
        .assert_code(3)
        .assert_stderr_contains("argument `selector` is empty");
    assert_eq!(
        k.api.object("Service", "default", "web").unwrap()["spec"]["selector"],
        before
    );
}

#[test]
fn a_freeze_window_refuses_and_break_glass_passes_with_its_reason_audited() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(
        &url,
        "create table t(id int); insert into t values (1), (2);",
    );
    let env = Env::new();
    let freeze = "[[freeze]]\nname = \"year-end\"\ntargets = [\"pg:prod*\"]\nfrom = \"2020-01-01T00:00:00Z\"\nto = \"2099-01-01T00:00:00Z\"\nreason = \"year-end close\"\n";
    env.write_config(&pg_config(&url, freeze));
    let report = env.path("report.json");
    env.script(r#"pg.exec("delete from t")"#)
        .run()
        .assert_code(3)
        .assert_stderr_contains(
            "freeze window `year-end` (year-end close) is in force until 2099-01-01T00:00:00Z",
        )
        .assert_stderr_contains("--break-glass");
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 2);
    // Reads and dry runs go on during a freeze.
    env.script(r#"pg.exec("delete from t")"#)
        .flag("--dry-run")
        .run()
        .assert_code(0);
    // Another target is not frozen.
    env.script(&format!(
        r#"pg.connect("{url}").exec("insert into t values (3)")"#
    ))
    .run()
    .assert_code(0);
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 3);
    env.script(r#"pg.exec("delete from t where id = 1")"#)
        .option("--break-glass", "INC-42: disk full")
        .option("--report", &report)
        .run()
        .assert_code(0)
        .assert_stderr_contains("inside freeze window `year-end`");
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 2);
    let intent = env
        .audit()
        .into_iter()
        .find(|a| a["phase"] == "intent" && a["break_glass"] == "INC-42: disk full")
        .expect("the break-glass reason in the audit log");
    assert_eq!(intent["freeze"], "year-end");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["break_glass"], "INC-42: disk full");
    // A reason is required.
    env.script(r#"pg.exec("delete from t")"#)
        .option("--break-glass", " ")
        .run()
        .assert_code(64);
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 2);
}

#[test]
fn a_fleet_run_over_max_targets_starts_nothing() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(&url, "create table t(id int);");
    let env = Env::new();
    env.write_config(&format!(
        "[pg.a]\nurl = \"{url}\"\n[pg.b]\nurl = \"{url}\"\n[pg.c]\nurl = \"{url}\"\n[limits]\nmax_targets = 2\n"
    ));
    env.script(r#"pg.exec("insert into t values (1)")"#)
        .option("--each-target", "pg:*")
        .run()
        .assert_code(3)
        .assert_stderr_contains("would act on 3 targets, over the limit [limits] max_targets = 2");
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 0);
    // A dry run of the whole fleet changes nothing, so it is not limited.
    env.script(r#"pg.exec("insert into t values (1)")"#)
        .option("--each-target", "pg:*")
        .flag("--dry-run")
        .run()
        .assert_code(0);
}

// ---- plan / apply / approve ----

const SCALE_AND_MARK: &str = r#"
let d = k8s.deployments().filter(|d| d.name == "api")[0];
k8s.scale("api", d.replicas + 2);
pg.exec("insert into marks values ($1)", [d.replicas]);
"#;

fn plan_env(k: &Kube, url: &str, extra: &str) -> Env {
    plan_env_in(Env::new(), k, url, extra)
}

fn plan_env_in(env: Env, k: &Kube, url: &str, extra: &str) -> Env {
    env.write_config(&format!(
        "[defaults]\nkube = \"prod\"\npg = \"prod\"\n[kube.prod]\nkubeconfig = \"{}\"\nnamespace = \"default\"\n[pg.prod]\nurl = \"{url}\"\n{extra}",
        k.kubeconfig()
    ));
    env.write("change.rhai", SCALE_AND_MARK);
    env
}

fn read_plan(env: &Env) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(env.path("plan.json")).unwrap()).unwrap()
}

/// The cluster and database a plan changes: api rolled out, an empty
/// `marks` table. Keep the Sandbox alive for the test.
fn plan_targets() -> (Kube, Sandbox, String) {
    let k = kube();
    k.wait_rolled_out("api");
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(&url, "create table marks(n int);");
    (k, sb, url)
}

#[test]
fn a_plan_changes_nothing_and_apply_makes_exactly_its_mutations() {
    let (k, _sb, url) = plan_targets();
    let env = plan_env(&k, &url, "");
    env.opsh(["plan", "change.rhai", "--out", "plan.json"])
        .env("USER", "alice")
        .run()
        .assert_code(0)
        .assert_stdout_contains("(2 mutations) by alice@")
        .assert_stdout_contains(
            "1. k8s.scale on kube:prod: would scale deployment api in default from 3 to 5",
        )
        .assert_stdout_contains("2. pg.exec on pg:prod");
    // Planning read the real state and changed nothing.
    assert_eq!(k.replicas("api"), 3);
    assert_eq!(pg_scalar(&url, "select count(*) from marks"), 0);
    let plan = read_plan(&env);
    assert_eq!(plan["mutations"][0]["preconditions"]["from"], 3);
    assert_eq!(plan["mutations"][1]["args"][1][0], 3);
    assert_eq!(plan["script"]["text"], SCALE_AND_MARK);
    // The script is not run again: a script edited since changes nothing.
    env.write("change.rhai", r#"k8s.scale("api", 0);"#);
    env.opsh(["apply", "plan.json"])
        .run()
        .assert_code(0)
        .assert_stdout_contains("applied 2 of 2 mutations");
    assert_eq!(k.replicas("api"), 5);
    assert_eq!(pg_scalar(&url, "select count(*) from marks where n = 3"), 1);
    let audit = env.audit();
    assert!(
        audit
            .iter()
            .any(|a| a["event"] == "apply" && a["phase"] == "end"),
        "{audit:?}"
    );
}

#[test]
fn apply_stops_before_a_drifted_step_with_nothing_changed() {
    let (k, _sb, url) = plan_targets();
    let env = plan_env(&k, &url, "");
    env.opsh(["plan", "change.rhai", "--out", "plan.json"])
        .run()
        .assert_code(0);
    // Another actor scales in between.
    env.script(r#"k8s.scale("api", 4)"#).run().assert_code(0);
    env.opsh(["apply", "plan.json"])
        .run()
        .assert_code(3)
        .assert_stderr_contains("step 1/2 k8s.scale on kube:prod: the state drifted since the plan (from was 3 when planned, is 4 now); nothing was changed");
    assert_eq!(k.replicas("api"), 4);
    assert_eq!(pg_scalar(&url, "select count(*) from marks"), 0);
}

#[test]
fn a_tampered_or_expired_plan_is_refused() {
    let (k, _sb, url) = plan_targets();
    let env = plan_env(&k, &url, "[plan]\nttl = \"2s\"\n");
    env.opsh(["plan", "change.rhai", "--out", "plan.json"])
        .run()
        .assert_code(0);
    let good = std::fs::read_to_string(env.path("plan.json")).unwrap();
    let mut plan = read_plan(&env);
    plan["mutations"][0]["args"][1] = serde_json::json!(0);
    env.write("plan.json", &plan.to_string());
    env.opsh(["apply", "plan.json"])
        .run()
        .assert_code(3)
        .assert_stderr_contains("does not match its digest: the plan was modified");
    let mut plan = read_plan(&env);
    plan["mutations"][0]["args"][1] = serde_json::json!(5);
    plan["script"]["text"] = serde_json::json!("k8s.scale(\"api\", 0)");
    env.write("plan.json", &plan.to_string());
    env.opsh(["apply", "plan.json"])
        .run()
        .assert_code(3)
        .assert_stderr_contains("does not match its sha256");
    std::thread::sleep(std::time::Duration::from_secs(3));
    env.write("plan.json", &good);
    env.opsh(["apply", "plan.json"])
        .run()
        .assert_code(3)
        .assert_stderr_contains("the plan expired at");
    assert_eq!(k.replicas("api"), 3);
    assert_eq!(pg_scalar(&url, "select count(*) from marks"), 0);
}

#[test]
fn approvals_are_required_signed_and_never_by_the_planner() {
    let (k, _sb, url) = plan_targets();
    let env = Env::new();
    let key = env.write("approval.key", "s3cret-approval-key\n");
    let env = plan_env_in(
        env,
        &k,
        &url,
        &format!(
            "[[approval]]\ntargets = [\"kube:prod\"]\nrequired = 1\n[approvals]\nkey_file = \"{}\"\n",
            key.display()
        ),
    );
    env.opsh(["plan", "change.rhai", "--out", "plan.json"])
        .env("USER", "alice")
        .run()
        .assert_code(0);
    env.opsh(["apply", "plan.json"])
        .run()
        .assert_code(3)
        .assert_stderr_contains(
            "need 1 approval by someone other than the planner, and it has 0 valid",
        );
    env.opsh(["approve", "plan.json"])
        .env("USER", "alice")
        .run()
        .assert_code(3)
        .assert_stderr_contains("alice@");
    // An approval copied onto a modified plan does not count.
    env.opsh(["approve", "plan.json"])
        .env("USER", "bob")
        .run()
        .assert_code(0)
        .assert_stdout_contains("approved plan.json as bob@");
    let approved = std::fs::read_to_string(env.path("plan.json")).unwrap();
    let mut plan = read_plan(&env);
    plan["mutations"][0]["args"][1] = serde_json::json!(9);
    plan["digest"] = serde_json::json!(opsh::plan::sha256_hex(
        opsh::plan::canonical(&plan).as_bytes()
    ));
    env.write("plan.json", &plan.to_string());
    env.opsh(["apply", "plan.json"])
        .run()
        .assert_code(3)
        .assert_stderr_contains("it has 0 valid");
    assert_eq!(k.replicas("api"), 3);
    env.write("plan.json", &approved);
    env.opsh(["apply", "plan.json"]).run().assert_code(0);
    assert_eq!(k.replicas("api"), 5);
    assert_eq!(pg_scalar(&url, "select count(*) from marks"), 1);
}
