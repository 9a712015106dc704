//! Redis RDB files: "REDIS" and a four-digit version, the EOF opcode
//! (0xFF), then since version 5 a CRC-64 of everything before it, little
//! endian. Redis's CRC-64 is the Jones polynomial, reflected, init 0, no
//! final xor (src/crc64.c); a stored 0 means `rdbchecksum no`.

use std::io::Read;
use std::path::Path;

const POLY_REFLECTED: u64 = 0xad93d23594c935a9u64.reverse_bits();

const fn table() -> [u64; 256] {
    let mut t = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        t[i] = crc;
        i += 1;
    }
    t
}

static TABLE: [u64; 256] = table();

pub fn crc64(mut crc: u64, data: &[u8]) -> u64 {
    for &b in data {
        crc = TABLE[((crc ^ b as u64) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

#[derive(Debug)]
pub struct RdbInfo {
    pub version: u32,
    pub bytes: u64,
    pub stored: u64,
    pub computed: u64,
    pub eof_marker: bool,
}

/// Reads the whole file once, keeping its last 9 bytes aside.
pub fn read(path: &Path) -> std::io::Result<RdbInfo> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 16];
    let mut tail: Vec<u8> = Vec::with_capacity(buf.len() + 9);
    let mut crc = 0u64;
    let mut bytes = 0u64;
    let mut head = Vec::new();
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        if head.len() < 9 {
            head.extend_from_slice(&buf[..n.min(9 - head.len())]);
        }
        tail.extend_from_slice(&buf[..n]);
        // Everything but the last 8 bytes (the stored CRC) is checksummed.
        if tail.len() > 8 {
            let cut = tail.len() - 8;
            crc = crc64(crc, &tail[..cut]);
            tail.drain(..cut);
        }
    }
    let version = std::str::from_utf8(head.get(5..9).unwrap_or_default())
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stored = if tail.len() == 8 {
        u64::from_le_bytes(tail[..8].try_into().unwrap_or([0; 8]))
    } else {
        0
    };
    // The byte before the CRC: read it again (it was folded into `crc`).
    let eof_marker = {
        use std::io::{Seek, SeekFrom};
        bytes >= 9 && f.seek(SeekFrom::Start(bytes - 9)).is_ok() && {
            let mut b = [0u8; 1];
            f.read_exact(&mut b).is_ok() && b[0] == 0xff
        }
    };
    Ok(RdbInfo {
        version,
        bytes,
        stored,
        computed: crc,
        eof_marker,
    })
}

impl RdbInfo {
    pub fn judge(&self) -> Result<String, String> {
        if self.version == 0 {
            return Err("the RDB version after \"REDIS\" is not four digits".into());
        }
        if self.bytes < 18 {
            return Err(format!(
                "only {} bytes: too short for an RDB file (truncated)",
                self.bytes
            ));
        }
        if self.version < 5 {
            return Ok(format!(
                "RDB version {}: versions before 5 have no checksum; not verified",
                self.version
            ));
        }
        if !self.eof_marker {
            return Err(format!(
                "no EOF marker (0xFF) before the checksum: the file is truncated or damaged (RDB version {}, {} bytes)",
                self.version, self.bytes
            ));
        }
        if self.stored == 0 {
            return Ok(format!(
                "RDB version {}; written with rdbchecksum no (stored CRC 0): not verified",
                self.version
            ));
        }
        if self.stored != self.computed {
            return Err(format!(
                "CRC64 mismatch: the file says {:016x}, its content gives {:016x} (RDB version {})",
                self.stored, self.computed, self.version
            ));
        }
        Ok(format!(
            "RDB version {}, CRC64 {:016x} matches",
            self.version, self.stored
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        // The catalogue's check value for CRC-64/Jones as Redis uses it.
        assert_eq!(crc64(0, b"123456789"), 0xe9c6d914c4b8d9ca);
    }

    #[test]
    fn real_rdb() {
        // Written by redis-server 7.0 (SAVE) with three keys.
        let data = include_bytes!("testdata/small.rdb");
        let n = data.len();
        let stored = u64::from_le_bytes(data[n - 8..].try_into().unwrap());
        assert_eq!(crc64(0, &data[..n - 8]), stored);
        let dir = std::env::temp_dir().join(format!("opsh-rdb-{}", fastrand::u32(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("dump.rdb");
        std::fs::write(&p, data).unwrap();
        let info = read(&p).unwrap();
        assert!(info.judge().unwrap().contains("matches"), "{info:?}");
        let mut bad = data.to_vec();
        bad[40] ^= 0x01;
        std::fs::write(&p, &bad).unwrap();
        assert!(read(&p)
            .unwrap()
            .judge()
            .unwrap_err()
            .contains("CRC64 mismatch"));
        std::fs::write(&p, &data[..n - 20]).unwrap();
        assert!(read(&p)
            .unwrap()
            .judge()
            .unwrap_err()
            .contains("no EOF marker"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
