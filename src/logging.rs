//! Structured logs on stderr (`--log-format text|json`), for cron mail and
//! container log collectors. Level: warn by default, `-v` info, `-vv` debug,
//! `-vvv` trace; `OPSH_LOG=debug` (a level name) overrides. Never coloured.

use tracing::level_filters::LevelFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn level(verbose: u8) -> LevelFilter {
    let from_env = std::env::var("OPSH_LOG")
        .ok()
        .and_then(|v| v.trim().parse::<LevelFilter>().ok());
    from_env.unwrap_or(match verbose {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    })
}

/// Installs the process-wide subscriber; a second call is a no-op.
pub fn init(format: LogFormat, verbose: u8) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level(verbose))
        .with_ansi(false)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
