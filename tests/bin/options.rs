//! A child process whose `main` sets the process-wide options: `options NAME`.
//!
//! Its cleanup takes as long as `FINALLY_TEST_CLEANUP_MS` says (0 if unset), and says on stdout
//! when it has started. With `FINALLY_TEST_EXIT=N`, `main` calls `exit(N)` once ready, instead
//! of waiting.

use std::time::Duration;
use std::{env, thread};

use finally::{with_cleanup, Exit};

#[path = "../common/child.rs"]
mod child;

use child::{mark, ready, wait_forever};

fn slow_cleanup(exit: &Exit) {
    mark("start main");
    println!("cleaning");
    let millis = env::var("FINALLY_TEST_CLEANUP_MS").map_or(0, |ms| ms.parse().unwrap());
    thread::sleep(Duration::from_millis(millis));
    mark(&format!("end main {exit:?}"));
}

#[with_cleanup(slow_cleanup, signals = [SIGINT, SIGTERM], timeout = "2s", force_quit_after = 3)]
fn main() {
    ready();
    if let Some(code) = env::var_os("FINALLY_TEST_EXIT") {
        std::process::exit(code.to_str().unwrap().parse().unwrap());
    }
    wait_forever();
}
