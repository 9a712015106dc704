//! Conversions between Rhai values, JSON, and the typed arguments that
//! primitives take. Results are data: numbers stay numbers.

use rhai::{Array, Dynamic, Map};
use serde_json::Value;

pub fn to_json(d: &Dynamic) -> Value {
    if d.is_unit() {
        Value::Null
    } else if let Ok(b) = d.as_bool() {
        Value::Bool(b)
    } else if let Ok(i) = d.as_int() {
        Value::from(i)
    } else if let Ok(f) = d.as_float() {
        serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    } else if d.is_string() {
        Value::String(d.clone().into_string().unwrap_or_default())
    } else if d.is_char() {
        Value::String(d.to_string())
    } else if d.is_array() {
        let arr = d
            .read_lock::<Array>()
            .map(|a| a.iter().map(to_json).collect())
            .unwrap_or_default();
        Value::Array(arr)
    } else if d.is_map() {
        let obj = d
            .read_lock::<Map>()
            .map(|m| m.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect())
            .unwrap_or_default();
        Value::Object(obj)
    } else if d.is_blob() {
        let bytes = d
            .read_lock::<rhai::Blob>()
            .map(|b| b.clone())
            .unwrap_or_default();
        Value::String(format!(
            "\\x{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ))
    } else {
        Value::String(d.to_string())
    }
}

pub fn from_json(v: &Value) -> Dynamic {
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Dynamic::from(s.clone()),
        Value::Array(a) => Dynamic::from_array(a.iter().map(from_json).collect()),
        Value::Object(o) => {
            let m: Map = o
                .iter()
                .map(|(k, v)| (k.as_str().into(), from_json(v)))
                .collect();
            Dynamic::from_map(m)
        }
    }
}

/// The name a script author knows a value's type by.
pub fn type_name(d: &Dynamic) -> &'static str {
    if d.is_unit() {
        "()"
    } else if d.is_bool() {
        "bool"
    } else if d.is_int() {
        "int"
    } else if d.is_float() {
        "float"
    } else if d.is_string() {
        "string"
    } else if d.is_array() {
        "array"
    } else if d.is_map() {
        "map"
    } else if d.is_blob() {
        "blob"
    } else if d.is_fnptr() {
        "function"
    } else {
        "value"
    }
}

/// Parses a duration given as seconds (int/float) or a humantime string
/// ("5m", "1h 30m", "250ms").
pub fn parse_duration(d: &Dynamic) -> Result<std::time::Duration, String> {
    if let Ok(i) = d.as_int() {
        return u64::try_from(i)
            .map(std::time::Duration::from_secs)
            .map_err(|_| format!("a duration cannot be negative: {i}"));
    }
    if let Ok(f) = d.as_float() {
        return std::time::Duration::try_from_secs_f64(f).map_err(|_| {
            if f < 0.0 {
                format!("a duration cannot be negative: {f}")
            } else if f.is_finite() {
                format!(
                    "a duration of {f} seconds is too long (at most {} seconds)",
                    u64::MAX
                )
            } else {
                format!("invalid duration: {f} (a number of seconds, or a string like \"5m\")")
            }
        });
    }
    if d.is_string() {
        let s = d.to_string();
        return humantime::parse_duration(s.trim()).map_err(|e| {
            format!("invalid duration {s:?}: {e} (examples: \"30s\", \"5m\", \"1h 30m\")")
        });
    }
    Err(format!(
        "expected a duration (\"5m\" or seconds), got {}",
        type_name(d)
    ))
}

/// A size given as bytes (int) or a string like "10MB", "1.5 GiB", "500k".
/// Decimal units are powers of 1000, binary ones (KiB, MiB) of 1024.
pub fn size_from_str(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?} (examples: 1024, \"10MB\", \"1.5GiB\")"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {s:?} (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
            ))
        }
    };
    Ok((n * mult).round() as u64)
}

/// A size as scripts give it: bytes (a non-negative int) or a string like
/// "10MB".
pub fn parse_size(d: &Dynamic) -> Result<u64, String> {
    if let Ok(i) = d.as_int() {
        return u64::try_from(i).map_err(|_| format!("a size cannot be negative: {i}"));
    }
    if d.is_string() {
        return size_from_str(&d.to_string());
    }
    Err(format!(
        "expected a size (bytes, or a string like \"10MB\"), got {}",
        type_name(d)
    ))
}

pub fn map_of(pairs: impl IntoIterator<Item = (&'static str, Dynamic)>) -> Map {
    pairs.into_iter().map(|(k, v)| (k.into(), v)).collect()
}

/// Standard base64 with padding (RFC 4648), as Kubernetes Secret data and
/// HMAC signatures use it.
pub fn b64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}
