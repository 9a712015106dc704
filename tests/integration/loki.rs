//! loki and scripts/logs_summary.rhai against the sandbox's Loki (the
//! in-process server of src/sandbox/loki: Grafana Loki is not packaged for
//! Debian). Each test pushes the lines it asserts on through Loki's push
//! API, so counts are exact.

use crate::support::*;
use opsh::sandbox::loki::{now_ns, push_streams};
use opsh::sandbox::LokiServer;
use serde_json::json;

/// Runbook 000's service: JSON access logs with errors, 401s and slow
/// requests at known times (seconds ago).
fn push_api_logs(loki: &LokiServer) {
    let now = now_ns();
    let at = |secs_ago: i64| (now - secs_ago * 1_000_000_000).to_string();
    let lines = [
        (
            300,
            r#"{"level":"info","msg":"request completed","status":200,"duration":35}"#,
        ),
        (
            290,
            r#"{"level":"error","msg":"upstream timeout","status":504,"duration":5012,"upstream":"postgres"}"#,
        ),
        (
            280,
            r#"{"level":"error","msg":"upstream timeout","status":504,"duration":5003,"upstream":"postgres"}"#,
        ),
        (
            270,
            r#"{"level":"error","msg":"connection refused","status":502,"duration":3,"upstream":"redis"}"#,
        ),
        (
            260,
            r#"{"level":"warn","msg":"unauthorized","status":401,"duration":2}"#,
        ),
        (
            250,
            r#"{"level":"warn","msg":"unauthorized","status":401,"duration":3}"#,
        ),
        (
            240,
            r#"{"level":"warn","msg":"unauthorized","status":403,"duration":2}"#,
        ),
        (
            230,
            r#"{"level":"info","msg":"request completed","status":200,"duration":2500}"#,
        ),
        (220, "not json at all: error in the proxy"),
        // Outside a 1h window.
        (
            7200,
            r#"{"level":"error","msg":"old news","status":500,"duration":1}"#,
        ),
    ];
    let values: Vec<_> = lines.iter().map(|(ago, l)| json!([at(*ago), l])).collect();
    push_streams(
        loki.port,
        &json!([{"stream": {"app": "lydian-iq", "namespace": "prod"}, "values": values}]),
    )
    .unwrap();
    push_streams(
        loki.port,
        &json!([{"stream": {"app": "other", "namespace": "prod"}, "values": [[at(10), "error elsewhere"]]}]),
    )
    .unwrap();
}

#[test]
fn the_runbook_logql_returns_typed_entries_and_metrics() {
    let loki = LokiServer::start().unwrap();
    push_api_logs(&loki);
    let script = r#"
        let errors = loki.query(`{app="lydian-iq"} |= "error" | json`);
        print(`errors=${errors.len()}`);
        // Newest first; a line that is not JSON carries Loki's __error__.
        print(`first=${errors[0].labels.__error__} line=${errors[0].line}`);
        let e = errors[1];
        print(`fields=${e.fields.msg}/${e.fields.status}/${e.fields.upstream} type=${type_of(e.fields.status)} labels=${e.labels}`);
        print(`ns=${e.ns > 0} time=${e.time > 0.0}`);
        let auth = loki.query(`{app="lydian-iq"} |= "unauthorized" | json | status="401"`);
        print(`auth=${auth.len()}`);
        let slow = loki.query(`{app="lydian-iq"} | json | duration > 2000`, #{since: "1h"});
        print(`slow=${slow.map(|x| x.fields.duration)}`);
        let fwd = loki.query(`{app="lydian-iq"} | json`, #{since: "3h", limit: 2, direction: "forward"});
        print(`forward=${fwd.map(|x| x.fields.len())} ${fwd[0].line}`);
        let counts = loki.query(`sum by (status) (count_over_time({app="lydian-iq"} | json | __error__="" [1h]))`);
        counts.sort(|a, b| if a.labels.status < b.labels.status { -1 } else { 1 });
        print(`counts=${counts.map(|s| `${s.labels.status}:${s.value}`)}`);
        let rate = loki.query(`rate({app="lydian-iq"} |= "unauthorized" [10m])`);
        print(`rate=${(rate[0].value * 600.0).to_int()}`);
        let over = loki.query(`sum(count_over_time({app="lydian-iq"} |= "error" [1m]))`, #{since: "10m", step: "1m"});
        print(`range=${over.len()} points=${over[0].values.len() > 0}`);
        let names = loki.labels(); names.sort();
        print(`labels=${names} apps=${loki.labels("app")}`);
        print(`series=${loki.series(`{namespace="prod"}`).len()}`);
        print(`configured=${loki.configured()}`);
    "#;
    Env::new()
        .script(script)
        .env("LOKI_URL", loki.url())
        .run()
        .assert_code(0)
        .assert_stdout(
            "errors=4\n\
             first=JSONParserErr line=not json at all: error in the proxy\n\
             fields=connection refused/502/redis type=i64 labels=#{\"app\": \"lydian-iq\", \"namespace\": \"prod\"}\n\
             ns=true time=true\n\
             auth=2\n\
             slow=[2500, 5003, 5012]\n\
             forward=[4, 4] {\"level\":\"error\",\"msg\":\"old news\",\"status\":500,\"duration\":1}\n\
             counts=[\"200:2.0\", \"401:2.0\", \"403:1.0\", \"502:1.0\", \"504:2.0\"]\n\
             rate=3\n\
             range=1 points=true\n\
             labels=[\"app\", \"namespace\"] apps=[\"lydian-iq\", \"other\"]\n\
             series=2\n\
             configured=true\n",
        );
}

#[test]
fn loki_errors_carry_lokis_own_message() {
    let loki = LokiServer::start().unwrap();
    let env = Env::new();
    env.script(r#"loki.query(`{app="x"} | json | status==`)"#)
        .env("LOKI_URL", loki.url())
        .run()
        .assert_code(2)
        .assert_stderr_contains("Loki rejected `{app=\"x\"} | json | status==` (HTTP 400)")
        .assert_stderr_contains(
            "parse error at line 1, col 28: syntax error: unexpected end of query",
        );
    // Checked before any request.
    env.script(r#"loki.query(`{app="x"}`, #{limit: 0})"#)
        .env("LOKI_URL", loki.url())
        .run()
        .assert_code(2)
        .assert_stderr_contains("limit must be positive");
    env.script(r#"loki.query(`{app="x"}`, #{step: "1m"})"#)
        .env("LOKI_URL", loki.url())
        .run()
        .assert_code(2)
        .assert_stderr_contains("`step` is for metric queries");
    env.script(r#"print(loki.configured()); loki.query(`{app="x"}`)"#)
        .run()
        .assert_code(2)
        .assert_stdout("false\n")
        .assert_stderr_contains("no loki target given")
        .assert_stderr_contains("LOKI_URL");
    // Not Loki at all: who answered, and what to check.
    let not_loki = recorder::Recorder::start(|_| (404, serde_json::json!("404 page not found")));
    env.script(r#"loki.labels()"#)
        .env("LOKI_URL", not_loki.url())
        .run()
        .assert_code(2)
        .assert_stderr_contains("not a Loki API response")
        .assert_stderr_contains("is the target URL the Loki base URL");
    drop(loki);
    let port = opsh::sandbox::free_port().unwrap();
    env.script(r#"loki.labels()"#)
        .env("LOKI_URL", format!("http://127.0.0.1:{port}"))
        .run()
        .assert_stderr_contains("refused the connection to LOKI_URL")
        .assert_stderr_contains("is loki running");
}

#[test]
fn logs_summary_groups_the_sandbox_workload_by_message() {
    let mut loki = LokiServer::start().unwrap();
    loki.start_workload().unwrap();
    let r = Env::new()
        .opsh(["run", &repo_path("scripts/logs_summary.rhai")])
        .args([
            "--arg",
            "app=sandbox-api",
            "--arg",
            "since=5m",
            "--output",
            "json",
        ])
        .env("LOKI_URL", loki.url())
        .run();
    r.assert_code(0);
    let tables: Vec<serde_json::Value> = r
        .stdout_lines()
        .into_iter()
        .filter(|l| l.starts_with('['))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // With --output json, print() goes to stderr: stdout is only JSON.
    assert!(r.stderr.contains("errors: "), "{}", r.stderr);
    // errors, auth failures and slow requests, in that order.
    assert_eq!(tables.len(), 3, "{}", r.stdout);
    let rows = |i: usize| tables[i].as_array().cloned().unwrap_or_default();
    let errors = rows(0);
    let messages: Vec<&str> = errors
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        ["upstream timeout", "bad gateway"],
        "{}",
        r.stdout
    );
    assert_eq!(errors[0]["upstreams"], json!(["postgres"]));
    assert_eq!(errors[1]["upstreams"], json!(["redis"]));
    // Two timeouts per bad gateway, in the workload's rhythm.
    let (t, b) = (
        errors[0]["count"].as_i64().unwrap(),
        errors[1]["count"].as_i64().unwrap(),
    );
    assert!((2 * b - t).abs() <= 2 && b >= 5, "{}", r.stdout);
    let auth = rows(1);
    assert_eq!(auth.len(), 1);
    assert_eq!(auth[0]["message"], "unauthorized: invalid token");
    assert_eq!(auth[0]["statuses"], json!([401]));
    let slow = rows(2);
    let slow_msgs: Vec<&str> = slow
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        slow_msgs,
        ["upstream timeout", "request completed"],
        "{}",
        r.stdout
    );
    assert!(slow
        .iter()
        .all(|s| s["slowest_ms"].as_i64().unwrap() > 2000));
}

#[test]
fn the_kubernetes_test_servers_pod_logs_are_shipped_to_loki() {
    let k = kube();
    k.wait_pods_ready("api", 3);
    let mut loki = LokiServer::start().unwrap();
    loki.ship_kube(k.port);
    // New pods log one line a second, an ERROR every 13th: wait for one.
    let script = r#"
        let q = `{namespace="default", app="api"} | logfmt | level="ERROR"`;
        let started = now();
        let errors = [];
        while errors.is_empty() {
            if now() - started > 30.0 { throw "no ERROR line reached Loki in 30s"; }
            sleep("200ms");
            errors = loki.query(q, #{since: "15m", limit: 1000});
        }
        let pods = loki.labels("pod", #{since: "15m"}).filter(|p| p.starts_with("api-"));
        print(`pods=${pods.len()}`);
        print(`errors=${errors.len() > 0} msg=${errors.map(|e| e.fields.msg).filter(|m| m != "upstream timeout").len()}`);
        print(`labels=${errors[0].labels.keys()}`);
        let by_pod = loki.query(`sum by (pod) (count_over_time({app="api"} [15m]))`);
        print(`by_pod=${by_pod.len()}`);
    "#;
    Env::new()
        .script(script)
        .env("LOKI_URL", loki.url())
        .run()
        .assert_code(0)
        .assert_stdout(
            "pods=3\nerrors=true msg=0\nlabels=[\"app\", \"container\", \"job\", \"namespace\", \"pod\"]\nby_pod=3\n",
        );
}
