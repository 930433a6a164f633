//! `async fn main`, guarded above `#[tokio::main]`, with a grace period: `async-main`. Two tasks
//! run on its runtime: one waits for good, the other takes half a second to stop once asked, so
//! that the stop waits for it. `main` returns on the stop at once, and must then wait for the
//! end where it is: leaving `block_on` would drop the runtime, which would cancel the tasks
//! while the stop waits, and then wait for ever for its blocking task.

use std::time::Duration;

use finally::{with_cleanup, Exit};

#[path = "../common/child.rs"]
mod child;

use child::{main_cleanup, ready, record};

fn waiting_cleanup(exit: &Exit) {
    record("waiting", exit);
}

fn stopping_cleanup(exit: &Exit) {
    record("stopping", exit);
}

#[with_cleanup(waiting_cleanup)]
async fn waits() {
    std::future::pending::<()>().await;
}

#[with_cleanup(stopping_cleanup, grace = "5s")]
async fn stops_slowly() {
    finally::stop_signal().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
}

#[with_cleanup(main_cleanup, grace = "5s")]
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    tokio::task::spawn_blocking(|| loop {
        std::thread::sleep(Duration::from_secs(1));
    });
    tokio::spawn(waits());
    tokio::spawn(stops_slowly());
    // Both tasks polled once, pending.
    tokio::time::sleep(Duration::from_millis(100)).await;
    ready();
    finally::stop_signal().await;
}
