//! The `tracing` feature, seen as its users see it: the example `examples/traced.rs`, with
//! `tracing-subscriber`'s `fmt` on stderr, ended each way. A shutdown is one span saying what
//! started it; each cleanup is one event in it, once, saying how it ended; the grace period and
//! the deadline are told; and where the program's thread-locals are gone (`main` returned), the
//! subscriber is never called from there (`fmt` would panic).

mod common;

use common::*;

/// The lines the subscriber wrote (`TIME LEVEL ...`), without the time.
fn events(ended: &Ended) -> Vec<&str> {
    ended
        .stderr
        .lines()
        .filter_map(|line| {
            let (_, event) = line.split_once(' ')?;
            let level = event.trim_start().split(' ').next()?;
            ["DEBUG", "INFO", "WARN", "ERROR"]
                .contains(&level)
                .then(|| event.trim_start())
        })
        .collect()
}

/// The one event that contains each of `parts`, and where it is among `events`.
fn one<'a>(events: &[&'a str], parts: &[&str]) -> (usize, &'a str) {
    let found: Vec<_> = events
        .iter()
        .enumerate()
        .filter(|(_, event)| parts.iter().all(|part| event.contains(part)))
        .collect();
    let [(at, event)] = found[..] else {
        panic!("expected one event with {parts:?}, got {found:?}; events: {events:#?}");
    };
    (at, event)
}

/// Runs the example with `how`, stopped with SIGTERM once ready if `signal` (else it ends by
/// itself): no panic, but the one the `panic` case makes.
fn run(how: &str, signal: bool) -> Ended {
    let traced = Scenario::start_example("traced", &[how], |_| {});
    let ended = if signal {
        traced.signal_when_ready(SIGTERM)
    } else {
        traced.wait()
    };
    assert!(
        !ended.stderr.contains("panicked at") || how == "panic",
        "a panic: {}",
        ended.stderr
    );
    ended
}

/// Every event is in the shutdown's span, `span` (what started it, why, the timeout).
fn all_in(events: &[&str], span: &str) {
    let prefix = format!("finally shutdown{{{span} timeout=2s}}: ");
    for event in events {
        assert!(event.contains(&prefix), "not in `{prefix}`: {event}");
    }
}

const BY_SIGTERM: &str = r#"by="signal" reason=stopped by SIGTERM (15)"#;

#[test]
fn a_signal_is_one_span_with_the_grace_period_and_each_cleanup_once() {
    let ended = run("", true);
    ended.assert_killed_by(SIGTERM);
    let events = events(&ended);
    all_in(&events, BY_SIGTERM);
    let (waiting, _) = one(
        &events,
        &[
            "INFO",
            "waiting for the functions with a grace period up_to=500ms",
        ],
    );
    let (failed, _) = one(
        &events,
        &[
            "WARN",
            r#"a cleanup failed cleanup="the guard made at "#,
            r#"traced.rs:"#,
            r#"exit="stopped by SIGTERM (15)""#,
            r#"ended="error""#,
        ],
    );
    let (ran, _) = one(
        &events,
        &[
            "INFO",
            r#"a cleanup ran cleanup="report of main" exit="stopped by SIGTERM (15)""#,
            r#"ended="returned""#,
        ],
    );
    let (over, _) = one(&events, &["the grace period is over", "all_returned=true"]);
    assert!(
        waiting < failed && failed < ran && ran < over,
        "{events:#?}"
    );
    assert_eq!(events.len(), 4, "{events:#?}");
}

#[test]
fn exit_is_a_span_of_its_own_with_each_cleanup_once() {
    let ended = run("exit", false);
    ended.assert_exit_code(3);
    let code = (!cfg!(finally_portable)).then_some(3);
    let reason = finally::Exit::exited(code).to_string();
    let events = events(&ended);
    all_in(&events, &format!(r#"by="exit" reason={reason}"#));
    one(
        &events,
        &[
            "WARN",
            r#"a cleanup failed cleanup="the guard made at "#,
            r#"ended="error""#,
        ],
    );
    one(
        &events,
        &[
            "INFO",
            &format!(r#"a cleanup ran cleanup="report of main" exit="{reason}""#),
        ],
    );
    assert_eq!(events.len(), 2, "{events:#?}");
}

#[test]
fn a_cleanup_that_panics_is_told_with_its_message() {
    let ended = run("panic", true);
    ended.assert_killed_by(SIGTERM);
    let events = events(&ended);
    all_in(&events, BY_SIGTERM);
    one(
        &events,
        &[
            "WARN",
            "a cleanup panicked",
            r#"ended="panicked" panic="the disk was full""#,
        ],
    );
    one(&events, &[r#"a cleanup ran cleanup="report of main""#]);
}

#[test]
fn the_deadline_reached_names_the_cleanup_that_overran_it() {
    let ended = run("stuck", true);
    ended.assert_killed_by(SIGTERM);
    let events = events(&ended);
    all_in(&events, BY_SIGTERM);
    one(&events, &["the grace period is over", "all_returned=false"]);
    let (_, reached) = one(
        &events,
        &[
            "ERROR",
            "the deadline is reached: the process ends running=the guard made at ",
        ],
    );
    assert!(reached.contains("traced.rs:"), "{reached}");
    // Told before the process ended, and before the runtime's own last word.
    let told = ended.stderr.find("the deadline is reached").unwrap();
    let reported = ended
        .stderr
        .find("finally: the cleanups did not finish")
        .unwrap();
    assert!(told < reported, "{}", ended.stderr);
}

/// `main` returns: no shutdown. Its cleanups are told at `DEBUG` (the example's level), and a
/// failure at `WARN`, from the runtime's thread: the main thread's thread-locals, and the
/// subscriber's, are gone by the time the exit hook runs.
#[test]
fn a_return_is_no_shutdown_and_is_told_at_debug() {
    let ended = run("return", false);
    ended.assert_exit_code(0);
    let events = events(&ended);
    assert!(!ended.stderr.contains("finally shutdown"), "{events:#?}");
    one(&events, &["WARN", "a cleanup failed", r#"exit="returned""#]);
    one(
        &events,
        &[
            "DEBUG",
            r#"a cleanup ran cleanup="report of main" exit="returned""#,
        ],
    );
    assert_eq!(events.len(), 2, "{events:#?}");
}

/// A program whose subscriber never returns from its first write (its writer is a pipe that
/// nobody reads, say): its guard's cleanup still runs once and the process ends by the signal,
/// the shutdown waiting for the stuck `finally-trace` thread a moment only.
#[test]
fn stuck_subscriber() {
    finally_test::child(|| {
        tracing_subscriber::fmt()
            .with_writer(|| Stuck)
            .with_ansi(false)
            .init();
        let _cleanup = finally::guard(|exit: &finally::Exit| println!("cleanup: {exit}"));
        finally_test::ready();
        finally_test::wait_for_ending();
    });
}

/// A writer that says it is stuck, then is, for good.
struct Stuck;

impl std::io::Write for Stuck {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        println!("subscriber stuck");
        loop {
            std::thread::park();
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_stuck_subscriber_does_not_hold_up_the_end() {
    let ended = finally_test::Program::current_test("stuck_subscriber")
        .run_until_ready_then(finally_test::Ending::Signal(SIGTERM))
        .unwrap();
    ended
        .assert_signaled(SIGTERM)
        .assert_stdout_line("cleanup: stopped by SIGTERM (15)")
        .assert_stdout_line("subscriber stuck");
    let cleanups = ended
        .stdout
        .iter()
        .filter(|line| line.starts_with("cleanup: "));
    assert_eq!(cleanups.count(), 1, "{:?}", ended.stdout);
}
