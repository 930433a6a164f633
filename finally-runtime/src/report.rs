//! The runtime's own reports: one line on stderr that never panics, never waits long and never
//! raises SIGPIPE.
//!
//! A report is what the runtime says when something of its own goes wrong (a cleanup panicked,
//! the guardian could not start), often while the process is ending: maybe after its terminal
//! has gone (every write fails with EIO), with stderr a pipe nobody reads any more (EPIPE, or a
//! full pipe that would block for ever) or a file on a full disk (ENOSPC). `eprintln!` panics on
//! such an error, and a panic on the signal thread would leave the stop half done. So a report is
//! formatted into a buffer of its own, written with one `write(2)` when stderr can take it within
//! `sys::stderr::PATIENCE`, and lost otherwise: the stop matters more than the line.

use std::fmt::{self, Write as _};

use crate::sys::stderr;

/// The longest report, newline included; longer ones are cut. Below `PIPE_BUF`, so that a
/// report is never interleaved with another process's output.
const LONGEST: usize = 512;

/// Writes `finally: ` and `message` as one line on stderr, if stderr takes it.
pub(crate) fn report(message: fmt::Arguments<'_>) {
    let mut line = Line::default();
    // `Line` never fails: what does not fit is cut.
    let _ = write!(line, "finally: {message}");
    line.finish();
    stderr::write(line.bytes());
}

/// Reports that the cleanup `name` panicked, with the panic's message where it is a string: the
/// one wording, wherever the cleanup ran (the walk, the guardian).
pub(crate) fn panicked(name: &dyn fmt::Display, payload: &(dyn std::any::Any + Send)) {
    let message = crate::exit::panic_message(payload).unwrap_or("a non-string payload");
    report(format_args!(
        "a cleanup panicked ({message}): {name}; running the remaining cleanups"
    ));
}

/// A report being formatted, cut at [`LONGEST`].
struct Line {
    buffer: [u8; LONGEST],
    length: usize,
}

impl Default for Line {
    fn default() -> Self {
        Line {
            buffer: [0; LONGEST],
            length: 0,
        }
    }
}

impl Line {
    /// Ends the line, in the last byte if it is full.
    fn finish(&mut self) {
        self.length = self.length.min(LONGEST - 1);
        self.buffer[self.length] = b'\n';
        self.length += 1;
    }

    fn bytes(&self) -> &[u8] {
        &self.buffer[..self.length]
    }
}

impl fmt::Write for Line {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        // One byte is kept for the newline.
        let room = LONGEST - 1 - self.length;
        let mut take = text.len().min(room);
        while !text.is_char_boundary(take) {
            take -= 1;
        }
        self.buffer[self.length..self.length + take].copy_from_slice(&text.as_bytes()[..take]);
        self.length += take;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_report_is_cut_and_ends_its_line() {
        let mut line = Line::default();
        let _ = write!(line, "finally: {}", "é".repeat(400));
        line.finish();
        let text = std::str::from_utf8(line.bytes()).expect("cut at a character");
        assert!(text.len() <= LONGEST && text.ends_with('\n'), "{text:?}");
    }

    #[test]
    fn a_short_report_is_whole() {
        let mut line = Line::default();
        let _ = write!(line, "finally: {}", 42);
        line.finish();
        assert_eq!(line.bytes(), b"finally: 42\n");
    }
}
