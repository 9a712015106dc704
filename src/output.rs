//! Rendering of values for people (tables, key/value lines, colour on a
//! TTY) and for machines (`--output json`: one JSON document per line).
//! Results stay data until they get here.

use crate::value::to_json;
use nu_ansi_term::{Color, Style};
use rhai::{Array, Dynamic, Map};
use std::io::{IsTerminal, Write};
use unicode_width::UnicodeWidthStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

pub struct Output {
    pub format: Format,
    pub color: bool,
    pub err_color: bool,
    /// Column orders known only at run time (a SELECT's column list), by
    /// the set of columns.
    orders: std::sync::Mutex<std::collections::HashMap<String, Vec<String>>>,
}

impl Output {
    pub fn new(format: Format, choice: ColorChoice) -> Output {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let decide = |tty: bool| match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => tty && !no_color,
        };
        Output {
            format,
            color: decide(std::io::stdout().is_terminal()),
            err_color: decide(std::io::stderr().is_terminal()),
            orders: Default::default(),
        }
    }

    /// Rhai maps are sorted by key, so a query's column order is lost on
    /// the way to `show`. A primitive whose columns are only known at run
    /// time (`pg.query`: the SELECT's list) says their order here, and a
    /// table with exactly those columns is shown in it. Primitives with
    /// declared result fields need not: tables follow the declaration.
    pub fn column_order(&self, cols: &[String]) {
        if let Ok(mut h) = self.orders.lock() {
            if h.len() > 1000 {
                h.clear();
            }
            h.insert(signature(cols.iter().map(String::as_str)), cols.to_vec());
        }
    }

    /// The order to show these columns in: a query's own, else a declared
    /// result's that has them all, else as they are.
    fn order(&self, cols: Vec<String>) -> Vec<String> {
        self.orders
            .lock()
            .ok()
            .and_then(|h| h.get(&signature(cols.iter().map(String::as_str))).cloned())
            .or_else(|| crate::registry::column_order(&cols))
            .unwrap_or(cols)
    }

    /// `print` in a script: stdout, exactly as stock Rhai; with `--output
    /// json` stderr (a JSON record with `--log-format json`), so that
    /// stdout carries only the JSON documents of `show`.
    pub fn print(&self, s: &str) {
        if self.format == Format::Json {
            let line = match crate::logging::json_logs() {
                true => serde_json::json!({
                    "timestamp": humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
                    "level": "INFO",
                    "message": s,
                    "source": "print",
                })
                .to_string(),
                false => s.to_string(),
            };
            crate::stdio::errln(format_args!("{line}"));
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
    }

    /// A diagnostic line for the operator: stderr, never mixed into data.
    pub fn note(&self, s: &str) {
        let line = if self.err_color {
            Color::Yellow.paint(s).to_string()
        } else {
            s.to_string()
        };
        crate::stdio::errln(format_args!("{line}"));
    }

    /// `show(value, columns?)`.
    pub fn show(&self, v: &Dynamic, columns: &[String]) {
        self.show_named(v, columns, None)
    }

    /// A named `show` is `{"name", "value"}` in JSON, so a consumer can tell
    /// it from the run's other documents.
    pub fn show_named(&self, v: &Dynamic, columns: &[String], name: Option<&str>) {
        let text = match (self.format, name) {
            (Format::Json, None) => {
                serde_json::to_string(&to_json(v)).unwrap_or_else(|_| "null".into())
            }
            (Format::Json, Some(n)) => {
                serde_json::json!({"name": n, "value": to_json(v)}).to_string()
            }
            (Format::Text, _) => self.render(v, columns),
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", text.trim_end_matches('\n'));
        let _ = out.flush();
    }
}

impl Output {
    /// A table for an array of maps (restricted to `columns` when given),
    /// key/value lines for a map, else plain.
    pub fn render(&self, v: &Dynamic, columns: &[String]) -> String {
        if let Some(rows) = v.read_lock::<Array>() {
            if !rows.is_empty() && rows.iter().all(|r| r.is_map()) {
                let maps: Vec<Map> = rows.iter().map(|r| r.clone().cast::<Map>()).collect();
                let cols = match columns {
                    [] => self.order(union_of_keys(&maps)),
                    given => given.to_vec(),
                };
                return table(&maps, &cols, self.color);
            }
            if rows.is_empty() {
                return "(no rows)".into();
            }
        }
        if let Some(m) = v.read_lock::<Map>() {
            if m.is_empty() {
                return "(empty)".into();
            }
            return key_values(&m, self.color);
        }
        cell(v)
    }
}

fn union_of_keys(rows: &[Map]) -> Vec<String> {
    let mut cols: Vec<String> = Vec::new();
    for r in rows {
        for k in r.keys() {
            if !cols.iter().any(|c| c == k.as_str()) {
                cols.push(k.to_string());
            }
        }
    }
    cols
}

/// How one value reads inside a table cell or after a key.
pub fn cell(v: &Dynamic) -> String {
    if v.is_unit() {
        String::new()
    } else if v.is_string() {
        v.to_string()
    } else if let Ok(f) = v.as_float() {
        if f.fract() == 0.0 && f.abs() < 1e15 {
            format!("{f:.1}")
        } else {
            let s = format!("{f:.4}");
            s.trim_end_matches('0').to_string()
        }
    } else if v.is_array() || v.is_map() {
        serde_json::to_string(&to_json(v)).unwrap_or_default()
    } else {
        v.to_string()
    }
}

fn is_numeric(v: &Dynamic) -> bool {
    v.is_int() || v.is_float()
}

fn signature<'a>(cols: impl Iterator<Item = &'a str>) -> String {
    let mut v: Vec<&str> = cols.collect();
    v.sort_unstable();
    v.join("\u{1f}")
}

/// The rows as a table of these columns, in this order.
pub fn table(rows: &[Map], cols: &[String], color: bool) -> String {
    let cells: Vec<Vec<(String, bool)>> = rows
        .iter()
        .map(|r| {
            cols.iter()
                .map(|c| match r.get(c.as_str()) {
                    Some(v) => (one_line(&cell(v)), is_numeric(v)),
                    None => (String::new(), false),
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].0.width())
                .chain([c.width()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let header_style = Style::new().bold();
    let mut out = String::new();
    let last = cols.len().saturating_sub(1);
    for (i, c) in cols.iter().enumerate() {
        let padded = pad(&c.to_uppercase(), widths[i], false, i == last);
        out.push_str(&if color {
            header_style.paint(padded).to_string()
        } else {
            padded
        });
        if i != last {
            out.push_str("  ");
        }
    }
    out.push('\n');
    for r in &cells {
        for (i, (text, numeric)) in r.iter().enumerate() {
            let padded = pad(text, widths[i], *numeric, i == last);
            out.push_str(&if color && *numeric {
                Color::Cyan.paint(padded).to_string()
            } else {
                padded
            });
            if i != last {
                out.push_str("  ");
            }
        }
        let kept = out.trim_end_matches(' ').len();
        out.truncate(kept);
        out.push('\n');
    }
    out
}

fn one_line(s: &str) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
        .collect();
    if flat.width() > 80 {
        let mut cut = String::new();
        for ch in flat.chars() {
            if cut.width() >= 79 {
                break;
            }
            cut.push(ch);
        }
        cut.push('…');
        cut
    } else {
        flat
    }
}

fn pad(s: &str, width: usize, right: bool, last: bool) -> String {
    let fill = width.saturating_sub(s.width());
    if right {
        format!("{}{s}", " ".repeat(fill))
    } else if last {
        s.to_string()
    } else {
        format!("{s}{}", " ".repeat(fill))
    }
}

pub fn key_values(m: &Map, color: bool) -> String {
    let width = m.keys().map(|k| k.width()).max().unwrap_or(0);
    let key_style = Style::new().fg(Color::Blue).bold();
    let mut out = String::new();
    for (k, v) in m {
        let key = format!("{:width$}", k.as_str());
        out.push_str(&if color {
            key_style.paint(key).to_string()
        } else {
            key
        });
        out.push_str("  ");
        let text = cell(v);
        out.push_str(&if color && is_numeric(v) {
            Color::Cyan.paint(text).to_string()
        } else {
            text
        });
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_and_unions_columns() {
        let a: Map = [
            ("name".into(), Dynamic::from("db")),
            ("size".into(), Dynamic::from_int(1234)),
        ]
        .into_iter()
        .collect();
        let b: Map = [
            ("name".into(), Dynamic::from("cache")),
            ("extra".into(), Dynamic::TRUE),
        ]
        .into_iter()
        .collect();
        let t = table(&[a.clone(), b.clone()], &union_of_keys(&[a, b]), false);
        assert_eq!(t, "NAME   SIZE  EXTRA\ndb     1234\ncache        true\n");
    }

    #[test]
    fn tables_follow_the_declared_column_order_also_when_nested() {
        let rows = || {
            let row: Map = [
                ("detail".into(), Dynamic::from("ok")),
                ("check".into(), Dynamic::from("exists")),
                ("passed".into(), Dynamic::TRUE),
            ]
            .into_iter()
            .collect();
            Dynamic::from_array(vec![Dynamic::from_map(row)])
        };
        let out = Output::new(Format::Text, ColorChoice::Never);
        // backup.verify(..).checks: a table nested in a declared result.
        let t = out.render(&rows(), &[]);
        assert_eq!(t.lines().next(), Some("CHECK   PASSED  DETAIL"));
        // A query's own order wins over any declaration.
        out.column_order(&["passed", "detail", "check"].map(String::from));
        let t = out.render(&rows(), &[]);
        assert_eq!(t.lines().next(), Some("PASSED  DETAIL  CHECK"));
    }
}
