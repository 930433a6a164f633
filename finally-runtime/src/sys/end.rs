//! How the process ends: by a signal (on Windows, a console event) as if no handler had been
//! installed, or with an exit code, with or without the exit hooks; and where a thread waits
//! for that end.

use libc::c_int;

pub(crate) use imp::*;

#[cfg(unix)]
mod imp {
    use super::*;
    use crate::sys::signal::reraise;
    pub(crate) use crate::sys::signal::{hold_sigpipe, SigpipeHeld};

    /// Ends the process by `signal`, as if no handler had been installed: through `exit`'s hooks
    /// (ours among them) where the signal does not end it, as for PID 1 in a container, where
    /// the kernel drops signals left at their default action: then with `128 + signal`.
    ///
    /// `libc::exit`, not `std::process::exit`: another thread may already be inside `exit`, and
    /// std would make this one wait for ever.
    pub(crate) fn die_by(signal: c_int) -> ! {
        reraise(signal);
        exit(128 + signal)
    }

    /// [`die_by`] at once, running nothing and flushing nothing: for a signal handler, and for
    /// a deadline that cannot wait for locks. Async-signal-safe.
    pub(crate) fn die_by_now(signal: c_int) -> ! {
        reraise(signal);
        exit_now(128 + signal)
    }

    /// Ends the process with `code`, through the exit hooks (libc's `exit`).
    pub(crate) fn exit(code: c_int) -> ! {
        // SAFETY: ends the process; the exit hooks run.
        unsafe { libc::exit(code) }
    }

    /// Ends the process with `code` at once, running nothing and flushing nothing: `_exit(2)`,
    /// made safe by signal-hook. Async-signal-safe.
    pub(crate) fn exit_now(code: c_int) -> ! {
        signal_hook::low_level::exit(code)
    }

    /// Blocks the calling thread until the process ends. Needs no thread-local state: it may run
    /// inside `exit`, after this thread's thread-locals are gone.
    #[cold]
    pub(crate) fn park_for_good() -> ! {
        loop {
            // SAFETY: `pause` only waits for a signal handler to run.
            unsafe { libc::pause() };
        }
    }
}

#[cfg(windows)]
mod imp {
    use windows_sys::Win32::Foundation::STATUS_CONTROL_C_EXIT;
    use windows_sys::Win32::System::Threading::{
        ExitProcess, GetCurrentProcess, Sleep, TerminateProcess, INFINITE,
    };

    use super::*;

    /// Nothing held: Windows has no SIGPIPE.
    pub(crate) struct SigpipeHeld;

    /// Nothing to hold back: Windows has no SIGPIPE.
    pub(crate) fn hold_sigpipe() -> SigpipeHeld {
        SigpipeHeld
    }

    /// Ends the process as Windows' default console handler does for every console event:
    /// `ExitProcess(STATUS_CONTROL_C_EXIT)`, which runs the exit hooks (ours finds nothing left).
    pub(crate) fn die_by(_event: c_int) -> ! {
        exit(STATUS_CONTROL_C_EXIT as c_int)
    }

    /// [`die_by`] at once, running nothing.
    pub(crate) fn die_by_now(_event: c_int) -> ! {
        exit_now(STATUS_CONTROL_C_EXIT as c_int)
    }

    /// Ends the process with `code`, through the exit hooks.
    pub(crate) fn exit(code: c_int) -> ! {
        // SAFETY: no preconditions.
        unsafe { ExitProcess(code as u32) }
    }

    /// Ends the process with `code` at once, running nothing.
    pub(crate) fn exit_now(code: c_int) -> ! {
        // SAFETY: the pseudo-handle of this process.
        unsafe { TerminateProcess(GetCurrentProcess(), code as u32) };
        unreachable!("TerminateProcess of this process returned")
    }

    /// Blocks the calling thread until the process ends.
    #[cold]
    pub(crate) fn park_for_good() -> ! {
        loop {
            // SAFETY: no preconditions.
            unsafe { Sleep(INFINITE) };
        }
    }
}
