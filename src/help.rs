//! `opsh help`, `opsh help NAME` and the generated reference in docs/, all
//! rendered from the registry's declarations.

use crate::registry::{self, Field, ModuleDecl, Prim, Ty};
use nu_ansi_term::{Color, Style};

fn paint(color: bool, style: Style, s: &str) -> String {
    if color {
        style.paint(s).to_string()
    } else {
        s.to_string()
    }
}

/// A module's heading. Global functions come in several declarations; one
/// whose doc starts with a short `Label:` is headed `global functions: label`.
fn module_title(m: &ModuleDecl) -> String {
    if !m.name.is_empty() {
        return m.name.to_string();
    }
    match m.doc.split_once(':') {
        Some((label, _)) if label.len() <= 30 && !label.contains('`') => {
            format!("global functions: {}", label.to_lowercase())
        }
        _ => "global functions".to_string(),
    }
}

/// The module's doc, without the label its heading already shows.
fn module_doc(m: &ModuleDecl) -> &str {
    match m.doc.split_once(':') {
        Some((label, rest))
            if m.name.is_empty() && module_title(m).ends_with(&label.to_lowercase()) =>
        {
            rest.trim_start()
        }
        _ => m.doc,
    }
}

/// The overview: every module and its primitives, one line each.
pub fn overview(color: bool) -> String {
    let mut out =
        String::from("opsh primitives (opsh help NAME for details; ! marks a mutation)\n");
    for m in registry::modules() {
        out.push('\n');
        out.push_str(&paint(color, Style::new().bold(), &module_title(m)));
        out.push_str(&format!("  {}\n", module_doc(m)));
        let width = m.prims().map(|p| p.full_name().len()).max().unwrap_or(0);
        for p in m.prims() {
            let mark = if p.mutates() {
                paint(color, Color::Yellow.bold(), "!")
            } else {
                " ".into()
            };
            out.push_str(&format!(
                "  {mark} {:width$}  {}\n",
                p.full_name(),
                p.summary()
            ));
        }
    }
    out.push_str("\nSee also: opsh help exit-codes; opsh help FILE.rhai (a script's arguments)\n");
    out
}

pub fn primitive(p: Prim, color: bool) -> String {
    let mut out = String::new();
    out.push_str(&paint(color, Style::new().bold(), &p.signature()));
    out.push('\n');
    if p.mutates() {
        out.push_str(&paint(
            color,
            Color::Yellow.bold(),
            "mutates: honours --dry-run, asks for confirmation on protected targets, written to the audit log",
        ));
        out.push('\n');
    } else {
        out.push_str("read-only\n");
    }
    out.push('\n');
    out.push_str(p.summary());
    out.push('\n');
    let details = p.details();
    if !details.is_empty() {
        out.push('\n');
        out.push_str(&details);
        out.push('\n');
    }
    for (title, rows) in schema(p) {
        out.push_str(&format!("\n{title}:\n"));
        let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let tw = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
        for (name, ty, doc) in rows {
            let line = format!("  {name:width$}  {ty:tw$}  {doc}");
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out.push_str("\nExample:\n");
    for line in p.example.lines() {
        out.push_str(&format!(
            "    {}\n",
            paint(color, Color::Green.normal(), line)
        ));
    }
    out
}

type Rows = Vec<(String, String, &'static str)>;

/// The declared option keys and result fields, as (title, rows of name,
/// type, meaning); nested tables and records are flattened as
/// `sessions[].pid`, `by_state.idle`.
fn schema(p: Prim) -> Vec<(String, Rows)> {
    let mut out = Vec::new();
    for param in p.params {
        for fields in records(&param.ty) {
            let mut rows = Vec::new();
            flatten(fields, "", &mut rows);
            out.push((format!("Options of `{}`", param.name), rows));
        }
    }
    let alts = alternatives(&p.returns);
    // `k8s.hpa(name?)`: one map, or one per row, of the same fields.
    let shapes: Vec<&[Field]> = alts.iter().filter_map(Ty::fields).collect();
    let both = alts.iter().any(|t| matches!(t, Ty::Rows(_)))
        && alts.iter().any(|t| matches!(t, Ty::Record(_)))
        && shapes
            .windows(2)
            .all(|w| w[0].iter().map(|f| f.name).eq(w[1].iter().map(|f| f.name)));
    for t in alts {
        let (title, fields) = match t {
            Ty::Rows(_) if both => continue,
            Ty::Record(f) if both => ("Returns a map, or an array of such maps", f),
            Ty::Rows(f) if !f.is_empty() => ("Returns one map per row", f),
            Ty::Record(f) if !f.is_empty() => ("Returns a map", f),
            Ty::Fields(f) if !f.is_empty() => ("Returns a map with at least", f),
            Ty::List(&Ty::Fields(f)) if !f.is_empty() => {
                ("Returns one map per row, with at least", f)
            }
            _ => continue,
        };
        let mut rows = Vec::new();
        flatten(fields, "", &mut rows);
        out.push((title.to_string(), rows));
    }
    out
}

fn alternatives(t: &Ty) -> Vec<Ty> {
    match t {
        Ty::OneOf(ts) => ts.to_vec(),
        other => vec![*other],
    }
}

fn records(t: &Ty) -> Vec<&'static [Field]> {
    alternatives(t)
        .into_iter()
        .filter_map(|t| match t {
            Ty::Record(f) if !f.is_empty() => Some(f),
            _ => None,
        })
        .collect()
}

fn flatten(fields: &[Field], prefix: &str, out: &mut Rows) {
    for f in fields {
        let name = format!("{prefix}{}", f.name);
        out.push((name.clone(), f.ty.name(), f.doc));
        match f.ty {
            Ty::Rows(inner) => flatten(inner, &format!("{name}[]."), out),
            Ty::Record(inner) | Ty::Fields(inner) => flatten(inner, &format!("{name}."), out),
            _ => {}
        }
    }
}

pub fn exit_codes() -> String {
    let mut out = String::from("opsh exit codes\n\n");
    let width = crate::exit::TABLE
        .iter()
        .map(|(_, n, _)| n.len())
        .max()
        .unwrap_or(0);
    for (code, name, meaning) in crate::exit::TABLE {
        out.push_str(&format!("  {code:>3}  {name:<width$}  {meaning}\n"));
    }
    out.push_str("\nA script may also end with exit(n) for any n.\n");
    out
}

/// Help for NAME: a primitive (`pg.query`, `sleep`), a module (`pg`), or a topic.
pub fn lookup(name: &str, color: bool) -> Result<String, String> {
    if name == "exit-codes" {
        return Ok(exit_codes());
    }
    if let Some(p) = registry::lookup(name) {
        return Ok(primitive(p, color));
    }
    if let Some(m) = registry::module(name).filter(|m| !m.name.is_empty()) {
        let mut out = format!(
            "{}  {}\n\n",
            paint(color, Style::new().bold(), m.name),
            m.doc
        );
        for p in m.prims() {
            out.push_str(&format!(
                "  {}{}\n      {}\n",
                if p.mutates() { "! " } else { "" },
                p.signature(),
                p.summary()
            ));
        }
        return Ok(out);
    }
    if let Some(found) = search(name, color) {
        return Ok(found);
    }
    let names: Vec<String> = registry::all()
        .map(|p| p.full_name())
        .chain(registry::value_modules().map(|m| m.name.to_string()))
        .collect();
    let hint = registry::suggest(name, names.iter().map(String::as_str))
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_else(|| "; `opsh help` lists everything".into());
    Err(format!(
        "no primitive, module or topic named `{name}`{hint}"
    ))
}

/// Primitives whose name, then whose documentation, mentions `word`
/// (case-insensitive): `opsh help scale` finds k8s.scale, `opsh help
/// vacuum` the primitives that speak of it.
pub fn search(word: &str, color: bool) -> Option<String> {
    let w = word.trim().to_lowercase();
    if w.len() < 2 {
        return None;
    }
    let mut by_name = Vec::new();
    let mut by_doc = Vec::new();
    for p in registry::all() {
        if p.full_name().to_lowercase().contains(&w) {
            by_name.push(p);
        } else if p.doc.to_lowercase().contains(&w) || p.example.to_lowercase().contains(&w) {
            by_doc.push(p);
        }
    }
    if by_name.is_empty() && by_doc.is_empty() {
        return None;
    }
    let mut out = format!("no primitive, module or topic is named `{word}`; these mention it:\n\n");
    for p in by_name.iter().chain(by_doc.iter()).take(25) {
        out.push_str(&format!(
            "  {}{}\n      {}\n",
            if p.mutates() { "! " } else { "" },
            paint(color, Style::new().bold(), &p.full_name()),
            p.summary()
        ));
    }
    let more = (by_name.len() + by_doc.len()).saturating_sub(25);
    if more > 0 {
        out.push_str(&format!("  ... and {more} more\n"));
    }
    out.push_str("\n`opsh help NAME` describes one.\n");
    Some(out)
}

/// docs/reference.md, generated. A test fails when the file is stale.
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "# opsh primitive reference\n\n<!-- Generated from the registry by `opsh help --markdown`; do not edit by hand. -->\n\n\
         Mutating primitives (marked **mutates**) honour `--dry-run`, ask for confirmation on protected targets unless `--yes`, and are written to the audit log.\n",
    );
    for m in registry::modules() {
        out.push_str(&format!("\n## {}\n\n{}\n", module_title(m), module_doc(m)));
        for p in m.prims() {
            out.push_str(&format!(
                "\n### `{}`\n\n```\n{}\n```\n\n",
                p.full_name(),
                p.signature()
            ));
            if p.mutates() {
                out.push_str("**mutates**\n\n");
            }
            out.push_str(p.summary());
            out.push('\n');
            let details = p.details();
            if !details.is_empty() {
                out.push('\n');
                out.push_str(&details);
                out.push('\n');
            }
            for (title, rows) in schema(p) {
                out.push_str(&format!(
                    "\n{title}:\n\n| name | type | meaning |\n| --- | --- | --- |\n"
                ));
                for (name, ty, doc) in rows {
                    out.push_str(&format!(
                        "| `{name}` | {} | {doc} |\n",
                        ty.replace('|', "\\|")
                    ));
                }
            }
            out.push_str(&format!("\n```rhai\n{}\n```\n", p.example));
        }
    }
    out.push_str("\n## Exit codes\n\n| code | name | meaning |\n| --- | --- | --- |\n");
    for (code, name, meaning) in crate::exit::TABLE {
        out.push_str(&format!("| {code} | {name} | {meaning} |\n"));
    }
    out.push_str("\nA script may also end with `exit(n)` for any `n`.\n");
    out
}
