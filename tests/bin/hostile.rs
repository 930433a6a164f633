//! Child processes for the hostile endings of `tests/hostile.rs`: `hostile NAME [ARG]`.
//!
//! Each scenario prints `ready` on stdout once it is where the test wants to reach it; its
//! cleanups write to the marker file (see `tests/common/child.rs`). With
//! `FINALLY_TEST_SIGPIPE_DEFAULT` set, the program first sets SIGPIPE back to its default
//! action, as many programs do.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::{env, process, thread};

use finally::{with_cleanup, Exit};

#[path = "../common/child.rs"]
mod child;

use child::{main_cleanup, mark, ready, record, wait_forever};

fn outer_cleanup(exit: &Exit) {
    record("outer", exit);
}

fn worker_cleanup(exit: &Exit) {
    record("worker", exit);
}

/// A cleanup that panics: the runtime reports it on stderr.
fn panicking_cleanup(exit: &Exit) {
    mark(&format!("start panicking {exit:?}"));
    panic!("cleanup failed on purpose");
}

#[with_cleanup(panicking_cleanup)]
fn panicking_inner() {
    ready();
    wait_forever();
}

/// Inner panics, outer must still run: the report between them goes to a broken stderr.
#[with_cleanup(outer_cleanup)]
fn panicking_outer() {
    panicking_inner();
}

#[with_cleanup(worker_cleanup)]
fn worker(entered: mpsc::Sender<()>) {
    entered.send(()).unwrap();
    wait_forever();
}

/// Starts a thread that waits in `worker`, a guarded function, and returns once it is in.
fn start_worker(worker: fn(mpsc::Sender<()>)) {
    let (entered, worker_in) = mpsc::channel();
    thread::Builder::new()
        .name("worker".into())
        .spawn(move || worker(entered))
        .unwrap();
    worker_in.recv().unwrap();
}

/// Ends the process with 7 from a cleanup: main's cleanup setting the exit code.
fn exits_7(exit: &Exit) {
    mark(&format!("start exits {exit:?}"));
    process::exit(7);
}

#[with_cleanup(exits_7)]
fn returns_and_exits() {}

#[with_cleanup(exits_7)]
fn waits_and_exits() {
    ready();
    wait_forever();
}

#[with_cleanup(main_cleanup)]
fn main_waits_and_exits_in_inner() {
    waits_and_exits();
}

/// A worker whose cleanup calls `exit(5)`: run while the process is already in `exit`.
fn exits_5(exit: &Exit) {
    mark(&format!("start exits-5 {exit:?}"));
    process::exit(5);
}

#[with_cleanup(exits_5)]
fn worker_exiting_5(entered: mpsc::Sender<()>) {
    entered.send(()).unwrap();
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

fn forking_cleanup(exit: &Exit) {
    record(&format!("main@{}", role()), exit);
}

fn forking_worker_cleanup(exit: &Exit) {
    record(&format!("worker@{}", role()), exit);
}

#[with_cleanup(forking_worker_cleanup)]
fn forking_worker(entered: mpsc::Sender<()>) {
    entered.send(()).unwrap();
    wait_forever();
}

/// Forks without exec. The child says `child-ready PID` and then, as `child` says, waits
/// (`wait`), exits with 4 (`exit`), or waits in a guarded function of its own (`guard`). The
/// parent waits for it, says how it ended, then says `ready` and waits.
fn fork_and(child: &str) {
    // SAFETY: the child only runs Rust code of this program; the runtime's fork hook made it
    // fit to (a forked child of a process with threads may deadlock on a lock held by a thread
    // that is not there: none of this code takes one that another thread could hold).
    match unsafe { libc::fork() } {
        0 => {
            println!("child-ready {}", process::id());
            match child {
                "exit" => process::exit(4),
                "guard" => child_waits(),
                _ => wait_forever(),
            }
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
            ready();
            wait_forever();
        }
    }
}

#[with_cleanup(forking_cleanup)]
fn forks_inside(child: &str) {
    fork_and(child);
}

fn child_cleanup(exit: &Exit) {
    record(&format!("guard@{}", role()), exit);
}

#[with_cleanup(child_cleanup)]
fn child_waits() {
    println!("child-guarded");
    wait_forever();
}

fn main() {
    PARENT.store(process::id() as usize, SeqCst);
    if env::var_os("FINALLY_TEST_SIGPIPE_DEFAULT").is_some() {
        // SAFETY: setting a signal's action to its default, before any thread starts.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let mut args = env::args().skip(1);
    let scenario = args.next().expect("scenario name");
    match scenario.as_str() {
        // The inner cleanup panics and the runtime reports it: stderr may be broken.
        "report" => panicking_outer(),
        // A cleanup calls `exit(7)` when its function returns; a worker's cleanup is pending.
        "cleanup-exits-on-return" => {
            start_worker(worker);
            ready();
            returns_and_exits();
            mark("after");
        }
        // The same on a signal: the cleanup that exits runs on the signal thread, between the
        // worker's cleanup and main's.
        "cleanup-exits-on-signal" => {
            start_worker(worker);
            main_waits_and_exits_in_inner();
        }
        // `exit(3)`, and a pending cleanup calls `exit(5)` inside it; another is pending too.
        "exit-reentered" => {
            start_worker(worker);
            start_worker(worker_exiting_5);
            ready();
            process::exit(3);
        }
        // The end of `main` (code 0), and a pending cleanup calls `exit(5)` inside it.
        "return-then-exit" => {
            start_worker(worker);
            start_worker(worker_exiting_5);
            ready();
        }
        // `fork` inside a guarded function, while another thread's cleanup is pending.
        "fork" => {
            let (entered, worker_in) = mpsc::channel();
            thread::spawn(move || forking_worker(entered));
            worker_in.recv().unwrap();
            forks_inside(&args.next().expect("what the child does"));
        }
        // `fork` outside any guarded function, while another thread's cleanup is pending.
        "fork-outside" => {
            let (entered, worker_in) = mpsc::channel();
            thread::spawn(move || forking_worker(entered));
            worker_in.recv().unwrap();
            fork_and(&args.next().expect("what the child does"));
        }
        other => panic!("unknown scenario {other}"),
    }
}
