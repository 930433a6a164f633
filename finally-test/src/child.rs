//! The child's side: saying it is ready, and ending as the test asks.

use std::io::{BufRead, Write};

/// The environment variable that marks a child started by
/// [`Program::current_test`](crate::Program::current_test); its value is the test's name.
pub(crate) const CHILD_VAR: &str = "FINALLY_TEST_CHILD";

/// Whether this process is a test run again as a child by
/// [`Program::current_test`](crate::Program::current_test).
pub fn is_child() -> bool {
    std::env::var_os(CHILD_VAR).is_some()
}

/// Runs `body` if this process is the child that
/// [`Program::current_test`](crate::Program::current_test) started, and does nothing in the
/// test run itself: the test that holds it passes there.
///
/// ```
/// # /*
/// #[test]
/// # */
/// fn scratch_program() {
///     finally_test::child(|| {
///         // ... set up what the cleanup must undo ...
///         finally_test::ready();
///         finally_test::wait_for_ending();
///     });
/// }
/// ```
pub fn child(body: impl FnOnce()) {
    if is_child() {
        body();
    }
}

/// Tells the test that the program is ready: prints the line `ready` on stdout, flushed.
pub fn ready() {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "ready");
    let _ = stdout.flush();
}

/// Waits for the test to ask for an ending on stdin, and acts on it: `return` returns,
/// `panic` panics (`asked to panic`), `exit CODE` calls `std::process::exit(CODE)`, `crash`
/// writes to an address that is never mapped (SIGSEGV), `abort` calls
/// `std::process::abort` (SIGABRT). A signal ends the program meanwhile as it would anywhere
/// else. At the end of stdin (the test is
/// gone) it returns, so that no program outlives its test.
///
/// # Panics
///
/// When asked to, and on a line it does not know, naming it.
pub fn wait_for_ending() {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    match line.trim() {
        "" | "return" => {}
        "panic" => panic!("asked to panic"),
        "crash" => crash(),
        "abort" => std::process::abort(),
        asked => match asked.strip_prefix("exit ").map(str::parse::<i32>) {
            Some(Ok(code)) => std::process::exit(code),
            _ => panic!("finally_test::wait_for_ending: unknown request {asked:?}"),
        },
    }
}

/// A real invalid memory access: the kernel sends SIGSEGV, which a crash handler sees as any
/// other crash.
fn crash() {
    // SAFETY: none, deliberately: this write is the crash asked for. Address 1 lies in the page
    // at 0, which is never mapped (not address 0: before Rust 1.90, debug builds check volatile
    // writes for null and abort).
    unsafe {
        std::ptr::NonNull::<u8>::dangling()
            .as_ptr()
            .write_volatile(1)
    };
}
