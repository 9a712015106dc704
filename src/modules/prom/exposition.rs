//! The Prometheus text exposition format (version 0.0.4), parsed into
//! samples typed by their family's `# TYPE`. Hand-written: the format is
//! small, and the crates that parse it pull in far more than this.

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// The family the sample belongs to: `x` for `x_bucket` of histogram `x`.
    pub family: String,
    /// counter, gauge, histogram, summary, untyped (from `# TYPE`).
    pub kind: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
    pub text: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}: {:?}", self.line, self.message, self.text)
    }
}

#[derive(Default)]
pub struct Parsed {
    pub samples: Vec<Sample>,
    pub help: HashMap<String, String>,
}

pub fn parse(text: &str) -> Result<Parsed, ParseError> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut out = Parsed::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let fail = |message: &str| ParseError {
            line: i + 1,
            message: message.to_string(),
            text: raw.chars().take(200).collect(),
        };
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let mut parts = rest.trim_start().splitn(3, [' ', '\t']);
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    types.insert(name.to_string(), kind.trim().to_string());
                }
                (Some("HELP"), Some(name), doc) => {
                    out.help
                        .insert(name.to_string(), unescape_help(doc.unwrap_or("").trim()));
                }
                _ => {}
            }
            continue;
        }
        let (name, labels, rest) = sample_head(line).map_err(|m| fail(&m))?;
        let mut fields = rest.split_whitespace();
        let value = fields
            .next()
            .ok_or_else(|| fail("missing value"))
            .and_then(|v| parse_value(v).ok_or_else(|| fail("invalid value")))?;
        let timestamp_ms = match fields.next() {
            Some(t) => Some(t.parse::<i64>().map_err(|_| fail("invalid timestamp"))?),
            None => None,
        };
        let (family, kind) = family_of(&name, &types);
        out.samples.push(Sample {
            name,
            family,
            kind,
            labels,
            value,
            timestamp_ms,
        });
    }
    Ok(out)
}

/// `x_bucket` belongs to histogram `x`, `x_sum`/`x_count` to a histogram or
/// summary `x`; otherwise the sample is its own family.
fn family_of(name: &str, types: &HashMap<String, String>) -> (String, String) {
    if let Some(k) = types.get(name) {
        return (name.to_string(), k.clone());
    }
    for suffix in ["_bucket", "_sum", "_count", "_created"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if let Some(k) = types.get(base) {
                if k == "histogram" || k == "summary" {
                    return (base.to_string(), k.clone());
                }
            }
        }
    }
    (name.to_string(), "untyped".into())
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

type Head<'a> = (String, Vec<(String, String)>, &'a str);

/// `name{a="x",b="y"} rest` -> (name, labels, rest).
fn sample_head(line: &str) -> Result<Head<'_>, String> {
    let end = line
        .char_indices()
        .find(|(_, c)| !is_name_char(*c))
        .map(|(i, _)| i)
        .unwrap_or(line.len());
    let name = &line[..end];
    if name.is_empty() || !name.starts_with(is_name_start) {
        return Err("invalid metric name".into());
    }
    let rest = line[end..].trim_start();
    let Some(body) = rest.strip_prefix('{') else {
        return Ok((name.to_string(), Vec::new(), rest));
    };
    let mut labels = Vec::new();
    let mut chars = body.char_indices().peekable();
    loop {
        while chars
            .next_if(|(_, c)| c.is_whitespace() || *c == ',')
            .is_some()
        {}
        match chars.peek() {
            Some((i, '}')) => {
                let after = &body[i + 1..];
                return Ok((name.to_string(), labels, after));
            }
            None => return Err("unterminated label set".into()),
            _ => {}
        }
        let mut lname = String::new();
        while let Some((_, c)) = chars.next_if(|(_, c)| is_name_char(*c)) {
            lname.push(c);
        }
        if lname.is_empty() || !lname.starts_with(is_name_start) {
            return Err("invalid label name".into());
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        if chars.next().map(|(_, c)| c) != Some('=') {
            return Err(format!("expected = after label {lname}"));
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        if chars.next().map(|(_, c)| c) != Some('"') {
            return Err(format!("expected \" to open the value of label {lname}"));
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                None => return Err(format!("unterminated value of label {lname}")),
                Some((_, '"')) => break,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    // Lenient like Prometheus's own parser: keep unknown escapes.
                    Some((_, c)) => {
                        value.push('\\');
                        value.push(c);
                    }
                    None => return Err(format!("unterminated value of label {lname}")),
                },
                Some((_, c)) => value.push(c),
            }
        }
        labels.push((lname, value));
    }
}

fn unescape_help(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => out.push('\n'),
                Some('\\') => out.push('\\'),
                Some(o) => {
                    out.push('\\');
                    out.push(o);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub fn parse_value(v: &str) -> Option<f64> {
    match v {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => v.parse().ok(),
    }
}

/// Escapes a label value for the text format (the inverse of the parser).
pub fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn valid_metric_name(n: &str) -> bool {
    n.starts_with(is_name_start) && n.chars().all(is_name_char)
}

pub fn valid_label_name(n: &str) -> bool {
    n.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One sample line: `name{labels} value`.
pub fn format_sample(name: &str, labels: &[(String, String)], value: f64) -> String {
    let v = if value.is_nan() {
        "NaN".to_string()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{value}")
    };
    if labels.is_empty() {
        format!("{name} {v}")
    } else {
        let l: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
            .collect();
        format!("{name}{{{}}} {v}", l.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3 1395066363000

# Escaping in label values:
msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9

# Minimalistic line:
metric_without_timestamp_and_labels 12.47

# A weird metric from before the epoch:
something_weird{problem="division by zero"} +Inf -3982045

# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.05"} 24054
http_request_duration_seconds_bucket{le="+Inf"} 144320
http_request_duration_seconds_sum 53423
http_request_duration_seconds_count 144320

# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.5"} 4773
rpc_duration_seconds_sum 1.7560473e+07
rpc_duration_seconds_count 2693
"#;

    #[test]
    fn parses_the_reference_example() {
        let p = parse(TEXT).unwrap();
        assert_eq!(p.samples.len(), 12);
        let s = &p.samples[0];
        assert_eq!(s.name, "http_requests_total");
        assert_eq!(s.kind, "counter");
        assert_eq!(s.value, 1027.0);
        assert_eq!(s.timestamp_ms, Some(1395066363000));
        assert_eq!(
            s.labels,
            vec![
                ("method".to_string(), "post".to_string()),
                ("code".into(), "200".into())
            ]
        );
        assert_eq!(
            p.help["http_requests_total"],
            "The total number of HTTP requests."
        );
    }

    #[test]
    fn unescapes_label_values() {
        let p = parse(TEXT).unwrap();
        let s = &p.samples[2];
        assert_eq!(s.labels[0].1, r"C:\DIR\FILE.TXT");
        assert_eq!(s.labels[1].1, "Cannot find file:\n\"FILE.TXT\"");
        assert_eq!(s.kind, "untyped");
        // A value with `}` , `,` and `=` inside quotes is data, not syntax.
        let p = parse("x{a=\"}=,\\\"\",b=\"\"} 1\n").unwrap();
        assert_eq!(
            p.samples[0].labels,
            vec![("a".into(), "}=,\"".into()), ("b".into(), String::new())]
        );
    }

    #[test]
    fn escape_roundtrips() {
        let v = "a\\b\"c\nd";
        let line = format_sample("m", &[("l".into(), v.into())], 2.5);
        let p = parse(&line).unwrap();
        assert_eq!(p.samples[0].labels[0].1, v);
        assert_eq!(p.samples[0].value, 2.5);
    }

    #[test]
    fn types_histogram_and_summary_members() {
        let p = parse(TEXT).unwrap();
        let bucket = p
            .samples
            .iter()
            .find(|s| s.name == "http_request_duration_seconds_bucket")
            .unwrap();
        assert_eq!(bucket.family, "http_request_duration_seconds");
        assert_eq!(bucket.kind, "histogram");
        assert_eq!(bucket.labels[0].1, "0.05");
        let inf = &p.samples[6];
        assert_eq!(inf.labels[0].1, "+Inf");
        let sum = p
            .samples
            .iter()
            .find(|s| s.name == "rpc_duration_seconds_sum")
            .unwrap();
        assert_eq!(sum.kind, "summary");
        assert_eq!(sum.family, "rpc_duration_seconds");
        let weird = p
            .samples
            .iter()
            .find(|s| s.name == "something_weird")
            .unwrap();
        assert!(weird.value.is_infinite());
        assert_eq!(weird.timestamp_ms, Some(-3982045));
    }

    #[test]
    fn reports_bad_lines() {
        let e = parse("ok 1\nbad{a=\"x} 1\n").err().unwrap();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("unterminated"), "{e}");
        assert!(parse("9bad 1").is_err());
        assert!(parse("x{a=\"1\"} notanumber").is_err());
        assert!(parse("x").is_err());
    }
}
