//! Rendering of values for people (tables, key/value lines, colour on a
//! TTY) and for machines (`--output json`: one JSON document per line).
//! Results stay data until they get here.

use crate::value::to_json;
use nu_ansi_term::Color;
use rhai::{Array, Dynamic, Map};
use std::io::{IsTerminal, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    /// YAML documents separated by `---` (`-o yaml`).
    Yaml,
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
    /// Tables show every column, also those declared `wide` (`-o wide`).
    pub wide: bool,
    /// The terminal's width tables fit in; `None` when stdout is piped.
    pub width: Option<usize>,
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
            wide: false,
            width: crate::table::terminal_width(),
            orders: Default::default(),
        }
    }

    /// `-o wide`: tables show the columns declared `wide` too.
    pub fn wide(self, wide: bool) -> Output {
        Output { wide, ..self }
    }

    fn layout(&self) -> crate::table::Layout {
        crate::table::Layout {
            color: self.color,
            width: self.width,
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
        if let Some(own) = self
            .orders
            .lock()
            .ok()
            .and_then(|h| h.get(&signature(cols.iter().map(String::as_str))).cloned())
        {
            return own;
        }
        let Some(ordered) = crate::registry::column_order(&cols) else {
            return cols;
        };
        if self.wide {
            return ordered;
        }
        // kubectl's default columns: the detail declared `wide` waits for
        // `-o wide`.
        let fields = crate::registry::declared_table(&ordered).unwrap_or(&[]);
        let narrow: Vec<String> = ordered
            .iter()
            .filter(|c| !fields.iter().any(|f| f.wide && f.name == c.as_str()))
            .cloned()
            .collect();
        if narrow.is_empty() {
            ordered
        } else {
            narrow
        }
    }

    /// `print` in a script: stdout, exactly as stock Rhai; with `--output
    /// json` stderr (a JSON record with `--log-format json`), so that
    /// stdout carries only the JSON documents of `show`.
    pub fn print(&self, s: &str) {
        if self.format != Format::Text {
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
            (Format::Yaml, None) => format!(
                "---\n{}",
                serde_saphyr::to_string(&to_json(v)).unwrap_or_else(|_| "null".into())
            ),
            (Format::Yaml, Some(n)) => format!(
                "---\n{}",
                serde_saphyr::to_string(&serde_json::json!({"name": n, "value": to_json(v)}))
                    .unwrap_or_else(|_| "null".into())
            ),
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
                return crate::table::table(&maps, &cols, self.layout());
            }
            if rows.is_empty() {
                return "(no rows)".into();
            }
        }
        if let Some(m) = v.read_lock::<Map>() {
            if m.is_empty() {
                return "(empty)".into();
            }
            let keys: Vec<String> = m.keys().map(|k| k.to_string()).collect();
            let keys = crate::registry::field_order(&keys).unwrap_or(keys);
            return crate::table::key_values(&m, &keys, self.layout());
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

/// How one value reads outside a table: raw numbers.
pub fn cell(v: &Dynamic) -> String {
    crate::table::plain(v)
}

fn signature<'a>(cols: impl Iterator<Item = &'a str>) -> String {
    let mut v: Vec<&str> = cols.collect();
    v.sort_unstable();
    v.join("\u{1f}")
}

/// The rows as a table of these columns, in this order, not fitted to a
/// terminal (a fleet's summary).
pub fn table(rows: &[Map], cols: &[String], color: bool) -> String {
    crate::table::table(rows, cols, crate::table::Layout { color, width: None })
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
