//! Freeze windows: `[[freeze]]` entries during which mutations of the
//! targets they name are refused, unless `--break-glass "reason"`.

use chrono::{DateTime, Duration, Utc};
use serde::de::{self, Deserializer};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: String,
    targets: Vec<String>,
    from: Option<String>,
    to: Option<String>,
    cron: Option<String>,
    duration: Option<String>,
    reason: Option<String>,
}

#[derive(Debug, Clone)]
pub enum When {
    Between(DateTime<Utc>, DateTime<Utc>),
    /// Opens at each of the schedule's times (UTC) for `Duration`.
    Recurring(Box<cron::Schedule>, Duration, String),
}

#[derive(Debug, Clone)]
pub struct Freeze {
    pub name: String,
    /// Globs over `kind:name`: `pg:prod*`, `kube:*`.
    pub targets: Vec<String>,
    pub when: When,
    pub reason: Option<String>,
}

fn ts(name: &str, field: &str, v: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("[[freeze]] `{name}`: {field} = {v:?} is not an RFC 3339 timestamp ({e}); write e.g. \"2026-12-24T00:00:00Z\"")
        })
}

impl Freeze {
    fn from_raw(r: Raw) -> Result<Freeze, String> {
        let name = r.name;
        if r.targets.is_empty() {
            return Err(format!(
                "[[freeze]] `{name}`: targets is empty; name the targets it freezes, e.g. [\"pg:prod*\"] or [\"*\"]"
            ));
        }
        let when = match (r.from, r.to, r.cron, r.duration) {
            (Some(f), Some(t), None, None) => {
                let (f, t) = (ts(&name, "from", &f)?, ts(&name, "to", &t)?);
                if t <= f {
                    return Err(format!("[[freeze]] `{name}`: `to` is not after `from`"));
                }
                When::Between(f, t)
            }
            (None, None, Some(c), Some(d)) => {
                let sched = crate::schedule::parse_cron(&c)
                    .map_err(|e| format!("[[freeze]] `{name}`: cron: {e}"))?;
                let d = humantime::parse_duration(&d)
                    .ok()
                    .and_then(|d| Duration::from_std(d).ok())
                    .filter(|d| *d > Duration::zero())
                    .ok_or_else(|| {
                        format!("[[freeze]] `{name}`: duration = {d:?} is not a duration like \"2h\"")
                    })?;
                When::Recurring(Box::new(sched), d, c)
            }
            _ => {
                return Err(format!(
                    "[[freeze]] `{name}`: give either `from` and `to` (RFC 3339), or `cron` and `duration`"
                ))
            }
        };
        Ok(Freeze {
            name,
            targets: r.targets,
            when,
            reason: r.reason,
        })
    }

    pub fn covers(&self, identity: &str) -> bool {
        self.targets
            .iter()
            .any(|g| super::target_matches(g, identity))
    }

    /// When the window is open at `now`: when it closes.
    pub fn open_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.when {
            When::Between(f, t) => (*f <= now && now < *t).then_some(*t),
            When::Recurring(s, d, _) => {
                // Every opening within the last `d` keeps it open; the last
                // one closes latest.
                s.after(&(now - *d))
                    .take_while(|t| *t <= now)
                    .last()
                    .map(|t| t + *d)
            }
        }
    }
}

/// `[[freeze]]`, checked as it is read: a bad window is a config error.
pub struct Windows(pub Vec<Freeze>);

impl<'de> Deserialize<'de> for Windows {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw: Vec<Raw> = Vec::deserialize(d)?;
        raw.into_iter()
            .map(|r| Freeze::from_raw(r).map_err(de::Error::custom))
            .collect::<Result<_, _>>()
            .map(Windows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<Vec<Freeze>, String> {
        #[derive(Deserialize)]
        struct W {
            freeze: Windows,
        }
        toml::from_str::<W>(toml)
            .map(|w| w.freeze.0)
            .map_err(|e| e.message().to_string())
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_fixed_window_is_open_between_from_and_to() {
        let f = parse("[[freeze]]\nname = \"xmas\"\ntargets = [\"pg:prod*\"]\nfrom = \"2026-12-24T00:00:00Z\"\nto = \"2026-12-27T00:00:00+01:00\"\n").unwrap();
        let f = &f[0];
        assert!(f.covers("pg:prod-eu"));
        assert!(!f.covers("pg:staging"));
        assert_eq!(f.open_until(at("2026-12-23T23:59:59Z")), None);
        assert_eq!(
            f.open_until(at("2026-12-24T00:00:00Z")),
            Some(at("2026-12-26T23:00:00Z"))
        );
        assert_eq!(f.open_until(at("2026-12-26T23:00:00Z")), None);
    }

    #[test]
    fn a_recurring_window_opens_at_each_cron_time_for_its_duration() {
        // Fridays from 16:00 UTC for 64 hours: the weekend freeze.
        let f = parse("[[freeze]]\nname = \"weekend\"\ntargets = [\"*\"]\ncron = \"0 16 * * Fri\"\nduration = \"64h\"\n").unwrap();
        let f = &f[0];
        // 2026-12-04 is a Friday.
        assert_eq!(f.open_until(at("2026-12-04T15:59:00Z")), None);
        assert_eq!(
            f.open_until(at("2026-12-05T12:00:00Z")),
            Some(at("2026-12-07T08:00:00Z"))
        );
        assert_eq!(f.open_until(at("2026-12-07T08:00:00Z")), None);
    }

    #[test]
    fn bad_windows_are_config_errors_naming_the_window() {
        let e = parse("[[freeze]]\nname = \"x\"\ntargets = [\"*\"]\nfrom = \"tomorrow\"\nto = \"2026-12-27T00:00:00Z\"\n").unwrap_err();
        assert!(
            e.contains("`x`: from = \"tomorrow\" is not an RFC 3339"),
            "{e}"
        );
        let e = parse("[[freeze]]\nname = \"x\"\ntargets = [\"*\"]\ncron = \"0 16 * * Fri\"\n")
            .unwrap_err();
        assert!(e.contains("either `from` and `to`"), "{e}");
        let e = parse(
            "[[freeze]]\nname = \"x\"\ntargets = []\ncron = \"0 16 * * Fri\"\nduration = \"1h\"\n",
        )
        .unwrap_err();
        assert!(e.contains("targets is empty"), "{e}");
        let e = parse("[[freeze]]\nname = \"x\"\ntargets = [\"*\"]\ncron = \"0 16 * * Fri\"\nduration = \"1h\"\nfor = 1\n").unwrap_err();
        assert!(e.contains("unknown field `for`"), "{e}");
    }
}
