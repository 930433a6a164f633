//! How a scenario ended, and what its cleanups left in the marker file and said on stderr: on
//! every platform.

use std::path::Path;
use std::process::ExitStatus;

/// How a scenario ended.
pub struct Ended {
    pub status: ExitStatus,
    pub marker: Vec<String>,
    pub stderr: String,
}

impl Ended {
    /// The child ended with `status`, left the marker file `marker` (none: no line) and wrote
    /// `stderr`.
    pub fn read(status: ExitStatus, marker: &Path, stderr: String) -> Self {
        let marker = std::fs::read_to_string(marker)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        Ended {
            status,
            marker,
            stderr,
        }
    }

    /// Asserts that the cleanup `name` ran exactly once, to its end, told `reason`.
    pub fn assert_cleaned_once(&self, name: &str, reason: &str) {
        let starts = self.count(&format!("start {name}"));
        let ends: Vec<_> = self
            .marker
            .iter()
            .filter(|line| line.starts_with(&format!("end {name} ")))
            .collect();
        assert_eq!(
            starts, 1,
            "cleanup `{name}` started {starts} times: {:?}; stderr: {}",
            self.marker, self.stderr
        );
        assert_eq!(
            ends.len(),
            1,
            "cleanup `{name}` ended {} times: {:?}",
            ends.len(),
            self.marker
        );
        assert_eq!(
            ends[0],
            &format!("end {name} {reason}"),
            "marker: {:?}",
            self.marker
        );
        let start = self.position(&format!("start {name}"));
        let end = self.position(ends[0]);
        assert!(
            start < end,
            "cleanup `{name}` ended before it started: {:?}",
            self.marker
        );
    }

    /// What the one line of stderr that starts with `prefix` and ends with `suffix` has between
    /// them. A cleanup that says how the program ended in such a line says it each time it runs,
    /// whichever process runs it (a guardian writes to the program's stderr, and the scenario's
    /// `wait` returns once it has closed it): so the test fails unless there is exactly one, and
    /// unless `finally` reported nothing, as it does for a cleanup that failed or panicked
    /// instead of saying its line.
    #[allow(dead_code)] // the Windows tests, which share this file, do not use it
    pub fn said_once(&self, prefix: &str, suffix: &str) -> &str {
        let said: Vec<_> = self
            .stderr
            .lines()
            .filter_map(|line| line.strip_prefix(prefix)?.strip_suffix(suffix))
            .collect();
        let [said] = said[..] else {
            panic!(
                "expected one `{prefix}...{suffix}` line, got {}; stderr: {}",
                said.len(),
                self.stderr
            );
        };
        let reported: Vec<_> = self
            .stderr
            .lines()
            .filter(|line| line.starts_with("finally: "))
            .collect();
        assert!(
            reported.is_empty(),
            "finally reported {reported:?}; stderr: {}",
            self.stderr
        );
        said
    }

    pub fn count(&self, line: &str) -> usize {
        self.marker.iter().filter(|l| *l == line).count()
    }

    pub fn position(&self, line: &str) -> usize {
        self.marker
            .iter()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("no `{line}` in the marker: {:?}", self.marker))
    }

    pub fn assert_exit_code(&self, code: i32) {
        assert_eq!(
            self.status.code(),
            Some(code),
            "expected exit code {code}, got {:?}; stderr: {}",
            self.status,
            self.stderr
        );
    }
}
