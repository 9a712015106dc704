//! pg_dump's custom format (`-Fc`), read natively: the header, the table of
//! contents and every data block, each inflated to its end and its COPY
//! rows counted. No pg_restore: verifying a custom archive costs one read
//! of the file (pg_restore is kept for a real restore, and for the
//! directory and tar formats and lz4 compression).
//!
//! The layout (PostgreSQL's pg_backup_archiver.c and pg_backup_custom.c):
//! - header: "PGDMP", version (major, minor, revision), int size, offset
//!   size, format (1 = custom), compression (an algorithm byte from 1.15,
//!   a level before), the creation time as 7 ints, the database name, the
//!   server and pg_dump versions;
//! - the TOC: a count, then per entry its dump id, strings (tag, desc,
//!   definition, COPY statement, schema, owner ...), its dependencies and,
//!   custom format, the state and offset of its data;
//! - data blocks, to the end of the file: a type byte (1 data, 3 large
//!   objects), the dump id, then chunks (length, bytes) ended by a zero
//!   length; the chunks of one block form one compressed stream.
//!
//! An int is a sign byte then `int size` bytes, little-endian; a string is
//! an int length (-1: null) then its bytes.

use super::pgarchive::Toc;
use super::sql::{copy_target, SqlInfo};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

const BLK_DATA: u8 = 1;
const BLK_BLOBS: u8 = 3;
const K_OFFSET_POS_SET: u8 = 2;

fn vers(major: u8, minor: u8) -> u32 {
    (major as u32) << 16 | (minor as u32) << 8
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Lz4,
    Zstd,
}

impl Compression {
    fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub dump_id: i64,
    pub tag: String,
    pub desc: String,
    pub namespace: Option<String>,
    pub copy_stmt: Option<String>,
    /// Where its data block starts, when pg_dump could seek back to write it.
    pub offset: Option<u64>,
}

impl Entry {
    fn qualified(&self) -> String {
        match &self.namespace {
            Some(ns) if !ns.is_empty() => format!("{ns}.{}", self.tag),
            _ => self.tag.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Archive {
    pub compression: Compression,
    pub toc: Toc,
    pub entries: Vec<Entry>,
}

/// A reader that knows where it is, for messages and offset checks.
struct Src<R> {
    r: R,
    pos: u64,
    int_size: usize,
    off_size: usize,
}

fn eof(what: &str, pos: u64) -> String {
    format!("the archive ends early (truncated): end of file in {what} at byte {pos}")
}

impl<R: BufRead> Src<R> {
    fn bytes(&mut self, buf: &mut [u8], what: &str) -> Result<(), String> {
        self.r.read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => eof(what, self.pos),
            _ => format!("reading {what} at byte {}: {e}", self.pos),
        })?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn byte(&mut self, what: &str) -> Result<u8, String> {
        let mut b = [0u8; 1];
        self.bytes(&mut b, what)?;
        Ok(b[0])
    }

    /// `None` at a clean end of file (between blocks).
    fn byte_or_end(&mut self) -> Result<Option<u8>, String> {
        let buf = self
            .r
            .fill_buf()
            .map_err(|e| format!("reading at byte {}: {e}", self.pos))?;
        let Some(&b) = buf.first() else {
            return Ok(None);
        };
        self.r.consume(1);
        self.pos += 1;
        Ok(Some(b))
    }

    fn int(&mut self, what: &str) -> Result<i64, String> {
        let neg = self.byte(what)? != 0;
        let mut v: u64 = 0;
        for i in 0..self.int_size {
            let b = self.byte(what)? as u64;
            if i < 8 {
                v |= b << (8 * i);
            }
        }
        let v = v as i64;
        Ok(if neg { -v } else { v })
    }

    fn string(&mut self, what: &str) -> Result<Option<String>, String> {
        let at = self.pos;
        let n = self.int(what)?;
        if n < 0 {
            return Ok(None);
        }
        // A TOC string longer than this is a damaged length, not SQL.
        if n > 1 << 30 {
            return Err(format!(
                "{what} at byte {at} claims {n} bytes: the table of contents is damaged"
            ));
        }
        let mut buf = vec![0u8; n as usize];
        self.bytes(&mut buf, what)?;
        Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
    }

    fn offset(&mut self, what: &str) -> Result<(u8, u64), String> {
        let flag = self.byte(what)?;
        if !(1..=3).contains(&flag) {
            return Err(format!(
                "{what}: unexpected data state {flag} at byte {}: the table of contents is damaged",
                self.pos - 1
            ));
        }
        let mut v: u64 = 0;
        for i in 0..self.off_size {
            let b = self.byte(what)? as u64;
            if i < 8 {
                v |= b << (8 * i);
            }
        }
        Ok((flag, v))
    }
}

/// Reads the header and the TOC.
fn read_head<R: BufRead>(src: &mut Src<R>) -> Result<Archive, String> {
    let mut magic = [0u8; 5];
    src.bytes(&mut magic, "the header")?;
    if &magic != b"PGDMP" {
        return Err("no PGDMP magic: not a pg_dump archive".into());
    }
    let major = src.byte("the header")?;
    let minor = src.byte("the header")?;
    let rev = src.byte("the header")?;
    let v = vers(major, minor);
    if major != 1 || !(vers(1, 7)..=vers(1, 255)).contains(&v) {
        return Err(format!(
            "archive version {major}.{minor}.{rev} is not one opsh reads (1.7 to 1.x)"
        ));
    }
    src.int_size = src.byte("the header")? as usize;
    src.off_size = src.byte("the header")? as usize;
    if !(1..=16).contains(&src.int_size) || !(1..=16).contains(&src.off_size) {
        return Err(format!(
            "integer size {} / offset size {} in the header: the header is damaged",
            src.int_size, src.off_size
        ));
    }
    let format = src.byte("the header")?;
    if format != 1 {
        return Err(format!("format byte {format}: not a custom-format archive"));
    }
    let compression = if v >= vers(1, 15) {
        match src.byte("the header")? {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Lz4,
            3 => Compression::Zstd,
            c => return Err(format!("unknown compression algorithm {c} in the header")),
        }
    } else {
        let level = if v < vers(1, 4) {
            src.byte("the header")? as i64
        } else {
            src.int("the header")?
        };
        if level == 0 {
            Compression::None
        } else {
            Compression::Gzip
        }
    };
    let mut tm = [0i64; 7];
    for t in tm.iter_mut() {
        *t = src.int("the creation time")?;
    }
    let dbname = src.string("the database name")?;
    let (server, dump) = if v >= vers(1, 10) {
        (
            src.string("the server version")?,
            src.string("the pg_dump version")?,
        )
    } else {
        (None, None)
    };
    let count = src.int("the TOC entry count")?;
    if !(0..=10_000_000).contains(&count) {
        return Err(format!(
            "{count} TOC entries: the table of contents is damaged"
        ));
    }
    let mut entries = Vec::with_capacity(count as usize);
    for i in 0..count {
        let what = format!("TOC entry {} of {count}", i + 1);
        let w = what.as_str();
        let dump_id = src.int(w)?;
        if dump_id <= 0 {
            return Err(format!(
                "{what}: dump id {dump_id} out of range: the table of contents is damaged"
            ));
        }
        let _had_dumper = src.int(w)?;
        src.string(w)?; // table oid
        src.string(w)?; // oid
        let tag = src.string(w)?.unwrap_or_default();
        let desc = src.string(w)?.unwrap_or_default();
        if v >= vers(1, 11) {
            src.int(w)?; // section
        }
        src.string(w)?; // definition
        src.string(w)?; // drop statement
        let copy_stmt = src.string(w)?;
        let namespace = src.string(w)?;
        if v >= vers(1, 10) {
            src.string(w)?; // tablespace
        }
        if v >= vers(1, 14) {
            src.string(w)?; // table access method
        }
        if v >= vers(1, 16) {
            src.int(w)?; // relkind
        }
        src.string(w)?; // owner
        if v >= vers(1, 9) {
            src.string(w)?; // "with oids"
        }
        while src.string(w)?.is_some() {} // dependencies, ended by a null
        let (state, off) = src.offset(w)?;
        entries.push(Entry {
            dump_id,
            tag,
            desc,
            namespace,
            copy_stmt,
            offset: (state == K_OFFSET_POS_SET).then_some(off),
        });
    }
    let created = (tm[5] > 0).then(|| {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            tm[5] + 1900,
            tm[4] + 1,
            tm[3],
            tm[2],
            tm[1],
            tm[0]
        )
    });
    let mut toc = Toc {
        dbname,
        created,
        format: Some("CUSTOM".into()),
        compression: Some(compression.name().into()),
        archive_version: Some(format!("{major}.{minor}-{rev}")),
        server_version: server,
        dump_version: dump,
        entries: entries.len(),
        ..Default::default()
    };
    for e in &entries {
        match e.desc.as_str() {
            "TABLE" => toc.tables.push(e.qualified()),
            "TABLE DATA" => toc.data.push(e.qualified()),
            _ => {}
        }
    }
    Ok(Archive {
        compression,
        toc,
        entries,
    })
}

/// The chunks of one data block as one byte stream: ends at the zero-length
/// chunk that closes the block.
struct Chunks<'a, R> {
    src: &'a mut Src<R>,
    left: usize,
    done: bool,
    what: &'a str,
}

impl<R: BufRead> Read for Chunks<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let err = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
        while self.left == 0 {
            if self.done {
                return Ok(0);
            }
            let at = self.src.pos;
            let n = self.src.int(self.what).map_err(err)?;
            if n == 0 {
                self.done = true;
                return Ok(0);
            }
            if !(0..=1 << 30).contains(&n) {
                return Err(err(format!(
                    "the data of {} has a chunk of {n} bytes at byte {at}: the archive is damaged",
                    self.what
                )));
            }
            self.left = n as usize;
        }
        let want = buf.len().min(self.left);
        let got = self.src.r.read(&mut buf[..want])?;
        if got == 0 {
            return Err(err(eof(
                &format!("the data of {}", self.what),
                self.src.pos,
            )));
        }
        self.left -= got;
        self.src.pos += got as u64;
        Ok(got)
    }
}

/// Counts COPY rows as the data streams by: one line per row (COPY's text
/// format escapes newlines), up to the `\.` terminator.
#[derive(Default)]
struct RowCounter {
    lines: u64,
    /// The current line so far, up to 3 bytes: enough to spot `\.`.
    head: Vec<u8>,
    terminators: u64,
    partial: bool,
}

impl RowCounter {
    /// Counts the lines in `data`, found with memchr: a byte-at-a-time loop
    /// was a fifth of verifying a dump.
    fn feed(&mut self, data: &[u8]) {
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', data) {
            self.extend(&data[start..nl]);
            // pg_dump writes "\\.\n\n\n" after the rows.
            if self.head.as_slice() == b"\\." {
                self.terminators += 1;
            } else if self.terminators == 0 {
                self.lines += 1;
            }
            self.head.clear();
            self.partial = false;
            start = nl + 1;
        }
        self.extend(&data[start..]);
    }

    /// A piece of the current line, without its newline.
    fn extend(&mut self, part: &[u8]) {
        if part.is_empty() {
            return;
        }
        let room = 3usize.saturating_sub(self.head.len()).min(part.len());
        self.head.extend_from_slice(&part[..room]);
        self.partial = true;
    }
}

/// Inflates one block's stream to its end, feeding `out`.
fn inflate<R: BufRead>(
    chunks: &mut Chunks<'_, R>,
    c: Compression,
    out: &mut dyn FnMut(&[u8]),
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pump = |r: &mut dyn Read| -> std::io::Result<()> {
        loop {
            let n = r.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            out(&buf[..n]);
        }
    };
    match c {
        Compression::None => pump(chunks)?,
        Compression::Gzip => {
            // pg_dump writes a zlib stream (deflateInit), not gzip.
            let mut z = flate2::read::ZlibDecoder::new(&mut *chunks);
            pump(&mut z)?;
        }
        Compression::Zstd => {
            let mut z = crate::modules::backup::compress::zstd_frames(BufReader::new(&mut *chunks));
            pump(&mut z)?;
        }
        Compression::Lz4 => {
            return Err(std::io::Error::other("lz4 is not read natively"));
        }
    }
    // Whatever follows the end of the compressed stream inside the block.
    let mut rest = Vec::new();
    chunks.read_to_end(&mut rest)?;
    if !rest.is_empty() && c != Compression::None {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} bytes after the end of the compressed stream",
                rest.len()
            ),
        ));
    }
    Ok(())
}

/// What reading a custom archive found.
pub struct Scan {
    pub toc: Toc,
    pub data: SqlInfo,
    /// Data blocks read, and large objects inside them.
    pub blocks: usize,
    pub large_objects: usize,
}

/// `Ok(None)`: compressed with lz4, which opsh does not inflate (the caller
/// falls back to pg_restore).
pub fn read(path: &Path) -> Result<Option<Scan>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    read_from(BufReader::with_capacity(1 << 16, f))
}

pub fn read_from<R: BufRead>(r: R) -> Result<Option<Scan>, String> {
    let mut src = Src {
        r,
        pos: 0,
        int_size: 4,
        off_size: 8,
    };
    let archive = read_head(&mut src)?;
    if archive.compression == Compression::Lz4 {
        return Ok(None);
    }
    let by_id: std::collections::HashMap<i64, usize> = archive
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.dump_id, i))
        .collect();
    let mut seen = vec![false; archive.entries.len()];
    let mut data = SqlInfo {
        header: Some(super::sql::HEADER.into()),
        footer: true,
        server_version: archive.toc.server_version.clone(),
        dump_version: archive.toc.dump_version.clone(),
        tables: archive.toc.tables.clone(),
        ..Default::default()
    };
    let (mut blocks, mut los) = (0usize, 0usize);
    while let Some(kind) = src.byte_or_end()? {
        let start = src.pos - 1;
        let id = src.int("a data block header")?;
        let Some(&i) = by_id.get(&id) else {
            return Err(format!(
                "a data block at byte {start} belongs to dump id {id}, which the table of contents does not have: the archive is damaged"
            ));
        };
        let e = &archive.entries[i];
        let name = e.qualified();
        if let Some(off) = e.offset {
            if off != start {
                return Err(format!(
                    "the data of {name} is at byte {start}, the table of contents says {off}: the archive is damaged"
                ));
            }
        }
        seen[i] = true;
        blocks += 1;
        let what = format!("{} {name}", e.desc);
        match kind {
            BLK_DATA => {
                let mut rows = RowCounter::default();
                let mut chunks = Chunks {
                    src: &mut src,
                    left: 0,
                    done: false,
                    what: &what,
                };
                inflate(&mut chunks, archive.compression, &mut |b| rows.feed(b))
                    .map_err(|err| block_error(&what, archive.compression, err))?;
                if rows.partial {
                    return Err(format!(
                        "the data of {what} ends inside a row: the archive is damaged"
                    ));
                }
                if let Some(target) = e.copy_stmt.as_deref().and_then(copy_target) {
                    data.copies.push((target, rows.lines));
                }
            }
            BLK_BLOBS => loop {
                let oid = src.int(&what)?;
                if oid == 0 {
                    break;
                }
                los += 1;
                let mut chunks = Chunks {
                    src: &mut src,
                    left: 0,
                    done: false,
                    what: &what,
                };
                inflate(&mut chunks, archive.compression, &mut |_| {}).map_err(|err| {
                    block_error(&format!("large object {oid}"), archive.compression, err)
                })?;
            },
            k => {
                return Err(format!(
                    "unknown block type {k} at byte {start}: the archive is damaged"
                ))
            }
        }
    }
    // Every entry the TOC says was written must have its block.
    let missing: Vec<String> = archive
        .entries
        .iter()
        .zip(&seen)
        .filter(|(e, s)| e.offset.is_some() && !**s)
        .map(|(e, _)| e.qualified())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the archive ends early (truncated): no data block for {}",
            missing.join(", ")
        ));
    }
    Ok(Some(Scan {
        toc: archive.toc,
        data,
        blocks,
        large_objects: los,
    }))
}

fn block_error(what: &str, c: Compression, err: std::io::Error) -> String {
    let msg = err.to_string();
    if msg.starts_with("the archive") || msg.starts_with("the data of") {
        msg
    } else {
        format!("could not uncompress data of {what} ({}): {msg}", c.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_count_the_same_however_the_stream_is_cut() {
        let data: &[u8] = b"1\tbolt\n2\tnut\n\\.\n\n\n";
        let whole = {
            let mut r = RowCounter::default();
            r.feed(data);
            (r.lines, r.terminators, r.partial)
        };
        assert_eq!(whole, (2, 1, false));
        for a in 0..=data.len() {
            for b in a..=data.len() {
                let mut r = RowCounter::default();
                r.feed(&data[..a]);
                r.feed(&data[a..b]);
                r.feed(&data[b..]);
                assert_eq!(
                    (r.lines, r.terminators, r.partial),
                    whole,
                    "cut at {a}, {b}"
                );
            }
        }
        // A row without its newline is partial.
        let mut r = RowCounter::default();
        r.feed(b"1\tbolt\n2\tn");
        assert_eq!((r.lines, r.partial), (1, true));
    }

    /// A minimal archive as pg_dump 17 writes it: version 1.16, no
    /// compression, one table with two rows.
    fn archive(rows: &[u8], cut: usize) -> Vec<u8> {
        fn int(v: &mut Vec<u8>, n: i64) {
            v.push((n < 0) as u8);
            v.extend_from_slice(&(n.unsigned_abs() as u32).to_le_bytes());
        }
        fn s(v: &mut Vec<u8>, t: Option<&str>) {
            match t {
                None => int(v, -1),
                Some(t) => {
                    int(v, t.len() as i64);
                    v.extend_from_slice(t.as_bytes());
                }
            }
        }
        let mut v = b"PGDMP".to_vec();
        v.extend_from_slice(&[1, 16, 0, 4, 8, 1, 0]);
        for t in [5, 4, 3, 2, 0, 125, 0] {
            int(&mut v, t);
        }
        s(&mut v, Some("app"));
        s(&mut v, Some("17.2"));
        s(&mut v, Some("17.2"));
        int(&mut v, 1);
        // The entry; its data offset is patched below.
        int(&mut v, 7);
        int(&mut v, 1);
        s(&mut v, Some("0"));
        s(&mut v, Some("0"));
        s(&mut v, Some("t"));
        s(&mut v, Some("TABLE DATA"));
        int(&mut v, 3);
        s(&mut v, Some(""));
        s(&mut v, Some(""));
        s(&mut v, Some("COPY public.t (id) FROM stdin;\n"));
        s(&mut v, Some("public"));
        s(&mut v, None);
        s(&mut v, Some("heap"));
        int(&mut v, 0);
        s(&mut v, Some("opsh"));
        s(&mut v, Some("false"));
        s(&mut v, None);
        v.push(K_OFFSET_POS_SET);
        let off_at = v.len();
        v.extend_from_slice(&[0; 8]);
        let start = v.len() as u64;
        v[off_at..off_at + 8].copy_from_slice(&start.to_le_bytes());
        v.push(BLK_DATA);
        int(&mut v, 7);
        int(&mut v, rows.len() as i64);
        v.extend_from_slice(rows);
        int(&mut v, 0);
        v.truncate(v.len() - cut);
        v
    }

    #[test]
    fn reads_header_toc_and_rows() {
        let r = read_from(&archive(b"1\n2\n", 0)[..]).unwrap().unwrap();
        assert_eq!(r.toc.dbname.as_deref(), Some("app"));
        assert_eq!(r.toc.created.as_deref(), Some("2025-01-02T03:04:05Z"));
        assert_eq!(r.toc.data, vec!["public.t"]);
        assert_eq!(r.data.copies, vec![("public.t".to_string(), 2)]);
        assert_eq!(r.blocks, 1);
    }

    #[test]
    fn a_cut_archive_says_where() {
        let e = read_from(&archive(b"1\n2\n", 3)[..]).err().unwrap();
        assert!(e.contains("ends early (truncated)"), "{e}");
        let e = read_from(&archive(b"1\n2", 0)[..]).err().unwrap();
        assert!(e.contains("ends inside a row"), "{e}");
    }

    #[test]
    fn garbage_is_refused_without_panic() {
        for n in 0..64 {
            let mut a = archive(b"1\n2\n", 0);
            a.truncate(n);
            assert!(read_from(&a[..]).is_err());
        }
        let mut a = archive(b"1\n2\n", 0);
        a[20] = 0xff;
        let _ = read_from(&a[..]);
    }
}
