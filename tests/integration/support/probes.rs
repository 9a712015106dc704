//! Second, independent connections to the servers: what a test sets up
//! before opsh runs, and what it checks the server really holds after.

/// `f` on a fresh connection to `url`, in a runtime of its own.
fn with_pg<T>(url: &str, f: impl AsyncFnOnce(&mut sqlx::PgConnection) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
        f(&mut c).await
    })
}

/// The one int8 that `sql` selects (`select count(*) ...`).
pub fn pg_scalar(url: &str, sql: &str) -> i64 {
    with_pg(url, async |c| {
        sqlx::query_scalar(sql).fetch_one(c).await.expect("query")
    })
}

/// Runs `sql` (several statements allowed) and panics if it fails.
pub fn pg_exec(url: &str, sql: &str) {
    with_pg(url, async |c| {
        sqlx::raw_sql(sql).execute(c).await.expect("exec");
    })
}

/// One Redis command over an independent connection, to set up or check
/// what the server holds.
pub fn redis_query<T: ::redis::FromRedisValue>(url: &str, args: &[&str]) -> T {
    // Without redis-rs's CLIENT SETINFO, as opsh connects: a probe leaves
    // the server's command and error statistics to what is under test.
    use ::redis::IntoConnectionInfo;
    let info = url.into_connection_info().expect("redis url");
    let settings = info.redis_settings().clone().set_skip_set_lib_name();
    let client = ::redis::Client::open(info.set_redis_settings(settings)).expect("client");
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
        cmd.query_async(&mut c).await.expect("redis command")
    })
}
