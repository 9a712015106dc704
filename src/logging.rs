//! Structured logs on stderr (`--log-format text|json`), for cron mail and
//! container log collectors. Level: warn by default, `-v` info, `-vv` debug,
//! `-vvv` trace; `OPSH_LOG=debug` (a level name) overrides, for the
//! libraries' own logs too. Never coloured.

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

/// How much the libraries opsh uses (the kube client, hyper, sqlx...) may
/// log: one step below opsh, and nothing by default, since every failure
/// they log also comes back to opsh, which reports it once with context.
fn dependency_level(verbose: u8) -> LevelFilter {
    if std::env::var_os("OPSH_LOG").is_some() {
        return level(verbose);
    }
    match verbose {
        0 => LevelFilter::OFF,
        1 => LevelFilter::WARN,
        2 => LevelFilter::INFO,
        _ => LevelFilter::TRACE,
    }
}

static AT_TERMINAL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether logs are JSON objects (`--log-format json`): progress goes into
/// them rather than as free text.
pub fn json() -> bool {
    JSON.load(std::sync::atomic::Ordering::Relaxed)
}

/// Whether a person reads stderr: text logs on a terminal, where every
/// failure is also shown as a rendered diagnostic (right after the run's
/// end-of-run lines).
pub fn at_terminal() -> bool {
    AT_TERMINAL.load(std::sync::atomic::Ordering::Relaxed)
}

/// A failure that opsh also renders as a diagnostic: logged as an error for
/// log collectors, but only at info on a terminal, where it would repeat
/// what the person reads in the diagnostic.
#[macro_export]
macro_rules! log_failure {
    ($($t:tt)*) => {
        if $crate::logging::at_terminal() {
            tracing::info!($($t)*)
        } else {
            tracing::error!($($t)*)
        }
    };
}

/// Installs the process-wide subscriber; a second call is a no-op.
pub fn init(format: LogFormat, verbose: u8) {
    use std::io::IsTerminal;
    AT_TERMINAL.store(
        format == LogFormat::Text && std::io::stderr().is_terminal(),
        std::sync::atomic::Ordering::Relaxed,
    );
    JSON.store(
        format == LogFormat::Json,
        std::sync::atomic::Ordering::Relaxed,
    );
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::filter::Targets::new()
        .with_target("opsh", level(verbose))
        .with_default(dependency_level(verbose));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level(verbose))
        .with_ansi(false)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.finish().with(filter).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .finish()
            .with(filter)
            .try_init(),
    };
}
