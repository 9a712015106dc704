use crate::support::*;

fn redis_int(url: &str, args: &[&str]) -> i64 {
    let client = ::redis::Client::open(url).expect("client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let mut c = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        let mut cmd = ::redis::cmd(args[0]);
        cmd.arg(&args[1..]);
        cmd.query_async(&mut c).await.expect("cmd")
    })
}

fn redis_cmd(url: &str, args: &[&str]) -> String {
    let client = ::redis::Client::open(url).expect("client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let mut c = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        let mut cmd = ::redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        let v: ::redis::Value = cmd.query_async(&mut c).await.expect("cmd");
        format!("{v:?}")
    })
}

#[test]
fn info_is_parsed_and_matches_the_server() {
    let sb = sandbox(false, true);
    let url = sb.redis.as_ref().unwrap().url();
    for k in ["a", "b", "c"] {
        redis_cmd(&url, &["SET", k, "1"]);
    }
    redis_cmd(&url, &["EXPIRE", "a", "1000"]);
    let env = Env::new();
    let r = env.run(
        r#"
        let ks = redis.info("keyspace");
        print(ks.db0.keys);
        print(ks.db0.expires);
        let all = redis.info();
        print(type_of(all.server.uptime_in_seconds));
        print(all.server.tcp_port);
        print(type_of(all.memory.mem_fragmentation_ratio));
        print(redis.ping() >= 0.0);
        "#,
        &[],
        &[("REDIS_URL", &url)],
    );
    r.assert_code(0);
    let port = sb.redis.as_ref().unwrap().port;
    assert_eq!(
        r.stdout,
        format!("3\n1\ni64\n{port}\nf64\ntrue\n"),
        "{}",
        r.stderr
    );
}

#[test]
fn unreachable_redis_is_a_clear_error() {
    let env = Env::new();
    let port = opsh::sandbox::free_port().unwrap();
    let r = env.run(
        "redis.ping()",
        &[],
        &[("REDIS_URL", &format!("redis://127.0.0.1:{port}"))],
    );
    r.assert_code(2);
    assert!(r.stderr.contains("redis.ping failed"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("is Redis running on 127.0.0.1:{port}?")),
        "{}",
        r.stderr
    );
}

#[test]
fn hit_rate_and_keys_match_the_server() {
    let sb = sandbox(false, true);
    let url = sb.redis.as_ref().unwrap().url();
    let env = Env::new();
    let r = env.run(
        "let h = redis.hit_rate(); print(h.ratio == ()); print(h.note != ());",
        &[],
        &[("REDIS_URL", &url)],
    );
    r.assert_code(0);
    assert_eq!(r.stdout, "true\ntrue\n");
    redis_cmd(&url, &["SET", "user:1", "a"]);
    redis_cmd(&url, &["SET", "user:2", "b"]);
    redis_cmd(&url, &["SET", "other", "c"]);
    for k in ["user:1", "user:1", "user:2", "nope:1"] {
        redis_cmd(&url, &["GET", k]);
    }
    let r = env.run(
        r#"
        let h = redis.hit_rate(); print(h.hits); print(h.misses); print(h.ratio);
        print(redis.scan(#{pattern: "user:*"}).len());
        print(redis.get("user:1")); print(redis.get("missing") == ()); print(redis.exists("other")); print(redis.type("other")); print(redis.ttl("other"));
        print(redis.keyspace()[0].keys);
        print(redis.memory().used > 0);
        "#,
        &[],
        &[("REDIS_URL", &url)],
    );
    r.assert_code(0);
    // The script's own GETs count too: after the 3 hits / 1 miss above,
    // hit_rate reads the stats before them.
    assert_eq!(
        r.stdout, "3\n1\n0.75\n2\na\ntrue\ntrue\nstring\n-1\n3\ntrue\n",
        "{}",
        r.stderr
    );
}

#[test]
fn set_del_and_del_matching_with_dry_run_and_max() {
    let sb = sandbox(false, true);
    let url = sb.redis.as_ref().unwrap().url();
    for i in 0..30 {
        redis_cmd(&url, &["SET", &format!("cache:{i}"), "x"]);
    }
    redis_cmd(&url, &["SET", "keep", "y"]);
    let env = Env::new();
    let r = env.run(
        r#"let p = redis.del_matching("cache:*"); print(p.count); print(p.sample.len());"#,
        &["--dry-run"],
        &[("REDIS_URL", &url)],
    );
    r.assert_code(0);
    assert_eq!(r.stdout, "30\n10\n");
    assert_eq!(redis_int(&url, &["DBSIZE"]), 31);
    let r = env.run(
        r#"redis.del_matching("cache:*", #{max: 10})"#,
        &[],
        &[("REDIS_URL", &url)],
    );
    r.assert_code(3);
    assert!(r.stderr.contains("more than 10 keys match"), "{}", r.stderr);
    assert_eq!(redis_int(&url, &["DBSIZE"]), 31);
    let r = env.run(r#"print(redis.del_matching("cache:*").deleted); print(redis.set("k2", 5, #{ttl: "1h"}).previous_type); print(redis.ttl("k2") > 3000); print(redis.del(["keep", "nope"]));"#, &[], &[("REDIS_URL", &url)]);
    r.assert_code(0);
    assert_eq!(r.stdout, "30\nnone\ntrue\n1\n");
    assert_eq!(
        redis_int(&url, &["DBSIZE"]),
        1,
        "{}",
        redis_cmd(&url, &["DBSIZE"])
    );
    let audit = env.audit();
    assert!(audit
        .iter()
        .any(|a| a["primitive"] == "redis.del_matching" && a["outcome"] == "ok"));
}

#[test]
fn flushdb_needs_a_named_db_and_empties_only_that_one() {
    let sb = sandbox(false, true);
    let base = sb.redis.as_ref().unwrap().url();
    let db2 = base.replace("/0", "/2");
    redis_cmd(&base, &["SET", "a", "1"]);
    redis_cmd(&db2, &["SET", "b", "1"]);
    redis_cmd(&db2, &["SET", "c", "1"]);
    let env = Env::new();
    let r = env.run("redis.flushdb(#{})", &[], &[("REDIS_URL", &base)]);
    r.assert_code(2);
    assert!(r.stderr.contains("named explicitly"), "{}", r.stderr);
    let r = env.run(
        "let p = redis.flushdb(#{db: 2}); print(p.keys);",
        &["--dry-run"],
        &[("REDIS_URL", &base)],
    );
    r.assert_code(0);
    assert_eq!(r.stdout, "2\n");
    assert_eq!(redis_int(&db2, &["DBSIZE"]), 2);
    let r = env.run(
        "print(redis.flushdb(#{db: 2}).deleted);",
        &[],
        &[("REDIS_URL", &base)],
    );
    r.assert_code(0);
    assert_eq!(r.stdout, "2\n");
    assert_eq!(redis_int(&db2, &["DBSIZE"]), 0);
    assert_eq!(redis_int(&base, &["DBSIZE"]), 1, "db 0 must be untouched");
}

#[test]
fn server_killed_mid_run_is_a_clear_error() {
    let mut sb = sandbox(false, true);
    let url = sb.redis.as_ref().unwrap().url();
    let env = Env::new();
    let f = env.write(
        "k.rhai",
        "print(redis.ping() >= 0.0);\nsleep(\"1s\");\nredis.info();\n",
    );
    let child = env.spawn(&["run", f.to_str().unwrap()], &[("REDIS_URL", &url)]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    sb.redis.as_mut().unwrap().stop();
    let r = wait_output(child);
    r.assert_code(2);
    assert!(r.stderr.contains("redis.info failed"), "{}", r.stderr);
    assert!(r.stderr.contains("k.rhai:3:7"), "{}", r.stderr);
}
