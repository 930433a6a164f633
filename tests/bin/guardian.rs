//! Child processes for the guardian's tests: `guardian NAME`. `main` itself is guarded
//! with the guardian, and then ends as NAME says. See `tests/common/child.rs` for the marker.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::{env, process, thread};

use finally::{with_cleanup, Exit};

#[path = "../common/child.rs"]
mod child;

use child::{main_cleanup, mark, ready, wait_forever};

/// `main`'s cleanup, with what some scenarios add to it.
fn cleanup(exit: &Exit) {
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
    main_cleanup(exit);
    if scenario() == "cleanup-panics" {
        panic!("the cleanup panics");
    }
}

/// The scenario's name: the first argument, in the program and in its guardian alike.
fn scenario() -> String {
    env::args().nth(1).expect("scenario name")
}

#[with_cleanup(cleanup, guardian)]
fn main() {
    match scenario().as_str() {
        "return" | "cleanup-panics" => mark("returning"),
        "panic" => panic!("boom"),
        "exit" => process::exit(3),
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
        // Set up after the guardian started: it learns of it through `remember`.
        "remember" => {
            finally::remember("run", format!("run-{}", process::id()));
            finally::remember("too long", "x".repeat(5000));
            println!("ready {}", process::id());
            wait_forever();
        }
        "threads" => {
            // A thread started after the guardian: only the first thing in `main` has to be alone.
            thread::spawn(|| mark("thread ran")).join().unwrap();
            ready();
            wait_forever();
        }
        other => panic!("unknown scenario {other}"),
    }
}

fn guardian_pid() -> u32 {
    finally::__private::guardian_pid().expect("a guardian")
}
