use crate::support::*;

fn redis_int(url: &str, args: &[&str]) -> i64 {
    redis_query(url, args)
}

fn redis_text(url: &str, args: &[&str]) -> String {
    redis_query(url, args)
}

fn redis_cmd(url: &str, args: &[&str]) -> String {
    format!("{:?}", redis_query::<::redis::Value>(url, args))
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

#[test]
fn clients_slowlog_config_biggest_and_expire() {
    let sb = sandbox(false, true);
    let url = sb.redis.as_ref().unwrap().url();
    redis_cmd(&url, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    redis_cmd(&url, &["SET", "big", &"x".repeat(100_000)]);
    redis_cmd(&url, &["SET", "small", "y"]);
    redis_cmd(&url, &["SET", "temp", "z"]);
    let env = Env::new();
    let r = env.run(
        r#"
        let me = redis.clients().filter(|c| c.cmd == "client|list");
        print(me.len()); print(type_of(me[0].idle));
        let slow = redis.slowlog(50).filter(|e| e.command.starts_with("SET big"));
        print(slow.len()); print(type_of(slow[0].duration_us));
        print(redis.config_get("slowlog-log-slower-than")["slowlog-log-slower-than"]);
        let b = redis.biggest(#{top: 1}); print(b[0].key); print(b[0].bytes > 100000);
        print(redis.replication().role);
        print(redis.expire("temp", "10m")); print(redis.expire("nope", 5));
        let p = redis.config_set("maxmemory-policy", "allkeys-lru"); print(p.previous);
        "#,
        &[],
        &[("REDIS_URL", &url)],
    );
    r.assert_code(0);
    assert_eq!(
        r.stdout, "1\ni64\n1\ni64\n0\nbig\ntrue\nmaster\ntrue\nfalse\nnoeviction\n",
        "{}",
        r.stderr
    );
    assert!(redis_int(&url, &["TTL", "temp"]) > 500);
    assert!(redis_cmd(&url, &["CONFIG", "GET", "maxmemory-policy"]).contains("allkeys-lru"));
    // Dry-run shows the current value and changes nothing.
    let r = env.run(
        r#"redis.config_set("maxmemory-policy", "volatile-lru")"#,
        &["--dry-run"],
        &[("REDIS_URL", &url)],
    );
    r.assert_code(0);
    assert!(
        r.stderr.contains("from `allkeys-lru` to `volatile-lru`"),
        "{}",
        r.stderr
    );
    assert!(redis_cmd(&url, &["CONFIG", "GET", "maxmemory-policy"]).contains("allkeys-lru"));
}

#[test]
fn reconnect_stays_on_the_pinned_db() {
    let sb = sandbox(false, true);
    let base = sb.redis.as_ref().unwrap().url();
    let db3 = base.replace("/0", "/3");
    redis_cmd(&base, &["SET", "k", "db0"]);
    redis_cmd(&db3, &["SET", "k", "db3"]);
    let env = Env::new();
    let f = env.write(
        "pin.rhai",
        "print(redis.get(\"k\"));\nsleep(\"1s\");\nprint(redis.get(\"k\"));\n",
    );
    let mut child = env.spawn(&["run", f.to_str().unwrap()], &[("REDIS_URL", &db3)]);
    let stdout = child.stdout.take().unwrap();
    let mut reader = std::io::BufReader::new(stdout);
    let mut first = String::new();
    std::io::BufRead::read_line(&mut reader, &mut first).unwrap();
    assert_eq!(first.trim(), "db3");
    // Kill every other client connection: opsh's connection breaks.
    redis_cmd(
        &base,
        &["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"],
    );
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    let out = wait_output(child);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        rest.trim(),
        "db3",
        "after the reconnect opsh must still be on db 3"
    );
}

#[test]
fn parallel_fans_out_with_per_target_errors() {
    let servers: Vec<_> = (0..4).map(|_| sandbox(false, true)).collect();
    let mut urls: Vec<String> = servers
        .iter()
        .map(|s| s.redis.as_ref().unwrap().url())
        .collect();
    let dead = opsh::sandbox::free_port().unwrap();
    urls.push(format!("redis://127.0.0.1:{dead}/0"));
    let list = urls
        .iter()
        .map(|u| format!("\"{u}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let env = Env::new();
    let r = env.run(
        &format!(
            r#"
            let r = parallel([{list}], |u| redis.connect(u).info("server").tcp_port, #{{concurrency: 3}});
            for row in r {{ print(`${{row.ok}} ${{row.value}}`); }}
            print(r[4].error);
            "#
        ),
        &[],
        &[],
    );
    r.assert_code(0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    for (i, s) in servers.iter().enumerate() {
        assert_eq!(lines[i], format!("true {}", s.redis.as_ref().unwrap().port));
    }
    assert_eq!(lines[4], "false ");
    assert!(lines[5].contains("cannot talk to"), "{}", r.stdout);
}

#[test]
fn rediss_tls_target_works() {
    let env = Env::new();
    let (cert, key) = (env.path("cert.pem"), env.path("key.pem"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(ok.success());
    let dir = env.path("redis-tls");
    let server = opsh::sandbox::RedisServer::start_tls(&dir, &cert, &key).expect("TLS redis");
    let url = server.url();
    assert!(url.starts_with("rediss://"));
    // A self-signed certificate: verification must fail by default...
    let r = env.run("redis.ping()", &[], &[("REDIS_URL", &url)]);
    r.assert_code(2);
    // ...and work when the operator opts out explicitly.
    let r = env.run(
        "print(redis.info(\"server\").tcp_port); redis.ping();",
        &[],
        &[("REDIS_URL", &format!("{url}#insecure"))],
    );
    r.assert_code(0);
    assert_eq!(r.stdout.trim(), server.port.to_string(), "{}", r.stderr);
    // The port speaks only TLS: plain redis:// cannot talk to it.
    let plain = url.replace("rediss://", "redis://");
    env.run(
        "redis.ping()",
        &["--call-timeout", "1s"],
        &[("REDIS_URL", &plain)],
    )
    .assert_code(2);
}

#[test]
fn protected_redis_target_refuses_without_yes() {
    let sb = sandbox(false, true);
    let url = sb.redis.as_ref().unwrap().url();
    redis_cmd(&url, &["SET", "a", "1"]);
    let env = Env::new();
    env.write_config(&format!(
        "[redis.cache]\nurl = \"{url}\"\nprotected = true\n"
    ));
    let script = r#"redis.connect("cache").flushdb(#{db: 0})"#;
    let r = env.run(script, &[], &[]);
    r.assert_code(3);
    assert!(r.stderr.contains("protected target cache"), "{}", r.stderr);
    assert_eq!(redis_int(&url, &["DBSIZE"]), 1);
    env.run(script, &["--yes"], &[]).assert_code(0);
    assert_eq!(redis_int(&url, &["DBSIZE"]), 0);
}

#[test]
fn acl_user_and_wrong_password() {
    let sb = sandbox(false, true);
    let url = sb.redis.as_ref().unwrap().url();
    let port = sb.redis.as_ref().unwrap().port;
    redis_cmd(
        &url,
        &[
            "ACL",
            "SETUSER",
            "ops",
            "on",
            ">Ops-Secret-77",
            "~*",
            "+@all",
        ],
    );
    let env = Env::new();
    let good = format!("redis://ops:Ops-Secret-77@127.0.0.1:{port}/0");
    let r = env.run(
        "print(redis.info(\"clients\").connected_clients >= 1)",
        &[],
        &[("REDIS_URL", &good)],
    );
    r.assert_code(0);
    let bad = format!("redis://ops:Wrong-Secret-99@127.0.0.1:{port}/0");
    let r = env.run("redis.ping()", &[], &[("REDIS_URL", &bad)]);
    r.assert_code(2);
    assert!(
        r.stderr.contains("check the user and password"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("Wrong-Secret-99") && !r.stdout.contains("Wrong-Secret-99"),
        "{}",
        r.stderr
    );
}

#[test]
fn sentinel_url_reaches_the_master() {
    let sb = sandbox(false, true);
    let master = sb.redis.as_ref().unwrap();
    let db2 = master.url().replace("/0", "/2");
    redis_cmd(&db2, &["SET", "where", "master-db2"]);
    let env = Env::new();
    let sentinel =
        opsh::sandbox::RedisServer::start_sentinel(&env.path("sentinel"), "mymaster", master.port)
            .expect("sentinel");
    let url = format!("redis+sentinel://127.0.0.1:{}/mymaster/2", sentinel.port);
    let r = env.run("print(redis.info(\"server\").tcp_port); print(redis.get(\"where\")); print(redis.ping() >= 0.0);", &[], &[("REDIS_URL", &url)]);
    r.assert_code(0);
    assert_eq!(
        r.stdout,
        format!("{}\nmaster-db2\ntrue\n", master.port),
        "{}",
        r.stderr
    );
    let r = env.run(
        "redis.ping()",
        &[],
        &[(
            "REDIS_URL",
            &format!("redis+sentinel://127.0.0.1:{}/nosuch", sentinel.port),
        )],
    );
    r.assert_code(2);
}

#[test]
fn cluster_ping_and_info_fan_out_over_every_node() {
    let env = Env::new();
    let nodes: Vec<_> = (0..3)
        .map(|i| {
            opsh::sandbox::RedisServer::start_cluster_node(&env.path(&format!("node{i}")))
                .expect("cluster node")
        })
        .collect();
    let ranges = [("0", "5460"), ("5461", "10922"), ("10923", "16383")];
    for (n, (a, b)) in nodes.iter().zip(ranges) {
        redis_cmd(&n.url(), &["CLUSTER", "ADDSLOTSRANGE", a, b]);
    }
    for n in &nodes[1..] {
        redis_cmd(
            &nodes[0].url(),
            &["CLUSTER", "MEET", "127.0.0.1", &n.port.to_string()],
        );
    }
    // Gossip takes a moment: wait until the seed knows all three nodes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let settled = |text: &str| {
        let masters: Vec<&str> = text.lines().filter(|l| l.contains("master")).collect();
        masters.len() == 3
            && masters.iter().all(|l| {
                l.contains(" connected")
                    && !l.contains("handshake")
                    && !l.contains("fail")
                    && !l.contains("noaddr")
            })
    };
    while !settled(&redis_text(&nodes[0].url(), &["CLUSTER", "NODES"])) {
        assert!(std::time::Instant::now() < deadline, "cluster did not form");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let url = format!("redis+cluster://127.0.0.1:{}", nodes[0].port);
    let r = env.run(
        "let i = redis.info(\"server\"); for k in i.keys() { print(`${k} ${i[k].tcp_port}`); } print(redis.ping() >= 0.0);",
        &[],
        &[("REDIS_URL", &url)],
    );
    r.assert_code(0);
    let mut want: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{0} {0}", n.port))
        .collect();
    want.sort();
    let mut got: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(got.pop(), Some("true"));
    got.sort();
    assert_eq!(got, want, "{}", r.stderr);
    let r = env.run("redis.get(\"k\")", &[], &[("REDIS_URL", &url)]);
    r.assert_code(2);
    assert!(r.stderr.contains("needs one node"), "{}", r.stderr);
}

#[test]
fn a_mistyped_option_is_refused_before_anything_changes() {
    let sb = sandbox(false, true);
    let base = sb.redis.as_ref().unwrap().url();
    let db2 = base.replace("/0", "/2");
    redis_cmd(&base, &["SET", "cache:1", "x"]);
    redis_cmd(&db2, &["SET", "b", "1"]);
    let env = Env::new();
    // Unchecked, the wrong key would leave `max` at its default and delete.
    let r = env.run(
        r#"redis.del_matching("cache:*", #{limit: 0})"#,
        &[],
        &[("REDIS_URL", &base)],
    );
    r.assert_code(2);
    assert!(
        r.stderr
            .contains("redis.del_matching failed: unknown option `limit`"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("known options: max"), "{}", r.stderr);
    assert_eq!(redis_int(&base, &["EXISTS", "cache:1"]), 1);
    let r = env.run(r#"redis.flushdb(#{db: "2"})"#, &[], &[("REDIS_URL", &base)]);
    r.assert_code(2);
    assert!(
        r.stderr
            .contains("option `db` must be an int, got string (\"2\")"),
        "{}",
        r.stderr
    );
    assert_eq!(redis_int(&db2, &["DBSIZE"]), 1);
}
