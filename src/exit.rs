//! Exit codes: the contract with cron, CI and whoever calls opsh.
//! `TABLE` feeds `opsh help exit-codes` and docs/reference.md.

/// The script ran to the end (or called `exit(0)`).
pub const OK: i32 = 0;
/// A check failed: the script called `fail(msg)`. The system is unhealthy,
/// opsh itself worked.
pub const CHECK_FAILED: i32 = 1;
/// An error: the script threw, did not compile, or a primitive failed.
pub const ERROR: i32 = 2;
/// A safety refusal: a protected target without confirmation, an audit log
/// that cannot be written.
pub const REFUSED: i32 = 3;
/// Another run holds the `--lock` (EX_TEMPFAIL: try again later).
pub const LOCKED: i32 = 75;
/// Bad command-line usage (EX_USAGE).
pub const USAGE: i32 = 64;
/// The whole run exceeded `--timeout` (same code as timeout(1)).
pub const TIMEOUT: i32 = 124;
/// Interrupted by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
pub const INTERRUPTED: i32 = 130;

/// Every code with its meaning, for `opsh help exit-codes` and the docs.
pub const TABLE: &[(i32, &str, &str)] = &[
    (OK, "ok", "the script completed"),
    (CHECK_FAILED, "check failed", "the script called fail(msg): what it checked is unhealthy"),
    (ERROR, "error", "script error, compile error, a primitive failed, or the script hit its operation or memory limit"),
    (REFUSED, "refused", "a safety refusal: protected target without --yes, confirmation declined, audit log unwritable; nothing was changed"),
    (USAGE, "usage", "bad command-line arguments"),
    (LOCKED, "locked", "another run holds the --lock; nothing was run (stderr names the holder and since when)"),
    (TIMEOUT, "timeout", "the run exceeded --timeout"),
    (INTERRUPTED, "interrupted", "Ctrl-C or SIGTERM"),
];
