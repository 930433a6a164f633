//! The process-wide options: which signals run the cleanups, a deadline, a force-quit.

use std::sync::OnceLock;
use std::time::Duration;

use libc::c_int;

/// The signals that run the pending cleanups by default, and that the guardian shrugs off.
pub(crate) const HANDLED: [c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// The process-wide options of `#[with_cleanup]` on `main`.
#[derive(Debug)]
pub struct Config {
    /// The signals that run the cleanups.
    pub signals: &'static [c_int],
    /// How long the cleanups may take after a signal before the process ends anyway.
    pub timeout: Option<Duration>,
    /// After how many more signals during the cleanups the process ends at once.
    pub force_quit_after: Option<u32>,
}

impl Config {
    /// SIGINT, SIGTERM, SIGHUP and SIGQUIT; no time-out; no force-quit.
    pub const DEFAULT: Config = Config {
        signals: &HANDLED,
        timeout: None,
        force_quit_after: None,
    };
}

static CONFIG: OnceLock<Config> = OnceLock::new();

/// Sets the options, once: `false` if they were set, or read, before.
pub(crate) fn set(config: Config) -> bool {
    CONFIG.set(config).is_ok()
}

/// The options: those set, or the defaults from the first time they are read.
pub(crate) fn get() -> &'static Config {
    CONFIG.get_or_init(|| Config::DEFAULT)
}
