//! PostgreSQL values to Rhai values, from the wire format, without pulling
//! in a date/decimal crate per type. Numbers stay numbers (numeric with no
//! fraction becomes an int when it fits), timestamps become RFC 3339
//! strings, json/jsonb become maps, arrays become arrays.

use rhai::{Dynamic, Map};
use sqlx::postgres::{PgRow, PgValueFormat, PgValueRef};
use sqlx::{Column, Row, TypeInfo, ValueRef};

pub fn row_to_map(row: &PgRow) -> Map {
    let mut m = Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        let v = match row.try_get_raw(i) {
            Ok(raw) => value(raw),
            Err(_) => Dynamic::UNIT,
        };
        m.insert(col.name().into(), v);
    }
    m
}

pub fn value(raw: PgValueRef<'_>) -> Dynamic {
    if raw.is_null() {
        return Dynamic::UNIT;
    }
    let ti = raw.type_info().into_owned();
    let oid = ti.oid().map(|o| o.0).unwrap_or(0);
    let is_array = ti.name().ends_with("[]");
    match raw.format() {
        PgValueFormat::Text => match raw.as_str() {
            Ok(s) => text_value(oid, s),
            Err(_) => Dynamic::UNIT,
        },
        PgValueFormat::Binary => match raw.as_bytes() {
            Ok(b) if is_array => array(b).unwrap_or_else(|| hex(b)),
            Ok(b) => binary(oid, b).unwrap_or_else(|| hex(b)),
            Err(_) => Dynamic::UNIT,
        },
    }
}

fn text_value(oid: u32, s: &str) -> Dynamic {
    match oid {
        20 | 21 | 23 | 26 => s
            .parse::<i64>()
            .map(Dynamic::from_int)
            .unwrap_or_else(|_| s.into()),
        700 | 701 | 1700 => s
            .parse::<f64>()
            .map(Dynamic::from_float)
            .unwrap_or_else(|_| s.into()),
        16 => Dynamic::from_bool(s == "t"),
        114 | 3802 => serde_json::from_str(s)
            .map(|v| crate::value::from_json(&v))
            .unwrap_or_else(|_| s.into()),
        _ => s.into(),
    }
}

fn be<const N: usize>(b: &[u8]) -> Option<[u8; N]> {
    b.get(..N)?.try_into().ok()
}

fn binary(oid: u32, b: &[u8]) -> Option<Dynamic> {
    Some(match oid {
        16 => Dynamic::from_bool(*b.first()? != 0),
        21 => Dynamic::from_int(i16::from_be_bytes(be(b)?).into()),
        23 => Dynamic::from_int(i32::from_be_bytes(be(b)?).into()),
        20 => Dynamic::from_int(i64::from_be_bytes(be(b)?)),
        26 | 28 | 24 | 2202 | 2205 | 2206 | 3734 | 4089 | 4096 => {
            Dynamic::from_int(u32::from_be_bytes(be(b)?).into())
        }
        700 => Dynamic::from_float(f32::from_be_bytes(be(b)?).into()),
        701 => Dynamic::from_float(f64::from_be_bytes(be(b)?)),
        790 => Dynamic::from_float(i64::from_be_bytes(be(b)?) as f64 / 100.0),
        1700 => numeric(b)?,
        17 => Dynamic::from_blob(b.to_vec()),
        114 => json(b)?,
        3802 => json(b.get(1..)?)?,
        2950 => uuid(b)?.into(),
        1082 => {
            let days = i32::from_be_bytes(be(b)?);
            date_string(i64::from(days) + DAYS_1970_TO_2000).into()
        }
        1114 | 1184 => timestamp(i64::from_be_bytes(be(b)?), oid == 1184).into(),
        1083 => time_of_day(i64::from_be_bytes(be(b)?)).into(),
        1186 => {
            let micros = i64::from_be_bytes(be(b)?);
            let days = i32::from_be_bytes(be(b.get(8..)?)?);
            let months = i32::from_be_bytes(be(b.get(12..)?)?);
            let secs = micros as f64 / 1e6
                + f64::from(days) * 86400.0
                + f64::from(months) * 30.0 * 86400.0;
            Dynamic::from_float(secs)
        }
        869 | 650 => inet(b)?.into(),
        3220 => {
            let lsn = u64::from_be_bytes(be(b)?);
            format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff).into()
        }
        // text, varchar, bpchar, name, char, unknown, citext and enums are UTF-8 on the wire.
        _ => std::str::from_utf8(b).ok()?.to_string().into(),
    })
}

fn hex(b: &[u8]) -> Dynamic {
    format!(
        "\\x{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
    .into()
}

fn json(b: &[u8]) -> Option<Dynamic> {
    let v: serde_json::Value = serde_json::from_slice(b).ok()?;
    Some(crate::value::from_json(&v))
}

fn uuid(b: &[u8]) -> Option<String> {
    let h: String = b.get(..16)?.iter().map(|x| format!("{x:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

fn inet(b: &[u8]) -> Option<String> {
    let (family, bits, nb) = (*b.first()?, *b.get(1)?, *b.get(3)? as usize);
    let addr = b.get(4..4 + nb)?;
    let s = if family == 2 {
        std::net::Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).to_string()
    } else {
        let arr: [u8; 16] = addr.try_into().ok()?;
        std::net::Ipv6Addr::from(arr).to_string()
    };
    let full = if family == 2 { 32 } else { 128 };
    Some(if bits == full {
        s
    } else {
        format!("{s}/{bits}")
    })
}

/// Binary numeric: ndigits, weight, sign, dscale, then base-10000 digits.
fn numeric(b: &[u8]) -> Option<Dynamic> {
    let ndigits = i16::from_be_bytes(be(b)?) as usize;
    let weight = i16::from_be_bytes(be(b.get(2..)?)?);
    let sign = u16::from_be_bytes(be(b.get(4..)?)?);
    let dscale = i16::from_be_bytes(be(b.get(6..)?)?);
    if sign == 0xC000 {
        return Some(Dynamic::from_float(f64::NAN));
    }
    let mut digits = Vec::with_capacity(ndigits);
    for i in 0..ndigits {
        digits.push(i64::from(i16::from_be_bytes(be(b.get(8 + 2 * i..)?)?)));
    }
    let neg = sign == 0x4000;
    // Integers (scale 0) that fit stay exact.
    if dscale == 0 {
        let mut acc: i64 = 0;
        let mut ok = true;
        for p in 0..=i64::from(weight.max(-1)) {
            let d = digits.get(p as usize).copied().unwrap_or(0);
            match acc.checked_mul(10000).and_then(|a| a.checked_add(d)) {
                Some(a) => acc = a,
                None => ok = false,
            }
        }
        if ok {
            return Some(Dynamic::from_int(if neg { -acc } else { acc }));
        }
    }
    let mut v = 0f64;
    for (i, d) in digits.iter().enumerate() {
        v += *d as f64 * 10000f64.powi(i32::from(weight) - i as i32);
    }
    Some(Dynamic::from_float(if neg { -v } else { v }))
}

fn array(b: &[u8]) -> Option<Dynamic> {
    let ndim = i32::from_be_bytes(be(b)?);
    let elem_oid = u32::from_be_bytes(be(b.get(8..)?)?);
    if ndim == 0 {
        return Some(Dynamic::from_array(Vec::new()));
    }
    if ndim != 1 {
        return None;
    }
    let len = i32::from_be_bytes(be(b.get(12..)?)?) as usize;
    let mut pos = 20;
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        let n = i32::from_be_bytes(be(b.get(pos..)?)?);
        pos += 4;
        if n < 0 {
            out.push(Dynamic::UNIT);
            continue;
        }
        let n = n as usize;
        let e = b.get(pos..pos + n)?;
        out.push(binary(elem_oid, e).unwrap_or_else(|| hex(e)));
        pos += n;
    }
    Some(Dynamic::from_array(out))
}

const DAYS_1970_TO_2000: i64 = 10957;

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn date_string(days_1970: i64) -> String {
    let (y, m, d) = civil(days_1970);
    format!("{y:04}-{m:02}-{d:02}")
}

fn time_of_day(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let base = format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    );
    if frac == 0 {
        base
    } else {
        format!("{base}.{}", format!("{frac:06}").trim_end_matches('0'))
    }
}

/// Unix seconds as RFC 3339 in UTC (used for timestamps elsewhere too).
pub fn unix_to_rfc3339(unix_micros: i64) -> String {
    let days = unix_micros.div_euclid(86_400_000_000);
    let rest = unix_micros.rem_euclid(86_400_000_000);
    format!("{}T{}Z", date_string(days), time_of_day(rest))
}

fn timestamp(micros_2000: i64, tz: bool) -> String {
    if micros_2000 == i64::MAX {
        return "infinity".into();
    }
    if micros_2000 == i64::MIN {
        return "-infinity".into();
    }
    let unix = micros_2000 + DAYS_1970_TO_2000 * 86_400_000_000;
    let s = unix_to_rfc3339(unix);
    if tz {
        s
    } else {
        s.trim_end_matches('Z').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date_string(0), "1970-01-01");
        assert_eq!(date_string(DAYS_1970_TO_2000), "2000-01-01");
        assert_eq!(date_string(-1), "1969-12-31");
        assert_eq!(
            unix_to_rfc3339(1_700_000_000_000_000),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(timestamp(1_500_000, true), "2000-01-01T00:00:01.5Z");
    }

    #[test]
    fn numerics() {
        // 12345.678: ndigits 3, weight 1, sign 0, dscale 3, digits 1 2345 6780
        let b = [0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c];
        assert_eq!(numeric(&b).unwrap().as_float().unwrap(), 12345.678);
        // 20000 as integer: ndigits 1, weight 1, digit 2
        let b = [0, 1, 0, 1, 0, 0, 0, 0, 0, 2];
        assert_eq!(numeric(&b).unwrap().as_int().unwrap(), 20000);
    }
}
