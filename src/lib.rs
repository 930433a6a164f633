//! Cleanup that runs however a function or a program ends.
//!
//! A program makes a scratch directory, puts temporary rows in a database, or must tell someone
//! when it ends. Rust's `Drop` guards run on return and on panic only: Ctrl-C, `kill` and
//! [`std::process::exit`] end the process without them. [`#[with_cleanup]`](with_cleanup) runs
//! a cleanup function exactly once however the function ends, and signals cannot cut it short.
//!
//! ```
//! use std::path::PathBuf;
//!
//! use finally::{with_cleanup, Exit};
//!
//! /// Named by the program's pid: `finally::program_id()` is the same in the program and in its
//! /// guardian, if `main` has one (where `std::process::id()` would be the guardian's own).
//! fn scratch() -> PathBuf {
//!     std::env::temp_dir().join(format!("scratch-{}", finally::program_id()))
//! }
//!
//! /// Runs once, whether `main` returns, panics, calls `process::exit` or gets Ctrl-C.
//! fn remove_scratch(exit: &Exit) {
//!     let _ = std::fs::remove_dir_all(scratch());
//!     eprintln!("scratch removed: main {exit}");
//! }
//!
//! #[with_cleanup(remove_scratch)]
//! fn main() -> std::io::Result<()> {
//!     std::fs::create_dir_all(scratch())?;
//!     std::fs::write(scratch().join("rows.csv"), "1,2,3\n")?;
//!     // ... work that may take hours, fail, or be stopped ...
//!     Ok(())
//! }
//! ```
//!
//! # What is covered
//!
//! | event while the function runs | cleanup | afterwards |
//! |---|---|---|
//! | it returns (`Ok` or `Err`) | once, [`Exit::Returned`], on the calling thread | the value is returned unchanged |
//! | it panics | once, [`Exit::Panicked`] with the message | the panic goes on; exit code 101 from `main` |
//! | SIGINT (Ctrl-C), SIGTERM (`kill`), SIGHUP, SIGQUIT | once, [`Exit::Signal`] naming it | the process ends **by that signal**, as a shell expects |
//! | [`std::process::exit(n)`](std::process::exit) | once, [`Exit::Exited`] | the exit code `n` is kept |
//! | more signals while a cleanup runs | not cut short: they are held back | the first signal decides how the process ends |
//! | an `async fn`'s future is dropped before it finished | once, [`Exit::Cancelled`] | — |
//! | SIGKILL, a segfault, `abort`, a double panic, the OOM killer | with `guardian` (below): once, [`Exit::Died`], in the guardian process; without: **not run** | the process's status is its own |
//!
//! - **Exactly once.** A signal racing the return, two signals at once, a signal while another
//!   cleanup runs: each pending cleanup still runs exactly once.
//! - **All pending cleanups.** On a signal or `exit`, every pending cleanup of every thread runs,
//!   one at a time: each thread's innermost first, threads that started using `finally` last
//!   first (so `main`'s, which encloses the others, runs last). A cleanup that panics is
//!   reported on stderr and the others still run.
//! - **A signal during a normal cleanup** waits for it to finish, then takes effect: the
//!   enclosing cleanups run, the process ends by the signal.
//! - **Nothing pending, nothing changed.** A signal that arrives when no cleanup is pending has
//!   its default effect. A signal the process was started with ignored (as `nohup` ignores
//!   SIGHUP) stays ignored. Nothing is installed before the first guarded call.
//! - **The application's handlers come first.** A signal that the application (or any other
//!   code) handles too, with tokio, signal-hook or ctrlc, installed before or after `finally`,
//!   is left to it: see [who owns the signals](#who-owns-the-signals-libraries-and-applications).
//! - **Ending by the signal.** After the cleanups the signal's default action is restored and
//!   the signal re-raised, so the parent sees the process killed by it (`WIFSIGNALED`), not a
//!   made-up exit code. Where that does not end the process (PID 1 in a container ignores
//!   signals left at their default action) it exits with `128 + the signal's number`.
//!
//! # Writing a cleanup
//!
//! A cleanup is a path to a `fn()` or a `fn(&Exit)`, or a closure that captures nothing. It
//! returns `()`, or `Result<(), E>` with `E: Display` (a removal can fail): an error is reported
//! in one line on stderr, and the other cleanups still run. One that sets the exit code never
//! returns: `|_| std::process::exit(4)`, a `fn(&Exit) -> !`. The error's line names the cleanup as the
//! attribute wrote it and the function it guards, or for a guard where it was made:
//!
//! ```text
//! finally: remove_scratch of main failed: Permission denied (os error 13)
//! finally: Self::close of transfer failed: connection reset
//! finally: the cleanup closure of main failed: ...
//! finally: the guard made at src/main.rs:12 failed: ...
//! ```
//!
//! In the guardian, after a crash, the lines say `main's cleanup failed: ...` and
//! `a guard's cleanup in the guardian failed: ...`.
//!
//! The [`Exit`] tells why the function ended: match on it, or ask
//! [`ended_well`](Exit::ended_well), [`signal`](Exit::signal) (compared with
//! [`Signal::SIGTERM`] or with `libc::SIGTERM`) and [`code`](Exit::code).
//!
//! `ended_well()` says how the function ended, not what it returned: a function that returns
//! `Err` returned, so its cleanup is told [`Exit::Returned`], and `ended_well()` is `true`. So it
//! is for a `main` that returns `Err`, although the process then exits with 1: the cleanup runs
//! as `main` returns, before std prints the error and picks the exit code, and it never sees the
//! value. To know whether the work succeeded, make a guard that success dismisses: its cleanup
//! runs only if the function left early (by `?`, a panic, a signal, `exit`). Or end a failed
//! `main` with [`std::process::exit(1)`](std::process::exit): the cleanup is then told
//! [`Exit::Exited`] (with code 1, where the C library tells it), and `ended_well()` is `false`.
//!
//! ```
//! use finally::{with_cleanup, Exit};
//!
//! fn report(exit: &Exit) {
//!     eprintln!("import: {exit}"); // "import: returned", for the `Err` below too
//! }
//!
//! #[with_cleanup(report)]
//! fn import(rows: &[&str]) -> Result<usize, String> {
//!     let unfinished = finally::guard(|exit: &Exit| eprintln!("import did not finish: {exit}"));
//!     let first = rows.first().ok_or("no rows")?;
//!     // ... the work ...
//!     unfinished.dismiss(); // done: the guard's cleanup never runs
//!     Ok(first.len())
//! }
//!
//! assert_eq!(import(&["a,b"]), Ok(3));
//! assert!(import(&[]).is_err()); // "import did not finish: returned", then "import: returned"
//! ```
//!
//! On a signal, the cleanups run on the runtime's own thread (`finally-signals`) **while the
//! other threads go on running**: they are not stopped. So a cleanup cannot borrow the
//! function's state, and should be idempotent for external state (remove a directory "if it is
//! there", delete rows "where run id = ours"). On `exit`, they run on the thread calling `exit`.
//!
//! No code of yours runs inside a signal handler: `finally`'s handler only wakes the
//! runtime's thread, so a cleanup may allocate, lock, print and do I/O.
//!
//! # Guards: cleanups that carry their own state
//!
//! What a cleanup needs that is only known at run time (the scratch directory `tempfile` just
//! named, a run id, a connection string, `self`'s data) goes into a [`guard`](fn@guard): a value whose
//! cleanup runs exactly once, when it is dropped (at the end of its scope, or while a panic
//! unwinds), on a handled signal, or on `exit`, with the same guarantees as the attribute's.
//!
//! ```
//! # fn main() -> std::io::Result<()> {
//! let dir = std::env::temp_dir().join(format!("scratch-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let cleanup = finally::guard(move |exit: &finally::Exit| {
//!     eprintln!("removing the scratch directory: {exit}");
//!     std::fs::remove_dir_all(&dir)
//! });
//! // ... work: the end of this scope, a panic, Ctrl-C, `kill` or `exit` remove `dir` ...
//! # drop(cleanup);
//! # Ok(()) }
//! ```
//!
//! - **Any function, any thread**, inside or outside a guarded function; a guard may be moved to
//!   another thread. On a signal or `exit`, pending guards and guarded functions run newest
//!   first on each thread: a guard made inside a guarded function runs before that function's
//!   cleanup, one made before the call after it.
//! - [`Guard::dismiss`] disarms it: the work succeeded and there is nothing to undo.
//! - [`guard_value`] makes one that holds the value it cleans up, as `scopeguard::guard(value,
//!   f)` does: the code reads it through the guard (`Deref`; shared with the cleanup, which may
//!   read it on the runtime's thread at a signal, so no `DerefMut`: put what changes in a
//!   `Mutex`), and [`Guard::into_inner`] disarms it and gives the value back (`None` if a
//!   signal or `exit` took the guard over already).
//! - To test a cleanup as `finally` calls it, build what it is told: [`Exit::panicked`],
//!   [`Exit::exited`], [`Exit::died`], [`Exit::Signal`] with a [`Signal`] (also from a number:
//!   `Signal::try_from(15)`).
//! - Making one allocates once; the attribute's `fn` cleanups never allocate.
//! - `mem::forget` of a guard leaves its cleanup pending until the process ends: it then runs on
//!   a handled signal or on `exit`, and never after a plain return from `main`.
//! - **Methods**: a method's cleanup cannot take `self` (it may run once the call is over, on
//!   another thread). Make a guard in the method from what the cleanup needs:
//!
//! ```
//! struct Connection {
//!     url: String,
//! }
//!
//! impl Connection {
//!     fn transfer(&self) {
//!         let url = self.url.clone();
//!         let _rollback = finally::guard(move |exit: &finally::Exit| {
//!             if !exit.ended_well() {
//!                 eprintln!("rolling back on {url}: {exit}");
//!             }
//!         });
//!         // ... work ...
//!     }
//! }
//! # Connection { url: "db".into() }.transfer();
//! ```
//!
//! The attribute's closures capture nothing for the same reason, and say so at compile time:
//! capturing a function's argument would leave the cleanup without it on a signal, when the
//! frame may be gone. [`guard_with`] makes a guard whose state also reaches the guardian (below).
//!
//! # What threads do while the cleanups run
//!
//! The runtime stops no thread to run the cleanups. It only keeps code that must not run from
//! running, and never makes a thread wait for good where it may hold what a cleanup needs.
//!
//! - A thread whose guarded function ends while the cleanups run (its body returned, or its
//!   cleanup was taken over) waits there while the runtime is busy with that thread's own
//!   cleanups, then goes on while the runtime runs *other* threads' cleanups: it may hold a lock
//!   across the call that one of them needs. A guarded function entered during the shutdown by a
//!   thread with nothing else pending runs, and its cleanup is pending as usual.
//! - Code that must not run is *stopped*: a guarded function entered inside one that the
//!   shutdown took over (whose cleanup has run), or a guard made there; once the last pass over
//!   the pending cleanups has begun, a guarded function's entry or exit; and the code after a
//!   function with a grace period that returned on the stop. The thread unwinds from there, as a
//!   panic that no hook reports, so that every lock guard and destructor on the way runs; each
//!   guarded function it leaves runs its cleanup (unless the shutdown did), told why the process
//!   is ending. `main` then waits for the end of the process; another thread ends (its
//!   `JoinHandle::join` returns `Err`), unless the program catches the unwinding. So with one
//!   thread of guarded calls, the code after a function that the shutdown met never runs; with
//!   several, it may run while the others' cleanups finish.
//! - A guard dropped by another thread than the one that made it never waits for the runtime:
//!   that thread may hold a lock that one of the maker's cleanups needs. If the shutdown took the
//!   guard over, the drop returns while its cleanup runs on the runtime's thread.
//! - Not solved for you: a body that holds, for longer, a lock that its *own* cleanup needs. The
//!   cleanup runs on the runtime's thread while the body still holds the lock, and waits for it.
//!   Give the function a grace period and let it return on [`stop_requested`] (below): it then
//!   releases the lock, and its cleanup runs on its own thread.
//! - Built with `panic = "abort"`, nothing unwinds: a thread that must not go on waits for the
//!   end of the process where it is, and a lock it holds then must not be one a cleanup needs.
//!
//! # `exit` from a cleanup, `fork`, a terminal that goes away
//!
//! - A cleanup that calls [`std::process::exit(n)`](std::process::exit) (setting the exit code
//!   from `main`'s cleanup is common) ends the process with `n`, and every other pending cleanup
//!   still runs once, on a signal too (the process then ends with `n`, not by the signal). If the
//!   process was already exiting (a pending cleanup calls `exit(5)` while the program is in
//!   `exit(3)`, or after `main` returned), nothing aborts: the cleanup that called it ends there,
//!   the others still run, and the first `exit`'s code stands. (glibc tells it; where the C
//!   library does not, the code is 1.)
//! - `fork` without `exec` (daemons, pre-fork servers): the child runs only the cleanups of the
//!   thread that forked (of the functions it forked inside, and of those it enters later), never
//!   those of the parent's other threads, which it does not have. A guard belongs to the process
//!   that made it: the child's copy of a guard made before the fork never runs, dropped or not
//!   (a pre-fork server's workers do not remove the parent's scratch directory, and a guard
//!   that another thread held at the fork runs once, in the parent); the guards the child makes
//!   are its own. The child gets a signal thread of its own; a signal with nothing pending in it
//!   has its default effect. It has no guardian: the parent's stays the parent's.
//! - stderr that cannot be written (a closed terminal gives EIO, a closed pipe EPIPE, a full
//!   disk ENOSPC): `finally`'s own reports are one line each, written when stderr can take it
//!   and dropped when not; they never panic, never wait more than a moment, never raise
//!   SIGPIPE. While the cleanups run, SIGPIPE is held back, so a cleanup printing to a closed
//!   pipe gets an error instead of killing the process. A terminal that hangs up sends SIGHUP,
//!   which runs the cleanups as any handled signal does.
//!
//! # `async fn`
//!
//! On an `async fn`, the body runs as an `async move` block inside the returned future, whose
//! signature is unchanged (and which is `Send` when the body's future is). The cleanup is
//! pending from the future's first poll (a future never polled has nothing to clean up) and runs
//! exactly once when the future completes ([`Exit::Returned`]), panics while polled
//! ([`Exit::Panicked`], the panic goes on), is dropped before it finished — a time-out, a lost
//! `select!` branch, an aborted task, a runtime shut down — ([`Exit::Cancelled`]), or when a
//! signal arrives while it is pending ([`Exit::Signal`]). It works with any executor.
//!
//! The cleanup itself is a plain, synchronous `fn`: it may run on the runtime's signal thread or
//! inside the future's destructor, where nothing can be awaited. To await something at shutdown
//! (finish in-flight requests, flush a connection), await [`stop_signal`] in the body and give
//! the function a grace period, below.
//!
//! # Stopping cooperatively
//!
//! On a signal the cleanups run while the body may still be running. A body that must stop
//! first can learn about the signal, and get a little time:
//!
//! - [`stop_requested`] is `true` once a handled signal has arrived; [`wait_for_stop`] blocks
//!   until then (with a time-out); [`stop_signal`] is a future that resolves then, for any
//!   executor.
//! - `#[with_cleanup(cleanup, grace = "5s")]`: on a signal, the runtime waits for the functions
//!   with a grace period that are under way then to return on their own, each up to its own
//!   period from the signal (within three quarters of the `timeout`, if there is one). Their
//!   cleanups then run on their own thread, told [`Exit::Signal`]. When they all have returned,
//!   or their time is up, whatever is still pending runs on the runtime's thread and the process
//!   ends by the signal. More signals during the grace period do not cut it short.
//!
//! ```no_run
//! use finally::{with_cleanup, Exit};
//!
//! fn report(exit: &Exit) {
//!     eprintln!("server ended: {exit}");
//! }
//!
//! fn serve_one_request() { /* ... */ }
//!
//! #[with_cleanup(report, grace = "5s")]
//! fn main() {
//!     while !finally::stop_requested() {
//!         serve_one_request();
//!     }
//!     // Back within the grace period: `report` runs here, on the main thread.
//! }
//! ```
//!
//! Without a grace period, a signal runs the pending cleanups at once. The stop flag is still
//! set, for bodies that look. One rule says what a cleanup is told once a stop is requested: a
//! function that returns, or a guard dropped other than by a panic, ended for the signal, and is
//! told [`Exit::Signal`], grace period or not (a panic is still [`Exit::Panicked`], a dropped
//! future [`Exit::Cancelled`]). What happens after it is as above (what threads do while the
//! cleanups run).
//!
//! # The guardian: `kill -9` and crashes
//!
//! No process can clean up after `kill -9` or a segmentation fault itself. A second one can:
//! `#[with_cleanup(cleanup, guardian)]` on `fn main` starts a *guardian* process first thing in
//! `main`. It waits for the program to end and, if the program ended without completing its own
//! cleanup (SIGKILL, SIGSEGV, SIGBUS, SIGILL, SIGFPE, `abort`, a double panic, the OOM killer),
//! runs the same cleanup with [`Exit::Died`], naming the signal where the guardian can learn it
//! (a crash handler tells it; a `kill -9` is read from the program's zombie, unless its parent
//! has already reaped it). After a clean end (return, panic, a handled signal, `exit`) it exits without
//! running anything.
//!
//! ```no_run
//! use finally::{with_cleanup, Exit};
//!
//! fn remove_lock(exit: &Exit) {
//!     let _ = std::fs::remove_file("/tmp/my-tool.lock");
//!     if let Exit::Died { .. } = exit {
//!         eprintln!("my-tool died ({exit}); lock removed");
//!     }
//! }
//!
//! #[with_cleanup(remove_lock, guardian)]
//! fn main() {
//!     std::fs::write("/tmp/my-tool.lock", b"").unwrap();
//!     // ... even a `kill -9` here leaves no lock behind ...
//! }
//! ```
//!
//! - The guardian runs on Linux, whose `/proc` and pidfds it needs to watch the program. On
//!   other platforms it does not start, and says so on stderr and in [`guardian_status`]; the
//!   program runs on.
//! - The guardian is a copy of the program made with `fork` when `main` starts, while the
//!   program has a single thread (it refuses otherwise, or when `/proc` cannot tell, with a line
//!   on stderr). So its cleanup sees the program **as it was then**: its arguments, environment,
//!   working directory, files; not what the program set up later in memory (a path kept in a
//!   static, a run id). For that, make a guard with [`guard_with`]: a `fn` (the guardian, a
//!   copy of the program, has the same ones) and a value of a [`State`] type (strings, paths,
//!   integers, tuples of them; up to 64 KiB encoded), sent to the guardian when the guard is
//!   made, disarmed there when it ends. After a crash the guardian runs the armed guards, newest
//!   first, then `main`'s cleanup. [`Guard::guardian`] returns whether the state got there, and
//!   if not why: nothing is printed. The guardian's [`std::process::id`] is its own: name what
//!   the program makes by [`program_id`], which is the program's pid in both processes (the
//!   first example does, and stays right with `guardian` added).
//! - With `#[tokio::main]` (or the like), put `#[with_cleanup]` *below* it, on the plain
//!   `main` it makes: the guardian must start before the runtime's threads do.
//! - It holds no descriptor of the program's but stdin, stdout and stderr, so spawned children
//!   do not keep it waiting, and nothing it holds outlives the program for more than the time
//!   it takes to exit (or, after a crash, to clean up). It catches SIGINT, SIGTERM, SIGHUP and
//!   SIGQUIT with a handler that does nothing: Ctrl-C, sent to the whole process group, does not
//!   end it before it can act, and a program that its cleanup starts still gets them at their
//!   default action.
//! - It waits for the program's **process** to end. A program that `exec`s another one has
//!   its cleanup run once that one has ended too, told [`Exit::Died`]: the new program knows
//!   nothing of the old one's cleanup.
//! - The program's exit status is unchanged: the guardian is not its parent, nor its child.
//! - **As PID 1** (in a container without an init), the kernel would end the guardian with the
//!   program. So the process stays as a small init, `finally-init`, and the program runs on as
//!   its child: the init hands SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM and
//!   SIGWINCH on to the program, reaps orphans, runs the cleanup if the program died (told the
//!   signal, SIGKILL too), and exits with the program's exit code, or `128 +` the number of the
//!   signal that ended it, as a shell reports it.
//! - **Failures are said, never silent.** If the guardian cannot start (threads already
//!   running, a limit on processes at either `fork`, ...), one line on stderr says why and that
//!   kill -9 and crashes will not be cleaned up; the program runs on. A guardian that has ended
//!   since (killed) or does not keep up (stopped) is reported once, the first time the program
//!   sends it something; it never raises SIGPIPE, and making a guard never blocks on it. The
//!   program can ask at any time with [`guardian_status`].
//! - If the program is killed in the middle of its own cleanup, the guardian runs it again:
//!   write cleanups that can run twice. A cleanup that panics has run: the guardian does not run
//!   it again.
//!
//! Builds with `panic = "abort"` do not unwind, so no `Drop` and no `catch_unwind` run on a
//! panic; `finally` then runs the pending cleanups from the panic hook (after the previous hook
//! has printed the message), told [`Exit::Panicked`], before the abort.
//!
//! # Testing how your program ends
//!
//! The test kit, [`finally-test`](https://docs.rs/finally-test), makes each ending happen to
//! your program in a test (a return, a panic or `exit` asked on its stdin, a signal to it or to
//! its group, its terminal hung up, Ctrl-C again and again, `kill -9`, a crash) and hands back
//! how it ended, every wait bounded: `Program::bin("app").run_until_ready_then(
//! Ending::Signal(SIGTERM))?.assert_signaled(SIGTERM)`. The README's "Testing how your program
//! ends" has a complete test, run with this crate's doctests.
//!
//! # Seeing how it ended: the `tracing` feature
//!
//! With the `tracing` feature (off by default: then nothing of it is built), a shutdown (a
//! signal, `exit`, [`end_by`]) is one [`tracing`](https://docs.rs/tracing) span,
//! `finally shutdown` (`by`, `reason`, `timeout`), with an event for the grace period, for each
//! cleanup (`cleanup`: its name and where a guard was made; `exit`; `took`; `ended`:
//! `returned`, `error` or `panicked`) and for the deadline reached, naming the cleanup still
//! running. Cleanups outside a shutdown are told at `DEBUG`. The events come from a thread of
//! the runtime's own, never from a signal handler, `exit` or a thread's teardown. `cargo run
//! --example traced` shows it; the README's "Seeing how it ended" has its output.
//!
//! # Use cases
//!
//! Each is a runnable example that prints `ready ...` once set up and works until it is
//! stopped, and each is killed for real by `cargo test`.
//!
//! - **A scratch directory** (`cargo run --example tempdir`): made with `tempfile`, removed by a
//!   [`guard_with`] with [`std::fs::remove_dir_all`], which does not follow symbolic links out
//!   of it; with `grace`, so that the body stops writing into it first, and `guardian`, so that
//!   `kill -9` leaves nothing behind either.
//! - **Temporary rows in a database** (`cargo run --example database`): SQLite, with permanent
//!   rows and temporary rows tagged with the run's id. The guard's cleanup, given the database's
//!   path and the run id, opens its own connection (it may run on the signal thread, or in the
//!   guardian) and deletes exactly its run's temporary rows, in a transaction; runs at once on
//!   one database clean up only their own.
//! - **A notification** (`cargo run --example notify -- http://127.0.0.1:8080/`): a JSON POST
//!   saying how the program ended (the [`Exit`], how long it ran, host, pid), with a short
//!   time-out, sent by the guardian after a `kill -9`.
//!
//! # Compared with
//!
//! | | return | panic | Ctrl-C, `kill` | `process::exit` | `kill -9`, crash | not cut short | ends by the signal |
//! |---|---|---|---|---|---|---|---|
//! | `Drop` guard, `scopeguard`, `tempfile::TempDir` | ○ | ○ | × | × | × | — | — |
//! | `ctrlc` | × | × | ○ (your handler) | × | × | ○ | × (your choice) |
//! | `signal-hook` | × | × | building blocks | × | × | building blocks | building blocks |
//! | jj's `CleanupGuard` (0.44) | ○ | ○ | ○ (through `ctrlc`: SIGINT, SIGTERM, SIGHUP; Ctrl-C on Windows) | × | × | ○ (one handler thread) | × (`exit(1)`) |
//! | systemd `ExecStopPost=` | ○ | ○ | ○ | ○ | ○ | ○ | — (services only) |
//! | `#[with_cleanup]` | ○ | ○ | ○ | ○ | with `guardian` | ○ | ○ |
//!
//! # Advice
//!
//! - Write cleanups that can run twice: the guardian runs again a cleanup that was killed
//!   half-way.
//! - A cleanup that starts a child process should start it in a process group of its own
//!   (`std::os::unix::process::CommandExt::process_group(0)`): Ctrl-C goes to the whole group
//!   of the terminal's job, and more presses would reach the child.
//! - In a container, a program running as PID 1 is not ended by a signal left at its default
//!   action: `finally` handles SIGTERM, so `docker stop` runs the cleanups, and the process then
//!   exits with `128 + 15`. With `guardian`, PID 1 becomes the program's init (above); with an
//!   init of the container's own (`docker run --init`, tini), the guardian runs beside the
//!   program as anywhere else.
//! - A program that must not run unguarded can check [`guardian_status`] at start and stop
//!   there; one that merely cares can log its error.
//! - Under Kubernetes (SIGTERM, then SIGKILL after `terminationGracePeriodSeconds`, to the whole
//!   container, guardian included), set `timeout` a little shorter than the grace period.
//! - A program started as a background job of a non-interactive shell (`prog &` in a script)
//!   inherits SIGINT ignored, and `finally` leaves it so: Ctrl-C and `kill -INT` then do
//!   nothing, as without `finally` ([troubleshooting](#troubleshooting-a-signal-that-does-nothing)).
//!
//! # Troubleshooting: a signal that does nothing
//!
//! Ctrl-C does nothing, `kill` ends the program without its cleanups, or the cleanups never
//! run at a signal: ask `finally` which signals it handles in the process, and why not the
//! others. [`signal_handling`] lists each signal it can handle with a [`Handling`], which says
//! it in one line. Print it once `finally` is installed (after the first guarded call, or
//! [`install`]; before, every signal is "not handled yet"):
//!
//! ```
//! for (signal, handling) in finally::signal_handling() {
//!     eprintln!("{signal}: {handling}");
//! }
//! ```
//!
//! - **Ctrl-C does nothing**, and `SIGINT` is [`Handling::Ignored`]: the program was started
//!   as a background job of a script (`prog &` in `sh`, which starts it with SIGINT and SIGQUIT
//!   ignored so that a Ctrl-C meant for the script leaves the job alone), or by a parent that
//!   ignores SIGINT. `finally` leaves an ignored signal ignored, as the parent asked. Stop it
//!   with `kill PID` (SIGTERM), or run it in the foreground, or with job control (`set -m` in
//!   the script).
//! - **`kill -HUP` does nothing**, and `SIGHUP` is [`Handling::Ignored`]: `nohup` started it.
//! - **Ctrl-C or `kill` runs the application's handler, not the cleanups**: the signal is
//!   [`Handling::HandlerBefore`] or [`Handling::HandlerAfter`], someone else's handler takes it
//!   (tokio's `ctrl_c`, a signal-hook flag or iterator, ctrlc), and the cleanups run as the
//!   application winds down; let it call [`end_by`] (see [who owns the
//!   signals](#who-owns-the-signals-libraries-and-applications)).
//! - **`kill` ends the program without its cleanups**: the signal is [`Handling::NotChosen`]
//!   (the options' `signals` leave it out: add it), or [`Handling::Removed`] (some code set it
//!   back to its default action after `finally` was installed), or it is handled and nothing
//!   was pending when it came: a signal with no cleanup pending has its default effect.
//! - **No signal runs the cleanups**: [`Handling::InstallFailed`] says what could not be set up
//!   (a thread, under a limit on processes), and [`Handling::NotInstalled`] that nothing was
//!   guarded yet.
//! - On Windows the list is the console events, each handled once `finally` is installed
//!   unless the options leave it out. Windows tells neither whether a console handler added
//!   later takes an event first, nor whether the process ignores Ctrl-C (as one started with
//!   `CREATE_NEW_PROCESS_GROUP` does: Ctrl-Break still reaches it).
//!
//! # Not promised
//!
//! - Without the guardian, SIGKILL, segmentation faults and `abort` end the process with no
//!   chance to clean up. With it, a kill of the program *and* its guardian (`kill -9 -PGID` on
//!   the process group, a cgroup kill as `systemctl kill` or a container runtime does, the
//!   machine losing power) still runs nothing. Nor does SIGKILL sent to a container's PID 1
//!   when the guardian is that init (`docker kill`).
//! - A guardian that is killed runs nothing; one that is stopped (SIGSTOP) for good runs
//!   nothing, and while it is stopped the guards the program makes may not reach it
//!   ([`Guard::guardian`] says so).
//! - After an `exec`, the guardian cannot tell the new program's normal end from a crash: it
//!   runs the cleanup, told [`Exit::Died`] without a signal.
//! - As PID 1's init, the guardian hands on the signals listed above only, and it exits as soon
//!   as the program has ended and the cleanup has run, which ends every other process of the
//!   PID namespace: daemons the program left behind go with it, as with any init.
//! - A child the program forks without `exec` has no guardian: the guardian is the parent's.
//! - A cleanup running on the signal thread races the body of the function, which is still
//!   running, unless the body stops on its own within a grace period (above). In a program with
//!   several threads of guarded calls, the code after a function that the shutdown met may run
//!   while the other threads' cleanups finish.
//! - A cleanup that calls `exit` on another thread while the process is already exiting waits
//!   for ever inside std (which lets one thread exit at a time), and the shutdown waits for that
//!   cleanup: give `timeout`.
//! - Text printed with `print!` and no newline by a body stopped by a signal may stay in
//!   `stdout`'s buffer: the process ends by the signal without flushing it.
//! - A guard in the main thread's thread-local storage, at `exit`: glibc drops the main
//!   thread's thread-locals before any exit hook runs, and tells no one that the process is
//!   exiting, so such a guard is dropped as in any scope, told [`Exit::Returned`]. A guard meant
//!   to last as long as the process belongs in a `static` (or is `mem::forget`ten): `exit` then
//!   runs it, told [`Exit::Exited`].
//!
//! # Durable guards: leftovers after the whole process dies
//!
//! The guardian dies with the program when everything goes at once (a container killed whole,
//! the OOM killer taking the cgroup, a reboot, a power cut). A guard made with
//! [`guard_durable`] has a record on disk from before it is handed back until its cleanup has
//! run; a later start of the program that calls [`recover`] runs, once, what processes now gone
//! left, told [`Exit::Recovered`]. The records' directory and how durable they are (flushed to
//! the disk, or only written) are [`keep_records`]'s. Each process holds a lock on its own file,
//! which the system drops however the process ends: a living owner's records are never touched,
//! pid reuse and reboots change nothing, and of two recovering starts one runs each file. The
//! README's "Leftovers after the whole process dies" says more, and what it costs.
//!
//! # Who owns the signals: libraries and applications
//!
//! The application decides how the process reacts to a signal; a library's cleanups fit in.
//! A library uses `#[with_cleanup]` and guards as it likes, and never chooses options: it
//! cannot (only `main` and [`install`] take them).
//!
//! - **An application with no handler of its own** gets `finally`'s: SIGINT, SIGTERM, SIGHUP
//!   and SIGQUIT run the pending cleanups and end the process by the signal; with nothing
//!   pending, the signal has its default effect.
//! - **An application that handles a signal itself** (`tokio::signal::ctrl_c`, a signal-hook
//!   flag or iterator, a `ctrlc` handler), whether it registered before or after `finally` was
//!   installed: `finally` leaves that signal to it and does nothing at the signal, pending
//!   cleanups or not. The application's handler runs, as without `finally`, and the cleanups run
//!   when the application winds down: as its functions return, on `exit` (a `ctrlc` handler
//!   that calls `exit` runs them, told [`Exit::Exited`]), or when it calls [`end_by`] to run
//!   them now and end the process by the signal. An application that ends by re-raising the
//!   signal at its default action (signal-hook's `emulate_default_handler`) ends with no
//!   cleanup: call [`end_by`] instead.
//! - **An application that wants no signal handled by `finally`** says so first thing in
//!   `main`: `finally::install(Options::new().leave_signals_to_me())` (or `signals = []` on
//!   `main`). The cleanups then run on return, panic, `exit` and [`end_by`] only.
//! - **Options** ([`Options`]: which signals, `timeout`, `force_quit_after`) are the
//!   application's, process-wide: given to [`install`] first thing in `main`, or on `main`'s
//!   `#[with_cleanup]`. Once a guarded call has installed the defaults, other options are
//!   refused with an error (from `install`) or a line on stderr (from `main`'s attribute).
//! - **Two copies of `finally`** (two libraries built against semver-incompatible versions):
//!   each recognises the other's handler, so neither takes it for the application's. On a
//!   signal, every copy's pending cleanups run once, the copy installed last first, and the
//!   first one installed ends the process by the signal; with nothing pending, the signal has
//!   its default effect; an application's own handler still wins over both. The application's
//!   options are its own copy's: its `timeout` and `force_quit_after` count from the signal,
//!   whichever copy runs its cleanups first.
//!
//! How `finally` tells: its handler, installed with `sigaction`, chains to the one it replaced.
//! A handler that was there before it, or one installed over it that calls it (signal-hook's,
//! and so tokio's, do), means someone else handles the signal. A handler installed over it that
//! does not call it (ctrlc's) replaces it: the application's handler runs alone, as it chose. A
//! copy of `finally` installs its handler with SIGURG and SIGWINCH blocked while it runs: that
//! is how another copy knows it, and asks it rather than leaving the signal to it.
//!
//! ```no_run
//! use finally::{with_cleanup, Signal};
//!
//! # mod server { pub fn start() {} pub fn drain() {} }
//! #[with_cleanup(|exit| eprintln!("main: {exit}"))]
//! fn main() {
//!     // The application's own Ctrl-C handling; `finally` leaves SIGINT to it.
//!     let mut signals = signal_hook::iterator::Signals::new([libc::SIGINT]).unwrap();
//!     server::start();
//!     signals.forever().next();
//!     server::drain();
//!     // Every pending cleanup, of every thread and library, then the end by SIGINT.
//!     finally::end_by(Signal::SIGINT);
//! }
//! ```
//!
//! # Windows
//!
//! Console events take the place of signals: Ctrl-C, Ctrl-Break, the console closed, logoff,
//! shutdown (`Signal::CTRL_C` and the others on Windows; [`Signal::SIGINT`] is Ctrl-C there
//! too). An event with a cleanup pending runs every pending cleanup before the handler returns,
//! holds back more events, and ends the process with `STATUS_CONTROL_C_EXIT`, as Windows'
//! default handler does; with nothing pending, the event goes on to the next handler. Windows
//! ends the process about 5 s after its console is closed: keep `timeout` below that.
//! `std::process::exit` runs the pending cleanups through a hook on the executable's imports of
//! `ExitProcess`. The guardian is the program's executable started again, in the guardian's
//! mode. The README's "On Windows" says more, and what is tested under wine.
//!
//! # Installing early
//!
//! The signal thread and the exit hook are installed by the first guarded call or guard, with
//! the options of `main` or the defaults. Call [`install`] at start-up to choose the options,
//! and to handle a failure yourself; otherwise a failure is reported on stderr once and only
//! return, panic and exit are covered.

#![warn(missing_docs)]

/// Runs a cleanup function exactly once when the function ends: by returning, panicking,
/// [`std::process::exit`], or a handled signal (by default SIGINT, SIGTERM, SIGHUP or SIGQUIT).
///
/// ```
/// # use finally::{with_cleanup, Exit};
/// fn close(exit: &Exit) {
///     println!("done: {exit}");
/// }
///
/// #[with_cleanup(close)]
/// fn count(items: &[u32]) -> Result<u32, String> {
///     let first = items.first().ok_or("empty")?;
///     Ok(first + 1)
/// }
///
/// assert_eq!(count(&[1]), Ok(2));
/// assert!(count(&[]).is_err()); // `close` ran both times
/// ```
///
/// # Arguments
///
/// - **The cleanup** (first, required): a path to a `fn()` or a `fn(&Exit)`, such as
///   `remove_scratch` or `Self::close`, or a closure that captures nothing, such as
///   `|exit| eprintln!("{exit}")`. It returns `()`, or `Result<(), E>` with `E: Display`, whose
///   error is reported on stderr, or never returns (`|_| std::process::exit(4)`). A cleanup that needs state made at run time (the arguments,
///   `self`) is a [`guard`](fn@guard) made in the body.
/// - **`grace = "5s"`**: on a signal, wait up to this long for the function to return on its
///   own (see [Stopping cooperatively](crate#stopping-cooperatively)). A number and a unit:
///   `ms`, `s`, `m` or `h`, such as `"500ms"` or `"1.5s"`; checked at compile time.
/// - **`crate = "path"`**: where the `finally` crate is, if the dependency was renamed.
///
/// These concern the whole process, so only `fn main` takes them (or [`install`], with
/// [`Options`]):
///
/// - **`guardian`**: a second process runs the cleanup, told [`Exit::Died`], if the program
///   dies without running it (see [the guardian](crate#the-guardian-kill--9-and-crashes)).
/// - **`signals = [SIGINT, SIGTERM]`**: the signals that run the cleanups, of SIGINT, SIGTERM,
///   SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGALRM. The default is the first four; a program
///   that reloads its configuration on SIGHUP leaves it out, and SIGHUP is then left alone.
///   `signals = []` leaves every signal to the application (see
///   [who owns the signals](crate#who-owns-the-signals-libraries-and-applications)).
/// - **`timeout = "25s"`**: a deadline for the cleanups after a signal, grace periods
///   included, or after `exit`. If they have not finished by then, the process ends anyway (by
///   the signal, or with the exit code), with one line on stderr naming the cleanup still
///   running. It counts from the signal, and grace periods end within its first three quarters
///   so that the cleanups keep the last. Its thread is made at start-up, so it holds even where
///   no thread can be made later. The default is no deadline: a cleanup is never cut short. Under Kubernetes, which sends SIGTERM and then SIGKILL after
///   `terminationGracePeriodSeconds` (30 s by default), set it a little shorter than that.
/// - **`force_quit_after = 3`**: after that many more signals during the cleanups (those of
///   `exit` too), the process ends at once, by the first signal: the habit of pressing Ctrl-C
///   three times. Off by default.
///
/// ```no_run
/// # fn remove_scratch() {}
/// #[finally::with_cleanup(remove_scratch, signals = [SIGINT, SIGTERM], timeout = "25s")]
/// fn main() {
///     // SIGHUP reloads the configuration (handled elsewhere); SIGINT and SIGTERM clean up.
/// }
/// ```
///
/// # Where it works
///
/// Free functions and `fn main`, methods (`&self`, `&mut self`, `self`), generic functions with
/// `where` clauses, `impl Trait` returns, `unsafe fn`, functions returning `Result` that use `?`
/// and early `return`, and `async fn` (see [`async fn`](crate#async-fn)). The signature is kept
/// as it is; the body runs inside a closure, or an `async move` block, so `?` and `return` stay
/// local.
///
/// Refused, with a compile error that says why: items that are not functions (an `impl` block, a
/// trait, a module, a type: the error says where the attribute goes), `const fn`, a cleanup that
/// is not a `fn()` or `fn(&Exit)` ([`Cleanup`]), one that returns something else than an
/// [`Outcome`] (a value, a `Result` whose error is not `Display`) or is `async`, a closure that
/// captures, in a macro's arguments and format strings too (the error points to [`guard`](fn@guard)), a
/// bad duration or signal, the options of the whole process elsewhere than on `fn main` (or on an
/// `async fn main`: put `#[with_cleanup]` below `#[tokio::main]`), unknown or repeated options.
///
/// # Panics
///
/// The body's panic goes on after the cleanup. A cleanup that panics after a normal return
/// panics the caller; after a panicking body, the body's panic goes on.
#[doc(inline)]
pub use finally_macros::with_cleanup;

/// Registers a function as a cleanup the guardian may run: [`guard_with`] takes only these.
///
/// The guardian runs a guard's cleanup after a `kill -9` or a crash, in another process, with
/// what the program sent it: the guard's state and which cleanup it has. It never calls an
/// address it was sent, only a function registered here, in the executable itself (a static
/// beside the function, collected before `main`): whoever writes to its channel can name only
/// these, with a state they decode.
///
/// ```no_run
/// use std::path::Path;
///
/// use finally::{guardian_cleanup, with_cleanup, Exit};
///
/// #[guardian_cleanup]
/// fn remove(dir: &Path, exit: &Exit) -> std::io::Result<()> {
///     eprintln!("removing {}: {exit}", dir.display());
///     std::fs::remove_dir_all(dir)
/// }
///
/// # fn report(_: &Exit) {}
/// #[with_cleanup(report, guardian)]
/// fn main() -> std::io::Result<()> {
///     let dir = std::env::temp_dir().join(format!("scratch-{}", finally::program_id()));
///     std::fs::create_dir_all(&dir)?;
///     let _cleanup = finally::guard_with(dir, remove);
///     // ... a kill -9 here: the guardian removes `dir` ...
///     Ok(())
/// }
/// ```
///
/// A free function, not generic nor `async`, of the form `fn(&S, &Exit) -> O`: `S` a [`State`]
/// or what one borrows as ([`StateRef`]: `str`, `Path`, `OsStr`, `[u8]`), `O` a `()` or a
/// `Result` as any cleanup returns. The function stays as it is, to be called as before. Its one
/// option is `crate = "path"`, where the `finally` crate is if the dependency was renamed.
///
/// A guard made with a function that is not registered is still a guard, but the guardian does
/// not have it: [`Guard::guardian`] says so, as does one line on stderr.
#[doc(inline)]
pub use finally_runtime::guardian_cleanup;
pub use finally_runtime::{
    end_by, guardian_status, install, keep_records, program_id, recover, signal_handling,
    stop_requested, stop_signal, wait_for_stop, Cleanup, Durability, Error, Exit, Guard, Handling,
    Options, Outcome, Signal, State, StateRef, StopSignal,
};
pub use guard::{guard, guard_durable, guard_value, guard_with};

mod guard;

/// What the code generated by `#[with_cleanup]` calls. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use finally_runtime::__private::*;
}

/// The README's examples, run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
