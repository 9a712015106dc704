//! grafana.annotate, pagerduty, `--notify` to PagerDuty and `opsh
//! timeline`. Grafana and PagerDuty are not packaged for Debian: they are
//! recorders (support/recorder.rs) that refuse what their documented APIs
//! refuse, so the tests check the requests opsh really sends.

use crate::support::*;
use serde_json::json;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `opsh: run ID wrote ...` on stderr: the id.
fn run_id(stderr: &str) -> String {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("opsh: run "))
        .unwrap_or_else(|| panic!("no run id line in {stderr}"));
    line["opsh: run ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn grafana_annotate_sends_the_documented_request_as_an_audited_mutation() {
    let g = recorder::grafana("glsa_s3cret_token");
    let env = Env::new();
    let script = r#"
        let a = grafana.annotate("rolled api back to 41", #{tags: ["rollback", "api"], dashboard_uid: "LydianIQProd",
                                                           panel_id: 4, time: "2m", time_end: "now"});
        if "dry_run" in a { print("planned") } else { print(`id=${a.id} message=${a.message}`) }
    "#;
    let run = || {
        env.script(script)
            .env("GRAFANA_URL", g.url())
            .env("GRAFANA_TOKEN", "glsa_s3cret_token")
    };
    // Dry run: nothing is posted; the plan says what would be.
    run()
        .flag("--dry-run")
        .run()
        .assert_code(0)
        .assert_stdout("planned\n")
        .assert_stderr_contains("[dry-run] grafana.annotate")
        .assert_stderr_contains("would annotate panel 4 of dashboard LydianIQProd");
    assert!(g.requests().is_empty());
    let before = now_ms();
    run()
        .run()
        .assert_code(0)
        .assert_stdout("id=1 message=Annotation added\n")
        .assert_output_lacks("glsa_s3cret_token");
    let reqs = g.requests();
    assert_eq!(reqs.len(), 1);
    let b = &reqs[0].body;
    assert_eq!(b["text"], "rolled api back to 41");
    assert_eq!(b["tags"], json!(["rollback", "api"]));
    assert_eq!(b["dashboardUID"], "LydianIQProd");
    assert_eq!(b["panelId"], 4);
    let (t, te) = (b["time"].as_i64().unwrap(), b["timeEnd"].as_i64().unwrap());
    assert!((te - t - 120_000).abs() < 2_000, "{b}");
    assert!((te - before).abs() < 60_000, "{b}");
    let audit = env.audit();
    assert!(audit.iter().any(|a| a["primitive"] == "grafana.annotate"
        && a["phase"] == "outcome"
        && a["outcome"] == "ok"));
    assert!(!env.audit_text().contains("glsa_s3cret_token"));

    // A wrong token: Grafana's answer, and what to check.
    env.script(r#"grafana.annotate("x")"#)
        .env("GRAFANA_URL", g.url())
        .env("GRAFANA_TOKEN", "wrong")
        .run()
        .assert_code(2)
        .assert_stderr_contains("Grafana answered HTTP 401")
        .assert_stderr_contains("Unauthorized");
    // Checked before anything is sent.
    env.script(r#"grafana.annotate("x", #{panel_id: 3})"#)
        .env("GRAFANA_URL", g.url())
        .run()
        .assert_code(2)
        .assert_stderr_contains("panel_id needs a dashboard_uid");
    // A protected Grafana asks first; without a terminal it refuses.
    let cfg = env.write_config(&format!(
        "[grafana.prod]\nurl = \"{}\"\nbearer_env = \"GF_TOKEN\"\nprotected = true\n[defaults]\ngrafana = \"prod\"\n",
        g.url()
    ));
    env.script(r#"grafana.annotate("deploy 1.5.0")"#)
        .option("--config", &cfg)
        .env("GF_TOKEN", "glsa_s3cret_token")
        .run()
        .assert_code(3)
        .assert_stderr_contains("protected target prod");
    // The annotation and the 401; nothing for the panel_id mistake.
    assert_eq!(g.requests().len(), 2);
    env.script(r#"print(grafana.annotate("deploy 1.5.0").id)"#)
        .option("--config", &cfg)
        .env("GF_TOKEN", "glsa_s3cret_token")
        .flag("--yes")
        .run()
        .assert_code(0)
        .assert_stdout("2\n");
    assert_eq!(g.requests()[2].body["tags"], json!([]));
    assert_eq!(g.requests().len(), 3);
}

#[test]
fn pagerduty_reads_incidents_and_writes_notes_with_the_rest_headers() {
    let pd = recorder::pagerduty("u+pd_s3cret");
    let env = Env::new();
    fn with<'a>(o: Opsh<'a>, url: &str) -> Opsh<'a> {
        o.env("PAGERDUTY_URL", url)
            .env("PAGERDUTY_TOKEN", "u+pd_s3cret")
    }
    let url = pd.url();
    with(env.script(
        r#"let i = pagerduty.incident("Q1ABCDEF");
           print(`${i.number} ${i.title} ${i.status} ${i.service} ${i.assignees}`);
           let n = pagerduty.note("Q1ABCDEF", "opsh: scaled api to 6");
           print(`${n.id} ${n.incident}`);"#,
    ), &url)
    .env("PAGERDUTY_FROM", "oncall@example.com")
    .run()
    .assert_code(0)
    .assert_stdout("1234 API error rate over 10% acknowledged lydian-iq API [\"Ada Oncall\"]\nPNOTE1 Q1ABCDEF\n")
    .assert_output_lacks("u+pd_s3cret");
    let reqs = pd.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].header("from"), Some("oncall@example.com"));
    assert_eq!(
        reqs[1].body,
        json!({"note": {"content": "opsh: scaled api to 6"}})
    );
    // No author: said before anything is sent.
    with(env.script(r#"pagerduty.note("Q1ABCDEF", "x")"#), &url)
        .run()
        .assert_code(2)
        .assert_stderr_contains("PAGERDUTY_FROM");
    // PagerDuty's own error, and a hint.
    with(env.script(r#"pagerduty.incident("QNOPE")"#), &url)
        .run()
        .assert_code(2)
        .assert_stderr_contains("PagerDuty answered HTTP 404")
        .assert_stderr_contains("no such incident");
    with(env.script(r#"pagerduty.incident("Q1ABCDEF")"#), &url)
        .env("PAGERDUTY_TOKEN", "wrong")
        .run()
        .assert_code(2)
        .assert_stderr_contains("Unauthorized (code 2006)");
    assert_eq!(pd.requests().len(), 4);
}

#[test]
fn notify_pagerduty_triggers_one_alert_per_script_and_target_and_resolves_it() {
    let pd = recorder::pagerduty("unused");
    let env = Env::new();
    let cfg = env.write_config(&format!(
        "[notify.pd]\npagerduty_routing_key_env = \"PD_ROUTING\"\npagerduty_events_url = \"{}/v2/enqueue\"\n",
        pd.url()
    ));
    let job = env.write(
        "nightly_backup.rhai",
        "if args.fail { fail(\"dump of app failed\") }",
    );
    let run = |fail: bool| {
        env.opsh(["run"])
            .arg(&job)
            .script_arg("fail", fail)
            .option("--config", &cfg)
            .option("--notify", "pd")
            .option("--notify-on", "always")
            .env("PD_ROUTING", "R0UT1NGKEY0123456789")
            .run()
    };
    run(true)
        .assert_code(1)
        .assert_output_lacks("R0UT1NGKEY0123456789");
    run(true).assert_code(1);
    run(false).assert_code(0);
    let reqs = pd.requests();
    let actions: Vec<&str> = reqs
        .iter()
        .map(|r| r.body["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["trigger", "trigger", "resolve"]);
    let key = reqs[0].body["dedup_key"].as_str().unwrap();
    assert!(key.starts_with("opsh/nightly_backup/"), "{key}");
    assert!(reqs.iter().all(|r| r.body["dedup_key"] == key));
    let p = &reqs[0].body["payload"];
    assert!(
        p["summary"].as_str().unwrap().contains("nightly_backup"),
        "{p}"
    );
    assert_eq!(p["severity"], "error");
    assert_eq!(p["custom_details"]["error"], "dump of app failed");
    assert!(!env.audit_text().contains("R0UT1NGKEY0123456789"));

    // What a run does after it ends is audited under its id: its timeline
    // has its own change and the page it sent.
    let job = env.write(
        "mitigate.rhai",
        r#"notify.pagerduty("acknowledge", env("PD_ROUTING"), #{dedup_key: "opsh/other", events_url: args.url}); fail("still broken")"#,
    );
    let r = env
        .opsh(["run"])
        .arg(&job)
        .script_arg("url", format!("{}/v2/enqueue", pd.url()))
        .option("--config", &cfg)
        .option("--notify", "pd")
        .env("PD_ROUTING", "R0UT1NGKEY0123456789")
        .run();
    r.assert_code(1);
    let id = run_id(&r.stderr);
    let tl = env.opsh(["timeline", &id, "--output", "json"]).run();
    tl.assert_code(0);
    let events = tl.json()["events"].as_array().unwrap().clone();
    let outcomes: Vec<&str> = events
        .iter()
        .filter(|e| e["phase"] == "outcome")
        .map(|e| e["primitive"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["notify.pagerduty", "notify.pagerduty"],
        "{events:?}"
    );
    assert_eq!(
        pd.requests().last().unwrap().body["event_action"],
        "trigger"
    );
}

#[test]
fn timeline_renders_runs_as_text_markdown_json_and_posts_them_to_pagerduty() {
    let g = recorder::grafana("glsa_tl");
    let pd = recorder::pagerduty("pd_tl");
    let env = Env::new();
    let cfg = env.write_config(&format!(
        "[grafana.prod]\nurl = \"{}\"\nbearer_env = \"GF_TOKEN\"\nprotected = true\n",
        g.url()
    ));
    let annotate = |flags: &[&str]| {
        let mut o = env
            .script(r#"grafana.annotate("mitigation: scaled api to 6", #{tags: ["mitigation"]});"#)
            .named("mitigate.rhai")
            .option("--config", &cfg)
            .option("--target", "grafana=prod")
            .env("GF_TOKEN", "glsa_tl");
        for f in flags {
            o = o.flag(f);
        }
        o.run()
    };
    let planned = annotate(&["--dry-run"]);
    planned.assert_code(0);
    let refused = annotate(&[]);
    refused.assert_code(3);
    let done = annotate(&["--yes"]);
    done.assert_code(0);
    let id = run_id(&done.stderr);
    assert_eq!(id.len(), 16, "{}", done.stderr);
    // A read-only run has nothing to say: no id line.
    let quiet = env.script("print(1)").run();
    assert!(!quiet.stderr.contains("opsh: run"), "{}", quiet.stderr);

    let md = env
        .opsh(["timeline", &id[..8], "--format", "markdown"])
        .run();
    md.assert_code(0)
        .assert_stdout_contains("## Timeline (from the opsh audit log)")
        .assert_stdout_contains(&format!("### Run `{id}`: "))
        .assert_stdout_contains("mitigate.rhai\n")
        .assert_stdout_contains("- **Outcome**: 1 change made")
        .assert_stdout_contains("| about to change | `grafana.annotate` |")
        .assert_stdout_contains("| changed | `grafana.annotate` |")
        .assert_output_lacks("glsa_tl");
    let all = env
        .opsh(["timeline", "--since", "1h", "--output", "json"])
        .run();
    all.assert_code(0);
    let runs = all.json_lines();
    let summaries: Vec<&str> = runs
        .iter()
        .map(|r| r["summary"].as_str().unwrap())
        .collect();
    // The refused run only has records when this opsh audits refusals.
    assert_eq!(
        summaries.first(),
        Some(&"1 change planned (dry run)"),
        "{summaries:?}"
    );
    assert_eq!(summaries.last(), Some(&"1 change made"), "{summaries:?}");
    assert!(runs
        .iter()
        .all(|r| r["script"].as_str().unwrap().ends_with("mitigate.rhai")));
    let text = env.opsh(["timeline", &id]).run();
    text.assert_code(0)
        .assert_stdout_contains(&format!("run {id}  "))
        .assert_stdout_contains("mitigate.rhai  by ")
        .assert_stdout_contains("changed            grafana.annotate on prod");
    env.opsh(["timeline", "ffffffffffff"])
        .run()
        .assert_code(2)
        .assert_stderr_contains("no run ffffffffffff");

    // Posted as an incident note, one per run, through dispatch.
    let post = |flags: &[&str]| {
        let mut o = env
            .opsh(["timeline", &id, "--incident", "Q1ABCDEF"])
            .env("PAGERDUTY_URL", pd.url())
            .env("PAGERDUTY_TOKEN", "pd_tl")
            .env("PAGERDUTY_FROM", "oncall@example.com");
        for f in flags {
            o = o.flag(f);
        }
        o.run()
    };
    post(&["--dry-run"])
        .assert_code(0)
        .assert_stderr_contains("[dry-run] pagerduty.note");
    assert!(pd.requests().is_empty());
    post(&[])
        .assert_code(0)
        .assert_stderr_contains("posted run");
    let notes = pd.requests();
    assert_eq!(notes.len(), 1);
    let content = notes[0].body["note"]["content"].as_str().unwrap();
    assert!(
        content.contains(&format!("run {id}")) && content.contains("grafana.annotate"),
        "{content}"
    );
    assert!(env
        .audit()
        .iter()
        .any(|a| a["primitive"] == "pagerduty.note" && a["outcome"] == "ok"));
}
