//! Run-wide cancellation: Ctrl-C, SIGTERM and `--timeout` all end a run the
//! same way, between statements (via Rhai's progress hook) and during a
//! blocking primitive (via `cancelled()` raced against the call's future).

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Interrupted,
    Terminated,
    Timeout,
}

impl Reason {
    fn code(self) -> u8 {
        match self {
            Reason::Interrupted => 1,
            Reason::Terminated => 2,
            Reason::Timeout => 3,
        }
    }
    fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(Reason::Interrupted),
            2 => Some(Reason::Terminated),
            3 => Some(Reason::Timeout),
            _ => None,
        }
    }
    pub fn describe(self) -> &'static str {
        match self {
            Reason::Interrupted => "interrupted (Ctrl-C)",
            Reason::Terminated => "terminated (SIGTERM)",
            Reason::Timeout => "run timeout exceeded",
        }
    }
    pub fn exit_code(self) -> i32 {
        match self {
            Reason::Interrupted | Reason::Terminated => crate::exit::INTERRUPTED,
            Reason::Timeout => crate::exit::TIMEOUT,
        }
    }
}

#[derive(Clone)]
pub struct Cancel {
    inner: Arc<Inner>,
}

struct Inner {
    reason: AtomicU8,
    tx: watch::Sender<u8>,
    /// In the REPL a Ctrl-C ends the running entry, never the process.
    interactive: AtomicBool,
}

impl Default for Cancel {
    fn default() -> Self {
        let (tx, _rx) = watch::channel(0);
        Cancel {
            inner: Arc::new(Inner {
                reason: AtomicU8::new(0),
                tx,
                interactive: AtomicBool::new(false),
            }),
        }
    }
}

impl Cancel {
    /// The first reason wins: a timeout that fires after Ctrl-C does not
    /// rewrite why the run ended.
    pub fn trigger(&self, reason: Reason) {
        if self
            .inner
            .reason
            .compare_exchange(0, reason.code(), Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            self.inner.tx.send_replace(reason.code());
        }
    }

    /// Cheap enough for Rhai's per-operation progress hook.
    pub fn reason(&self) -> Option<Reason> {
        Reason::from_code(self.inner.reason.load(Ordering::Relaxed))
    }

    /// Re-arms after a cancelled REPL entry.
    pub fn reset(&self) {
        self.inner.reason.store(0, Ordering::SeqCst);
        self.inner.tx.send_replace(0);
    }

    /// REPL mode: the console resets after each entry, and a second Ctrl-C
    /// during a slow cancellation must not kill the whole session.
    pub fn set_interactive(&self, on: bool) {
        self.inner.interactive.store(on, Ordering::SeqCst);
    }

    pub async fn cancelled(&self) -> Reason {
        let mut rx = self.inner.tx.subscribe();
        let code = rx.wait_for(|c| *c != 0).await.map(|c| *c).ok();
        match code {
            Some(c) => Reason::from_code(c).unwrap_or(Reason::Interrupted),
            // The sender lives as long as self, so this cannot close first.
            None => std::future::pending().await,
        }
    }

    /// Listens for SIGINT/SIGTERM on the runtime. A second Ctrl-C while the
    /// first is still being honoured exits at once, as users expect, except
    /// in the REPL (see `set_interactive`).
    pub fn install_signal_handlers(&self, rt: &tokio::runtime::Runtime) {
        use tokio::signal::unix::{signal, SignalKind};
        // Registered before this returns, not when a worker first polls
        // the task: until then a Ctrl-C meets the default action and kills
        // opsh where it stands, mid-change, with no report.
        let registered = {
            let _rt = rt.enter();
            (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            )
        };
        let (Ok(mut int), Ok(mut term)) = registered else {
            return;
        };
        let me = self.clone();
        rt.spawn(async move {
            loop {
                let reason = tokio::select! {
                    _ = int.recv() => Reason::Interrupted,
                    _ = term.recv() => Reason::Terminated,
                };
                if me.reason().is_some()
                    && reason == Reason::Interrupted
                    && !me.inner.interactive.load(Ordering::SeqCst)
                {
                    crate::stdio::errln(format_args!("opsh: interrupted twice, exiting now"));
                    std::process::exit(crate::exit::INTERRUPTED);
                }
                me.trigger(reason);
            }
        });
    }

    /// Triggers `Timeout` after `after`, unless the returned handle is
    /// aborted first (the REPL's per-entry deadline). Zero is no limit, as
    /// `timeout 0` and most tools read it (`--timeout 0s`).
    pub fn arm_timeout(
        &self,
        rt: &tokio::runtime::Runtime,
        after: Duration,
    ) -> tokio::task::AbortHandle {
        if after.is_zero() {
            return rt.spawn(async {}).abort_handle();
        }
        let me = self.clone();
        rt.spawn(async move {
            tokio::time::sleep(after).await;
            me.trigger(Reason::Timeout);
        })
        .abort_handle()
    }
}
