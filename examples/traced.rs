//! How a program ended, seen with `tracing`: the `tracing` feature of `finally-cleanup`.
//!
//! ```text
//! cargo run --example traced            # works until stopped: press Ctrl-C
//! cargo run --example traced -- exit    # calls `exit(3)`
//! cargo run --example traced -- stuck   # a cleanup overruns the deadline
//! cargo run --example traced -- panic   # a cleanup panics
//! cargo run --example traced -- return  # `main` returns: no shutdown, each cleanup at DEBUG
//! ```
//!
//! A shutdown is one span, saying what started it and why, and in it an event for the grace
//! period, the deadline and each cleanup (which one, what it was told, how long it ran, how it
//! ended). After Ctrl-C:
//!
//! ```text
//! INFO finally shutdown{by="signal" reason=stopped by SIGINT (2) timeout=2s}: waiting for the functions with a grace period up_to=500ms
//! finally: the guard made at examples/traced.rs:46 failed: the database was gone
//! WARN finally shutdown{by="signal" reason=stopped by SIGINT (2) timeout=2s}: a cleanup failed cleanup="the guard made at examples/traced.rs:46" exit="stopped by SIGINT (2)" took=200.2ms ended="error"
//! main ended: stopped by SIGINT (2)
//! INFO finally shutdown{by="signal" reason=stopped by SIGINT (2) timeout=2s}: a cleanup ran cleanup="report of main" exit="stopped by SIGINT (2)" took=13.7µs ended="returned"
//! INFO finally shutdown{by="signal" reason=stopped by SIGINT (2) timeout=2s}: the grace period is over waited=206.1ms all_returned=true
//! ```

use std::thread;
use std::time::Duration;

use finally::Exit;
use tracing_subscriber::filter::LevelFilter;

fn report(exit: &Exit) {
    eprintln!("main ended: {exit}");
}

#[finally::with_cleanup(report, grace = "500ms", timeout = "2s")]
fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(LevelFilter::DEBUG)
        .with_ansi(false)
        .with_target(false)
        .init();
    let how = std::env::args().nth(1).unwrap_or_default();
    let _stuck =
        (how == "stuck").then(|| finally::guard(|_| thread::sleep(Duration::from_secs(60))));
    let _panics = (how == "panic").then(|| finally::guard(|_| panic!("the disk was full")));
    let _slow = finally::guard(|_| {
        thread::sleep(Duration::from_millis(200));
        Err("the database was gone")
    });
    match how.as_str() {
        "exit" => std::process::exit(3),
        "return" => return,
        _ => {}
    }
    println!("ready");
    while !finally::stop_requested() {
        thread::sleep(Duration::from_millis(20));
    }
}
