//! The handlers of the signals that run the cleanups: on Unix a signal handler and the
//! `finally-signals` thread it wakes; on Windows a console control handler, which Windows runs
//! on a thread of its own for each event.

#[cfg(unix)]
mod copies;
#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::{exiting, handling, register, reset_in_child, start_thread};

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::{handling, register, start_thread};
