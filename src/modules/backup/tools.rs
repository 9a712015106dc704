//! The PostgreSQL client programs (pg_dump, pg_restore, psql): where they
//! are, how they connect (the password only ever in the child's
//! PGPASSWORD, never on its command line), and running them under the
//! call's deadline and cancellation.

use crate::dispatch::{Call, OpError};
use std::path::PathBuf;

/// Where `crate::pgbin` finds the program, or an error saying how to get it.
pub fn pg_program(name: &str) -> Result<PathBuf, OpError> {
    crate::pgbin::find(name).ok_or_else(|| {
        OpError::failed(format!("{name} not found"))
            .with_hint("install the PostgreSQL client programs (`apt-get install postgresql-client`) or set OPSH_PG_BINDIR to their directory")
    })
}

/// How a client program reaches a database: the URL without its password
/// (for --dbname) and the password (for PGPASSWORD).
pub struct Conn {
    pub url: String,
    password: Option<String>,
    pub database: String,
}

impl Conn {
    /// `database` replaces the URL's database when given.
    pub fn new(target_url: &str, database: Option<&str>) -> Result<Conn, OpError> {
        let mut u = url::Url::parse(target_url).map_err(|e| {
            OpError::bad_input("the PostgreSQL target is not a URL the client programs can use")
                .with_cause(e)
        })?;
        let password = u.password().map(|p| {
            url::form_urlencoded::parse(format!("p={p}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        });
        let _ = u.set_password(None);
        if let Some(db) = database {
            u.set_path(&format!("/{}", utf8_percent(db)));
        }
        let database = u.path().trim_start_matches('/').to_string();
        let database = url::form_urlencoded::parse(format!("d={database}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or(database);
        Ok(Conn {
            url: u.to_string(),
            password,
            database,
        })
    }

    pub fn apply(&self, cmd: &mut tokio::process::Command) {
        cmd.arg(format!("--dbname={}", self.url));
        self.env(cmd);
    }

    pub fn env(&self, cmd: &mut tokio::process::Command) {
        if let Some(p) = &self.password {
            cmd.env("PGPASSWORD", p);
        }
        cmd.env("PGAPPNAME", "opsh").env("PGCONNECT_TIMEOUT", "10");
    }
}

fn utf8_percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub struct Finished {
    pub ok: bool,
    pub stderr: String,
}

/// Runs a client program to the end under the call's deadline and
/// cancellation; a cancelled or timed-out call kills it.
pub fn run(call: &Call, cmd: tokio::process::Command, name: &str) -> Result<Finished, OpError> {
    run_watching(call, cmd, name, name, None)
}

/// `run`, with progress after a second: `label` (`pg_dump of prod`), and
/// how much `output` (the file being written) has grown.
pub fn run_watching(
    call: &Call,
    mut cmd: tokio::process::Command,
    name: &str,
    label: &str,
    output: Option<&std::path::Path>,
) -> Result<Finished, OpError> {
    let _progress = crate::progress::start(label, output.map(std::path::Path::to_path_buf));
    cmd.kill_on_drop(true)
        .stdin(std::process::Stdio::null())
        .env("TZ", "UTC");
    let _rt = call.session.rt.enter();
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| OpError::failed(format!("cannot run {name}")).with_cause(e))?;
    let out = call.block_on(async move {
        child
            .wait_with_output()
            .await
            .map_err(|e| OpError::failed(format!("{name} failed")).with_cause(e))
    })?;
    Ok(Finished {
        ok: out.status.success(),
        stderr: crate::redact::redact(String::from_utf8_lossy(&out.stderr).trim()),
    })
}

/// The last lines of a program's stderr, for an error's cause.
pub fn tail(stderr: &str, lines: usize) -> String {
    let v: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    v[v.len().saturating_sub(lines)..].join("; ")
}
