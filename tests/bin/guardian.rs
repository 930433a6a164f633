//! Child processes for the guardian's tests: `guardian NAME`. `main` itself is guarded
//! with the guardian, and then ends as NAME says. See `tests/common/child.rs` for the marker.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use std::{env, fs, process, thread};

use finally::{with_cleanup, Exit};

#[path = "../common/child.rs"]
mod child;
#[path = "../common/forger.rs"]
mod forger;

use child::{main_cleanup, mark, ready, wait_forever};

/// Set in a child that `main` forked: its cleanup is not `main`'s in the program.
static FORKED: AtomicBool = AtomicBool::new(false);

/// `main`'s cleanup, with what some scenarios add to it.
fn cleanup(exit: &Exit) {
    if FORKED.load(Ordering::SeqCst) {
        return mark(&format!("forked child cleaned {exit:?}"));
    }
    if scenario() == "child-of-cleanup" {
        // What a program started by the cleanup finds ignored, in its own words.
        let output = Command::new("sh")
            .args(["-c", "grep SigIgn /proc/self/status"])
            .stdin(Stdio::null())
            .output()
            .expect("run sh");
        mark(&format!(
            "child {}",
            String::from_utf8_lossy(&output.stdout).trim()
        ));
    }
    if scenario() == "scratch" {
        // Named by the program's pid, in the program and in the guardian alike.
        let scratch = scratch();
        let removed = fs::remove_dir(&scratch).is_ok();
        mark(&format!(
            "removed {}: {removed}",
            scratch.file_name().unwrap().to_string_lossy()
        ));
    }
    if scenario() == "drops-into-a-jail" {
        return jail_mark(&format!("main as {}: {exit:?}", euid()));
    }
    main_cleanup(exit);
    if scenario() == "cleanup-panics" {
        panic!("the cleanup panics");
    }
}

/// The effective user id, as the cleanups report it.
fn euid() -> u32 {
    // SAFETY: `geteuid` has no preconditions.
    unsafe { libc::geteuid() }
}

/// Gives up root for the user `FINALLY_TEST_DROP_TO`, as a daemon does once it has started;
/// then waits until the guardian has looked at the program since (it does every tenth of a
/// second), unless `FINALLY_TEST_NO_WAIT` says not to.
fn drop_privileges() {
    let user: libc::uid_t = env::var("FINALLY_TEST_DROP_TO").unwrap().parse().unwrap();
    // SAFETY: plain system calls, on this process's one thread (the guardian is another process).
    unsafe {
        assert_eq!(libc::setgroups(0, std::ptr::null()), 0);
        assert_eq!(libc::setresgid(user, user, user), 0);
        assert_eq!(libc::setresuid(user, user, user), 0);
    }
    if env::var_os("FINALLY_TEST_NO_WAIT").is_none() {
        // Two looks: one may have begun before the drop.
        let looked = finally::__private::guardian_looks();
        while finally::__private::guardian_looks() < looked + 2 {
            thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A guard's cleanup: removes `locked`, a file in a folder only root may change.
#[finally::guardian_cleanup]
fn remove_locked(locked: &std::path::Path, exit: &Exit) {
    let removed = fs::remove_file(locked).is_ok();
    mark(&format!(
        "locked removed as {}: {removed}, {exit:?}",
        euid()
    ));
}

/// In the jail (the marker's folder), `/marker` is the marker; outside it, the line says so.
fn jail_mark(line: &str) {
    use std::io::Write;
    let in_the_jail = std::path::Path::new("/marker");
    let (path, line) = match in_the_jail.exists() {
        true => (in_the_jail.to_path_buf(), line.to_owned()),
        false => (
            env::var_os("FINALLY_TEST_MARKER").unwrap().into(),
            format!("outside the jail: {line}"),
        ),
    };
    let mut file = fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(format!("{line}\n").as_bytes()).unwrap();
}

/// A guard's cleanup in the jail.
#[finally::guardian_cleanup]
fn look_around(name: &str, exit: &Exit) {
    let root_has_the_marker = std::path::Path::new("/marker").exists();
    jail_mark(&format!(
        "{name} as {}: marker at the root {root_has_the_marker}, {exit:?}",
        euid()
    ));
}

/// A scratch directory beside the marker, named by the program's pid.
fn scratch() -> std::path::PathBuf {
    let marker = std::path::PathBuf::from(env::var_os("FINALLY_TEST_MARKER").unwrap());
    marker.with_file_name(format!("scratch-{}", finally::program_id()))
}

/// The scenario's name: the first argument, in the program and in its guardian alike.
fn scenario() -> String {
    env::args().nth(1).expect("scenario name")
}

#[with_cleanup(cleanup, guardian)]
fn main() {
    match scenario().as_str() {
        "return" | "cleanup-panics" => mark("returning"),
        "status" => {
            print_status();
            mark("returning");
        }
        "panic" => panic!("boom"),
        "exit" => process::exit(3),
        // The daemon pattern: root at start (the guardian is forked then), then a user.
        "drops-privileges" => {
            let locked = std::path::PathBuf::from(env::var_os("FINALLY_TEST_MARKER").unwrap())
                .with_file_name("locked")
                .join("file");
            drop_privileges();
            let _guard = finally::guard_with(locked, remove_locked);
            println!("ready {}", process::id());
            wait_forever();
        }
        // The same, in a `chroot` to the marker's folder.
        "drops-into-a-jail" => {
            let jail = std::path::PathBuf::from(env::var_os("FINALLY_TEST_MARKER").unwrap());
            std::os::unix::fs::chroot(jail.parent().unwrap()).unwrap();
            env::set_current_dir("/").unwrap();
            drop_privileges();
            let _guard = finally::guard_with(String::from("guard"), look_around);
            println!("ready {}", process::id());
            wait_forever();
        }
        "scratch" => {
            fs::create_dir(scratch()).unwrap();
            println!("ready {}", process::id());
            wait_forever();
        }
        "wait" | "child-of-cleanup" => {
            ready();
            wait_forever();
        }
        "ready-guardian" => {
            println!("ready {}", guardian_pid());
            wait_forever();
        }
        // A real invalid access: address 1 is in the never-mapped page at 0 (a write to null
        // itself is caught by debug checks of older compilers, as an abort).
        // SAFETY: none: this is the crash the scenario is about.
        "segfault" => unsafe {
            std::ptr::NonNull::<u8>::dangling()
                .as_ptr()
                .write_volatile(1)
        },
        "abort" => process::abort(),
        "double-panic" => {
            struct PanicsOnDrop;
            impl Drop for PanicsOnDrop {
                fn drop(&mut self) {
                    panic!("second panic, while unwinding");
                }
            }
            let _guard = PanicsOnDrop;
            panic!("first panic");
        }
        "stack-overflow" => {
            #[allow(unconditional_recursion)]
            fn recurse(depth: u64) -> u64 {
                let frame = [depth; 64];
                std::hint::black_box(&frame);
                recurse(depth + 1) + frame[0]
            }
            recurse(0);
        }
        // A long-running child that outlives the program: it must not keep the guardian waiting.
        // (Never waited for: the test ends it.)
        #[allow(clippy::zombie_processes)]
        "spawn" => {
            let child = Command::new("sleep")
                .arg("60")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn sleep");
            println!("ready {}", child.id());
            wait_forever();
        }
        // `main` again, from `main`: still one guardian.
        "reenter" => {
            static REENTERED: AtomicBool = AtomicBool::new(false);
            if !REENTERED.swap(true, Ordering::SeqCst) {
                #[allow(clippy::main_recursion)]
                main();
            }
            ready();
            wait_forever();
        }
        // Set up after the guardian started: it learns of it through a guard's state.
        "guard-with" => {
            let _run = finally::guard_with(format!("run-{}", process::id()), record_run);
            let too_long = finally::guard_with("x".repeat(100_000), record_run);
            if let Err(error) = too_long.guardian() {
                let why = std::error::Error::source(&error).map(ToString::to_string);
                mark(&format!("refused: {error}: {}", why.unwrap_or_default()));
            }
            too_long.dismiss();
            // Run in the program, so disarmed: the guardian must not run it again.
            drop(finally::guard_with("ran".to_owned(), record_run));
            println!("ready {}", process::id());
            wait_forever();
        }
        // Whoever can write to the program's channel (the program itself, here, having found
        // it in `/proc/self/fd`) sends what the guardian must refuse.
        "forged" => {
            let _run = finally::guard_with(format!("run-{}", process::id()), record_run);
            let channel = forger::channel();
            for message in forger::forgeries() {
                forger::send(channel, &message);
            }
            println!("ready {}", process::id());
            wait_forever();
        }
        // Another process holding the channel (a child cloned without the `fork` handlers that
        // close it) sends a well-made message: the guardian hears the program alone.
        "impostor" => {
            let _run = finally::guard_with(format!("run-{}", process::id()), record_run);
            forger::from_a_child(forger::channel());
            println!("ready {}", process::id());
            wait_forever();
        }
        // A guard whose cleanup is not registered: a guard still, that the guardian has not.
        "unregistered" => {
            fn unregistered(run: &str, exit: &Exit) {
                child::record(&format!("unregistered {run}"), exit);
            }
            let guard = finally::guard_with(String::from("guard"), unregistered);
            let error = guard.guardian().expect_err("not registered");
            let why = std::error::Error::source(&error).map(ToString::to_string);
            mark(&format!("refused: {}", why.unwrap_or_default()));
            let _second = finally::guard_with(String::from("second"), unregistered);
            println!("ready {}", process::id());
            wait_forever();
        }
        "threads" => {
            // A thread started after the guardian: only the first thing in `main` has to be alone.
            thread::spawn(|| mark("thread ran")).join().unwrap();
            ready();
            wait_forever();
        }
        // The test kills the guardian, then says so: sending it a guard's state must not raise
        // SIGPIPE, which programs often set back to its default action, ending them.
        "guard-after-guardian-died" => {
            // SAFETY: setting SIGPIPE's action before any other thread could look at it.
            unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
            println!("ready {}", guardian_pid());
            read_line();
            print_status();
            let guard = finally::guard_with("after the guardian".to_owned(), record_run);
            if let Err(error) = guard.guardian() {
                mark(&format!("refused: {error}"));
            }
        }
        // The test stops the guardian, then says so: many large states, more than the channel
        // holds, must not block the program.
        "guard-while-stopped" => {
            println!("ready {}", guardian_pid());
            read_line();
            let start = Instant::now();
            let guards: Vec<_> = (0..1000)
                .map(|value| finally::guard_with(format!("{value:03900}"), ignore))
                .collect();
            println!("guarded in {} ms", start.elapsed().as_millis());
            let refused = guards
                .iter()
                .filter(|guard| guard.guardian().is_err())
                .count();
            mark(&format!("refused: {refused}"));
            guards.into_iter().for_each(finally::Guard::dismiss);
        }
        // Guards made while the guardian runs; the test stops it, then says so: they end, and
        // a burst of guards are made and ended, more than the channel holds. Then the test
        // kills the program, or lets the guardian go on and says so, for one more guard, which
        // the guardian must have.
        "burst" => {
            let kept: Vec<_> = (0..400)
                .map(|value| finally::guard_with(format!("kept {value}"), ran_again))
                .collect();
            println!("ready {}", guardian_pid());
            read_line();
            drop(kept);
            for value in 0..2000 {
                drop(finally::guard_with(value.to_string(), ran_again));
            }
            println!("burst done");
            read_line();
            let guard = finally::guard_with("after the burst".to_owned(), record_run);
            if let Err(error) = guard.guardian() {
                mark(&format!("refused: {error}"));
            }
            println!("ready {}", process::id());
            wait_forever();
        }
        // Threads make guards as fast as they can while `main` returns and its cleanup
        // completes; then, at exit, a cleanup opens files and looks into them for what they
        // sent.
        "guard-while-returning" => {
            for _ in 0..8 {
                thread::spawn(move || loop {
                    finally::guard_with("y".repeat(3000), ignore).dismiss();
                });
            }
            let (pending, is_pending) = std::sync::mpsc::channel();
            thread::spawn(move || pending_until_exit(pending));
            is_pending.recv().expect("pending");
            let _ = OPEN_AS_MAIN_RETURNS.set(descriptors());
        }
        // A child of the program's child, orphaned: as PID 1's child, the program needs an init
        // that reaps it when it ends.
        "orphan" => {
            let output = Command::new("sh")
                .args(["-c", "sleep 0.01 & echo $!"])
                .stdin(Stdio::null())
                .output()
                .expect("run sh");
            let orphan = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            let stat = format!("/proc/{orphan}/stat");
            let start = Instant::now();
            // Until it is gone, or has been a zombie for long.
            while fs::read_to_string(&stat).is_ok() && start.elapsed() < Duration::from_secs(5) {
                thread::sleep(Duration::from_millis(5));
            }
            match fs::read_to_string(&stat) {
                Ok(stat) => mark(&format!("orphan left: {}", stat.trim())),
                Err(_) => mark("orphan reaped"),
            }
        }
        // A child forked without exec exits, running `main`'s cleanup as its own: the guardian
        // is the parent's, and must still act when the parent is killed.
        "fork" => {
            // SAFETY: the child only sets an atomic and exits.
            match unsafe { libc::fork() } {
                0 => {
                    FORKED.store(true, Ordering::SeqCst);
                    process::exit(4);
                }
                child => {
                    let mut status = 0;
                    // SAFETY: our own child, and a valid out-parameter.
                    assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
                    mark(&format!("child ended with {}", libc::WEXITSTATUS(status)));
                    ready();
                    wait_forever();
                }
            }
        }
        // Another program takes the process over: the guardian must wait for it to end.
        "exec" => {
            let script = r#"echo ready; sleep 0.3; echo exec-ended >> "$FINALLY_TEST_MARKER""#;
            let error = Command::new("sh").args(["-c", script]).exec();
            panic!("exec sh: {error}");
        }
        other => panic!("unknown scenario {other}"),
    }
}

/// A guard's cleanup: records its state's run, as `guard <run>`.
#[finally::guardian_cleanup]
fn record_run(run: &str, exit: &Exit) {
    child::record(&format!("guard {run}"), exit);
}

/// A guard's cleanup that says so if it runs in the guardian: its guard ended in the program.
#[finally::guardian_cleanup]
fn ran_again(value: &str, exit: &Exit) {
    if matches!(exit, Exit::Died { .. }) {
        mark(&format!("ran again: {value}"));
    }
}

#[finally::guardian_cleanup]
fn ignore(_: &str, _: &Exit) {}

fn guardian_pid() -> u32 {
    finally::__private::guardian_pid().expect("a guardian")
}

fn read_line() {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .expect("a line on stdin");
}

/// Pending until the process exits: its cleanup then runs after `main`'s.
#[with_cleanup(look_for_strays)]
fn pending_until_exit(pending: std::sync::mpsc::Sender<()>) {
    let _ = pending.send(());
    wait_forever();
}

/// The descriptors open as `main` returns, and what each is.
static OPEN_AS_MAIN_RETURNS: std::sync::OnceLock<Vec<(String, std::path::PathBuf)>> =
    std::sync::OnceLock::new();

/// The process's open descriptors and what each is, but the listing's own.
fn descriptors() -> Vec<(String, std::path::PathBuf)> {
    fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let target = fs::read_link(entry.path()).ok()?;
            let name = entry.file_name().to_string_lossy().into_owned();
            (!target.starts_with("/proc")).then_some((name, target))
        })
        .collect()
}

/// Counts the descriptors closed since `main` returned (the channel's number, freed, could go
/// to a file that a thread still sending writes into); then opens files while other threads
/// send to the guardian, and counts those that got anything.
fn look_for_strays() {
    let now = descriptors();
    let closed = OPEN_AS_MAIN_RETURNS
        .get()
        .expect("listed as main returned")
        .iter()
        .filter(|descriptor| !now.contains(descriptor))
        .count();
    mark(&format!("descriptors closed since main returned: {closed}"));
    let marker = env::var_os("FINALLY_TEST_MARKER").expect("FINALLY_TEST_MARKER");
    let folder = std::path::Path::new(&marker)
        .parent()
        .expect("the marker's folder");
    let files: Vec<fs::File> = (0..32)
        .map(|number| fs::File::create(folder.join(format!("stray-{number}"))).expect("create"))
        .collect();
    // Time for the threads to send, into whatever file may have taken the channel's number.
    thread::sleep(Duration::from_millis(50));
    let strays = files
        .iter()
        .filter(|file| file.metadata().expect("metadata").len() > 0)
        .count();
    mark(&format!("files with strays: {strays}"));
}

/// `guardian: running`, or `guardian: ERROR: WHY`.
fn print_status() {
    match finally::guardian_status() {
        Ok(()) => println!("guardian: running"),
        Err(error) => {
            let why = std::error::Error::source(&error).map(ToString::to_string);
            println!("guardian: {error}: {}", why.unwrap_or_default());
        }
    }
}
