//! Issue 22, the modules half: reads that could write, races between a
//! read and a write, privileges, restores and multi-document applies. Each
//! test drives the real binary against a real server and asserts on the
//! server's state.

use crate::support::*;

// ---- 1: read primitives cannot write ----

/// `pg.query` used to run UPDATE ... RETURNING, a data-modifying CTE,
/// SELECT INTO and nextval() on a protected target, under --dry-run, with
/// no audit. Now PostgreSQL itself refuses them in a read-only transaction.
#[test]
fn pg_query_is_read_only_on_the_server() {
    let sb = sandbox(&[Pg]);
    let url = sb.pg_url();
    pg_exec(
        &url,
        "create table t(id int primary key, v text); insert into t values (1, 'a'), (2, 'b');
         create sequence s;",
    );
    let env = Env::new();
    env.write_config(&format!("[pg.prod]\nurl = \"{url}\"\nprotected = true\n"));
    let writes = [
        "update t set v = 'x' where id = 1 returning id, v",
        "with d as (delete from t returning *) select count(*) as n from d",
        "select * into t2 from t",
        "select nextval('s') as n",
        "insert into t values (3, 'c') returning id",
        // Leaving read-only mode from inside the statement is refused too.
        "select set_config('transaction_read_only', 'off', true) as x",
    ];
    for sql in writes {
        for (how, dry) in [("prod", false), ("prod", true)] {
            let mut o = env.script(&format!(r#"pg.connect("{how}").query("{sql}")"#));
            if dry {
                o = o.flag("--dry-run");
            }
            o.run()
                .assert_code(2)
                .assert_stderr_contains(
                    "the query tried to change data on prod and PostgreSQL refused: pg.query is read-only",
                )
                .assert_stderr_contains("use pg.exec");
        }
        env.script(&format!(r#"pg.query("{sql}")"#))
            .pg(&url)
            .run()
            .assert_code(2)
            .assert_stderr_contains("pg.query is read-only; nothing was changed");
    }
    assert_eq!(pg_scalar(&url, "select count(*) from t"), 2);
    assert_eq!(pg_scalar(&url, "select count(*) from t where v = 'x'"), 0);
    assert_eq!(
        pg_scalar(&url, "select count(*) from pg_class where relname = 't2'"),
        0
    );
    assert_eq!(pg_scalar(&url, "select count(*) from s where is_called"), 0);
    // A session setting made by one query does not open the next to writes:
    // every query is rolled back, and each begins READ ONLY whatever the
    // session default.
    env.script(
        r#"pg.query("select set_config('default_transaction_read_only', 'off', false) as x");
           pg.query("set session characteristics as transaction read write");
           pg.query("update t set v = 'y' where id = 2 returning id")"#,
    )
    .pg(&url)
    .run()
    .assert_code(2)
    .assert_stderr_contains("read-only");
    assert_eq!(pg_scalar(&url, "select count(*) from t where v = 'y'"), 0);
    // Reads still read, and pg.exec still writes.
    env.script(
        r#"print(pg.query("select count(*) as n from t")[0].n);
           print(pg.exec("update t set v = 'z' where id = $1", [1]).rows_affected);"#,
    )
    .pg(&url)
    .run()
    .assert_code(0)
    .assert_stdout("2\n1\n");
    assert_eq!(pg_scalar(&url, "select count(*) from t where v = 'z'"), 1);
    // No read was audited as if it were a change, and nothing slipped in.
    assert!(
        env.audit().iter().all(|a| a["primitive"] == "pg.exec"),
        "{:?}",
        env.audit()
    );
}

/// The sqlite3 shell runs an argument starting with a dot as its own
/// command: `.shell` ran a program from a "read-only" query.
#[test]
fn sqlite_query_runs_no_shell_command_and_attaches_nothing() {
    let env = Env::new();
    let db = env.path("app.db");
    let out = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("create table f(x); insert into f values (1);")
        .output()
        .expect("sqlite3 runs");
    assert!(out.status.success());
    let marker = env.path("pwned");
    let other = env.path("other.db");
    for sql in [
        format!(".shell touch {}", marker.display()),
        format!(".system touch {}", marker.display()),
        format!("  .output {}", marker.display()),
    ] {
        env.script(&format!(r#"sqlite.query("{}", "{sql}")"#, db.display()))
            .run()
            .assert_code(2)
            .assert_stderr_contains("is a sqlite3 shell command, not SQL");
    }
    assert!(!marker.exists(), "a shell command ran");
    env.script(&format!(
        r#"sqlite.query("{}", "attach '{}' as o; create table o.t(a);")"#,
        db.display(),
        other.display()
    ))
    .run()
    .assert_code(2);
    assert!(!other.exists(), "ATTACH created a file");
    env.script(&format!(
        r#"sqlite.query("{}", "select writefile('{}', 'x') as n")"#,
        db.display(),
        marker.display()
    ))
    .run()
    .assert_code(2)
    .assert_stderr_contains("safe mode");
    assert!(!marker.exists(), "writefile wrote");
    env.script(&format!(
        r#"sqlite.query("{}", "insert into f values (2)")"#,
        db.display()
    ))
    .run()
    .assert_code(2)
    .assert_stderr_contains("readonly");
    env.script(&format!(
        r#"print(sqlite.query("{}", "select count(*) as n from f")[0].n)"#,
        db.display()
    ))
    .run()
    .assert_code(0)
    .assert_stdout("1\n");
}

/// A GET carrying X-HTTP-Method-Override is a DELETE to many frameworks.
#[test]
fn http_get_refuses_a_method_override_header() {
    let (port, seen) = crate::http::server();
    Env::new()
        .script(&format!(
            r#"http.get("http://127.0.0.1:{port}/items/7", #{{headers: #{{"X-HTTP-Method-Override": "DELETE"}}}})"#
        ))
        .run()
        .assert_code(2)
        .assert_stderr_contains("http.get is a read")
        .assert_stderr_contains("http.post");
    assert!(seen.lock().unwrap().is_empty(), "the request was sent");
}

// ---- 11: http ----

/// URL credentials and a bearer option made two Authorization headers and
/// the server read the first: the bearer was silently dropped.
#[test]
fn http_refuses_credentials_from_two_places() {
    let (port, seen) = crate::http::server();
    let env = Env::new();
    for (prim, body) in [("get", ""), ("post", "\"x\", ")] {
        env.script(&format!(
            r#"http.{prim}("http://ops:pw-in-url@127.0.0.1:{port}/hook", {body}#{{bearer: "tok-XYZ"}})"#
        ))
        .run()
        .assert_code(2)
        .assert_stderr_contains("the URL's user:password and opts.bearer give credentials")
        .assert_output_lacks("pw-in-url");
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
    // One source is fine.
    env.script(&format!(
        r#"print(http.post("http://127.0.0.1:{port}/hook", "x", #{{bearer: "tok-XYZ"}}).status)"#
    ))
    .run()
    .assert_code(0)
    .assert_stdout("200\n");
    assert!(seen.lock().unwrap()[0]
        .to_ascii_lowercase()
        .contains("authorization: bearer tok-xyz"));
}

/// A self-signed certificate was reported as "cannot connect ... is the
/// service listening?".
#[test]
fn http_names_a_refused_certificate() {
    let env = Env::new();
    let dir = env.dir("tls");
    certs::self_signed(&dir, "srv", "127.0.0.1", 1);
    let port = opsh::sandbox::free_port().unwrap();
    let mut server = std::process::Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-cert", "srv.pem", "-key", "srv.key"])
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    eventually(secs(10), "openssl s_server to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    let r = env
        .script(&format!(r#"http.get("https://127.0.0.1:{port}/")"#))
        .run();
    let _ = server.kill();
    let _ = server.wait();
    r.assert_code(2)
        .assert_stderr_contains(&format!(
            "the TLS certificate of https://127.0.0.1:{port}/ was refused"
        ))
        .assert_stderr_contains("self-signed")
        .assert_stderr_contains("insecure: true")
        .assert_stderr_lacks("is the service listening");
}
