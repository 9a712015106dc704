//! SHA-256 sidecars in `sha256sum` format, so `sha256sum -c` run in the
//! backup's directory checks the same thing: `FILE.sha256` ("HEX  FILE"),
//! a `SHA256SUMS` file listing several backups, and for a pg_dump
//! directory archive `DIR.sha256` with one line per file ("HEX  DIR/toc.dat").

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The files of a directory archive, sorted, as names relative to it.
pub fn dir_files(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut v: Vec<String> = std::fs::read_dir(dir)?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    Ok(v)
}

/// `HEX  NAME` lines; `*NAME` (binary mode) and `./NAME` are the same name.
fn parse_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let (hash, rest) = l.split_once(char::is_whitespace)?;
            let name = rest.trim_start().trim_start_matches('*');
            let name = name.strip_prefix("./").unwrap_or(name);
            (hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| (name.to_string(), hash.to_ascii_lowercase()))
        })
        .collect()
}

/// Where the expected digests come from and what they say, by name
/// relative to the backup's directory.
pub struct Expected {
    pub source: PathBuf,
    pub entries: Vec<(String, String)>,
}

/// The sidecar of `path`: `PATH.sha256`, else the entries for it in a
/// `SHA256SUMS` beside it.
pub fn find(path: &Path) -> Option<Expected> {
    let name = name_of(path);
    let parent = path.parent().unwrap_or(Path::new("."));
    let own = parent.join(format!("{name}.sha256"));
    if let Ok(text) = std::fs::read_to_string(&own) {
        let mut entries = parse_lines(&text);
        // A bare digest (no name) is about the file it sits beside.
        if entries.is_empty() {
            let t = text.trim();
            if t.len() == 64 && t.chars().all(|c| c.is_ascii_hexdigit()) {
                entries.push((name.clone(), t.to_ascii_lowercase()));
            }
        }
        return Some(Expected {
            source: own,
            entries,
        });
    }
    let sums = parent.join("SHA256SUMS");
    let text = std::fs::read_to_string(&sums).ok()?;
    let prefix = format!("{name}/");
    let entries: Vec<_> = parse_lines(&text)
        .into_iter()
        .filter(|(n, _)| *n == name || n.starts_with(&prefix))
        .collect();
    (!entries.is_empty()).then_some(Expected {
        source: sums,
        entries,
    })
}

/// Checks `path` (a file or a directory archive) against expected
/// digests; `Ok(detail)` when everything matches, `Err(detail)` naming
/// the first thing that does not.
pub fn verify(path: &Path, exp: &Expected) -> Result<String, String> {
    let name = name_of(path);
    let src = exp
        .source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if path.is_dir() {
        let files = dir_files(path).map_err(|e| format!("cannot list {}: {e}", path.display()))?;
        let prefix = format!("{name}/");
        for f in &files {
            let key = format!("{prefix}{f}");
            let Some((_, want)) = exp.entries.iter().find(|(n, _)| *n == key) else {
                return Err(format!("{key} is not listed in {src}"));
            };
            let got = sha256_file(&path.join(f)).map_err(|e| format!("cannot read {key}: {e}"))?;
            if got != *want {
                return Err(format!(
                    "sha256 mismatch for {key}: {src} says {want}, the file has {got}"
                ));
            }
        }
        if let Some((missing, _)) = exp
            .entries
            .iter()
            .find(|(n, _)| !files.iter().any(|f| format!("{prefix}{f}") == *n))
        {
            return Err(format!("{missing} is listed in {src} but missing"));
        }
        return Ok(format!("sha256 of {} files matches {src}", files.len()));
    }
    let Some((_, want)) = exp.entries.iter().find(|(n, _)| *n == name) else {
        return Err(format!("{src} has no entry for {name}"));
    };
    let got = sha256_file(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if got == *want {
        Ok(format!("sha256 {got} matches {src}"))
    } else {
        Err(format!(
            "sha256 mismatch: {src} says {want}, the file has {got}"
        ))
    }
}

/// Checks a digest the script gave.
pub fn verify_digest(path: &Path, want: &str) -> Result<String, String> {
    let want = want.trim().to_ascii_lowercase();
    let got = sha256_file(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if got == want {
        Ok(format!("sha256 {got} matches the given digest"))
    } else {
        Err(format!(
            "sha256 mismatch: expected {want}, the file has {got}"
        ))
    }
}

/// Writes the sidecar for a backup just made and returns (sidecar path,
/// digest of a file or () for a directory).
pub fn write_sidecar(path: &Path) -> std::io::Result<(PathBuf, Option<String>)> {
    let name = name_of(path);
    let parent = path.parent().unwrap_or(Path::new("."));
    let side = parent.join(format!("{name}.sha256"));
    if path.is_dir() {
        let mut text = String::new();
        for f in dir_files(path)? {
            let h = sha256_file(&path.join(&f))?;
            text.push_str(&format!("{h}  {name}/{f}\n"));
        }
        std::fs::write(&side, text)?;
        Ok((side, None))
    } else {
        let h = sha256_file(path)?;
        std::fs::write(&side, format!("{h}  {name}\n"))?;
        Ok((side, Some(h)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_lines() {
        let h = "a".repeat(64);
        let text = format!("{h}  app.dump\n{h} *./b.dump\nnot a line\n");
        let e = parse_lines(&text);
        assert_eq!(
            e,
            vec![("app.dump".into(), h.clone()), ("b.dump".into(), h)]
        );
    }

    #[test]
    fn empty_digest() {
        let d = Sha256::digest(b"");
        assert_eq!(
            hex(&d),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
