use crate::support::*;

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
