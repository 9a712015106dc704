//! Writes to stdout and stderr that cannot panic. `print!` and `eprintln!`
//! panic when the write fails (`2>/dev/full`, a reader that closed the pipe:
//! `opsh run x 2>&1 | head -2`). A write that fails here is dropped: the run
//! goes on to its end and exits with its own code, as the script decided,
//! rather than dying half-way through a runbook because nobody reads.

use std::fmt::Arguments;
use std::io::Write;

fn write(mut w: impl Write, args: Arguments<'_>, newline: bool) {
    // Formatted first, written once: stderr is unbuffered, and writing the
    // pieces of a line one by one made a syscall of each (13 for the end
    // of run line) and let another process sharing the stream (a fleet's
    // children, a cron log) cut into the middle of it.
    let mut line = Vec::with_capacity(128);
    let _ = line.write_fmt(args);
    if newline {
        line.push(b'\n');
    }
    let _ = w.write_all(&line);
    let _ = w.flush();
}

/// `print!`, never panicking.
pub fn out(args: Arguments<'_>) {
    write(std::io::stdout().lock(), args, false);
}

/// `println!`, never panicking.
pub fn outln(args: Arguments<'_>) {
    write(std::io::stdout().lock(), args, true);
}

/// `eprint!`, never panicking.
pub fn err(args: Arguments<'_>) {
    write(std::io::stderr().lock(), args, false);
}

/// `eprintln!`, never panicking.
pub fn errln(args: Arguments<'_>) {
    write(std::io::stderr().lock(), args, true);
}
