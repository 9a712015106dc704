//! `pg.replication()` on a real primary and its hot standby (a base backup
//! streaming from it over a physical slot), with replay paused on the
//! standby so that lag is real, measurable, and then caught up.

use crate::support::*;

/// Replication moves on the servers' schedule: up to 20 s.
#[track_caller]
fn wait_until(what: &str, f: impl FnMut() -> bool) {
    eventually(secs(20), what, f);
}

#[test]
fn replication_reports_replicas_slots_and_lag_on_both_sides() {
    let sb = sandbox(&[Pg]);
    let primary = sb.pg();
    let env = Env::new();
    let standby = primary
        .start_standby(&env.path("standby"), "replica1")
        .unwrap_or_else(|e| panic!("standby did not start: {e}"));
    let (p_url, s_url) = (primary.url(), standby.url());
    pg_exec(&p_url, "create table t(id int)");
    wait_until("the standby to stream", || {
        pg_scalar(
            &p_url,
            "select count(*) from pg_stat_replication where state = 'streaming'",
        ) == 1
    });

    let show = r#"
        let r = pg.replication();
        print(`in_recovery ${r.in_recovery}`);
        for x in r.replicas { print(`replica ${x.application} ${x.state} ${x.sync_state} lag ${x.lag_bytes}`); }
        for s in r.slots { print(`slot ${s.slot} ${s.slot_type} active ${s.active} retained ${s.retained_bytes > 0}`); }
        if r.standby != () { print(`standby ${r.standby.receiver_status} from ${r.standby.sender_host} lag ${r.standby.replay_lag_bytes}`); }
    "#;
    let on = |url: &str| {
        let r = env.script(show).pg(url).run();
        r.assert_code(0);
        r.stdout
    };

    // Caught up: the primary sees one streaming replica and its active slot.
    wait_until("the standby to replay the table", || {
        pg_scalar(&s_url, "select count(*) from pg_class where relname = 't'") == 1
    });
    let out = on(&p_url);
    assert!(out.contains("in_recovery false"), "{out}");
    assert!(out.contains("replica replica1 streaming async"), "{out}");
    assert!(
        out.contains("slot standby_replica1 physical active true"),
        "{out}"
    );
    let out = on(&s_url);
    assert!(out.contains("in_recovery true"), "{out}");
    assert!(out.contains("standby streaming from 127.0.0.1"), "{out}");
    assert!(
        !out.contains("replica "),
        "a standby has no replicas: {out}"
    );

    // Replay paused: WAL still arrives, so both sides report lag in bytes.
    pg_exec(&s_url, "select pg_wal_replay_pause()");
    pg_exec(&p_url, "insert into t select generate_series(1, 50000)");
    wait_until("the paused standby to receive the insert", || {
        pg_scalar(
            &s_url,
            "select pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::int8",
        ) > 100_000
    });
    let lag = |out: &str, prefix: &str| -> i64 {
        out.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no `{prefix}` line in {out}"))
    };
    let out = on(&s_url);
    assert!(lag(&out, "standby ") > 100_000, "{out}");
    let out = on(&p_url);
    assert!(lag(&out, "replica ") > 100_000, "{out}");

    // The daily check sees the same lag and fails on it (0.05 MiB here).
    let daily = repo_path("scripts/daily_check.rhai");
    let daily = || {
        env.opsh(["run", &daily, "--only", "pg re*"])
            .script_arg("skip_redis", true)
    };
    let r = daily().script_arg("max_lag_mb", 0.05).pg(&p_url).run();
    r.assert_code(1);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("pg replication lag (MiB)")
                && l.contains("FAIL")
                && l.contains("1 replicas streaming")),
        "{}",
        r.stdout
    );
    daily()
        .pg(&s_url)
        .run()
        .assert_code(0)
        .assert_stdout_contains("standby of 127.0.0.1");

    // Resumed: the lag drains to zero on both sides.
    pg_exec(&s_url, "select pg_wal_replay_resume()");
    wait_until("replay to catch up", || {
        pg_scalar(&s_url, "select count(*) from t") == 50_000
    });
    wait_until("the primary to see the replica caught up", || {
        lag(&on(&p_url), "replica ") == 0
    });
    assert_eq!(lag(&on(&s_url), "standby "), 0);
}
