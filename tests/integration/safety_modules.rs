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
    // The protected target's own server, by URL: protected too.
    .flag("--yes")
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

// ---- 12: read-modify-write carries the version read ----

fn env_of(k: &Kube, name: &str, var: &str) -> Option<String> {
    k.object("Deployment", "default", name).unwrap()["spec"]["template"]["spec"]["containers"][0]
        ["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == var)
        .map(|e| e["value"].as_str().unwrap_or("").to_string())
}

/// Another client changed the image between opsh's read and its write:
/// opsh used to overwrite it silently, report a false `from`, audit ok.
#[test]
fn set_image_and_set_env_never_overwrite_a_concurrent_change() {
    let k = kube();
    let env = Env::new();
    let before = k.image("api");
    let theirs = serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "api", "image": "registry.example/api:hotfix"}]}}}});
    k.interfere_with("Deployment", "default", "api", theirs);
    env.script(r#"k8s.set_image("api", "api", "registry.example/api:1.5.0")"#)
        .kube(&k)
        .run()
        .assert_code(2)
        .assert_stderr_contains(
            "set image on api: someone else changed image since it was read; nothing was changed",
        )
        .assert_stderr_contains(&format!(
            "\"{before}\" when read, \"registry.example/api:hotfix\" now"
        ));
    assert_eq!(
        k.image("api"),
        "registry.example/api:hotfix",
        "their change survives"
    );
    let audit = env.audit();
    assert_eq!(audit.last().unwrap()["outcome"], "error", "{audit:?}");

    // An unrelated concurrent change: the write conflicts, opsh reads
    // again, finds the image as it was, and writes; their change is kept.
    k.interfere("Deployment", "default", "api");
    env.script(
        r#"let r = k8s.set_image("api", "api", "registry.example/api:1.5.0"); print(r.from);"#,
    )
    .kube(&k)
    .run()
    .assert_code(0)
    .assert_stdout("registry.example/api:hotfix\n");
    assert_eq!(k.image("api"), "registry.example/api:1.5.0");
    let d = k.object("Deployment", "default", "api").unwrap();
    assert_eq!(
        d["metadata"]["annotations"]["sandbox.opsh.dev/touched-by"],
        "another-client"
    );

    // The same for env: a concurrent change of the variable set is refused.
    let theirs = serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "api", "env": [{"name": "LOG_LEVEL", "value": "trace"}]}]}}}});
    k.interfere_with("Deployment", "default", "api", theirs);
    env.script(r#"k8s.set_env("api", #{LOG_LEVEL: "debug"})"#)
        .kube(&k)
        .run()
        .assert_code(2)
        .assert_stderr_contains("set env on api: someone else changed api.LOG_LEVEL since it was read; nothing was changed");
    assert_eq!(env_of(&k, "api", "LOG_LEVEL").as_deref(), Some("trace"));
    // ... and another variable's change is kept while ours lands.
    let theirs = serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "api", "env": [{"name": "OTHER", "value": "x"}]}]}}}});
    k.interfere_with("Deployment", "default", "api", theirs);
    env.script(r#"print(k8s.set_env("api", #{LOG_LEVEL: "debug"}).changed["api.LOG_LEVEL"].from)"#)
        .kube(&k)
        .run()
        .assert_code(0)
        .assert_stdout("trace\n");
    assert_eq!(env_of(&k, "api", "LOG_LEVEL").as_deref(), Some("debug"));
    assert_eq!(env_of(&k, "api", "OTHER").as_deref(), Some("x"));
}

// ---- 16: a multi-document apply is validated whole before any write ----

#[test]
fn multi_document_apply_dry_runs_everything_first_and_names_what_landed() {
    let k = kube();
    let env = Env::new();
    // The second document conflicts (spec.replicas of `api` belongs to the
    // seed's manager): the first used to be created before the error.
    let r = env
        .script(r#"k8s.apply("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: third\ndata:\n  a: \"1\"\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  replicas: 9\n")"#)
        .kube(&k)
        .run();
    r.assert_code(2)
        .assert_stderr_contains("document 2 of 2 (Deployment/api)")
        .assert_stderr_contains("conflict on .spec.replicas")
        .assert_stderr_contains("nothing was applied");
    assert!(
        k.object("ConfigMap", "default", "third").is_none(),
        "the first document was applied"
    );
    assert_eq!(k.replicas("api"), 3);

    // opsh owns `second`; another client changes its data after the dry
    // run and before the write: the first document has landed by then.
    env.script(r#"k8s.apply("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: second\ndata:\n  k: \"1\"\n")"#)
        .kube(&k)
        .run()
        .assert_code(0);
    k.interfere_with(
        "ConfigMap",
        "default",
        "second",
        serde_json::json!({"data": {"k": "theirs"}}),
    );
    let r = env
        .script(r#"k8s.apply("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: first\ndata:\n  a: \"1\"\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: second\ndata:\n  k: \"2\"\n")"#)
        .kube(&k)
        .run();
    r.assert_code(2)
        .assert_stderr_contains("document 2 of 2 (ConfigMap/second)")
        .assert_stderr_contains("already applied, and left so: ConfigMap/first (created)")
        .assert_stderr_lacks("nothing was changed");
    assert!(k.object("ConfigMap", "default", "first").is_some());
    assert_eq!(
        k.object("ConfigMap", "default", "second").unwrap()["data"]["k"],
        "theirs"
    );
}

// ---- 17: the UID precondition's headline ----

#[test]
fn delete_pod_with_a_stale_uid_says_a_different_pod_has_the_name() {
    let k = kube();
    k.wait_rolled_out("api");
    let name = k.pods("api")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let uid = k.pods("api")[0]["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let env = Env::new();
    for dry in [false, true] {
        let mut o = env.script(&format!(
            r#"k8s.delete_pod("{name}", #{{uid: "00000000-dead-4bee-f000-000000000000"}})"#
        ));
        if dry {
            o = o.flag("--dry-run");
        }
        o.kube(&k)
            .run()
            .assert_code(2)
            .assert_stderr_contains(&format!(
                "delete pod {name}: a different pod now has that name (uid {uid}, not 00000000-dead-4bee-f000-000000000000); nothing was deleted"
            ));
    }
    assert!(k.object("Pod", "default", &name).is_some());
}
