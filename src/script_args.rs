//! Declared script arguments: the `//! args:` block of a script's header
//! comment, read without running the script, and the one place where
//! `--arg` text (or a runbook test's `run(file, #{..})` map, or a recording's
//! args) becomes the script's `args`: typed, defaulted and checked
//! (docs/scripting.md#arguments). Also the text fix-ups every reader of a
//! script applies (a UTF-8 BOM, a `#!` line).
//!
//! ```text
//! //! args:
//! //!   saturation_pct: int = 85     act at or above this saturation
//! //!   database: string?            only sessions of this database
//! //!   image: string (required)     the image to roll out
//! ```

use rhai::{Dynamic, Map};
use std::fmt::Write as _;

/// A script's text as the engine reads it: without a UTF-8 BOM, and with a
/// `#!` first line turned into a comment of the same length, so that line
/// and column numbers stay those of the file.
pub fn source(text: String) -> String {
    let text = match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    };
    match text.strip_prefix("#!") {
        Some(rest) => format!("//{rest}"),
        None => text,
    }
}

/// The type of a declared argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    Str,
    Int,
    /// A number; an int given for it becomes a float.
    Float,
    /// An int or a float, as given (a threshold: `90` stays 90, `92.5` works).
    Number,
    Bool,
    /// A string humantime reads ("5m", "1h 30m"), kept as written: the
    /// primitives take durations as strings.
    Duration,
    /// JSON (`["a","b"]`) or, on the command line, comma-separated (`a,b`).
    List(Box<Ty>),
    /// A JSON object.
    Map,
    /// What `--arg` gives a script without a declaration.
    Any,
    /// Exactly this string (`"rollout"|"not_ready"|bool`).
    Lit(String),
    /// The first alternative that accepts the value.
    Union(Vec<Ty>),
}

const TYPE_NAMES: &str = "string, int, float, number (an int or a float, as given), bool, duration, map, any, [T] (a list of T), \"word\" (that exact string), and alternatives A|B";

impl Ty {
    pub fn parse(s: &str) -> Result<Ty, String> {
        let parts = split_top(s, '|');
        if parts.len() > 1 {
            return parts
                .iter()
                .map(|p| Ty::parse(p))
                .collect::<Result<Vec<_>, _>>()
                .map(Ty::Union);
        }
        let s = s.trim();
        if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            return Ok(Ty::List(Box::new(Ty::parse(inner)?)));
        }
        if s.starts_with('"') {
            return serde_json::from_str::<String>(s)
                .map(Ty::Lit)
                .map_err(|_| format!("bad string {s} in the type"));
        }
        Ok(match s {
            "string" | "str" => Ty::Str,
            "int" => Ty::Int,
            "float" => Ty::Float,
            "number" => Ty::Number,
            "bool" => Ty::Bool,
            "duration" => Ty::Duration,
            "list" | "array" => Ty::List(Box::new(Ty::Any)),
            "map" => Ty::Map,
            "any" => Ty::Any,
            "" => return Err(format!("no type: the types are {TYPE_NAMES}")),
            other => {
                let known = [
                    "string", "int", "float", "number", "bool", "duration", "map", "any", "list",
                ];
                let hint = crate::registry::suggest(other, known.into_iter())
                    .map(|k| format!("did you mean {k}? "))
                    .unwrap_or_default();
                return Err(format!(
                    "unknown type {other:?}: {hint}the types are {TYPE_NAMES}"
                ));
            }
        })
    }

    /// The type in a sentence: "an int", "one of \"fast\", \"safe\"".
    fn phrase(&self) -> String {
        match self {
            Ty::Union(ts) => format!(
                "one of {}",
                ts.iter().map(Ty::name).collect::<Vec<_>>().join(", ")
            ),
            Ty::Lit(l) => format!("the word {l:?}"),
            Ty::List(_) => format!("a list {}", self.name()),
            other => article(&other.name()),
        }
    }

    pub fn name(&self) -> String {
        match self {
            Ty::Str => "string".into(),
            Ty::Int => "int".into(),
            Ty::Float => "float".into(),
            Ty::Number => "number".into(),
            Ty::Bool => "bool".into(),
            Ty::Duration => "duration".into(),
            Ty::List(t) => format!("[{}]", t.name()),
            Ty::Map => "map".into(),
            Ty::Any => "any".into(),
            Ty::Lit(l) => format!("{l:?}"),
            Ty::Union(ts) => ts.iter().map(Ty::name).collect::<Vec<_>>().join("|"),
        }
    }

    /// A value of this type as the command line spells it, for hints.
    fn example(&self) -> String {
        match self {
            Ty::Str | Ty::Any => "TEXT".into(),
            Ty::Int => "85".into(),
            Ty::Float => "0.5".into(),
            Ty::Number => "90".into(),
            Ty::Bool => "true".into(),
            Ty::Duration => "5m".into(),
            Ty::List(t) => format!("{0},{0}", t.example()),
            Ty::Map => r#"{"key":"value"}"#.into(),
            Ty::Lit(l) => l.clone(),
            Ty::Union(ts) => ts.first().map(Ty::example).unwrap_or_default(),
        }
    }

    /// A value given as command-line text.
    pub fn from_text(&self, s: &str) -> Option<Dynamic> {
        match self {
            Ty::Str => Some(s.into()),
            Ty::Int => s.trim().parse::<i64>().ok().map(Dynamic::from_int),
            Ty::Float => s
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && s.chars().any(|c| c.is_ascii_digit()))
                .map(Dynamic::from_float),
            Ty::Number => Ty::Int.from_text(s).or_else(|| Ty::Float.from_text(s)),
            Ty::Bool => match s.trim() {
                "true" => Some(true.into()),
                "false" => Some(false.into()),
                _ => None,
            },
            Ty::Duration => humantime::parse_duration(s.trim()).ok().map(|_| s.into()),
            Ty::List(t) => {
                let s = s.trim();
                if s.starts_with('[') {
                    let j: serde_json::Value = serde_json::from_str(s).ok()?;
                    return self.from_value(&crate::value::from_json(&j));
                }
                if s.is_empty() {
                    return Some(Dynamic::from_array(Vec::new()));
                }
                s.split(',')
                    .map(|x| t.from_text(x.trim()))
                    .collect::<Option<Vec<_>>>()
                    .map(Dynamic::from_array)
            }
            Ty::Map => {
                let j: serde_json::Value = serde_json::from_str(s.trim()).ok()?;
                j.is_object().then(|| crate::value::from_json(&j))
            }
            Ty::Any => infer(s).ok(),
            Ty::Lit(l) => (s == l).then(|| s.into()),
            Ty::Union(ts) => ts.iter().find_map(|t| t.from_text(s)),
        }
    }

    /// A value given as a Rhai value (a test's `run(file, #{..})`, a
    /// recording). A string is read as command-line text would be.
    pub fn from_value(&self, v: &Dynamic) -> Option<Dynamic> {
        if let Some(s) = v.clone().try_cast::<rhai::ImmutableString>() {
            return self.from_text(&s);
        }
        match self {
            Ty::Str | Ty::Duration | Ty::Lit(_) => None,
            Ty::Int => v.as_int().ok().map(Dynamic::from_int),
            Ty::Float => v
                .as_float()
                .ok()
                .or_else(|| v.as_int().ok().map(|i| i as f64))
                .map(Dynamic::from_float),
            Ty::Number => (v.is_int() || v.is_float()).then(|| v.clone()),
            Ty::Bool => v.as_bool().ok().map(Dynamic::from_bool),
            Ty::List(t) => {
                let a = v.clone().try_cast::<rhai::Array>()?;
                a.iter()
                    .map(|x| t.from_value(x))
                    .collect::<Option<Vec<_>>>()
                    .map(Dynamic::from_array)
            }
            Ty::Map => v.is_map().then(|| v.clone()),
            Ty::Any => Some(v.clone()),
            Ty::Union(ts) => ts.iter().find_map(|t| t.from_value(v)),
        }
    }
}

/// "an int", "a string".
fn article(name: &str) -> String {
    match name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        true => format!("an {name}"),
        false => format!("a {name}"),
    }
}

/// Splits at `sep` outside quotes and brackets.
fn split_top(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut escaped, mut start) = (0i32, false, false, 0);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '[' | '{' if !quoted => depth += 1,
            ']' | '}' if !quoted => depth -= 1,
            c if c == sep && !quoted && depth == 0 => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Where a token of a declaration line ends: at whitespace (or `=`, for a
/// type) outside quotes and brackets.
fn token_end(s: &str, stop_at_eq: bool) -> usize {
    let (mut depth, mut quoted, mut escaped) = (0i32, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '[' | '{' if !quoted => depth += 1,
            ']' | '}' if !quoted => depth -= 1,
            c if !quoted && depth <= 0 && (c.is_whitespace() || (stop_at_eq && c == '=')) => {
                return i
            }
            _ => {}
        }
    }
    s.len()
}

/// `--arg` text for a script without a declaration: ints, floats,
/// `true`/`false` and JSON arrays/maps are typed, the rest are strings.
/// A number that an int cannot hold exactly (`12345678901234567890`) or
/// with leading zeros (`007`) stays a string: an id, not a quantity.
pub fn infer(v: &str) -> Result<Dynamic, String> {
    let digits = v.strip_prefix(['-', '+']).unwrap_or(v);
    let all_digits = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    if all_digits && digits.len() > 1 && digits.starts_with('0') {
        return Ok(v.into());
    }
    if let Ok(i) = v.parse::<i64>() {
        return Ok(Dynamic::from_int(i));
    }
    if all_digits {
        return Ok(v.into());
    }
    if let Some(f) = Ty::Float.from_text(v) {
        return Ok(f);
    }
    if v == "true" || v == "false" {
        return Ok(Dynamic::from_bool(v == "true"));
    }
    if v.starts_with('[') || v.starts_with('{') {
        return serde_json::from_str::<serde_json::Value>(v)
            .map(|j| crate::value::from_json(&j))
            .map_err(|e| format!("invalid JSON: {e}"));
    }
    Ok(v.into())
}

/// One declared argument.
#[derive(Debug, Clone)]
pub struct Arg {
    pub name: String,
    pub ty: Ty,
    /// The default as written in the declaration, and its value.
    pub default: Option<(String, Dynamic)>,
    /// Absent unless given: `args.NAME` is `()`.
    pub optional: bool,
    pub doc: String,
    /// 1-based line of its declaration.
    pub line: usize,
}

impl Arg {
    /// A value for hints: the default when it is a plain word or number.
    fn example(&self) -> String {
        match &self.default {
            Some((t, _)) if !t.starts_with(['[', '{']) => t.trim_matches('"').to_string(),
            _ => self.ty.example(),
        }
    }

    pub fn required(&self) -> bool {
        self.default.is_none() && !self.optional
    }
}

/// The `//! args:` block.
#[derive(Debug, Clone, Default)]
pub struct Declaration {
    pub args: Vec<Arg>,
    /// 1-based line of `//! args:`.
    pub line: usize,
}

impl Declaration {
    pub fn get(&self, name: &str) -> Option<&Arg> {
        self.args.iter().find(|a| a.name == name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> + Clone {
        self.args.iter().map(|a| a.name.as_str())
    }
}

/// A problem in a declaration, where it is (1-based line and column).
#[derive(Debug, Clone, PartialEq)]
pub struct DeclError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

const ENTRY_FORM: &str =
    "an argument reads `NAME: TYPE = DEFAULT  doc`, `NAME: TYPE?  doc` (optional) or `NAME: TYPE (required)  doc`";

/// Whether a line is in the header: the blank and `//` lines at the top.
fn header_lines(text: &str) -> usize {
    text.lines()
        .enumerate()
        .take_while(|(i, l)| {
            let l = l.trim();
            l.is_empty() || l.starts_with("//") || (*i == 0 && l.starts_with("#!"))
        })
        .count()
}

fn is_marker(line: &str) -> Option<&str> {
    let rest = line.trim().strip_prefix("//!")?.trim_start();
    rest.strip_prefix("args:").map(str::trim)
}

/// The script's declaration, read from its text without running it: None
/// when it has no `//! args:` block.
pub fn declaration(text: &str) -> Result<Option<Declaration>, DeclError> {
    let lines: Vec<&str> = text.lines().collect();
    let header = header_lines(text);
    let mut markers = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| is_marker(l).is_some());
    let Some((start, marker)) = markers.next() else {
        return Ok(None);
    };
    let col_of = |l: &str| l.len() - l.trim_start().len() + 1;
    if let Some((i, l)) = markers.next() {
        return Err(DeclError {
            line: i + 1,
            col: col_of(l),
            message: "a second `//! args:` block: declare every argument in one".into(),
        });
    }
    if start >= header {
        return Err(DeclError {
            line: start + 1,
            col: col_of(marker),
            message: "`//! args:` must be in the comment header at the top of the script, before any code".into(),
        });
    }
    let mut decl = Declaration {
        args: Vec::new(),
        line: start + 1,
    };
    match is_marker(marker) {
        Some("" | "none") => {}
        Some(other) => {
            return Err(DeclError {
                line: start + 1,
                col: col_of(marker),
                message: format!("unexpected {other:?} after `//! args:`: the arguments go on the `//!` lines below it (or `//! args: none`)"),
            })
        }
        None => {}
    }
    let mut entry_indent: Option<usize> = None;
    for (i, raw) in lines.iter().enumerate().skip(start + 1) {
        let Some(body_at) = raw
            .find("//!")
            .filter(|_| raw.trim_start().starts_with("//!"))
        else {
            break;
        };
        let body = &raw[body_at + 3..];
        let content = body.trim_start();
        if content.trim().is_empty() {
            continue;
        }
        let indent = body.len() - content.len();
        let col = body_at + 3 + indent + 1;
        let err = |message: String| DeclError {
            line: i + 1,
            col,
            message,
        };
        match entry_indent {
            Some(e) if indent > e => {
                // Indented deeper than the entries: the doc goes on.
                if let Some(last) = decl.args.last_mut() {
                    if !last.doc.is_empty() {
                        last.doc.push(' ');
                    }
                    last.doc.push_str(content.trim());
                }
                continue;
            }
            None => entry_indent = Some(indent),
            _ => {}
        }
        let arg = entry(content.trim_end(), i + 1).map_err(err)?;
        if decl.get(&arg.name).is_some() {
            return Err(DeclError {
                line: i + 1,
                col,
                message: format!("argument {} is declared twice", arg.name),
            });
        }
        decl.args.push(arg);
    }
    Ok(Some(decl))
}

/// One `NAME: TYPE ...  doc` line.
fn entry(s: &str, line: usize) -> Result<Arg, String> {
    let Some((name, rest)) = s.split_once(':') else {
        return Err(format!("no `:` after the name: {ENTRY_FORM}"));
    };
    let name = name.trim();
    if name.is_empty()
        || name.starts_with(|c: char| c.is_ascii_digit())
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(format!(
            "argument name {name:?}: use letters, digits and _ (a name a script can write as args.NAME)"
        ));
    }
    let rest = rest.trim_start();
    let end = token_end(rest, true);
    let (ty_text, mut rest) = rest.split_at(end);
    let (ty_text, optional) = match ty_text.strip_suffix('?') {
        Some(t) => (t, true),
        None => (ty_text, false),
    };
    let ty = Ty::parse(ty_text).map_err(|e| format!("argument {name}: {e}"))?;
    rest = rest.trim_start();
    let mut default = None;
    let mut required = false;
    if let Some(after) = rest.strip_prefix('=') {
        let after = after.trim_start();
        let end = token_end(after, false);
        let (text, tail) = after.split_at(end);
        let value = literal(text).map_err(|e| format!("argument {name}: default {text}: {e}"))?;
        let value = ty.from_value(&value).ok_or_else(|| {
            format!(
                "argument {name}: the default {text} is not {} (e.g. {})",
                ty.phrase(),
                ty.example()
            )
        })?;
        default = Some((text.to_string(), value));
        rest = tail.trim_start();
    } else if let Some(tail) = rest.strip_prefix("(required)") {
        required = true;
        rest = tail.trim_start();
    }
    if optional && (default.is_some() || required) {
        return Err(format!(
            "argument {name}: `?` (optional, no default) with {}: pick one",
            if required { "(required)" } else { "a default" }
        ));
    }
    Ok(Arg {
        name: name.to_string(),
        ty,
        default,
        optional,
        doc: rest.trim().to_string(),
        line,
    })
}

/// A default as written: JSON (`85`, `"5m"`, `["a"]`, `{"k": 1}`, `true`)
/// or a bare word (`5m`, `/api/health`), which is a string.
fn literal(text: &str) -> Result<Dynamic, String> {
    if text.is_empty() {
        return Err("nothing after `=`".into());
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(j) => Ok(crate::value::from_json(&j)),
        Err(e) if text.starts_with(['"', '[', '{']) => Err(format!("not valid JSON: {e}")),
        Err(_) => Ok(text.into()),
    }
}

/// An argument as given: `--arg` text, or a value.
#[derive(Debug, Clone)]
pub enum Given {
    Text(String),
    Value(Dynamic),
}

/// `--arg NAME=VALUE` as a shell takes it: quoted when the value has
/// characters a shell reads (`{"k":"v"}`, `[1, 2]`).
fn flag(name: &str, value: &str) -> String {
    let plain = value
        .chars()
        .all(|c| c.is_alphanumeric() || "_-.,:/@%+=".contains(c));
    match plain {
        true => format!("--arg {name}={value}"),
        false => format!("--arg '{name}={value}'"),
    }
}

/// A value as an error message shows it: `"abc"`, `the map #{..}`.
fn describe(v: &Dynamic) -> String {
    if v.is_string() {
        return format!("{:?}", v.to_string());
    }
    let kind = match () {
        _ if v.is_int() => "the int",
        _ if v.is_float() => "the float",
        _ if v.is_bool() => "the bool",
        _ if v.is_array() => "the list",
        _ if v.is_map() => "the map",
        _ => "the value",
    };
    format!("{kind} {v}")
}

/// Why the arguments given do not fit the script (exit 64).
#[derive(Debug, Clone, PartialEq)]
pub struct ArgError {
    pub message: String,
    pub hint: String,
}

/// `--arg KEY=VALUE` pairs as given on the command line: a key twice is an
/// error, not "the last one wins".
pub fn split_pairs(pairs: &[String]) -> Result<Vec<(String, Given)>, String> {
    let mut out: Vec<(String, Given)> = Vec::new();
    for p in pairs {
        let Some((k, v)) = p.split_once('=') else {
            return Err(format!("--arg {p:?} is not KEY=VALUE"));
        };
        let k = k.trim();
        if k.is_empty() || !k.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Err(format!("--arg key {k:?} must be letters, digits and _"));
        }
        if out.iter().any(|(seen, _)| seen == k) {
            return Err(format!(
                "--arg {k} is given twice; give each argument once (a list: --arg '{k}=[\"a\",\"b\"]')"
            ));
        }
        out.push((k.to_string(), Given::Text(v.to_string())));
    }
    Ok(out)
}

/// The script's `args`: every given argument checked against the
/// declaration and converted to its type, defaults filled in, and `()` for
/// an optional argument not given. Without a declaration, today's rule:
/// text is inferred (`infer`), values pass as they are.
pub fn resolve(
    script: &str,
    decl: Option<&Declaration>,
    given: Vec<(String, Given)>,
) -> Result<Map, ArgError> {
    let help = format!("`opsh help {script}` lists its arguments");
    let Some(decl) = decl else {
        let mut m = Map::new();
        for (k, g) in given {
            let v = match g {
                Given::Text(t) => infer(&t).map_err(|e| ArgError {
                    message: format!("--arg {k}: {e}"),
                    hint: "quote the value for the shell: --arg 'k=[\"a\",\"b\"]'".into(),
                })?,
                Given::Value(v) => v,
            };
            m.insert(k.into(), v);
        }
        return Ok(m);
    };
    let mut problems: Vec<String> = Vec::new();
    let mut hint = help.clone();
    let mut m = Map::new();
    for (k, g) in given {
        let Some(arg) = decl.get(&k) else {
            let mut p = format!("{script} has no argument {k}");
            match crate::registry::suggest(&k, decl.names()) {
                Some(s) => p.push_str(&format!("; did you mean {s}?")),
                None if decl.args.is_empty() => p.push_str(" (it declares none)"),
                None => p.push_str(&format!(
                    " (it declares: {})",
                    decl.names().collect::<Vec<_>>().join(", ")
                )),
            }
            problems.push(p);
            continue;
        };
        let converted = match &g {
            Given::Value(v) if v.is_unit() => continue,
            Given::Text(t) => arg.ty.from_text(t),
            Given::Value(v) => arg.ty.from_value(v),
        };
        match converted {
            Some(v) => {
                m.insert(k.into(), v);
            }
            None => {
                let shown = match &g {
                    Given::Text(t) => format!("{t:?}"),
                    Given::Value(v) => describe(v),
                };
                problems.push(format!(
                    "argument {k} of {script} is {}; {shown} is not",
                    arg.ty.phrase()
                ));
                hint = format!("e.g. {}; {help}", flag(&k, &arg.example()));
            }
        }
    }
    let missing: Vec<&Arg> = decl
        .args
        .iter()
        .filter(|a| a.required() && !m.contains_key(a.name.as_str()))
        .collect();
    if !missing.is_empty() && problems.is_empty() {
        hint = format!(
            "give {}; {help}",
            missing
                .iter()
                .map(|a| flag(&a.name, &a.ty.example()))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    if !missing.is_empty() {
        let each: Vec<String> = missing
            .iter()
            .map(|a| match a.doc.is_empty() {
                true => format!("{} ({})", a.name, a.ty.name()),
                false => format!("{} ({}: {})", a.name, a.ty.name(), a.doc),
            })
            .collect();
        problems.push(match each.as_slice() {
            [one] => format!("{script} needs the argument {one}"),
            [rest @ .., last] => format!(
                "{script} needs the arguments {} and {last}",
                rest.join(", ")
            ),
            [] => String::new(),
        });
    }
    if !problems.is_empty() {
        return Err(ArgError {
            message: problems.join("; "),
            hint,
        });
    }
    for a in &decl.args {
        if m.contains_key(a.name.as_str()) {
            continue;
        }
        let v = match &a.default {
            Some((_, v)) => v.clone(),
            None => Dynamic::UNIT,
        };
        m.insert(a.name.as_str().into(), v);
    }
    Ok(m)
}

/// The names a script reads from `args` in its text: `args.NAME`,
/// `args["NAME"]` and `"NAME" in args`, with 1-based line and column. None
/// when the script binds a variable of its own named `args` (its reads are
/// not the arguments'). Best effort: a name built at run time is not seen.
pub fn uses(src: &str) -> Vec<(String, usize, usize)> {
    use crate::engine::lex::{self, Kind};
    let toks = lex::significant(src);
    let punct = |j: usize| toks.get(j).and_then(|t| t.punct(src));
    let ident = |j: usize, name: &str| {
        toks.get(j)
            .is_some_and(|t| t.kind == Kind::Ident && t.text(src) == name)
    };
    let keyword = |j: usize, name: &str| {
        toks.get(j)
            .is_some_and(|t| t.kind == Kind::Keyword && t.text(src) == name)
    };
    let string = |j: usize| {
        toks.get(j)
            .filter(|t| t.kind == (Kind::Str { closed: true }))
            .map(|t| (t.body(src).to_string(), t.start))
    };
    let rebinds = (0..toks.len()).any(|i| {
        ident(i, "args")
            && i > 0
            && (keyword(i - 1, "let")
                || keyword(i - 1, "const")
                || keyword(i - 1, "for")
                || matches!(punct(i - 1), Some("(" | ",")) && punct(i + 1) != Some("."))
    });
    if rebinds {
        return Vec::new();
    }
    let mut found: Vec<(String, usize)> = Vec::new();
    for i in 0..toks.len() {
        if !ident(i, "args") || (i > 0 && punct(i - 1) == Some(".")) {
            continue;
        }
        if punct(i + 1) == Some(".") && punct(i + 3) != Some("(") {
            if let Some(t) = toks.get(i + 2).filter(|t| t.kind == Kind::Ident) {
                found.push((t.text(src).to_string(), t.start));
            }
        } else if punct(i + 1) == Some("[") && punct(i + 3) == Some("]") {
            found.extend(string(i + 2));
        } else if i >= 2 && keyword(i - 1, "in") {
            found.extend(string(i - 2));
        }
    }
    found
        .into_iter()
        .map(|(name, at)| {
            let before = &src[..at];
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            (name, line, col)
        })
        .collect()
}

/// `args` in a script that declares its arguments: the values, read like
/// a map (`args.x`, `args["x"]`, `"x" in args`, `args.keys()`), except that
/// reading a name the script does not declare is an error naming the
/// closest declared one, not a silent `()`.
#[derive(Debug, Clone)]
pub struct Args(Map);

/// The `args` value a script sees: `Args` when it declares them, else the
/// plain map of `--arg` values (the rule before declarations).
pub fn value(args: &Map, declared: bool) -> Dynamic {
    match declared {
        true => Dynamic::from(Args(args.clone())),
        false => Dynamic::from_map(args.clone()),
    }
}

/// `args` as a plain map when it is `Args`; any other value as it is.
pub fn plain(v: Dynamic) -> Dynamic {
    match v.read_lock::<Args>().map(|a| a.0.clone()) {
        Some(m) => Dynamic::from_map(m),
        None => v,
    }
}

pub fn register(engine: &mut rhai::Engine) {
    engine.register_type_with_name::<Args>("args");
    // Also `args.name`: Rhai falls back to a string indexer for a property.
    engine.register_indexer_get(
        |a: &mut Args, name: &str| -> Result<Dynamic, Box<rhai::EvalAltResult>> {
            if let Some(v) = a.0.get(name) {
                return Ok(v.clone());
            }
            let names = a.0.keys().map(|k| k.as_str());
            let hint = match crate::registry::suggest(name, names.clone()) {
                Some(s) => format!("did you mean {s}?"),
                None => format!("it declares: {}", names.collect::<Vec<_>>().join(", ")),
            };
            Err(format!(
                "no argument {name} is declared in this script's `//! args:` block; {hint}"
            )
            .into())
        },
    );
    // `"x" in args`: the argument has a value (given or defaulted).
    engine.register_fn("contains", |a: &mut Args, name: &str| {
        a.0.get(name).is_some_and(|v| !v.is_unit())
    });
    engine.register_fn("keys", |a: &mut Args| {
        a.0.keys()
            .map(|k| Dynamic::from(k.to_string()))
            .collect::<rhai::Array>()
    });
    engine.register_fn("values", |a: &mut Args| {
        a.0.values().cloned().collect::<rhai::Array>()
    });
    engine.register_fn("len", |a: &mut Args| a.0.len() as i64);
    engine.register_fn("to_map", |a: &mut Args| a.0.clone());
    engine.register_fn("to_string", |a: &mut Args| {
        Dynamic::from_map(a.0.clone()).to_string()
    });
    engine.register_fn("to_debug", |a: &mut Args| {
        format!("{:?}", Dynamic::from_map(a.0.clone()))
    });
}

/// The script's own description: its header comment, without the `//!`
/// lines, `// opsh:` settings and a `#!` line.
pub fn about(text: &str) -> String {
    let n = header_lines(text);
    let mut out: Vec<&str> = Vec::new();
    for (i, l) in text.lines().take(n).enumerate() {
        let l = l.trim();
        if (i == 0 && (l.starts_with("#!") || l.starts_with("///")))
            || l.starts_with("//!")
            || l.trim_start_matches('/').trim().starts_with("opsh:")
        {
            continue;
        }
        let body = l.strip_prefix("//").unwrap_or(l);
        let body = body.strip_prefix(' ').unwrap_or(body);
        out.push(body.trim_end());
    }
    while out.first().is_some_and(|l| l.is_empty()) {
        out.remove(0);
    }
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out.join("\n")
}

/// `opsh run SCRIPT --help` and `opsh help SCRIPT`.
pub fn help(script: &str, text: &str) -> Result<String, DeclError> {
    let decl = declaration(text)?;
    let mut out = format!("Usage: opsh run {script} [--arg NAME=VALUE]... [OPTIONS]\n");
    let about = about(text);
    if !about.is_empty() {
        let _ = write!(out, "\n{about}\n");
    }
    match decl {
        None => out.push_str(
            "\nArguments: not declared (no `//! args:` block). Every --arg reaches the script as `args.KEY`, typed by its text.\n",
        ),
        Some(d) if d.args.is_empty() => out.push_str("\nArguments: none.\n"),
        Some(d) => {
            out.push_str("\nArguments (--arg NAME=VALUE):\n");
            let col = d
                .args
                .iter()
                .map(|a| a.name.len() + a.ty.name().len() + 3)
                .max()
                .unwrap_or(0);
            for a in &d.args {
                let head = format!("{} <{}>", a.name, a.ty.name());
                let tag = match (&a.default, a.optional) {
                    (Some((t, _)), _) => format!("[default: {t}]"),
                    (None, true) => "[optional]".into(),
                    (None, false) => "[required]".into(),
                };
                let doc = if a.doc.is_empty() {
                    tag
                } else {
                    format!("{} {tag}", a.doc)
                };
                let _ = writeln!(out, "  {head:<col$}  {doc}");
            }
            out.push_str("\nA list takes JSON or a,b,c; a map takes JSON. `opsh run --help` lists opsh's own options.\n");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &str = "#!/usr/bin/env -S opsh run\n// x: does things.\n//\n// opsh: lock=x\n//! args:\n//!   pct: int = 85        act at or above this\n//!   db: string?          only this database,\n//!                        and no other\n//!   image: string (required)  the image\n//!   wait: duration = 5m\n//!   mode: \"rollout\"|\"not_ready\"|bool = \"rollout\"\n//!   hosts: [string] = []\n//!   ratio: float = 1\n\nprint(args.pct);\n";

    fn decl() -> Declaration {
        match declaration(SCRIPT) {
            Ok(Some(d)) => d,
            other => panic!("{other:?}"),
        }
    }

    fn given(pairs: &[&str]) -> Vec<(String, Given)> {
        split_pairs(&pairs.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn a_declaration_is_read_from_the_header() {
        let d = decl();
        let names: Vec<_> = d.names().collect();
        assert_eq!(
            names,
            ["pct", "db", "image", "wait", "mode", "hosts", "ratio"]
        );
        assert_eq!(d.line, 5);
        let db = d.get("db").unwrap();
        assert!(db.optional && !db.required());
        assert_eq!(db.doc, "only this database, and no other");
        assert!(d.get("image").unwrap().required());
        assert_eq!(d.get("pct").unwrap().default.as_ref().unwrap().0, "85");
        assert_eq!(
            d.get("ratio")
                .unwrap()
                .default
                .as_ref()
                .unwrap()
                .1
                .as_float()
                .unwrap(),
            1.0
        );
        assert_eq!(
            d.get("mode").unwrap().ty.name(),
            "\"rollout\"|\"not_ready\"|bool"
        );
        assert_eq!(about(SCRIPT), "x: does things.");
    }

    #[test]
    fn arguments_are_typed_defaulted_and_checked() {
        let d = decl();
        let m = resolve(
            "x.rhai",
            Some(&d),
            given(&["image=api:2", "hosts=a,b", "mode=false"]),
        )
        .unwrap();
        assert_eq!(m["pct"].as_int().unwrap(), 85);
        assert!(m["db"].is_unit());
        assert_eq!(m["image"].clone().into_string().unwrap(), "api:2");
        assert_eq!(m["hosts"].clone().into_array().unwrap().len(), 2);
        assert!(!m["mode"].as_bool().unwrap());
        assert_eq!(m["wait"].clone().into_string().unwrap(), "5m");

        let e = resolve("x.rhai", Some(&d), given(&["image=i", "pcT=3"])).unwrap_err();
        assert_eq!(e.message, "x.rhai has no argument pcT; did you mean pct?");
        let e = resolve("x.rhai", Some(&d), given(&["image=i", "pct=abc"])).unwrap_err();
        assert_eq!(
            e.message,
            "argument pct of x.rhai is an int; \"abc\" is not"
        );
        assert!(e.hint.starts_with("e.g. --arg pct=85"), "{}", e.hint);
        let e = resolve("x.rhai", Some(&d), given(&["wait=soon", "image=i"])).unwrap_err();
        assert!(
            e.message.contains("wait of x.rhai is a duration"),
            "{}",
            e.message
        );
        let e = resolve("x.rhai", Some(&d), given(&[])).unwrap_err();
        assert_eq!(
            e.message,
            "x.rhai needs the argument image (string: the image)"
        );
        // A test's values: an int for a float, a string for a list.
        let v = vec![
            ("image".to_string(), Given::Value("i".into())),
            ("ratio".to_string(), Given::Value(Dynamic::from_int(2))),
            ("hosts".to_string(), Given::Value("one".into())),
        ];
        let m = resolve("x.rhai", Some(&d), v).unwrap();
        assert_eq!(m["ratio"].as_float().unwrap(), 2.0);
        assert_eq!(m["hosts"].clone().into_array().unwrap().len(), 1);
    }

    #[test]
    fn undeclared_text_keeps_ids_as_strings() {
        let m = resolve(
            "x",
            None,
            given(&[
                "big=12345678901234567890",
                "z=007",
                "n=-12",
                "f=0.5",
                "zero=0",
                "b=true",
                "l=[1]",
                "e=1e3",
            ]),
        )
        .unwrap();
        assert_eq!(
            m["big"].clone().into_string().unwrap(),
            "12345678901234567890"
        );
        assert_eq!(m["z"].clone().into_string().unwrap(), "007");
        assert_eq!(m["n"].as_int().unwrap(), -12);
        assert_eq!(m["zero"].as_int().unwrap(), 0);
        assert_eq!(m["f"].as_float().unwrap(), 0.5);
        assert_eq!(m["e"].as_float().unwrap(), 1000.0);
        assert!(m["b"].as_bool().unwrap());
        assert!(m["l"].is_array());
        assert!(split_pairs(&["a=1".into(), "a=2".into()])
            .unwrap_err()
            .contains("given twice"));
    }

    #[test]
    fn bad_declarations_say_where_and_why() {
        let bad = |s: &str| declaration(s).unwrap_err();
        let e = bad("//! args:\n//!   n: integer = 5\n");
        assert_eq!((e.line, e.col), (2, 7));
        assert!(e.message.contains("did you mean int"), "{}", e.message);
        assert!(bad("//! args:\n//!   n: int = abc\n")
            .message
            .contains("is not an int"));
        assert!(bad("//! args:\n//!   n: int? = 5\n")
            .message
            .contains("pick one"));
        assert!(bad("//! args:\n//!   n int = 5\n")
            .message
            .contains("no `:`"));
        assert!(bad("//! args:\n//!   n: int = 5\n//!   n: int = 6\n")
            .message
            .contains("twice"));
        assert!(bad("let x = 1;\n//! args:\n").message.contains("header"));
        assert!(declaration("// no declaration\nlet x = 1;")
            .unwrap()
            .is_none());
        assert!(declaration("//! args: none\n")
            .unwrap()
            .unwrap()
            .args
            .is_empty());
    }

    #[test]
    fn reads_of_args_are_found_in_the_text() {
        let src = "let a = args.pct + args[\"db\"];\nif \"image\" in args { print(args.keys()); }\n// args.no\nx.args.no;";
        let names = uses(src);
        assert_eq!(
            names,
            [
                ("pct".to_string(), 1, 14),
                ("db".to_string(), 1, 25),
                ("image".to_string(), 2, 4)
            ]
        );
        assert!(uses("let args = #{};\nargs.x").is_empty());
        assert!(uses("fn f(args) { args.x }").is_empty());
    }

    #[test]
    fn bom_and_shebang_keep_positions() {
        assert_eq!(source("\u{feff}print(1);".into()), "print(1);");
        assert_eq!(source("#!/bin/opsh\nx".into()), "///bin/opsh\nx");
        assert_eq!(source("x".into()), "x");
    }

    #[test]
    fn help_lists_arguments_with_docs_and_defaults() {
        let h = help("x.rhai", SCRIPT).unwrap();
        assert!(h.contains("x: does things."), "{h}");
        assert!(h.contains("pct <int>"), "{h}");
        assert!(h.contains("act at or above this [default: 85]"), "{h}");
        assert!(h.contains("the image [required]"), "{h}");
        assert!(
            h.contains("only this database, and no other [optional]"),
            "{h}"
        );
    }
}
