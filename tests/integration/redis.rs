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
    let sb = sandbox(&[Redis]);
    let url = sb.redis_url();
    for k in ["a", "b", "c"] {
        redis_cmd(&url, &["SET", k, "1"]);
    }
    redis_cmd(&url, &["EXPIRE", "a", "1000"]);
    Env::new()
        .script(
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
        )
        .redis(&url)
        .run()
        .assert_code(0)
        .assert_stdout(&format!("3\n1\ni64\n{}\nf64\ntrue\n", sb.redis().port));
}

#[test]
fn unreachable_redis_is_a_clear_error() {
    let port = opsh::sandbox::free_port().unwrap();
    Env::new()
        .script("redis.ping()")
        .redis(&format!("redis://127.0.0.1:{port}"))
        .run()
        .assert_code(2)
        .assert_stderr_contains("redis.ping failed")
        .assert_stderr_contains(&format!("127.0.0.1:{port} refused the connection"))
        .assert_stderr_contains("is Redis running, and on this port?");
}

#[test]
fn hit_rate_and_keys_match_the_server() {
    let sb = sandbox(&[Redis]);
    let url = sb.redis_url();
    let env = Env::new();
    env.script("let h = redis.hit_rate(); print(h.ratio == ()); print(h.note != ());")
        .redis(&url)
        .run()
        .assert_code(0)
        .assert_stdout("true\ntrue\n");
    redis_cmd(&url, &["SET", "user:1", "a"]);
    redis_cmd(&url, &["SET", "user:2", "b"]);
    redis_cmd(&url, &["SET", "other", "c"]);
    for k in ["user:1", "user:1", "user:2", "nope:1"] {
        redis_cmd(&url, &["GET", k]);
    }
    // The script's own GETs count too: after the 3 hits / 1 miss above,
    // hit_rate reads the stats before them.
    env.script(
        r#"
        let h = redis.hit_rate(); print(h.hits); print(h.misses); print(h.ratio);
        print(redis.scan(#{pattern: "user:*"}).len());
        print(redis.get("user:1")); print(redis.get("missing") == ()); print(redis.exists("other")); print(redis.type("other")); print(redis.ttl("other"));
        print(redis.keyspace()[0].keys);
        print(redis.memory().used > 0);
        "#,
    )
    .redis(&url)
    .run()
    .assert_code(0)
    .assert_stdout("3\n1\n0.75\n2\na\ntrue\ntrue\nstring\n-1\n3\ntrue\n");
}

#[test]
fn set_del_and_del_matching_with_dry_run_and_max() {
    let sb = sandbox(&[Redis]);
    let url = sb.redis_url();
    for i in 0..30 {
        redis_cmd(&url, &["SET", &format!("cache:{i}"), "x"]);
    }
    redis_cmd(&url, &["SET", "keep", "y"]);
    let env = Env::new();
    env.script(r#"let p = redis.del_matching("cache:*"); print(p.count); print(p.sample.len());"#)
        .redis(&url)
        .flag("--dry-run")
        .run()
        .assert_code(0)
        .assert_stdout("30\n10\n");
    assert_eq!(redis_int(&url, &["DBSIZE"]), 31);
    env.script(r#"redis.del_matching("cache:*", #{max: 10})"#)
        .redis(&url)
        .run()
        .assert_code(3)
        .assert_stderr_contains("more than 10 keys match");
    assert_eq!(redis_int(&url, &["DBSIZE"]), 31);
    env.script(r#"print(redis.del_matching("cache:*").deleted); print(redis.set("k2", 5, #{ttl: "1h"}).previous_type); print(redis.ttl("k2") > 3000); print(redis.del(["keep", "nope"]));"#)
        .redis(&url)
        .run()
        .assert_code(0)
        .assert_stdout("30\nnone\ntrue\n1\n");
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
    let sb = sandbox(&[Redis]);
    let base = sb.redis_url();
    let db2 = base.replace("/0", "/2");
    redis_cmd(&base, &["SET", "a", "1"]);
    redis_cmd(&db2, &["SET", "b", "1"]);
    redis_cmd(&db2, &["SET", "c", "1"]);
    let env = Env::new();
    env.script("redis.flushdb(#{})")
        .redis(&base)
        .run()
        .assert_code(2)
        .assert_stderr_contains("named explicitly");
    env.script("let p = redis.flushdb(#{db: 2}); print(p.keys);")
        .redis(&base)
        .flag("--dry-run")
        .run()
        .assert_code(0)
        .assert_stdout("2\n");
    assert_eq!(redis_int(&db2, &["DBSIZE"]), 2);
    env.script("print(redis.flushdb(#{db: 2}).deleted);")
        .redis(&base)
        .run()
        .assert_code(0)
        .assert_stdout("2\n");
    assert_eq!(redis_int(&db2, &["DBSIZE"]), 0);
    assert_eq!(redis_int(&base, &["DBSIZE"]), 1, "db 0 must be untouched");
}

#[test]
fn server_killed_mid_run_is_a_clear_error() {
    let mut sb = sandbox(&[Redis]);
    let url = sb.redis_url();
    let env = Env::new();
    let mut child = env
        .script("print(redis.ping() >= 0.0);\nsleep(\"1s\");\nredis.info();\n")
        .named("k.rhai")
        .redis(&url)
        .spawn();
    let lines = Lines::of(&mut child);
    eventually(secs(10), "the first ping", || lines.count("true") == 1);
    sb.redis.as_mut().unwrap().stop();
    wait_output(child)
        .assert_code(2)
        .assert_stderr_contains("redis.info failed")
        .assert_stderr_contains("k.rhai:3:7");
}

#[test]
fn clients_slowlog_config_biggest_and_expire() {
    let sb = sandbox(&[Redis]);
    let url = sb.redis_url();
    redis_cmd(&url, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    redis_cmd(&url, &["SET", "big", &"x".repeat(100_000)]);
    redis_cmd(&url, &["SET", "small", "y"]);
    redis_cmd(&url, &["SET", "temp", "z"]);
    let env = Env::new();
    env.script(
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
    )
    .redis(&url)
    .run()
    .assert_code(0)
    .assert_stdout("1\ni64\n1\ni64\n0\nbig\ntrue\nmaster\ntrue\nfalse\nnoeviction\n");
    assert!(redis_int(&url, &["TTL", "temp"]) > 500);
    assert!(redis_cmd(&url, &["CONFIG", "GET", "maxmemory-policy"]).contains("allkeys-lru"));
    // Dry-run shows the current value and changes nothing.
    env.script(r#"redis.config_set("maxmemory-policy", "volatile-lru")"#)
        .redis(&url)
        .flag("--dry-run")
        .run()
        .assert_code(0)
        .assert_stderr_contains("from `allkeys-lru` to `volatile-lru`");
    assert!(redis_cmd(&url, &["CONFIG", "GET", "maxmemory-policy"]).contains("allkeys-lru"));
}

#[test]
fn reconnect_stays_on_the_pinned_db() {
    let sb = sandbox(&[Redis]);
    let base = sb.redis_url();
    let db3 = base.replace("/0", "/3");
    redis_cmd(&base, &["SET", "k", "db0"]);
    redis_cmd(&db3, &["SET", "k", "db3"]);
    let env = Env::new();
    let mut child = env
        .script("print(redis.get(\"k\"));\nsleep(\"1s\");\nprint(redis.get(\"k\"));\n")
        .redis(&db3)
        .spawn();
    let lines = Lines::of(&mut child);
    eventually(secs(10), "the first read", || !lines.all().is_empty());
    assert_eq!(lines.all(), ["db3"]);
    // Kill every other client connection: opsh's connection breaks.
    redis_cmd(
        &base,
        &["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"],
    );
    wait_output(child).assert_code(0);
    assert_eq!(
        lines.all(),
        ["db3", "db3"],
        "after the reconnect opsh must still be on db 3"
    );
}

#[test]
fn parallel_fans_out_with_per_target_errors() {
    let servers: Vec<_> = (0..4).map(|_| sandbox(&[Redis])).collect();
    let mut urls: Vec<String> = servers.iter().map(|s| s.redis_url()).collect();
    let dead = opsh::sandbox::free_port().unwrap();
    urls.push(format!("redis://127.0.0.1:{dead}/0"));
    let list = urls
        .iter()
        .map(|u| format!("\"{u}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let r = Env::new()
        .script(&format!(
            r#"
            let r = parallel([{list}], |u| redis.connect(u).info("server").tcp_port, #{{concurrency: 3}});
            for row in r {{ print(`${{row.ok}} ${{row.value}}`); }}
            print(r[4].error);
            "#
        ))
        .run();
    r.assert_code(0);
    let lines = r.stdout_lines();
    assert_eq!(lines.len(), 6, "{}", r.stdout);
    for (i, s) in servers.iter().enumerate() {
        assert_eq!(lines[i], format!("true {}", s.redis().port));
    }
    assert_eq!(lines[4], "false ");
    assert!(lines[5].contains("refused the connection"), "{}", r.stdout);
}

/// A fan-out over more targets than the process may open files: the run
/// keeps its most recently used connections and closes the rest, where it
/// used to hold one socket per target to the end and fail past the limit
/// (1024 is a common soft limit; a fleet can be larger).
#[test]
fn a_fan_out_wider_than_the_open_file_limit_reaches_every_target() {
    let sb = sandbox(&[Redis]);
    // 300 targets, one server: each URL is its own connection to opsh.
    let base = sb.redis_url();
    let urls = (0..300)
        .map(|i| format!("\"{base}?target={i}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let before = redis_stat(&base, "total_connections_received");
    let r = Env::new()
        .script(&format!(
            r#"
            let r = parallel([{urls}], |u| redis.connect(u).info("server").tcp_port, #{{concurrency: 8}});
            let bad = r.filter(|x| !x.ok);
            print(`${{r.len() - bad.len()}} ok`);
            if bad.len() > 0 {{ print(bad[0].error); }}
            "#
        ))
        .open_files(96)
        .run();
    r.assert_code(0);
    assert_eq!(r.stdout_lines()[0], "300 ok", "{}", r.stdout);
    let opened = redis_stat(&base, "total_connections_received") - before;
    assert!(
        (300..310).contains(&opened),
        "one connection per target, not one per call: {opened}"
    );
}

/// A counter of the server's INFO.
fn redis_stat(url: &str, name: &str) -> i64 {
    let info: String = redis_query(url, &["INFO", "stats"]);
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in INFO: {info}"))
}

#[test]
fn rediss_tls_target_works() {
    let env = Env::new();
    certs::self_signed(&env.dir("tls"), "server", "127.0.0.1", 1);
    let (cert, key) = (env.path("tls/server.pem"), env.path("tls/server.key"));
    let dir = env.path("redis-tls");
    let server = opsh::sandbox::RedisServer::start_tls(&dir, &cert, &key).expect("TLS redis");
    let url = server.url();
    assert!(url.starts_with("rediss://"));
    // A self-signed certificate: verification must fail by default...
    env.script("redis.ping()")
        .redis(&url)
        .run()
        .assert_code(2)
        .assert_stderr_contains("invalid peer certificate");
    // ...and work when the operator opts out explicitly.
    env.script("print(redis.info(\"server\").tcp_port); redis.ping();")
        .redis(&format!("{url}#insecure"))
        .run()
        .assert_code(0)
        .assert_stdout(&format!("{}\n", server.port));
    // The port speaks only TLS: plain redis:// cannot talk to it.
    env.script("redis.ping()")
        .redis(&url.replace("rediss://", "redis://"))
        .option("--call-timeout", "1s")
        .run()
        .assert_code(2)
        .assert_stderr_contains("cannot talk to REDIS_URL");
}

#[test]
fn protected_redis_target_refuses_without_yes() {
    let sb = sandbox(&[Redis]);
    let url = sb.redis_url();
    redis_cmd(&url, &["SET", "a", "1"]);
    let env = Env::new();
    env.write_config(&format!(
        "[redis.cache]\nurl = \"{url}\"\nprotected = true\n"
    ));
    let script = r#"redis.connect("cache").flushdb(#{db: 0})"#;
    env.script(script)
        .run()
        .assert_code(3)
        .assert_stderr_contains("protected target cache");
    assert_eq!(redis_int(&url, &["DBSIZE"]), 1);
    env.script(script).flag("--yes").run().assert_code(0);
    assert_eq!(redis_int(&url, &["DBSIZE"]), 0);
}

#[test]
fn acl_user_and_wrong_password() {
    let sb = sandbox(&[Redis]);
    let url = sb.redis_url();
    let port = sb.redis().port;
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
    env.script("print(redis.info(\"clients\").connected_clients >= 1)")
        .redis(&format!("redis://ops:Ops-Secret-77@127.0.0.1:{port}/0"))
        .run()
        .assert_code(0)
        .assert_stdout("true\n");
    env.script("redis.ping()")
        .redis(&format!("redis://ops:Wrong-Secret-99@127.0.0.1:{port}/0"))
        .run()
        .assert_code(2)
        .assert_stderr_contains("check the user and password")
        .assert_output_lacks("Wrong-Secret-99");
}

#[test]
fn sentinel_url_reaches_the_master() {
    let sb = sandbox(&[Redis]);
    let master = sb.redis();
    let db2 = master.url().replace("/0", "/2");
    redis_cmd(&db2, &["SET", "where", "master-db2"]);
    let env = Env::new();
    let sentinel =
        opsh::sandbox::RedisServer::start_sentinel(&env.path("sentinel"), "mymaster", master.port)
            .expect("sentinel");
    env.script("print(redis.info(\"server\").tcp_port); print(redis.get(\"where\")); print(redis.ping() >= 0.0);")
        .redis(&format!("redis+sentinel://127.0.0.1:{}/mymaster/2", sentinel.port))
        .run()
        .assert_code(0)
        .assert_stdout(&format!("{}\nmaster-db2\ntrue\n", master.port));
    env.script("redis.ping()")
        .redis(&format!(
            "redis+sentinel://127.0.0.1:{}/nosuch",
            sentinel.port
        ))
        .run()
        .assert_code(2)
        .assert_stderr_contains("Master with given name not found in sentinel");
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
    eventually(secs(60), "the cluster to form", || {
        let text = redis_text(&nodes[0].url(), &["CLUSTER", "NODES"]);
        let masters: Vec<&str> = text.lines().filter(|l| l.contains("master")).collect();
        let settled = masters.len() == 3
            && masters.iter().all(|l| {
                l.contains(" connected")
                    && !l.contains("handshake")
                    && !l.contains("fail")
                    && !l.contains("noaddr")
            });
        if settled {
            Ok(())
        } else {
            Err(text)
        }
    });
    let url = format!("redis+cluster://127.0.0.1:{}", nodes[0].port);
    let r = env
        .script("let i = redis.info(\"server\"); for k in i.keys() { print(`${k} ${i[k].tcp_port}`); } print(redis.ping() >= 0.0);")
        .redis(&url)
        .run();
    r.assert_code(0);
    let mut want: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{0} {0}", n.port))
        .collect();
    want.sort();
    let mut got = r.stdout_lines();
    assert_eq!(got.pop(), Some("true"));
    got.sort();
    assert_eq!(got, want, "{}", r.stderr);
    env.script("redis.get(\"k\")")
        .redis(&url)
        .run()
        .assert_code(2)
        .assert_stderr_contains("needs one node");
}

#[test]
fn a_mistyped_option_is_refused_before_anything_changes() {
    let sb = sandbox(&[Redis]);
    let base = sb.redis_url();
    let db2 = base.replace("/0", "/2");
    redis_cmd(&base, &["SET", "cache:1", "x"]);
    redis_cmd(&db2, &["SET", "b", "1"]);
    let env = Env::new();
    // Unchecked, the wrong key would leave `max` at its default and delete.
    env.script(r#"redis.del_matching("cache:*", #{limit: 0})"#)
        .redis(&base)
        .run()
        .assert_code(2)
        .assert_stderr_contains("redis.del_matching failed: unknown option `limit`")
        .assert_stderr_contains("known options: max");
    assert_eq!(redis_int(&base, &["EXISTS", "cache:1"]), 1);
    env.script(r#"redis.flushdb(#{db: "2"})"#)
        .redis(&base)
        .run()
        .assert_code(2)
        .assert_stderr_contains("option `db` must be an int, got string (\"2\")");
    assert_eq!(redis_int(&db2, &["DBSIZE"]), 1);
}

/// The worked example of docs/architecture.md: a primitive added as one
/// declaration beside its function.
#[test]
fn dbsize_counts_the_keys_of_the_target_or_another_db() {
    let sb = sandbox(&[Redis]);
    let base = sb.redis_url();
    let db3 = base.replace("/0", "/3");
    redis_cmd(&base, &["SET", "a", "1"]);
    redis_cmd(&base, &["SET", "b", "1"]);
    redis_cmd(&db3, &["SET", "c", "1"]);
    Env::new()
        .script("let n = redis.dbsize(); let o = redis.dbsize(#{db: 3}); print(`${n.keys} ${n.db} ${o.keys} ${o.db}`);")
        .redis(&base)
        .run()
        .assert_code(0)
        .assert_stdout("2  1 3\n");
}

/// Issue 18: a script that calls redis on its default target has that
/// connection started at launch; the first call takes it over (one
/// connection for the run), and a prewarm that fails is forgotten unless
/// the script does call redis.
#[test]
fn a_connection_costs_no_setup_round_trip() {
    // redis-rs pipelines CLIENT SETINFO on every new connection, a round
    // trip each, which a 500-target fan-out pays 500 times (and Redis
    // before 7.2 answers with an error). The server's own statistics say
    // whether opsh sent it: the call as a command (7.2+) or as an error.
    let sb = sandbox(&[Redis]);
    let url = sb.redis_url();
    let stats = || -> String {
        let a: String = redis_query(&url, &["INFO", "commandstats"]);
        let b: String = redis_query(&url, &["INFO", "errorstats"]);
        format!("{a}{b}")
    };
    let before = stats();
    Env::new()
        .script(&format!(
            "redis.ping(); let c = redis.connect({url:?}); c.ping(); redis.dbsize(#{{db: 3}}); print(true);"
        ))
        .redis(&url)
        .run()
        .assert_code(0)
        .assert_stdout("true\n");
    let after = stats();
    let pings = |s: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix("cmdstat_ping:calls="))
            .and_then(|v| v.split(',').next()?.parse::<i64>().ok())
            .unwrap_or(0)
    };
    assert_eq!(
        pings(&after) - pings(&before),
        2,
        "the script reached the server: {after}"
    );
    assert!(
        after.contains("cmdstat_dbsize"),
        "the db-3 connection was made: {after}"
    );
    assert!(
        !after.contains("setinfo"),
        "CLIENT SETINFO was sent: {after}"
    );
    assert_eq!(
        after
            .lines()
            .filter(|l| l.starts_with("errorstat_"))
            .collect::<Vec<_>>(),
        before
            .lines()
            .filter(|l| l.starts_with("errorstat_"))
            .collect::<Vec<_>>(),
        "connecting made the server log an error"
    );
}

#[test]
fn the_default_target_is_connected_at_launch_and_a_failed_prewarm_is_lazy() {
    let sb = sandbox(&[Redis]);
    let url = sb.redis_url();
    // Each read is itself a connection: the second counts the first.
    let connections = || {
        let info: String = redis_query(&url, &["INFO", "stats"]);
        info.lines()
            .find_map(|l| l.strip_prefix("total_connections_received:"))
            .and_then(|n| n.trim().parse::<i64>().ok())
            .unwrap()
    };
    let env = Env::new();
    let before = connections();
    env.script("if false { redis.ping() } sleep(0.5); print(\"done\");")
        .redis(&url)
        .run()
        .assert_code(0)
        .assert_stdout("done\n");
    assert_eq!(
        connections() - before,
        2,
        "opsh connected once, in the background"
    );
    let before = connections();
    env.script("redis.ping(); redis.info(); print(true);")
        .redis(&url)
        .run()
        .assert_code(0)
        .assert_stdout("true\n");
    assert_eq!(
        connections() - before,
        2,
        "the prewarmed connection is the one used"
    );
    let port = opsh::sandbox::free_port().unwrap();
    let dead = format!("redis://127.0.0.1:{port}");
    env.script("if false { redis.ping() } print(\"fine\");")
        .redis(&dead)
        .run()
        .assert_code(0)
        .assert_stdout("fine\n")
        .assert_stderr_lacks("cannot talk");
    env.script("redis.ping()")
        .redis(&dead)
        .run()
        .assert_code(2)
        .assert_stderr_contains("refused the connection to REDIS_URL");
}
