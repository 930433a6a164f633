//! The README's rules as one table, checked across generated combinations.
//!
//! Each case is a plan (`tests/common/plan.rs`) made from a seed and an index: threads nesting
//! guarded functions (with a grace period or not, of the application's copy of `finally` or of
//! a second copy's), guards (kept, held by another thread, dropped on another thread before the
//! end, dismissed, with state for the guardian), guarded futures, locks held across guarded
//! calls, options (`timeout`, `force_quit_after`, `signals`, the guardian), and an ending
//! (return, panic, `exit` from any thread, each handled signal, repeated signals, `kill -9`).
//! The program `tests/bin/combo/` runs the case; [`expect`], written from the table, says which
//! cleanups run, what each is told, how the process ends and the bound it ends within; [`check`]
//! holds the run to it.
//!
//! `cargo test --test combinations` runs [`CASES`] of them with a new seed;
//! `FINALLY_COMBINATIONS=5000` runs more, `FINALLY_SEED=S` repeats a run, and `FINALLY_CASE=I`
//! one case of it. A failure prints the command that repeats it.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use common::plan::{Cleanup, Copy, Ending, Fate, Grace, Kind, Plan};
use common::*;

/// Cases in a plain `cargo test`.
const CASES: u64 = 240;
/// Cases run at once: the children mostly wait.
const AT_ONCE: u64 = 4;
/// The most a run of the default size may take; a longer one stops early, and says so.
const BUDGET: Duration = Duration::from_secs(150);

#[test]
fn every_combination_of_features_and_endings_holds_to_the_table() {
    let seed = std::env::var("FINALLY_SEED").map_or_else(
        |_| Random::new().seed(),
        |seed| seed.parse().expect("FINALLY_SEED: a number"),
    );
    let count: u64 = std::env::var("FINALLY_COMBINATIONS")
        .map_or(CASES, |count| count.parse().expect("a number"));
    let only: Option<u64> = std::env::var("FINALLY_CASE")
        .ok()
        .map(|case| case.parse().expect("FINALLY_CASE: a number"));
    let budget = if count > CASES { Duration::MAX } else { BUDGET };
    let cases: Vec<u64> = match only {
        Some(case) => vec![case],
        None => (0..count).collect(),
    };
    let next = AtomicU64::new(0);
    let ran = Mutex::new(BTreeMap::<&'static str, u64>::new());
    let failures = Mutex::new(Vec::new());
    let started = Instant::now();
    thread::scope(|scope| {
        for _ in 0..AT_ONCE {
            scope.spawn(|| loop {
                let at = next.fetch_add(1, SeqCst) as usize;
                let Some(&index) = cases.get(at) else { return };
                if started.elapsed() > budget {
                    return;
                }
                let plan = Plan::new(seed, index);
                let outcome = catch_unwind(AssertUnwindSafe(|| run_case(seed, index, &plan)));
                *ran.lock().unwrap().entry(name(&plan.ending)).or_default() += 1;
                let failed = match outcome {
                    Ok(Ok(())) => continue,
                    Ok(Err(failure)) => failure,
                    Err(panic) => panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default(),
                };
                failures.lock().unwrap().push(format!(
                    "case {index}: {failed}\n  plan: {plan:?}\n  again: FINALLY_SEED={seed} FINALLY_CASE={index} cargo test --test combinations"
                ));
            });
        }
    });
    let ran = ran.into_inner().unwrap();
    let total: u64 = ran.values().sum();
    let failures = failures.into_inner().unwrap();
    // Past the harness's capture of `eprintln!`: the run's size and seed are worth seeing when it
    // passes too.
    let _ = writeln!(
        std::io::stderr(),
        "combinations: {total} of {} cases (seed {seed}) in {:.0?}, {} failed; by ending: {ran:?}{}",
        cases.len(),
        started.elapsed(),
        failures.len(),
        if total < cases.len() as u64 { "; stopped early: out of time" } else { "" },
    );
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn name(ending: &Ending) -> &'static str {
    match ending {
        Ending::Return => "return",
        Ending::Panic => "panic",
        Ending::Exit { .. } => "exit",
        Ending::Signal { more: 0, .. } => "signal",
        Ending::Signal { .. } => "repeated signals",
        Ending::Kill => "kill -9",
    }
}

/// Runs case `index` of `seed`, whose plan is `plan`, and holds it to [`expect`].
fn run_case(seed: u64, index: u64, plan: &Plan) -> Result<(), String> {
    let program = match plan.guardian {
        true => env!("CARGO_BIN_EXE_combo-guardian"),
        false => env!("CARGO_BIN_EXE_combo"),
    };
    let (seed, index) = (seed.to_string(), index.to_string());
    // The durable guards' records (every other guard with state is one), looked at after.
    let records = tempfile::tempdir().expect("a folder for the records");
    let mut scenario = Scenario::start_bin(program.as_ref(), &[&seed, &index], |command| {
        command
            .stdin(Stdio::piped())
            .env("FINALLY_RECORDS", records.path());
    });
    scenario.expect_line("ready");
    let ended_at = Instant::now();
    match plan.ending {
        Ending::Return => scenario.say("return"),
        Ending::Panic => scenario.say("panic"),
        Ending::Exit { thread, code } => scenario.say(&format!("exit {thread} {code}")),
        Ending::Signal { signal, more } => {
            scenario.signal(signal);
            for _ in 0..more {
                thread::sleep(Duration::from_millis(20));
                if !scenario.has_ended() {
                    scenario.signal(signal);
                }
            }
        }
        Ending::Kill => scenario.signal(libc::SIGKILL),
    }
    let ended = scenario.wait();
    check(plan, &ended, ended_at.elapsed())?;
    // A durable guard's record goes when its cleanup has run, in the program or its guardian;
    // only a cleanup cut short leaves one, for the next start.
    let left: Vec<_> = std::fs::read_dir(records.path())
        .expect("the records' folder")
        .flatten()
        .map(|entry| entry.file_name())
        .collect();
    match left.is_empty() || expect(plan).cut {
        true => Ok(()),
        false => Err(format!("records left: {left:?}")),
    }
}

/// What the table says of a cleanup.
#[derive(Debug, PartialEq)]
enum Runs {
    Never,
    /// Once, told this.
    Once(String),
    /// At most once (a deadline or a forced quit may cut the cleanups), told this if it ends.
    AtMostOnce(String),
}

/// How the process ends.
#[derive(Debug, PartialEq)]
enum Ends {
    Code(i32),
    By(i32),
}

/// The table's verdict on a plan: each cleanup (`L<id>`, and `main` with the guardian), how the
/// process ends, the longest it may take from the ending, and whether the cleanups may be cut.
struct Expected {
    cleanups: BTreeMap<String, Runs>,
    ends: Ends,
    within: Duration,
    cut: bool,
}

/// The README's table (see "The rules, as one table"), row by row.
fn expect(plan: &Plan) -> Expected {
    let app_handles =
        |signal: i32| !plan.only_int_and_term || signal == libc::SIGINT || signal == libc::SIGTERM;
    // A slow cleanup that runs (not a dismissed guard's, nor one dropped before the ending).
    let slow = plan
        .threads
        .iter()
        .flat_map(|thread| &thread.levels)
        .filter(|level| {
            !matches!(
                level.kind,
                Kind::Guard(Fate::Dismissed | Fate::DroppedElsewhere)
            )
        })
        .any(|level| level.cleanup == Cleanup::Slow);
    let longest_grace = plan
        .threads
        .iter()
        .flat_map(|thread| &thread.levels)
        .map(|level| match level.kind {
            Kind::Function(Grace::Short) => Duration::from_millis(300),
            Kind::Function(Grace::Long) => Duration::from_secs(2),
            _ => Duration::ZERO,
        })
        .max()
        .unwrap_or_default();
    let timeout = plan.timeout_ms.map(Duration::from_millis);
    // Row by row: what the cleanups still pending at the ending are told, what `main`'s own
    // levels are told where `main` ends them itself, how the process ends.
    let (pending, main_itself, ends, cut) = match plan.ending {
        // `main` returns: its functions and guards are told `Returned` as they end; the end of
        // `main` is `exit(0)` for the others.
        Ending::Return => (
            Some(exited(0)),
            Some("Returned".to_owned()),
            Ends::Code(0),
            false,
        ),
        // The panic unwinds `main`'s; the process exits with 101.
        Ending::Panic => (
            Some(exited(101)),
            Some(r#"Panicked { message: Some("boom") }"#.to_owned()),
            Ends::Code(101),
            false,
        ),
        // `exit(n)` from any thread: every pending cleanup, told the exit; a deadline ends it
        // with the code where the C library tells it.
        Ending::Exit { code, .. } => {
            let cut = slow && timeout.is_some();
            let code = if cut { first_exit_code(code) } else { code };
            (Some(exited(code)), None, Ends::Code(code), cut)
        }
        // A handled signal: every pending cleanup, told the signal (a function or guard that
        // returns on the stop too); the process ends by it. A signal the options leave out:
        // nothing, and its default effect. More signals are held back, until
        // `force_quit_after` of them end the process at once; a deadline cuts the cleanups.
        Ending::Signal { signal, more } => {
            let handled = app_handles(signal);
            let forced = plan.force_quit_after.is_some_and(|count| more >= count);
            let cut = handled && ((slow && timeout.is_some()) || forced);
            let told = handled.then(|| signal_reason(signal));
            (told, None, Ends::By(signal), cut)
        }
        // SIGKILL: nothing in the program; the guardian runs `main`'s cleanup and the guards
        // with state, told `Died`.
        Ending::Kill => (None, None, Ends::By(libc::SIGKILL), false),
    };
    let died = "Died { signal: Some(SIGKILL=9) }";
    let runs = |told: &Option<String>| match told {
        None => Runs::Never,
        Some(told) if cut => Runs::AtMostOnce(told.clone()),
        Some(told) => Runs::Once(told.clone()),
    };
    let mut cleanups = BTreeMap::new();
    for (number, thread) in plan.threads.iter().enumerate() {
        let ends_itself = number == 0 && main_itself.is_some();
        for level in &thread.levels {
            let told = match level.kind {
                // Dropped on another thread before the ending: ran then, told `Returned`.
                Kind::Guard(Fate::DroppedElsewhere) => Runs::Once("Returned".to_owned()),
                Kind::Guard(Fate::Dismissed) => Runs::Never,
                // Held by another thread: pending, whoever made it.
                Kind::Guard(Fate::Held) => runs(&pending),
                Kind::GuardWith if plan.ending == Ending::Kill => Runs::Once(died.to_owned()),
                _ if plan.ending == Ending::Kill => Runs::Never,
                _ if ends_itself => runs(&main_itself),
                _ => runs(&pending),
            };
            cleanups.insert(format!("L{}", level.id), told);
        }
    }
    if plan.guardian {
        let main = match plan.ending {
            Ending::Kill => Runs::Once(died.to_owned()),
            _ => runs(&main_itself.clone().or_else(|| pending.clone())),
        };
        cleanups.insert("main".to_owned(), main);
    }
    // Generous: a bound on hanging, not a measure of speed. Grace periods are cut to three
    // quarters of the timeout, and the timeout cuts the rest.
    let within = Duration::from_secs(15)
        + match timeout {
            Some(timeout) => timeout,
            None => longest_grace,
        };
    Expected {
        cleanups,
        ends,
        within,
        cut,
    }
}

/// Holds how `plan`'s run ended, `took` after the ending, to what the table says.
fn check(plan: &Plan, ended: &Ended, took: Duration) -> Result<(), String> {
    let expected = expect(plan);
    let status = match (ended.status.code(), ended.status.signal()) {
        (Some(code), _) => Ends::Code(code),
        (_, Some(signal)) => Ends::By(signal),
        _ => return Err(format!("an odd status {:?}", ended.status)),
    };
    let context = || format!("marker {:?}; stderr: {}", ended.marker, ended.stderr);
    if status != expected.ends {
        return Err(format!(
            "ended {status:?}, not {:?}; {}",
            expected.ends,
            context()
        ));
    }
    if took > expected.within {
        return Err(format!("took {took:?}, more than {:?}", expected.within));
    }
    for (name, runs) in &expected.cleanups {
        let starts = ended.count(&format!("start {name}"));
        let end_prefix = format!("end {name} ");
        let ends: Vec<&String> = ended
            .marker
            .iter()
            .filter(|line| line.starts_with(&end_prefix))
            .collect();
        let ok = match runs {
            Runs::Never => starts == 0 && ends.is_empty(),
            Runs::Once(told) => {
                starts == 1 && ends.len() == 1 && ends[0] == &format!("{end_prefix}{told}")
            }
            Runs::AtMostOnce(told) => {
                starts <= 1
                    && ends.len() <= starts
                    && ends
                        .iter()
                        .all(|line| **line == format!("{end_prefix}{told}"))
            }
        };
        if !ok {
            return Err(format!(
                "{name} should run {runs:?}: started {starts}, ended {ends:?}; {}",
                context()
            ));
        }
    }
    // Nothing else ran.
    let known = |line: &String| {
        expected.cleanups.keys().any(|name| {
            line == &format!("start {name}") || line.starts_with(&format!("end {name} "))
        })
    };
    if let Some(stray) = ended.marker.iter().find(|line| !known(line)) {
        return Err(format!("a line of no cleanup: {stray:?}; {}", context()));
    }
    // Told to `tracing` (`traced`): every cleanup of the application's copy that ended in the
    // process is told, unless the process was cut short (the guardian's runs are not told).
    if plan.traced && !expected.cut && plan.ending != Ending::Kill {
        let ended_here = plan
            .threads
            .iter()
            .filter(|thread| thread.copy == Copy::App)
            .flat_map(|thread| &thread.levels)
            .filter(|level| {
                let end = format!("end L{} ", level.id);
                ended.marker.iter().any(|line| line.starts_with(&end))
            })
            .count();
        let told = ended
            .stderr
            .lines()
            .filter(|line| line.contains(" a cleanup ") && line.contains(" ended=\""))
            .count();
        if told < ended_here {
            return Err(format!(
                "{ended_here} cleanups ended, {told} told to tracing; {}",
                context()
            ));
        }
    }
    // The runtime's own words: a cut is said only where one may happen, and nothing else.
    for line in ended
        .stderr
        .lines()
        .filter(|line| line.starts_with("finally: "))
    {
        let said_cut = line.contains("did not finish") || line.contains("forced to quit");
        if !(said_cut && expected.cut) {
            return Err(format!("the runtime said {line:?}; {}", context()));
        }
    }
    Ok(())
}
