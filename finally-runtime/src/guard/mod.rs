//! Guards: cleanups made at run time, that carry their own state.
//!
//! A guard's node lives in a box of its own, linked into the list of the slot of the thread that
//! made it (as a waiting future's node is), with the thread's innermost pending node as the one
//! it is nested in: on a shutdown, its cleanup runs before that node's, as a nested call's
//! would. The box is freed once the guard has ended (dropped, dismissed, or its cleanup taken
//! over and run) and no walk can still read it.
//!
//! `elsewhere.rs` makes the guards whose cleanup may also run outside this process: in the
//! guardian ([`guard_with`]), or at the program's next start ([`guard_durable`]).

mod elsewhere;

pub use self::elsewhere::{guard_durable, guard_with};

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::ops::Deref;
use std::panic::{resume_unwind, Location};
use std::ptr::NonNull;

use crate::cleanup::Outcome;
use crate::durable;
use crate::error::Error;
use crate::exit::Exit;
use crate::guarded;
use crate::guardian;
use crate::protocol::{Header, Name};
use crate::registry::{self, Link, Lives, Slot};
use crate::stop;

/// Makes a guard: `cleanup` runs exactly once, however it ends. Documented in `finally-cleanup`,
/// whose `guard` calls this.
#[track_caller]
pub fn guard<F, O>(cleanup: F) -> Guard
where
    F: FnOnce(&Exit) -> O + Send + 'static,
    O: Outcome,
{
    Guard::new(
        (),
        move |(): &(), exit: &Exit| cleanup(exit),
        Location::caller(),
    )
}

/// Makes a guard that holds `value`. Documented in `finally-cleanup`, whose `guard_value` calls
/// this.
#[track_caller]
pub fn guard_value<T, F, O>(value: T, cleanup: F) -> Guard<T>
where
    T: Send + Sync + 'static,
    F: FnOnce(&T, &Exit) -> O + Send + 'static,
    O: Outcome,
{
    Guard::new(value, cleanup, Location::caller())
}

/// A cleanup made at run time, which holds a value of type `T` (none: `()`); see [`guard`],
/// [`guard_value`] and [`guard_with`].
///
/// `mem::forget` of a guard leaves its cleanup pending for the rest of the process: it then runs
/// on a handled signal or on `exit`, and never otherwise. So does a guard kept in a `static`.
/// One kept in the main thread's thread-local storage is dropped by `exit` (glibc's, before
/// any exit hook runs), told [`Exit::Returned`].
#[must_use = "a guard runs its cleanup when it is dropped: keep it in a variable (`let _cleanup = ...`), or dismiss it"]
pub struct Guard<T = ()> {
    head: NonNull<Head>,
    /// A guard owns its value, and may be sent to another thread (its cleanup is `Send`), not
    /// shared.
    _value: PhantomData<(T, UnsafeCell<()>)>,
}

// SAFETY: the cleanup in the box is `Send`, as is the value, and the node is won by
// compare-and-swap, from whichever thread.
unsafe impl<T: Send> Send for Guard<T> {}

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
    /// Frees the box this head starts, given its address; the other, all but the value, which
    /// [`Guard::into_inner`] took.
    free: unsafe fn(*mut ()),
    free_but_value: unsafe fn(*mut ()),
    /// For a guard of [`guard_with`]: its id in the guardian, or why it has none.
    guardian: Option<Result<u64, Error>>,
    /// For a guard of [`guard_durable`]: its record's id, or why it has none.
    durable: Option<Result<u64, Error>>,
}

/// A guard's box.
#[repr(C)]
struct Boxed<T, F> {
    head: Head,
    /// Read by the code through the guard, and by the cleanup, from whichever thread runs it.
    value: ManuallyDrop<T>,
    /// Taken, once, by whoever won the node.
    cleanup: UnsafeCell<Option<F>>,
}

/// The start of every `Boxed<T, _>`, whatever its cleanup: where the value is, from the head.
#[repr(C)]
struct Valued<T> {
    head: Head,
    value: ManuallyDrop<T>,
}

impl<T> Guard<T> {
    fn new<F, O>(value: T, cleanup: F, made_at: &'static Location<'static>) -> Guard<T>
    where
        F: FnOnce(&T, &Exit) -> O + Send + 'static,
        O: Outcome,
    {
        stop::keep_panic_messages();
        let slot = guarded::slot().filter(|slot| registry::may_link_guard(slot));
        // Written in the box, not moved into it: a guard's box is some hundred bytes.
        let boxed = Box::leak(Box::new(MaybeUninit::<Boxed<T, F>>::uninit())).write(Boxed {
            head: Head {
                header: Header::new(call::<T, F, O>, Name::guard(made_at), std::ptr::null_mut()),
                link: Link::new(),
                slot,
                made_at,
                made_in: registry::generation(),
                free: free::<T, F, true>,
                free_but_value: free::<T, F, false>,
                guardian: None,
                durable: None,
            },
            value: ManuallyDrop::new(value),
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
            _value: PhantomData,
        }
    }

    /// Whether the guardian has this guard's state, and runs its cleanup if the program dies
    /// without it; an error says why not: the guard was made with [`guard`] or
    /// [`guard_value`], its cleanup is not registered, no guardian runs (see
    /// [`guardian_status`](crate::guardian_status)), or the state is too long. A guardian that
    /// is behind (stopped, or slow on a loaded machine) still has it: the state waits in the
    /// program until the guardian takes messages again.
    pub fn guardian(&self) -> Result<(), Error> {
        // SAFETY: the box is alive as long as the guard.
        match &unsafe { self.head.as_ref() }.guardian {
            Some(Ok(_)) => Ok(()),
            Some(Err(error)) => Err(error.clone()),
            None => Err(Error::because(
                "give the guardian this guard",
                std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "made with `guard` or `guard_value`, not `guard_with`: its cleanup runs in the program only",
                ),
            )),
        }
    }

    /// Whether this guard's record is on disk (see [`guard_durable`]), and a later start of the
    /// program runs its cleanup if the process dies without it; an error says why not: the
    /// guard was not made with `guard_durable`, its cleanup is not registered, or the record
    /// could not be written.
    pub fn durable(&self) -> Result<(), Error> {
        // SAFETY: the box is alive as long as the guard.
        match &unsafe { self.head.as_ref() }.durable {
            Some(Ok(_)) => Ok(()),
            Some(Err(error)) => Err(error.clone()),
            None => Err(Error::because(
                "keep a durable record of this guard",
                std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "not made with `guard_durable`: its cleanup runs in the program only",
                ),
            )),
        }
    }

    /// Disarms the guard: its cleanup never runs (unless a signal or `exit` took it over
    /// already, which ran it, once).
    ///
    /// ```
    /// # use finally_runtime as finally;
    /// fn write_report(path: &std::path::Path) -> std::io::Result<()> {
    ///     let owned = path.to_owned();
    ///     // A half-written report is worse than none: removed, unless the writing succeeds.
    ///     let half_written = finally::guard(move |_| std::fs::remove_file(owned));
    ///     std::fs::write(path, "the report")?;
    ///     half_written.dismiss();
    ///     Ok(())
    /// }
    /// # let path = std::env::temp_dir().join(format!("report-{}", std::process::id()));
    /// # write_report(&path).unwrap();
    /// # assert!(path.exists());
    /// # std::fs::remove_file(path).unwrap();
    /// ```
    pub fn dismiss(self) {
        ManuallyDrop::new(self).end(None);
    }

    /// Disarms the guard and gives its value back, as `scopeguard::ScopeGuard::into_inner`
    /// does; `None` if a signal or `exit` took the guard over already: its cleanup has run, or
    /// runs now on the runtime's thread, with the value, which is dropped after it. (Waiting
    /// for that cleanup could deadlock, on a lock this thread holds; none of the cleanup's
    /// work is undone by having the value back.)
    pub fn into_inner(guard: Self) -> Option<T> {
        let mut guard = ManuallyDrop::new(guard);
        let (ours, _) = guard.finish(None);
        // SAFETY: the box is alive until `release`; the node was dismissed by this thread, so
        // no cleanup reads the value, and the box is freed without it.
        let value = ours.then(|| unsafe { ManuallyDrop::take(&mut *guard.value_place()) });
        guard.release(!ours);
        value
    }

    /// Runs the cleanup with `exit` (none: dismissed), if it is still this guard's to run, and
    /// frees the box. A cleanup's panic goes on, unless a panic is unwinding already.
    fn end(&mut self, exit: Option<&Exit>) {
        let (_, panic) = self.finish(exit);
        self.release(true);
        if let Some(payload) = panic {
            if !std::thread::panicking() {
                resume_unwind(payload);
            }
        }
    }

    /// Wins the node and runs the cleanup with `exit` (none: dismissed), unless the shutdown
    /// took it over; returns whether this thread won it, and the cleanup's panic.
    fn finish(&mut self, exit: Option<&Exit>) -> (bool, Option<registry::Panic>) {
        // SAFETY: the box is alive until `release`, and only read.
        let head = unsafe { self.head.as_ref() };
        let (ours, panic) = match head.slot {
            Some(slot) => registry::finish_linked(
                slot,
                &head.link,
                &head.header,
                exit,
                guarded::slot(),
                Lives::InBox,
            ),
            // Known to no one else: nothing to win.
            None => (
                true,
                exit.and_then(|exit| registry::call_unlinked(&head.header, exit)),
            ),
        };
        // A cleanup that ran to its end disarmed its guard (`guard_with`'s closure): one that
        // did not run (dismissed) or panicked is disarmed here.
        if exit.is_none() || panic.is_some() {
            if let Some(Ok(id)) = head.guardian {
                guardian::disarm(id);
            }
            if let Some(Ok(id)) = head.durable {
                durable::disarm(id);
            }
        }
        (ours, panic)
    }

    /// Frees the box, with the value (`with_value`) or without it, once no walk reads it.
    fn release(&mut self, with_value: bool) {
        // SAFETY: the box is alive until here.
        let head = unsafe { self.head.as_ref() };
        let free = if with_value {
            head.free
        } else {
            head.free_but_value
        };
        // SAFETY: unlinked, and no one else uses it: `release` leaves it to a walk that may
        // still read it.
        unsafe { registry::release(head.slot, self.head.as_ptr().cast(), free) };
    }

    /// Where the value is in the box.
    fn value_place(&self) -> *mut ManuallyDrop<T> {
        // SAFETY: the box is a `Boxed<T, _>`, which starts as a `Valued<T>` (both `repr(C)`);
        // no reference to the whole is made, only a place.
        unsafe { std::ptr::addr_of_mut!((*self.head.as_ptr().cast::<Valued<T>>()).value) }
    }
}

/// The value, shared with the cleanup, which may read it on the runtime's thread at any moment
/// (a signal): so `T` is `Sync`, and no `DerefMut` (see [`guard_value`]).
impl<T: Sync> Deref for Guard<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the box and its value are alive as long as the guard, and only ever read
        // while it is armed, by this thread and the cleanup's.
        unsafe { &*self.value_place() }
    }
}

impl<T> Drop for Guard<T> {
    fn drop(&mut self) {
        let exit = if std::thread::panicking() {
            stop::unwinding()
        } else {
            Exit::Returned
        };
        self.end(Some(&exit));
    }
}

impl<T> fmt::Debug for Guard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: the box is alive as long as the guard.
        let made_at = unsafe { self.head.as_ref() }.made_at;
        f.debug_struct("Guard").field("made_at", &made_at).finish()
    }
}

/// The header's type-erased call: runs the cleanup of a `Boxed<T, F>`, once.
///
/// # Safety
///
/// `header` must start a live `Boxed<T, F>`, won by the caller.
unsafe fn call<T, F, O>(header: *const Header, exit: &Exit)
where
    F: FnOnce(&T, &Exit) -> O,
    O: Outcome,
{
    // SAFETY: `Boxed<T, F>` is `repr(C)` with the header first, and the caller vouches for it;
    // winning the node makes the caller the only one to touch the cleanup.
    let boxed = unsafe { &*header.cast::<Boxed<T, F>>() };
    if boxed.head.made_in != registry::generation() {
        // A copy in a forked child: the guard is the parent's, which runs it.
        return;
    }
    // SAFETY: as above.
    if let Some(cleanup) = unsafe { (*boxed.cleanup.get()).take() } {
        cleanup(&boxed.value, exit).report(&boxed.head.header.name);
    }
}

/// Frees a `Boxed<T, F>`, dropping its value if `VALUE`.
///
/// # Safety
///
/// `boxed` must be a `Boxed<T, F>` leaked by [`Guard::new`], which nothing reads any more;
/// without `VALUE`, one whose value was taken.
unsafe fn free<T, F, const VALUE: bool>(boxed: *mut ()) {
    // SAFETY: the caller vouches for it.
    let mut boxed = unsafe { Box::from_raw(boxed.cast::<Boxed<T, F>>()) };
    if VALUE {
        // SAFETY: the value is still there, and dropped once, here.
        unsafe { ManuallyDrop::drop(&mut boxed.value) };
    }
}
