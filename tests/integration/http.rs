use crate::support::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// A tiny HTTP/1.1 server on a loopback port that records request lines
/// and bodies and answers with a fixed JSON document.
pub(crate) fn server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut len = 0;
            let mut auth = String::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                let lower = h.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("authorization:") {
                    auth = h.trim().to_string();
                }
            }
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            log.lock().unwrap().push(format!(
                "{} {} {}",
                request_line.trim(),
                auth,
                String::from_utf8_lossy(&body)
            ));
            let (status, payload) = if request_line.contains("/missing") {
                ("404 Not Found", "{\"error\":\"no\"}")
            } else {
                ("200 OK", "{\"status\":\"ok\",\"replicas\":3}")
            };
            let resp = format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nX-Test: yes\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}", payload.len());
            let mut s = stream;
            let _ = s.write_all(resp.as_bytes());
        }
    });
    (port, seen)
}

#[test]
fn get_returns_status_headers_json_and_timing() {
    let (port, seen) = server();
    let script = format!(
        r#"
        let r = http.get("http://127.0.0.1:{port}/health", #{{query: #{{verbose: 1}}, bearer: "tok-SECRET-123"}});
        print(r.status); print(r.ok); print(r.json.replicas); print(r.headers["x-test"]); print(r.elapsed_ms >= 0.0);
        let m = http.get("http://127.0.0.1:{port}/missing");
        print(m.status); print(m.ok);
        "#
    );
    Env::new()
        .script(&script)
        .run()
        .assert_code(0)
        .assert_stdout("200\ntrue\n3\nyes\ntrue\n404\nfalse\n");
    let seen = seen.lock().unwrap();
    assert!(
        seen[0]
            .to_ascii_lowercase()
            .starts_with("get /health?verbose=1 http/1.1 authorization: bearer tok-secret-123"),
        "{seen:?}"
    );
}

#[test]
fn post_is_a_mutation_dry_run_sends_nothing() {
    let (port, seen) = server();
    let env = Env::new();
    let script = format!(
        r#"let r = http.post("http://127.0.0.1:{port}/hook", #{{version: "1.2.3"}}); print(r.status);"#
    );
    env.script(&script)
        .flag("--dry-run")
        .run()
        .assert_code(0)
        .assert_stderr_contains("would POST 19 bytes (application/json)");
    assert!(seen.lock().unwrap().is_empty(), "dry run sent a request");
    env.script(&script)
        .run()
        .assert_code(0)
        .assert_stdout("200\n");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].starts_with("POST /hook") && seen[0].ends_with("{\"version\":\"1.2.3\"}"),
        "{seen:?}"
    );
    let audit = env.audit();
    assert!(audit
        .iter()
        .any(|a| a["primitive"] == "http.post" && a["mode"] == "real" && a["outcome"] == "ok"));
}

#[test]
fn connection_refused_is_clear() {
    let env = Env::new();
    let port = opsh::sandbox::free_port().unwrap();
    env.script(&format!("http.get(\"http://127.0.0.1:{port}/\")"))
        .run()
        .assert_code(2)
        .assert_stderr_contains(&format!("127.0.0.1:{port} refused the connection"))
        .assert_stderr_contains("nothing listens on that port");
}

#[test]
fn a_misspelled_or_mistyped_option_is_refused_before_any_request() {
    let (port, seen) = server();
    let env = Env::new();
    env.script(&format!(
        r#"http.get("http://127.0.0.1:{port}/health", #{{timout: "5s"}})"#
    ))
    .run()
    .assert_code(2)
    .assert_stderr_contains("http.get failed: unknown option `timout`")
    .assert_stderr_contains("did you mean `timeout`?");
    env.script(&format!(
        r#"http.post("http://127.0.0.1:{port}/hook", "x", #{{basic: "user:pw"}})"#
    ))
    .run()
    .assert_code(2)
    .assert_stderr_contains("option `basic` must be an array, got string");
    assert!(seen.lock().unwrap().is_empty(), "a refused call was sent");
}
