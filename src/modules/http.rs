//! HTTP checks and calls: health endpoints, OIDC discovery, webhooks.

use crate::dispatch::{Call, OpError, Opts, Plan};
use crate::redact::redact;
use crate::registry::{field, join, opt, req, Class, Field, ModuleDecl, Primitive, Ty};
use crate::value::{from_json, map_of, to_json};
use rhai::{Dynamic, Map};
use std::time::Instant;

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "http",
    doc: "HTTP requests with status, headers, body, parsed JSON and timing.",
    target: None,
    primitives: &[GET, POST, HMAC_SHA256],
};

/// The request options every HTTP-speaking primitive accepts (`apply_opts`).
pub const REQUEST_OPTS: &[Field] = &[
    field("headers", Ty::Map).doc("request headers, name: value"),
    field("query", Ty::Map).doc("query parameters, name: value"),
    field("bearer", Ty::Str).doc("a bearer token (masked in output and logs)"),
    field("basic", Ty::List(&Ty::Str)).doc("[user, password] (the password is masked)"),
    field("timeout", Ty::Duration).doc("for the whole request, e.g. \"5s\""),
];

const HTTP_OPTS: [Field; 6] = join(&[
    REQUEST_OPTS,
    &[field("insecure", Ty::Bool).doc("skip TLS certificate verification")],
]);

const RESPONSE: Ty = Ty::Record(&[
    field("status", Ty::Int),
    field("ok", Ty::Bool).doc("the status is 2xx"),
    field("headers", Ty::Map)
        .doc("response headers by lowercase name; repeated ones joined with \", \""),
    field("body", Ty::Str),
    field("json", Ty::Any).doc("the body parsed as JSON; () when it is not JSON"),
    field("elapsed_ms", Ty::Float).doc("from sending the request to the end of the body"),
    field("url", Ty::Str).doc("the final URL, after redirects"),
]);

fn client(call: &Call, insecure: bool) -> Result<reqwest::Client, OpError> {
    let key = if insecure { "insecure" } else { "default" };
    call.session.client(key, || {
        reqwest::Client::builder()
            .user_agent(concat!("opsh/", env!("CARGO_PKG_VERSION")))
            .danger_accept_invalid_certs(insecure)
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| OpError::failed("cannot build the HTTP client").with_cause(e))
    })
}

fn body_of(d: Option<&Dynamic>) -> (Option<Vec<u8>>, Option<&'static str>) {
    match d {
        None => (None, None),
        Some(d) if d.is_string() => (
            Some(d.to_string().into_bytes()),
            Some("text/plain; charset=utf-8"),
        ),
        Some(d) => (
            Some(serde_json::to_vec(&to_json(d)).unwrap_or_default()),
            Some("application/json"),
        ),
    }
}

/// Applies `REQUEST_OPTS` to a request. Credentials are registered as
/// secrets so they never reach output or the audit log.
pub fn apply_opts(
    mut rb: reqwest::RequestBuilder,
    o: &Opts,
) -> Result<reqwest::RequestBuilder, OpError> {
    for (k, v) in o.map("headers")?.unwrap_or_default() {
        rb = rb.header(k.as_str(), v.to_string());
    }
    if let Some(q) = o.map("query")? {
        let pairs: Vec<(String, String)> = q
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        rb = rb.query(&pairs);
    }
    if let Some(t) = o.str("bearer")? {
        crate::redact::register_secret(&t);
        rb = rb.bearer_auth(t);
    }
    if let Some(b) = o.strings("basic")? {
        let [user, pass] = b.as_slice() else {
            return Err(OpError::bad_input("opts.basic must be [user, password]"));
        };
        crate::redact::register_secret(pass);
        rb = rb.basic_auth(user, Some(pass));
    }
    if let Some(t) = o.duration("timeout")? {
        rb = rb.timeout(t);
    }
    Ok(rb)
}

/// GET or POST `url` with `opts`; a POST sends the `body` argument.
fn request(call: &mut Call, method: reqwest::Method) -> Result<Dynamic, OpError> {
    let url = call.str("url")?;
    let opts = call.opts("opts")?;
    if method == reqwest::Method::GET {
        refuse_method_override(&opts)?;
    }
    refuse_two_credentials(&url, &opts)?;
    let client = client(call, opts.bool("insecure")?)?;
    let mut rb = client.request(method.clone(), &url);
    rb = apply_opts(rb, &opts)?;
    if method == reqwest::Method::POST {
        let (body, ctype) = body_of(call.value("body")?);
        if let Some(b) = body {
            rb = rb.body(b);
        }
        if let Some(c) = ctype {
            rb = rb.header(reqwest::header::CONTENT_TYPE, c);
        }
    }
    let shown = redact(&url);
    call.block_on(async move {
        let started = Instant::now();
        let resp = rb.send().await.map_err(|e| send_error(e, &shown))?;
        let status = resp.status();
        let final_url = resp.url().to_string();
        let mut headers = Map::new();
        for (k, v) in resp.headers() {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            headers
                .entry(k.as_str().into())
                .and_modify(|old| *old = format!("{old}, {v}").into())
                .or_insert_with(|| v.into());
        }
        let bytes = resp.bytes().await.map_err(|e| {
            OpError::failed(format!("reading the response body from {shown} failed")).with_cause(e)
        })?;
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        let body = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice::<serde_json::Value>(&bytes)
            .map(|v| from_json(&v))
            .unwrap_or(Dynamic::UNIT);
        Ok(Dynamic::from_map(map_of([
            ("status", Dynamic::from_int(i64::from(status.as_u16()))),
            ("ok", Dynamic::from_bool(status.is_success())),
            ("headers", Dynamic::from_map(headers)),
            ("body", body.into()),
            ("json", json),
            (
                "elapsed_ms",
                Dynamic::from_float((elapsed * 10.0).round() / 10.0),
            ),
            ("url", redact(&final_url).into()),
        ])))
    })
}

/// Headers many frameworks read as the real method: a GET carrying one is
/// a DELETE or a PUT that would slip past dry-run, confirmation and audit.
const METHOD_OVERRIDES: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

fn refuse_method_override(opts: &Opts) -> Result<(), OpError> {
    for (k, v) in opts.map("headers")?.unwrap_or_default() {
        if METHOD_OVERRIDES.contains(&k.to_ascii_lowercase().as_str()) {
            return Err(OpError::bad_input(format!(
                "http.get is a read, and header {k}: {v} would make the server treat it as another method"
            ))
            .with_hint("send a change with http.post (dry-run aware and audited), without the override header"));
        }
    }
    Ok(())
}

fn send_error(e: reqwest::Error, url: &str) -> OpError {
    // The innermost error names the problem (rustls: "invalid peer
    // certificate: UnknownIssuer"); the outer ones say "client error (Connect)".
    let cause = crate::dispatch::root_cause(&e);
    if let Some(hint) = certificate_hint(&cause) {
        return OpError::failed(format!("the TLS certificate of {url} was refused"))
            .with_cause(cause)
            .with_hint(hint);
    }
    let host = url::Url::parse(url).ok().map(|u| {
        format!(
            "{}:{}",
            u.host_str().unwrap_or("?"),
            u.port_or_known_default().unwrap_or(0)
        )
    });
    if e.is_connect() {
        if let Some(e) = crate::netcause::connect_error(
            &cause,
            "the service",
            url,
            host.as_deref().unwrap_or(url),
        ) {
            return e;
        }
    }
    if e.is_timeout() && e.is_connect() {
        OpError::new(
            crate::dispatch::ErrorKind::Timeout,
            format!("connecting to {url} timed out"),
        )
        .with_cause(cause)
        .with_hint("no answer at all: a firewall drops the packets, or the host is down")
    } else if e.is_timeout() {
        OpError::new(
            crate::dispatch::ErrorKind::Timeout,
            format!("request to {url} timed out"),
        )
        .with_cause(cause)
        .with_hint("the connection was made; the server did not finish answering in time (opts timeout, --call-timeout)")
    } else if e.is_connect() {
        OpError::failed(format!("cannot connect to {url}"))
            .with_cause(cause)
            .with_hint(format!(
                "is the service listening on {}?",
                host.unwrap_or_else(|| url.to_string())
            ))
    } else if e.is_builder() {
        OpError::bad_input(format!("invalid request to {url}")).with_cause(cause)
    } else {
        OpError::failed(format!("request to {url} failed")).with_cause(cause)
    }
}

/// What to do about a certificate rustls refused; None when `cause` is
/// not about a certificate.
fn certificate_hint(cause: &str) -> Option<&'static str> {
    if !cause.contains("certificate") {
        return None;
    }
    Some(
        if ["UnknownIssuer", "SelfSigned", "CaUsedAsEndEntity"]
            .iter()
            .any(|k| cause.contains(k))
        {
            "the server's certificate is self-signed or signed by a CA this machine does not trust; for a test endpoint only, #{insecure: true} skips the check"
        } else if cause.contains("NotValidForName") {
            "the certificate does not list the host name in the URL; use a name it lists"
        } else if cause.contains("Expired") {
            "the server's certificate has expired; renew it (tls.cert shows its dates)"
        } else if cause.contains("NotValidYet") {
            "the server's certificate is not valid yet: check the clocks of both machines"
        } else {
            "check the server's certificate chain (tls.cert shows it)"
        },
    )
}

/// Credentials from two places would mean two Authorization headers, and
/// which one the server reads is its choice: refuse instead of guessing.
fn refuse_two_credentials(url: &str, opts: &Opts) -> Result<(), OpError> {
    let mut from = Vec::new();
    if let Ok(u) = url::Url::parse(url) {
        if !u.username().is_empty() || u.password().is_some() {
            from.push("the URL's user:password");
        }
    }
    if opts.contains_key("bearer") {
        from.push("opts.bearer");
    }
    if opts.contains_key("basic") {
        from.push("opts.basic");
    }
    if opts
        .map("headers")?
        .unwrap_or_default()
        .keys()
        .any(|k| k.eq_ignore_ascii_case("authorization"))
    {
        from.push("an Authorization header");
    }
    if from.len() > 1 {
        return Err(OpError::bad_input(format!(
            "{} give credentials for the same request; only one can be sent",
            from.join(" and ")
        ))
        .with_hint("keep one: remove the user:password from the URL, or the bearer/basic option"));
    }
    Ok(())
}

pub const GET: Primitive = Primitive::read("get", get)
    .params(&[req("url", Ty::Str), opt("opts", Ty::Record(&HTTP_OPTS))])
    .returns(RESPONSE)
    .doc("GET a URL; a non-2xx status is a result, not an error.\n\
          Credentials come from one place: the URL's user:password, `bearer`, `basic` or an Authorization header; two of them is an error. A method-override header (X-HTTP-Method-Override) is refused: a change goes through http.post. A refused certificate is reported as such.")
    .example(r#"let r = http.get("https://api.example.com/health", #{timeout: "5s"}); r.status"#);

fn get(call: &mut Call) -> Result<Dynamic, OpError> {
    request(call, reqwest::Method::GET)
}

pub const POST: Primitive = Primitive::mutate("post", plan_post, post)
    .params(&[
        req("url", Ty::Str),
        opt("body", Ty::OneOf(&[Ty::Map, Ty::Array, Ty::Str])),
        opt("opts", Ty::Record(&HTTP_OPTS)),
    ])
    .returns(RESPONSE)
    .doc("POST to a URL; a map or array body is sent as JSON. Returns the same map as http.get.\n\
          A POST can change the world, so it is treated as a mutation: --dry-run reports it without sending, and it is audited. Credentials come from one place, as for http.get.")
    .example(r#"http.post("https://hooks.example.com/deploy", #{version: "1.2.3"})"#);

fn post(call: &mut Call) -> Result<Dynamic, OpError> {
    request(call, reqwest::Method::POST)
}

fn plan_post(call: &mut Call) -> Result<Plan, OpError> {
    let url = call.str("url")?;
    let (body, ctype) = body_of(call.value("body")?);
    let n = body.as_ref().map(Vec::len).unwrap_or(0);
    Ok(Plan {
        summary: format!(
            "would POST {n} bytes ({}) to {}",
            ctype.unwrap_or("no body"),
            redact(&url)
        ),
        details: map_of([
            ("url", redact(&url).into()),
            ("bytes", Dynamic::from_int(n as i64)),
        ]),
    })
}

pub const HMAC_SHA256: Primitive = Primitive::read("hmac_sha256", hmac_sha256)
    .params(&[
        req("secret", Ty::Str),
        req("body", Ty::OneOf(&[Ty::Str, Ty::Map, Ty::Array])),
        opt("encoding", Ty::Str),
    ])
    .returns(Ty::Str)
    .doc("HMAC-SHA256 of a body with a secret, as lowercase hex: the signature webhooks send (GitHub: \"sha256=\" + this).\n\
          A map or array body is signed as the JSON http.post sends, so sign and post the same value. encoding: \"hex\" (default) or \"base64\" (`openssl dgst -binary | base64`). The secret is masked in output and logs.")
    .example(r#"let sig = http.hmac_sha256("s3cret-key", `{"event":"ping"}`); let h = #{"X-Signature": `sha256=${sig}`};"#)
    .class(Class::Local);

fn hmac_sha256(call: &mut Call) -> Result<Dynamic, OpError> {
    use hmac::Mac;
    let secret = call.str("secret")?;
    crate::redact::register_secret(&secret);
    let (body, _) = body_of(call.value("body")?);
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|e| OpError::bad_input("unusable HMAC key").with_cause(e))?;
    mac.update(&body.unwrap_or_default());
    let sig = mac.finalize().into_bytes();
    match call.opt_str("encoding")?.as_deref() {
        None | Some("hex") => Ok(sig
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into()),
        Some("base64") => Ok(crate::value::b64(&sig).into()),
        Some(other) => Err(OpError::bad_input(format!("unknown encoding {other:?}"))
            .with_hint("use \"hex\" or \"base64\"")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(crate::value::b64(i.as_bytes()), o);
        }
    }
}
