//! How a program ended, and the assertions a test makes about it.

use std::process::ExitStatus;
use std::time::Duration;

use crate::signal_name;

/// How a program ended: its wait status, the time it took, and what it wrote.
///
/// The assertions panic with a message that tells what was expected, how the program really
/// ended and its stderr, and return `&self` to chain:
/// `ended.assert_signaled(SIGTERM).assert_stderr_contains("removed")`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Ended {
    /// The wait status, as a parent sees it.
    pub status: ExitStatus,
    /// The exit code, if it exited (`None` if a signal ended it).
    pub code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// From the moment the test made an ending happen (the last signal sent, the line asking
    /// for it written, the terminal hung up; if none, from the start) to the moment the program
    /// was seen to end, within a millisecond. Its cleanup's time is in it; a guardian's, which
    /// runs after, is not.
    pub took: Duration,
    /// Every line of its stdout (those the test read before included), until every process
    /// holding it closed it.
    pub stdout: Vec<String>,
    /// Its whole stderr, until every process holding it (a guardian too) closed it; on a
    /// [terminal](crate::Program::terminal), what it wrote there before the terminal hung up.
    pub stderr: String,
}

impl Ended {
    /// Asserts that the program exited with `code`.
    ///
    /// # Panics
    ///
    /// If it did not.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        if self.code != Some(code) {
            self.fail(&format!("to exit with code {code}"));
        }
        self
    }

    /// Asserts that the program exited with code 0.
    ///
    /// # Panics
    ///
    /// If it did not.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        self.assert_code(0)
    }

    /// Asserts that `signal` ended the program: it died of it, as a parent shell sees it
    /// (`WIFSIGNALED`), not an exit code that stands for it.
    ///
    /// # Panics
    ///
    /// If it did not.
    #[track_caller]
    pub fn assert_signaled(&self, signal: i32) -> &Self {
        if self.signal != Some(signal) {
            self.fail(&format!("to end by {}", signal_name(signal)));
        }
        self
    }

    /// Asserts that stderr contains `text`.
    ///
    /// # Panics
    ///
    /// If it does not.
    #[track_caller]
    pub fn assert_stderr_contains(&self, text: &str) -> &Self {
        if !self.stderr.contains(text) {
            self.fail(&format!("to write {text:?} to stderr"));
        }
        self
    }

    /// Asserts that a line of stdout is exactly `line`.
    ///
    /// # Panics
    ///
    /// If none is.
    #[track_caller]
    pub fn assert_stdout_line(&self, line: &str) -> &Self {
        if !self.stdout.iter().any(|written| written == line) {
            self.fail(&format!("to write the line {line:?} to stdout"));
        }
        self
    }

    /// Asserts that the program ended within `limit` of the ending the test made happen.
    ///
    /// # Panics
    ///
    /// If it took longer.
    #[track_caller]
    pub fn assert_took_less_than(&self, limit: Duration) -> &Self {
        if self.took >= limit {
            self.fail(&format!("to end within {limit:?}"));
        }
        self
    }

    /// How it ended, in words: `exit code 3`, `killed by SIGTERM (15)`.
    pub fn how(&self) -> String {
        match (self.code, self.signal) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(signal)) => format!("killed by {}", signal_name(signal)),
            (None, None) => format!("{}", self.status),
        }
    }

    #[track_caller]
    fn fail(&self, expected: &str) -> ! {
        panic!(
            "expected the program {expected}; it ended with {} after {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.how(),
            self.took,
            self.stdout.join("\n"),
            self.stderr
        )
    }
}
