//! Grandfather-father-son retention: the newest backup of each of the last
//! N days, weeks and months is kept (a backup kept by any rule stays), the
//! newest backup always stays, the rest goes. Days, weeks (Monday to
//! Sunday) and months are UTC, by modification time.

use super::listing::{scan, Entry, ENTRY, PATTERN};
use super::opts::human_bytes;
use crate::dispatch::{Call, OpError, Plan};
use crate::registry::{field, join, opt, req, Field, Primitive, Ty};
use crate::value::map_of;
use rhai::{Array, Dynamic, Map};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// (year, month, day) of days since 1970-01-01 (H. Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn date(days: i64) -> String {
    let (y, m, d) = civil(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A day (since 1970) -> its bucket's key and label.
type BucketFn = dyn Fn(i64) -> (i64, String);

pub struct Policy {
    pub daily: usize,
    pub weekly: usize,
    pub monthly: usize,
}

pub struct Decision {
    pub keep: Vec<(Entry, Vec<String>)>,
    pub remove: Vec<Entry>,
}

/// `entries` newest first.
pub fn decide(entries: Vec<Entry>, p: &Policy) -> Decision {
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); entries.len()];
    if !entries.is_empty() {
        reasons[0].push("newest".into());
    }
    let rules: [(&str, usize, &BucketFn); 3] = [
        ("daily", p.daily, &|day| (day, date(day))),
        ("weekly", p.weekly, &|day| {
            let monday = day - (day + 3).rem_euclid(7);
            (monday, format!("week of {}", date(monday)))
        }),
        ("monthly", p.monthly, &|day| {
            let (y, m, _) = civil(day);
            (y * 12 + m as i64, format!("{y:04}-{m:02}"))
        }),
    ];
    for (rule, n, key) in rules {
        let mut seen = HashSet::new();
        for (i, e) in entries.iter().enumerate() {
            if seen.len() >= n {
                break;
            }
            let (k, label) = key(e.mtime.div_euclid(86_400));
            if seen.insert(k) {
                reasons[i].push(format!("{rule} {label}"));
            }
        }
    }
    let mut d = Decision {
        keep: Vec::new(),
        remove: Vec::new(),
    };
    for (e, r) in entries.into_iter().zip(reasons) {
        if r.is_empty() {
            d.remove.push(e);
        } else {
            d.keep.push((e, r));
        }
    }
    d
}

fn request(call: &Call) -> Result<(PathBuf, Option<String>, Policy), OpError> {
    let dir = PathBuf::from(call.str("dir")?);
    let o = call.opts("opts")?;
    let n = |k: &str| -> Result<usize, OpError> {
        match o.int(k)? {
            None => Ok(0),
            Some(v) => usize::try_from(v)
                .map_err(|_| OpError::bad_input(format!("option `{k}` cannot be negative"))),
        }
    };
    let p = Policy {
        daily: n("keep_daily")?,
        weekly: n("keep_weekly")?,
        monthly: n("keep_monthly")?,
    };
    if p.daily + p.weekly + p.monthly == 0 {
        return Err(OpError::bad_input(
            "a retention policy needs at least one of keep_daily, keep_weekly, keep_monthly",
        )
        .with_hint("e.g. #{keep_daily: 7, keep_weekly: 4, keep_monthly: 6}"));
    }
    Ok((dir, o.str("pattern")?, p))
}

fn sidecar(e: &Entry) -> PathBuf {
    let parent = e.path.parent().unwrap_or(Path::new("."));
    parent.join(format!("{}.sha256", e.name))
}

fn entries(v: impl Iterator<Item = Dynamic>) -> Dynamic {
    Dynamic::from_array(v.collect::<Array>())
}

fn describe(d: &Decision) -> Map {
    let bytes: u64 = d.remove.iter().map(|e| e.bytes).sum();
    map_of([
        (
            "keep",
            entries(d.keep.iter().map(|(e, r)| {
                let mut m = e.to_dynamic().cast::<Map>();
                m.insert("reason".into(), r.join(", ").into());
                Dynamic::from_map(m)
            })),
        ),
        ("remove", entries(d.remove.iter().map(Entry::to_dynamic))),
        ("bytes_freed", Dynamic::from_int(bytes as i64)),
    ])
}

const KEPT: [Field; 8] = join(&[
    ENTRY,
    &[field("reason", Ty::Str)
        .doc("the rules that keep it: \"newest\", \"daily 2025-01-31\", \"weekly week of 2025-01-27\", \"monthly 2025-01\"")],
]);

pub const RETENTION: Primitive = Primitive::mutate("retention", plan, apply)
    .params(&[
        req("dir", Ty::Str),
        opt("opts", Ty::Record(&[
            field("keep_daily", Ty::Int).doc("days whose newest backup is kept"),
            field("keep_weekly", Ty::Int).doc("weeks (Monday to Sunday) whose newest backup is kept"),
            field("keep_monthly", Ty::Int).doc("months whose newest backup is kept"),
            PATTERN,
        ])),
    ])
    .returns(Ty::Record(&[
        field("kept", Ty::Rows(&KEPT)),
        field("removed", Ty::Rows(ENTRY)).doc("with their .sha256 sidecars"),
        field("bytes_freed", Ty::Int),
    ]))
    .doc("Apply a retention policy: keep the newest backup of each of the last `keep_daily` days, `keep_weekly` weeks (Monday to Sunday) and `keep_monthly` months (UTC, by modification time), remove the rest, with their .sha256 sidecars.\n\
          `pattern` selects the backups as in backup.list. The newest backup is always kept, and a policy that keeps nothing is refused. A mutation: --dry-run lists what would be removed and deletes nothing; the target shown for confirmation and in the audit log is the directory.")
    .example(r#"backup.retention("/backups", #{pattern: "app-*.dump", keep_daily: 7, keep_weekly: 4, keep_monthly: 6})"#);

pub fn plan(call: &mut Call) -> Result<Plan, OpError> {
    let (dir, pattern, p) = request(call)?;
    let d = decide(scan(&dir, pattern.as_deref())?, &p);
    let bytes: u64 = d.remove.iter().map(|e| e.bytes).sum();
    Ok(Plan {
        summary: format!(
            "would remove {} of {} backups in {} ({}), keeping {}",
            d.remove.len(),
            d.remove.len() + d.keep.len(),
            dir.display(),
            human_bytes(bytes),
            d.keep.len()
        ),
        details: describe(&d),
    })
}

pub fn apply(call: &mut Call) -> Result<Dynamic, OpError> {
    let (dir, pattern, p) = request(call)?;
    let d = decide(scan(&dir, pattern.as_deref())?, &p);
    let mut failed = Vec::new();
    let mut removed = Vec::new();
    for e in &d.remove {
        let res = if e.is_dir {
            std::fs::remove_dir_all(&e.path)
        } else {
            std::fs::remove_file(&e.path)
        };
        match res {
            Ok(()) => {
                let _ = std::fs::remove_file(sidecar(e));
                removed.push(e.clone());
            }
            Err(err) => failed.push(format!("{}: {err}", e.name)),
        }
    }
    if !failed.is_empty() {
        return Err(OpError::failed(format!(
            "removed {} backups in {}, but {} could not be removed",
            removed.len(),
            dir.display(),
            failed.len()
        ))
        .with_cause(failed.join("; "))
        .with_hint("check the permissions of the directory and the files"));
    }
    if removed.is_empty() {
        call.changed_nothing();
    }
    let mut m = describe(&Decision {
        keep: d.keep,
        remove: removed,
    });
    if let Some(r) = m.remove("remove") {
        m.insert("removed".into(), r);
    }
    if let Some(k) = m.remove("keep") {
        m.insert("kept".into(), k);
    }
    Ok(Dynamic::from_map(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(name: &str, day: i64) -> Entry {
        Entry {
            name: name.into(),
            path: PathBuf::from(name),
            is_dir: false,
            bytes: 1,
            mtime: day * 86_400 + 3600,
            age_s: 0,
        }
    }

    #[test]
    fn civil_dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(20_089), "2025-01-01");
        // 2025-01-06 was a Monday.
        assert_eq!(20_094 - (20_094 + 3i64).rem_euclid(7), 20_094);
    }

    #[test]
    fn gfs() {
        // 40 daily backups ending on day 20_120 (Saturday 2025-02-01), newest first.
        let v: Vec<Entry> = (0..40).map(|i| e(&format!("b{i}"), 20_120 - i)).collect();
        let d = decide(
            v,
            &Policy {
                daily: 3,
                weekly: 2,
                monthly: 2,
            },
        );
        let kept: Vec<&str> = d.keep.iter().map(|(e, _)| e.name.as_str()).collect();
        // b0..b2 daily; weekly: b0 (week of 01-27) and b6 (Sunday 01-26);
        // monthly: b0 (February) and b1 (January 31).
        assert_eq!(kept, vec!["b0", "b1", "b2", "b6"]);
        assert_eq!(d.keep[3].1, vec!["weekly week of 2025-01-20"]);
        assert_eq!(d.remove.len(), 36);
    }
}
