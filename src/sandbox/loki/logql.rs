//! The part of LogQL the sandbox's Loki answers: stream selectors, line
//! filters, `| json`, `| logfmt`, label filters, `count_over_time`,
//! `rate`, `bytes_over_time`, `bytes_rate` and `sum|avg|min|max|count
//! [by|without (..)]`. What it does not know is a parse error, as Loki's
//! own are, so a script never silently gets a wrong answer.

use regex::Regex;
use std::collections::BTreeMap;

pub type Labels = BTreeMap<String, String>;

#[derive(Debug)]
pub struct ParseError {
    pub col: usize,
    pub msg: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Loki's wording, so scripts and docs show what a real one says.
        write!(f, "parse error at line 1, col {}: {}", self.col, self.msg)
    }
}

#[derive(Debug, Clone)]
pub enum MatchOp {
    Eq,
    Ne,
    Re(Regex),
    NotRe(Regex),
}

#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
}

impl Matcher {
    pub fn matches(&self, v: &str) -> bool {
        match &self.op {
            MatchOp::Eq => v == self.value,
            MatchOp::Ne => v != self.value,
            MatchOp::Re(r) => r.is_match(v),
            MatchOp::NotRe(r) => !r.is_match(v),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cmp {
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone)]
pub enum Stage {
    Contains(String),
    NotContains(String),
    LineRe(Regex),
    LineNotRe(Regex),
    Json,
    Logfmt,
    /// Alternatives joined by `or`, each a conjunction (`and` or `,`).
    Filter(Vec<Vec<LabelFilter>>),
}

#[derive(Debug, Clone)]
pub enum LabelFilter {
    Str(Matcher),
    Num(String, Cmp, f64),
    NumEq(String, bool, f64),
}

#[derive(Debug, Clone)]
pub struct LogQuery {
    pub selector: Vec<Matcher>,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RangeFn {
    Count,
    Rate,
    Bytes,
    BytesRate,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AggFn {
    Sum,
    Avg,
    Min,
    Max,
    Count,
}

#[derive(Debug, Clone)]
pub enum Metric {
    Range {
        f: RangeFn,
        q: LogQuery,
        range_ns: i64,
    },
    Agg {
        f: AggFn,
        by: Option<(bool, Vec<String>)>,
        inner: Box<Metric>,
    },
}

#[derive(Debug, Clone)]
pub enum Expr {
    Log(LogQuery),
    Metric(Metric),
}

// ---- lexer ----

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Dur(i64),
    Op(&'static str),
}

fn lex(s: &str) -> Result<Vec<(usize, Tok)>, ParseError> {
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let perr = |col: usize, msg: String| ParseError { col: col + 1, msg };
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '"' || c == '`' {
            let quote = c;
            i += 1;
            let mut v = String::new();
            loop {
                match b.get(i) {
                    None => return Err(perr(start, "syntax error: unterminated string".into())),
                    Some(&q) if q == quote => {
                        i += 1;
                        break;
                    }
                    Some('\\') if quote == '"' => {
                        match b.get(i + 1) {
                            Some('n') => v.push('\n'),
                            Some('t') => v.push('\t'),
                            Some(&x) => v.push(x),
                            None => {
                                return Err(perr(start, "syntax error: unterminated string".into()))
                            }
                        }
                        i += 2;
                    }
                    Some(&x) => {
                        v.push(x);
                        i += 1;
                    }
                }
            }
            out.push((start, Tok::Str(v)));
            continue;
        }
        if c.is_ascii_digit() {
            let mut j = i;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == '.') {
                j += 1;
            }
            let text: String = b[i..j].iter().collect();
            i = j;
            if let Ok(n) = text.parse::<f64>() {
                out.push((start, Tok::Num(n)));
            } else if let Ok(d) = humantime::parse_duration(&text) {
                out.push((start, Tok::Dur(d.as_nanos() as i64)));
            } else {
                return Err(perr(start, format!("syntax error: unexpected {text}")));
            }
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let mut j = i;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == '_') {
                j += 1;
            }
            out.push((start, Tok::Ident(b[i..j].iter().collect())));
            i = j;
            continue;
        }
        let two: String = b[i..(i + 2).min(b.len())].iter().collect();
        let op = [
            "|=", "!=", "|~", "!~", "=~", "==", ">=", "<=", "{", "}", "(", ")", "[", "]", ",", "|",
            "=", ">", "<",
        ]
        .into_iter()
        .find(|o| two.starts_with(o));
        match op {
            Some(o) => {
                i += o.chars().count();
                out.push((start, Tok::Op(o)));
            }
            None => return Err(perr(start, format!("syntax error: unexpected {c:?}"))),
        }
    }
    Ok(out)
}

// ---- parser ----

struct P {
    toks: Vec<(usize, Tok)>,
    i: usize,
    end: usize,
}

impl P {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.1)
    }
    fn col(&self) -> usize {
        self.toks.get(self.i).map(|t| t.0).unwrap_or(self.end) + 1
    }
    fn err<T>(&self, msg: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            col: self.col(),
            msg: msg.into(),
        })
    }
    fn unexpected<T>(&self) -> Result<T, ParseError> {
        match self.peek() {
            None => self.err("syntax error: unexpected end of query"),
            Some(t) => self.err(format!("syntax error: unexpected {}", show(t))),
        }
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.i).map(|t| t.1.clone());
        self.i += 1;
        t
    }
    fn eat(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Op(o)) if *o == op) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, op: &str) -> Result<(), ParseError> {
        if self.eat(op) {
            Ok(())
        } else {
            self.unexpected()
        }
    }
    fn ident(&mut self) -> Result<String, ParseError> {
        match self.peek() {
            Some(Tok::Ident(s)) => {
                let s = s.clone();
                self.i += 1;
                Ok(s)
            }
            _ => self.unexpected(),
        }
    }
    fn string(&mut self) -> Result<String, ParseError> {
        match self.peek() {
            Some(Tok::Str(s)) => {
                let s = s.clone();
                self.i += 1;
                Ok(s)
            }
            _ => self.unexpected(),
        }
    }
}

fn show(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("IDENTIFIER {s}"),
        Tok::Str(s) => format!("STRING {s:?}"),
        Tok::Num(n) => format!("NUMBER {n}"),
        Tok::Dur(_) => "DURATION".into(),
        Tok::Op(o) => o.to_string(),
    }
}

fn regex(p: &P, s: &str) -> Result<Regex, ParseError> {
    // LogQL regexes are anchored on both ends for label matchers.
    Regex::new(&format!("^(?:{s})$")).or_else(|e| p.err(format!("invalid regex {s:?}: {e}")))
}

pub fn parse(query: &str) -> Result<Expr, ParseError> {
    let toks = lex(query)?;
    let mut p = P {
        toks,
        i: 0,
        end: query.chars().count(),
    };
    let e = match p.peek() {
        Some(Tok::Op("{")) => Expr::Log(log_query(&mut p)?),
        Some(Tok::Ident(_)) => Expr::Metric(metric(&mut p)?),
        _ => return p.unexpected(),
    };
    if p.peek().is_some() {
        return p.unexpected();
    }
    Ok(e)
}

/// A stream selector alone, as `/series` and `/labels` take it.
pub fn parse_selector(s: &str) -> Result<Vec<Matcher>, ParseError> {
    let mut p = P {
        toks: lex(s)?,
        i: 0,
        end: s.chars().count(),
    };
    let m = selector(&mut p)?;
    if p.peek().is_some() {
        return p.unexpected();
    }
    Ok(m)
}

fn selector(p: &mut P) -> Result<Vec<Matcher>, ParseError> {
    p.expect("{")?;
    let mut ms = Vec::new();
    loop {
        if p.eat("}") {
            break;
        }
        let name = p.ident()?;
        let op = match p.next() {
            Some(Tok::Op("=")) => "=",
            Some(Tok::Op("!=")) => "!=",
            Some(Tok::Op("=~")) => "=~",
            Some(Tok::Op("!~")) => "!~",
            _ => {
                p.i -= 1;
                return p.unexpected();
            }
        };
        let value = p.string()?;
        ms.push(matcher(p, name, op, value)?);
        if !p.eat(",") {
            p.expect("}")?;
            break;
        }
    }
    if !ms.iter().any(|m| !m.matches("")) {
        return p.err("queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will");
    }
    Ok(ms)
}

fn matcher(p: &P, name: String, op: &str, value: String) -> Result<Matcher, ParseError> {
    let op = match op {
        "=" | "==" => MatchOp::Eq,
        "!=" => MatchOp::Ne,
        "=~" => MatchOp::Re(regex(p, &value)?),
        _ => MatchOp::NotRe(regex(p, &value)?),
    };
    Ok(Matcher { name, op, value })
}

fn log_query(p: &mut P) -> Result<LogQuery, ParseError> {
    let selector = selector(p)?;
    let mut stages = Vec::new();
    loop {
        let stage = match p.peek() {
            Some(Tok::Op("|=")) => {
                p.i += 1;
                Stage::Contains(p.string()?)
            }
            Some(Tok::Op("!=")) => {
                p.i += 1;
                Stage::NotContains(p.string()?)
            }
            Some(Tok::Op("|~")) => {
                p.i += 1;
                let s = p.string()?;
                Stage::LineRe(Regex::new(&s).or_else(|e| p.err(format!("invalid regex: {e}")))?)
            }
            Some(Tok::Op("!~")) => {
                p.i += 1;
                let s = p.string()?;
                Stage::LineNotRe(Regex::new(&s).or_else(|e| p.err(format!("invalid regex: {e}")))?)
            }
            Some(Tok::Op("|")) => {
                p.i += 1;
                match p.peek() {
                    Some(Tok::Ident(s)) if s == "json" => {
                        p.i += 1;
                        Stage::Json
                    }
                    Some(Tok::Ident(s)) if s == "logfmt" => {
                        p.i += 1;
                        Stage::Logfmt
                    }
                    Some(Tok::Ident(_)) => Stage::Filter(label_filters(p)?),
                    _ => return p.unexpected(),
                }
            }
            _ => break,
        };
        stages.push(stage);
    }
    Ok(LogQuery { selector, stages })
}

fn label_filters(p: &mut P) -> Result<Vec<Vec<LabelFilter>>, ParseError> {
    let mut any = vec![vec![label_filter(p)?]];
    loop {
        if p.eat(",") {
            let f = label_filter(p)?;
            if let Some(a) = any.last_mut() {
                a.push(f);
            }
            continue;
        }
        match p.peek() {
            Some(Tok::Ident(s)) if s == "and" => {
                p.i += 1;
                let f = label_filter(p)?;
                if let Some(a) = any.last_mut() {
                    a.push(f);
                }
            }
            Some(Tok::Ident(s)) if s == "or" => {
                p.i += 1;
                any.push(vec![label_filter(p)?]);
            }
            _ => return Ok(any),
        }
    }
}

fn label_filter(p: &mut P) -> Result<LabelFilter, ParseError> {
    let name = p.ident()?;
    let op = match p.next() {
        Some(Tok::Op(o)) if ["=", "==", "!=", "=~", "!~", ">", ">=", "<", "<="].contains(&o) => o,
        _ => {
            p.i -= 1;
            return p.unexpected();
        }
    };
    match p.next() {
        Some(Tok::Str(v)) if matches!(op, "=" | "==" | "!=" | "=~" | "!~") => {
            Ok(LabelFilter::Str(matcher(p, name, op, v)?))
        }
        Some(Tok::Num(n)) => Ok(num_filter(name, op, n)),
        Some(Tok::Dur(ns)) => Ok(num_filter(name, op, ns as f64 / 1e9)),
        _ => {
            p.i -= 1;
            p.unexpected()
        }
    }
}

fn num_filter(name: String, op: &str, n: f64) -> LabelFilter {
    match op {
        ">" => LabelFilter::Num(name, Cmp::Gt, n),
        ">=" => LabelFilter::Num(name, Cmp::Ge, n),
        "<" => LabelFilter::Num(name, Cmp::Lt, n),
        "<=" => LabelFilter::Num(name, Cmp::Le, n),
        "!=" => LabelFilter::NumEq(name, false, n),
        _ => LabelFilter::NumEq(name, true, n),
    }
}

fn grouping(p: &mut P) -> Result<Option<(bool, Vec<String>)>, ParseError> {
    let without = match p.peek() {
        Some(Tok::Ident(s)) if s == "by" => false,
        Some(Tok::Ident(s)) if s == "without" => true,
        _ => return Ok(None),
    };
    p.i += 1;
    p.expect("(")?;
    let mut names = Vec::new();
    while !p.eat(")") {
        names.push(p.ident()?);
        if !p.eat(",") {
            p.expect(")")?;
            break;
        }
    }
    Ok(Some((without, names)))
}

fn metric(p: &mut P) -> Result<Metric, ParseError> {
    let name = p.ident()?;
    let range_fn = match name.as_str() {
        "count_over_time" => Some(RangeFn::Count),
        "rate" => Some(RangeFn::Rate),
        "bytes_over_time" => Some(RangeFn::Bytes),
        "bytes_rate" => Some(RangeFn::BytesRate),
        _ => None,
    };
    if let Some(f) = range_fn {
        p.expect("(")?;
        let q = log_query(p)?;
        p.expect("[")?;
        let range_ns = match p.next() {
            Some(Tok::Dur(ns)) if ns > 0 => ns,
            _ => {
                p.i -= 1;
                return p.unexpected();
            }
        };
        p.expect("]")?;
        p.expect(")")?;
        return Ok(Metric::Range { f, q, range_ns });
    }
    let f = match name.as_str() {
        "sum" => AggFn::Sum,
        "avg" => AggFn::Avg,
        "min" => AggFn::Min,
        "max" => AggFn::Max,
        "count" => AggFn::Count,
        _ => {
            p.i -= 1;
            return p.err(format!(
                "syntax error: unexpected IDENTIFIER {name} (the sandbox's Loki knows count_over_time, rate, bytes_over_time, bytes_rate, sum, avg, min, max, count)"
            ));
        }
    };
    let mut by = grouping(p)?;
    p.expect("(")?;
    let inner = metric(p)?;
    p.expect(")")?;
    if by.is_none() {
        by = grouping(p)?;
    }
    Ok(Metric::Agg {
        f,
        by,
        inner: Box::new(inner),
    })
}

// ---- evaluation ----

/// One entry through a query's stages: its labels afterwards, or None when
/// a stage dropped it.
pub fn apply(q: &LogQuery, stream: &Labels, line: &str) -> Option<Labels> {
    let mut labels = stream.clone();
    for st in &q.stages {
        match st {
            Stage::Contains(s) if !line.contains(s.as_str()) => return None,
            Stage::NotContains(s) if line.contains(s.as_str()) => return None,
            Stage::LineRe(r) if !r.is_match(line) => return None,
            Stage::LineNotRe(r) if r.is_match(line) => return None,
            Stage::Json => match serde_json::from_str::<serde_json::Value>(line) {
                Ok(serde_json::Value::Object(o)) => {
                    let mut flat = Vec::new();
                    flatten(&serde_json::Value::Object(o), &mut flat);
                    extend(&mut labels, stream, flat);
                }
                _ => {
                    labels.insert("__error__".into(), "JSONParserErr".into());
                }
            },
            Stage::Logfmt => match logfmt(line) {
                Some(kv) => extend(&mut labels, stream, kv),
                None => {
                    labels.insert("__error__".into(), "LogfmtParserErr".into());
                }
            },
            Stage::Filter(any) if !any.iter().any(|all| all.iter().all(|f| keep(f, &labels))) => {
                return None
            }
            _ => {}
        }
    }
    Some(labels)
}

fn keep(f: &LabelFilter, labels: &Labels) -> bool {
    let get = |n: &str| labels.get(n).map(String::as_str).unwrap_or("");
    match f {
        LabelFilter::Str(m) => m.matches(get(&m.name)),
        LabelFilter::Num(n, cmp, x) => match number(get(n)) {
            Some(v) => match cmp {
                Cmp::Gt => v > *x,
                Cmp::Ge => v >= *x,
                Cmp::Lt => v < *x,
                Cmp::Le => v <= *x,
            },
            None => false,
        },
        LabelFilter::NumEq(n, eq, x) => number(get(n)).is_some_and(|v| (v == *x) == *eq),
    }
}

/// A number, or a duration in seconds ("2.5s", "300ms").
fn number(s: &str) -> Option<f64> {
    s.parse::<f64>()
        .ok()
        .or_else(|| humantime::parse_duration(s).ok().map(|d| d.as_secs_f64()))
}

fn flatten(v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    crate::modules::loki::json_leaves("", v, &mut |k, x| {
        let text = match x {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.push((k, text));
    });
}

/// An extracted label that clashes with a stream label gets `_extracted`.
fn extend(labels: &mut Labels, stream: &Labels, kv: Vec<(String, String)>) {
    for (k, v) in kv {
        if k.is_empty() {
            continue;
        }
        let key = if stream.contains_key(&k) {
            format!("{k}_extracted")
        } else {
            k
        };
        labels.insert(key, v);
    }
}

/// None when a quoted value is left open, which Loki reports as an error.
fn logfmt(line: &str) -> Option<Vec<(String, String)>> {
    match crate::modules::loki::logfmt_pairs(line) {
        (pairs, true) => Some(pairs),
        (_, false) => None,
    }
}

pub fn selects(ms: &[Matcher], labels: &Labels) -> bool {
    ms.iter()
        .all(|m| m.matches(labels.get(&m.name).map(String::as_str).unwrap_or("")))
}

/// One grouped series: label set -> value.
pub type Vector = BTreeMap<Labels, f64>;

/// A metric expression at `t` (unix ns). `entries` yields, for a log
/// query, every (labels after the pipeline, ts, line) of the streams.
/// For a log query and [from, to): (labels after its pipeline, ts, line length).
pub type Entries<'a> = &'a dyn Fn(&LogQuery, i64, i64) -> Vec<(Labels, i64, usize)>;

pub fn eval_metric(m: &Metric, t: i64, entries: Entries<'_>) -> Result<Vector, String> {
    match m {
        Metric::Range { f, q, range_ns } => {
            let mut v = Vector::new();
            // (t - range, t]: Loki's window.
            for (labels, _, len) in entries(q, t - range_ns + 1, t + 1) {
                if let Some(e) = labels.get("__error__") {
                    // Loki refuses to count lines its pipeline failed on.
                    let shown: Vec<String> =
                        labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
                    return Err(format!(
                        "pipeline error: '{e}' for series: '{{{}}}'.\nUse a label filter to intentionally skip this error. (e.g | __error__!=\"{e}\").\nTo skip all potential errors you can match empty errors.(e.g __error__=\"\")\nThe label filter can also be specified after unwrap. (e.g | unwrap latency | __error__=\"\" )",
                        shown.join(", ")
                    ));
                }
                let add = match f {
                    RangeFn::Count | RangeFn::Rate => 1.0,
                    RangeFn::Bytes | RangeFn::BytesRate => len as f64,
                };
                *v.entry(labels).or_insert(0.0) += add;
            }
            if matches!(f, RangeFn::Rate | RangeFn::BytesRate) {
                let secs = *range_ns as f64 / 1e9;
                for x in v.values_mut() {
                    *x /= secs;
                }
            }
            Ok(v)
        }
        Metric::Agg { f, by, inner } => {
            let src = eval_metric(inner, t, entries)?;
            let mut groups: BTreeMap<Labels, Vec<f64>> = BTreeMap::new();
            for (labels, x) in src {
                let key: Labels = match by {
                    None => Labels::new(),
                    Some((false, names)) => labels
                        .into_iter()
                        .filter(|(k, _)| names.contains(k))
                        .collect(),
                    Some((true, names)) => labels
                        .into_iter()
                        .filter(|(k, _)| !names.contains(k))
                        .collect(),
                };
                groups.entry(key).or_default().push(x);
            }
            Ok(groups
                .into_iter()
                .map(|(k, xs)| {
                    let n = xs.len() as f64;
                    let v = match f {
                        AggFn::Sum => xs.iter().sum(),
                        AggFn::Avg => xs.iter().sum::<f64>() / n,
                        AggFn::Min => xs.iter().copied().fold(f64::INFINITY, f64::min),
                        AggFn::Max => xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                        AggFn::Count => n,
                    };
                    (k, v)
                })
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(kv: &[(&str, &str)]) -> Labels {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_runbook_queries_parse_and_filter() {
        let s = labels(&[("app", "api")]);
        let Expr::Log(q) = parse(r#"{app="api"} |= "unauthorized" | json | status="401""#).unwrap()
        else {
            panic!("not a log query")
        };
        let l = apply(&q, &s, r#"{"msg":"unauthorized","status":401}"#).unwrap();
        assert_eq!(l["status"], "401");
        assert!(apply(&q, &s, r#"{"msg":"unauthorized","status":403}"#).is_none());
        let Expr::Log(q) = parse(r#"{app="api"} | json | duration > 2000"#).unwrap() else {
            panic!("not a log query")
        };
        assert!(apply(&q, &s, r#"{"duration":2500}"#).is_some());
        assert!(apply(&q, &s, r#"{"duration":20}"#).is_none());
        assert!(apply(&q, &s, "not json").is_none());
        let Expr::Log(q) = parse(r#"{app=~"a.+"} | logfmt | level="error""#).unwrap() else {
            panic!("not a log query")
        };
        let l = apply(&q, &s, r#"level=error msg="db down" app=x"#).unwrap();
        assert_eq!(l["msg"], "db down");
        assert_eq!(l["app_extracted"], "x");
    }

    #[test]
    fn errors_name_the_column() {
        let e = parse(r#"{app="api"} | json | status=="#).unwrap_err();
        assert!(
            e.to_string().starts_with("parse error at line 1, col"),
            "{e}"
        );
        assert!(parse(r#"{app=~".*"}"#).is_err());
        assert!(parse(r#"topk(3, count_over_time({a="b"}[5m]))"#).is_err());
        assert!(parse(r#"sum by (app) (count_over_time({a="b"} |= "x" [5m]))"#).is_ok());
    }
}
