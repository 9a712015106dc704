//! Incident drills: each one reproduces, on real services (PostgreSQL,
//! Prometheus, the Kubernetes API test server), an incident a shipped
//! runbook exists for, runs the runbook through the real binary (dry run
//! and real run), and asserts on the END STATE of the services, on what the
//! runbook said and on its exit code. Run them alone with
//! `cargo test --test integration drills::`; docs/runbooks.md lists them
//! with the seed procedure each comes from.
//!
//! Each drill names the misbehaviour it was written for; every one of them
//! failed against the runbook as it was before its fix.

use crate::support::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The runbook under drill: scripts/NAME, or NAME in $OPSH_DRILL_SCRIPTS
/// (to run the drills against another version of the runbooks, e.g. the
/// one before a fix: `git archive HEAD~1 scripts | tar -x -C /tmp/old`).
fn script(name: &str) -> String {
    match std::env::var("OPSH_DRILL_SCRIPTS") {
        Ok(dir) if !dir.is_empty() => format!("{dir}/{name}"),
        _ => repo_path(&format!("scripts/{name}")),
    }
}

/// Everything the runbook printed, stdout and stderr.
fn said(r: &Run) -> String {
    format!("{}\n{}", r.stdout, r.stderr)
}

#[track_caller]
fn assert_said(r: &Run, needle: &str) {
    let all = said(r);
    assert!(
        all.contains(needle),
        "the runbook did not say {needle:?} (exit {}):\n{all}",
        r.code
    );
}

#[track_caller]
fn assert_not_said(r: &Run, needle: &str) {
    let all = said(r);
    assert!(
        !all.contains(needle),
        "the runbook said {needle:?} (exit {}):\n{all}",
        r.code
    );
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// With OPSH_DRILL_RECORD=DIR, a drill's recording of its real run is kept
/// there (tests/runbooks/recordings/ feeds the stubbed runbook tests).
fn keep_recording(path: &std::path::Path, name: &str) {
    if let Ok(dir) = std::env::var("OPSH_DRILL_RECORD") {
        if !dir.is_empty() {
            std::fs::copy(path, format!("{dir}/{name}")).unwrap();
        }
    }
}

// ---------------------------------------------------------------- cert_expiry

/// Seed 001 "SSL/TLS Certificate Expired": a host that refuses the
/// connection is unreachable, not "expiring: run certbot".
#[test]
fn drill_cert_expiry_unreachable_host() {
    let env = Env::new();
    let port = closed_port();
    let r = env
        .opsh(["run", &script("cert_expiry.rhai")])
        .script_arg("hosts", format!("127.0.0.1:{port}"))
        .run();
    r.assert_code(1);
    assert_said(&r, "UNREACHABLE");
    assert_said(&r, "unreachable");
    assert_not_said(&r, "certbot renew");
}

// ---------------------------------------------------------- oom_or_memory_leak

/// Seed 001 "OOM": worker pods OOM-killed in a loop, the runbook run with
/// its defaults. It must see them (not only app=api), restart nothing and
/// say what to do (raise the limit; restarting will not help).
#[test]
fn drill_oom_in_another_deployment_with_default_arguments() {
    let k = kube();
    k.wait_rolled_out("api");
    k.wait_worker_oom_killed();
    let env = Env::new();
    let uids = |app: &str| -> Vec<String> {
        k.pods(app)
            .iter()
            .map(|p| p["metadata"]["uid"].as_str().unwrap().to_string())
            .collect()
    };
    let (api, worker) = (uids("api"), uids("worker"));
    for dry in [true, false] {
        let mut o = env
            .opsh(["run", &script("oom_or_memory_leak.rhai")])
            .kubeconfig(k.kubeconfig());
        if dry {
            o = o.flag("--dry-run");
        }
        let r = o.run();
        r.assert_code(1);
        assert_said(&r, "OOMKilled");
        assert_said(&r, "worker-");
        assert_said(&r, "raise their memory limit");
        assert_said(&r, "restarting will not help");
    }
    // Nothing was deleted: the pods are the same ones.
    assert_eq!(uids("api"), api);
    assert_eq!(uids("worker"), worker);
    assert_eq!(env.outcomes("k8s.delete_pod").len(), 0);
}

// ------------------------------------------------------ rollback, system_down

/// Seed 000 "Manual Rollback" / 002 "System Down": a deploy to an image
/// that never pulled was undone by hand; the previous revision is now the
/// broken one. Neither runbook may "roll back" onto it.
#[test]
fn drill_rollback_onto_a_revision_that_never_pulled() {
    let k = kube();
    k.wait_rolled_out("api");
    let env = Env::new();
    // The broken deploy, its pull failure, and the hand-made undo.
    env.script(
        r#"k8s.set_image("api", "api", "registry.example/api:broken");
           let seen = false;
           for i in 0..60 {
               if k8s.events(#{type: "Warning"}).filter(|e| e.message.contains("api:broken")).len() > 0 { seen = true; break; }
               sleep("250ms");
           }
           if !seen { fail("no pull failure event"); }
           k8s.rollout_undo("api");
           k8s.rollout_status("api", #{timeout: "30s"});"#,
    )
    .kubeconfig(k.kubeconfig())
    .run()
    .assert_code(0);
    k.wait_rolled_out("api");
    assert_eq!(k.image("api"), "registry.example/api:1.4.2");
    let health = format!("http://127.0.0.1:{}/health", closed_port());
    for name in ["rollback.rhai", "system_down.rhai"] {
        for dry in [true, false] {
            let mut o = env
                .opsh(["run", &script(name)])
                .script_arg("health_url", &health)
                .script_arg("tries", 1)
                .kubeconfig(k.kubeconfig());
            if name == "system_down.rhai" {
                // system_down has no `tries`: give only what it declares.
                o = env
                    .opsh(["run", &script(name)])
                    .script_arg("health_url", &health)
                    .kubeconfig(k.kubeconfig());
            }
            let recording = env.path(&format!("{name}.json"));
            if dry {
                o = o.flag("--dry-run");
            } else {
                o = o.arg("--record").arg(&recording);
            }
            let r = o.run();
            assert_ne!(r.code, 0, "{name}: {}", said(&r));
            assert_said(&r, "never pulled");
            if !dry {
                keep_recording(
                    &recording,
                    &format!("{}_never_pulled.json", name.trim_end_matches(".rhai")),
                );
                // The recording answers a replay the same way, with no server.
                let replayed = env
                    .opsh(["run", &script(name)])
                    .arg("--replay")
                    .arg(&recording)
                    .run();
                assert_ne!(replayed.code, 0, "{}", said(&replayed));
                assert_said(&replayed, "never pulled");
            }
            assert_said(&r, "nothing was changed");
            assert_eq!(
                k.image("api"),
                "registry.example/api:1.4.2",
                "{name} (dry run: {dry}) moved the image"
            );
        }
    }
    assert_eq!(
        env.outcomes("k8s.rollout_undo").len(),
        1,
        "only the hand-made undo"
    );
    k.wait_rolled_out("api");
}

// -------------------------------------------------------- staged_rollout_guard

/// Seed 003 "Traffic Shift 10% / 50% / 100%": the guard metric is missing
/// once traffic has started to shift. The runbook must restore blue/green
/// (or say exactly how it left them) and exit non-zero.
#[test]
fn drill_staged_rollout_guard_metric_missing_mid_rollout() {
    let k = kube();
    let sb = sandbox(&[Monitoring]);
    k.wait_rolled_out("web-blue");
    let env = Env::new();
    // Start from all traffic on blue: 4 blue, 0 green.
    env.script(
        r#"k8s.scale("web-green", 0, #{wait: true}); k8s.scale("web-blue", 4, #{wait: true});"#,
    )
    .kubeconfig(k.kubeconfig())
    .run()
    .assert_code(0);
    let run = |dry: bool| {
        let mut o = env
            .opsh(["run", &script("staged_rollout_guard.rhai")])
            .script_arg("blue", "web-blue")
            .script_arg("green", "web-green")
            .script_arg("stages", "[25, 100]")
            .script_arg("soak", "1s")
            .script_arg("score_expr", "avg(drill_guard_score_that_is_gone)")
            .script_arg("error_expr", "vector(0)")
            .kubeconfig(k.kubeconfig())
            .env("PROMETHEUS_URL", sb.monitoring().prometheus.url());
        if dry {
            o = o.flag("--dry-run");
        }
        o.run()
    };
    let r = run(true);
    assert_ne!(r.code, 0, "{}", said(&r));
    assert_eq!((k.replicas("web-blue"), k.replicas("web-green")), (4, 0));
    let r = run(false);
    assert_ne!(r.code, 0, "{}", said(&r));
    assert_said(&r, "drill_guard_score_that_is_gone");
    assert_said(&r, "all traffic back on web-blue");
    // The end state: restored, not half-shifted (blue 3 / green 1).
    assert_eq!((k.replicas("web-blue"), k.replicas("web-green")), (4, 0));
    k.wait_rolled_out("web-blue");
}

// ---------------------------------------------------------------- db_rollback

/// Seed 000 "Database Rollback": the application is scaled to 0 for the
/// restore, and something (an HPA, a GitOps controller) puts replicas back.
/// The restore must not run under live traffic: a refusal with why.
#[test]
fn drill_db_rollback_replicas_come_back_during_the_restore() {
    let k = kube();
    k.wait_rolled_out("api");
    let env = Env::new();
    let jobs = || k.objects("Job", "default").len();
    let jobs_before = jobs();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // A controller that fights back: whatever the HPA's semantics, a
        // deployment at 0 is put back to 2 at once.
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                if let Some(mut d) = k.object("Deployment", "default", "api") {
                    if d["spec"]["replicas"] == 0 {
                        d["spec"]["replicas"] = serde_json::json!(2);
                        let _ = k.put("Deployment", "default", d);
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let r = env
            .opsh(["run", &script("db_rollback.rhai")])
            .script_arg("restore_cronjob", "nightly-report")
            .kubeconfig(k.kubeconfig())
            .run();
        stop.store(true, Ordering::Relaxed);
        assert_ne!(r.code, 0, "{}", said(&r));
        assert_said(&r, "after the scale to 0");
        assert_said(&r, "not restoring");
        assert_not_said(&r, "panicked");
    });
    // No restore Job was started under live traffic.
    assert_eq!(jobs(), jobs_before, "a restore job was created");
    assert_eq!(env.outcomes("k8s.create_job_from").len(), 0);
}

// ---------------------------------------------------- db_connection_exhaustion

/// Seed 000 "Database Connection Pool Exhaustion": a server at
/// max_connections, with long queries of superusers and of the app, and
/// more idle app sessions than max_terminate allows. The `max` guard must
/// refuse before anything is terminated; superusers are named as left
/// alone; then, allowed, the "after" measurement still works and the
/// terminated pids are listed.
#[test]
fn drill_db_connection_exhaustion_on_a_full_server() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(
        &url,
        "create role app login password 'app-pw-123'; grant connect on database postgres to app;",
    );
    let mut app = url::Url::parse(&url).unwrap();
    app.set_username("app").unwrap();
    app.set_password(Some("app-pw-123")).unwrap();
    let app = app.to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // 100 slots, 3 reserved for superusers: 40 superuser long queries, 12
    // app long queries, 45 idle app sessions. The app cannot connect any
    // more; opsh (a superuser here) has the reserved slots.
    let (idle, _busy) = rt.block_on(async {
        use sqlx::Connection;
        let mut idle = Vec::new();
        for _ in 0..45 {
            idle.push(sqlx::PgConnection::connect(&app).await.unwrap());
        }
        let mut busy = Vec::new();
        for (u, n) in [(&app, 12), (&url, 40)] {
            for _ in 0..n {
                let mut c = sqlx::PgConnection::connect(u).await.unwrap();
                busy.push(tokio::spawn(async move {
                    let _ = sqlx::query("select pg_sleep(600)").execute(&mut c).await;
                    c
                }));
            }
        }
        (idle, busy)
    });
    std::thread::sleep(Duration::from_millis(1500));
    let app_sessions = "select count(*) from pg_stat_activity where usename = 'app'";
    assert_eq!(pg_scalar(&url, app_sessions), 57);
    let env = Env::new();
    let run = |max: i64, dry: bool| {
        let mut o = env
            .opsh(["run", &script("db_connection_exhaustion.rhai")])
            .script_arg("saturation_pct", 50)
            .script_arg("active_older_than", "1s")
            .script_arg("idle_older_than", "1s")
            .script_arg("max_terminate", max)
            .pg(&url);
        if dry {
            o = o.flag("--dry-run");
        }
        o.run()
    };
    // 57 app sessions match, max 20: refused before anything is terminated.
    for dry in [true, false] {
        let r = run(20, dry);
        assert_ne!(r.code, 0, "{}", said(&r));
        assert_said(&r, "nothing was terminated");
        assert_said(&r, "40 superuser");
        assert_eq!(pg_scalar(&url, app_sessions), 57, "dry run: {dry}");
    }
    assert_eq!(env.outcomes("pg.terminate").len(), 0);
    // Allowed: everything of the app goes, the after measurement works.
    let r = run(100, false);
    r.assert_code(0);
    assert_said(&r, "recovered");
    assert_said(&r, "terminated pids");
    assert_said(&r, "40 superuser");
    assert_eq!(pg_scalar(&url, app_sessions), 0);
    drop(idle);
    rt.shutdown_background();
}

// ------------------------------------------------------------ high_error_rate

/// Seed 002 "High Error Rate": the API's errors are all timeouts of one
/// upstream (payments). The runbook must group them, say the upstream is the
/// story, and not restart the API.
#[test]
fn drill_high_error_rate_from_a_failing_upstream() {
    let k = kube();
    let sb = sandbox(&[Pg, Monitoring]);
    k.wait_rolled_out("api");
    let env = Env::new();
    // The test server's pods log an upstream timeout every 13 s of life.
    env.script(
        r#"for i in 0..120 {
               if k8s.logs("app=api", #{tail: 200, grep: "ERROR"}).len() >= 3 { exit(0); }
               sleep("250ms");
           }
           fail("no ERROR lines in the api pods' logs");"#,
    )
    .kubeconfig(k.kubeconfig())
    .run()
    .assert_code(0);
    let uids = || -> Vec<String> {
        k.pods("api")
            .iter()
            .map(|p| p["metadata"]["uid"].as_str().unwrap().to_string())
            .collect()
    };
    let before = uids();
    let restarted = || {
        !k.object("Deployment", "default", "api").unwrap()["spec"]["template"]["metadata"]
            ["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_null()
    };
    for dry in [true, false] {
        let mut o = env
            .opsh(["run", &script("high_error_rate.rhai")])
            .script_arg("error_expr", "vector(0.5)")
            .kubeconfig(k.kubeconfig())
            .pg(&sb.pg_url())
            .env("PROMETHEUS_URL", sb.monitoring().prometheus.url());
        if dry {
            o = o.flag("--dry-run");
        }
        let r = o.run();
        r.assert_code(1);
        assert_said(&r, "upstream payments:8080");
        assert_said(&r, "not restarting api");
        // Grouped: one row for the message and upstream, not one per line.
        assert_eq!(
            said(&r).matches("upstream timeout").count(),
            1,
            "{}",
            said(&r)
        );
    }
    assert!(!restarted(), "api was restarted");
    assert_eq!(uids(), before);
    assert_eq!(env.outcomes("k8s.rollout_restart").len(), 0);
}

// -------------------------------------------------------------- morning_health

/// Seed 004 "Morning Health Check": a deployment whose new image never
/// pulled (its pod stuck not Ready) and OOM-looping workers. Read-only: it
/// must name both and change nothing.
#[test]
fn drill_morning_health_finds_a_stuck_rollout_and_restarting_pods() {
    let k = kube();
    k.wait_rolled_out("api");
    k.wait_worker_oom_killed();
    let env = Env::new();
    env.script(r#"k8s.set_image("web-green", "web", "registry.example/web:broken");"#)
        .kubeconfig(k.kubeconfig())
        .run()
        .assert_code(0);
    eventually(secs(10), "a web-green pod stuck pulling", || {
        k.objects("Pod", "default").iter().any(|p| {
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
        })
    });
    let pods_before = k.objects("Pod", "default").len();
    for dry in [true, false] {
        let mut o = env
            .opsh(["run", &script("morning_health.rhai")])
            .script_arg("namespaces", r#"["default"]"#)
            .script_arg("max_restarts", 0)
            .script_arg("check_db", false)
            .kubeconfig(k.kubeconfig());
        if dry {
            o = o.flag("--dry-run");
        }
        let r = o.run();
        r.assert_code(1);
        assert_said(&r, "web-green-");
        assert_said(&r, "ImagePullBackOff");
        assert_said(&r, "worker-");
    }
    assert_eq!(k.image("web-green"), "registry.example/web:broken");
    assert_eq!(k.objects("Pod", "default").len(), pods_before);
}

// -------------------------------------------------------------- secret_rotation

/// Seed 004 "Secret rotation": a leaked API key. The Secret must hold the
/// new value, the deployment be restarted onto it, and the value never be
/// printed; the dry run changes neither.
#[test]
fn drill_secret_rotation_after_a_leaked_key() {
    let k = kube();
    k.wait_rolled_out("api");
    k.put(
        "Secret",
        "default",
        serde_json::json!({"metadata": {"name": "api-keys"}, "type": "Opaque",
                           "data": {"api-key": "bGVha2VkLWtleQ=="}}),
    )
    .unwrap();
    let env = Env::new();
    let key = || {
        k.object("Secret", "default", "api-keys").unwrap()["data"]["api-key"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let restarted = || {
        !k.object("Deployment", "default", "api").unwrap()["spec"]["template"]["metadata"]
            ["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_null()
    };
    for dry in [true, false] {
        let mut o = env
            .opsh(["run", &script("secret_rotation.rhai")])
            .script_arg("secret", "api-keys")
            .script_arg("from_env", r#"{"api-key":"NEW_API_KEY"}"#)
            .script_arg("deployments", r#"["api"]"#)
            .script_arg("wait", "30s")
            .env("NEW_API_KEY", "fresh-key-7f3a9c")
            .kubeconfig(k.kubeconfig());
        if dry {
            o = o.flag("--dry-run");
        }
        let r = o.run();
        r.assert_code(0).assert_output_lacks("fresh-key-7f3a9c");
        if dry {
            assert_eq!(key(), "bGVha2VkLWtleQ==");
            assert!(!restarted());
        }
    }
    // base64("fresh-key-7f3a9c")
    assert_eq!(key(), "ZnJlc2gta2V5LTdmM2E5Yw==");
    assert!(restarted(), "api was not restarted onto the new key");
    assert!(!env.audit_text().contains("fresh-key-7f3a9c"));
    k.wait_rolled_out("api");
}

// ---------------------------------------------------------------- high_latency

/// Seed 000 "High Latency (p95 > 2s)": p95 over the threshold while the
/// HPA is pinned at its maximum. The runbook raises the HPA's maximum (the
/// HPA would undo a plain scale); the dry run leaves it.
#[test]
fn drill_high_latency_with_the_hpa_pinned_at_its_maximum() {
    let k = kube();
    let sb = sandbox(&[Monitoring]);
    k.wait_rolled_out("api");
    let mut h = k
        .object("HorizontalPodAutoscaler", "default", "api")
        .unwrap();
    h["spec"]["maxReplicas"] = serde_json::json!(3);
    k.put("HorizontalPodAutoscaler", "default", h).unwrap();
    let max = || {
        k.object("HorizontalPodAutoscaler", "default", "api")
            .unwrap()["spec"]["maxReplicas"]
            .as_i64()
            .unwrap()
    };
    eventually(secs(10), "the HPA to report 3 current replicas", || {
        k.object("HorizontalPodAutoscaler", "default", "api")
            .unwrap()["status"]["currentReplicas"]
            == 3
    });
    let env = Env::new();
    for dry in [true, false] {
        let mut o = env
            .opsh(["run", &script("high_latency.rhai")])
            .script_arg("p95_expr", "vector(4.2)")
            .script_arg("scale_to", 6)
            .kubeconfig(k.kubeconfig())
            .env("PROMETHEUS_URL", sb.monitoring().prometheus.url());
        if dry {
            o = o.flag("--dry-run");
        }
        let r = o.run();
        r.assert_code(1);
        assert_said(&r, "p95 4.2s");
        if dry {
            assert_eq!(max(), 3);
        }
    }
    assert_eq!(max(), 6);
}

// ------------------------------------------------------------ weekly_maintenance

/// Seed 002 "Weekly Maintenance": a table with half its rows deleted and
/// autovacuum off for it. The runbook must vacuum that table (and only
/// under a real run): its dead tuples go to 0.
#[test]
fn drill_weekly_maintenance_vacuums_a_bloated_table() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(
        &url,
        "create table orders(id int primary key, note text) with (autovacuum_enabled = false);
         insert into orders select i, repeat('x', 100) from generate_series(1, 20000) i;
         delete from orders where id % 2 = 0;",
    );
    let dead = || {
        pg_scalar(
            &url,
            "select coalesce(n_dead_tup, 0) from pg_stat_user_tables where relname = 'orders'",
        )
    };
    eventually(secs(10), "the deletes counted as dead tuples", || {
        dead() >= 10000
    });
    let env = Env::new();
    for dry in [true, false] {
        let mut o = env
            .opsh(["run", &script("weekly_maintenance.rhai")])
            .pg(&url);
        if dry {
            o = o.flag("--dry-run");
        }
        let r = o.run();
        r.assert_code(0);
        assert_said(&r, "public.orders");
        if dry {
            assert!(dead() >= 10000, "the dry run vacuumed");
        }
    }
    eventually(secs(10), "orders vacuumed", || dead() == 0);
    assert_eq!(env.outcomes("pg.vacuum_analyze").len(), 1);
}

// ---------------------------------------------------------------- backup_verify

/// Seed 002 "Daily Health Checks: verify backup completion" / "test backup
/// restoration": the nightly pg_dump was killed half-way (the newest
/// archive is truncated), the one before it is three days old, and a copy
/// taken off the backup host has one damaged byte. Each must FAIL with the
/// cause named; the scratch restore database must not be left behind, and
/// the live database is untouched.
#[test]
fn drill_backup_verify_truncated_stale_and_corrupted_backups() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(
        &url,
        "create table accounts(id int primary key, name text not null);
         insert into accounts select g, 'account ' || g from generate_series(1, 2000) g;",
    );
    let env = Env::new();
    let dir = env.dir("backups");
    let dump = |name: &str| {
        env.script(&format!(
            "pg.dump(\"{url}\", \"{}\", #{{}})",
            dir.join(name).display()
        ))
        .run()
        .assert_code(0);
    };
    let age = |name: &str, days: u64| {
        std::fs::File::options()
            .write(true)
            .open(dir.join(name))
            .unwrap()
            .set_modified(std::time::SystemTime::now() - Duration::from_secs(days * 86_400))
            .unwrap();
    };
    let databases = || pg_scalar(&url, "select count(*) from pg_database");
    let before = databases();
    dump("app-1.dump");
    age("app-1.dump", 3);
    dump("app-2.dump");
    // The nightly job killed half-way: the newest archive is cut.
    let newest = dir.join("app-2.dump");
    let bytes = std::fs::read(&newest).unwrap();
    std::fs::write(&newest, &bytes[..bytes.len() / 2]).unwrap();
    let started = std::time::Instant::now();
    let verify = |dry: bool| {
        let mut o = env
            .opsh(["run", &script("backup_verify.rhai")])
            .script_arg("dir", dir.display())
            .script_arg("pattern", "app-*.dump")
            .script_arg("restore_target", &url)
            .script_arg("min_tables", 1);
        if dry {
            o = o.flag("--dry-run");
        }
        o.run()
    };
    for dry in [true, false] {
        let r = verify(dry);
        r.assert_code(1);
        assert_said(&r, "app-2.dump");
        assert_said(&r, "truncated");
        assert_said(&r, "FAIL");
    }
    // The truncated one removed: the newest is now three days old.
    std::fs::remove_file(&newest).unwrap();
    let r = verify(false);
    r.assert_code(1);
    assert_said(&r, "app-1.dump");
    assert_said(&r, "older than max_age");
    // A copy with one damaged byte inside the data, fresh.
    let mut bytes = std::fs::read(dir.join("app-1.dump")).unwrap();
    let at = bytes.len() - 300;
    bytes[at] ^= 0xff;
    std::fs::write(dir.join("app-3.dump"), &bytes).unwrap();
    let r = verify(false);
    r.assert_code(1);
    assert_said(&r, "app-3.dump");
    assert_said(&r, "FAIL");
    eprintln!("backup_verify drill: {:?}", started.elapsed());
    // No scratch database left behind; the live data untouched.
    assert_eq!(databases(), before);
    assert_eq!(pg_scalar(&url, "select count(*) from accounts"), 2000);
}

// ---------------------------------------------------------------- disk_space

/// A small tmpfs mounted for a drill, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// None when this process may not mount (not root).
    fn mount(at: std::path::PathBuf, opts: &str) -> Option<Tmpfs> {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(&at)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(at))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Seed 001 "Disk Space Full": PostgreSQL's filesystem over 90 % (a real,
/// small filesystem filled with files), and another one out of inodes
/// with space to spare. The runbook must FAIL both, say which and how
/// full, show the largest tables and the dead tuples on the PostgreSQL
/// side, and delete nothing (it is read-only, dry run or not).
#[test]
fn drill_disk_space_full_filesystem_and_out_of_inodes() {
    let env = Env::new();
    let (data, logs) = (env.dir("pgdata"), env.dir("logs"));
    // A drill that cannot set up its incident fails: a green skip would
    // say the runbook was proven when it was not.
    let need =
        "drill_disk_space mounts two small tmpfs filesystems: run the suite as root (CI does)";
    let _data_fs = Tmpfs::mount(data.clone(), "size=8m").expect(need);
    let _logs_fs = Tmpfs::mount(logs.clone(), "size=8m,nr_inodes=40").expect(need);
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(
        &url,
        "create table audit_events(id int, payload text) with (autovacuum_enabled = false);
         insert into audit_events select g, repeat(md5(g::text), 8) from generate_series(1, 20000) g;
         delete from audit_events where id % 4 = 0;
         create table settings(k text primary key, v text);",
    );
    // 7.6 MiB of 8 MiB: over 90 % as df counts it.
    std::fs::write(data.join("base.1"), vec![7u8; 7_600 * 1024]).unwrap();
    // Inodes: 38 small files and the root on a filesystem of 40.
    for i in 0..38 {
        std::fs::write(logs.join(format!("app.log.{i}")), "x").unwrap();
    }
    let started = std::time::Instant::now();
    for dry in [true, false] {
        let mut o = env
            .opsh(["run", &script("disk_space.rhai")])
            .script_arg("paths", format!("[\"{}\"]", logs.display()))
            .script_arg("pg_data_path", data.display())
            .pg(&url);
        if dry {
            o = o.flag("--dry-run");
        }
        let r = o.run();
        r.assert_code(1);
        let out = said(&r);
        let line = |what: &str| {
            out.lines()
                .find(|l| l.contains(what))
                .unwrap_or_else(|| panic!("no {what:?} line:\n{out}"))
                .to_string()
        };
        let disk = line(&format!("disk {}", data.display()));
        assert!(
            disk.contains("FAIL") && disk.contains("MiB used"),
            "{disk}\n{out}"
        );
        let inodes = line(&format!("inodes {}", logs.display()));
        assert!(inodes.contains("FAIL"), "{inodes}\n{out}");
        let logs_disk = line(&format!("disk {}", logs.display()));
        assert!(logs_disk.contains("PASS"), "{logs_disk}\n{out}");
        assert_said(&r, "PostgreSQL's filesystem is short of space");
        assert_said(&r, "audit_events");
        assert_said(&r, "dead");
    }
    eprintln!("disk_space drill: {:?}", started.elapsed());
    // Read-only: every file is still there, no table was touched.
    assert_eq!(std::fs::read_dir(&logs).unwrap().count(), 38);
    assert!(data.join("base.1").exists());
    assert_eq!(pg_scalar(&url, "select count(*) from audit_events"), 15000);
    assert!(env
        .audit()
        .iter()
        .all(|e| e["primitive"] != "pg.vacuum_analyze"));
}

// ---------------------------------------------------------------- daily_check

/// Seed 002 "Daily Health Checks" / 004 "Morning Health Check": a real hot
/// standby whose replay is stuck (paused) while the primary writes, and the
/// slot of a decommissioned replica still pinning WAL. The runbook, run on
/// the primary and on the standby, must FAIL on the lag (with how far
/// behind), warn on the abandoned slot by name, and change nothing: the
/// standby stays behind, the slot stays.
#[test]
fn drill_daily_check_replication_lag_on_a_real_standby() {
    let sb = sandbox(&[Pg]);
    let primary = sb.pg();
    let env = Env::new();
    let standby = primary
        .start_standby(&env.path("standby"), "replica1")
        .unwrap_or_else(|e| panic!("standby did not start: {e}"));
    let (p_url, s_url) = (primary.url(), standby.url());
    pg_exec(
        &p_url,
        "create table orders(id int, note text);
         select pg_create_physical_replication_slot('old_replica', true);",
    );
    eventually(secs(20), "the standby to stream and replay", || {
        pg_scalar(
            &p_url,
            "select count(*) from pg_stat_replication where state = 'streaming'",
        ) == 1
            && pg_scalar(
                &s_url,
                "select count(*) from pg_class where relname = 'orders'",
            ) == 1
    });
    // Replay stuck on the standby while the primary keeps writing.
    pg_exec(&s_url, "select pg_wal_replay_pause()");
    pg_exec(
        &p_url,
        "insert into orders select g, repeat('x', 50) from generate_series(1, 100000) g",
    );
    eventually(
        secs(20),
        "the standby to receive 2 MiB it does not replay",
        || {
            pg_scalar(
                &s_url,
                "select pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::int8",
            ) > 2 * 1024 * 1024
        },
    );
    let started = std::time::Instant::now();
    let daily = |url: &str, dry: bool| {
        let mut o = env
            .opsh(["run", &script("daily_check.rhai")])
            .script_arg("skip_redis", true)
            .script_arg("max_lag_mb", 1)
            .pg(url);
        if dry {
            o = o.flag("--dry-run");
        }
        o.run()
    };
    let line = |r: &Run, what: &str| -> String {
        r.stdout
            .lines()
            .rfind(|l| l.starts_with(what))
            .unwrap_or_else(|| panic!("no {what:?} line:\n{}", said(r)))
            .to_string()
    };
    for dry in [true, false] {
        let r = daily(&p_url, dry);
        r.assert_code(1);
        let lag = line(&r, "pg replication lag (MiB)");
        assert!(
            lag.contains("FAIL") && lag.contains("1 replicas streaming, worst"),
            "{lag}"
        );
        let slots = line(&r, "pg inactive replication slots");
        assert!(slots.contains("WARN"), "{slots}");
        assert_said(&r, "old_replica");
    }
    let r = daily(&s_url, false);
    r.assert_code(1);
    let lag = line(&r, "pg replication lag (MiB)");
    assert!(
        lag.contains("FAIL") && lag.contains("standby of") && lag.contains("behind"),
        "{lag}"
    );
    eprintln!("daily_check drill (runs only): {:?}", started.elapsed());
    // Read-only: the standby is still behind, the slot is still there.
    assert_eq!(pg_scalar(&s_url, "select count(*) from orders"), 0);
    assert_eq!(
        pg_scalar(
            &p_url,
            "select count(*) from pg_replication_slots where slot_name = 'old_replica'"
        ),
        1
    );
    // Caught up, the lag check passes. It warned at 0 MiB when an int
    // max_lag_mb was halved with integer division (1 / 2 == 0).
    pg_exec(&s_url, "select pg_wal_replay_resume()");
    eventually(secs(20), "the standby to catch up", || {
        pg_scalar(&s_url, "select count(*) from orders") == 100_000
    });
    eventually(secs(20), "the primary to see the replica caught up", || {
        let r = daily(&p_url, false);
        line(&r, "pg replication lag (MiB)").contains("worst 0 B behind")
    });
    let r = daily(&p_url, false);
    r.assert_code(0);
    let lag = line(&r, "pg replication lag (MiB)");
    assert!(lag.contains("PASS"), "{lag}");
}

// --------------------------------------------------------- post_deploy_verify

/// The service as a regressed deploy left it (seed 000 "Post-Deployment
/// Security Tests"): its security middleware dropped, so the webhook takes
/// any signature, the SSRF filter lets the cloud-metadata address through,
/// there is no rate limit, and the tenant API answers without a token. The
/// rest still works (health, OIDC). Returns the port and the log of the
/// requests it received ("METHOD /path").
fn regressed_api() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or("").to_string();
            let target = parts.next().unwrap_or("").to_string();
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.trim().eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            let url = url::Url::parse(&format!("http://x{target}")).unwrap();
            seen.lock()
                .unwrap()
                .push(format!("{method} {}", url.path()));
            let (status, json) = match (method.as_str(), url.path()) {
                ("GET", "/api/health") => (200, r#"{"ok":true}"#.to_string()),
                ("GET", "/.well-known/openid-configuration") => (
                    200,
                    format!(
                        r#"{{"issuer":"http://127.0.0.1:{port}","authorization_endpoint":"a","token_endpoint":"t","jwks_uri":"j"}}"#
                    ),
                ),
                ("GET", "/oidc/jwks.json") => {
                    (200, r#"{"keys":[{"kid":"k1","kty":"RSA"}]}"#.to_string())
                }
                ("POST", "/webhook/test") => (200, "{}".to_string()),
                ("GET", "/api/test-ssrf") => {
                    let u = url
                        .query_pairs()
                        .find(|(k, _)| k == "url")
                        .map(|(_, v)| v.to_string())
                        .unwrap_or_default();
                    // Only the old scheme check survived the regression.
                    (
                        if u.starts_with("file:") { 400 } else { 200 },
                        "{}".to_string(),
                    )
                }
                ("GET", "/api/marketplace/plugins") => (200, "[]".to_string()),
                _ => (404, "{}".to_string()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
                json.len()
            );
        }
    });
    (port, log)
}

/// Seed 000 "Post-Deployment Security Tests": a deploy that dropped the
/// security middleware. The runbook must FAIL each regressed control by
/// name with what it saw, pass what still works, keep the secrets out of
/// its output and audit, and under --dry-run send no webhook POST.
#[test]
fn drill_post_deploy_verify_after_a_deploy_that_dropped_the_security_middleware() {
    let (port, log) = regressed_api();
    let env = Env::new();
    let started = std::time::Instant::now();
    let verify = |dry: bool| {
        let mut o = env
            .opsh(["run", &script("post_deploy_verify.rhai")])
            .script_arg("base_url", format!("http://127.0.0.1:{port}"))
            .script_arg("rate_limit_requests", 15)
            .env("WEBHOOK_SECRET", "whsec-drill-7781")
            .env("VALID_TOKEN", "tenant-drill-token-5");
        if dry {
            o = o.flag("--dry-run");
        }
        o.run()
    };
    let row = |r: &Run, check: &str| -> String {
        r.stdout
            .lines()
            .rfind(|l| l.starts_with(check))
            .unwrap_or_else(|| panic!("no {check:?} row:\n{}", said(r)))
            .to_string()
    };
    for dry in [true, false] {
        log.lock().unwrap().clear();
        let r = verify(dry);
        r.assert_code(1);
        for ok in ["health", "oidc discovery", "jwks"] {
            assert!(row(&r, ok).contains("PASS"), "{ok}:\n{}", said(&r));
        }
        assert!(row(&r, "ssrf").contains("FAIL"), "{}", said(&r));
        assert_said(&r, "169.254.169.254");
        assert_said(&r, "1 of 3 refused with 400");
        assert!(row(&r, "rate limit").contains("WARN"), "{}", said(&r));
        assert_said(&r, "no 429 in 15 requests");
        assert!(row(&r, "tenant auth").contains("FAIL"), "{}", said(&r));
        assert_said(&r, "no token got 200, expected 401");
        let posts = log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("POST"))
            .count();
        if dry {
            assert!(row(&r, "webhook hmac").contains("SKIP"), "{}", said(&r));
            assert_eq!(posts, 0, "the dry run sent a webhook POST");
        } else {
            assert!(row(&r, "webhook hmac").contains("FAIL"), "{}", said(&r));
            assert_said(&r, "bad signature got 200, expected 401");
            assert_eq!(posts, 2);
        }
        assert_not_said(&r, "whsec-drill-7781");
        assert_not_said(&r, "tenant-drill-token-5");
    }
    eprintln!("post_deploy_verify drill: {:?}", started.elapsed());
    let audit = env.audit_text();
    assert!(!audit.contains("whsec-drill-7781") && !audit.contains("tenant-drill-token-5"));
}

// ---------------------------------------------------------------- logs_summary

/// Seed 000 "Log Aggregation": an error burst, 1200 upstream timeouts of
/// the payments upstream in ten minutes, with a wave of 401s and a few
/// slow requests, pushed into the sandbox Loki. The runbook must name the
/// burst by message and upstream, say that its read limit was reached and
/// that its counts are then floors ("at least 1000"; it said "1000 error
/// lines" of 1200), count the 401s exactly, and with fail_on_errors exit 1,
/// dry run or not.
#[test]
fn drill_logs_summary_error_burst_over_the_read_limit() {
    use opsh::sandbox::loki::{now_ns, push_streams};
    let loki = opsh::sandbox::LokiServer::start().unwrap();
    let now = now_ns();
    let mut values = Vec::new();
    for i in 0..1200i64 {
        values.push(serde_json::json!([
            (now - (600 - i / 2) * 1_000_000_000 - i).to_string(),
            format!(r#"{{"level":"error","msg":"upstream timeout","status":504,"duration":{},"upstream":"payments"}}"#, 5000 + i % 7)
        ]));
    }
    for i in 0..30i64 {
        values.push(serde_json::json!([
            (now - (500 - i) * 1_000_000_000 - 7).to_string(),
            r#"{"level":"warn","msg":"unauthorized","status":401,"duration":2}"#
        ]));
    }
    for i in 0..5i64 {
        values.push(serde_json::json!([
            (now - (400 - i) * 1_000_000_000 - 9).to_string(),
            format!(
                r#"{{"level":"info","msg":"report export","status":200,"duration":{}}}"#,
                2500 + i
            )
        ]));
    }
    values.sort_by_key(|v| v[0].as_str().unwrap().parse::<i64>().unwrap());
    push_streams(
        loki.port,
        &serde_json::json!([{"stream": {"app": "checkout", "namespace": "prod"}, "values": values}]),
    )
    .unwrap();
    let env = Env::new();
    let started = std::time::Instant::now();
    for dry in [true, false] {
        let mut o = env
            .opsh(["run", &script("logs_summary.rhai")])
            .script_arg("app", "checkout")
            .script_arg("since", "1h")
            .script_arg("fail_on_errors", true)
            .env("LOKI_URL", loki.url());
        if dry {
            o = o.flag("--dry-run");
        }
        let r = o.run();
        r.assert_code(1);
        assert_said(&r, "errors: at least 1000 in the last 1h");
        assert_said(&r, "limit 1000 reached");
        assert_said(&r, "upstream timeout");
        assert_said(&r, "payments");
        assert_said(&r, "auth failures: 30 in the last 1h");
        assert_said(&r, "slow requests: at least 1000 in the last 1h");
        assert_said(&r, "report export");
        // The failure states a floor, not 1000 as if it were the count.
        assert_said(&r, "at least 1000 error lines in the last 1h");
    }
    eprintln!("logs_summary drill: {:?}", started.elapsed());
}

// ---------------------------------------------------------------- metrics_check

/// PUTs a group of metrics (text exposition format) to the Pushgateway.
fn push_metrics(port: u16, job: &str, body: &str) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "PUT /metrics/job/{job} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(
        reply.starts_with("HTTP/1.0 2") || reply.starts_with("HTTP/1.1 2"),
        "{reply}"
    );
}

/// The number of series a PromQL query returns.
fn prom_series(port: u16, query: &str) -> usize {
    let q: String = url::form_urlencoded::byte_serialize(query.as_bytes()).collect();
    opsh::sandbox::monitoring::http_get(port, &format!("/api/v1/query?query={q}"))
        .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
        .and_then(|v| v["data"]["result"].as_array().map(Vec::len))
        .unwrap_or(0)
}

fn traffic(ok: u32, errors: u32, fast: u32, total: u32) -> String {
    format!(
        "# TYPE http_requests_total counter\n\
         http_requests_total{{status=\"200\"}} {ok}\n\
         http_requests_total{{status=\"500\"}} {errors}\n\
         http_requests_total{{status=\"429\"}} 0\n\
         # TYPE http_request_duration_seconds histogram\n\
         http_request_duration_seconds_bucket{{le=\"0.5\"}} {fast}\n\
         http_request_duration_seconds_bucket{{le=\"5\"}} {total}\n\
         http_request_duration_seconds_bucket{{le=\"+Inf\"}} {total}\n\
         http_request_duration_seconds_sum {total}\n\
         http_request_duration_seconds_count {total}\n\
         # TYPE opsh_sandbox_alert gauge\n\
         opsh_sandbox_alert 1\n"
    )
}

/// Seed 002 "High Error Rate (P2)" / "Daily Health Checks: review
/// metrics": the database exporter died (its scrape target is down), the
/// API serves half its requests as 500s, all slowly (p95 near 5 s), and a
/// warning alert fires. On the real monitoring stack, the runbook must
/// FAIL the target by job and instance, the 5xx rate and the p95, warn on
/// the alert by name, pass the 429 ratio, exit 1, and publish its outcome
/// to the Pushgateway only under a real run.
#[test]
fn drill_metrics_check_exporter_down_errors_and_latency() {
    let mut sb = sandbox(&[Pg, Monitoring]);
    let m = sb.monitoring.as_mut().unwrap();
    let exporter_port = m.postgres_exporter.as_ref().unwrap().port;
    m.postgres_exporter.as_mut().unwrap().stop();
    let (prom, pgw) = (m.prometheus.port, m.pushgateway.port);
    let prom_url = m.prometheus.url();
    let pgw_url = m.pushgateway.url();
    push_metrics(pgw, "api", &traffic(1000, 0, 1000, 1000));
    eventually(secs(15), "Prometheus to scrape the first counts", || {
        prom_series(prom, "http_requests_total{job=\"api\"}") == 3
    });
    std::thread::sleep(Duration::from_millis(1500));
    // 200 more requests: 100 of them 500s, every one slower than 0.5 s.
    push_metrics(pgw, "api", &traffic(1100, 100, 1000, 1200));
    eventually(secs(15), "the incident visible in Prometheus", || {
        prom_series(
            prom,
            "sum(increase(http_requests_total{status=\"500\"}[5m])) > 0",
        ) == 1
            && prom_series(prom, "up{job=\"postgres\"} == 0") == 1
            && prom_series(
                prom,
                "ALERTS{alertname=\"OpshSandboxAlert\",alertstate=\"firing\"}",
            ) == 1
    });
    let env = Env::new();
    let started = std::time::Instant::now();
    let pushed = || {
        prom_series(prom, "metrics_check_failed") + {
            let (_, body) = opsh::sandbox::monitoring::http_get(pgw, "/metrics").unwrap();
            usize::from(body.contains("metrics_check_failed"))
        }
    };
    for dry in [true, false] {
        let mut o = env
            .opsh(["run", &script("metrics_check.rhai")])
            .script_arg("push", true)
            .env("PROMETHEUS_URL", &prom_url)
            .env("PUSHGATEWAY_URL", &pgw_url);
        if dry {
            o = o.flag("--dry-run");
        }
        let r = o.run();
        r.assert_code(1);
        let row = |check: &str| -> String {
            r.stdout
                .lines()
                .rfind(|l| l.starts_with(check))
                .unwrap_or_else(|| panic!("no {check:?} row:\n{}", said(&r)))
                .to_string()
        };
        let targets = row("scrape targets up");
        assert!(
            targets.contains("FAIL")
                && targets.contains(&format!("postgres/127.0.0.1:{exporter_port}")),
            "{targets}"
        );
        let alerts = row("firing alerts");
        assert!(
            alerts.contains("WARN") && alerts.contains("OpshSandboxAlert"),
            "{alerts}"
        );
        assert!(row("5xx error rate %").contains("FAIL"), "{}", said(&r));
        assert!(row("p95 latency (s)").contains("FAIL"), "{}", said(&r));
        assert!(row("429 rate %").contains("PASS"), "{}", said(&r));
        if dry {
            assert_eq!(pushed(), 0, "the dry run pushed its outcome");
        }
    }
    eprintln!("metrics_check drill (runs only): {:?}", started.elapsed());
    // The real run published its outcome: 3 failed checks.
    let (_, body) = opsh::sandbox::monitoring::http_get(pgw, "/metrics").unwrap();
    let failed = body
        .lines()
        .find(|l| l.starts_with("metrics_check_failed{"))
        .unwrap_or_else(|| panic!("no metrics_check_failed pushed:\n{body}"));
    assert!(failed.ends_with(" 3"), "{failed}");
    drop(sb);
}
