//! `pods/exec` over WebSocket, the protocol kubectl 1.30 and later and the
//! kube crate use (v5.channel.k8s.io, or v4): every frame's first byte
//! names its stream (0 stdin, 1 stdout, 2 stderr, 3 the final Status,
//! 255 v5's close of a stream). The command runs for real on the host, in
//! a working directory of the pod's own under the server's directory (so
//! a test can put files there and see what a command left), with the
//! container's literal env. SPDY, which older kubectls use, is refused
//! with a message that says what to use instead.

use super::http::{Body, Shared};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use hyper::{Request, Response};
use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Whether this request asks for an exec stream (any upgrade to it).
pub fn wants_exec<B>(req: &Request<B>) -> bool {
    req.uri().path().ends_with("/exec") && req.headers().contains_key(hyper::header::UPGRADE)
}

fn status_response(code: u16, reason: &str, message: &str) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": message, "reason": reason, "code": code});
    let mut r = Response::new(Body::Full(Some(Bytes::from(body.to_string()))));
    *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::BAD_REQUEST);
    if let Ok(v) = "application/json".parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// The pod's own working directory for exec: DIR/pods/NS/POD.
pub fn workdir(shared: &Shared, ns: &str, pod: &str) -> PathBuf {
    shared.dir.join("pods").join(ns).join(pod)
}

pub fn handle(shared: Arc<Shared>, mut req: Request<hyper::body::Incoming>) -> Response<Body> {
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let segs: Vec<String> = req
        .uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let (ns, pod) = match segs
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["api", "v1", "namespaces", ns, "pods", pod, "exec"] => (ns.to_string(), pod.to_string()),
        _ => {
            return status_response(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        }
    };
    let user = match super::http::user_of(&shared, req.headers()) {
        Ok(u) => u,
        Err(e) => return status_response(e.code, e.reason, &e.message),
    };
    let access = super::auth::Access {
        verb: "create",
        group: "",
        resource: "pods/exec",
        namespace: &ns,
        name: Some(&pod),
    };
    if !super::http::allows(&shared, &user, &access) {
        return status_response(
            403,
            "Forbidden",
            &format!("pods \"{pod}\" is forbidden: User \"{user}\" cannot create resource \"pods/exec\" in API group \"\" in the namespace \"{ns}\""),
        );
    }
    let upgrade = header("upgrade");
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return status_response(
            400,
            "BadRequest",
            &format!("the sandbox API server runs exec over WebSocket only, not {upgrade}: use kubectl 1.30 or later (1.29: KUBECTL_REMOTE_COMMAND_WEBSOCKETS=true)"),
        );
    }
    let offered = header("sec-websocket-protocol");
    let Some(protocol) = ["v5.channel.k8s.io", "v4.channel.k8s.io"]
        .into_iter()
        .find(|p| offered.split(',').any(|o| o.trim() == *p))
    else {
        return status_response(
            400,
            "BadRequest",
            &format!("exec: none of the offered protocols ({offered}) is supported: v5.channel.k8s.io or v4.channel.k8s.io"),
        );
    };
    let Some(p) = super::discovery::by_kind("Pod").and_then(|r| shared.store.get(r, &ns, &pod))
    else {
        return status_response(404, "NotFound", &format!("pods \"{pod}\" not found"));
    };
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let argv: Vec<String> = query
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    let flag = |k: &str| query.iter().any(|(q, v)| q == k && v == "true");
    let stdin = flag("stdin");
    let containers: Vec<&Value> = p["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let wanted = query
        .iter()
        .find(|(k, _)| k == "container")
        .map(|(_, v)| v.as_str());
    let container = match wanted {
        Some(c) => containers.iter().find(|x| x["name"] == c).copied(),
        None => containers.first().copied(),
    };
    let Some(container) = container.cloned() else {
        return status_response(
            400,
            "BadRequest",
            &format!(
                "container {} is not valid for pod {pod}",
                wanted.unwrap_or("")
            ),
        );
    };
    let cname = container["name"].as_str().unwrap_or("");
    let running = p["status"]["containerStatuses"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == cname))
        .is_some_and(|s| !s["state"]["running"].is_null());
    if !running {
        return status_response(
            400,
            "BadRequest",
            &format!("unable to upgrade connection: container not found (\"{cname}\")"),
        );
    }
    if argv.is_empty() {
        return status_response(400, "BadRequest", "you must specify at least 1 command");
    }
    let key = header("sec-websocket-key");
    let accept = B64.encode(Sha1::digest(format!("{key}{GUID}").as_bytes()));
    let dir = workdir(&shared, &ns, &pod);
    let env: Vec<(String, String)> = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_string(),
                e["value"].as_str()?.to_string(),
            ))
        })
        .collect();
    let v5 = protocol.starts_with("v5");
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(io) = on_upgrade.await {
            let io = hyper_util::rt::TokioIo::new(io);
            session(io, argv, dir, env, stdin, v5).await;
        }
    });
    let mut r = Response::new(Body::Full(None));
    *r.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    for (k, v) in [
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-accept", accept.as_str()),
        ("sec-websocket-protocol", protocol),
    ] {
        if let Ok(v) = v.parse() {
            h.insert(k, v);
        }
    }
    r
}

fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(n as u8),
        n if n <= 0xffff => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

/// One client frame: (opcode, unmasked payload); None at the end.
async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    r.read_exact(&mut head).await.ok()?;
    let opcode = head[0] & 0x0f;
    let masked = head[1] & 0x80 != 0;
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).await.ok()?;
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            r.read_exact(&mut b).await.ok()?;
            usize::try_from(u64::from_be_bytes(b)).ok()?
        }
        n => n as usize,
    };
    if len > 16 << 20 {
        return None;
    }
    let mut mask = [0u8; 4];
    if masked {
        r.read_exact(&mut mask).await.ok()?;
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await.ok()?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Some((opcode, payload))
}

async fn session<T: AsyncRead + AsyncWrite + Send + 'static>(
    io: T,
    argv: Vec<String>,
    dir: PathBuf,
    env: Vec<(String, String)>,
    stdin: bool,
    v5: bool,
) {
    let (mut rd, mut wr) = tokio::io::split(io);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    let writer = tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if wr.write_all(&f).await.is_err() {
                return;
            }
        }
        let _ = wr.flush().await;
        let _ = wr.shutdown().await;
    });
    let send = |ch: u8, data: &[u8]| {
        let mut p = vec![ch];
        p.extend_from_slice(data);
        frame(0x2, &p)
    };
    // v5 clients open with an empty frame per stream in some versions: nothing to do.
    let _ = v5;
    let status = match std::fs::create_dir_all(&dir) {
        Err(e) => {
            json!({"metadata": {}, "status": "Failure", "reason": "InternalError", "message": format!("cannot make the pod's directory {}: {e}", dir.display())})
        }
        Ok(()) => {
            let mut cmd = tokio::process::Command::new(&argv[0]);
            cmd.args(&argv[1..])
                .current_dir(&dir)
                .envs(env)
                .env("HOME", &dir)
                .stdin(if stdin {
                    std::process::Stdio::piped()
                } else {
                    std::process::Stdio::null()
                })
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true);
            match cmd.spawn() {
                Err(e) => {
                    let code = if e.kind() == std::io::ErrorKind::NotFound {
                        127
                    } else {
                        126
                    };
                    let msg = format!("exec: \"{}\": {e}", argv[0]);
                    let _ = tx.send(send(2, format!("{msg}\n").as_bytes())).await;
                    failure(code, &msg)
                }
                Ok(mut child) => {
                    let mut child_in = child.stdin.take();
                    let pump = |mut r: Box<dyn AsyncRead + Unpin + Send>,
                                ch: u8,
                                tx: mpsc::Sender<Vec<u8>>| {
                        tokio::spawn(async move {
                            let mut buf = vec![0u8; 16 * 1024];
                            loop {
                                match r.read(&mut buf).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => {
                                        let mut p = vec![ch];
                                        p.extend_from_slice(&buf[..n]);
                                        if tx.send(frame(0x2, &p)).await.is_err() {
                                            return;
                                        }
                                    }
                                }
                            }
                        })
                    };
                    let out = child
                        .stdout
                        .take()
                        .map(|o| pump(Box::new(o), 1, tx.clone()));
                    let err = child
                        .stderr
                        .take()
                        .map(|e| pump(Box::new(e), 2, tx.clone()));
                    // Client frames: stdin data, v5's close of stdin, or the end.
                    let reader = tokio::spawn(async move {
                        while let Some((op, payload)) = read_frame(&mut rd).await {
                            match (op, payload.first()) {
                                (0x8, _) => break,
                                (_, Some(0)) => {
                                    if let Some(w) = child_in.as_mut() {
                                        if w.write_all(&payload[1..]).await.is_err() {
                                            child_in = None;
                                        }
                                    }
                                }
                                (_, Some(255)) if payload.get(1) == Some(&0) => child_in = None,
                                _ => {}
                            }
                        }
                    });
                    let waited = child.wait().await;
                    for t in [out, err].into_iter().flatten() {
                        let _ = t.await;
                    }
                    reader.abort();
                    match waited {
                        Ok(s) if s.success() => json!({"metadata": {}, "status": "Success"}),
                        Ok(s) => {
                            let code = s.code().unwrap_or(137);
                            failure(code, &format!("command terminated with non-zero exit code: exit status {code}"))
                        }
                        Err(e) => failure(1, &format!("exec: {e}")),
                    }
                }
            }
        }
    };
    let _ = tx.send(send(3, status.to_string().as_bytes())).await;
    let _ = tx.send(frame(0x8, &1000u16.to_be_bytes())).await;
    drop(tx);
    let _ = writer.await;
}

fn failure(code: i32, message: &str) -> Value {
    json!({"metadata": {}, "status": "Failure", "message": message, "reason": "NonZeroExitCode",
           "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}})
}
