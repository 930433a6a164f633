//! The program of `tests/kit.rs`: a `main` with a guardian whose cleanup writes to the marker,
//! then the test kit's child protocol: it says `ready` and ends as the test asks.

use finally::with_cleanup;

#[path = "../common/child.rs"]
mod child;

#[with_cleanup(child::main_cleanup, guardian)]
fn main() {
    eprintln!("working");
    finally_test::ready();
    finally_test::wait_for_ending();
}
