//! What every command derives from the global flags, in one place: the
//! config (and `--target`), the audit log path, the session options and the
//! output; and where a script comes from and where its imports resolve.

use crate::args::{ColorArg, Global, OutputArg};
use crate::audit::Audit;
use crate::config::{Config, Kind};
use crate::error::CliError;
use crate::output::{ColorChoice, Format, Output};
use crate::session::{Options, Session};
use rhai::Map;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Context {
    pub global: Global,
    /// The command line after the program name, as given: the fleet parent
    /// passes it on to its children.
    pub argv: Vec<OsString>,
}

impl Context {
    pub fn color_choice(&self) -> ColorChoice {
        match self.global.color {
            ColorArg::Auto => ColorChoice::Auto,
            ColorArg::Always => ColorChoice::Always,
            ColorArg::Never => ColorChoice::Never,
        }
    }

    pub fn output(&self) -> Output {
        let format = match self.global.output {
            OutputArg::Text | OutputArg::Wide => Format::Text,
            OutputArg::Json => Format::Json,
            OutputArg::Yaml => Format::Yaml,
        };
        Output::new(format, self.color_choice()).wide(matches!(self.global.output, OutputArg::Wide))
    }

    /// `--config`, `$OPSH_CONFIG` or the default file.
    pub fn config(&self) -> Result<Config, CliError> {
        Ok(Config::load(self.global.config.as_deref())?)
    }

    /// `--target pg=prod-1`: make NAME the default target of KIND.
    pub fn apply_targets(&self, cfg: &mut Config) -> Result<(), CliError> {
        for t in &self.global.targets {
            let (k, name) = t
                .split_once('=')
                .ok_or_else(|| CliError::usage(format!("--target {t:?} is not KIND=NAME")))?;
            let kind = Kind::parse(k.trim()).ok_or_else(|| {
                CliError::usage(format!(
                    "--target {t:?}: unknown kind {k:?} (kinds: {})",
                    Kind::ALL.map(Kind::name).join(", ")
                ))
            })?;
            cfg.set_default(kind, name.trim());
        }
        // `--context`/`-n` narrow the kube default, after `--target`.
        cfg.narrow_kube(
            self.global.context.as_deref(),
            self.global.namespace.as_deref(),
        );
        Ok(())
    }

    pub fn audit_path(&self, cfg: &Config) -> PathBuf {
        self.global
            .audit_log
            .clone()
            .or_else(|| {
                std::env::var_os("OPSH_AUDIT_LOG")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .or_else(|| cfg.audit.path.clone())
            .unwrap_or_else(crate::audit::default_path)
    }

    /// The session options of the global flags and `[defaults]`, the same
    /// for `opsh run`, the REPL and `opsh test`.
    pub fn options(&self, cfg: &Config, script: &str, args: Map) -> Options {
        let g = &self.global;
        let call_timeout = g
            .call_timeout
            .or_else(|| {
                cfg.defaults
                    .timeout
                    .as_deref()
                    .and_then(|t| humantime::parse_duration(t).ok())
            })
            .unwrap_or(Duration::from_secs(30));
        Options {
            dry_run: g.dry_run,
            yes: g.yes,
            call_timeout,
            max_operations: g
                .max_operations
                .or(cfg.defaults.max_operations)
                .unwrap_or(100_000_000),
            max_memory: g
                .max_memory
                .or(cfg.defaults.max_memory)
                .unwrap_or(crate::engine::memory::DEFAULT_BUDGET),
            args,
            script: script.to_string(),
            quiet: g.quiet,
        }
    }

    /// A session for `opts.script`, auditing to the configured log.
    pub fn session(&self, opts: Options, cfg: Config) -> Result<Session, CliError> {
        let audit = Audit::new(self.audit_path(&cfg), &opts.script);
        Session::new(opts, cfg, self.output(), audit)
            .map_err(|e| CliError::failed(format!("cannot start the runtime: {e}")))
    }
}

/// A sandbox's servers as the target `sandbox` of their kinds, and the
/// default of each (a `--target` given too still wins, applied after).
pub fn use_sandbox(cfg: &mut Config, targets: &[(Kind, String)]) {
    for (kind, url) in targets {
        cfg.add_target(*kind, "sandbox", url, false);
        cfg.set_default(*kind, "sandbox");
    }
}

/// A script's name (for diagnostics) and text: a file, or stdin for `-`;
/// without a BOM, and a `#!` line made a comment (`script_args::source`).
pub fn read_script(file: &Path) -> Result<(String, String), CliError> {
    if file == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CliError::failed(format!("cannot read the script from stdin: {e}")))?;
        return Ok(("<stdin>".into(), crate::script_args::source(s)));
    }
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::failed(format!("cannot read script {}: {e}", file.display())))?;
    Ok((file.display().to_string(), crate::script_args::source(text)))
}

/// Where a script's relative imports resolve: its file's directory; the
/// working directory for stdin (`-`), a bare file name and the console.
/// Canonical when it exists, so a module imported by scripts named in
/// different ways (`x.rhai`, `./x.rhai`) has one name in the resolver's cache.
pub fn script_base(file: &Path) -> PathBuf {
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_of_a_script_is_its_directory() {
        let cwd = std::env::current_dir().unwrap().canonicalize().unwrap();
        assert_eq!(script_base(Path::new("-")), cwd);
        assert_eq!(script_base(Path::new("x.rhai")), cwd);
        assert_eq!(script_base(Path::new("src/x.rhai")), cwd.join("src"));
        // A directory that does not exist stays as given.
        assert_eq!(
            script_base(Path::new("no/such/dir/x.rhai")),
            PathBuf::from("no/such/dir")
        );
    }
}
