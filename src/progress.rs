//! Feedback on long work (a dump, a restore, a rollout wait, a fleet): a
//! spinner with what is happening, bytes written and time taken, on a
//! terminal; a plain line every so often when stderr is a file or a pipe;
//! a log event with JSON logs. Nothing for work that ends within a second,
//! so quick calls stay quiet.

use std::path::PathBuf;
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Shown only for work that takes longer than this.
const QUIET: Duration = Duration::from_secs(1);
/// How often a plain line is written when no one watches a terminal.
const LINE_EVERY: Duration = Duration::from_secs(10);

/// A running indicator; dropping it (or `finish`) clears it.
pub struct Progress {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    message: Arc<Mutex<String>>,
}

/// What to show: `label` (`pg_dump of prod`), and the size of `watch` (a
/// file or directory being written) when given.
pub fn start(label: impl Into<String>, watch: Option<PathBuf>) -> Progress {
    let message = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = channel::<()>();
    let label = label.into();
    let shared = Arc::clone(&message);
    let thread = std::thread::Builder::new()
        .name("opsh-progress".into())
        .spawn(move || run(&label, watch, &shared, &rx))
        .ok();
    Progress {
        stop: Some(tx),
        thread,
        message,
    }
}

impl Progress {
    /// Replaces the detail after the label (`2/3 ready`).
    pub fn set(&self, detail: impl Into<String>) {
        if let Ok(mut m) = self.message.lock() {
            *m = detail.into();
        }
    }

    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        // Dropping the sender wakes the thread at once.
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(
    label: &str,
    watch: Option<PathBuf>,
    message: &Mutex<String>,
    rx: &std::sync::mpsc::Receiver<()>,
) {
    let started = Instant::now();
    // Quiet for the first second: most calls are over by then.
    if !matches!(rx.recv_timeout(QUIET), Err(RecvTimeoutError::Timeout)) {
        return;
    }
    let text = || {
        let mut parts = vec![label.to_string()];
        if let Some(w) = &watch {
            parts.push(format!("{} written", human_bytes(size_of(w))));
        }
        if let Ok(m) = message.lock() {
            if !m.is_empty() {
                parts.push(m.clone());
            }
        }
        parts.join(", ")
    };
    if crate::logging::at_terminal() {
        let bar =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        loop {
            bar.set_message(text());
            bar.tick();
            if !matches!(
                rx.recv_timeout(Duration::from_millis(120)),
                Err(RecvTimeoutError::Timeout)
            ) {
                break;
            }
        }
        bar.finish_and_clear();
        return;
    }
    let mut next = LINE_EVERY;
    loop {
        let wait = next.saturating_sub(started.elapsed());
        if !matches!(rx.recv_timeout(wait), Err(RecvTimeoutError::Timeout)) {
            return;
        }
        let secs = started.elapsed().as_secs();
        if crate::logging::json() {
            tracing::info!(progress = %text(), elapsed_s = secs, "still working");
        } else {
            eprintln!("{} ({secs}s)", text());
        }
        next += LINE_EVERY;
    }
}

/// A file's size, or a directory's files' total (a directory-format dump).
fn size_of(path: &std::path::Path) -> u64 {
    let Ok(meta) = std::fs::metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|d| d.flatten().map(|e| size_of(&e.path())).sum())
        .unwrap_or(0)
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_work_shows_nothing_and_stops_at_once() {
        let t = Instant::now();
        let p = start("quick", None);
        p.finish();
        assert!(t.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn sizes_count_a_directory_dump() {
        let dir = std::env::temp_dir().join(format!("opsh-progress-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("a"), [0u8; 100]).unwrap();
        std::fs::write(dir.join("sub/b"), [0u8; 50]).unwrap();
        assert_eq!(size_of(&dir), 150);
        assert_eq!(human_bytes(2048), "2.0 KiB");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
