//! Just enough DER to read a certificate's validity and names: a TLV
//! walker over Certificate > TBSCertificate (RFC 5280 section 4.1).

pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

/// One TLV: (tag, content, rest after it).
fn tlv(b: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let short = || "truncated DER".to_string();
    let tag = *b.first().ok_or_else(short)?;
    let first = *b.get(1).ok_or_else(short)?;
    let (len, hdr) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return Err("unsupported DER length".into());
        }
        let bytes = b.get(2..2 + n).ok_or_else(short)?;
        (
            bytes.iter().fold(0usize, |a, x| (a << 8) | *x as usize),
            2 + n,
        )
    };
    let content = b.get(hdr..hdr + len).ok_or_else(short)?;
    Ok((tag, content, &b[hdr + len..]))
}

/// The CN of a Name (or the whole RDN sequence's values when there is none).
fn name(content: &[u8]) -> String {
    let mut parts = Vec::new();
    let mut cn = None;
    let mut rest = content;
    while let Ok((_, set, r)) = tlv(rest) {
        rest = r;
        if let Ok((_, atv, _)) = tlv(set) {
            if let Ok((_, oid, after)) = tlv(atv) {
                let value = tlv(after)
                    .map(|(_, v, _)| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default();
                if oid == [0x55, 0x04, 0x03] {
                    cn = Some(value.clone());
                }
                parts.push(value);
            }
        }
    }
    cn.unwrap_or_else(|| parts.join(", "))
}

fn time(tag: u8, v: &[u8]) -> Result<i64, String> {
    let s = std::str::from_utf8(v).map_err(|_| "bad time")?;
    let digits = |a: usize, n: usize| -> Result<i64, String> {
        s.get(a..a + n)
            .and_then(|x| x.parse::<i64>().ok())
            .ok_or_else(|| format!("bad time {s:?}"))
    };
    let (year, off) = match tag {
        0x17 => {
            let y = digits(0, 2)?;
            (if y >= 50 { 1900 + y } else { 2000 + y }, 2)
        }
        0x18 => (digits(0, 4)?, 4),
        _ => return Err(format!("unexpected time tag {tag:#x}")),
    };
    let (mo, d, h, mi, sec) = (
        digits(off, 2)?,
        digits(off + 2, 2)?,
        digits(off + 4, 2)?,
        digits(off + 6, 2)?,
        digits(off + 8, 2)?,
    );
    Ok(days_from_civil(year, mo, d) * 86400 + h * 3600 + mi * 60 + sec)
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

pub fn rfc3339(unix: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

pub fn parse(der: &[u8]) -> Result<CertInfo, String> {
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    let mut rest = tbs;
    let (tag, _, r) = tlv(rest)?;
    // [0] EXPLICIT version is optional; the serial number follows.
    rest = if tag == 0xa0 { tlv(r)?.2 } else { r };
    let (_, _, r) = tlv(rest)?; // signature algorithm
    let (_, issuer, r) = tlv(r)?;
    let (_, validity, r) = tlv(r)?;
    let (_, subject, _) = tlv(r)?;
    let (t1, nb, vr) = tlv(validity)?;
    let (t2, na, _) = tlv(vr)?;
    Ok(CertInfo {
        subject: name(subject),
        issuer: name(issuer),
        not_before: time(t1, nb)?,
        not_after: time(t2, na)?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_days() {
        assert_eq!(super::days_from_civil(1970, 1, 1), 0);
        assert_eq!(super::days_from_civil(2000, 3, 1), 11017);
        assert_eq!(super::time(0x17, b"250101000000Z").unwrap(), 1735689600);
    }
}
