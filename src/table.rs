//! Tables and key/value lines for people, fitted to the terminal: the way
//! kubectl and psql show results. Only text output comes here; JSON and
//! the values a script holds keep raw numbers.
//!
//! A row is one line. When the rows are wider than the terminal, the
//! widest free-text columns give way (cut with `…`), never the numbers, and
//! any line still too wide is cut at the edge: a wrapped row is harder to
//! read than a shortened cell. Piped output (no terminal) is never cut.

use crate::value::to_json;
use nu_ansi_term::{Color, Style};
use rhai::{Dynamic, Map};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// How a table is laid out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Layout {
    pub color: bool,
    /// The terminal's width; `None` when not on a terminal (no limit).
    pub width: Option<usize>,
}

/// The columns of stdout's terminal, or `None` when stdout is not one.
/// `COLUMNS` overrides the size the terminal reports, as in most tools.
pub fn terminal_width() -> Option<usize> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return None;
    }
    if let Some(n) = std::env::var("COLUMNS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        return Some(n);
    }
    ioctl_width()
}

#[cfg(unix)]
fn ioctl_width() -> Option<usize> {
    // SAFETY: TIOCGWINSZ writes a `winsize` into the struct we own; a
    // failure leaves it zeroed, which is treated as unknown.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_col > 0).then_some(usize::from(ws.ws_col))
}

#[cfg(not(unix))]
fn ioctl_width() -> Option<usize> {
    None
}

/// What a column's numbers count, guessed from its name the way the
/// declarations spell units (`age`, `idle_s`, `total_bytes`, `mean_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Seconds,
    Millis,
    Micros,
    Bytes,
    None,
}

fn unit_of(column: &str) -> Unit {
    let c = column.to_ascii_lowercase();
    if matches!(
        c.as_str(),
        "age" | "ago" | "idle" | "lag" | "seconds" | "uptime"
    ) || c.ends_with("_s")
        || c.ends_with("_secs")
        || c.ends_with("_seconds")
        || c.ends_with("_seconds_ago")
    {
        Unit::Seconds
    } else if c == "ms" || c.ends_with("_ms") {
        Unit::Millis
    } else if c.ends_with("_us") {
        Unit::Micros
    } else if matches!(c.as_str(), "bytes" | "rss" | "peak" | "maxmemory") || c.ends_with("_bytes")
    {
        Unit::Bytes
    } else {
        Unit::None
    }
}

/// A number as a person reads it: `2m10s` for an age, `1.2 MiB` for bytes,
/// `1.2` for a float that is `1.2000000000000002`.
fn humanize(column: &str, v: &Dynamic) -> Option<String> {
    let n = if let Ok(i) = v.as_int() {
        i as f64
    } else if let Ok(f) = v.as_float() {
        f
    } else {
        return None;
    };
    if !n.is_finite() {
        return None;
    }
    match unit_of(column) {
        // Negative ages and sizes are markers (-1: "never"), shown as given.
        _ if n < 0.0 && unit_of(column) != Unit::None => None,
        Unit::Seconds => Some(duration(n)),
        Unit::Millis if n >= 1000.0 => Some(duration(n / 1000.0)),
        Unit::Millis => Some(format!("{}ms", float(n))),
        Unit::Micros if n >= 1_000_000.0 => Some(duration(n / 1e6)),
        Unit::Micros if n >= 1000.0 => Some(format!("{}ms", float(n / 1000.0))),
        Unit::Micros => Some(format!("{}µs", float(n))),
        Unit::Bytes => Some(bytes(n)),
        Unit::None => v.as_float().ok().map(float),
    }
}

/// kubectl's ages: the two largest units, `45s`, `2m10s`, `3h5m`, `4d2h`.
fn duration(secs: f64) -> String {
    if secs < 10.0 && secs.fract() != 0.0 {
        return format!("{}s", float(secs));
    }
    let s = secs.round() as u64;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) if s == 0 => format!("{m}m"),
        (0, 0, _) => format!("{m}m{s}s"),
        (0, _, 0) => format!("{h}h"),
        (0, _, _) => format!("{h}h{m}m"),
        (_, 0, _) => format!("{d}d"),
        _ => format!("{d}d{h}h"),
    }
}

fn bytes(n: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else if v < 10.0 {
        format!("{v:.1} {}", UNITS[u])
    } else {
        format!("{v:.0} {}", UNITS[u])
    }
}

/// At most three decimals, without trailing zeros; `2.0` stays `2.0` so a
/// float column still reads as one.
fn float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        return format!("{f:.1}");
    }
    let digits = if f.abs() >= 100.0 {
        1
    } else if f.abs() >= 1.0 {
        2
    } else {
        3
    };
    let s = format!("{f:.digits$}");
    let s = s.trim_end_matches('0');
    if s.ends_with('.') {
        format!("{s}0")
    } else {
        s.to_string()
    }
}

/// How one value reads in a table cell or after a key, humanized for its
/// column.
pub fn cell_for(column: &str, v: &Dynamic) -> String {
    if let Some(h) = humanize(column, v) {
        return h;
    }
    plain(v)
}

/// How one value reads without a column: raw numbers.
pub fn plain(v: &Dynamic) -> String {
    if v.is_unit() {
        String::new()
    } else if v.is_string() {
        v.to_string()
    } else if let Ok(f) = v.as_float() {
        float(f)
    } else if v.is_array() || v.is_map() {
        serde_json::to_string(&to_json(v)).unwrap_or_default()
    } else {
        v.to_string()
    }
}

/// The colour of a status word: FAIL red, WARN yellow, OK green.
fn status_color(text: &str) -> Option<Color> {
    match text.trim().to_ascii_uppercase().as_str() {
        "FAIL" | "FAILED" | "FAILING" | "ERROR" | "CRITICAL" | "CRASHLOOPBACKOFF"
        | "IMAGEPULLBACKOFF" | "ERRIMAGEPULL" | "OOMKILLED" => Some(Color::Red),
        "WARN" | "WARNING" | "PENDING" | "SKIP" | "SKIPPED" | "DEGRADED" => Some(Color::Yellow),
        "OK" | "PASS" | "PASSED" | "RUNNING" | "HEALTHY" | "SUCCEEDED" => Some(Color::Green),
        _ => None,
    }
}

/// Tabs and newlines flattened: a cell stays on its row's line.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == '\n' || c == '\t' || c == '\r' {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// `s` cut to `width` columns, ending in `…` when cut.
pub fn truncate(s: &str, width: usize) -> String {
    if s.width() <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for ch in s.chars() {
        let w = ch.width().unwrap_or(0);
        if used + w > width - 1 {
            break;
        }
        used += w;
        out.push(ch);
    }
    out.push('…');
    out
}

struct Cell {
    text: String,
    numeric: bool,
    status: Option<Color>,
}

/// The rows as a table of these columns, in this order.
pub fn table(rows: &[Map], cols: &[String], layout: Layout) -> String {
    let cells: Vec<Vec<Cell>> = rows
        .iter()
        .map(|r| {
            cols.iter()
                .map(|c| match r.get(c.as_str()) {
                    Some(v) => {
                        let text = one_line(&cell_for(c, v));
                        Cell {
                            status: status_color(&text),
                            numeric: v.is_int() || v.is_float(),
                            text,
                        }
                    }
                    None => Cell {
                        text: String::new(),
                        numeric: false,
                        status: None,
                    },
                })
                .collect()
        })
        .collect();
    let headers: Vec<String> = cols.iter().map(|c| c.to_uppercase()).collect();
    let mut widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            cells
                .iter()
                .map(|r| r[i].text.width())
                .chain([h.width()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    if let Some(limit) = layout.width {
        fit(&mut widths, &headers, &cells, limit);
    }
    let header_style = Style::new().bold();
    let mut out = String::new();
    let mut line = Vec::with_capacity(cols.len());
    for (i, h) in headers.iter().enumerate() {
        let text = truncate(h, widths[i]);
        line.push((text, false, layout.color.then_some(header_style)));
    }
    push_line(&mut out, &line, &widths, layout);
    for r in &cells {
        line.clear();
        for (i, c) in r.iter().enumerate() {
            let style = if !layout.color {
                None
            } else if let Some(color) = c.status {
                Some(Style::new().fg(color).bold())
            } else if c.numeric {
                Some(Style::new().fg(Color::Cyan))
            } else {
                None
            };
            line.push((truncate(&c.text, widths[i]), c.numeric, style));
        }
        push_line(&mut out, &line, &widths, layout);
    }
    out
}

/// Narrows the widest text columns until the row fits `limit`: numbers and
/// short columns keep their width; a text column keeps at least its header
/// and a few characters.
fn fit(widths: &mut [usize], headers: &[String], cells: &[Vec<Cell>], limit: usize) {
    let total = |w: &[usize]| w.iter().sum::<usize>() + 2 * w.len().saturating_sub(1);
    let numeric: Vec<bool> = (0..widths.len())
        .map(|i| !cells.is_empty() && cells.iter().all(|r| r[i].numeric || r[i].text.is_empty()))
        .collect();
    let floor = |i: usize| headers[i].width().max(6);
    while total(widths) > limit {
        let over = total(widths) - limit;
        // The widest column that may still give way.
        let Some(i) = (0..widths.len())
            .filter(|&i| !numeric[i] && widths[i] > floor(i))
            .max_by_key(|&i| widths[i])
        else {
            break;
        };
        // Down to the next widest, so several wide columns share the cut.
        let next = (0..widths.len())
            .filter(|&j| j != i && !numeric[j])
            .map(|j| widths[j])
            .filter(|&w| w < widths[i])
            .max()
            .unwrap_or(0);
        let step = over.min(widths[i] - next.max(floor(i))).max(1);
        widths[i] -= step.min(widths[i] - floor(i));
    }
}

fn push_line(
    out: &mut String,
    line: &[(String, bool, Option<Style>)],
    widths: &[usize],
    layout: Layout,
) {
    // Plain text first, so a line can be cut at the terminal's edge before
    // colour codes go in.
    let last = line.len().saturating_sub(1);
    let mut pieces: Vec<(String, Option<Style>)> = Vec::with_capacity(line.len() * 2);
    for (i, (text, right, style)) in line.iter().enumerate() {
        let fill = widths[i].saturating_sub(text.width());
        let padded = if *right {
            format!("{}{text}", " ".repeat(fill))
        } else if i == last {
            text.clone()
        } else {
            format!("{text}{}", " ".repeat(fill))
        };
        pieces.push((padded, *style));
        if i != last {
            pieces.push(("  ".into(), None));
        }
    }
    // Trailing blanks (empty last cells) would count against the width.
    while let Some((p, _)) = pieces.last_mut() {
        let kept = p.trim_end_matches(' ').len();
        p.truncate(kept);
        if p.is_empty() {
            pieces.pop();
        } else {
            break;
        }
    }
    let mut room = layout.width.unwrap_or(usize::MAX);
    for (p, style) in pieces {
        if room == 0 {
            break;
        }
        let p = if p.width() > room {
            truncate(&p, room)
        } else {
            p
        };
        room -= p.width().min(room);
        match style {
            Some(s) if !p.trim().is_empty() => out.push_str(&s.paint(p).to_string()),
            _ => out.push_str(&p),
        }
    }
    out.push('\n');
}

/// `key  value` lines for a map, keys in the given order, values humanized
/// for their key and cut at the terminal's edge.
pub fn key_values(m: &Map, keys: &[String], layout: Layout) -> String {
    let width = keys.iter().map(|k| k.width()).max().unwrap_or(0);
    let key_style = Style::new().fg(Color::Blue).bold();
    let mut out = String::new();
    for k in keys {
        let Some(v) = m.get(k.as_str()) else {
            continue;
        };
        let key = format!("{k:width$}");
        out.push_str(&if layout.color {
            key_style.paint(key).to_string()
        } else {
            key
        });
        out.push_str("  ");
        let mut text = cell_for(k, v);
        if let Some(limit) = layout.width {
            text = truncate(&one_line(&text), limit.saturating_sub(width + 2).max(8));
        }
        let style = if !layout.color {
            None
        } else if let Some(c) = status_color(&text) {
            Some(Style::new().fg(c).bold())
        } else if v.is_int() || v.is_float() {
            Some(Style::new().fg(Color::Cyan))
        } else {
            None
        };
        out.push_str(&match style {
            Some(s) => s.paint(text).to_string(),
            None => text,
        });
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, Dynamic)]) -> Map {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), v.clone()))
            .collect()
    }

    #[test]
    fn numbers_read_as_people_read_them() {
        let h = |c: &str, v: Dynamic| cell_for(c, &v);
        assert_eq!(h("age", Dynamic::from_int(130)), "2m10s");
        assert_eq!(h("age", Dynamic::from_int(7200)), "2h");
        assert_eq!(h("age", Dynamic::from_int(90_061)), "1d1h");
        assert_eq!(h("idle_s", Dynamic::from_float(3.25)), "3.25s");
        assert_eq!(h("total_bytes", Dynamic::from_int(941_872)), "920 KiB");
        assert_eq!(h("bytes", Dynamic::from_int(512)), "512 B");
        assert_eq!(h("bytes", Dynamic::from_int(34_603_008)), "33 MiB");
        assert_eq!(h("mean_ms", Dynamic::from_float(12.346)), "12.35ms");
        assert_eq!(h("mean_ms", Dynamic::from_float(1500.0)), "1.5s");
        assert_eq!(h("ratio", Dynamic::from_float(1.2000000000000002)), "1.2");
        assert_eq!(h("ratio", Dynamic::from_float(2.0)), "2.0");
        assert_eq!(h("count", Dynamic::from_int(941_872)), "941872");
        // A marker stays as given.
        assert_eq!(h("master_last_io_seconds_ago", Dynamic::from_int(-1)), "-1");
        // Values outside tables stay raw.
        assert_eq!(plain(&Dynamic::from_int(130)), "130");
    }

    #[test]
    fn a_wide_table_fits_the_terminal_one_line_per_row() {
        let long = "SELECT pg_sleep(10), ".repeat(20);
        let rows: Vec<Map> = (0..3)
            .map(|i| {
                row(&[
                    ("pid", Dynamic::from_int(1000 + i)),
                    ("state", Dynamic::from("active")),
                    ("query", Dynamic::from(long.clone())),
                ])
            })
            .collect();
        let cols = ["pid", "state", "query"].map(String::from);
        let fitted = table(
            &rows,
            &cols,
            Layout {
                color: false,
                width: Some(80),
            },
        );
        assert_eq!(fitted.lines().count(), 4, "{fitted}");
        for l in fitted.lines() {
            assert!(l.width() <= 80, "{l:?} is {} wide", l.width());
        }
        assert!(fitted.lines().nth(1).is_some_and(|l| l.ends_with('…')));
        assert!(fitted.starts_with("PID   STATE   QUERY"), "{fitted}");
        // Piped: nothing cut, also past 80 characters.
        let full = table(&rows, &cols, Layout::default());
        assert!(full
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains(long.trim_end())));
    }

    #[test]
    fn several_wide_columns_share_the_cut_and_numbers_keep_theirs() {
        let rows = vec![row(&[
            ("name", Dynamic::from("n".repeat(60))),
            ("bytes", Dynamic::from_int(123_456_789)),
            ("detail", Dynamic::from("d".repeat(60))),
        ])];
        let cols = ["name", "bytes", "detail"].map(String::from);
        let t = table(
            &rows,
            &cols,
            Layout {
                color: false,
                width: Some(60),
            },
        );
        let line = t.lines().nth(1).unwrap_or_default();
        assert!(line.width() <= 60, "{t}");
        assert!(line.contains("118 MiB"), "{t}");
        let cut: Vec<usize> = line
            .split("  ")
            .filter(|p| p.contains('…'))
            .map(|p| p.trim().width())
            .collect();
        assert_eq!(cut.len(), 2, "{t}");
    }

    #[test]
    fn status_cells_are_coloured_only_when_asked() {
        let rows = vec![
            row(&[
                ("check", Dynamic::from("a")),
                ("status", Dynamic::from("FAIL")),
            ]),
            row(&[
                ("check", Dynamic::from("b")),
                ("status", Dynamic::from("WARN")),
            ]),
            row(&[
                ("check", Dynamic::from("c")),
                ("status", Dynamic::from("OK")),
            ]),
        ];
        let cols = ["check", "status"].map(String::from);
        let plain = table(&rows, &cols, Layout::default());
        assert!(!plain.contains('\u{1b}'), "{plain}");
        let coloured = table(
            &rows,
            &cols,
            Layout {
                color: true,
                width: None,
            },
        );
        assert!(coloured.contains(&Color::Red.bold().paint("FAIL").to_string()));
        assert!(coloured.contains(&Color::Yellow.bold().paint("WARN").to_string()));
        assert!(coloured.contains(&Color::Green.bold().paint("OK").to_string()));
    }
}
