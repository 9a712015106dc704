//! Any /metrics endpoint, fetched and parsed (the runbooks' `curl
//! app:9464/metrics | grep ...`), without a Prometheus in between.

use crate::config::{Kind, Target};
use crate::dispatch::{Call, OpError};
use crate::modules::prom::client::Http;
use crate::modules::prom::exposition::{self, Parsed};
use crate::redact::redact;
use crate::registry::{opt, req, Class, ModuleDecl, Primitive, Ty};
use crate::value::map_of;
use rhai::{Array, Dynamic, Map};

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "metrics",
    doc: "Prometheus text exposition: scrape a /metrics endpoint or parse text into typed samples.",
    target: None,
    primitives: &[
        Primitive::read("scrape", scrape)
            .params(&[req("url", Ty::Str), opt("opts", Ty::Map)])
            .returns(Ty::Rows(&[]))
            .doc("GET a /metrics endpoint and parse it: one #{name, labels, value, type, family} per sample \
                  (plus timestamp_ms when the line has one). type comes from `# TYPE` (a histogram's _bucket/_sum/_count \
                  samples have type histogram and family = the histogram's name); label values are unescaped.\n\
                  opts: bearer (token), basic ([user, password]), timeout (\"5s\"), headers (map).")
            .example(r#"let s = metrics.scrape("http://app:9464/metrics").filter(|s| s.name == "ahsan_score");"#),
        Primitive::read("parse", parse)
            .params(&[req("text", Ty::Str)])
            .returns(Ty::Rows(&[]))
            .doc("Parse Prometheus text exposition (as metrics.scrape does) from a string.")
            .example(r#"metrics.parse("up{job=\"api\"} 1\n")[0].value"#)
            .class(Class::Local),
    ],
};

fn to_rows(p: Parsed) -> Dynamic {
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
    crate::output::column_order_hint(
        &["name", "labels", "value", "type", "family"].map(String::from),
    );
    Dynamic::from_array(rows)
}

fn parse(call: &mut Call) -> Result<Dynamic, OpError> {
    let text = call.str_at(0)?;
    let p = exposition::parse(&text)
        .map_err(|e| OpError::bad_input("not Prometheus text exposition").with_cause(e))?;
    Ok(to_rows(p))
}

fn scrape(call: &mut Call) -> Result<Dynamic, OpError> {
    let url = call.str_at(0)?;
    let opts = call.opts_at(1)?;
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
