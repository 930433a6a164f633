//! Asymmetric fences: the owners' side of each "store, then load" pair costs nothing on the
//! hot path (see `flag.rs`), and the shutdown, once, pays for both with `membarrier(2)`.
//!
//! [`heavy`] makes every thread of the process run a full memory barrier before it returns, so a
//! compiler-only fence suffices on the other side. Where `membarrier` is missing (another
//! kernel, an old one, a seccomp filter), or not registered (yet: until the calls are hot, see
//! [`fenced_step`]), the owners' side is a `SeqCst` fence, and so is the shutdown's when the
//! call fails.

use crate::sync::atomic::{fence, Ordering::SeqCst};

/// Whether this build has the asymmetric fence: on Linux, but for `--cfg finally_portable`
/// (and in the loom model).
pub(crate) const ASYMMETRIC: bool = cfg!(all(
    target_os = "linux",
    not(finally_portable),
    not(all(test, loom))
));

#[cfg(all(target_os = "linux", not(finally_portable), not(all(test, loom))))]
use crate::sys::membarrier;

#[cfg(not(all(target_os = "linux", not(finally_portable), not(all(test, loom)))))]
mod membarrier {
    pub(crate) fn register() -> bool {
        false
    }

    pub(crate) fn barrier() -> bool {
        false
    }
}

/// Registers the process for [`heavy`]'s barrier; whether owners may now use compiler-only
/// fences. With other threads running, the kernel waits for them: milliseconds.
pub(crate) fn register() -> bool {
    membarrier::register()
}

/// Whether the process runs a single thread, so that [`register`] is quick; `false` where it
/// cannot tell.
pub(crate) fn alone() -> bool {
    #[cfg(all(target_os = "linux", not(finally_portable), not(all(test, loom))))]
    return crate::sys::proc::threads() == Some(1);
    #[allow(unreachable_code)]
    false
}

/// How many store-then-load pairs (three a guarded call) make the calls hot: then [`heavy`]
/// stands for the owners' fences.
const HOT: u32 = 3000;

/// The pairs that paid for a full fence so far. (Std's atomic, also in the loom model, where
/// this build has no asymmetric fence and nothing counts.)
static FENCED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// An owner paid for a full fence: counted, and once the process has made [`HOT`] such steps,
/// [`register`]s it for `heavy`'s barrier, then calls `registered` if that worked. Until then the
/// owners' side is a full fence (a few nanoseconds a call) and a shutdown costs no barrier;
/// after, a call costs no fence and a shutdown one `membarrier` (some microseconds, once). So a
/// program that guards `main` alone keeps the quicker shutdown, and one with guarded calls on a
/// hot path gets the quicker calls.
pub(crate) fn fenced_step(registered: fn()) {
    if FENCED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == HOT {
        hot(registered);
    }
}

/// The calls are hot: registers, then calls `registered` if that worked.
#[cold]
fn hot(registered: fn()) {
    let register = move || {
        if register() {
            registered();
        }
    };
    // Alone, the process registers in microseconds; with other threads running (or where
    // `/proc` cannot tell), the kernel waits for them, for milliseconds: then on a thread of
    // its own.
    if alone() {
        register();
    } else {
        let _ = std::thread::Builder::new()
            .name("finally-membarrier".into())
            .spawn(register);
    }
}

/// In a forked child, which the kernel does not register: registers it again, and returns
/// whether that worked. Async-signal-safe.
#[cfg(unix)]
pub(crate) fn register_in_child() -> bool {
    membarrier::register()
}

/// The shutdown's side: after it returns, every store any thread made before its own light
/// fence is visible here, and every load any thread makes after its light fence sees what was
/// stored here before this call.
///
/// `asymmetric`: whether owners may be using compiler-only fences; if not, a fence is enough.
pub(crate) fn heavy(asymmetric: bool) {
    if !(asymmetric && membarrier::barrier()) {
        fence(SeqCst);
    }
}
