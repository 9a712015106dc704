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

#[cfg(test)]
mod tests {
    use super::*;

    /// Records every `write` call it gets, as an unbuffered stream does.
    #[derive(Default)]
    struct Calls(Vec<Vec<u8>>);

    impl Write for Calls {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_reaches_the_stream_in_one_write() {
        let mut calls = Calls::default();
        let (id, n) = ("5c3df1c51f7e288c", 2);
        write(
            &mut calls,
            format_args!("opsh: run {id} wrote {n} audit record{}", "s"),
            true,
        );
        assert_eq!(
            calls.0,
            vec![b"opsh: run 5c3df1c51f7e288c wrote 2 audit records\n".to_vec()]
        );
    }
}
