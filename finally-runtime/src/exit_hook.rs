//! The exit hook: `process::exit`, the end of `main`, and a panic of a `panic = "abort"` build
//! run the pending cleanups.
//!
//! A cleanup may call `exit` itself, while the process is exiting. Then the first `exit`'s
//! code stands (glibc tells it to the hook; elsewhere 1), the cleanup that called it ends
//! there, and the others still run once, however `exit` was entered again:
//!
//! - on the thread that runs the shutdown, after an earlier `exit`: std aborts the process
//!   ("exit called re-entrantly") through the panic hook, where `catch_reentry` catches it;
//! - after the end of `main` (libc's `exit`, which std does not guard): libc runs the hooks
//!   still to run, `again` among them.

use std::ffi::c_void;
use std::io;
use std::panic::catch_unwind;

use libc::c_int;

use crate::exit::Exit;
use crate::{registry, shutdown};

#[cfg(all(target_os = "linux", target_env = "gnu", not(finally_portable)))]
extern "C" {
    /// glibc's `atexit` that is told the exit code.
    fn on_exit(hook: extern "C" fn(c_int, *mut c_void), argument: *mut c_void) -> c_int;
}

/// Registers [`at_exit`] (on Windows also `on_exit_process`), and, in a `panic = "abort"`
/// build, the panic hook.
pub(crate) fn register() -> io::Result<()> {
    if add(at_exit) != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the hook ends the process through `ExitProcess`.
    #[cfg(windows)]
    unsafe {
        crate::sys::exit_process::hook(on_exit_process)?;
    }
    if cfg!(panic = "abort") {
        run_cleanups_before_abort();
    }
    Ok(())
}

/// Built with `panic = "abort"`, a panic ends the process after the panic hook, with no
/// unwinding: this hook, chained after the one before it (which prints the message), runs every
/// pending cleanup first.
fn run_cleanups_before_abort() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        shutdown::on_exit(&Exit::from_panic(info.payload()));
    }));
}

#[cfg(all(target_os = "linux", target_env = "gnu", not(finally_portable)))]
fn add(hook: extern "C" fn(c_int, *mut c_void)) -> c_int {
    // SAFETY: `hook` never unwinds.
    unsafe { on_exit(hook, std::ptr::null_mut()) }
}

#[cfg(windows)]
extern "C" {
    /// The C runtime's, which `ExitProcess` runs.
    fn atexit(hook: extern "C" fn()) -> c_int;
}

#[cfg(not(all(target_os = "linux", target_env = "gnu", not(finally_portable))))]
fn add(hook: extern "C" fn(c_int, *mut c_void)) -> c_int {
    #[cfg(unix)]
    use libc::atexit;
    /// Which hook `atexit` runs: it passes nothing.
    static HOOK: std::sync::OnceLock<extern "C" fn(c_int, *mut c_void)> =
        std::sync::OnceLock::new();
    extern "C" fn plain() {
        if let Some(hook) = HOOK.get() {
            hook(i32::MIN, std::ptr::null_mut());
        }
    }
    let _ = HOOK.set(hook);
    // SAFETY: `plain` never unwinds.
    unsafe { atexit(plain) }
}

/// `ExitProcess` as the executable calls it (`std::process::exit` on Windows, which runs no
/// `atexit` hook), told the code: the pending cleanups run, every thread still running, and
/// then `ExitProcess` with the first code. Entered again from a cleanup (`exit` in a cleanup, or
/// the end by a console event), it runs the rest; from another thread, it waits for the end.
#[cfg(windows)]
unsafe extern "system" fn on_exit_process(code: u32) -> ! {
    shutdown::exiting_with(code as c_int);
    let _ = catch_unwind(|| {
        if registry::any_pending() || shutdown::kind().is_some() {
            shutdown::on_exit(&Exit::exited(Some(code as c_int)));
        }
    });
    crate::sys::exit_process::original(shutdown::exit_code() as u32)
}

/// Runs while `exit` is in progress, on the exiting thread.
extern "C" fn at_exit(code: c_int, _: *mut c_void) {
    // Where the C library does not tell it, `add` passes `i32::MIN`.
    let code = (code != i32::MIN).then_some(code);
    if let Some(code) = code {
        shutdown::exiting_with(code);
    }
    let _ = catch_unwind(|| {
        // The deadlines of every copy of `finally` count from here, this one's too.
        #[cfg(unix)]
        crate::signals::exiting(code);
        #[cfg(unix)]
        if registry::any_pending() {
            catch_reentry();
        }
        shutdown::on_exit(&Exit::exited(code));
    });
}

/// Runs after [`at_exit`]: at once and to no effect, or inside an `exit` that a cleanup
/// called after the end of `main`: then it runs the cleanups still pending, and ends the
/// process with the first code.
#[cfg(unix)]
extern "C" fn again(code: c_int, _: *mut c_void) {
    let _ = catch_unwind(|| {
        if shutdown::is_mine() {
            shutdown::resume();
        }
    });
    if code != i32::MIN && code != shutdown::exit_code() {
        // `exit` again, from an exit hook: libc runs the hooks still to run.
        crate::sys::end::exit(shutdown::exit_code())
    }
}

/// Set up once the process exits with cleanups pending (module docs).
#[cfg(unix)]
fn catch_reentry() {
    use std::panic::AssertUnwindSafe;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    static SET: AtomicBool = AtomicBool::new(false);
    if SET.swap(true, SeqCst) || std::thread::panicking() {
        return;
    }
    add(again);
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let reentered = info.payload().downcast_ref::<&str>()
                == Some(&"std::process::exit called re-entrantly");
            if reentered && shutdown::is_mine() {
                shutdown::resume();
                // `exit` again, from within `exit`: libc runs the hooks still to run.
                crate::sys::end::exit(shutdown::exit_code())
            }
            previous(info);
        }));
    }));
}
