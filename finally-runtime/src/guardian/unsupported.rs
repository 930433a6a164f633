//! Where the guardian does not run (every platform but Linux and Windows): it does not start,
//! and says why.

use std::io;

use super::Started;
use crate::cleanup::Run;

/// Does not start the guardian.
pub(super) fn start<C: Run>(_: C) -> io::Result<Started> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "the guardian runs on Linux and Windows only, for now: it watches the program through /proc and pidfds, or a process handle",
    ))
}
