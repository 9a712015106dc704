//! Alertmanager (API v2): alerts as it sees them, silences.

use crate::config::Kind;
use crate::dispatch::{Call, OpError, Plan};
use crate::engine::Handle;
use crate::modules::prom::client::Http;
use crate::registry::{field, opt, req, Field, ModuleDecl, Primitive, Ty};
use crate::value::{from_json, map_of};
use rhai::{Array, Dynamic, Map};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};

pub static MODULE: ModuleDecl = ModuleDecl {
    name: "alertmanager",
    doc: "Alertmanager: alerts and silences. Targets come from [alertmanager.NAME] in the config or ALERTMANAGER_URL.",
    target: Some(Kind::Alertmanager),
    primitives: &[CONNECT, ALERTS, SILENCES, SILENCE, EXPIRE_SILENCE],
};

/// Label matchers: a map means equality, a string is a selector.
const MATCHERS: Ty = Ty::OneOf(&[Ty::Map, Ty::Str]);

#[derive(Debug, Clone, PartialEq)]
struct Matcher {
    name: String,
    value: String,
    regex: bool,
    equal: bool,
}

impl Matcher {
    fn op(&self) -> &'static str {
        match (self.equal, self.regex) {
            (true, false) => "=",
            (false, false) => "!=",
            (true, true) => "=~",
            (false, true) => "!~",
        }
    }

    fn text(&self) -> String {
        format!(
            "{}{}\"{}\"",
            self.name,
            self.op(),
            crate::modules::prom::exposition::escape_label(&self.value)
        )
    }
}

fn matchers_text(ms: &[Matcher]) -> String {
    format!(
        "{{{}}}",
        ms.iter().map(Matcher::text).collect::<Vec<_>>().join(", ")
    )
}

/// `{a="x", b=~"y.*"}` or `a="x",b!=y` (quotes optional).
fn parse_selector(s: &str) -> Result<Vec<Matcher>, String> {
    let body = s.trim();
    let body = body
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .unwrap_or(body);
    let mut out = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace() || *c == ',').is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(c) = chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_') {
            name.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut op = String::new();
        while let Some(c) = chars.next_if(|c| matches!(c, '=' | '!' | '~')) {
            op.push(c);
        }
        let (equal, regex) = match op.as_str() {
            "=" => (true, false),
            "!=" => (false, false),
            "=~" => (true, true),
            "!~" => (false, true),
            _ => return Err(format!("expected =, !=, =~ or !~ after {name:?}")),
        };
        if name.is_empty() {
            return Err("a matcher needs a label name".into());
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated value for {name}")),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some('n') => value.push('\n'),
                        Some(c) => value.push(c),
                        None => return Err(format!("unterminated value for {name}")),
                    },
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                value.push(c);
            }
            value = value.trim().to_string();
        }
        out.push(Matcher {
            name,
            value,
            regex,
            equal,
        });
    }
    Ok(out)
}

/// The `matchers` argument; `required`: a silence needs at least one.
fn matchers_arg(call: &Call, required: bool) -> Result<Vec<Matcher>, OpError> {
    let hint = "give a map #{alertname: \"X\"} or a selector string `{alertname=\"X\", severity=~\"warn|crit\"}`";
    // Dispatch has checked it is a map or a string.
    let ms = match call.value("matchers")? {
        None => Vec::new(),
        Some(d) => match d.read_lock::<Map>() {
            Some(m) => m
                .iter()
                .map(|(k, v)| Matcher {
                    name: k.to_string(),
                    value: v.to_string(),
                    regex: false,
                    equal: true,
                })
                .collect(),
            None => parse_selector(&d.to_string()).map_err(|e| {
                OpError::bad_input(format!("invalid matchers {d}: {e}")).with_hint(hint)
            })?,
        },
    };
    if required && ms.is_empty() {
        return Err(OpError::bad_input("a silence needs at least one matcher").with_hint(hint));
    }
    Ok(ms)
}

fn get(call: &mut Call, path: &str, query: &[(&str, String)]) -> Result<Value, OpError> {
    let h = Http::for_call(call)?;
    let rb = h.request(reqwest::Method::GET, path).query(query);
    call.block_on(async { h.send(rb).await?.json("Alertmanager") })
}

pub const CONNECT: Primitive = Primitive::handle("connect", connect, false)
    .params(&[req("target", Ty::Str).target()])
    .doc("Use a named target or an http(s):// URL; returns a handle with the same methods as `alertmanager`.")
    .example(r#"let am = alertmanager.connect("prod"); am.alerts().len()"#);
fn connect(call: &mut Call) -> Result<Dynamic, OpError> {
    let name = call.str("target")?;
    let t = call.session.resolve(Kind::Alertmanager, Some(&name))?;
    call.set_target(t);
    get(call, "api/v2/status", &[])?;
    Ok(Dynamic::from(Handle {
        module: call.prim.module.name,
        target: Some(name),
    }))
}

fn s(v: &Value) -> Dynamic {
    v.as_str()
        .map(|x| Dynamic::from(x.to_string()))
        .unwrap_or(Dynamic::UNIT)
}

fn current_alerts(call: &mut Call, ms: &[Matcher]) -> Result<Vec<Value>, OpError> {
    let q: Vec<(&str, String)> = ms.iter().map(|m| ("filter", m.text())).collect();
    let v = get(call, "api/v2/alerts", &q)?;
    Ok(v.as_array().cloned().unwrap_or_default())
}

pub const ALERTS: Primitive = Primitive::read("alerts", alerts)
    .params(&[opt("matchers", MATCHERS)])
    .returns(Ty::Rows(&[
        field("name", Ty::Str).doc("the alertname label"),
        field("state", Ty::Str).doc("active, suppressed (silenced or inhibited) or unprocessed"),
        field("starts_at", Ty::Str).doc("RFC 3339"),
        field("ends_at", Ty::Str).doc("RFC 3339"),
        field("labels", Ty::Map),
        field("annotations", Ty::Map),
        field("silenced_by", Ty::List(&Ty::Str)).doc("ids of the silences that silence it"),
        field("inhibited_by", Ty::List(&Ty::Str)).doc("fingerprints of the alerts that inhibit it"),
        field("receivers", Ty::List(&Ty::Str)).doc("names of the receivers it is routed to"),
        field("fingerprint", Ty::Str),
    ]))
    .doc("Alerts Alertmanager holds, one row per alert.\n\
          matchers filter on the server: a map means equality (#{alertname: \"X\"}), a string is a selector \
          (`{severity=~\"crit|page\", team!=\"db\"}`).")
    .example(r#"let firing = alertmanager.alerts(#{severity: "critical"}).filter(|a| a.state == "active");"#);
fn alerts(call: &mut Call) -> Result<Dynamic, OpError> {
    let ms = matchers_arg(call, false)?;
    let rows: Array = current_alerts(call, &ms)?
        .iter()
        .map(|a| {
            let names = |v: &Value| {
                Dynamic::from_array(
                    v.as_array()
                        .map(|x| x.iter().map(|r| s(&r["name"])).collect())
                        .unwrap_or_default(),
                )
            };
            Dynamic::from_map(map_of([
                ("name", s(&a["labels"]["alertname"])),
                ("state", s(&a["status"]["state"])),
                ("labels", from_json(&a["labels"])),
                ("annotations", from_json(&a["annotations"])),
                ("starts_at", s(&a["startsAt"])),
                ("ends_at", s(&a["endsAt"])),
                ("silenced_by", from_json(&a["status"]["silencedBy"])),
                ("inhibited_by", from_json(&a["status"]["inhibitedBy"])),
                ("receivers", names(&a["receivers"])),
                ("fingerprint", s(&a["fingerprint"])),
            ]))
        })
        .collect();
    Ok(Dynamic::from_array(rows))
}

fn silence_matchers(v: &Value) -> String {
    let ms: Vec<Matcher> = v["matchers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| Matcher {
            name: m["name"].as_str().unwrap_or("").into(),
            value: m["value"].as_str().unwrap_or("").into(),
            regex: m["isRegex"].as_bool().unwrap_or(false),
            equal: m["isEqual"].as_bool().unwrap_or(true),
        })
        .collect();
    matchers_text(&ms)
}

/// A silence's matchers as a selector, the way scripts write them.
const SILENCE_MATCHERS: Field =
    field("matchers", Ty::Str).doc("as a selector: {alertname=\"X\", severity=~\"crit|page\"}");

pub const SILENCES: Primitive = Primitive::read("silences", silences)
    .returns(Ty::Rows(&[
        field("id", Ty::Str),
        field("state", Ty::Str).doc("active, pending or expired"),
        SILENCE_MATCHERS,
        field("comment", Ty::Str),
        field("created_by", Ty::Str),
        field("starts_at", Ty::Str).doc("RFC 3339"),
        field("ends_at", Ty::Str).doc("RFC 3339"),
    ]))
    .doc("Silences, one row per silence, expired ones included.")
    .example(r#"let active = alertmanager.silences().filter(|s| s.state == "active");"#);
fn silences(call: &mut Call) -> Result<Dynamic, OpError> {
    let v = get(call, "api/v2/silences", &[])?;
    let rows: Array = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| {
            Dynamic::from_map(map_of([
                ("id", s(&x["id"])),
                ("state", s(&x["status"]["state"])),
                ("matchers", Dynamic::from(silence_matchers(x))),
                ("comment", s(&x["comment"])),
                ("created_by", s(&x["createdBy"])),
                ("starts_at", s(&x["startsAt"])),
                ("ends_at", s(&x["endsAt"])),
            ]))
        })
        .collect();
    Ok(Dynamic::from_array(rows))
}

fn silence_args(call: &Call) -> Result<(Vec<Matcher>, Duration, String), OpError> {
    let ms = matchers_arg(call, true)?;
    let dur = call
        .opt_duration("duration")?
        .ok_or_else(|| OpError::bad_input("a duration is required (\"2h\")"))?;
    if dur.is_zero() {
        return Err(OpError::bad_input("a silence needs a positive duration"));
    }
    let comment = call.str("comment")?;
    if comment.trim().is_empty() {
        return Err(OpError::bad_input("a silence needs a comment saying why")
            .with_hint("e.g. \"disk resize in progress, ticket OPS-123\""));
    }
    Ok((ms, dur, comment))
}

fn names_of(alerts: &[Value]) -> Vec<String> {
    alerts
        .iter()
        .map(|a| a["labels"]["alertname"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn plan_silence(call: &mut Call) -> Result<Plan, OpError> {
    let (ms, dur, comment) = silence_args(call)?;
    let current = current_alerts(call, &ms)?;
    let names = names_of(&current);
    let what = if names.is_empty() {
        "no current alert matches".to_string()
    } else {
        format!(
            "it would silence {} current alerts: {}",
            names.len(),
            names.join(", ")
        )
    };
    Ok(Plan {
        summary: format!(
            "would silence {} for {} ({}); {what}",
            matchers_text(&ms),
            humantime::format_duration(dur),
            comment
        ),
        details: map_of([
            ("matchers", Dynamic::from(matchers_text(&ms))),
            (
                "alerts",
                Dynamic::from_array(names.into_iter().map(Dynamic::from).collect()),
            ),
        ]),
    })
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

pub const SILENCE: Primitive = Primitive::mutate("silence", plan_silence, silence)
    .params(&[
        req("matchers", MATCHERS),
        req("duration", Ty::Duration),
        req("comment", Ty::Str),
    ])
    .returns(Ty::Record(&[
        field("id", Ty::Str).doc("the new silence's id"),
        SILENCE_MATCHERS,
        field("ends_at", Ty::Str).doc("RFC 3339"),
        field("alerts", Ty::List(&Ty::Str)).doc("names of the current alerts it silences"),
    ]))
    .doc("Create a silence from now for `duration` (\"2h\").\n\
          matchers as for alertmanager.alerts. --dry-run lists the current alerts the matchers would silence.")
    .example(r#"let s = alertmanager.silence(#{alertname: "DiskFull", instance: "db1"}, "2h", "disk resize in progress"); print(s.id)"#);
fn silence(call: &mut Call) -> Result<Dynamic, OpError> {
    let (ms, dur, comment) = silence_args(call)?;
    let current = current_alerts(call, &ms)?;
    let now = SystemTime::now();
    let ends = rfc3339(now + dur);
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let body = json!({
        "matchers": ms.iter().map(|m| json!({"name": m.name, "value": m.value, "isRegex": m.regex, "isEqual": m.equal})).collect::<Vec<_>>(),
        "startsAt": rfc3339(now),
        "endsAt": ends,
        "createdBy": format!("{user} (opsh)"),
        "comment": comment,
    });
    let h = Http::for_call(call)?;
    let rb = h
        .request(reqwest::Method::POST, "api/v2/silences")
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string());
    let v = call.block_on(async { h.send(rb).await?.json("Alertmanager") })?;
    let id = v["silenceID"].as_str().unwrap_or("").to_string();
    Ok(Dynamic::from_map(map_of([
        ("id", Dynamic::from(id)),
        ("matchers", Dynamic::from(matchers_text(&ms))),
        ("ends_at", Dynamic::from(ends)),
        (
            "alerts",
            Dynamic::from_array(names_of(&current).into_iter().map(Dynamic::from).collect()),
        ),
    ])))
}

fn silence_by_id(call: &mut Call) -> Result<(String, Value), OpError> {
    let id = call.str("id")?;
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(OpError::bad_input(format!("{id:?} is not a silence id")));
    }
    let v = get(call, &format!("api/v2/silence/{id}"), &[]).map_err(|e| {
        if e.message.contains("404") {
            OpError::bad_input(format!("no silence with id {id}")).with_hint(format!(
                "list them with {}.silences()",
                call.prim.module.name
            ))
        } else {
            e
        }
    })?;
    Ok((id, v))
}

fn plan_expire(call: &mut Call) -> Result<Plan, OpError> {
    let (id, v) = silence_by_id(call)?;
    let state = v["status"]["state"].as_str().unwrap_or("unknown");
    let summary = if state == "expired" {
        format!("silence {id} is already expired; nothing would change")
    } else {
        format!(
            "would expire {state} silence {id} {} ({}), created by {}",
            silence_matchers(&v),
            v["comment"].as_str().unwrap_or(""),
            v["createdBy"].as_str().unwrap_or("?")
        )
    };
    Ok(Plan {
        summary,
        details: map_of([
            ("id", Dynamic::from(id)),
            ("state", Dynamic::from(state.to_string())),
            ("matchers", Dynamic::from(silence_matchers(&v))),
        ]),
    })
}

pub const EXPIRE_SILENCE: Primitive = Primitive::mutate("expire_silence", plan_expire, expire)
    .params(&[req("id", Ty::Str)])
    .returns(Ty::Record(&[
        field("id", Ty::Str),
        SILENCE_MATCHERS,
        field("was", Ty::Str)
            .doc("its state before: active, pending or expired (then nothing changed)"),
    ]))
    .doc("Expire (end now) a silence by id. Expiring an expired silence changes nothing.")
    .example(r#"alertmanager.expire_silence("8d6c1f0e-3b7a-4d8e-9c1a-2f4b5e6d7c8b")"#);
fn expire(call: &mut Call) -> Result<Dynamic, OpError> {
    let (id, v) = silence_by_id(call)?;
    let was = v["status"]["state"]
        .as_str()
        .unwrap_or("unknown")
        .to_string();
    if was != "expired" {
        let h = Http::for_call(call)?;
        let rb = h.request(reqwest::Method::DELETE, &format!("api/v2/silence/{id}"));
        call.block_on(async { h.send(rb).await?.json("Alertmanager") })?;
    }
    Ok(Dynamic::from_map(map_of([
        ("id", Dynamic::from(id)),
        ("matchers", Dynamic::from(silence_matchers(&v))),
        ("was", Dynamic::from(was)),
    ])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse() {
        let m =
            parse_selector(r#"{alertname="Disk Full", severity=~"warn|crit", team!=db}"#).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].value, "Disk Full");
        assert!(m[1].regex && m[1].equal);
        assert!(!m[2].equal && !m[2].regex);
        assert_eq!(m[2].value, "db");
        assert_eq!(m[1].text(), r#"severity=~"warn|crit""#);
        assert!(parse_selector("{a}").is_err());
        assert!(parse_selector(r#"{a="x}"#).is_err());
    }
}
