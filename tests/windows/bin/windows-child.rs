//! Child processes of the Windows tests: `windows-child NAME`.
//!
//! Each scenario prints `ready` on stdout once it is where the test wants to reach it; the
//! cleanups write to the marker file (`FINALLY_TEST_MARKER`): `start NAME`, then
//! `end NAME EXIT`. Started in a process group of its own, so that the test's Ctrl-C reaches
//! this process only, it turns Ctrl-C back on (a new group starts with it ignored).

#[cfg(windows)]
#[path = "../../common/child.rs"]
mod child;

#[cfg(windows)]
mod scenarios {
    use std::time::Duration;
    use std::{env, process, thread};

    use finally::{with_cleanup, Exit};

    use super::child::{main_cleanup, mark, ready, wait_forever};

    #[with_cleanup(main_cleanup)]
    fn wait() {
        ready();
        wait_forever();
    }

    /// Takes a while, and says when it has started: more Ctrl-C then must not cut it short.
    fn slow_cleanup(exit: &Exit) {
        mark("start slow");
        println!("cleaning");
        thread::sleep(Duration::from_millis(500));
        mark(&format!("end slow {exit:?}"));
    }

    #[with_cleanup(slow_cleanup)]
    fn wait_then_clean_slowly() {
        ready();
        wait_forever();
    }

    #[with_cleanup(main_cleanup)]
    fn exit_3() {
        process::exit(3);
    }

    #[with_cleanup(main_cleanup)]
    fn exit_3_on_a_thread() {
        thread::spawn(|| process::exit(3));
        wait_forever();
    }

    #[with_cleanup(main_cleanup)]
    fn returns() {}

    #[with_cleanup(main_cleanup)]
    fn panics() {
        panic!("boom");
    }

    #[with_cleanup(|| {})]
    fn touch() {}

    /// A durable guard's cleanup: marks that it ran, and how.
    #[finally::guardian_cleanup]
    fn durable(name: &str, exit: &Exit) {
        mark(&format!("start {name}"));
        mark(&format!("end {name} {exit:?}"));
    }

    /// `durable DIR`: a durable guard with its records in DIR, then waits. `recover DIR`: runs
    /// what the processes gone left in DIR, and says how many.
    fn records(command: &str, dir: &str) {
        finally::keep_records(dir, finally::Durability::Disk).expect("keep the records");
        if command == "recover" {
            let recovered = finally::recover().expect("recover");
            mark(&format!("recovered {recovered}"));
            return println!("recovered {recovered}");
        }
        let guard = finally::guard_durable(String::from("durable"), durable);
        guard.durable().expect("a record on disk");
        ready();
        wait_forever();
    }

    pub fn main() {
        // SAFETY: turns Ctrl-C back on for this process.
        unsafe { windows_sys::Win32::System::Console::SetConsoleCtrlHandler(None, 0) };
        match env::args().nth(1).as_deref() {
            Some("wait") => wait(),
            Some("slow") => wait_then_clean_slowly(),
            Some("exit") => exit_3(),
            Some("exit-on-a-thread") => exit_3_on_a_thread(),
            Some("return") => {
                returns();
                mark("after");
            }
            Some("panic") => panics(),
            Some("nothing-pending") => {
                touch();
                ready();
                wait_forever();
            }
            Some(command @ ("durable" | "recover")) => {
                records(command, &env::args().nth(2).expect("a directory"));
            }
            other => panic!("unknown scenario {other:?}"),
        }
    }
}

#[cfg(windows)]
fn main() {
    scenarios::main();
}

/// The scenarios are Windows ones.
#[cfg(not(windows))]
fn main() {}
