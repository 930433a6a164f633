//! The guardian's child process of the Windows tests: its `main` starts a guardian, makes a guard
//! whose state reaches it, says `ready`, and waits to be killed.

#[cfg(windows)]
#[path = "../../common/child.rs"]
mod child;

#[cfg(windows)]
mod guarded {
    use std::process;

    use finally::{with_cleanup, Exit};

    use super::child::{main_cleanup, mark, ready, record, wait_forever};

    #[finally::guardian_cleanup]
    fn remove_state(state: &str, exit: &Exit) {
        record(&format!("guard {state}"), exit);
    }

    #[with_cleanup(main_cleanup, guardian)]
    pub fn main() {
        let guard = finally::guard_with(format!("run-{}", process::id()), remove_state);
        if let Err(error) = guard.guardian() {
            mark(&format!("no guardian: {error}"));
        }
        ready();
        wait_forever();
    }
}

#[cfg(windows)]
fn main() {
    guarded::main();
}

/// The scenario is a Windows one.
#[cfg(not(windows))]
fn main() {}
