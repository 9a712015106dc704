//! The memory budget of a run: every value a script builds (strings, arrays,
//! maps, blobs, what primitives return) is bounded, at O(1) cost per
//! operation.
//!
//! Rhai's own size limits (`set_max_array_size` and friends) re-measure a
//! collection after every operation on it, recursively: a loop that grows an
//! array or a map becomes quadratic. Instead the process's allocator counts
//! the bytes live on the heap (one relaxed atomic add per allocation), and
//! two checks read that count:
//! - the engine's progress hook, between operations: past the budget the
//!   script stops with "the script exceeded its memory limit", exit 2, like
//!   any other error (audited, reported);
//! - the allocator itself, for one request that would go past twice the
//!   budget (a single operation such as `pad` building a huge string): the
//!   process cannot continue that operation, so it prints the same error
//!   and exits 2 at once, instead of the kernel killing it or an abort.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes live on the heap, the whole process.
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Past this (live bytes), the progress hook stops the script.
static SOFT: AtomicUsize = AtomicUsize::new(usize::MAX);
/// Past this, an allocation ends the process (exit 2).
static HARD: AtomicUsize = AtomicUsize::new(usize::MAX);
/// The budget as given, for the messages.
static BUDGET_MIB: AtomicUsize = AtomicUsize::new(0);

/// The default budget of a run: 1 GiB above what opsh itself holds.
pub const DEFAULT_BUDGET: u64 = 1024 * 1024 * 1024;

/// The global allocator: the system's, counting.
pub struct Counting;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

// SAFETY: every method forwards to `System` with the caller's arguments;
// the counting around it touches only atomics (no allocation, no lock).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        reserve(layout.size());
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        reserve(layout.size());
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if new_size > old {
            reserve(new_size - old);
        }
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            if new_size > old {
                LIVE.fetch_sub(new_size - old, Ordering::Relaxed);
            }
        } else if new_size < old {
            LIVE.fetch_sub(old - new_size, Ordering::Relaxed);
        }
        p
    }
}

/// Counts `n` more bytes, or ends the process when they would go past the
/// hard limit: counted before the system allocates, so a huge request never
/// reaches the kernel.
#[inline]
fn reserve(n: usize) {
    let now = LIVE.fetch_add(n, Ordering::Relaxed).saturating_add(n);
    if now > HARD.load(Ordering::Relaxed) {
        hard_stop();
    }
}

/// Writes the limit error with no allocation (we are inside the allocator)
/// and exits 2 without unwinding.
#[cold]
fn hard_stop() -> ! {
    let mut buf = [0u8; 256];
    let mut n = 0;
    let mut put = |s: &[u8]| {
        let end = (n + s.len()).min(buf.len());
        buf[n..end].copy_from_slice(&s[..end - n]);
        n = end;
    };
    put(b"error: the script exceeded its memory limit (");
    let mut digits = [0u8; 20];
    let mut v = BUDGET_MIB.load(Ordering::Relaxed);
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    put(&digits[i..]);
    put(b" MiB) in one operation\n  = hint: raise it with --max-memory, or `[defaults] max_memory` in the config\n");
    // SAFETY: write(2) and _exit(2) are async-signal-safe and need no heap.
    unsafe {
        libc::write(2, buf.as_ptr().cast(), n);
        libc::_exit(crate::exit::ERROR);
    }
}

/// Arms the budget for a run: `budget` bytes above what is live now.
/// 0 turns the limit off.
pub fn arm(budget: u64) {
    if budget == 0 {
        SOFT.store(usize::MAX, Ordering::Relaxed);
        HARD.store(usize::MAX, Ordering::Relaxed);
        return;
    }
    let budget = usize::try_from(budget).unwrap_or(usize::MAX);
    let base = LIVE.load(Ordering::Relaxed);
    BUDGET_MIB.store(budget / (1024 * 1024), Ordering::Relaxed);
    SOFT.store(base.saturating_add(budget), Ordering::Relaxed);
    HARD.store(
        base.saturating_add(budget.saturating_mul(2)),
        Ordering::Relaxed,
    );
}

/// Bytes live on the heap now (the whole process).
pub fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// The progress hook's check: `Some(limit)` once the run is over budget.
#[inline]
pub fn exceeded() -> Option<MemoryExceeded> {
    (LIVE.load(Ordering::Relaxed) > SOFT.load(Ordering::Relaxed)).then(|| MemoryExceeded {
        mib: BUDGET_MIB.load(Ordering::Relaxed) as u64,
    })
}

/// Why the progress hook stopped a script: it went past its memory budget.
/// Carried as the `ErrorTerminated` token; exit 2 (`diagnostic::exit_code`).
#[derive(Debug, Clone, Copy)]
pub struct MemoryExceeded {
    pub mib: u64,
}

impl std::fmt::Display for MemoryExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the script exceeded its memory limit ({} MiB)", self.mib)
    }
}

/// `--max-memory` / `[defaults] max_memory`: "512MiB", "2GiB", "1G", a
/// number of bytes, or 0 for no limit.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let mult: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "{s:?} is not a size: use e.g. 512MiB, 2GiB or 0 (no limit)"
            ))
        }
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size: use e.g. 512MiB, 2GiB or 0 (no limit)"))?;
    Ok((n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert_eq!(parse_size("1.5 GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("0").unwrap(), 0);
        assert!(parse_size("lots").unwrap_err().contains("not a size"));
        assert!(parse_size("5 parsecs").is_err());
    }

    #[test]
    fn the_count_follows_allocations() {
        let before = live();
        let v: Vec<u8> = Vec::with_capacity(8 << 20);
        // Other test threads allocate too: a margin, not an equality.
        assert!(live() >= before + (7 << 20));
        drop(v);
    }
}
