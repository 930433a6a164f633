//! `#[with_cleanup]` on `async fn`, under tokio's current-thread and multi-thread runtimes: the
//! cleanup runs once when the future completes, panics, is dropped, or a signal arrives.
//!
//! This test has its own harness (`harness = false` in Cargo.toml) so that it can use tokio,
//! a dev-dependency, in its child processes: run as `async child NAME FLAVOR`, it plays a
//! scenario; run without arguments, it runs the tests below, each starting itself as a child.

#[path = "common/child.rs"]
mod child;
mod common;

use std::future::{pending, Future};
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use child::{main_cleanup, main_cleanup_where, mark, ready};
use common::*;
use finally::with_cleanup;

// ---- The child side: the guarded futures and how each scenario ends them ----

#[with_cleanup(main_cleanup)]
async fn returns(text: &str) -> Result<u32, io::Error> {
    let value: u32 = text.parse().map_err(io::Error::other)?;
    tokio::task::yield_now().await;
    Ok(value + 1)
}

/// Finishes in its first poll, after `micros` µs of work, having said `ready`: no await.
#[with_cleanup(main_cleanup)]
async fn at_once(micros: u64) -> u32 {
    ready();
    let until = Instant::now() + Duration::from_micros(micros);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
    42
}

/// Blocks in its first poll, once its cleanup is pending, until the process ends.
#[with_cleanup(main_cleanup)]
async fn blocks_in_its_first_poll() {
    ready();
    loop {
        std::thread::park();
    }
}

#[with_cleanup(main_cleanup)]
async fn panics() {
    tokio::task::yield_now().await;
    panic!("boom");
}

/// Pending until it is dropped or the process ends; says `ready` once its cleanup is pending.
#[with_cleanup(main_cleanup)]
async fn waits(entered: Option<tokio::sync::oneshot::Sender<()>>) {
    ready();
    if let Some(entered) = entered {
        let _ = entered.send(());
    }
    pending::<()>().await;
}

/// Stops on its own when asked, within its grace period.
#[with_cleanup(main_cleanup_where, grace = "10s")]
async fn serves_until_stopped() {
    ready();
    let signal = finally::stop_signal().await;
    mark(&format!("body saw {}", signal.name()));
}

static CLEANED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn count_cleanup() {
    CLEANED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

fn report_count(exit: &finally::Exit) {
    let cleaned = CLEANED.load(std::sync::atomic::Ordering::SeqCst);
    mark(&format!("cleaned {cleaned} before the last, for {exit:?}"));
}

#[with_cleanup(count_cleanup)]
async fn pending_forever(index: usize, entered: tokio::sync::mpsc::Sender<usize>) {
    entered.send(index).await.unwrap();
    pending::<()>().await;
}

/// `count` guarded futures pending at once, on as many tasks.
#[with_cleanup(report_count)]
async fn many_pending(count: usize) {
    let (entered, mut all_in) = tokio::sync::mpsc::channel(count);
    let tasks: Vec<_> = (0..count)
        .map(|index| tokio::spawn(pending_forever(index, entered.clone())))
        .collect();
    for _ in 0..count {
        all_in.recv().await.unwrap();
    }
    ready();
    for task in tasks {
        let _ = task.await;
    }
}

fn runtime(flavor: &str) -> tokio::runtime::Runtime {
    match flavor {
        "current" => tokio::runtime::Builder::new_current_thread(),
        "multi" => tokio::runtime::Builder::new_multi_thread(),
        other => panic!("unknown flavor {other}"),
    }
    .enable_all()
    .build()
    .expect("a tokio runtime")
}

fn child(scenario: &str, flavor: &str, arg: Option<&str>) {
    let runtime = runtime(flavor);
    match scenario {
        "return" => {
            let value = runtime.block_on(returns("41")).unwrap();
            mark(&format!("returned {value}"));
        }
        "at-once" => {
            let micros = arg.map_or(0, |micros| micros.parse().unwrap());
            let value = runtime.block_on(at_once(micros));
            mark(&format!("returned {value}"));
        }
        "blocks" => runtime.block_on(blocks_in_its_first_poll()),
        "panic" => runtime.block_on(panics()),
        "timeout" => {
            let timed_out = runtime.block_on(async {
                tokio::time::timeout(Duration::from_millis(10), waits(None)).await
            });
            assert!(timed_out.is_err());
            mark("after");
        }
        "select" => runtime.block_on(async {
            tokio::select! {
                _ = waits(None) => unreachable!(),
                _ = tokio::task::yield_now() => mark("after"),
            }
        }),
        "abort" => runtime.block_on(async {
            let (entered, is_in) = tokio::sync::oneshot::channel();
            let task = tokio::spawn(waits(Some(entered)));
            is_in.await.unwrap();
            task.abort();
            assert!(task.await.unwrap_err().is_cancelled());
            mark("after");
        }),
        "shutdown" => {
            let (entered, is_in) = tokio::sync::oneshot::channel();
            runtime.spawn(waits(Some(entered)));
            runtime.block_on(is_in).unwrap();
            drop(runtime);
            mark("after");
        }
        "never-polled" => {
            drop(waits(None));
            mark("after");
        }
        "signal" => runtime.block_on(waits(None)),
        "grace" => runtime.block_on(serves_until_stopped()),
        "many" => runtime.block_on(many_pending(arg.expect("count").parse().unwrap())),
        // Dropped after `arg` µs, while the test sends a signal at a random time.
        "drop-race" => {
            let micros = arg.expect("micros").parse().unwrap();
            let _ = runtime.block_on(async {
                tokio::time::timeout(Duration::from_micros(micros), waits(None)).await
            });
            mark("after");
        }
        other => panic!("unknown scenario {other}"),
    }
}

// ---- The tests ----

const FLAVORS: [&str; 2] = ["current", "multi"];

/// After an await, and in its first poll (where its cleanup is on the thread's stack, as a
/// call's is).
fn completes_with_its_value() {
    for scenario in ["return", "at-once"] {
        for flavor in FLAVORS {
            let ended = Scenario::start_self(scenario, &[flavor]).wait();
            ended.assert_exit_code(0);
            ended.assert_cleaned_once("main", "Returned");
            assert!(ended.position("end main Returned") < ended.position("returned 42"));
        }
    }
}

/// A signal racing a first poll that finishes: exactly once, and the code after the future
/// does not run if the signal's stop ran the cleanup.
fn a_signal_racing_the_first_poll_runs_it_exactly_once() {
    let (mut returned, mut by_signal) = (0, 0);
    let seed = race("at-once", |ended, context| {
        if ended.count("end main Returned") == 1 {
            returned += 1;
            ended.assert_cleaned_once("main", "Returned");
        } else {
            by_signal += 1;
            ended.assert_cleaned_once("main", &signal_reason(SIGTERM));
            assert_eq!(ended.count("returned 42"), 0, "{context}");
            ended.assert_killed_by(SIGTERM);
        }
    });
    eprintln!("{returned} runs returned first, {by_signal} were stopped by the signal first");
    assert!(
        returned > 0 && by_signal > 0,
        "seed {seed}: one side of the race never happened"
    );
}

/// Runs `scenario` up to 100 times (30 s at most), on each flavor in turn, with a random
/// argument of up to 1.5 ms, and sends SIGTERM a random time of up to 1.5 ms after its `ready`;
/// `check` judges each end, told the run's context. Returns the seed.
fn race(scenario: &str, mut check: impl FnMut(&Ended, &str)) -> u64 {
    let mut random = Random::new();
    let seed = random.seed();
    let started = Instant::now();
    for run in 0..100 {
        if started.elapsed() > Duration::from_secs(30) {
            break;
        }
        let flavor = FLAVORS[run % 2];
        let (micros, delay) = (random.below(1500), random.below(1500));
        let child = Scenario::start_self(scenario, &[flavor, &micros.to_string()]);
        child.expect_line("ready");
        std::thread::sleep(Duration::from_micros(delay));
        // SAFETY: our own child, not yet reaped; it may have exited already.
        unsafe { libc::kill(child.pid(), SIGTERM) };
        let context = format!("run {run} (seed {seed}, {micros} µs, signal after {delay} µs)");
        check(&child.wait(), &context);
    }
    seed
}

fn panics_and_the_panic_goes_on() {
    for flavor in FLAVORS {
        let ended = Scenario::start_self("panic", &[flavor]).wait();
        ended.assert_exit_code(101);
        ended.assert_cleaned_once("main", r#"Panicked { message: Some("boom") }"#);
        assert!(ended.stderr.contains("boom"), "stderr: {}", ended.stderr);
    }
}

fn dropped_before_it_finished_is_cancelled() {
    for scenario in ["timeout", "select", "abort", "shutdown"] {
        for flavor in FLAVORS {
            let ended = Scenario::start_self(scenario, &[flavor]).wait();
            ended.assert_exit_code(0);
            ended.assert_cleaned_once("main", "Cancelled");
            assert!(
                ended.position("end main Cancelled") < ended.position("after"),
                "{scenario} on {flavor}"
            );
        }
    }
}

fn never_polled_has_nothing_to_clean_up() {
    let ended = Scenario::start_self("never-polled", &["current"]).wait();
    ended.assert_exit_code(0);
    assert_eq!(ended.marker, ["after"]);
}

/// Pending at an await (its cleanup in its slot's list), and blocked in its first poll (its
/// cleanup on the polling thread's stack).
fn a_signal_before_it_finishes_runs_it_and_ends_the_process() {
    for scenario in ["signal", "blocks"] {
        for flavor in FLAVORS {
            let ended = Scenario::start_self(scenario, &[flavor]).signal_when_ready(SIGTERM);
            ended.assert_killed_by(SIGTERM);
            ended.assert_cleaned_once("main", &signal_reason(SIGTERM));
        }
    }
}

fn with_a_grace_period_it_stops_on_its_own_when_asked() {
    for flavor in FLAVORS {
        let ended = Scenario::start_self("grace", &[flavor]).signal_when_ready(SIGTERM);
        ended.assert_killed_by(SIGTERM);
        // Completed on the thread polling it, for the signal.
        ended.assert_cleaned_once("main on main", &signal_reason(SIGTERM));
        assert!(ended.position("body saw SIGTERM") < ended.position("start main on main"));
    }
}

fn ten_thousand_concurrent_pending_futures_all_clean_up_once() {
    for flavor in FLAVORS {
        let ended = Scenario::start_self("many", &[flavor, "10000"]).signal_when_ready(SIGTERM);
        ended.assert_killed_by(SIGTERM);
        assert_eq!(
            ended.marker,
            [format!(
                "cleaned 10000 before the last, for {}",
                signal_reason(SIGTERM)
            )]
        );
    }
}

/// A signal racing the future's drop: exactly once, as `Cancelled` or for the signal.
fn a_signal_racing_the_drop_runs_it_exactly_once() {
    race("drop-race", |ended, context| {
        if ended.count("end main Cancelled") == 1 {
            ended.assert_cleaned_once("main", "Cancelled");
        } else {
            ended.assert_cleaned_once("main", &signal_reason(SIGTERM));
            assert_eq!(ended.count("after"), 0, "{context}");
        }
        assert!(
            ended.status.code() == Some(0) || ended.status.code().is_none(),
            "{context}: {:?}",
            ended.status
        );
    });
}

/// The guarded future of a `Send` body is `Send`: it can be spawned on a multi-thread runtime.
fn stays_send() {
    fn assert_send<T: Send>(value: T) -> T {
        value
    }
    #[with_cleanup(|| ())]
    async fn guarded(value: u32) -> u32 {
        tokio::task::yield_now().await;
        value
    }
    let value =
        runtime("multi").block_on(async { tokio::spawn(assert_send(guarded(7))).await.unwrap() });
    assert_eq!(value, 7);
}

/// Methods, generics and `?` on an `async fn`, in this process.
fn shapes() {
    struct Store(u32);
    impl Store {
        #[with_cleanup(|| ())]
        async fn get(&self) -> u32 {
            self.0
        }
        #[with_cleanup(|| ())]
        async fn add<T: Into<u32> + Send>(&mut self, more: T) -> Result<u32, String> {
            if self.0 == 0 {
                return Err("empty".into());
            }
            let more: u32 = more.into();
            self.0 = self.0.checked_add(more).ok_or("overflow")?;
            Ok(self.0)
        }
        #[with_cleanup(|| ())]
        async fn into_inner(self) -> impl Future<Output = u32> {
            async move { self.0 }
        }
    }
    runtime("current").block_on(async {
        let mut store = Store(1);
        assert_eq!(store.get().await, 1);
        assert_eq!(store.add(2u8).await, Ok(3));
        assert_eq!(Store(0).add(1u8).await, Err("empty".into()));
        assert_eq!(store.into_inner().await.await, 3);
    });
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [role, scenario, flavor, rest @ ..] = args.as_slice() {
        if role == "child" {
            return child(scenario, flavor, rest.first().map(String::as_str));
        }
    }
    let tests: [(&str, fn()); 11] = [
        ("completes_with_its_value", completes_with_its_value),
        (
            "a_signal_racing_the_first_poll_runs_it_exactly_once",
            a_signal_racing_the_first_poll_runs_it_exactly_once,
        ),
        ("panics_and_the_panic_goes_on", panics_and_the_panic_goes_on),
        (
            "dropped_before_it_finished_is_cancelled",
            dropped_before_it_finished_is_cancelled,
        ),
        (
            "never_polled_has_nothing_to_clean_up",
            never_polled_has_nothing_to_clean_up,
        ),
        (
            "a_signal_before_it_finishes_runs_it_and_ends_the_process",
            a_signal_before_it_finishes_runs_it_and_ends_the_process,
        ),
        (
            "a_signal_racing_the_drop_runs_it_exactly_once",
            a_signal_racing_the_drop_runs_it_exactly_once,
        ),
        (
            "with_a_grace_period_it_stops_on_its_own_when_asked",
            with_a_grace_period_it_stops_on_its_own_when_asked,
        ),
        (
            "ten_thousand_concurrent_pending_futures_all_clean_up_once",
            ten_thousand_concurrent_pending_futures_all_clean_up_once,
        ),
        ("stays_send", stays_send),
        ("shapes", shapes),
    ];
    run_tests(&tests, &args);
}

/// Runs the tests whose name contains the first non-flag argument, as libtest would, and exits
/// non-zero if one failed.
fn run_tests(tests: &[(&str, fn())], args: &[String]) {
    let filter = args.iter().find(|arg| !arg.starts_with('-'));
    let chosen: Vec<_> = tests
        .iter()
        .filter(|(name, _)| filter.map_or(true, |filter| name.contains(filter.as_str())))
        .collect();
    println!("\nrunning {} tests", chosen.len());
    let mut failed = Vec::new();
    for (name, test) in &chosen {
        let passed = catch_unwind(AssertUnwindSafe(test)).is_ok();
        println!("test {name} ... {}", if passed { "ok" } else { "FAILED" });
        if !passed {
            failed.push(name);
        }
    }
    let outcome = if failed.is_empty() { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {outcome}. {} passed; {} failed; 0 ignored; 0 measured; {} filtered out\n",
        chosen.len() - failed.len(),
        failed.len(),
        tests.len() - chosen.len()
    );
    if !failed.is_empty() {
        std::process::exit(101);
    }
}
