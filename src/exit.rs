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
/// The run changed something, then stopped (a refusal, an error, Ctrl-C,
/// the run timeout): stderr lists what it had changed.
pub const PARTIAL: i32 = 4;
/// A mutation was sent and its outcome is unknown (the connection died
/// before the answer, or an interrupt left it undecidable).
pub const UNKNOWN: i32 = 5;
/// Another run holds the `--lock` (EX_TEMPFAIL: try again later).
pub const LOCKED: i32 = 75;
/// Bad command-line usage (EX_USAGE).
pub const USAGE: i32 = 64;
/// opsh itself failed: a panic, caught by the panic hook (EX_SOFTWARE).
/// Always a bug in opsh, never the script's or the server's doing.
pub const INTERNAL: i32 = 70;
/// The whole run exceeded `--timeout` (same code as timeout(1)).
pub const TIMEOUT: i32 = 124;
/// Interrupted by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
pub const INTERRUPTED: i32 = 130;

/// Every code with its meaning, for `opsh help exit-codes` and the docs.
pub const TABLE: &[(i32, &str, &str)] = &[
    (OK, "ok", "the script completed"),
    (CHECK_FAILED, "check failed", "the script called fail(msg): what it checked is unhealthy"),
    (ERROR, "error", "script error, compile error, a primitive failed, or the script hit an operation/size limit"),
    (REFUSED, "refused", "a safety refusal (protected target without --yes, confirmation declined, audit log unwritable, a refused item of parallel/for_each_target); nothing was changed"),
    (PARTIAL, "partial", "the run changed something, then stopped (refused, failed, interrupted, timed out, or an item of parallel/for_each_target was refused); stderr lists the changes made"),
    (UNKNOWN, "outcome unknown", "a mutation was sent and its outcome is unknown (the server or connection died before answering); it was not retried: check the target"),
    (USAGE, "usage", "bad command-line arguments"),
    (INTERNAL, "internal error", "a bug in opsh (a panic): stderr says where; please report it"),
    (LOCKED, "locked", "another run holds the --lock; nothing was run (stderr names the holder and since when)"),
    (TIMEOUT, "timeout", "the run exceeded --timeout"),
    (INTERRUPTED, "interrupted", "Ctrl-C or SIGTERM"),
];

/// The code of a run that ended with `code` after the changes it made
/// (`changed`: at least one landed; `unknown`: at least one has an unknown
/// outcome). 3 keeps its promise that nothing was changed; a script's own
/// `exit(n)`, a failed check and a clean end keep their code.
pub fn after_changes(code: i32, changed: bool, unknown: bool) -> i32 {
    match code {
        REFUSED | ERROR | INTERRUPTED | TIMEOUT | UNKNOWN if unknown => UNKNOWN,
        REFUSED | ERROR | INTERRUPTED | TIMEOUT if changed => PARTIAL,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_run_that_changed_something_is_not_refused() {
        assert_eq!(after_changes(REFUSED, false, false), REFUSED);
        assert_eq!(after_changes(REFUSED, true, false), PARTIAL);
        assert_eq!(after_changes(INTERRUPTED, true, false), PARTIAL);
        assert_eq!(after_changes(ERROR, true, true), UNKNOWN);
        assert_eq!(after_changes(CHECK_FAILED, true, false), CHECK_FAILED);
        assert_eq!(after_changes(OK, true, true), OK);
    }
}
