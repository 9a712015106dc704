//! TLS through the URL's sslmode, against a sandbox server that the test
//! switches to SSL with a throwaway CA (made with the openssl CLI).

use crate::support::*;

#[test]
fn sslmode_verify_full_with_a_private_ca() {
    let sb = sandbox(&[Pg]);
    let pg = sb.pg();
    let url = pg.url();
    let env = Env::new();
    let probe =
        r#"print(pg.query("select ssl from pg_stat_ssl where pid = pg_backend_pid()")[0].ssl)"#;

    // A server without SSL: prefer falls back, require fails clearly.
    env.script(probe)
        .pg(&format!("{url}?sslmode=prefer"))
        .run()
        .assert_code(0)
        .assert_stdout("false\n");
    env.script(probe)
        .pg(&format!("{url}?sslmode=require"))
        .run()
        .assert_code(2)
        .assert_stderr_contains("server does not support TLS")
        .assert_stderr_contains("hint:");

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
    eventually(secs(10), "ssl to turn on", || {
        pg_scalar(
            &url,
            "select count(*) from pg_settings where name = 'ssl' and setting = 'on'",
        ) == 1
    });

    let verify = |ca: &str| format!("{url}?sslmode=verify-full&sslrootcert={d}/{ca}");
    env.script(probe)
        .pg(&verify("ca.pem"))
        .run()
        .assert_code(0)
        .assert_stdout("true\n");
    // A certificate from another CA is refused.
    env.script(probe)
        .pg(&verify("other-ca.pem"))
        .run()
        .assert_code(2)
        .assert_stderr_contains("TLS with")
        .assert_stderr_contains("sslrootcert")
        .assert_stderr_lacks(&pg.password);
}
