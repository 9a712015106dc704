//! TLS through the URL's sslmode, against a sandbox server that the test
//! switches to SSL with a throwaway CA (made with the openssl CLI).

use crate::support::*;
use std::time::{Duration, Instant};

#[test]
fn sslmode_verify_full_with_a_private_ca() {
    let sb = sandbox(true, false);
    let pg = sb.postgres.as_ref().unwrap();
    let url = pg.url();
    let env = Env::new();
    let probe =
        r#"print(pg.query("select ssl from pg_stat_ssl where pid = pg_backend_pid()")[0].ssl)"#;

    // A server without SSL: prefer falls back, require fails clearly.
    let r = env.run(
        probe,
        &[],
        &[("DATABASE_URL", &format!("{url}?sslmode=prefer"))],
    );
    r.assert_code(0);
    assert_eq!(r.stdout.trim(), "false");
    let r = env.run(
        probe,
        &[],
        &[("DATABASE_URL", &format!("{url}?sslmode=require"))],
    );
    r.assert_code(2);
    assert!(
        r.stderr.contains("server does not support TLS"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("hint:"), "{}", r.stderr);

    // Certificates in the server's own directory, owned by its user.
    let dir = pg.log.parent().unwrap().to_path_buf();
    certs::ca(&dir, "ca");
    certs::ca(&dir, "other-ca");
    certs::server(&dir, "ca", "server");
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let owner = std::fs::metadata(dir.join("data")).unwrap();
        for f in ["server.key", "server.pem"] {
            let p = dir.join(f);
            std::os::unix::fs::chown(&p, Some(owner.uid()), Some(owner.gid())).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
    let d = dir.display();
    pg_exec(
        &url,
        &format!("alter system set ssl_cert_file = '{d}/server.pem'"),
    );
    pg_exec(
        &url,
        &format!("alter system set ssl_key_file = '{d}/server.key'"),
    );
    pg_exec(&url, "alter system set ssl = on");
    pg_exec(&url, "select pg_reload_conf()");
    let started = Instant::now();
    while pg_scalar(
        &url,
        "select count(*) from pg_settings where name = 'ssl' and setting = 'on'",
    ) != 1
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "ssl did not turn on"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let verify = |ca: &str| format!("{url}?sslmode=verify-full&sslrootcert={d}/{ca}");
    let r = env.run(probe, &[], &[("DATABASE_URL", &verify("ca.pem"))]);
    r.assert_code(0);
    assert_eq!(r.stdout.trim(), "true", "{}", r.stderr);
    // A certificate from another CA is refused.
    let r = env.run(probe, &[], &[("DATABASE_URL", &verify("other-ca.pem"))]);
    r.assert_code(2);
    assert!(r.stderr.contains("TLS with"), "{}", r.stderr);
    assert!(r.stderr.contains("sslrootcert"), "{}", r.stderr);
    assert!(!r.stderr.contains(&pg.password), "{}", r.stderr);
}
