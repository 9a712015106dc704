//! The memory budget of a run: every value a script builds (strings, arrays,
//! maps, blobs, what primitives return) is bounded, at O(1) cost per
//! operation.
//!
//! Rhai's own size limits (`set_max_array_size` and friends) re-measure a
//! collection after every operation on it, recursively: a loop that grows an
//! array or a map becomes quadratic. Instead the process's allocator counts
//! the bytes live on the heap (a thread-local add per allocation, published
//! to a process-wide count every 64 KiB), and two checks read that count:
//! - the engine's progress hook, between operations: past the budget the
//!   script stops with "the script exceeded its memory limit", exit 2, like
//!   any other error (audited, reported);
//! - the allocator itself, for one request that would go past twice the
//!   budget (a single operation such as `pad` building a huge string): the
//!   process cannot continue that operation, so it prints the same error
//!   and exits 2 at once, instead of the kernel killing it or an abort.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

/// Bytes live on the heap, the whole process, as flushed by the threads
/// (each holds back less than `BATCH` bytes, see `add`).
static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Past this (live bytes), the progress hook stops the script.
static SOFT: AtomicIsize = AtomicIsize::new(isize::MAX);
/// Past this, an allocation ends the process (exit 2).
static HARD: AtomicIsize = AtomicIsize::new(isize::MAX);
/// The budget as given, for the messages.
static BUDGET_MIB: AtomicUsize = AtomicUsize::new(0);

/// What one thread allocated or freed since it last added to `LIVE`. An
/// atomic add on every allocation and free cost a script full of function
/// calls 8-10% of its time (a locked instruction each); a thread-local
/// count is a plain add. Constant-initialised and without `Drop`, so using
/// it inside the allocator allocates nothing and registers nothing.
const BATCH: isize = 64 * 1024;
thread_local! {
    static LOCAL: Cell<isize> = const { Cell::new(0) };
}

/// The default budget of a run: 1 GiB above what opsh itself holds.
pub const DEFAULT_BUDGET: u64 = 1024 * 1024 * 1024;

/// The global allocator: the system's, counting.
pub struct Counting;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

// SAFETY: every method forwards to `System` with the caller's arguments;
// the counting around it touches only atomics and a constant-initialised
// thread-local cell (no allocation, no lock).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let n = signed(layout.size());
        add(n);
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            add(-n);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let n = signed(layout.size());
        add(n);
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            add(-n);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        add(-signed(layout.size()));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let grow = signed(new_size) - signed(layout.size());
        if grow > 0 {
            add(grow);
        }
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            if grow > 0 {
                add(-grow);
            }
        } else if grow < 0 {
            add(grow);
        }
        p
    }
}

/// Allocation sizes fit `isize` (Rust's `Layout` guarantees it).
#[inline(always)]
fn signed(n: usize) -> isize {
    n as isize
}

/// Counts `n` bytes more (or fewer): on this thread, and into `LIVE` once
/// the thread's count reaches `BATCH` either way. One request of `BATCH`
/// or more goes to `LIVE` at once, and is checked against the hard limit
/// before the system allocates, so a huge request never reaches the kernel.
#[inline(always)]
fn add(n: isize) {
    let pending = LOCAL.with(|c| {
        let v = c.get() + n;
        if v > -BATCH && v < BATCH {
            c.set(v);
            0
        } else {
            c.set(0);
            v
        }
    });
    if pending != 0 {
        publish(pending);
    }
}

#[inline(never)]
fn publish(v: isize) {
    let now = LIVE.fetch_add(v, Ordering::Relaxed).saturating_add(v);
    if v > 0 && now > HARD.load(Ordering::Relaxed) {
        hard_stop();
    }
}

/// Adds what this thread holds back to the process count. A thread opsh
/// starts calls it before it ends (a `parallel` worker, the runtime's
/// workers): what a thread held back when it ended would otherwise be lost
/// to the count, up to `BATCH` bytes per thread.
pub fn flush_thread() {
    let v = LOCAL.with(|c| c.replace(0));
    if v != 0 {
        publish(v);
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
        SOFT.store(isize::MAX, Ordering::Relaxed);
        HARD.store(isize::MAX, Ordering::Relaxed);
        return;
    }
    let budget = isize::try_from(budget).unwrap_or(isize::MAX);
    let base = live() as isize;
    BUDGET_MIB.store((budget / (1024 * 1024)) as usize, Ordering::Relaxed);
    SOFT.store(base.saturating_add(budget), Ordering::Relaxed);
    HARD.store(
        base.saturating_add(budget.saturating_mul(2)),
        Ordering::Relaxed,
    );
}

/// Bytes live on the heap now: the whole process, give or take what the
/// other threads hold back (under `BATCH` each).
pub fn live() -> usize {
    let here = LOCAL.with(Cell::get);
    LIVE.load(Ordering::Relaxed).saturating_add(here).max(0) as usize
}

/// The progress hook's check: `Some(limit)` once the run is over budget.
#[inline]
pub fn exceeded() -> Option<MemoryExceeded> {
    (live() as isize > SOFT.load(Ordering::Relaxed)).then(|| MemoryExceeded {
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
