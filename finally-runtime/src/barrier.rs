//! Asymmetric fences: the owners' side of each "store, then load" pair costs nothing on the
//! hot path (see `stop::Flags`), and the stopper, once per stop, pays for both with
//! `membarrier(2)`.
//!
//! `heavy` makes every thread of the process run a full memory barrier before it returns, so a
//! compiler-only fence suffices on the other side. Where `membarrier` is missing (another
//! kernel, an old one, a seccomp filter), or not registered (yet: see [`hot`]), the owners'
//! side is a `SeqCst` fence, and so is the stopper's when the call fails.

use crate::sync::atomic::{fence, Ordering::SeqCst};

#[cfg(all(target_os = "linux", not(loom)))]
mod membarrier {
    const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    const REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

    fn membarrier(command: libc::c_long) -> bool {
        // SAFETY: `membarrier` takes no pointers.
        unsafe { libc::syscall(libc::SYS_membarrier, command, 0 as libc::c_long) == 0 }
    }

    pub(super) fn register() -> bool {
        membarrier(REGISTER_PRIVATE_EXPEDITED)
    }

    pub(super) fn run() -> bool {
        membarrier(PRIVATE_EXPEDITED)
    }
}

#[cfg(not(all(target_os = "linux", not(loom))))]
mod membarrier {
    pub(super) fn register() -> bool {
        false
    }

    pub(super) fn run() -> bool {
        false
    }
}

/// Sets up `heavy` to stand for the owners' fences, once: when a thread has made
/// [`HOT`] guarded calls. Until then the owners' side is a full fence (a few nanoseconds a
/// call) and a stop costs no barrier; after, a call costs no fence and a stop one `membarrier`
/// (some microseconds, once). So a program that guards `main` alone keeps the quicker stop, and
/// one with guarded calls on a hot path gets the quicker calls.
#[cold]
pub(crate) fn hot() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Alone, the process registers in microseconds; with other threads running, the
        // kernel waits for them, for milliseconds: then on a thread of its own.
        if crate::guardian::threads() == Some(1) {
            register();
        } else {
            let _ = std::thread::Builder::new()
                .name("finally-membarrier".into())
                .spawn(register);
        }
    });
}

/// How many guarded calls on one thread make the calls [`hot`].
pub(crate) const HOT: u32 = 1000;

fn register() {
    if membarrier::register() {
        crate::flag::SHUTDOWN.set_asymmetric();
    }
}

/// In a forked child, which the kernel does not register: registers it again, and returns
/// whether that worked. Async-signal-safe.
pub(crate) fn register_in_child() -> bool {
    membarrier::register()
}

/// The stopper's side: after it returns, every store any thread made before its own `light` is
/// visible here, and every load any thread makes after its `light` sees what was stored here
/// before this call.
///
/// `asymmetric`: whether owners may be using compiler-only fences; if not, a fence is enough.
pub(crate) fn heavy(asymmetric: bool) {
    if !(asymmetric && membarrier::run()) {
        fence(SeqCst);
    }
}
