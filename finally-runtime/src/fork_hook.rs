//! The fork hook: a child forked without `exec` starts fresh, with what belongs to it.

use std::io;

use crate::flag::SHUTDOWN;
use crate::sys::process;
use crate::{fence, guardian, registry, request, shutdown, signals, standby, trace};

/// Registers [`in_child`] with `pthread_atfork`.
pub(crate) fn register() -> io::Result<()> {
    // SAFETY: `in_child` only does what is allowed in a forked child (its docs).
    unsafe { process::at_fork_in_child(in_child) }
}

/// The child's side of `fork`, on its one thread, before `fork` returns there: what belonged
/// to the parent's other threads, its shutdown and its guardian are not the child's. Only what
/// is allowed in a forked child of a process with threads: atomics and system calls, and, if
/// the child has a cleanup pending (it forked inside a guarded function, as a daemon does),
/// starting its signal thread at once: it may never reach another guarded function.
extern "C" fn in_child() {
    let pending = registry::forget_other_threads();
    guardian::forget_in_child();
    shutdown::reset_in_child();
    request::reset_in_child();
    standby::reset_in_child();
    signals::reset_in_child();
    trace::reset_in_child();
    let asymmetric = SHUTDOWN.is_asymmetric() && fence::register_in_child();
    SHUTDOWN.reset_in_child(asymmetric);
    if pending {
        SHUTDOWN.start_thread_if_forked();
    }
}
