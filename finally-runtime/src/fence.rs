//! Asymmetric fences: the owners' side of each "store, then load" pair costs nothing on the
//! hot path (see `flag.rs`), and the shutdown, once, pays for both with `membarrier(2)`.
//!
//! [`heavy`] makes every thread of the process run a full memory barrier before it returns, so a
//! compiler-only fence suffices on the other side. Where `membarrier` is missing (another
//! kernel, an old one, a seccomp filter), or not registered (yet: see `registry.rs`), the
//! owners' side is a `SeqCst` fence, and so is the shutdown's when the call fails.

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
