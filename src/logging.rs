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

static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static AT_TERMINAL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether logs are JSON objects (`--log-format json`): progress goes into
/// them rather than as free text.
pub fn json() -> bool {
    json_logs()
}

/// Whether a person reads stderr: text logs on a terminal (progress draws
/// a spinner there).
pub fn at_terminal() -> bool {
    AT_TERMINAL.load(std::sync::atomic::Ordering::Relaxed)
}

/// `--log-format json`: what goes to stderr are JSON records.
pub fn json_logs() -> bool {
    JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed)
}

static RENDERED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether failures reach the person as rendered diagnostics only: with
/// text logs (the default) every failure is shown once, as a diagnostic,
/// so its log line would repeat it. JSON logs are for collectors, which
/// read no diagnostics.
pub fn failures_rendered() -> bool {
    RENDERED.load(std::sync::atomic::Ordering::Relaxed)
}

/// A failure that opsh also renders as a diagnostic: an error record in
/// JSON logs, but only at info in text logs (`-v`), where at the default
/// level it would print every error twice.
#[macro_export]
macro_rules! log_failure {
    ($($t:tt)*) => {
        if $crate::logging::failures_rendered() {
            tracing::info!($($t)*)
        } else {
            tracing::error!($($t)*)
        }
    };
}

/// Installs the process-wide subscriber; a second call is a no-op.
pub fn init(format: LogFormat, verbose: u8) {
    JSON_LOGS.store(
        format == LogFormat::Json,
        std::sync::atomic::Ordering::Relaxed,
    );
    RENDERED.store(
        format == LogFormat::Text,
        std::sync::atomic::Ordering::Relaxed,
    );
    {
        use std::io::IsTerminal;
        AT_TERMINAL.store(
            format == LogFormat::Text && std::io::stderr().is_terminal(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::filter::Targets::new()
        .with_target("opsh", level(verbose))
        .with_default(dependency_level(verbose));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // On a failed write the subscriber would eprintln! about it, which
        // panics when stderr is the thing that failed (2>/dev/full).
        .log_internal_errors(false)
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
