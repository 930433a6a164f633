//! `guard`, `guard_value`, `guard_with` and `guard_durable`, defined here rather than re-exported from the runtime: a call that
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

/// Makes a guard that holds `value`, as `scopeguard::guard(value, cleanup)` does: the code
/// uses the value through the guard while it is armed (`*guard`, `guard.method()`), and
/// `cleanup(&value, exit)` runs exactly once, when and as [`guard`]'s would; the value is
/// dropped after it. [`Guard::into_inner`] disarms it and gives the value back.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("scratch-{}", finally::program_id()));
/// std::fs::create_dir_all(&dir)?;
/// let dir = finally::guard_value(dir, |dir, _| std::fs::remove_dir_all(dir));
/// std::fs::write(dir.join("rows.csv"), "1,2,3\n")?;
/// // ... Ctrl-C, `kill`, `exit`, a panic or the end of the scope remove it; or keep it:
/// let kept = finally::Guard::into_inner(dir).expect("no shutdown under way");
/// # std::fs::remove_dir_all(kept)?;
/// # Ok(()) }
/// ```
///
/// On a signal, the cleanup may run on the runtime's thread while the thread holding the guard
/// still runs, and may be reading the value too: so the value is `Sync`, and both only read it
/// (`Deref`, as through an `Arc`; there is no `DerefMut`). What must change while the guard is
/// armed goes in a `Mutex` or an atomic inside the value, which the cleanup locks as the code
/// does (a cleanup waits for a lock the code holds, as anywhere: keep such sections short).
#[track_caller]
#[inline]
pub fn guard_value<T, F, O>(value: T, cleanup: F) -> Guard<T>
where
    T: Send + Sync + 'static,
    F: FnOnce(&T, &Exit) -> O + Send + 'static,
    O: Outcome,
{
    finally_runtime::guard_value(value, cleanup)
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
pub fn guard_with<T, B, F, O>(state: T, cleanup: F) -> Guard<T>
where
    T: State + Borrow<B>,
    B: ?Sized + StateRef<Owned = T>,
    F: Fn(&B, &Exit) -> O + Copy + Send + 'static,
    O: Outcome + 'static,
{
    finally_runtime::guard_with(state, cleanup)
}

/// Makes a guard whose cleanup survives the whole process dying: as [`guard_with`], and a record
/// of it is kept on disk (see [`keep_records`](crate::keep_records)) from before this returns
/// until its cleanup has run, in the program (return, panic, a signal, `exit`) or it is
/// dismissed. If the process dies without running it, and without a guardian that could (a
/// container killed whole, the OOM killer taking the cgroup, a reboot, a power cut), a later
/// start of the program that calls [`recover`](crate::recover) runs it, told
/// [`Exit::Recovered`].
///
/// `cleanup` is registered with [`#[guardian_cleanup]`](macro@crate::guardian_cleanup): the
/// record names it by its path (`crate::module::function`), which stays the same across builds
/// of the program. Whether the record is on disk, [`Guard::durable`] says; a record that cannot
/// be written (a directory that cannot be written, a full disk) is said once on stderr too, and
/// the guard still runs its cleanup in the program.
///
/// ```no_run
/// # use std::path::Path;
/// #[finally::guardian_cleanup]
/// fn remove(dir: &Path, exit: &finally::Exit) -> std::io::Result<()> {
///     eprintln!("removing {}: {exit}", dir.display());
///     std::fs::remove_dir_all(dir)
/// }
///
/// finally::recover().expect("the records can be read"); // what earlier runs left
/// let dir = std::env::temp_dir().join(format!("scratch-{}", finally::program_id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let scratch = finally::guard_durable(dir, remove);
/// if let Err(error) = scratch.durable() {
///     eprintln!("a hard kill would leave the scratch directory behind: {error}");
/// }
/// ```
///
/// The guardian does not run a durable guard: its record does not name the guardian, which
/// could not remove it once the cleanup ran. Make both kinds where both matter.
#[track_caller]
#[inline]
pub fn guard_durable<T, B, F, O>(state: T, cleanup: F) -> Guard<T>
where
    T: State + Borrow<B>,
    B: ?Sized + StateRef<Owned = T>,
    F: Fn(&B, &Exit) -> O + Copy + Send + 'static,
    O: Outcome + 'static,
{
    finally_runtime::guard_durable(state, cleanup)
}
