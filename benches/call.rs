//! What a guarded call costs next to the physical floor: the same tiny function bare, under a
//! hand-written Drop guard (return and panic only), under `scopeguard::defer!`, with a node
//! linked in a thread-local list (the least a registration costs), and under `#[with_cleanup]`;
//! the same as an `async fn`, polled to completion; nested 1, 10 and 100 deep; on 1 and on 2
//! threads at once; and a guard holding a value made at run time, with `scopeguard::guard` and
//! with `finally::guard`.
//!
//! ```text
//! cargo bench --bench call
//! ```
//!
//! Each group holds the cases to compare side by side, the Drop guard being the baseline, and
//! the run ends with the ratios the targets (issues 5 and 16) are stated in. A new way of calling is
//! one more case in each group and one more line in [`RATIOS`].

use std::cell::Cell;
use std::future::Future;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::atomic::AtomicPtr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc, Arc, Barrier};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use common::OtherLoad;
use criterion::{BenchmarkId, Criterion, Throughput};
use finally::with_cleanup;

mod common;

thread_local! {
    /// What every cleanup does: a side effect the optimiser cannot remove, and nothing more.
    /// Per thread: a shared counter would have the threads fight over its cache line, and the
    /// 2-thread figures would measure that instead of the guards.
    static CLEANUPS: Cell<u64> = const { Cell::new(0) };
}

/// The one cleanup of every case. Not inlined, so each case pays for the same call.
#[inline(never)]
fn cleanup() {
    CLEANUPS.with(|count| count.set(count.get() + 1));
}

/// The hand-written guard: what `scopeguard` does, and what covers return and panic only.
struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        cleanup();
    }
}

#[inline(never)]
fn bare(x: u64) -> u64 {
    black_box(x) + 1
}

#[inline(never)]
fn drop_guard(x: u64) -> u64 {
    let _guard = Guard;
    black_box(x) + 1
}

/// A node of [`linked`]'s list.
struct LinkedNode {
    _prev: *mut LinkedNode,
    _name: &'static str,
}

thread_local! {
    /// The innermost node of [`linked`]'s calls on this thread.
    static LINKED: AtomicPtr<LinkedNode> = const { AtomicPtr::new(std::ptr::null_mut()) };
}

/// The least a registration can cost: a node linked into a thread-local list for the call, and
/// unlinked after the cleanup, with nothing that makes it safe for another thread to read, and no
/// panic caught. What `finally` adds to a Drop guard is this, plus what makes it safe.
#[inline(never)]
fn linked(x: u64) -> u64 {
    LINKED.with(|top| {
        let prev = top.load(Relaxed);
        let mut node = LinkedNode {
            _prev: prev,
            _name: "cleanup of linked",
        };
        top.store(&mut node, Relaxed);
        let value = black_box(x) + 1;
        cleanup();
        top.store(prev, Relaxed);
        value
    })
}

#[inline(never)]
fn scopeguard_defer(x: u64) -> u64 {
    scopeguard::defer! { cleanup(); }
    black_box(x) + 1
}

#[with_cleanup(cleanup)]
#[inline(never)]
fn with_cleanup(x: u64) -> u64 {
    black_box(x) + 1
}

#[inline(never)]
async fn bare_async(x: u64) -> u64 {
    black_box(x) + 1
}

#[inline(never)]
async fn drop_guard_async(x: u64) -> u64 {
    let _guard = Guard;
    black_box(x) + 1
}

#[with_cleanup(cleanup)]
#[inline(never)]
async fn with_cleanup_async(x: u64) -> u64 {
    black_box(x) + 1
}

/// The waker of futures that never wait.
struct Unused;

impl Wake for Unused {
    fn wake(self: Arc<Self>) {}
}

/// Polls the future `$make` makes, which never waits, to completion, as an executor does: pinned
/// where it was made, polled once (a guarded future's cleanup is pending from its first poll
/// until it completes), dropped.
macro_rules! complete {
    ($make:expr, $waker:expr) => {
        match pin!($make).poll(&mut Context::from_waker($waker)) {
            Poll::Ready(value) => value,
            Poll::Pending => unreachable!("the futures measured here never wait"),
        }
    };
}

/// `depth` nested calls, each under its own guard.
#[inline(never)]
fn drop_guard_nested(depth: u32, x: u64) -> u64 {
    let _guard = Guard;
    if black_box(depth) <= 1 {
        black_box(x) + 1
    } else {
        drop_guard_nested(depth - 1, x) + 1
    }
}

/// `depth` nested guarded calls: `depth` cleanups pending at the innermost.
#[with_cleanup(cleanup)]
#[inline(never)]
fn with_cleanup_nested(depth: u32, x: u64) -> u64 {
    if black_box(depth) <= 1 {
        black_box(x) + 1
    } else {
        with_cleanup_nested(depth - 1, x) + 1
    }
}

/// A tiny function, called one way or another.
type Call = fn(u64) -> u64;

const DEPTHS: [u32; 3] = [1, 10, 100];
const THREADS: [usize; 2] = [1, 2];

/// One call of a tiny function, each way.
fn call(c: &mut Criterion) {
    let mut group = c.benchmark_group("call");
    group.bench_function("bare", |b| b.iter(|| bare(black_box(7))));
    group.bench_function("drop_guard", |b| b.iter(|| drop_guard(black_box(7))));
    group.bench_function("scopeguard", |b| b.iter(|| scopeguard_defer(black_box(7))));
    group.bench_function("linked", |b| b.iter(|| linked(black_box(7))));
    group.bench_function("with_cleanup", |b| b.iter(|| with_cleanup(black_box(7))));
    group.finish();
}

/// A guard whose cleanup uses a value made at run time, made and dropped: with `scopeguard`
/// (return and panic only) and with `finally` (which allocates once per guard); and, for
/// scale, that allocation alone.
fn guard(c: &mut Criterion) {
    let mut group = c.benchmark_group("guard");
    group.bench_function("scopeguard", |b| {
        b.iter(|| {
            let _guard = scopeguard::guard(black_box(7u64), |x| {
                black_box(x);
                cleanup();
            });
        })
    });
    // The one allocation a guard makes, alone: a box of about a guard's size, made and freed.
    group.bench_function("box", |b| {
        b.iter(|| {
            let boxed = Box::new([black_box(7u64); 16]);
            black_box(&boxed);
            drop(boxed);
            cleanup();
        })
    });
    group.bench_function("finally", |b| {
        b.iter(|| {
            let x = black_box(7u64);
            let _guard = finally::guard(move |_| {
                black_box(x);
                cleanup();
            });
        })
    });
    group.finish();
}

/// One call of a tiny `async fn`, each way, polled to completion.
fn async_call(c: &mut Criterion) {
    let waker = &Waker::from(Arc::new(Unused));
    let mut group = c.benchmark_group("async");
    group.bench_function("bare", |b| {
        b.iter(|| complete!(bare_async(black_box(7)), waker))
    });
    group.bench_function("drop_guard", |b| {
        b.iter(|| complete!(drop_guard_async(black_box(7)), waker))
    });
    group.bench_function("with_cleanup", |b| {
        b.iter(|| complete!(with_cleanup_async(black_box(7)), waker))
    });
    group.finish();
}

/// One outermost call of `depth` nested guarded calls; the throughput line is per guarded call.
fn nested(c: &mut Criterion) {
    let mut group = c.benchmark_group("nested");
    for depth in DEPTHS {
        group.throughput(Throughput::Elements(depth.into()));
        group.bench_with_input(BenchmarkId::new("drop_guard", depth), &depth, |b, &d| {
            b.iter(|| drop_guard_nested(d, black_box(7)))
        });
        group.bench_with_input(BenchmarkId::new("with_cleanup", depth), &depth, |b, &d| {
            b.iter(|| with_cleanup_nested(d, black_box(7)))
        });
    }
    group.finish();
}

/// Cost per call when `threads` threads call at once, each making as many calls as criterion
/// asks for: the time from the first thread's start to the last thread's end, divided by the
/// calls of one thread. With no shared lock, 2 threads on 2 free cores cost what 1 does; the
/// bare call shows what the machine itself gives (a busy or shared host makes 2 cost more).
fn threads(c: &mut Criterion) {
    let cases: [(&str, Call); 3] = [
        ("bare", bare),
        ("drop_guard", drop_guard),
        ("with_cleanup", with_cleanup),
    ];
    let mut group = c.benchmark_group("threads");
    for threads in THREADS {
        for (name, call) in cases {
            let mut workers = Workers::start(threads, call);
            group.bench_function(BenchmarkId::new(name, threads), |b| {
                b.iter_custom(|calls| workers.run(calls))
            });
            workers.stop();
        }
    }
    group.finish();
}

/// Threads that live through a whole benchmark, so that neither their start nor their first
/// guarded call (which takes the thread's slot in the registry) is timed.
struct Workers {
    orders: Vec<mpsc::Sender<u64>>,
    spans: mpsc::Receiver<(Instant, Instant)>,
    handles: Vec<thread::JoinHandle<()>>,
}

impl Workers {
    fn start(count: usize, call: Call) -> Self {
        let (report, spans) = mpsc::channel();
        let together = Arc::new(Barrier::new(count));
        let (orders, handles) = (0..count)
            .map(|_| {
                let (order, calls) = mpsc::channel::<u64>();
                let report = report.clone();
                let together = Arc::clone(&together);
                let handle = thread::spawn(move || {
                    call(black_box(0));
                    for calls in calls {
                        together.wait();
                        let start = Instant::now();
                        for i in 0..calls {
                            black_box(call(black_box(i)));
                        }
                        let _ = report.send((start, Instant::now()));
                    }
                });
                (order, handle)
            })
            .unzip();
        Workers {
            orders,
            spans,
            handles,
        }
    }

    /// Each thread makes `calls` calls; returns the span from the first start to the last end.
    fn run(&mut self, calls: u64) -> Duration {
        for order in &self.orders {
            order.send(calls).expect("a worker thread ended");
        }
        let (mut first, mut last) = self.spans.recv().expect("a worker thread ended");
        for _ in 1..self.orders.len() {
            let (start, end) = self.spans.recv().expect("a worker thread ended");
            first = first.min(start);
            last = last.max(end);
        }
        last - first
    }

    fn stop(self) {
        drop(self.orders);
        for handle in self.handles {
            handle.join().expect("a worker thread panicked");
        }
    }
}

/// The figures the targets are stated in, as (numerator, denominator) benchmark ids.
const RATIOS: &[(&str, &str)] = &[
    ("call/with_cleanup", "call/drop_guard"),
    ("call/scopeguard", "call/drop_guard"),
    ("call/linked", "call/drop_guard"),
    ("call/with_cleanup", "call/bare"),
    ("guard/finally", "guard/scopeguard"),
    ("guard/box", "guard/scopeguard"),
    ("guard/finally", "guard/box"),
    ("async/with_cleanup", "async/drop_guard"),
    ("nested/with_cleanup/1", "nested/drop_guard/1"),
    ("nested/with_cleanup/10", "nested/drop_guard/10"),
    ("nested/with_cleanup/100", "nested/drop_guard/100"),
    ("threads/with_cleanup/1", "threads/drop_guard/1"),
    ("threads/with_cleanup/2", "threads/drop_guard/2"),
    ("threads/bare/2", "threads/bare/1"),
    ("threads/drop_guard/2", "threads/drop_guard/1"),
    ("threads/with_cleanup/2", "threads/with_cleanup/1"),
];

/// Prints [`RATIOS`] from the estimates criterion wrote in this run (ids filtered out, or
/// estimates left by an earlier run, are skipped), plus the difference to a bare call.
/// `load` tells whether the 2-thread figures had both cores to themselves.
fn print_ratios(since: SystemTime, load: &OtherLoad) {
    let Some(home) = criterion_home() else {
        return;
    };
    let estimate = |id: &str| fresh_estimate(&home.join(id).join("new/estimates.json"), since);
    let mut lines = Vec::new();
    for (numerator, denominator) in RATIOS {
        if let (Some(n), Some(d)) = (estimate(numerator), estimate(denominator)) {
            lines.push(format!(
                "{numerator:>23} / {denominator:<21} {:>6.2}x",
                n / d
            ));
        }
    }
    if let (Some(guarded), Some(bare)) = (estimate("call/with_cleanup"), estimate("call/bare")) {
        let difference = guarded - bare;
        lines.push(format!(
            "{:>23} - {:<21} {difference:>+6.2} ns",
            "call/with_cleanup", "call/bare"
        ));
    }
    if !lines.is_empty() {
        println!(
            "\nratios (criterion's estimates; {} during the run)",
            load.report()
        );
        for line in lines {
            println!("  {line}");
        }
    }
}

/// Where criterion keeps its estimates: `$CRITERION_HOME`, else `criterion/` in the target
/// folder (`$CARGO_TARGET_DIR`, else the one this bench was built in).
fn criterion_home() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return Some(home.into());
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(Path::new(&target).join("criterion"));
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .map(|folder| folder.join("criterion"))
        .find(|home| home.is_dir())
}

/// The typical time of one iteration in ns (criterion's slope, else its mean), if `path` was
/// written since `since`. Criterion writes the JSON itself, in a fixed shape.
fn fresh_estimate(path: &Path, since: SystemTime) -> Option<f64> {
    if std::fs::metadata(path).ok()?.modified().ok()? < since {
        return None;
    }
    let json = std::fs::read_to_string(path).ok()?;
    let point = |statistic: &str| -> Option<f64> {
        let rest = &json[json.find(&format!("\"{statistic}\":{{"))?..];
        let rest = &rest[rest.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
        rest[..rest.find([',', '}'])?].parse().ok()
    };
    point("slope").or_else(|| point("mean"))
}

fn main() {
    let since = SystemTime::now();
    let load = OtherLoad::start();
    // 23 benchmarks of 1 s warm-up and 3 s measurement: about 100 s in all on 2 cores.
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .configure_from_args();
    call(&mut criterion);
    guard(&mut criterion);
    async_call(&mut criterion);
    nested(&mut criterion);
    threads(&mut criterion);
    criterion.final_summary();
    print_ratios(since, &load);
    black_box(CLEANUPS.with(Cell::get));
}
