//! How long a signal takes to reach the cleanup, next to the same program written with the
//! `ctrlc` crate; and what installing the handlers adds to start-up.
//!
//! ```text
//! cargo bench --bench latency
//! ```
//!
//! **Signal to cleanup.** Three child programs wait for SIGTERM: one runs its cleanup through
//! `#[finally::with_cleanup]`, one through a `ctrlc` handler that runs the same cleanup and
//! exits, as a program written with `ctrlc` does, and one is the floor of any design on
//! signal-hook: its handler wakes a thread through a futex, and the thread runs the cleanup at
//! once, with no bookkeeping at all. They are started in turn (finally, ctrlc, floor, finally,
//! …) so that drift in the machine's load touches all alike. Each child says `ready` on a
//! pipe once its handler is in place; the parent reads CLOCK_MONOTONIC right before
//! `kill(pid, SIGTERM)`, and the cleanup's first statement reads the same clock and prints it.
//! The latency is the difference. It is measured twice: signalling as soon as the child is
//! ready (a program stopped while it starts), and 100 ms later (a program that has settled, as
//! most are when they are stopped), since a runtime may finish setting up after `ready`.
//!
//! **Installing.** Fresh children time their first `finally::install(Options::new())` (and, for
//! scale, their first `ctrlc::set_handler`) on the same clock.
//!
//! **At scale.** Children with 250, 500 and 1,000 threads each in a guarded call, and with
//! 25,000, 50,000 and 100,000 pending guards, are sent SIGTERM; the time from `kill` to the
//! start of the last cleanup (`main`'s, which runs after every other) shows how the stop grows.
//!
//! **The guardian.** Children start the guardian as `#[with_cleanup(cleanup, guardian)]` on
//! `main` does, timing the start, next to the same child without it; the parent reads the
//! resident and proportional memory of each process from `/proc/PID/smaps_rollup`.
//!
//! **`guard_with` beside a guardian.** Children make and end guards with state in a loop, and
//! time each batch: without a guardian (the baseline), with one that runs, and with one that
//! is stopped (as on a loaded machine it may be held up), whose channel is soon full, both for
//! guards made and ended (their messages cancel out in the program) and for guards kept.
//!
//! The children are this program, run again with `FINALLY_BENCH_CHILD=NAME` in its environment
//! (not an argument, since cargo adds arguments of its own). Run by `cargo bench`, which passes
//! `--bench`, it makes 300 rounds; run by `cargo test --benches` (no `--bench`), a few, to show
//! that it works. Other arguments are ignored. Every wait is bounded: a child that does not
//! answer within 10 s is killed and the run fails naming it.

use std::os::unix::process::ExitStatusExt;
use std::process::{self, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};
use std::{env, thread};

use common::OtherLoad;
use libc::SIGTERM;

mod common;
#[path = "../tests/common/fresh_signals.rs"]
mod fresh_signals;
#[path = "../tests/common/lines.rs"]
mod lines;

/// Rounds of each program with `--bench`, and without it. The median of 100 moves by about 6%
/// from run to run here, more than the differences measured; of 300, by about 3%.
const ROUNDS: (usize, usize) = (300, 3);
/// Fresh processes timing their install, with `--bench` and without it: an install is mostly
/// the kernel starting a thread, which varies by ±30% here; the median of 31 moved by 20% from
/// run to run, too much to compare two installs by.
const INSTALLS: (usize, usize) = (301, 3);
/// Fresh processes measuring memory, and starting a guardian.
const PROCESSES: (usize, usize) = (31, 3);
/// The variable that tells this program to run as the child program it names.
const CHILD: &str = "FINALLY_BENCH_CHILD";
/// How long a settled child has run past its ready line when it is signalled: long enough for
/// the set-up a runtime finishes in the background (on its own thread, after `ready`) to be
/// over. Not a synchronisation: the child is ready either way; this is the age at which it is
/// signalled.
const SETTLED: Duration = Duration::from_millis(100);
/// How long any one step may take before the child is given up on.
const PATIENCE: Duration = Duration::from_secs(10);

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process on the machine.
///
/// Async-signal-safe (`clock_gettime` is), though here it never runs in a handler.
fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid out-parameter, and CLOCK_MONOTONIC always exists.
    let result = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    assert_eq!(result, 0, "clock_gettime(CLOCK_MONOTONIC)");
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

fn main() {
    if let Some(name) = env::var_os(CHILD) {
        return children::run(&name.to_string_lossy());
    }
    let full = env::args().any(|arg| arg == "--bench");
    let pick = |(bench, test): (usize, usize)| if full { bench } else { test };
    if !full {
        println!("latency: a short run to show it works; `cargo bench --bench latency` measures");
    }
    signal_to_cleanup(pick(ROUNDS), Duration::ZERO);
    signal_to_cleanup(pick(ROUNDS), SETTLED);
    install(pick(INSTALLS));
    memory(pick(PROCESSES));
    scale(pick(SCALE_ROUNDS), full);
    guardian(pick(PROCESSES));
    guard_with(pick(PROCESSES));
    durable(pick(PROCESSES));
}

/// The children of the durable section, and what each measures.
const DURABLE: [(&str, &str); 5] = [
    ("durable-baseline", "guard_with, no records (the baseline)"),
    ("durable-system", "guard_durable, Durability::System"),
    ("durable-disk", "guard_durable, Durability::Disk"),
    (
        "durable-system-held",
        "System, another durable guard held meanwhile",
    ),
    (
        "durable-disk-held",
        "Disk, another durable guard held meanwhile",
    ),
];

/// The durable section: `count` children of each kind, in turn; each reports the median time
/// of a guard made and ended over its batches. Alone, each guard makes its process's file and
/// removes it; with another guard held, the file stays and each guard appends two entries.
fn durable(count: usize) {
    let load = OtherLoad::start();
    let names = DURABLE.map(|(name, _)| name);
    let times = values(count, names, "guard").map(Summary::of);
    println!(
        "
durable guards (a 16-byte string) made and dropped, records in the temporary directory ({count} processes of each, in turn; {})",
        load.report()
    );
    println!("  {:<44} {}", "", Summary::HEADER);
    for ((_, what), summary) in DURABLE.iter().zip(&times) {
        println!("  {what:<44} {summary}  {}", summary.ratio(&times[0]));
    }
}

/// The children of the `guard_with` section, and what each measures.
const GUARD_WITH: [(&str, &str); 4] = [
    ("guard-with-alone", "guard_with, no guardian (the baseline)"),
    ("guard-with-running", "with a guardian that runs"),
    (
        "guard-with-stopped",
        "with a guardian stopped: made and ended",
    ),
    ("guard-with-kept", "with a guardian stopped: kept"),
];

/// The `guard_with` section: `count` children of each kind, in turn; each reports the median
/// time of a guard over its batches.
fn guard_with(count: usize) {
    let load = OtherLoad::start();
    let names = GUARD_WITH.map(|(name, _)| name);
    let times = values(count, names, "guard").map(Summary::of);
    println!(
        "
guard_with (a 16-byte string) made and dropped, beside a guardian ({count} processes of each, in turn; {})",
        load.report()
    );
    println!("  {:<44} {}", "", Summary::HEADER);
    for ((_, what), summary) in GUARD_WITH.iter().zip(&times) {
        println!("  {what:<44} {summary}  {}", summary.ratio(&times[0]));
    }
}

/// Rounds of each size at scale, with `--bench` and without it.
const SCALE_ROUNDS: (usize, usize) = (5, 1);

/// The at-scale section: for each size, `rounds` children, the time from `kill` to the last
/// cleanup, and that time per pending cleanup: linear growth keeps the latter flat.
fn scale(rounds: usize, full: bool) {
    let load = OtherLoad::start();
    println!(
        "
a stop at scale: from kill(SIGTERM) to the start of the last cleanup"
    );
    println!("({rounds} children of each size; {})", load.report());
    let (threads, guards) = if full {
        ([250, 500, 1000], [25_000, 50_000, 100_000])
    } else {
        ([10, 20, 40], [100, 200, 400])
    };
    let sizes = threads
        .map(|n| ("scale-threads", "threads", n))
        .into_iter()
        .chain(guards.map(|n| ("scale-guards", "guards", n)));
    for (name, what, size) in sizes {
        let mut times: Vec<u64> = (0..rounds).map(|_| stop_at_scale(name, size)).collect();
        times.sort_unstable();
        let median = times[times.len() / 2];
        println!(
            "  {size:>7} pending {what:<8} {:>10.1} ms, {:>7.0} ns a cleanup",
            median as f64 / 1e6,
            median as f64 / (size + 1) as f64
        );
    }
}

/// One child `name` with `size` pending cleanups, stopped: nanoseconds from `kill` to the start
/// of its last cleanup, which says how many ran before it.
fn stop_at_scale(name: &str, size: usize) -> u64 {
    let mut child = Child::start_with(name, &[(SIZE, &size.to_string())]);
    child.expect("ready");
    let sent = monotonic_ns();
    // SAFETY: `kill` with the pid of our own child, which is not reaped yet.
    if unsafe { libc::kill(child.pid(), SIGTERM) } != 0 {
        child.fail(&format!("kill: {}", std::io::Error::last_os_error()));
    }
    let ran = child.value("ran");
    let last = child.value("last");
    if ran != size as u64 {
        child.fail(&format!("ran {ran} cleanups before the last, not {size}"));
    }
    if child.wait().signal() != Some(SIGTERM) {
        child.fail("did not end by SIGTERM");
    }
    last - sent
}

/// The variable that tells a child at scale how many cleanups to have pending.
const SIZE: &str = "FINALLY_BENCH_SIZE";

/// The guardian section: the start's time, and each process's memory, with and without it.
fn guardian(count: usize) {
    let load = OtherLoad::start();
    let mut started = Vec::new();
    let [mut without, mut program, mut guardian] = [(); 3].map(|()| Vec::new());
    for _ in 0..count {
        for (name, with) in [("guardian-off", false), ("guardian-on", true)] {
            let mut child = Child::start(name);
            let took = child.value("started");
            let pid = child.value("guardian");
            child.expect("ready");
            let memory =
                |pid: u64| smaps_rollup(pid).unwrap_or_else(|| child_fails(name, "smaps_rollup"));
            if with {
                started.push(took);
                program.push(memory(u64::from(child.pid() as u32)));
                guardian.push(memory(pid));
            } else {
                without.push(memory(u64::from(child.pid() as u32)));
            }
            // SIGKILL: the guardian, if any, runs the (empty) cleanup and ends.
            child.reap();
        }
    }
    let median = |mut values: Vec<(u64, u64)>, pick: fn(&(u64, u64)) -> u64| {
        values.sort_unstable_by_key(pick);
        pick(&values[values.len() / 2])
    };
    println!(
        "
the guardian: starting it, and memory (median of {count}; {})",
        load.report()
    );
    println!("  {:<44} {}", "", Summary::HEADER);
    println!(
        "  {:<44} {}",
        "start (two forks, its channel)",
        Summary::of(started)
    );
    for (what, values) in [
        ("the program without a guardian", without),
        ("the program with one", program),
        ("the guardian itself", guardian),
    ] {
        println!(
            "  {what:<44} resident {:>6} KiB, proportional {:>6} KiB",
            median(values.clone(), |v| v.0),
            median(values, |v| v.1)
        );
    }
}

/// Resident and proportional set sizes of process `pid`, in KiB.
fn smaps_rollup(pid: u64) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|line| line.starts_with(name))?;
        line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some((field("Rss:")?, field("Pss:")?))
}

fn child_fails(name: &str, what: &str) -> ! {
    eprintln!("latency: child `{name}`: cannot read its {what}");
    process::exit(1);
}

/// The memory section: how much resident memory `count` fresh children gain from signal-hook's
/// thread alone, and from `finally` installed and made hot (a thousand guarded calls and more),
/// interleaved. The difference is what `finally` adds beyond signal-hook's thread.
fn memory(count: usize) {
    let load = OtherLoad::start();
    let [alone, finally] = values(count, ["memory-signal-hook", "memory-finally"], "grew");
    let median = |mut kib: Vec<u64>| {
        kib.sort_unstable();
        kib[kib.len() / 2]
    };
    let (alone, finally) = (median(alone), median(finally));
    println!(
        "\nresident memory a fresh process gains, median of {count}; {}",
        load.report()
    );
    println!(
        "  {:<36} {alone:>6} KiB",
        "signal-hook's signal thread alone"
    );
    println!("  {:<36} {finally:>6} KiB", "finally, installed and hot");
    println!(
        "  {:<36} {:>6} KiB",
        "finally beyond signal-hook's thread",
        finally.saturating_sub(alone)
    );
}

/// The signal-to-cleanup section: `rounds` children of each program, interleaved, each
/// signalled `after` its ready line.
fn signal_to_cleanup(rounds: usize, after: Duration) {
    let load = OtherLoad::start();
    let [mut finally, mut ctrlc, mut floor] = [(); 3].map(|()| Vec::with_capacity(rounds));
    let by_sigterm = |status: ExitStatus| status.signal() == Some(SIGTERM);
    let by_code = |status: ExitStatus| status.code() == Some(children::EXIT_CODE);
    for _ in 0..rounds {
        finally.push(latency("finally", after, by_sigterm));
        ctrlc.push(latency("ctrlc", after, by_code));
        floor.push(latency("floor", after, by_code));
    }
    let [finally, ctrlc, floor] = [finally, ctrlc, floor].map(Summary::of);
    let when = match after.as_millis() {
        0 => "as soon as it is ready".to_owned(),
        ms => format!("{ms} ms after it is ready"),
    };
    println!("\nsignal to cleanup: from kill(SIGTERM), {when}, to the cleanup's first statement");
    println!(
        "({rounds} children of each program, started in turn; {})",
        load.report()
    );
    println!("  {:<36} {}", "", Summary::HEADER);
    println!("  {:<36} {finally}", "#[finally::with_cleanup]");
    println!("  {:<36} {ctrlc}", "ctrlc handler (cleanup, then exit)");
    println!("  {:<36} {floor}", "floor: signal-hook, futex, cleanup");
    println!("  {:<36} {}", "finally / ctrlc", finally.ratio(&ctrlc));
    println!("  {:<36} {}", "finally / floor", finally.ratio(&floor));
}

/// One round: starts child `name`, signals it `after` it is ready, and returns the nanoseconds
/// from just before `kill` to the start of its cleanup. Fails unless `ended_well` accepts how
/// the child ended.
fn latency(name: &str, after: Duration, ended_well: impl Fn(ExitStatus) -> bool) -> u64 {
    let mut child = Child::start(name);
    child.expect("ready");
    if !after.is_zero() {
        thread::sleep(after);
    }
    let sent = monotonic_ns();
    // SAFETY: `kill` with the pid of our own child, which is not reaped yet.
    if unsafe { libc::kill(child.pid(), SIGTERM) } != 0 {
        child.fail(&format!("kill: {}", std::io::Error::last_os_error()));
    }
    let started = child.value("cleanup");
    let status = child.wait();
    if !ended_well(status) {
        child.fail(&format!("ended with {status} after SIGTERM"));
    }
    started
        .checked_sub(sent)
        .unwrap_or_else(|| child.fail("its cleanup started before the signal was sent"))
}

/// `count` rounds of the child programs `names`, started in turn, each saying `key NUMBER` and
/// ending well: the numbers, by program.
fn values<const N: usize>(count: usize, names: [&str; N], key: &str) -> [Vec<u64>; N] {
    let mut values = names.map(|_| Vec::with_capacity(count));
    for _ in 0..count {
        for (name, values) in names.iter().zip(&mut values) {
            let mut child = Child::start(name);
            values.push(child.value(key));
            let status = child.wait();
            if !status.success() {
                child.fail(&format!("ended with {status}"));
            }
        }
    }
    values
}

/// The install section: `count` fresh children time their first install, interleaved.
fn install(count: usize) {
    let load = OtherLoad::start();
    let [finally, ctrlc] = values(count, ["install-finally", "install-ctrlc"], "installed");
    let (finally, ctrlc) = (Summary::of(finally), Summary::of(ctrlc));
    println!("\ninstalling the handlers: the first call in a fresh process");
    println!(
        "({count} processes of each, started in turn; {})",
        load.report()
    );
    println!("  {:<36} {}", "", Summary::HEADER);
    println!("  {:<36} {finally}", "finally::install(Options::new())");
    println!("  {:<36} {ctrlc}", "ctrlc::set_handler (for scale)");
}

/// Quartiles, 99th percentile and maximum (nearest rank) of a set of durations in nanoseconds.
///
/// The quartiles are there because the median alone can mislead: when a wake-up crosses to a
/// CPU in a deep idle state, it costs some tens of microseconds more, so the times of a settled
/// program fall in two groups, and a median between them swings with the share of each.
struct Summary {
    p25: u64,
    median: u64,
    p75: u64,
    p99: u64,
    max: u64,
}

impl Summary {
    const HEADER: &'static str = "       p25     median        p75        p99        max";

    fn of(mut times: Vec<u64>) -> Self {
        times.sort_unstable();
        let rank = |fraction: f64| {
            let rank = (fraction * times.len() as f64).ceil() as usize;
            times[rank.clamp(1, times.len()) - 1]
        };
        Summary {
            p25: rank(0.25),
            median: rank(0.5),
            p75: rank(0.75),
            p99: rank(0.99),
            max: rank(1.0),
        }
    }

    /// The quartiles of `self` over those of `base`, median first.
    fn ratio(&self, base: &Summary) -> String {
        let ratio = |ours: u64, theirs: u64| ours as f64 / theirs as f64;
        format!(
            "{:>9.2}x median (p25 {:.2}x, p75 {:.2}x)",
            ratio(self.median, base.median),
            ratio(self.p25, base.p25),
            ratio(self.p75, base.p75)
        )
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cells = [self.p25, self.median, self.p75, self.p99, self.max]
            .map(|ns| format!("{:>10}", format!("{:.1} µs", ns as f64 / 1000.0)));
        write!(f, "{}", cells.join(" "))
    }
}

/// A child process (this program, run again as child program `name`) and its stdout's lines.
///
/// Dropped before it was waited for (a panic in the parent), it is killed and reaped.
struct Child {
    name: String,
    child: process::Child,
    lines: Receiver<String>,
    reaped: bool,
}

impl Child {
    fn start(name: &str) -> Self {
        Child::start_with(name, &[])
    }

    /// Starts child program `name` with `variables` in its environment.
    fn start_with(name: &str, variables: &[(&str, &str)]) -> Self {
        let exe = env::current_exe().expect("the path of this program");
        let mut command = Command::new(exe);
        command
            .envs(variables.iter().copied())
            .env(CHILD, name)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        fresh_signals::reset_signals(&mut command);
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("latency: cannot start child `{name}`: {error}"));
        let lines = lines::lines(child.stdout.take().expect("a piped stdout"));
        Child {
            name: name.to_owned(),
            child,
            lines,
            reaped: false,
        }
    }

    fn pid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    /// The child's next line, within [`PATIENCE`].
    fn line(&mut self, waiting_for: &str) -> String {
        match self.lines.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => self.fail(&format!(
                "no `{waiting_for}` line within {} s",
                PATIENCE.as_secs()
            )),
            Err(RecvTimeoutError::Disconnected) => {
                self.fail(&format!("closed its stdout before a `{waiting_for}` line"))
            }
        }
    }

    fn expect(&mut self, expected: &str) {
        let line = self.line(expected);
        if line != expected {
            self.fail(&format!("said `{line}`, not `{expected}`"));
        }
    }

    /// The number on the child's next line, which must read `key NUMBER`.
    fn value(&mut self, key: &str) -> u64 {
        let line = self.line(key);
        match line.strip_prefix(key).map(|rest| rest.trim().parse()) {
            Some(Ok(value)) => value,
            _ => self.fail(&format!("said `{line}`, not `{key} NUMBER`")),
        }
    }

    /// Reaps the child, which is ending; kills it if it has not ended within [`PATIENCE`].
    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.reaped = true;
                    return status;
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(1)),
                Ok(None) => self.fail(&format!("did not end within {} s", PATIENCE.as_secs())),
                Err(error) => self.fail(&format!("cannot be waited for: {error}")),
            }
        }
    }

    /// Ends the run, after killing and reaping the child, with a message that names it.
    fn fail(&mut self, what: &str) -> ! {
        let pid = self.pid();
        self.reap();
        eprintln!("latency: child `{}` (pid {pid}): {what}", self.name);
        process::exit(1);
    }

    fn reap(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.reaped = true;
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.reap();
    }
}

/// The programs the parent measures, each run as this program with `FINALLY_BENCH_CHILD=NAME`.
mod children {
    use std::io::Write;
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
    use std::sync::mpsc;
    use std::{process, thread};

    use super::monotonic_ns;

    /// How the `ctrlc` and floor programs exit after their cleanup: 128 + SIGTERM, what most
    /// such programs choose, since `ctrlc` leaves re-raising the signal to them.
    pub const EXIT_CODE: i32 = 128 + libc::SIGTERM;

    pub fn run(name: &str) {
        match name {
            "finally" => finally_program(),
            "ctrlc" => ctrlc_program(),
            "floor" => floor_program(),
            "install-finally" => {
                let start = monotonic_ns();
                let installed = finally::install(finally::Options::new());
                let elapsed = monotonic_ns() - start;
                installed.expect("finally::install");
                println!("installed {elapsed}");
            }
            "memory-signal-hook" => {
                let before = resident_kib();
                let mut signals = signal_hook::iterator::Signals::new([
                    libc::SIGINT,
                    libc::SIGTERM,
                    libc::SIGHUP,
                    libc::SIGQUIT,
                ])
                .expect("signal-hook");
                thread::spawn(move || for _ in signals.forever() {});
                settle_then_report(before);
            }
            "memory-finally" => {
                let before = resident_kib();
                for _ in 0..2000 {
                    guarded_nothing();
                }
                settle_then_report(before);
            }
            "scale-threads" => scale_threads(size()),
            "scale-guards" => scale_guards(size()),
            "guardian-on" => {
                let start = monotonic_ns();
                let cleanup = finally::__private::cleanup(nothing);
                let _guardian = finally::__private::guardian(cleanup);
                println!("started {}", monotonic_ns() - start);
                println!(
                    "guardian {}",
                    finally::__private::guardian_pid().unwrap_or(0)
                );
                ready_and_wait()
            }
            "guardian-off" => {
                println!("started 0");
                println!("guardian 0");
                ready_and_wait()
            }
            "guard-with-alone" => guard_with_batches(false, false),
            "guard-with-running" => {
                let _guardian = finally::__private::guardian(finally::__private::cleanup(nothing));
                guard_with_batches(false, false)
            }
            "guard-with-stopped" | "guard-with-kept" => {
                let _guardian = finally::__private::guardian(finally::__private::cleanup(nothing));
                let guardian = finally::__private::guardian_pid().expect("a guardian") as i32;
                stop(guardian, true);
                guard_with_batches(true, name == "guard-with-kept");
                stop(guardian, false);
            }
            "durable-baseline" => durable_batches(None, false),
            "durable-system" | "durable-system-held" => {
                durable_batches(Some(finally::Durability::System), name.ends_with("held"));
            }
            "durable-disk" | "durable-disk-held" => {
                durable_batches(Some(finally::Durability::Disk), name.ends_with("held"));
            }
            "install-ctrlc" => {
                let start = monotonic_ns();
                let installed = ctrlc::set_handler(|| {});
                let elapsed = monotonic_ns() - start;
                installed.expect("ctrlc::set_handler");
                println!("installed {elapsed}");
            }
            _ => {
                eprintln!("latency: no child program named `{name}`");
                process::exit(2);
            }
        }
    }

    fn nothing() {}

    #[finally::guardian_cleanup]
    fn nothing_with(_: &str, _: &finally::Exit) {}

    /// Batches of guards with state, made and dropped (or kept, if `kept`, until the end);
    /// reports the median time of a guard in a batch, in nanoseconds. After the first batch
    /// the channel of a `stopped` guardian is full.
    fn guard_with_batches(stopped: bool, kept: bool) {
        const BATCHES: usize = 21;
        const GUARDS: usize = 1000;
        let mut keep = Vec::with_capacity(if kept { BATCHES * GUARDS } else { 0 });
        let mut times: Vec<u64> = (0..BATCHES)
            .map(|_| {
                let start = monotonic_ns();
                for _ in 0..GUARDS {
                    let guard = finally::guard_with(String::from("0123456789abcdef"), nothing_with);
                    if kept {
                        keep.push(guard);
                    }
                }
                (monotonic_ns() - start) / GUARDS as u64
            })
            .collect();
        assert!(!stopped || finally::guardian_status().is_ok(), "a guardian");
        keep.into_iter().for_each(finally::Guard::dismiss);
        times.sort_unstable();
        println!("guard {}", times[BATCHES / 2]);
    }

    /// Batches of durable guards made and dropped (`None`: `guard_with` guards, without
    /// records), another held meanwhile if `held`; reports the median time of a guard in a
    /// batch, in nanoseconds.
    fn durable_batches(durability: Option<finally::Durability>, held: bool) {
        const BATCHES: usize = 7;
        // A flush to the disk takes milliseconds: fewer of those.
        let guards = match durability {
            Some(finally::Durability::Disk) => 10,
            _ => 100,
        };
        let dir = std::env::temp_dir().join(format!("finally-bench-{}", std::process::id()));
        if let Some(durability) = durability {
            finally::keep_records(&dir, durability).expect("a directory for the records");
        }
        let state = || String::from("0123456789abcdef");
        let make = || match durability {
            Some(_) => finally::guard_durable(state(), nothing_with),
            None => finally::guard_with(state(), nothing_with),
        };
        let holding = held.then(make);
        let mut times: Vec<u64> = (0..BATCHES)
            .map(|_| {
                let start = monotonic_ns();
                for _ in 0..guards {
                    drop(make());
                }
                (monotonic_ns() - start) / guards as u64
            })
            .collect();
        drop(holding);
        let _ = std::fs::remove_dir_all(&dir);
        times.sort_unstable();
        println!("guard {}", times[BATCHES / 2]);
    }

    /// Stops process `pid`, and waits until it is, or lets it go on.
    fn stop(pid: i32, stop: bool) {
        let signal = if stop { libc::SIGSTOP } else { libc::SIGCONT };
        // SAFETY: signalling our own guardian.
        unsafe { libc::kill(pid, signal) };
        let stopped = || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('T'))
        };
        let start = std::time::Instant::now();
        while stop && !stopped() && start.elapsed() < super::PATIENCE {
            thread::yield_now();
        }
    }

    #[finally::with_cleanup(nothing)]
    fn guarded_nothing() {}

    /// The size a child at scale was given.
    fn size() -> usize {
        std::env::var(super::SIZE)
            .ok()
            .and_then(|size| size.parse().ok())
            .expect("FINALLY_BENCH_SIZE")
    }

    /// The cleanups that ran before the last.
    static RAN: AtomicU64 = AtomicU64::new(0);

    fn count() {
        RAN.fetch_add(1, SeqCst);
    }

    /// `main`'s cleanup, which runs after every other: when, and after how many.
    fn last() {
        let started = monotonic_ns();
        println!("ran {}", RAN.load(SeqCst));
        println!("last {started}");
    }

    #[finally::with_cleanup(count)]
    fn pending_on_a_thread(entered: mpsc::Sender<()>) {
        entered.send(()).expect("the main thread listens");
        loop {
            thread::park();
        }
    }

    /// `threads` threads, each in a guarded call, inside `main`'s.
    #[finally::with_cleanup(last)]
    fn scale_threads(threads: usize) {
        let (entered, all_in) = mpsc::channel();
        for _ in 0..threads {
            let entered = entered.clone();
            thread::spawn(move || pending_on_a_thread(entered));
        }
        for _ in 0..threads {
            all_in.recv().expect("every thread enters");
        }
        ready_and_wait()
    }

    /// `guards` pending guards, inside `main`'s guarded call.
    #[finally::with_cleanup(last)]
    fn scale_guards(guards: usize) {
        let _pending: Vec<finally::Guard> =
            (0..guards).map(|_| finally::guard(|_| count())).collect();
        ready_and_wait()
    }

    /// The process's resident memory, from `/proc/self/status`.
    fn resident_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/self/status")
    }

    /// Lets the threads just started finish starting (the measurement's moment, not a
    /// synchronisation), then says how much the process grew.
    fn settle_then_report(before: u64) {
        thread::sleep(std::time::Duration::from_millis(50));
        println!("grew {}", resident_kib().saturating_sub(before));
    }

    /// The cleanup both programs run. Its first statement takes the time.
    fn cleanup() {
        let started = monotonic_ns();
        println!("cleanup {started}");
    }

    /// Says it is ready, then waits to be signalled.
    fn ready_and_wait() -> ! {
        println!("ready");
        std::io::stdout().flush().expect("flush stdout");
        loop {
            thread::park();
        }
    }

    /// The handlers are in place once the first guarded call has started.
    #[finally::with_cleanup(cleanup)]
    fn finally_program() {
        ready_and_wait()
    }

    fn ctrlc_program() {
        ctrlc::set_handler(|| {
            cleanup();
            process::exit(EXIT_CODE);
        })
        .expect("ctrlc::set_handler");
        ready_and_wait()
    }

    /// The least a design on signal-hook can do: its handler sets a futex word and wakes the
    /// thread sleeping on it, which runs the cleanup at once.
    fn floor_program() {
        static WOKEN: AtomicU32 = AtomicU32::new(0);
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            let action = || {
                WOKEN.store(1, SeqCst);
                futex(&WOKEN, libc::FUTEX_WAKE, 1);
            };
            // SAFETY: an atomic store and a futex wake are async-signal-safe.
            unsafe { signal_hook::low_level::register(signal, action) }.expect("signal-hook");
        }
        thread::spawn(|| {
            while WOKEN.load(SeqCst) == 0 {
                futex(&WOKEN, libc::FUTEX_WAIT, 0);
            }
            cleanup();
            process::exit(EXIT_CODE);
        });
        ready_and_wait()
    }

    /// `futex(2)` on `word`: FUTEX_WAIT while it holds `value`, or FUTEX_WAKE `value` threads.
    fn futex(word: &AtomicU32, operation: libc::c_int, value: u32) {
        let forever: *const libc::timespec = std::ptr::null();
        // SAFETY: `word` is a live, aligned `u32`; a null time-out waits for ever or is ignored.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                operation | libc::FUTEX_PRIVATE_FLAG,
                value,
                forever,
            )
        };
    }
}
