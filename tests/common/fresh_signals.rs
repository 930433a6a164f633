//! Child processes that start with the signals' default actions, whatever their parent has: for
//! the benchmarks, which start their programs themselves (the tests' programs are started by the
//! kit, `finally-test`, which does the same).

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes `command`'s child start with SIGINT, SIGTERM, SIGHUP and SIGQUIT at their default
/// actions and nothing blocked: the test runner or `cargo bench` may have been started with
/// signals ignored or blocked (a background job of a non-interactive shell ignores SIGINT),
/// and the child must start as a program run from a terminal would.
pub fn reset_signals(command: &mut Command) {
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
                libc::signal(signal, libc::SIG_DFL);
            }
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            Ok(())
        });
    }
}
