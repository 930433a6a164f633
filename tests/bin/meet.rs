//! Child processes for `tests/meet.rs`, where two features meet: `meet NAME [ARG]`.
//!
//! Each scenario prints `ready` on stdout once it is where the test wants to reach it; its
//! cleanups write to the marker file (see `tests/common/child.rs`). The process-wide options
//! are given to `finally::install` first thing, so that one program can try several.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Mutex, PoisonError};
use std::time::Duration;
use std::{env, process, thread};

use finally::{guard, with_cleanup, Exit, Guard, Options};

#[path = "../common/child.rs"]
mod child;

use child::{main_cleanup, mark, ready, record, wait_forever};

fn stuck_cleanup(exit: &Exit) {
    record("stuck", exit);
}

fn quick_cleanup(exit: &Exit) {
    record("quick", exit);
}

fn inner_cleanup(exit: &Exit) {
    record("inner", exit);
}

/// Never returns, however long its grace period.
#[with_cleanup(stuck_cleanup, grace = "10s")]
fn stuck_with_a_long_grace() {
    ready();
    wait_forever();
}

#[with_cleanup(stuck_cleanup, grace = "1s")]
fn stuck_with_a_short_grace() {
    ready();
    wait_forever();
}

/// Returns at once: its grace period is no one's once it has.
#[with_cleanup(quick_cleanup, grace = "10s")]
fn returns_with_a_long_grace() {}

#[with_cleanup(main_cleanup)]
fn guarded_main(body: impl FnOnce()) {
    body();
}

#[with_cleanup(main_cleanup, grace = "5s")]
fn graceful_main(body: impl FnOnce()) {
    body();
}

/// No grace period of its own: returns once it learns of the stop, a guard inside.
#[with_cleanup(inner_cleanup)]
fn returns_on_stop_with_a_guard() {
    let _guard = recording("guard");
    ready();
    while finally::wait_for_stop(Duration::from_secs(60)).is_none() {}
}

fn recording(name: &'static str) -> Guard {
    guard(move |exit| record(name, exit))
}

/// The lock that a thread holds across guarded calls or guard drops, and that another
/// thread's cleanup needs.
static LOCK: Mutex<()> = Mutex::new(());
static LOOPS: AtomicUsize = AtomicUsize::new(0);

fn lock() -> std::sync::MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Needs the lock.
fn locking_cleanup(exit: &Exit) {
    mark("start locking");
    let _lock = lock();
    mark(&format!("end locking {exit:?}"));
}

#[with_cleanup(locking_cleanup)]
fn waits_with_a_locking_cleanup(entered: mpsc::Sender<()>) {
    entered.send(()).unwrap();
    wait_forever();
}

/// Starts a thread waiting in a guarded function whose cleanup needs the lock.
fn start_locking_waiter() {
    let (entered, waiter_in) = mpsc::channel();
    thread::Builder::new()
        .name("waiter".into())
        .spawn(move || waits_with_a_locking_cleanup(entered))
        .unwrap();
    waiter_in.recv().unwrap();
}

fn tiny_cleanup() {}

#[with_cleanup(tiny_cleanup)]
fn guarded_tiny() {
    LOOPS.fetch_add(1, SeqCst);
}

fn looper_cleanup(exit: &Exit) {
    record("looper", exit);
}

/// Loops `lock; guarded_tiny(); unlock` inside a guarded function: its inner calls are entered
/// while the shutdown may have taken this one over.
#[with_cleanup(looper_cleanup)]
fn looper() {
    loop {
        let _lock = lock();
        guarded_tiny();
    }
}

fn graceful_cleanup(exit: &Exit) {
    record("graceful", exit);
}

/// Returns once it learns of the stop, within its grace period.
#[with_cleanup(graceful_cleanup, grace = "5s")]
fn returns_on_stop_within_its_grace(entered: mpsc::Sender<()>) {
    entered.send(()).unwrap();
    while finally::wait_for_stop(Duration::from_secs(60)).is_none() {}
}

fn maker_cleanup(exit: &Exit) {
    mark("start maker");
    let _lock = lock();
    mark(&format!("end maker {exit:?}"));
}

/// Makes guards and hands them to another thread, which drops them holding the lock that this
/// function's cleanup needs.
#[with_cleanup(maker_cleanup)]
fn makes_guards_for_another_thread(to: mpsc::SyncSender<Guard>) {
    loop {
        let made = guard(|_| {
            LOOPS.fetch_add(1, SeqCst);
        });
        if to.send(made).is_err() {
            return;
        }
    }
}

/// Starts `program ARGS` with `posix_spawnp` and default attributes, which pass on the calling
/// thread's signal mask as it is (a shell started by `system()` would reset it), waits for it,
/// and records each line it prints as `WHEN: LINE`.
fn spawn(when: &str, program: &str, args: &[&str]) {
    let output = env::temp_dir().join(format!("finally-meet-{}-{when}", process::id()));
    let file = std::fs::File::create(&output).unwrap();
    let words: Vec<std::ffi::CString> = std::iter::once(program)
        .chain(args.iter().copied())
        .map(|word| std::ffi::CString::new(word).unwrap())
        .collect();
    let mut argv: Vec<*mut libc::c_char> = words.iter().map(|w| w.as_ptr().cast_mut()).collect();
    argv.push(std::ptr::null_mut());
    let mut pid = 0;
    // SAFETY: valid arguments; the actions and the attributes are made and freed here.
    unsafe {
        let mut actions = std::mem::zeroed();
        libc::posix_spawn_file_actions_init(&mut actions);
        use std::os::fd::AsRawFd;
        libc::posix_spawn_file_actions_adddup2(&mut actions, file.as_raw_fd(), 1);
        let spawned = libc::posix_spawnp(
            &mut pid,
            argv[0],
            &actions,
            std::ptr::null(),
            argv.as_ptr(),
            std::ptr::null(),
        );
        libc::posix_spawn_file_actions_destroy(&mut actions);
        assert_eq!(spawned, 0, "posix_spawnp {program}");
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        mark(&format!("{when}: {program} status {status}"));
    }
    let text = std::fs::read_to_string(&output).unwrap_or_default();
    let _ = std::fs::remove_file(&output);
    for printed in text.lines() {
        mark(&format!("{when}: {printed}"));
    }
}

/// What a program started now gets: its blocked and ignored signals; and a pipeline whose
/// writer ends by SIGPIPE (where the program had SIGPIPE at its default action).
fn start_children(when: &str) {
    spawn(when, "grep", &["-E", "^Sig(Blk|Ign)", "/proc/self/status"]);
    spawn(when, "sh", &["-c", "yes | head -n 1"]);
}

/// Writes to a pipe whose reader is gone: what the write says, if SIGPIPE did not end the
/// process.
fn write_to_a_closed_pipe() -> String {
    let mut ends = [0; 2];
    // SAFETY: `pipe` fills the two descriptors, which are closed here.
    unsafe {
        assert_eq!(libc::pipe(ends.as_mut_ptr()), 0);
        libc::close(ends[0]);
        let written = libc::write(ends[1], b"x".as_ptr().cast(), 1);
        let error = std::io::Error::last_os_error();
        libc::close(ends[1]);
        match written {
            -1 => format!("{:?}", error.kind()),
            _ => "written".to_owned(),
        }
    }
}

fn starts_a_child(exit: &Exit) {
    mark("start child-starting");
    mark(&format!("closed pipe: {}", write_to_a_closed_pipe()));
    start_children("cleanup");
    mark(&format!("end child-starting {exit:?}"));
}

#[with_cleanup(starts_a_child)]
fn waits_then_starts_a_child(then: &str) {
    start_children("before");
    ready();
    if then == "exit" {
        process::exit(4);
    }
    wait_forever();
}

/// The process that started the scenario: a forked child is another.
static PARENT: AtomicUsize = AtomicUsize::new(0);

/// `parent` or `child`, for the cleanups of a scenario that forks.
fn role() -> &'static str {
    if process::id() as usize == PARENT.load(SeqCst) {
        "parent"
    } else {
        "child"
    }
}

/// Forks: the child says `child-ready PID` and runs `child`; the parent waits for it, says how
/// it ended, and returns.
fn fork(child: impl FnOnce()) {
    // SAFETY: the child runs only this program's code, which takes no lock that another
    // thread of the parent could hold.
    match unsafe { libc::fork() } {
        0 => {
            println!("child-ready {}", process::id());
            child();
            process::exit(0);
        }
        pid => {
            let mut status = 0;
            // SAFETY: our own child, and a valid out-parameter.
            assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
            if libc::WIFSIGNALED(status) {
                println!("child ended by signal {}", libc::WTERMSIG(status));
            } else {
                println!("child ended with {}", libc::WEXITSTATUS(status));
            }
        }
    }
}

thread_local! {
    /// A guard kept for the life of the main thread.
    static KEPT: RefCell<Option<Guard>> = const { RefCell::new(None) };
}

/// A guard kept for the life of the process.
static KEPT_FOR_GOOD: Mutex<Option<Guard>> = Mutex::new(None);

fn main() {
    PARENT.store(process::id() as usize, SeqCst);
    let mut args = env::args().skip(1);
    let scenario = args.next().expect("scenario name");
    let arg = args.next().unwrap_or_default();
    match scenario.as_str() {
        // A grace period longer than the timeout.
        "grace-over-timeout" => {
            finally::install(Options::new().timeout(Duration::from_secs(1))).unwrap();
            guarded_main(stuck_with_a_long_grace);
        }
        // The grace of the function pending at the signal, not of one that returned before.
        "whose-grace" => guarded_main(|| {
            returns_with_a_long_grace();
            stuck_with_a_short_grace();
        }),
        // During main's grace, a function without one returns on the stop.
        "returns-during-grace" => graceful_main(returns_on_stop_with_a_guard),
        // A thread loops `lock; guarded_tiny(); unlock`, while another's pending cleanup needs
        // the lock.
        "lock-loop" => guarded_main(|| {
            start_locking_waiter();
            thread::spawn(|| loop {
                let _lock = lock();
                guarded_tiny();
            });
            while LOOPS.load(SeqCst) < 1000 {
                thread::yield_now();
            }
            ready();
            wait_forever();
        }),
        // The same in a guarded function: its inner calls are entered while the shutdown may
        // have taken it over.
        "lock-nested" => guarded_main(|| {
            start_locking_waiter();
            thread::spawn(looper);
            while LOOPS.load(SeqCst) < 1000 {
                thread::yield_now();
            }
            ready();
            wait_forever();
        }),
        // A thread holds the lock around a function with a grace period, which returns on the
        // stop, while another's pending cleanup needs the lock.
        "lock-around-grace" => guarded_main(|| {
            start_locking_waiter();
            let (entered, graceful_in) = mpsc::channel();
            thread::spawn(move || {
                let _lock = lock();
                returns_on_stop_within_its_grace(entered);
            });
            graceful_in.recv().unwrap();
            ready();
            wait_forever();
        }),
        // A thread drops guards made by another, holding the lock their maker's cleanup needs.
        "lock-guard-drop" => guarded_main(|| {
            let (to, from) = mpsc::sync_channel(16);
            thread::spawn(move || makes_guards_for_another_thread(to));
            thread::spawn(move || {
                for made in from {
                    let _lock = lock();
                    drop(made);
                }
            });
            while LOOPS.load(SeqCst) < 1000 {
                thread::yield_now();
            }
            ready();
            wait_forever();
        }),
        // A cleanup starts a program, on a signal (`wait`) or on `exit`.
        "cleanup-starts-a-child" => {
            if env::var_os("FINALLY_TEST_SIGPIPE_DEFAULT").is_some() {
                // SAFETY: setting a signal's action to its default, before any thread starts.
                unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
            }
            waits_then_starts_a_child(&arg);
        }
        // A guard made in a child forked on a thread with nothing pending.
        "fork-then-guard" => {
            guarded_main(|| {});
            fork(|| {
                let _guard = guard(|exit| record(&format!("guard@{}", role()), exit));
                println!("child-guarded");
                wait_forever();
            });
            ready();
            wait_forever();
        }
        // Guards made on the forking thread before the fork: one held by another thread, one by
        // the forking thread, which the child drops.
        "fork-with-guards" => {
            let held = guard(|exit| record(&format!("held@{}", role()), exit));
            let mine = guard(|exit| record(&format!("mine@{}", role()), exit));
            let (drop_it, when) = mpsc::channel::<()>();
            let holder = thread::spawn(move || {
                when.recv().unwrap();
                drop(held);
            });
            let mine = std::cell::Cell::new(Some(mine));
            fork(|| {
                drop(mine.take());
                process::exit(0)
            });
            drop(mine);
            drop_it.send(()).unwrap();
            holder.join().unwrap();
            ready();
            wait_forever();
        }
        // A `timeout` where the deadline thread cannot be made: given to `install`, which
        // returns the error, or (`implicit`) set as the attribute on `main` sets it, and
        // installed by the first guarded call, which reports it.
        "timeout-without-threads" => {
            let options = Options::new().timeout(Duration::from_secs(2));
            if arg == "implicit" {
                finally::__private::configure(options);
            } else if let Err(error) = finally::install(options) {
                println!("install: {error}");
            }
            guarded_main(|| {
                ready();
                wait_forever();
            });
        }
        // A guard in the main thread's thread-local storage, and one in a static, while the
        // process exits.
        "kept-guards" => {
            KEPT.with(|kept| *kept.borrow_mut() = Some(recording("thread-local")));
            *KEPT_FOR_GOOD.lock().unwrap() = Some(recording("static"));
            process::exit(6);
        }
        other => panic!("unknown scenario {other}"),
    }
}
