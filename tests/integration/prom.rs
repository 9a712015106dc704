//! prom, alertmanager, pushgateway and metrics against the sandbox's real
//! Prometheus stack. Each test starts its own stack (~6 s, mostly
//! Prometheus's first target sync), so the tests are few and broad.

use crate::support::*;
use opsh::sandbox::monitoring::http_get;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn json_at(port: u16, path: &str) -> serde_json::Value {
    let (code, body) = http_get(port, path).expect("http get");
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).expect("json")
}

fn redis_set_keys(url: &str, n: usize) {
    for i in 0..n {
        let _: () = redis_query(url, &["SET", &format!("k{i}"), &i.to_string()]);
    }
}

/// A script helper: polls `f` (a closure returning () until ready) for up
/// to 20 s. Data arrives on Prometheus's schedule, never after a fixed sleep.
const WAIT: &str = r#"
fn wait_for(what, f) {
    let started = now();
    loop {
        let v = f.call();
        if v != () { return v; }
        if now() - started > 20.0 { throw `timed out waiting for ${what}`; }
        sleep("100ms");
    }
}
"#;

#[test]
fn queries_return_what_the_exporters_expose() {
    let sb = sandbox(&[Pg, Redis, Monitoring]);
    let env = Env::new();
    redis_set_keys(&sb.redis_url(), 7);
    let m = sb.monitoring();
    let script = format!(
        r#"{WAIT}
        // Redis's key count, through redis_exporter and Prometheus.
        let keys = wait_for("redis keys", || {{
            let r = prom.query("redis_db_keys{{db=\"db0\"}}");
            if r.len() == 1 && r[0].value == 7.0 {{ r[0].value }} else {{ () }}
        }});
        print(`keys=${{keys}}`);
        print(`redis_up=${{prom.value("redis_up")}}`);
        print(`pg_up=${{prom.value("pg_up")}}`);
        print(`pg_size=${{prom.value("pg_database_size_bytes{{datname=\"postgres\"}}") > 1000000.0}}`);
        print(`scalar=${{prom.query("1 + 1")}}`);
        let up = prom.query("up");
        print(`up=${{up.len()}} all=${{up.all(|s| s.value == 1.0)}} labels=${{up[0].labels.job != ()}}`);
        let jobs = prom.labels("job"); jobs.sort();
        print(`jobs=${{jobs}}`);
        print(`series=${{prom.series("up{{job=\"redis\"}}").len()}}`);
        let t = prom.targets();
        print(`targets=${{t.len()}} up=${{t.all(|x| x.up && x.last_error == ())}}`);
        let r = prom.query_range("up{{job=\"prometheus\"}}", #{{start: "2m", step: "1s"}});
        print(`range=${{r.len()}} max=${{r[0].stats.max}} last=${{r[0].stats.last}} n=${{r[0].values.len() == r[0].stats.count}}`);
        print(`rules=${{prom.rules().filter(|x| x.name == "OpshSandboxAlert")[0].type}}`);
        print(`healthy=${{prom.healthy()}} ready=${{prom.ready()}}`);
        // metrics.scrape reads an exporter directly.
        let s = metrics.scrape("{redis_exporter}/metrics");
        let up = s.filter(|x| x.name == "redis_up")[0];
        print(`scrape redis_up=${{up.value}} ${{up.type}}`);
        let h = metrics.scrape("{prometheus}/metrics").filter(|x| x.family == "prometheus_http_request_duration_seconds");
        let inf = h.filter(|x| x.name.ends_with("_bucket") && x.labels.le == "+Inf").len();
        print(`histogram=${{h[0].type}} inf_buckets=${{inf > 0}} sums=${{h.filter(|x| x.name.ends_with("_sum")).len() > 0}}`);
        "#,
        redis_exporter = m.redis_exporter.as_ref().unwrap().url(),
        prometheus = m.prometheus.url(),
    );
    let r = env.script(&script).targets(&sb).run();
    r.assert_code(0);
    let expected = [
        "keys=7.0",
        "redis_up=1.0",
        "pg_up=1.0",
        "pg_size=true",
        "scalar=2.0",
        "up=5 all=true labels=true",
        r#"jobs=["alertmanager", "postgres", "prometheus", "pushgateway", "redis"]"#,
        "series=1",
        "targets=5 up=true",
        "max=1.0 last=1.0 n=true",
        "rules=alerting",
        "healthy=true ready=true",
        "scrape redis_up=1.0 gauge",
        "histogram=histogram inf_buckets=true sums=true",
    ];
    for e in expected {
        r.assert_stdout_contains(e);
    }
    // The count in Prometheus is the count in Redis.
    let prom_keys = json_at(m.prometheus.port, "/api/v1/query?query=redis_db_keys");
    assert_eq!(prom_keys["data"]["result"][0]["value"][1], "7");
}

#[test]
fn bad_queries_say_what_prometheus_said() {
    let sb = sandbox(&[Monitoring]);
    let env = Env::new();
    // A syntax error: Prometheus's errorType and message, with the expression.
    env.script(r#"prom.query("sum(up")"#)
        .targets(&sb)
        .run()
        .assert_code(2)
        .assert_stderr_contains("`sum(up`")
        .assert_stderr_contains("bad_data")
        .assert_stderr_contains("unclosed left parenthesis");
    // value(): several samples and none are errors, never a silent 0.
    env.script(r#"prom.value("up")"#)
        .targets(&sb)
        .run()
        .assert_code(2)
        .assert_stderr_contains("returned 3 samples")
        .assert_stderr_contains("job=\"pushgateway\"");
    env.script(r#"prom.value("no_such_metric")"#)
        .targets(&sb)
        .run()
        .assert_code(2)
        .assert_stderr_contains("returned no samples")
        .assert_stderr_contains("not 0");
    // A script can catch it and read Prometheus's words.
    let r = env
        .script(r#"try { prom.query("rate(up[") } catch (e) { print(e.kind); print(e.cause) }"#)
        .targets(&sb)
        .run();
    r.assert_code(0);
    assert!(
        r.stdout.starts_with("bad_input\nbad_data: "),
        "{}",
        r.stdout
    );
}

#[test]
fn a_pushed_metric_fires_an_alert_that_is_silenced_and_expired() {
    let sb = sandbox(&[Monitoring]);
    let env = Env::new();
    let m = sb.monitoring();
    let weird = "a\\\"b\\\\c\\nd"; // a"b\c<newline>d, in Rhai source
    let script = format!(
        r#"{WAIT}
        let p = pushgateway.push("nightly", #{{
            opsh_sandbox_alert: 1,
            opsh_sandbox_pending: 1,
            nightly_duration_seconds: #{{value: 4.5, help: "run time", labels: #{{step: "{weird}"}}}},
        }}, #{{grouping: #{{env: "test"}}}});
        print(`pushed=${{p.pushed}}`);
        let v = wait_for("pushed metric", || {{
            let r = prom.query("nightly_duration_seconds{{env=\"test\"}}");
            if r.len() == 1 {{ r[0] }} else {{ () }}
        }});
        print(`value=${{v.value}} job=${{v.labels.job}} step_ok=${{v.labels.step == "{weird}"}}`);
        let a = wait_for("firing alert", || {{
            let f = prom.alerts().filter(|a| a.name == "OpshSandboxAlert" && a.state == "firing");
            if f.len() == 1 {{ f[0] }} else {{ () }}
        }});
        print(`alert=${{a.state}} ${{a.labels.severity}} ${{a.annotations.summary}}`);
        let pending = prom.alerts().filter(|a| a.name == "OpshSandboxPending");
        print(`pending=${{pending[0].state}}`);
        let am = wait_for("alert in alertmanager", || {{
            let f = alertmanager.alerts(#{{alertname: "OpshSandboxAlert"}});
            if f.len() == 1 {{ f[0] }} else {{ () }}
        }});
        print(`am=${{am.state}}`);
        // The same exposition, read back from the Pushgateway directly.
        let s = metrics.scrape("{pushgateway}/metrics").filter(|x| x.name == "nightly_duration_seconds");
        print(`scraped=${{s.len()}} ${{s[0].type}} escaped_ok=${{s[0].labels.step == "{weird}"}}`);
        print(`groups=${{pushgateway.groups().filter(|g| g.labels.job == "nightly")[0].metrics}}`);
        "#,
        pushgateway = m.pushgateway.url(),
    );
    let r = env.script(&script).targets(&sb).run();
    r.assert_code(0);
    for e in [
        "pushed=3",
        "value=4.5 job=nightly step_ok=true",
        "alert=firing warning opsh_sandbox_alert is 1",
        "pending=pending",
        "am=active",
        "scraped=1 gauge escaped_ok=true",
        r#"groups=["nightly_duration_seconds", "opsh_sandbox_alert", "opsh_sandbox_pending"]"#,
    ] {
        r.assert_stdout_contains(e);
    }
    // The Pushgateway's raw text really carries the escapes.
    let (_, raw) = http_get(m.pushgateway.port, "/metrics").unwrap();
    assert!(raw.contains(r#"step="a\"b\\c\nd""#), "{raw}");

    let silences = |port| json_at(port, "/api/v2/silences");
    let am_port = m.alertmanager.port;
    // Dry run: the plan names the alert it would silence and creates nothing.
    env.script(r#"alertmanager.silence(#{alertname: "OpshSandboxAlert"}, "1h", "maintenance")"#)
        .targets(&sb)
        .flag("--dry-run")
        .run()
        .assert_code(0)
        .assert_stderr_contains("it would silence 1 current alerts: OpshSandboxAlert");
    assert_eq!(silences(am_port).as_array().unwrap().len(), 0);

    let r = env
        .script(r#"let s = alertmanager.silence(`{alertname="OpshSandboxAlert", severity=~"warn.*"}`, "1h", "maintenance"); print(s.id); print(s.alerts);"#)
        .targets(&sb)
        .run();
    r.assert_code(0);
    let mut lines = r.stdout.lines();
    let id = lines.next().unwrap().to_string();
    assert_eq!(lines.next(), Some(r#"["OpshSandboxAlert"]"#));
    let s = json_at(am_port, &format!("/api/v2/silence/{id}"));
    assert_eq!(s["status"]["state"], "active");
    assert_eq!(s["comment"], "maintenance");
    assert_eq!(s["matchers"].as_array().unwrap().len(), 2);

    // Alertmanager now reports the alert as suppressed by that silence.
    env.script(&format!(
        r#"{WAIT}
            let a = wait_for("suppressed", || {{
                let a = alertmanager.alerts(#{{alertname: "OpshSandboxAlert"}})[0];
                if a.state == "suppressed" {{ a }} else {{ () }}
            }});
            print(a.silenced_by);
            let e = alertmanager.expire_silence("{id}");
            print(e.was);"#
    ))
    .targets(&sb)
    .run()
    .assert_code(0)
    .assert_stdout(&format!("[\"{id}\"]\nactive\n"));
    let s = json_at(am_port, &format!("/api/v2/silence/{id}"));
    assert_eq!(s["status"]["state"], "expired");

    // Both mutations are in the audit log, intent then outcome.
    let audit = env.audit();
    let prims: Vec<(&str, &str)> = audit
        .iter()
        .filter(|a| a["event"] == "primitive")
        .map(|a| {
            (
                a["primitive"].as_str().unwrap(),
                a["phase"].as_str().unwrap(),
            )
        })
        .collect();
    for want in [
        ("pushgateway.push", "intent"),
        ("pushgateway.push", "outcome"),
        ("alertmanager.silence", "plan"),
        ("alertmanager.silence", "outcome"),
        ("alertmanager.expire_silence", "outcome"),
    ] {
        assert!(prims.contains(&want), "{want:?} not in {prims:?}");
    }

    // An unknown silence id is a clear error.
    env.script(r#"alertmanager.expire_silence("00000000-0000-0000-0000-000000000000")"#)
        .targets(&sb)
        .run()
        .assert_code(2)
        .assert_stderr_contains("no silence with id");
}

#[test]
fn a_stopped_prometheus_is_a_clear_error_within_the_timeout() {
    let mut sb = sandbox(&[Monitoring]);
    let env = Env::new();
    sb.monitoring.as_mut().unwrap().prometheus.stop();
    let started = Instant::now();
    let r = env
        .script(r#"prom.value("up")"#)
        .targets(&sb)
        .option("--call-timeout", "3s")
        .run();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    r.assert_code(2)
        .assert_stderr_contains("refused the connection to PROMETHEUS_URL")
        .assert_stderr_contains("is prom running, and on this port?");
}

/// A loopback server that answers every connection with `reply`, or
/// never answers when `reply` is empty.
fn fake_server(reply: String) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            if reply.is_empty() {
                held.push(s);
            } else {
                let _ = s.write_all(reply.as_bytes());
            }
        }
    });
    port
}

#[test]
fn proxy_pages_and_hangs_are_reported_as_such() {
    let env = Env::new();
    let page = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>\n";
    let port = fake_server(format!(
        "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
        page.len()
    ));
    let url = format!("http://127.0.0.1:{port}");
    env.script(r#"prom.query("up")"#)
        .env("PROMETHEUS_URL", &url)
        .run()
        .assert_code(2)
        .assert_stderr_contains("HTTP 502 Bad Gateway")
        .assert_stderr_contains("not a Prometheus API response")
        .assert_stderr_contains("\"502 Bad Gateway\"")
        .assert_stderr_contains("proxy");

    let hang = fake_server(String::new());
    let url = format!("http://127.0.0.1:{hang}");
    let started = Instant::now();
    env.script(r#"prom.query("up")"#)
        .env("PROMETHEUS_URL", &url)
        .option("--call-timeout", "1s")
        .run()
        .assert_code(2)
        .assert_stderr_contains("timed out");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn bad_options_are_refused_before_any_request() {
    let env = Env::new();
    // Nothing listens on port 9: an error about the options, not about the
    // connection, shows they were checked first.
    env.script(r#"prom.query("up", #{timout: "5s"})"#)
        .env("PROMETHEUS_URL", "http://127.0.0.1:9")
        .run()
        .assert_code(2)
        .assert_stderr_contains("prom.query failed: unknown option `timout`")
        .assert_stderr_contains("did you mean `timeout`?");
    env.script(r#"pushgateway.push("j", #{x: 1}, #{merge: "yes"})"#)
        .env("PUSHGATEWAY_URL", "http://127.0.0.1:9")
        .run()
        .assert_code(2)
        .assert_stderr_contains("option `merge` must be true or false, got string (\"yes\")")
        .assert_stderr_lacks("cannot connect");
}

#[test]
fn bearer_token_from_the_config_is_sent_and_redacted() {
    let env = Env::new();
    // Records the request it gets and answers like Prometheus.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 8192];
            let n = s.read(&mut buf).unwrap_or(0);
            *seen2.lock().unwrap() = String::from_utf8_lossy(&buf[..n]).into_owned();
            let body = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"3"]},"warnings":["something odd"]}"#;
            let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    env.write_config(&format!(
        "[defaults]\nprom = \"main\"\n[prom.main]\nurl = \"http://127.0.0.1:{port}\"\nbearer_env = \"PROM_TOKEN\"\n"
    ));
    env.script(r#"print(prom.value("3")); prom.query("no(")"#)
        .env("PROM_TOKEN", "s3cr3t-token-value")
        .run()
        .assert_code(0)
        .assert_stdout("3.0\n")
        .assert_stderr_contains("warning: prom.value: something odd")
        .assert_output_lacks("s3cr3t-token-value");
    assert!(
        seen.lock()
            .unwrap()
            .contains("authorization: Bearer s3cr3t-token-value"),
        "{}",
        seen.lock().unwrap()
    );
}

#[test]
fn sandbox_run_with_monitoring_runs_the_metrics_check() {
    let env = Env::new();
    let script = repo_path("scripts/metrics_check.rhai");
    env.opsh(["sandbox", "run", "--monitoring", &script])
        .script_arg("push", true)
        .run()
        .assert_code(0)
        .assert_stderr_contains("Prometheus on 127.0.0.1:")
        .assert_stdout_contains("scrape targets up")
        .assert_stdout_contains("0 failed")
        // No HTTP traffic in the sandbox: the latency check says so.
        .assert_stdout_contains("no data");
    let pushed = env.audit().iter().any(|a| {
        a["primitive"] == "pushgateway.push" && a["phase"] == "outcome" && a["outcome"] == "ok"
    });
    assert!(pushed, "{:?}", env.audit());
}
