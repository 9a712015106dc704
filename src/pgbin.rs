//! Where the PostgreSQL programs are: pg.dump, pg.restore and backup.verify
//! run the client programs, the sandbox runs the server. One search for
//! both, so they agree on which installation they use.

use std::path::PathBuf;

/// `program` (e.g. "pg_dump", "postgres") from OPSH_PG_BINDIR, else from
/// the newest /usr/lib/postgresql/N/bin that has it (Debian), else from
/// PATH. The newest matters: pg_restore cannot read archives from a newer
/// pg_dump, and pg_dump refuses newer servers.
pub fn find(program: &str) -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("OPSH_PG_BINDIR").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(d).join(program);
        if p.is_file() {
            return Some(p);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let p = e.path().join("bin").join(program);
            p.is_file().then_some((v, p))
        })
        .collect();
    versions.sort();
    if let Some((_, p)) = versions.pop() {
        return Some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}
