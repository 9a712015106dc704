//! `opsh test` on the shipped runbook tests, the test runner's reports, and
//! runbooks end to end against real servers (not stubs).

use crate::support::*;
use std::process::Command;

fn script(name: &str) -> String {
    repo_path(&format!("scripts/{name}"))
}

#[test]
fn shipped_runbook_tests_pass_with_json_and_junit_reports() {
    let env = Env::new();
    let junit = env.path("junit.xml");
    // Runbook tests name scripts/... relative to the repository root.
    let r = env
        .opsh(["test", "--output", "json", "--junit"])
        .arg(&junit)
        .current_dir(repo_path(""))
        .run();
    r.assert_code(0);
    let lines = r.json_lines();
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!(summary["failed"], 0, "{}", r.stdout);
    assert!(summary["passed"].as_u64().unwrap() >= 80, "{}", r.stdout);
    // Every shipped runbook with a test file is exercised.
    for f in [
        "daily_check",
        "post_deploy_verify",
        "cert_expiry",
        "disk_space",
        "cache_miss_storm",
        "db_connection_exhaustion",
        "sqlite_integrity",
        "high_latency",
        "high_error_rate",
        "system_down",
        "rollback",
        "db_rollback",
        "oom_or_memory_leak",
        "morning_health",
        "secret_rotation",
        "staged_rollout_guard",
        "weekly_maintenance",
        "backup_verify",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l["file"].as_str().is_some_and(|p| p.contains(f))),
            "no tests ran for {f}"
        );
    }
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<testsuite name=\"tests/runbooks/daily_check_test.rhai\""));
    assert!(!xml.contains("<failure"));
}

#[test]
fn a_global_of_any_module_can_be_stubbed_and_its_calls_listed() {
    // `targets` is listed with the fleet globals, not the first module of
    // globals; stubbing it must find it all the same.
    let env = Env::new();
    let f = env.write(
        "t/globals_test.rhai",
        r#"
fn test_targets_stubbed() {
    stub("targets", ["prod-a", "prod-b"]);
    assert_eq(targets("pg", "prod-*"), ["prod-a", "prod-b"]);
    assert_eq(calls("targets")[0].args, ["pg", "prod-*"]);
}
"#,
    );
    env.opsh(["test"])
        .arg(&f)
        .run()
        .assert_code(0)
        .assert_stdout_contains("ok    test_targets_stubbed");
}

#[test]
fn a_failing_test_reports_its_position_and_exits_1() {
    let env = Env::new();
    let f = env.write(
        "t/demo_test.rhai",
        r#"
fn test_passes() { stub("pg.ping", 1.5); assert_eq(pg.ping(), 1.5); }
fn test_fails() {
    stub("prom.value", |expr| 2.4);
    let v = prom.value("histogram_quantile(0.95, x)");
    assert(v < 2.0, "p95 under 2s");
}
fn test_unstubbed_read_is_refused() { pg.ping(); }
fn test_unstubbed_mutation_is_planned_not_applied() {
    let r = pg.terminate(#{older_than: "5m"});
    assert_eq(r.dry_run, true);
    assert_eq(calls("pg.terminate").len(), 1);
}
"#,
    );
    let junit = env.path("j.xml");
    let loc = format!("{}:6:5", f.display());
    env.opsh(["test"])
        .arg(&f)
        .arg("--junit")
        .arg(&junit)
        .run()
        .assert_code(1)
        .assert_stdout_contains("ok    test_passes")
        .assert_stdout_contains("FAIL  test_fails")
        .assert_stdout_contains(&loc)
        .assert_stdout_contains("assertion failed: p95 under 2s: condition is false")
        .assert_stdout_contains("pg.ping is not stubbed in this test")
        .assert_stdout_contains("ok    test_unstubbed_mutation_is_planned_not_applied")
        .assert_stdout_contains("2 passed, 2 failed, 4 tests");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<failure").count(), 2, "{xml}");
    assert!(xml.contains(&loc));
    // Nothing reached an audit log: no mutation ran.
    assert!(env.audit().is_empty());
}

#[test]
fn record_then_replay_reports_differences_and_plans_mutations() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(
        &url,
        "create table t(id int); insert into t values (1), (2);",
    );
    let env = Env::new();
    let body = r#"
let n = pg.query("select count(*)::int as n from t")[0].n;
print(`rows ${n}`);
let r = pg.exec("delete from t where id = $1", [args.id]);
print(`deleted ${r.rows_affected}`);
"#;
    let s = env.write("incident.rhai", body);
    let rec = env.path("run.json");
    env.opsh(["run"])
        .arg(&s)
        .script_arg("id", "1")
        .arg("--record")
        .arg(&rec)
        .pg(&url)
        .run()
        .assert_code(0)
        .assert_stdout("rows 2\ndeleted 1\n");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&rec).unwrap()).unwrap();
    assert_eq!(doc["calls"].as_array().unwrap().len(), 2);
    assert_eq!(doc["calls"][1]["primitive"], "pg.exec");
    assert_eq!(doc["args"]["id"], 1);
    // The password of the URL never lands in the recording.
    let pw = &sb.pg().password;
    assert!(
        url.contains(&format!(":{pw}@")),
        "{url} carries the password"
    );
    assert!(!std::fs::read_to_string(&rec).unwrap().contains(pw.as_str()));

    // Replay without any server: same answers, the delete only planned.
    drop(sb);
    let r = env.opsh(["run"]).arg(&s).arg("--replay").arg(&rec).run();
    r.assert_code(0)
        .assert_stderr_contains("[replay] planned, not applied: pg.exec")
        .assert_stderr_contains("every call matched the recording");
    assert_eq!(r.stdout.lines().next(), Some("rows 2"));

    // A changed script: the difference is reported and the run exits 1.
    let changed = env.write("incident_v2.rhai", &body.replace("count(*)", "count(id)"));
    let r = env
        .opsh(["run"])
        .arg(&changed)
        .arg("--replay")
        .arg(&rec)
        .run();
    r.assert_code(1)
        .assert_stderr_contains("differs from the recording");

    // The same recording as a regression test.
    let t = env.write(
        "replay_test.rhai",
        &format!(
            r#"fn test_replay() {{
    let r = replay("{}", #{{script: "{}"}});
    assert_eq(r.exit_code, 0);
    assert_eq(r.differences, []);
    assert_eq(r.plans.len(), 1);
    assert_eq(r.output, ["rows 2", "deleted "]);
}}"#,
            rec.display(),
            s.display()
        ),
    );
    env.opsh(["test"])
        .arg(&t)
        .run()
        .assert_code(0)
        .assert_stdout_contains("ok    test_replay");
}

#[test]
fn daily_check_end_to_end_json_and_filters() {
    let env = Env::new();
    let s = script("daily_check.rhai");
    let r = env
        .opsh(["sandbox", "run", &s, "--output", "json", "--skip", "redis*"])
        .run();
    r.assert_code(0);
    let doc = r.json();
    assert_eq!(doc["status"], "PASS");
    assert_eq!(doc["summary"]["FAIL"], 0);
    assert_eq!(doc["summary"]["SKIP"], 1);
    assert!(doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["check"] == "pg connection saturation %" && c["status"] == "PASS"));
}

/// Holds `n` idle sessions of a non-superuser role open while `f` runs.
fn with_idle_sessions<T>(url: &str, n: usize, f: impl FnOnce() -> T) -> T {
    pg_exec(
        url,
        "create role app login password 'app-pw-123'; grant connect on database postgres to app;",
    );
    let mut u = url::Url::parse(url).unwrap();
    u.set_username("app").unwrap();
    u.set_password(Some("app-pw-123")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let conns: Vec<sqlx::PgConnection> = rt.block_on(async {
        use sqlx::Connection;
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(sqlx::PgConnection::connect(u.as_str()).await.unwrap());
        }
        v
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let out = f();
    drop(conns);
    out
}

#[test]
fn db_connection_exhaustion_end_to_end_terminates_idle_sessions() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    let env = Env::new();
    let s = script("db_connection_exhaustion.rhai");
    let count = "select count(*) from pg_stat_activity where usename = 'app'";
    with_idle_sessions(&url, 8, || {
        // Dry run: reports, terminates nothing.
        env.opsh(["run"])
            .arg(&s)
            .script_arg("saturation_pct", 5)
            .script_arg("idle_older_than", "1s")
            .flag("--dry-run")
            .pg(&url)
            .run()
            // Nothing was terminated, so the check still fails.
            .assert_code(1)
            .assert_stdout_contains("would_terminate    8");
        assert_eq!(pg_scalar(&url, count), 8);
        // For real: the idle sessions are gone and saturation recovered.
        env.opsh(["run"])
            .arg(&s)
            .script_arg("saturation_pct", 5)
            .script_arg("idle_older_than", "1s")
            .pg(&url)
            .run()
            .assert_code(0)
            .assert_stdout_contains("recovered")
            // One line for the change, with the pids it ended.
            .assert_stderr_contains("terminated 8 sessions (pids ");
        assert_eq!(pg_scalar(&url, count), 0);
    });
    let terminated: Vec<_> = env
        .audit()
        .into_iter()
        .filter(|e| e["primitive"] == "pg.terminate_idle" && e["phase"] == "outcome")
        .collect();
    assert_eq!(terminated.len(), 1);
}

#[test]
fn cache_miss_storm_end_to_end_on_real_counters() {
    let sb = sandbox(&[Redis]);
    let url = sb.redis_url();
    let env = Env::new();
    let s = script("cache_miss_storm.rhai");
    let traffic = |hits: usize, misses: usize| {
        let script = format!(
            "redis.set(\"k\", \"v\"); for i in 0..{hits} {{ redis.get(\"k\"); }} for i in 0..{misses} {{ redis.get(`missing:${{i}}`); }}"
        );
        env.script(&script).redis(&url).run().assert_code(0);
    };
    traffic(2, 18);
    env.opsh(["run"])
        .arg(&s)
        .redis(&url)
        .run()
        .assert_code(1)
        .assert_stdout_contains("cache hit rate")
        .assert_stdout_contains("(redis: 2 hits")
        .assert_stdout_contains("up only");
    traffic(200, 0);
    env.opsh(["run"])
        .arg(&s)
        .redis(&url)
        .run()
        .assert_code(0)
        .assert_stdout_contains("cache hit rate is healthy");
}

/// A helper process that must not outlive the test, even a failing one.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn disk_space_and_tls_cert_on_this_machine() {
    let env = Env::new();
    // A certificate valid for 10 days, served by openssl s_server.
    let dir = env.dir("tls");
    certs::self_signed(&dir, "cert", "opsh-test", 10);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Command::new("openssl")
        .current_dir(&dir)
        .args(["s_server", "-quiet", "-accept", &port.to_string()])
        .args(["-cert", "cert.pem", "-key", "cert.key"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let server = KillOnDrop(server);
    eventually(secs(10), "openssl s_server to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let r = env
        .opsh(["run", &script("cert_expiry.rhai")])
        .script_arg("hosts", format!("[\"127.0.0.1:{port}\"]"))
        .run();
    drop(server);
    // 10 days left: under the 14-day threshold.
    r.assert_code(1)
        .assert_stdout_contains("opsh-test")
        .assert_stdout_contains("FAIL");
    assert!(
        r.stdout.contains("9.9") || r.stdout.contains("10"),
        "{}",
        r.stdout
    );

    let r = env
        .opsh(["run", &script("disk_space.rhai")])
        .script_arg("warn_pct", "100")
        .script_arg("crit_pct", "101")
        .args(["--output", "json"])
        .run();
    r.assert_code(0);
    let doc = r.json();
    let used = doc["checks"][0]["value"].as_f64().unwrap();
    assert!(used > 0.0 && used <= 100.0, "{used}");
}

#[test]
fn sqlite_integrity_end_to_end_on_real_files() {
    let env = Env::new();
    let db = env.path("app.db");
    let made = Command::new("sqlite3")
        .arg(&db)
        .arg("pragma journal_mode=wal; create table decisions(id integer primary key, ahsan_score real, note text); with recursive n(i) as (select 1 union all select i + 1 from n where i < 2000) insert into decisions select i, 90 + (i % 10), hex(randomblob(100)) from n; create index by_score on decisions(ahsan_score);")
        .output()
        .expect("sqlite3 runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let backup = env.path("app.db.backup");
    std::fs::copy(&db, &backup).unwrap();
    let s = script("sqlite_integrity.rhai");
    let check = || {
        env.opsh(["run", &s])
            .script_arg("db_path", db.display())
            .script_arg("backup_path", backup.display())
    };
    check()
        .script_arg(
            "violations_sql",
            "select count(*) as n from decisions where ahsan_score < 95",
        )
        .script_arg("max_violations", 1000)
        .run()
        .assert_code(0)
        .assert_stdout_contains("4 checks: 4 passed")
        .assert_stdout_contains("1000");
    // Damage pages of the database (not the header): the check must fail and
    // point at the sound backup.
    let mut bytes = std::fs::read(&db).unwrap();
    let len = bytes.len();
    for b in &mut bytes[len / 3..len / 3 + 8192] {
        *b = 0x5a;
    }
    std::fs::write(&db, bytes).unwrap();
    check()
        .run()
        .assert_code(1)
        .assert_stdout_contains("the database is damaged and the backup is sound");
}

#[test]
fn opsh_test_sandbox_lets_unstubbed_calls_reach_a_fresh_sandbox() {
    let env = Env::new();
    let f = env.write(
        "t/sandbox_test.rhai",
        r#"
fn test_real_calls() {
    assert(pg.ping() >= 0.0);
    pg.exec("create table seen(x int)");
    pg.exec("insert into seen values (42)");
    assert_eq(pg.query("select x from seen")[0].x, 42);
    assert_eq(calls("pg.exec").len(), 2);
    // Stubs still win.
    stub("redis.ping", 0.5);
    assert_eq(redis.ping(), 0.5);
}
"#,
    );
    env.opsh(["test"])
        .arg("--sandbox")
        .arg(&f)
        .run()
        .assert_code(0)
        .assert_stdout_contains("ok    test_real_calls");
    // Without --sandbox the same test is refused at its first unstubbed read.
    env.opsh(["test"])
        .arg(&f)
        .run()
        .assert_code(1)
        .assert_stdout_contains("pg.ping is not stubbed in this test");
}

/// A small HTTP API that behaves as runbook 000 expects a deployed service
/// to: OIDC documents, an HMAC-checked webhook, SSRF refusals, a rate
/// limit after `limit` health requests, bearer-token tenant auth.
/// `lax_webhook` makes the webhook accept any signature (a broken deploy).
fn fake_api(secret: &'static str, limit: usize, lax_webhook: bool) -> u16 {
    use hmac::Mac;
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut health = 0usize;
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
            let mut headers = std::collections::HashMap::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
            let len: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            let url = url::Url::parse(&format!("http://x{target}")).unwrap();
            let (status, json) = match (method.as_str(), url.path()) {
                ("GET", "/api/health") => {
                    health += 1;
                    if health > limit {
                        (429, "{}".to_string())
                    } else {
                        (200, r#"{"ok":true}"#.to_string())
                    }
                }
                ("GET", "/.well-known/openid-configuration") => (
                    200,
                    format!(
                        r#"{{"issuer":"http://127.0.0.1:{port}","authorization_endpoint":"a","token_endpoint":"t","jwks_uri":"j"}}"#
                    ),
                ),
                ("GET", "/oidc/jwks.json") => {
                    (200, r#"{"keys":[{"kid":"k1","kty":"RSA"}]}"#.to_string())
                }
                ("POST", "/webhook/test") => {
                    let mut mac =
                        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
                    mac.update(&body);
                    let want = format!("sha256={}", base64(&mac.finalize().into_bytes()));
                    let ok = lax_webhook || headers.get("x-signature") == Some(&want);
                    (if ok { 200 } else { 401 }, "{}".to_string())
                }
                ("GET", "/api/test-ssrf") => {
                    let u = url
                        .query_pairs()
                        .find(|(k, _)| k == "url")
                        .map(|(_, v)| v.to_string())
                        .unwrap_or_default();
                    let blocked =
                        u.starts_with("file:") || u.contains("169.254.") || u.contains("127.0.0.1");
                    (if blocked { 400 } else { 200 }, "{}".to_string())
                }
                ("GET", "/api/marketplace/plugins") => {
                    let ok = headers.get("authorization").map(String::as_str)
                        == Some("Bearer tenant-token-1");
                    (if ok { 200 } else { 401 }, "[]".to_string())
                }
                _ => (404, "{}".to_string()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
                json.len()
            );
        }
    });
    port
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= c.len() {
                ABC[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

#[test]
fn post_deploy_verify_end_to_end_against_a_real_http_service() {
    let env = Env::new();
    let s = script("post_deploy_verify.rhai");
    let verify = |port: u16| {
        env.opsh(["run", &s])
            .script_arg("base_url", format!("http://127.0.0.1:{port}"))
            .script_arg("rate_limit_requests", 20)
            .env("WEBHOOK_SECRET", "whsec-e2e-42")
            .env("VALID_TOKEN", "tenant-token-1")
    };
    let r = verify(fake_api("whsec-e2e-42", 4, false))
        .args(["--output", "json"])
        .run();
    r.assert_code(0)
        // The secrets never reach the output or the audit log.
        .assert_output_lacks("whsec-e2e-42");
    let doc: serde_json::Value = serde_json::from_str(r.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(doc["status"], "PASS", "{}", r.stdout);
    assert_eq!(doc["summary"]["PASS"], 7, "{}", r.stdout);
    assert!(!env.audit_text().contains("whsec-e2e-42"));

    // A deploy whose webhook accepts a bad signature fails the run.
    verify(fake_api("whsec-e2e-42", 4, true))
        .run()
        .assert_code(1)
        .assert_stdout_contains("bad signature got 200, expected 401");
}

#[test]
fn rollback_end_to_end_on_the_kubernetes_test_server() {
    let k = kube();
    k.wait_rolled_out("api");
    let env = Env::new();
    env.script(r#"k8s.set_image("api", "api", "registry.example/api:1.5.0"); k8s.rollout_status("api", #{timeout: "30s"});"#)
        .kubeconfig(k.kubeconfig())
        .run()
        .assert_code(0);
    assert_eq!(k.image("api"), "registry.example/api:1.5.0");
    let port = fake_api("unused", 1000, false);
    let s = script("rollback.rhai");
    // With Grafana and PagerDuty targets, the rollback is marked on both.
    let grafana = recorder::grafana("glsa_rollback");
    let pd = recorder::pagerduty("pd_rollback_token");
    let rollback = || {
        env.opsh(["run", &s])
            .script_arg("health_url", format!("http://127.0.0.1:{port}/api/health"))
            .script_arg("incident", "Q1ABCDEF")
            .kubeconfig(k.kubeconfig())
            .env("GRAFANA_URL", grafana.url())
            .env("GRAFANA_TOKEN", "glsa_rollback")
            .env("PAGERDUTY_URL", pd.url())
            .env("PAGERDUTY_TOKEN", "pd_rollback_token")
            .env("PAGERDUTY_FROM", "oncall@example.com")
    };
    // A dry run changes nothing, and tells no one.
    rollback().flag("--dry-run").run().assert_code(0);
    assert_eq!(k.image("api"), "registry.example/api:1.5.0");
    assert!(grafana.requests().is_empty() && pd.requests().is_empty());
    rollback()
        .run()
        .assert_code(0)
        .assert_stdout_contains("health")
        .assert_output_lacks("glsa_rollback")
        .assert_output_lacks("pd_rollback_token");
    assert_eq!(k.image("api"), "registry.example/api:1.4.2");
    let a = grafana.requests();
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].body["tags"], serde_json::json!(["rollback", "api"]));
    assert!(
        a[0].body["text"]
            .as_str()
            .unwrap()
            .contains("rolled api back"),
        "{a:?}"
    );
    let n = pd.requests();
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(n[0].path, "/incidents/Q1ABCDEF/notes");
    assert!(
        n[0].body["note"]["content"]
            .as_str()
            .unwrap()
            .contains("1.4.2"),
        "{n:?}"
    );
    k.wait_rolled_out("api");
}

#[test]
fn oom_or_memory_leak_end_to_end_on_the_kubernetes_test_server() {
    let k = kube();
    k.wait_rolled_out("api");
    k.wait_worker_oom_killed();
    let env = Env::new();
    let s = script("oom_or_memory_leak.rhai");
    let oom = || env.opsh(["run", &s]).kubeconfig(k.kubeconfig());
    // The worker keeps getting OOM-killed: reported, nothing restarted.
    let worker_pods = k.pods("worker").len();
    oom()
        .script_arg("selector", "app=worker")
        .script_arg("limit_mi", 100000)
        .script_arg("restart", false)
        .run()
        .assert_code(1)
        .assert_stdout_contains("OOMKilled");
    assert_eq!(k.pods("worker").len(), worker_pods);
    // Every api pod over a 1 MiB limit: only the worst one is deleted.
    let uids = || -> Vec<String> {
        k.pods("api")
            .iter()
            .map(|p| p["metadata"]["uid"].as_str().unwrap().to_string())
            .collect()
    };
    let before = uids();
    assert_eq!(before.len(), 3);
    oom()
        .script_arg("selector", "app=api")
        .script_arg("limit_mi", 1)
        .run()
        .assert_code(1)
        .assert_stdout_contains("restarted");
    let after = uids();
    assert_eq!(
        before.iter().filter(|u| !after.contains(u)).count(),
        1,
        "{before:?} -> {after:?}"
    );
    let deletes: Vec<_> = env
        .audit()
        .into_iter()
        .filter(|e| e["primitive"] == "k8s.delete_pod" && e["phase"] == "outcome")
        .collect();
    assert_eq!(deletes.len(), 1);
}

#[test]
fn every_shipped_runbook_declares_its_arguments() {
    let env = Env::new();
    let mut declared = 0;
    for entry in std::fs::read_dir(repo_path("scripts")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_none_or(|e| e != "rhai") {
            continue;
        }
        let r = env.opsh(["help"]).arg(&p).run();
        r.assert_code(0)
            .assert_stdout_contains("Arguments (--arg NAME=VALUE):")
            .assert_stdout_lacks("fn arg(");
        // Each argument has a doc or at least a default shown.
        let lines = r.stdout_lines();
        let args = lines
            .iter()
            .skip_while(|l| !l.starts_with("Arguments ("))
            .skip(1)
            .take_while(|l| !l.is_empty())
            .filter(|l| !l.starts_with("    "));
        for line in args {
            assert!(line.contains('['), "{}: {line}", p.display());
        }
        // An unknown argument stops it before it touches anything (no
        // target is configured: a started runbook would fail otherwise).
        env.opsh(["run"])
            .arg(&p)
            .arg("--arg")
            .arg("no_such_argument=1")
            .run()
            .assert_code(64)
            .assert_stderr_contains("has no argument no_such_argument")
            .assert_stdout("");
        declared += 1;
    }
    assert!(declared >= 19, "only {declared} scripts in scripts/");
}
