//! The system calls the runtime makes outside the hot path, each wrapped once.

use libc::c_int;

/// The calling thread, as the runtime tells threads apart where thread-locals may be gone
/// (inside `exit`) or are not to be touched (in a forked child). Async-signal-safe.
pub(crate) fn thread_id() -> usize {
    // SAFETY: `pthread_self` has no preconditions.
    unsafe { libc::pthread_self() as usize }
}

/// Runs `f` with SIGPIPE blocked on the calling thread, and takes back a SIGPIPE that `f`
/// raised (one pending before stays): a write to a closed pipe then fails with EPIPE instead of
/// ending the process, whatever the program set SIGPIPE to.
pub(crate) fn without_sigpipe<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: a zeroed `sigset_t` is valid before `sigemptyset`; plain calls on this thread's
    // signal mask with valid arguments.
    unsafe {
        let mut pipe: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe);
        libc::sigaddset(&mut pipe, libc::SIGPIPE);
        let mut pending: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut pending);
        let was_pending = libc::sigismember(&pending, libc::SIGPIPE) == 1;
        let mut mask: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe, &mut mask);
        let result = f();
        libc::sigpending(&mut pending);
        if !was_pending && libc::sigismember(&pending, libc::SIGPIPE) == 1 {
            // Pending and blocked: taken at once.
            let mut taken = 0;
            libc::sigwait(&pipe, &mut taken);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &mask, std::ptr::null_mut());
        result
    }
}

/// Restores `signal`'s default action, unblocks it and raises it: where the default action
/// ends the process, it ends here. Async-signal-safe.
pub(crate) fn reraise(signal: c_int) {
    // SAFETY: plain libc calls with valid arguments.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(signal);
    }
}

/// Ends the process by `signal`, as if no handler had been installed: through `exit`'s hooks
/// (ours among them) where the signal does not end it, as for PID 1 in a container, where the
/// kernel drops signals left at their default action: then with `128 + signal`.
///
/// `libc::exit`, not `std::process::exit`: another thread may already be inside `exit`, and std
/// would make this one wait for ever.
pub(crate) fn die_by(signal: c_int) -> ! {
    reraise(signal);
    // SAFETY: ends the process; the exit hooks run.
    unsafe { libc::exit(128 + signal) }
}

/// [`die_by`] at once, running nothing and flushing nothing: for a signal handler, and for a
/// deadline that cannot wait for locks. Async-signal-safe.
pub(crate) fn die_by_now(signal: c_int) -> ! {
    reraise(signal);
    exit_now(128 + signal)
}

/// Ends the process with `code` at once, running nothing and flushing nothing.
/// Async-signal-safe.
pub(crate) fn exit_now(code: c_int) -> ! {
    // SAFETY: `_exit` has no preconditions.
    unsafe { libc::_exit(code) }
}
