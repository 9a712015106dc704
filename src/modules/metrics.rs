//! Any /metrics endpoint, fetched and parsed (the runbooks' `curl
//! app:9464/metrics | grep ...`), without a Prometheus in between.

use crate::config::{Kind, Target};
use crate::dispatch::{Call, OpError};
use crate::modules::prom::client::Http;
use crate::modules::prom::exposition::{self, Parsed};
use crate::redact::redact;
use crate::registry::{field, opt, req, Class, ModuleDecl, Primitive, Ty};
use crate::value::map_of;
use rhai::{Array, Dynamic, Map};

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "metrics",
    doc: "Prometheus text exposition: scrape a /metrics endpoint or parse text into typed samples.",
    target: None,
    primitives: &[SCRAPE, PARSE],
};

/// One sample line of the exposition.
const SAMPLES: Ty = Ty::Rows(&[
    field("name", Ty::Str),
    field("labels", Ty::Map).doc("label values unescaped"),
    field("value", Ty::Float).doc("NaN and ±Inf as floats"),
    field("type", Ty::Str).doc(
        "from `# TYPE`: counter, gauge, histogram, summary or untyped; \
         a histogram's _bucket/_sum/_count samples have type histogram",
    ),
    field("family", Ty::Str)
        .doc("the sample's own name, or the histogram's or summary's name for its _bucket/_sum/_count samples"),
    field("timestamp_ms", Ty::Int).doc("() when the line has no timestamp"),
]);

pub(crate) fn to_rows(p: Parsed) -> Dynamic {
    let rows: Array = p
        .samples
        .into_iter()
        .map(|s| {
            let labels: Map = s
                .labels
                .into_iter()
                .map(|(k, v)| (k.into(), Dynamic::from(v)))
                .collect();
            let mut m = map_of([
                ("name", Dynamic::from(s.name)),
                ("labels", Dynamic::from_map(labels)),
                ("value", Dynamic::from_float(s.value)),
                ("type", Dynamic::from(s.kind)),
                ("family", Dynamic::from(s.family)),
            ]);
            if let Some(t) = s.timestamp_ms {
                m.insert("timestamp_ms".into(), Dynamic::from_int(t));
            }
            Dynamic::from_map(m)
        })
        .collect();
    Dynamic::from_array(rows)
}

pub const PARSE: Primitive = Primitive::read("parse", parse)
    .params(&[req("text", Ty::Str)])
    .returns(SAMPLES)
    .doc("Parse Prometheus text exposition (as metrics.scrape does) from a string.")
    .example(r#"metrics.parse("up{job=\"api\"} 1\n")[0].value"#)
    .class(Class::Local);
fn parse(call: &mut Call) -> Result<Dynamic, OpError> {
    let text = call.str("text")?;
    let p = exposition::parse(&text)
        .map_err(|e| OpError::bad_input("not Prometheus text exposition").with_cause(e))?;
    Ok(to_rows(p))
}

pub const SCRAPE: Primitive = Primitive::read("scrape", scrape)
    .params(&[
        req("url", Ty::Str),
        opt(
            "opts",
            Ty::Record(&[
                field("bearer", Ty::Str).doc("a bearer token"),
                field("basic", Ty::List(&Ty::Str)).doc("basic auth: [user, password]"),
                field("timeout", Ty::Duration),
                field("headers", Ty::Map).doc("extra request headers"),
                field("query", Ty::Map).doc("query parameters added to the URL"),
            ]),
        ),
    ])
    .returns(SAMPLES)
    .doc("GET a /metrics endpoint and parse it: one row per sample.")
    .example(
        r#"let s = metrics.scrape("http://app:9464/metrics").filter(|s| s.name == "ahsan_score");"#,
    );
fn scrape(call: &mut Call) -> Result<Dynamic, OpError> {
    let url = call.str("url")?;
    let opts = call.opts("opts")?;
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(OpError::bad_input(format!(
            "{} is not an http(s) URL",
            redact(&url)
        )));
    }
    crate::redact::register_url(&url);
    let target = Target {
        kind: Kind::Prom,
        name: redact(&url),
        url: url.clone(),
        protected: false,
        // opts.bearer is applied with the other request options below.
        bearer: None,
        ca_file: None,
    };
    let h = Http::new(call, &target)?;
    let mut rb = h
        .request(reqwest::Method::GET, "")
        .header(reqwest::header::ACCEPT, "text/plain;version=0.0.4");
    rb = crate::modules::http::apply_opts(rb, &opts)?;
    let r = call.block_on(h.send(rb))?;
    if !r.status.is_success() {
        return Err(r.not_api("metrics"));
    }
    let text = String::from_utf8_lossy(&r.body);
    let p = exposition::parse(&text).map_err(|e| {
        OpError::failed(format!(
            "{} did not return Prometheus text exposition ({})",
            r.url,
            if r.content_type.is_empty() {
                "no content type"
            } else {
                &r.content_type
            }
        ))
        .with_cause(e)
        .with_hint(
            "is this the /metrics path? OpenMetrics-only and protobuf endpoints are not supported",
        )
    })?;
    Ok(to_rows(p))
}
