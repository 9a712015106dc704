//! Times as the Prometheus API takes them: unix seconds. Scripts may give
//! unix seconds, RFC 3339, "now", or a duration meaning that long ago.

use crate::dispatch::OpError;
use crate::registry::Ty;
use rhai::Dynamic;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time as scripts give it: unix seconds (a number), or a
/// string (RFC 3339, "now", or a duration ago).
pub const TIME: Ty = Ty::OneOf(&[Ty::Str, Ty::Float]);

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub fn parse(d: &Dynamic, now: f64) -> Result<f64, OpError> {
    if let Ok(i) = d.as_int() {
        return Ok(i as f64);
    }
    if let Ok(f) = d.as_float() {
        return Ok(f);
    }
    if d.is_string() {
        let s = d.to_string();
        let t = s.trim();
        if t == "now" {
            return Ok(now);
        }
        if let Ok(st) = humantime::parse_rfc3339_weak(t) {
            return Ok(st
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0));
        }
        if let Ok(ago) = humantime::parse_duration(t.trim_start_matches('-')) {
            return Ok(now - ago.as_secs_f64());
        }
        return Err(OpError::bad_input(format!("invalid time {s:?}")).with_hint(
            "give unix seconds, an RFC 3339 time (\"2024-05-01T12:00:00Z\"), \"now\", or a duration ago (\"15m\")",
        ));
    }
    Err(OpError::bad_input(format!(
        "a time must be a number or a string, got {}",
        crate::value::type_name(d)
    )))
}

/// Seconds with millisecond precision, no trailing zeros.
pub fn fmt(secs: f64) -> String {
    let s = format!("{secs:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

pub fn fmt_rfc3339(secs: f64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs_f64(secs.max(0.0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A duration as Prometheus's `timeout` and `step` parameters take it.
pub fn seconds(d: Duration) -> String {
    fmt(d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        let now = 1_000_000.0;
        assert_eq!(parse(&Dynamic::from_int(5), now).unwrap(), 5.0);
        assert_eq!(
            parse(&Dynamic::from("15m".to_string()), now).unwrap(),
            now - 900.0
        );
        assert_eq!(
            parse(&Dynamic::from("-1h".to_string()), now).unwrap(),
            now - 3600.0
        );
        assert_eq!(
            parse(&Dynamic::from("1970-01-02T00:00:00Z".to_string()), now).unwrap(),
            86400.0
        );
        assert!(parse(&Dynamic::from("yesterday".to_string()), now).is_err());
        assert_eq!(fmt(1.5), "1.5");
        assert_eq!(fmt(2.0), "2");
    }
}
