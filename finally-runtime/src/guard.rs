//! Guards: cleanups made at run time, that carry their own state.
//!
//! A guard's node lives in a box of its own, linked into the list of the slot of the thread that
//! made it (as a waiting future's node is), with the thread's innermost pending node as the one
//! it is nested in: on a shutdown, its cleanup runs before that node's, as a nested call's
//! would. The box is freed once the guard has ended (dropped, dismissed, or its cleanup taken
//! over and run) and no walk can still read it.

use std::any::{type_name, TypeId};
use std::borrow::Borrow;
use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::panic::{resume_unwind, Location};
use std::ptr::NonNull;

use crate::cleanup::Outcome;
use crate::guarded;
use crate::guardian;
use crate::protocol::Header;
use crate::registry::{self, Link, Lives, Slot};
use crate::state::{State, StateRef};
use crate::{stop, Error, Exit};

/// Makes a guard: see `finally::guard`, which calls this and says what it does (there, a bound
/// a call does not meet is shown in the crate the user depends on).
#[track_caller]
pub fn guard<F, O>(cleanup: F) -> Guard
where
    F: FnOnce(&Exit) -> O + Send + 'static,
    O: Outcome,
{
    Guard::new(cleanup, Location::caller())
}

/// Makes a guard whose cleanup also runs in the guardian: see `finally::guard_with`, which
/// calls this and says what it does.
#[track_caller]
pub fn guard_with<T, B, F, O>(state: T, cleanup: F) -> Guard
where
    T: State + Borrow<B>,
    B: ?Sized + StateRef<Owned = T>,
    F: Fn(&B, &Exit) -> O + Copy + Send + 'static,
    O: Outcome + 'static,
{
    let mut encoded = Vec::new();
    state.encode(&mut encoded);
    let armed = guardian::arm(TypeId::of::<F>(), type_name::<F>(), &encoded);
    let id = armed.as_ref().ok().copied();
    let mut guard = Guard::new(
        move |exit: &Exit| {
            let outcome = cleanup(state.borrow(), exit);
            if let Some(id) = id {
                guardian::disarm(id);
            }
            outcome
        },
        Location::caller(),
    );
    // SAFETY: the box is alive as long as the guard, and no one else has its address yet but
    // the list, which never writes this field.
    unsafe { guard.head.as_mut() }.guardian = Some(armed);
    guard
}

/// A cleanup made at run time; see [`guard`].
///
/// `mem::forget` of a guard leaves its cleanup pending for the rest of the process: it then runs
/// on a handled signal or on `exit`, and never otherwise. So does a guard kept in a `static`.
/// One kept in the main thread's thread-local storage is dropped by `exit` (glibc's, before
/// any exit hook runs), told [`Exit::Returned`].
#[must_use = "a guard runs its cleanup when it is dropped: keep it in a variable (`let _cleanup = ...`), or dismiss it"]
pub struct Guard {
    head: NonNull<Head>,
    /// A guard may be sent to another thread (its cleanup is `Send`), not shared.
    _not_sync: PhantomData<UnsafeCell<()>>,
}

// SAFETY: the cleanup in the box is `Send`, and the node is claimed by compare-and-swap, from
// whichever thread.
unsafe impl Send for Guard {}

/// The type-erased part of a guard's box.
#[repr(C)]
struct Head {
    header: Header,
    link: Link,
    /// Whose list the node is linked into; none where no slot could be had.
    slot: Option<&'static Slot>,
    made_at: &'static Location<'static>,
    /// The process it was made in, as `registry::generation` tells it: a copy that `fork` made
    /// in a child is the parent's to run, never the child's.
    made_in: u32,
    /// Frees the box this head starts, given its address.
    free: unsafe fn(*mut ()),
    /// For a guard of [`guard_with`]: its id in the guardian, or why it has none.
    guardian: Option<Result<u64, Error>>,
}

/// A guard's box.
#[repr(C)]
struct Boxed<F> {
    head: Head,
    /// Taken, once, by whoever won the node.
    cleanup: UnsafeCell<Option<F>>,
}

/// How a guard's cleanup is named while it runs, for the deadline's report.
static NAME: &str = "a guard";

impl Guard {
    fn new<F, O>(cleanup: F, made_at: &'static Location<'static>) -> Guard
    where
        F: FnOnce(&Exit) -> O + Send + 'static,
        O: Outcome,
    {
        keep_panic_messages();
        let slot = guarded::slot().filter(|slot| registry::may_link_guard(slot));
        // Written in the box, not moved into it: a guard's box is some hundred bytes.
        let boxed = Box::leak(Box::new(MaybeUninit::<Boxed<F>>::uninit())).write(Boxed {
            head: Head {
                header: Header::new(call::<F, O>, &NAME, std::ptr::null_mut()),
                link: Link::new(),
                slot,
                made_at,
                made_in: registry::generation(),
                free: free::<F>,
                guardian: None,
            },
            cleanup: UnsafeCell::new(Some(cleanup)),
        });
        let head = NonNull::from(boxed).cast::<Head>();
        // SAFETY: just leaked, and never moved: the node stays where the list links it.
        let linked = unsafe { head.as_ref() };
        if let Some(slot) = slot {
            registry::link_guard(slot, &linked.link, &linked.header, slot.innermost());
        }
        Guard {
            head,
            _not_sync: PhantomData,
        }
    }

    /// Whether the guardian has this guard's state, and runs its cleanup if the program dies
    /// without it; an error says why not: the guard was made with [`guard`], its cleanup is not
    /// registered, no guardian runs (see [`guardian_status`](crate::guardian_status)), or the
    /// state is too long. A guardian that is behind (stopped, or slow on a loaded machine) still
    /// has it: the state waits in the program until the guardian takes messages again.
    pub fn guardian(&self) -> Result<(), Error> {
        // SAFETY: the box is alive as long as the guard.
        match &unsafe { self.head.as_ref() }.guardian {
            Some(Ok(_)) => Ok(()),
            Some(Err(error)) => Err(error.clone()),
            None => Err(Error::because(
                "give the guardian this guard",
                std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "made with `guard`, not `guard_with`: its cleanup runs in the program only",
                ),
            )),
        }
    }

    /// Disarms the guard: its cleanup never runs (unless a signal or `exit` took it over
    /// already, which ran it, once).
    pub fn dismiss(self) {
        ManuallyDrop::new(self).end(None);
    }

    /// Runs the cleanup with `exit` (none: dismissed), if it is still this guard's to run, and
    /// frees the box. A cleanup's panic goes on, unless a panic is unwinding already.
    fn end(&mut self, exit: Option<&Exit>) {
        // SAFETY: the box is alive until `free` below, and only read.
        let head = unsafe { self.head.as_ref() };
        let panic = match head.slot {
            Some(slot) => registry::finish_linked(
                slot,
                &head.link,
                &head.header,
                exit,
                guarded::slot(),
                Lives::InBox,
            ),
            // Known to no one else: no claim to make.
            None => exit.and_then(|exit| registry::call_unlinked(&head.header, exit)),
        };
        // A cleanup that ran to its end disarmed its guard (`guard_with`'s closure): one that
        // did not run (dismissed) or panicked is disarmed here.
        if exit.is_none() || panic.is_some() {
            if let Some(Ok(id)) = head.guardian {
                guardian::disarm(id);
            }
        }
        // SAFETY: unlinked, and no one else uses it: `release` leaves it to a walk that may
        // still read it.
        unsafe { registry::release(head.slot, self.head.as_ptr().cast(), head.free) };
        if let Some(payload) = panic {
            if !std::thread::panicking() {
                resume_unwind(payload);
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let exit = if std::thread::panicking() {
            stop::unwinding()
        } else {
            Exit::Returned
        };
        self.end(Some(&exit));
    }
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: the box is alive as long as the guard.
        let made_at = unsafe { self.head.as_ref() }.made_at;
        f.debug_struct("Guard").field("made_at", &made_at).finish()
    }
}

/// Chains a panic hook that keeps each panic's message for the guards (a guard dropped while a
/// panic unwinds cannot see the panic's payload: `stop::unwinding` tells it), once the first
/// guard is made (a program without guards keeps its hook as it is). The hook before it runs
/// after.
fn keep_panic_messages() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    if std::thread::panicking() {
        // Changing the hook is not allowed now; the next guard does it.
        return;
    }
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            stop::panic_began(crate::exit::panic_message(info.payload()).map(str::to_owned));
            previous(info);
        }));
    });
}

/// Names a guard in reports.
struct MadeAt(&'static Location<'static>);

impl fmt::Display for MadeAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the guard made at {}:{}", self.0.file(), self.0.line())
    }
}

/// The header's type-erased call: runs the cleanup of a `Boxed<F>`, once.
///
/// # Safety
///
/// `header` must start a live `Boxed<F>`, claimed for the caller.
unsafe fn call<F, O>(header: *const Header, exit: &Exit)
where
    F: FnOnce(&Exit) -> O,
    O: Outcome,
{
    // SAFETY: `Boxed<F>` is `repr(C)` with the header first, and the caller vouches for it; the
    // claim makes the caller the only one to touch the cleanup.
    let boxed = unsafe { &*header.cast::<Boxed<F>>() };
    if boxed.head.made_in != registry::generation() {
        // A copy in a forked child: the guard is the parent's, which runs it.
        return;
    }
    // SAFETY: as above.
    if let Some(cleanup) = unsafe { (*boxed.cleanup.get()).take() } {
        cleanup(exit).report(&MadeAt(boxed.head.made_at));
    }
}

/// Frees a `Boxed<F>`.
///
/// # Safety
///
/// `boxed` must be a `Boxed<F>` leaked by [`Guard::new`], which nothing reads any more.
unsafe fn free<F>(boxed: *mut ()) {
    // SAFETY: the caller vouches for it.
    drop(unsafe { Box::from_raw(boxed.cast::<Boxed<F>>()) });
}
