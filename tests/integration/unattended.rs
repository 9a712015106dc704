//! Unattended runs: locks, reports, notifications, pushed metrics, the
//! schedule runner, fleets and exit codes, with the real binary.

use crate::support::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LOCKED: i32 = 75;

fn lock_file(env: &Env, name: &str) -> std::path::PathBuf {
    env.path(&format!("xdgstate/opsh/locks/{name}.lock"))
}

/// A lock held by this test process (alive, on this host): never stale.
fn hold_lock(env: &Env, name: &str, script: &str) {
    let holder = serde_json::json!({
        "pid": std::process::id(), "host": opsh::audit::hostname(),
        "started": "2026-01-01T00:00:00Z", "started_unix": 1u64, "script": script
    });
    env.write(
        &format!("xdgstate/opsh/locks/{name}.lock"),
        &holder.to_string(),
    );
}

#[test]
fn an_overlapping_run_exits_75_naming_the_holder() {
    let env = Env::new();
    let script = env.write(
        "job.rhai",
        "// nightly job\n// opsh: lock=nightly\nsleep(\"3s\");\nprint(\"done\");\n",
    );
    let first = env.opsh(["run"]).arg(&script).spawn();
    let pid = first.id();
    eventually(secs(10), "the first run's lock", || {
        lock_file(&env, "nightly").exists()
    });
    // The header lock and --lock with the same name are the same lock.
    env.opsh(["run"])
        .arg(&script)
        .option("--lock", "nightly")
        .run()
        .assert_code(LOCKED)
        .assert_stderr_contains(&format!("held by pid {pid} on "))
        .assert_stderr_contains(" since 20")
        // The second run must not run.
        .assert_stdout("");
    wait_output(first)
        .assert_code(0)
        .assert_stdout_contains("done");
    assert!(
        !lock_file(&env, "nightly").exists(),
        "the lock is released at the end"
    );
    // --no-lock ignores the header lock, even while someone holds it.
    hold_lock(&env, "nightly", "other.rhai");
    env.opsh(["run"]).arg(&script).run().assert_code(LOCKED);
    env.opsh(["run"])
        .arg(&script)
        .flag("--no-lock")
        .run()
        .assert_code(0)
        .assert_stdout("done\n");
    assert!(
        lock_file(&env, "nightly").exists(),
        "the holder's lock stays"
    );
}

#[test]
fn a_stale_lock_is_taken_over_and_a_foreign_host_lock_is_not() {
    let env = Env::new();
    let host = opsh::audit::hostname();
    let stale = serde_json::json!({
        "pid": 999_999_999u32, "host": host, "started": "2026-01-01T00:00:00Z",
        "started_unix": 1_767_225_600u64, "script": "killed.rhai"
    });
    env.write("xdgstate/opsh/locks/backup.lock", &stale.to_string());
    env.script("print(\"ran\")")
        .option("--lock", "backup")
        .run()
        .assert_code(0)
        .assert_stdout_contains("ran")
        .assert_stderr_contains("left by pid 999999999")
        .assert_stderr_contains("taking it over");
    assert!(!lock_file(&env, "backup").exists());

    // A holder on another host cannot be checked from here: never stale.
    let foreign = serde_json::json!({
        "pid": 999_999_999u32, "host": "other-host.invalid", "started": "2026-01-01T00:00:00Z",
        "started_unix": 1_767_225_600u64, "script": "elsewhere.rhai"
    });
    env.write("xdgstate/opsh/locks/backup.lock", &foreign.to_string());
    env.script("print(\"ran\")")
        .option("--lock", "backup")
        .run()
        .assert_code(LOCKED)
        .assert_stderr_contains("on other-host.invalid");
    assert!(
        lock_file(&env, "backup").exists(),
        "someone else's lock stays"
    );
}

#[test]
fn racing_takeovers_of_one_stale_lock_let_exactly_one_run() {
    let env = Env::new();
    let stale = serde_json::json!({
        "pid": 999_999_999u32, "host": opsh::audit::hostname(), "started": "2026-01-01T00:00:00Z",
        "started_unix": 1u64, "script": "killed.rhai"
    });
    env.write("xdgstate/opsh/locks/race.lock", &stale.to_string());
    let script = env.write("race.rhai", "sleep(\"1500ms\");");
    let runs: Vec<_> = (0..4)
        .map(|_| {
            env.opsh(["run"])
                .arg(&script)
                .option("--lock", "race")
                .spawn()
        })
        .collect();
    let mut codes: Vec<i32> = runs.into_iter().map(|c| wait_output(c).code).collect();
    codes.sort();
    assert_eq!(codes, [0, LOCKED, LOCKED, LOCKED]);
}

// --- JSON report against docs/report.schema.json -------------------------

/// The subset of JSON Schema the report schema uses: type (one or a list),
/// enum, minimum, required, properties, additionalProperties: false, items.
fn validate(schema: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    let type_ok = |t: &str| match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        other => panic!("schema uses unsupported type {other}"),
    };
    match &schema["type"] {
        Value::String(t) if !type_ok(t) => errors.push(format!("{path}: not {t}: {v}")),
        Value::Array(ts) if !ts.iter().any(|t| type_ok(t.as_str().unwrap())) => {
            errors.push(format!("{path}: not any of {ts:?}: {v}"))
        }
        _ => {}
    }
    if let Some(e) = schema["enum"].as_array() {
        if !e.contains(v) {
            errors.push(format!("{path}: {v} not in {e:?}"));
        }
    }
    if let (Some(min), Some(x)) = (schema["minimum"].as_f64(), v.as_f64()) {
        if x < min {
            errors.push(format!("{path}: {x} < {min}"));
        }
    }
    if let Some(obj) = v.as_object() {
        for r in schema["required"].as_array().into_iter().flatten() {
            if !obj.contains_key(r.as_str().unwrap()) {
                errors.push(format!("{path}: missing {r}"));
            }
        }
        let props = schema["properties"].as_object();
        for (k, x) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate(s, x, &format!("{path}.{k}"), errors),
                None if schema["additionalProperties"] == Value::Bool(false) => {
                    errors.push(format!("{path}: unexpected property {k}"))
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            validate(items, x, &format!("{path}[{i}]"), errors);
        }
    }
}

fn schema() -> Value {
    serde_json::from_str(&repo_file("docs/report.schema.json")).unwrap()
}

#[track_caller]
fn assert_valid(report: &Value) {
    let mut errors = Vec::new();
    validate(&schema(), report, "$", &mut errors);
    assert!(errors.is_empty(), "{errors:#?}\n{report:#}");
}

#[test]
fn the_validator_rejects_what_the_schema_forbids() {
    let good = serde_json::json!({"version": 1, "script": "s", "args": {}, "host": "h", "pid": 1,
        "lock": null, "target": null, "dry_run": false, "started_at": "t", "ended_at": "t",
        "duration_seconds": 0.5, "exit_code": 0, "status": "ok", "success": true, "error": null,
        "checks": [], "mutations": []});
    assert_valid(&good);
    let mut errors = Vec::new();
    let mut bad = good.clone();
    bad["extra"] = 1.into();
    bad["pid"] = "1".into();
    bad["checks"] =
        serde_json::json!([{"check": "c", "status": "MAYBE", "value": 1, "detail": ""}]);
    bad.as_object_mut().unwrap().remove("exit_code");
    validate(&schema(), &bad, "$", &mut errors);
    assert_eq!(errors.len(), 4, "{errors:#?}");
}

/// A tiny HTTP receiver: records (request line, body) and answers `status`.
/// (request line, body) of every request received.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

fn receiver(status: &'static str) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut len = 0;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            log.lock().unwrap().push((
                line.trim().to_string(),
                String::from_utf8_lossy(&body).into_owned(),
            ));
            let resp =
                format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            let mut s = stream;
            let _ = s.write_all(resp.as_bytes());
        }
    });
    (format!("http://127.0.0.1:{port}/hook"), seen)
}

const CHECKS: &str = r#"
import "checks" as checks;
let r = [];
r += checks::threshold("disk %", 42, 80, 90);
r += checks::pass_if("replica", args.ok, "streaming");
http.post(args.hook, #{event: "cleanup"});
checks::report(r);
"#;

#[test]
fn the_report_matches_its_documented_shape() {
    let env = Env::new();
    let (hook, seen) = receiver("200 OK");
    let report = env.path("out/report.json");
    env.script(CHECKS)
        .option("--report", &report)
        .option("--lock", "rep")
        .run()
        .assert_code(2); // args.ok and args.hook are missing: a script error
    let v: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_valid(&v);
    assert_eq!(v["exit_code"], 2);
    assert_eq!(v["status"], "error");
    assert!(!v["error"].as_str().unwrap().is_empty(), "{v:#}");

    let file = env.write("checks.rhai", CHECKS);
    env.opsh(["run"])
        .arg(&file)
        .script_arg("ok", false)
        .script_arg("hook", &hook)
        .script_arg("password", "hunter22")
        .option("--report", &report)
        .run()
        .assert_code(1);
    let v: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_valid(&v);
    assert_eq!(v["exit_code"], 1);
    assert_eq!(v["status"], "check failed");
    assert_eq!(v["success"], false);
    assert_eq!(v["args"]["password"], "***");
    assert_eq!(v["args"]["ok"], false);
    assert!(v["script"].as_str().unwrap().ends_with("checks.rhai"));
    let checks = v["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 2);
    assert_eq!(checks[0]["check"], "disk %");
    assert_eq!(checks[0]["status"], "PASS");
    assert_eq!(checks[0]["value"], 42);
    assert_eq!(checks[1]["status"], "FAIL");
    let muts = v["mutations"].as_array().unwrap();
    assert_eq!(muts.len(), 1);
    assert_eq!(muts[0]["primitive"], "http.post");
    assert_eq!(muts[0]["mode"], "real");
    assert_eq!(muts[0]["outcome"], "ok");
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the mutation really happened"
    );

    // Dry-run: the mutation is planned, not sent.
    env.opsh(["run"])
        .arg(&file)
        .script_arg("ok", true)
        .script_arg("hook", &hook)
        .flag("--dry-run")
        .option("--report", &report)
        .run()
        .assert_code(0);
    let v: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_valid(&v);
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["mutations"][0]["outcome"], "planned");
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn failures_notify_successes_do_not_and_a_broken_target_keeps_the_exit_code() {
    let env = Env::new();
    let (hook, seen) = receiver("200 OK");
    let bodies = || seen.lock().unwrap().clone();

    let r = env
        .script("fail(\"replica lag 90s\")")
        .option("--notify", &hook)
        .run();
    r.assert_code(1);
    let got = bodies();
    assert_eq!(got.len(), 1, "{}", r.stderr);
    assert!(got[0].0.starts_with("POST /hook "), "{:?}", got[0]);
    let payload: Value = serde_json::from_str(&got[0].1).unwrap();
    assert_valid(&payload);
    assert_eq!(payload["exit_code"], 1);
    assert_eq!(payload["error"], "replica lag 90s");

    env.script("print(1)")
        .option("--notify", &hook)
        .run()
        .assert_code(0);
    assert_eq!(bodies().len(), 1, "no message on success by default");
    env.script("print(1)")
        .option("--notify", &hook)
        .option("--notify-on", "always")
        .run()
        .assert_code(0);
    assert_eq!(bodies().len(), 2);

    // A config-defined Slack target, its URL from the environment.
    env.write_config("[notify.oncall]\nslack_webhook_env = \"ONCALL_HOOK\"\n");
    let r = env
        .script("fail(\"disk full\")")
        .env("ONCALL_HOOK", &hook)
        .option("--notify", "oncall")
        .run();
    r.assert_code(1);
    let got = bodies();
    assert_eq!(got.len(), 3, "{}", r.stderr);
    let slack: Value = serde_json::from_str(&got[2].1).unwrap();
    let text = slack["text"].as_str().unwrap();
    assert!(text.contains("check failed (exit 1)"), "{text}");
    assert!(text.contains("disk full"), "{text}");

    // Broken targets: refused connection, a 500, an unset variable. The
    // run's own status survives each, and the failure is on stderr.
    let (bad_hook, _) = receiver("500 Internal Server Error");
    for target in ["http://127.0.0.1:1/hook", bad_hook.as_str(), "oncall"] {
        env.script("fail(\"x\")")
            .option("--notify", target)
            .run()
            .assert_code(1)
            .assert_stderr_contains("notification to")
            .assert_stderr_contains("failed")
            // Webhook URLs are secrets.
            .assert_stderr_lacks("/hook");
        env.script("exit(0)")
            .option("--notify", target)
            .option("--notify-on", "always")
            .run()
            .assert_code(0)
            .assert_stderr_contains("notification to");
    }
    let audit = env.audit();
    assert!(
        audit.iter().any(|e| e["primitive"] == "notify.slack")
            && audit.iter().any(|e| e["primitive"] == "notify.webhook"),
        "notifications are audited mutations"
    );
    let text = serde_json::to_string(&audit).unwrap();
    assert!(
        !text.contains(&hook),
        "webhook URLs are masked in the audit log"
    );
}

#[test]
fn pushed_run_metrics_are_visible_in_prometheus() {
    let sb = sandbox(&[Monitoring]);
    let env = Env::new();
    let m = sb.monitoring();
    let job = env.write(
        "nightly_backup.rhai",
        "if args.fail { fail(\"backup failed\") }",
    );
    let run = |fail: bool| {
        env.opsh(["run"])
            .arg(&job)
            .script_arg("fail", fail)
            .flag("--push-metrics")
            .targets(&sb)
            .run()
    };
    run(false).assert_code(0);
    env.script(
        r#"
        let started = now();
        loop {
            let r = prom.query("opsh_run_last_success_timestamp_seconds{job=\"nightly_backup\"}");
            if r.len() == 1 { print(`last_success=${r[0].value > started - 600.0}`); break; }
            if now() - started > 20.0 { throw "timed out waiting for the pushed metric"; }
            sleep("100ms");
        }
        let s = prom.query("opsh_run_success{job=\"nightly_backup\"}");
        print(`success=${s[0].value}`);
        "#,
    )
    .targets(&sb)
    .run()
    .assert_code(0)
    .assert_stdout("last_success=true\nsuccess=1.0\n");

    // A failed run sets success 0 and keeps the last success time.
    run(true).assert_code(1);
    let (_, raw) = opsh::sandbox::monitoring::http_get(m.pushgateway.port, "/metrics").unwrap();
    let line = |name: &str| {
        raw.lines()
            .find(|l| l.starts_with(name) && l.contains("job=\"nightly_backup\""))
            .map(|l| l.rsplit(' ').next().unwrap().to_string())
    };
    assert_eq!(line("opsh_run_success{").as_deref(), Some("0"), "{raw}");
    assert_eq!(line("opsh_run_exit_code{").as_deref(), Some("1"), "{raw}");
    assert!(
        line("opsh_run_last_success_timestamp_seconds{").is_some(),
        "{raw}"
    );
    assert!(line("opsh_run_duration_seconds{").is_some(), "{raw}");

    // Without a Pushgateway: a warning, and the run's own code.
    env.opsh(["run"])
        .arg(&job)
        .script_arg("fail", false)
        .flag("--push-metrics")
        .run()
        .assert_code(0)
        .assert_stderr_contains("no Pushgateway target");
}

#[test]
fn the_scheduler_fires_jobs_and_stops_cleanly_on_sigterm() {
    let env = Env::new();
    env.write("jobs/tick.rhai", "print(`tick ${args.n}`);");
    env.write(
        "jobs/long.rhai",
        "print(\"long started\"); sleep(\"60s\"); print(\"long done\");",
    );
    let schedule = env.write(
        "jobs/schedule.toml",
        r#"
grace = "10s"

[[job]]
name = "tick"
cron = "* * * * * *"
script = "tick.rhai"
args = { n = 7 }

[[job]]
name = "long"
cron = "* * * * * *"
script = "long.rhai"
timeout = "5m"
"#,
    );
    let mut child = env.opsh(["schedule"]).arg(&schedule).spawn();
    let lines = Lines::of(&mut child);
    let count = |s: &str| lines.count(s);
    eventually(secs(20), "three ticks and the long job", || {
        count("tick 7") >= 3 && count("long started") == 1
    });
    assert_eq!(
        count("long started"),
        1,
        "a running job is not started again"
    );
    let stopped = Instant::now();
    signal(&child, libc::SIGTERM);
    let r = wait_output(child);
    let took = stopped.elapsed();
    r.assert_code(0);
    assert!(took < Duration::from_secs(8), "stopped in {took:?}");
    assert_eq!(count("long done"), 0);
    for e in [
        "job started",
        "job finished",
        "previous run still going",
        "stopping",
        "scheduler stopped",
    ] {
        r.assert_stderr_contains(e);
    }
    // The long job got SIGTERM and ended as interrupted (130).
    r.assert_stderr_contains("exit=130");
    assert!(!env.path("xdgstate/opsh/locks/long.lock").exists());
}

#[test]
fn a_bad_schedule_is_a_usage_error() {
    let env = Env::new();
    let f = env.write(
        "s.toml",
        "[[job]]\ncron = \"61 * * * *\"\nscript = \"x.rhai\"\n",
    );
    env.opsh(["schedule"])
        .arg(&f)
        .run()
        .assert_code(64)
        .assert_stderr_contains("invalid cron expression");
}

#[test]
fn each_target_runs_once_per_matching_target_with_a_summary() {
    let sb = sandbox(&[Pg]);
    let pg = sb.pg();
    pg_exec(&pg.url(), "create database p1");
    pg_exec(&pg.url(), "create database p2");
    let env = Env::new();
    env.write_config(&format!(
        "[pg.prod-1]\nurl = \"{}\"\n[pg.prod-2]\nurl = \"{}\"\n[pg.prod-0]\nurl = \"postgres://nobody@127.0.0.1:1/x\"\n[pg.staging]\nurl = \"{}\"\n",
        pg.url_for("p1"),
        pg.url_for("p2"),
        pg.url()
    ));
    let script = "print(pg.query(\"select current_database() as d\")[0].d)";
    env.script(script)
        .option("--each-target", "pg:prod-*")
        .option("--concurrency", "2")
        .run()
        .assert_code(2)
        .assert_stdout_contains("[prod-1] p1")
        .assert_stdout_contains("[prod-2] p2")
        .assert_stdout_lacks("staging")
        .assert_stdout_contains("3 targets: 2 ok, 1 failed, 0 skipped")
        .assert_stderr_contains("[prod-0] error");

    // The failure budget: prod-0 (first, sorted) fails, nothing new starts.
    // The fleet's target wins over a --target of the same kind.
    env.script(script)
        .option("--each-target", "pg:prod-*")
        .option("--concurrency", "1")
        .option("--max-failures", "1")
        .option("--target", "pg=staging")
        .run()
        .assert_code(2)
        .assert_stdout_contains("3 targets: 0 ok, 1 failed, 2 skipped")
        .assert_stdout_lacks("[prod-1]");
    env.script(script)
        .option("--each-target", "pg:nothing-*")
        .run()
        .assert_code(64)
        .assert_stderr_contains("no configured pg target matches");

    // In a script: for_each_target builds on parallel.
    let r = env
        .script(
            r#"
        let rows = for_each_target("pg", "prod-*", |t| pg.connect(t).query("select current_database() as d")[0].d, #{concurrency: 3});
        for r in rows { print(`${r.item} ${r.ok} ${r.value}`); }
        print(targets("pg"));
        "#,
        )
        .run();
    r.assert_code(0);
    for e in [
        "prod-1 true p1",
        "prod-2 true p2",
        "prod-0 false",
        r#"["prod-0", "prod-1", "prod-2", "staging"]"#,
    ] {
        r.assert_stdout_contains(e);
    }
}

#[test]
fn json_logs_are_one_object_per_line_on_stderr() {
    let env = Env::new();
    let (hook, _) = receiver("200 OK");
    let r = env
        .script(&format!("http.post(\"{hook}\", #{{a: 1}}); fail(\"bad\")"))
        .option("--log-format", "json")
        .flag("-vv")
        .run();
    r.assert_code(1);
    let logs: Vec<Value> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let has = |level: &str, msg: &str| {
        logs.iter()
            .any(|l| l["level"] == level && l["message"] == msg)
    };
    assert!(has("INFO", "run started"), "{}", r.stderr);
    assert!(has("DEBUG", "call"), "{}", r.stderr);
    assert!(has("INFO", "mutation"), "{}", r.stderr);
    assert!(has("ERROR", "run failed"), "{}", r.stderr);
    assert!(!r.stderr.contains("\x1b["), "no colour without a TTY");
    // Default level: warn; nothing about a healthy run.
    env.script("print(1)")
        .run()
        .assert_code(0)
        .assert_stderr("");
    env.script("print(1)")
        .env("OPSH_LOG", "info")
        .run()
        .assert_code(0)
        .assert_stderr_contains("run started");
}

#[test]
fn exit_codes_are_documented_and_distinct() {
    let table = opsh::exit::TABLE;
    let mut codes: Vec<i32> = table.iter().map(|(c, _, _)| *c).collect();
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), table.len(), "codes are distinct");
    let reference = repo_file("docs/reference.md");
    let cron = repo_file("docs/cron.md");
    for (code, name, _) in table {
        assert!(
            reference.contains(&format!("| {code} | {name} |")),
            "reference.md lacks {code}"
        );
        assert!(
            cron.contains(&format!("| {code} |")),
            "cron.md lacks {code}"
        );
    }
    assert_eq!(opsh::exit::LOCKED, LOCKED);
    // Each code from a real run.
    let env = Env::new();
    env.script("print(1)").run().assert_code(0);
    env.script("fail(\"x\")").run().assert_code(1);
    env.script("throw \"x\"").run().assert_code(2);
    env.script("sleep(\"5s\")")
        .option("--timeout", "200ms")
        .run()
        .assert_code(124);
    env.opsh(["run"]).arg("--bogus").run().assert_code(64);
    env.opsh(["run"])
        .arg("-")
        .option("--lock", "../x")
        .run()
        .assert_code(2)
        .assert_stderr_contains("invalid lock name \"../x\"");
}

// --- docs/deploy and the Dockerfile: no YAML crate, a structural check ----

/// The literal block scalar under `key: |`, dedented.
fn block(doc: &str, key: &str) -> String {
    let lines: Vec<&str> = doc.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim_end().ends_with(&format!("{key}: |")))
        .unwrap_or_else(|| panic!("no block {key}"));
    let indent = lines[start].len() - lines[start].trim_start().len() + 2;
    lines[start + 1..]
        .iter()
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent)
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn deploy_manifests_are_well_formed_and_consistent() {
    let dir = repo_path("docs/deploy");
    let mut kinds = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.display().to_string();
        assert!(!text.contains('\t'), "{name}: tabs");
        let mut in_block: Option<usize> = None;
        for (i, l) in text.lines().enumerate() {
            let indent = l.len() - l.trim_start().len();
            if let Some(b) = in_block {
                if l.trim().is_empty() || indent > b {
                    continue;
                }
                in_block = None;
            }
            let t = l.trim();
            if t.is_empty() || t.starts_with('#') || t == "---" {
                continue;
            }
            assert!(indent % 2 == 0, "{name}:{}: odd indent", i + 1);
            let item = t.strip_prefix("- ").unwrap_or(t);
            assert!(
                item.contains(": ") || item.ends_with(':') || t.starts_with("- "),
                "{name}:{}: not `key: value`, `key:` or `- item`: {l}",
                i + 1
            );
            if t.ends_with(": |") {
                in_block = Some(indent);
            }
        }
        for doc in text.split("\n---\n") {
            let top: Vec<&str> = doc
                .lines()
                .filter(|l| !l.starts_with(' ') && !l.starts_with('#'))
                .collect();
            let kind = top
                .iter()
                .find_map(|l| l.strip_prefix("kind: "))
                .unwrap_or_else(|| panic!("{name}: a document without kind"));
            assert!(
                top.iter().any(|l| l.starts_with("apiVersion: ")),
                "{name}: {kind} without apiVersion"
            );
            assert!(
                top.contains(&"metadata:") && doc.contains("\n  name: "),
                "{name}: {kind} without metadata.name"
            );
            if kind != "Namespace" {
                assert!(
                    doc.contains("\n  namespace: opsh"),
                    "{name}: {kind} outside the opsh namespace"
                );
            }
            kinds.push(kind.to_string());
        }
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "ConfigMap",
            "CronJob",
            "Namespace",
            "Role",
            "RoleBinding",
            "Secret",
            "Secret",
            "Secret",
            "ServiceAccount"
        ]
    );

    let cron = repo_file("docs/deploy/cronjob.yaml");
    for e in [
        "concurrencyPolicy: Forbid",
        "serviceAccountName: opsh",
        "runAsNonRoot: true",
        "- run\n",
        "- scripts/daily_check.rhai\n",
        "readOnlyRootFilesystem: true",
    ] {
        assert!(cron.contains(e), "cronjob.yaml lacks {e:?}");
    }
    let rbac = repo_file("docs/deploy/rbac.yaml");
    assert!(
        !rbac.contains("\"*\"") && !rbac.contains("ClusterRole"),
        "least privilege"
    );
    for r in [
        "pods/log",
        "events",
        "deployments/scale",
        "horizontalpodautoscalers",
        "jobs",
        "cronjobs",
    ] {
        assert!(rbac.contains(&format!("\"{r}\"")), "rbac.yaml lacks {r}");
    }

    // Every secretKeyRef names a Secret and key that secrets.yaml defines.
    let secrets = repo_file("docs/deploy/secrets.yaml");
    let lines: Vec<&str> = cron.lines().map(str::trim).collect();
    let mut refs = 0;
    for (i, l) in lines.iter().enumerate() {
        if *l == "secretKeyRef:" {
            let sname = lines[i + 1].strip_prefix("name: ").unwrap();
            let key = lines[i + 2].strip_prefix("key: ").unwrap();
            let doc = secrets
                .split("\n---\n")
                .find(|d| d.contains(&format!("  name: {sname}\n")))
                .unwrap_or_else(|| panic!("no Secret {sname}"));
            assert!(
                doc.contains(&format!("\n  {key}: ")),
                "Secret {sname} has no key {key}"
            );
            refs += 1;
        }
    }
    assert_eq!(refs, 3);

    // The ConfigMap's config is a valid opsh config whose *_env variables the
    // CronJob sets, and its script compiles.
    let cm = repo_file("docs/deploy/configmap.yaml");
    let config = block(&cm, "config.toml");
    for var in config
        .lines()
        .filter_map(|l| l.split_once("_env = \""))
        .map(|(_, v)| v.trim_end_matches('"'))
    {
        assert!(
            cron.contains(&format!("- name: {var}\n")),
            "the CronJob does not set {var}"
        );
    }
    let env = Env::new();
    let cfg = env.write("deploy-config.toml", &config);
    env.script("print(targets(\"pg\")); print(targets(\"pushgateway\")); print(targets(\"kube\"))")
        .option("--config", cfg.to_str().unwrap())
        .run()
        .assert_code(0)
        .assert_stdout_contains("[\"main\"]\n[\"ops\"]\n[\"cluster\"]");
    let script = env.write("deploy/daily_check.rhai", &block(&cm, "daily_check.rhai"));
    env.opsh(["check"]).arg(&script).run().assert_code(0);

    let docker = repo_file("Dockerfile");
    assert_eq!(
        docker.lines().filter(|l| l.starts_with("FROM ")).count(),
        2,
        "multi-stage"
    );
    for e in [
        " AS builder",
        "COPY --from=builder",
        "USER 10001",
        "--locked",
        "COPY scripts ",
    ] {
        assert!(docker.contains(e), "Dockerfile lacks {e:?}");
    }
}

/// A suspend, simulated by SIGSTOP: the wall clock moves past a fire while
/// the scheduler is stopped. `skip` drops the missed fire, `run_once` runs it.
#[test]
fn missed_fires_follow_each_jobs_policy() {
    let env = Env::new();
    env.write("once.rhai", "print(\"once ran\");");
    env.write("skip.rhai", "print(\"skip ran\");");
    // One fire a minute, 2-3 s from now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let second = (now + 3) % 60;
    let schedule = env.write(
        "s.toml",
        &format!(
            "[[job]]\nname = \"once\"\ncron = \"{second} * * * * *\"\nscript = \"once.rhai\"\nmissed = \"run_once\"\n\n\
             [[job]]\nname = \"skip\"\ncron = \"{second} * * * * *\"\nscript = \"skip.rhai\"\nmissed = \"skip\"\n"
        ),
    );
    let mut child = env.opsh(["schedule"]).arg(&schedule).spawn();
    let lines = Lines::of(&mut child);
    std::thread::sleep(Duration::from_millis(1000));
    signal(&child, libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(6500));
    signal(&child, libc::SIGCONT);
    let count = |s: &str| lines.count(s);
    eventually(secs(10), "the run_once job", || count("once ran") == 1);
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, libc::SIGTERM);
    let r = wait_output(child);
    r.assert_code(0);
    assert_eq!(count("once ran"), 1);
    assert_eq!(count("skip ran"), 0, "{}", r.stderr);
    let missed: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("missed runs"))
        .collect();
    assert_eq!(missed.len(), 2, "{}", r.stderr);
    assert!(
        missed
            .iter()
            .any(|l| l.contains("job=skip") && l.contains("policy=Skip")),
        "{missed:?}"
    );
    assert!(
        missed
            .iter()
            .any(|l| l.contains("job=once") && l.contains("policy=RunOnce")),
        "{missed:?}"
    );
}

#[test]
fn refused_and_locked_runs_are_reported_too() {
    let env = Env::new();
    env.write_config(
        "[defaults]\npg = \"prod\"\n[pg.prod]\nurl = \"postgres://app:s3cret-pw@127.0.0.1:1/app\"\nprotected = true\n",
    );
    let report = env.path("r.json");
    let read = || -> Value { serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap() };
    // No TTY, no --yes: refused before anything is sent (port 1 is closed).
    env.script("pg.exec(\"delete from jobs\")")
        .option("--report", &report)
        .run()
        .assert_code(3);
    let v = read();
    assert_valid(&v);
    assert_eq!(v["status"], "refused");
    assert_eq!(v["mutations"][0]["primitive"], "pg.exec");
    assert_eq!(v["mutations"][0]["outcome"], "refused");
    assert!(!v.to_string().contains("s3cret-pw"), "{v}");

    // Held by a live process on this host (this test): locked, reported.
    hold_lock(&env, "busy", "long.rhai");
    env.script("print(1)")
        .option("--lock", "busy")
        .option("--report", &report)
        .run()
        .assert_code(LOCKED);
    let v = read();
    assert_valid(&v);
    assert_eq!(v["status"], "locked");
    assert_eq!(v["lock"], "busy");
    assert!(v["error"].as_str().unwrap().contains("long.rhai"), "{v:#}");
    assert!(
        lock_file(&env, "busy").exists(),
        "a held lock is left alone"
    );
}
