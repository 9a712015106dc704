//! Waiting for state that arrives on someone else's schedule (a server
//! reloading, gossip settling, a process reacting to a signal): poll a
//! probe against a deadline instead of sleeping a fixed time.

use std::time::{Duration, Instant};

const INTERVAL: Duration = Duration::from_millis(20);

/// What a probe answers: `true`/`Some(v)`/`Ok(v)` when the wait is over.
/// A `Result` probe's last `Err` is shown if the wait times out, so the
/// failure says what was seen instead.
pub trait Probe {
    type Value;
    fn ready(self) -> Result<Self::Value, Option<String>>;
}

impl Probe for bool {
    type Value = ();
    fn ready(self) -> Result<(), Option<String>> {
        if self {
            Ok(())
        } else {
            Err(None)
        }
    }
}

impl<T> Probe for Option<T> {
    type Value = T;
    fn ready(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T> Probe for Result<T, String> {
    type Value = T;
    fn ready(self) -> Result<T, Option<String>> {
        self.map_err(Some)
    }
}

/// Polls `probe` until it is ready or `limit` has passed; on timeout the
/// last thing it reported (if anything). For callers that must clean up
/// before they fail.
pub fn poll<P: Probe>(
    limit: Duration,
    mut probe: impl FnMut() -> P,
) -> Result<P::Value, Option<String>> {
    let deadline = Instant::now() + limit;
    loop {
        match probe().ready() {
            Ok(v) => return Ok(v),
            Err(last) if Instant::now() >= deadline => return Err(last),
            Err(_) => std::thread::sleep(INTERVAL),
        }
    }
}

/// Polls `probe` until it is ready and returns its value; panics naming
/// `what` (and the probe's last report) when `limit` passes first.
#[track_caller]
pub fn eventually<P: Probe>(limit: Duration, what: &str, probe: impl FnMut() -> P) -> P::Value {
    match poll(limit, probe) {
        Ok(v) => v,
        Err(None) => panic!("timed out after {limit:?} waiting for {what}"),
        Err(Some(last)) => {
            panic!("timed out after {limit:?} waiting for {what}; last seen:\n{last}")
        }
    }
}

/// Seconds, for the `limit` of [`eventually`] and [`poll`].
pub const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
