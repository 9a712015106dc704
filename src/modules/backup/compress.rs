//! gzip and zstd, streamed to the end: a backup whose compressed stream is
//! cut or damaged fails here with the offset where decoding broke. gzip
//! members carry a CRC-32 and zstd frames (usually) an XXH64 checksum;
//! both are checked.

use ruzstd::decoding::{FrameDecoder, StreamingDecoder};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// The decompressed content of `path`, counting what it has produced.
pub fn open(path: &Path, c: Compression) -> std::io::Result<Counting<Box<dyn Read + Send>>> {
    let f = BufReader::with_capacity(1 << 16, std::fs::File::open(path)?);
    let inner: Box<dyn Read + Send> = match c {
        Compression::None => Box::new(f),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(f)),
        Compression::Zstd => Box::new(Zstd::new(f)),
    };
    Ok(Counting { inner, count: 0 })
}

pub struct Counting<R> {
    inner: R,
    pub count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// Reads everything; Ok(bytes) or the error with the offset it happened at.
pub fn drain(r: &mut Counting<impl Read>) -> Result<u64, (u64, std::io::Error)> {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(r.count),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err((r.count, e)),
        }
    }
}

/// What a decoding error means to an operator.
pub fn describe(c: Compression, at: u64, e: &std::io::Error) -> String {
    let what = if e.kind() == std::io::ErrorKind::UnexpectedEof
        || e.to_string().contains("failed to fill whole buffer")
    {
        "ends early (truncated)".to_string()
    } else {
        format!("is corrupt: {e}")
    };
    format!("{} stream {what} after {at} decompressed bytes", c.name())
}

/// A reader of every frame of a zstd stream (pg_dump's zstd data blocks).
pub fn zstd_frames<R: BufRead>(source: R) -> impl Read {
    Zstd::new(source)
}

/// Every frame of a zstd stream (pzstd and concatenated files have
/// several), each frame's content checksum compared when it has one.
struct Zstd<R: BufRead> {
    state: Option<StreamingDecoder<R, FrameDecoder>>,
    source: Option<R>,
    frame: u64,
}

impl<R: BufRead> Zstd<R> {
    fn new(source: R) -> Self {
        Zstd {
            state: None,
            source: Some(source),
            frame: 0,
        }
    }
}

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

impl<R: BufRead> Read for Zstd<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(dec) = self.state.as_mut() {
                let n = dec.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                let Some(dec) = self.state.take() else {
                    return Ok(0);
                };
                let (src, fd) = dec.into_parts();
                if let (Some(want), Some(got)) =
                    (fd.get_checksum_from_data(), fd.get_calculated_checksum())
                {
                    if want != got {
                        return Err(invalid(format!(
                            "frame {} checksum mismatch (stored {want:08x}, computed {got:08x})",
                            self.frame
                        )));
                    }
                }
                self.source = Some(src);
            }
            let Some(mut src) = self.source.take() else {
                return Ok(0);
            };
            if src.fill_buf()?.is_empty() {
                return Ok(0);
            }
            self.frame += 1;
            match StreamingDecoder::new(src) {
                Ok(d) => self.state = Some(d),
                Err(e) => return Err(invalid(format!("frame {} header: {e}", self.frame))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"PGDMP"), Compression::None);
    }

    #[test]
    fn gzip_roundtrip_and_truncation() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("opsh-gz-{}", fastrand::u32(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.gz");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
        e.write_all(&data).unwrap();
        let gz = e.finish().unwrap();
        std::fs::write(&p, &gz).unwrap();
        let mut r = open(&p, Compression::Gzip).unwrap();
        assert_eq!(drain(&mut r).unwrap(), data.len() as u64);
        std::fs::write(&p, &gz[..gz.len() - 100]).unwrap();
        let mut r = open(&p, Compression::Gzip).unwrap();
        let (_, err) = drain(&mut r).unwrap_err();
        assert!(
            describe(Compression::Gzip, 0, &err).contains("truncated"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn zstd_roundtrip_corruption_and_truncation() {
        let dir = std::env::temp_dir().join(format!("opsh-zst-{}", fastrand::u32(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.zst");
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let z = ruzstd::encoding::compress_to_vec(
            &data[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        std::fs::write(&p, &z).unwrap();
        let mut r = open(&p, Compression::Zstd).unwrap();
        assert_eq!(drain(&mut r).unwrap(), data.len() as u64);
        std::fs::write(&p, &z[..z.len() / 2]).unwrap();
        let mut r = open(&p, Compression::Zstd).unwrap();
        assert!(
            drain(&mut r).is_err(),
            "a truncated zstd stream must not verify"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
