//! What can go wrong while a test runs a program: one error type, whose message says what the
//! kit waited for and what the program had said by then.

use std::fmt;
use std::io;

/// A program could not be started, did not get ready or did not end in time, or could not be
/// reached.
///
/// Its `Display` is the whole story for a failed test: what was expected, and the program's
/// stdout and stderr as far as they were read. Tests usually `unwrap` it or return it with `?`.
#[derive(Debug)]
pub struct Error {
    message: String,
    source: Option<io::Error>,
}

impl Error {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn io(message: impl Into<String>, source: io::Error) -> Self {
        Error {
            message: format!("{}: {source}", message.into()),
            source: Some(source),
        }
    }

    /// Adds what the program wrote, to tell why it did not do what was expected.
    pub(crate) fn with_output(mut self, stdout: &[String], stderr: Option<&str>) -> Self {
        self.message.push_str("\n--- stdout lines read so far:");
        for line in stdout {
            self.message.push('\n');
            self.message.push_str(line);
        }
        match stderr {
            Some(stderr) => {
                self.message.push_str("\n--- stderr:\n");
                self.message.push_str(stderr);
            }
            None => self.message.push_str("\n--- stderr: still open, not read"),
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}
