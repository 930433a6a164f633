//! `guard` and `guard_with`, defined here rather than re-exported from the runtime: a call that
//! does not meet one of their bounds (a cleanup that is not `Send`, or returns no [`Outcome`]) is
//! then shown these signatures, in the crate the user depends on, and nothing of the runtime.

use std::borrow::Borrow;

use crate::{Exit, Guard, Outcome, State, StateRef};

/// Makes a guard: `cleanup` runs exactly once, when the guard is dropped ([`Exit::Returned`],
/// or [`Exit::Panicked`] while a panic unwinds), when a handled signal arrives or the process
/// exits while it is pending ([`Exit::Signal`], [`Exit::Exited`]), unless it is
/// [dismissed](Guard::dismiss).
///
/// With the same guarantees and order as the cleanups of `#[with_cleanup]`: on a signal or
/// `exit`, pending guards and guarded functions run newest first on each thread, and a guard
/// made inside a guarded function runs before that function's cleanup. A guard may be made on
/// any thread, in any function, and moved to another thread: its place stays the one it was
/// made at. It belongs to the process that made it: after a `fork`, the child's copy never runs.
///
/// `cleanup` returns `()`, or `Result<(), E>` with `E: Display`: an error is reported in one
/// line on stderr, naming where the guard was made. Or it never returns: `|_| exit(4)`. Making a guard allocates once.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("scratch-{}", finally::program_id()));
/// std::fs::create_dir_all(&dir)?;
/// let _cleanup = finally::guard(move |_| std::fs::remove_dir_all(&dir));
/// // ... work: Ctrl-C, `kill`, `exit`, a panic or the end of the scope remove `dir` ...
/// # Ok(()) }
/// ```
///
/// A guard made while its thread runs a cleanup runs on drop only, as the calls of a cleanup
/// do. During a shutdown, making one inside a guarded function that the shutdown took over
/// stops the thread, as entering a guarded function there does (see "What threads do while the
/// cleanups run" in the crate docs). A guard dropped by another thread than the one that made
/// it never waits for the shutdown.
#[track_caller]
#[inline]
pub fn guard<F, O>(cleanup: F) -> Guard
where
    F: FnOnce(&Exit) -> O + Send + 'static,
    O: Outcome,
{
    finally_runtime::guard(cleanup)
}

/// Makes a guard whose cleanup also runs in the guardian, if the program dies without running
/// it (SIGKILL, a crash): `cleanup` is a function registered with
/// [`#[guardian_cleanup]`](macro@crate::guardian_cleanup), called with `state` (or what it
/// borrows as: a `PathBuf` as a `&Path`, a `String` as a `&str`).
///
/// The guardian is a copy of the program made when `main` started; it knows `cleanup` (the
/// same function of the same program, registered there too) but not what the program made
/// since. So `state` is sent to it, encoded, when the guard is made, and it is told when the
/// guard ends. In the program, the guard is a [`guard`] calling `cleanup(&state, exit)`; in the
/// guardian, after a crash, `cleanup(&decoded_state, &Exit::Died { .. })` runs, newest guard
/// first, before `main`'s own cleanup. Whether the state reached the guardian, [`Guard::guardian`]
/// says: not if `cleanup` was not registered (said once on stderr too).
///
/// ```no_run
/// # use std::path::Path;
/// #[finally::guardian_cleanup]
/// fn remove(dir: &Path, _: &finally::Exit) -> std::io::Result<()> {
///     std::fs::remove_dir_all(dir)
/// }
///
/// // In a `main` under `#[with_cleanup(..., guardian)]`:
/// let dir = std::env::temp_dir().join(format!("scratch-{}", finally::program_id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let cleanup = finally::guard_with(dir, remove);
/// if let Err(error) = cleanup.guardian() {
///     eprintln!("kill -9 would leave the scratch directory behind: {error}");
/// }
/// ```
#[track_caller]
#[inline]
pub fn guard_with<T, B, F, O>(state: T, cleanup: F) -> Guard
where
    T: State + Borrow<B>,
    B: ?Sized + StateRef<Owned = T>,
    F: Fn(&B, &Exit) -> O + Copy + Send + 'static,
    O: Outcome + 'static,
{
    finally_runtime::guard_with(state, cleanup)
}
