//! Unix signals: their actions, chaining handlers, the signal mask, re-raising one.

use std::ffi::c_void;
use std::io;
use std::ptr;
use std::sync::atomic::AtomicPtr;
use std::sync::atomic::Ordering::SeqCst;

use libc::{c_int, siginfo_t};

/// A handler that is told the signal's details: what `SA_SIGINFO` installs.
pub(crate) type Handler = extern "C" fn(c_int, *mut siginfo_t, *mut c_void);

/// Runs `f` with SIGPIPE blocked on the calling thread, and takes back a SIGPIPE that `f`
/// raised (one pending before stays): a write to a closed pipe then fails with EPIPE instead of
/// ending the process, whatever the program set SIGPIPE to. For the runtime's own writes, which
/// start no program (that would inherit the mask).
pub(crate) fn without_sigpipe<T>(f: impl FnOnce() -> T) -> T {
    let pipe = set_of([libc::SIGPIPE]);
    // SAFETY: zeroed `sigset_t`s are valid out-parameters; plain calls on this thread's signal
    // mask with valid arguments.
    unsafe {
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

/// SIGPIPE caught, for a while (see [`hold_sigpipe`]).
#[must_use = "SIGPIPE is held until this is dropped"]
pub(crate) struct SigpipeHeld(bool);

/// Does nothing: a write to a closed pipe then fails with EPIPE.
extern "C" fn pipe_broken(_: c_int) {}

/// Keeps SIGPIPE from ending the process until the result is dropped: where it is at its
/// default action (Rust's runtime ignores it, but a program may set it back), catches it with
/// a handler that does nothing, so that a write to a closed pipe fails with EPIPE instead, on
/// every thread. Caught, not ignored nor blocked: `exec` resets a caught signal to its default
/// action, so a program started meanwhile gets SIGPIPE and the signal mask as this one had
/// them. A signal ignored or handled by the program is left as it is.
pub(crate) fn hold_sigpipe() -> SigpipeHeld {
    let held = action(libc::SIGPIPE).is_some_and(|action| action.sa_sigaction == libc::SIG_DFL);
    if held {
        // SAFETY: the handler does nothing, which is async-signal-safe.
        unsafe { catch_plain(libc::SIGPIPE, pipe_broken) };
    }
    SigpipeHeld(held)
}

impl Drop for SigpipeHeld {
    /// SIGPIPE's default action again, unless the program has changed it meanwhile.
    fn drop(&mut self) {
        let still = action(libc::SIGPIPE)
            .is_some_and(|action| action.sa_sigaction == pipe_broken as *const () as usize);
        if self.0 && still {
            // SAFETY: restoring the default action.
            unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        }
    }
}

/// Restores `signal`'s default action, unblocks it and raises it: where the default action
/// ends the process, it ends here. Async-signal-safe.
///
/// Raised with signal-hook's `raise`, `raise(3)` made safe; not with its
/// `emulate_default_handler`, which calls `abort` where the signal does not end the process
/// (ARCHITECTURE.md says why that will not do).
pub(crate) fn reraise(signal: c_int) {
    let set = set_of([signal]);
    // SAFETY: plain libc calls with valid arguments.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
    // Fails only for a number that is no signal.
    let _ = signal_hook::low_level::raise(signal);
}

/// Ends the process with `code` at once, after flushing C's stdio: for a process of the
/// runtime's own (the guardian), which has nothing else of its own to flush.
#[cfg(target_os = "linux")]
pub(crate) fn exit_flushing(code: c_int) -> ! {
    // SAFETY: `fflush(NULL)` flushes every stream.
    unsafe { libc::fflush(ptr::null_mut()) };
    signal_hook::low_level::exit(code)
}

/// Whether `signal` is set to be ignored, as the process inherited it or the program set it.
/// Async-signal-safe.
#[cfg(target_os = "linux")]
pub(crate) fn is_ignored(signal: c_int) -> bool {
    action(signal).is_some_and(|action| action.sa_sigaction == libc::SIG_IGN)
}

/// `signal`'s action, if it can be read. Async-signal-safe.
pub(crate) fn action(signal: c_int) -> Option<libc::sigaction> {
    // SAFETY: a zeroed `sigaction` is a valid out-parameter; a null new action only queries.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        (libc::sigaction(signal, ptr::null(), &mut current) == 0).then_some(current)
    }
}

/// Sets `signal`'s action to `handler`, restarting interrupted calls, with no other signal
/// blocked meanwhile. Async-signal-safe.
///
/// # Safety
///
/// `handler` must be async-signal-safe, and fit to replace the signal's action for the whole
/// process.
pub(crate) unsafe fn catch_plain(signal: c_int, handler: extern "C" fn(c_int)) {
    // SAFETY: a zeroed `sigaction` is valid before it is filled; the caller vouches for the
    // handler.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as *const () as usize;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(signal, &action, ptr::null_mut());
    }
}

/// How a handler of ours is installed: what `sa_flags` gets beside `SA_SIGINFO`, and what is
/// blocked while it runs.
#[derive(Clone, Copy)]
pub(crate) struct HowInstalled<'a> {
    pub(crate) flags: c_int,
    pub(crate) mask: &'a libc::sigset_t,
}

/// The actions that handlers of ours replaced, one per signal: the one place that installs a
/// handler which hands a signal on to the action it replaced (the signal handler of
/// `signals/unix.rs`, the guardian's crash handler), as signal-hook-registry's `Prev` does.
///
/// Architecture invariant: the action a handler reads is stored before that handler is
/// installed. [`Replaced::install`] reads the action with a `sigaction` that only looks, stores
/// it, then installs, and stores what the install found instead if another thread changed it
/// meanwhile: a signal that arrives at once, on any thread, finds an action to hand on to.
/// Stored actions are leaked, never freed: a handler may read one at any time.
pub(crate) struct Replaced([AtomicPtr<libc::sigaction>; 65]);

impl Replaced {
    pub(crate) const fn new() -> Self {
        Replaced([const { AtomicPtr::new(ptr::null_mut()) }; 65])
    }

    /// Installs `handler` for `signal`, as `how` says, unless the signal is ignored (then it
    /// stays ignored: `Ok(false)`), keeping the action it replaces.
    ///
    /// # Safety
    ///
    /// `handler` must be async-signal-safe, and fit to replace the signal's action for the
    /// whole process.
    pub(crate) unsafe fn install(
        &self,
        signal: c_int,
        handler: Handler,
        how: HowInstalled,
    ) -> io::Result<bool> {
        let slot = self
            .0
            .get(signal as usize)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        let before = action(signal).ok_or_else(io::Error::last_os_error)?;
        if before.sa_sigaction == libc::SIG_IGN {
            return Ok(false);
        }
        slot.store(Box::into_raw(Box::new(before)), SeqCst);
        // SAFETY: zeroed `sigaction`s are valid before they are filled; the caller vouches for
        // the handler.
        let replaced = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | how.flags;
            action.sa_mask = *how.mask;
            let mut replaced: libc::sigaction = std::mem::zeroed();
            super::check(libc::sigaction(signal, &action, &mut replaced))?;
            replaced
        };
        if replaced.sa_sigaction != before.sa_sigaction || replaced.sa_flags != before.sa_flags {
            slot.store(Box::into_raw(Box::new(replaced)), SeqCst);
        }
        Ok(true)
    }

    /// The action the handler replaced for `signal`, once installed. Async-signal-safe.
    pub(crate) fn get(&self, signal: c_int) -> Option<&'static libc::sigaction> {
        let replaced = self
            .0
            .get(signal as usize)
            .map_or(ptr::null_mut(), |slot| slot.load(SeqCst));
        // SAFETY: leaked, never freed once stored.
        unsafe { replaced.as_ref() }
    }

    /// Puts back the action the handler replaced for `signal` and hands the signal on to it, so
    /// that the process goes on, or dies, as it would have without the handler: the default
    /// action is raised again (and ends the process once the handler returns), a handler is
    /// called as the kernel would have. Async-signal-safe, as far as that handler is.
    ///
    /// # Safety
    ///
    /// `info` and `context` must be what the kernel passed to the calling handler for `signal`.
    pub(crate) unsafe fn restore_and_hand_on(
        &self,
        signal: c_int,
        info: *mut siginfo_t,
        context: *mut c_void,
    ) {
        let Some(replaced) = self.get(signal) else {
            return;
        };
        // SAFETY: an action read from the kernel.
        unsafe { libc::sigaction(signal, replaced, ptr::null_mut()) };
        if replaced.sa_sigaction == libc::SIG_DFL {
            // Fails only for a number that is no signal.
            let _ = signal_hook::low_level::raise(signal);
        } else {
            // SAFETY: the caller passes on the kernel's arguments.
            unsafe { chain(replaced, signal, info, context) };
        }
    }
}

/// Whether `action` runs a function of someone's: not the default action, not ignoring.
/// Async-signal-safe.
pub(crate) fn is_handler(action: &libc::sigaction) -> bool {
    action.sa_sigaction != libc::SIG_DFL && action.sa_sigaction != libc::SIG_IGN
}

/// Whether `signal`'s action is `handler` now. Async-signal-safe.
pub(crate) fn is_installed(signal: c_int, handler: Handler) -> bool {
    action(signal).is_some_and(|action| action.sa_sigaction == handler as *const () as usize)
}

/// Calls the function of `action`, the one a handler replaced, as the kernel would have called
/// it: so that a handler installed before ours still runs. Async-signal-safe, as far as that
/// function is.
///
/// # Safety
///
/// `info` and `context` must be what the kernel passed to the calling handler for `signal`.
pub(crate) unsafe fn chain(
    action: &libc::sigaction,
    signal: c_int,
    info: *mut siginfo_t,
    context: *mut c_void,
) {
    if !is_handler(action) {
        return;
    }
    // SAFETY: a handler's address, of the kind its flags say; the caller passes on the kernel's
    // arguments.
    unsafe {
        if action.sa_flags & libc::SA_SIGINFO != 0 {
            let handler: Handler = std::mem::transmute(action.sa_sigaction);
            handler(signal, info, context);
        } else {
            let handler: extern "C" fn(c_int) = std::mem::transmute(action.sa_sigaction);
            handler(signal);
        }
    }
}

/// Whether two signal sets hold the same signals. Async-signal-safe.
pub(crate) fn same_set(one: &libc::sigset_t, other: &libc::sigset_t) -> bool {
    // SAFETY: valid sets; a number beyond the system's signals is a member of neither.
    (1..65)
        .all(|signal| unsafe { libc::sigismember(one, signal) == libc::sigismember(other, signal) })
}

/// A signal set holding `signals`. Async-signal-safe.
pub(crate) fn set_of(signals: impl IntoIterator<Item = c_int>) -> libc::sigset_t {
    // SAFETY: a zeroed `sigset_t` is valid before `sigemptyset`; valid signal numbers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in signals {
            libc::sigaddset(&mut set, signal);
        }
        set
    }
}

/// Blocks `set` on the calling thread; returns the mask it had, for [`set_mask`].
/// Async-signal-safe.
#[cfg(target_os = "linux")]
pub(crate) fn block(set: &libc::sigset_t) -> libc::sigset_t {
    // SAFETY: a zeroed `sigset_t` is a valid out-parameter; valid sets.
    unsafe {
        let mut mask: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, set, &mut mask);
        mask
    }
}

/// Sets the calling thread's signal mask to `mask`. Async-signal-safe.
#[cfg(target_os = "linux")]
pub(crate) fn set_mask(mask: &libc::sigset_t) {
    // SAFETY: a valid set; a null old mask is not asked for.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, mask, ptr::null_mut()) };
}

/// A signalfd of the signals in `set` (which the caller blocks), non-blocking and
/// close-on-exec: what [`read_signals`] reads.
#[cfg(target_os = "linux")]
pub(crate) fn signalfd(set: &libc::sigset_t) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: a valid set; -1 asks for a new descriptor.
    let fd =
        super::check(unsafe { libc::signalfd(-1, set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) })?;
    // SAFETY: a new descriptor, ours alone.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Calls `each` with every signal that the signalfd `fd` holds now, without waiting.
#[cfg(target_os = "linux")]
pub(crate) fn read_signals(fd: std::os::fd::RawFd, mut each: impl FnMut(c_int)) {
    // SAFETY: all zeros is a valid `signalfd_siginfo`.
    let mut received: [libc::signalfd_siginfo; 8] = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: reading into a live buffer of that length.
        let length = unsafe {
            libc::read(
                fd,
                received.as_mut_ptr().cast(),
                std::mem::size_of_val(&received),
            )
        };
        // Nothing more to read (the descriptor does not block), or interrupted: the next wake.
        let Ok(length @ 1..) = usize::try_from(length) else {
            break;
        };
        for info in &received[..length / std::mem::size_of::<libc::signalfd_siginfo>()] {
            each(info.ssi_signo as c_int);
        }
    }
}
