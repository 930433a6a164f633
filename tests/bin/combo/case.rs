//! Runs one generated case of the combination test: `combo SEED INDEX` makes the plan of
//! `tests/common/plan.rs`, sets the options, starts the threads, each nesting its guarded
//! functions and guards, prints `ready` once all are at their bottom, and then waits for the
//! test: a signal, or a command on stdin (`return`, `panic`, `exit THREAD CODE`).
//!
//! Each cleanup writes `start L<id>` and `end L<id> EXIT` to the marker file (see
//! `tests/common/child.rs`); `main`'s, in the program with the guardian, is named `main`.

use std::any::Any;
use std::io::BufRead;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;
use std::{env, fmt, process, thread};

use finally::with_cleanup;
use tokio::runtime::Runtime;

#[path = "../../common/child.rs"]
mod child;
// Shared with the test, which uses more of it.
#[allow(dead_code)]
#[path = "../../common/plan.rs"]
mod plan;
#[allow(dead_code)]
#[path = "../../common/random.rs"]
mod random;

use plan::{Bottom, Cleanup, Copy, Fate, Grace, Kind, Level, Plan};

/// The case's plan: a cleanup looks up how it behaves there, on whatever thread it runs.
static PLAN: OnceLock<Plan> = OnceLock::new();

/// The lock that looping threads hold across their guarded calls, and that some cleanups need.
static LOCK: Mutex<()> = Mutex::new(());

/// `main`'s cleanup, in the program with the guardian.
#[allow(dead_code)] // the program without it has none
pub fn main_cleanup(exit: &finally::Exit) {
    child::mark("start main");
    child::mark(&format!("end main {exit:?}"));
}

/// The cleanup of level `id`, told `exit` (of either copy).
fn clean(id: u32, cleanup: Cleanup, exit: &dyn fmt::Debug) {
    child::mark(&format!("start L{id}"));
    match cleanup {
        Cleanup::Quick => {}
        Cleanup::Locking => drop(LOCK.lock().unwrap_or_else(PoisonError::into_inner)),
        Cleanup::Slow => thread::sleep(Duration::from_secs(60)),
    }
    child::mark(&format!("end L{id} {exit:?}"));
}

/// How the cleanup of level `id` behaves: from the plan (in the guardian, made before it, a
/// guard's state says).
fn cleanup_of(id: u32) -> Cleanup {
    PLAN.get()
        .map_or(Cleanup::Quick, |plan| plan.level(id).cleanup)
}

fn app_cleanup<const N: u32>(exit: &finally::Exit) {
    clean(N, cleanup_of(N), exit);
}

fn library_cleanup<const N: u32>(exit: &finally_second::Exit) {
    clean(N, cleanup_of(N), exit);
}

/// The cleanup of a guard with state: runs in the guardian too.
#[finally::guardian_cleanup]
fn with_state(state: &(u32, bool), exit: &finally::Exit) {
    let cleanup = match state.1 {
        true => Cleanup::Locking,
        false => Cleanup::Quick,
    };
    clean(state.0, cleanup, exit);
}

/// The body of a guarded function: the levels below it.
type Body<'a> = &'a mut dyn FnMut();

#[with_cleanup(app_cleanup::<N>)]
fn app<const N: u32>(body: Body) {
    body();
}

#[with_cleanup(app_cleanup::<N>, grace = "300ms")]
fn app_short<const N: u32>(body: Body) {
    body();
}

#[with_cleanup(app_cleanup::<N>, grace = "2s")]
fn app_long<const N: u32>(body: Body) {
    body();
}

#[with_cleanup(library_cleanup::<N>, crate = "::finally_second")]
fn library<const N: u32>(body: Body) {
    body();
}

#[with_cleanup(library_cleanup::<N>, crate = "::finally_second", grace = "300ms")]
fn library_short<const N: u32>(body: Body) {
    body();
}

#[with_cleanup(library_cleanup::<N>, crate = "::finally_second", grace = "2s")]
fn library_long<const N: u32>(body: Body) {
    body();
}

/// A guarded future: ready once polled, then waits for good, or (`cooperative`) for its copy's
/// stop.
#[with_cleanup(app_cleanup::<N>)]
async fn app_async<const N: u32>(ready: Sender<()>, cooperative: bool) {
    ready.send(()).unwrap();
    match cooperative {
        true => drop(finally::stop_signal().await),
        false => std::future::pending().await,
    }
}

#[with_cleanup(library_cleanup::<N>, crate = "::finally_second")]
async fn library_async<const N: u32>(ready: Sender<()>, cooperative: bool) {
    ready.send(()).unwrap();
    match cooperative {
        true => drop(finally_second::stop_signal().await),
        false => std::future::pending().await,
    }
}

#[with_cleanup(|| {})]
fn app_tiny() {}

#[with_cleanup(|| {}, crate = "::finally_second")]
fn library_tiny() {}

/// `$function::<id>($args)`, for an id known at run time.
macro_rules! dispatch {
    ($function:ident, $id:expr, $args:tt) => {
        dispatch!(@ $function, $id, $args, 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15)
    };
    (@ $function:ident, $id:expr, $args:tt, $($n:literal)*) => {
        match $id {
            $($n => $function::<$n> $args,)*
            id => unreachable!("level {id} beyond plan::MOST_LEVELS"),
        }
    };
}

fn function(copy: Copy, grace: Grace, id: u32, body: Body) {
    match (copy, grace) {
        (Copy::App, Grace::None) => dispatch!(app, id, (body)),
        (Copy::App, Grace::Short) => dispatch!(app_short, id, (body)),
        (Copy::App, Grace::Long) => dispatch!(app_long, id, (body)),
        (Copy::Library, Grace::None) => dispatch!(library, id, (body)),
        (Copy::Library, Grace::Short) => dispatch!(library_short, id, (body)),
        (Copy::Library, Grace::Long) => dispatch!(library_long, id, (body)),
    }
}

/// Drives level `id`'s guarded future on this thread until it returns.
fn run_async(copy: Copy, id: u32, ready: Sender<()>, cooperative: bool) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    match copy {
        Copy::App => dispatch!(drive_app, id, (&runtime, ready, cooperative)),
        Copy::Library => dispatch!(drive_library, id, (&runtime, ready, cooperative)),
    }
}

fn drive_app<const N: u32>(runtime: &Runtime, ready: Sender<()>, cooperative: bool) {
    runtime.block_on(app_async::<N>(ready, cooperative));
}

fn drive_library<const N: u32>(runtime: &Runtime, ready: Sender<()>, cooperative: bool) {
    runtime.block_on(library_async::<N>(ready, cooperative));
}

/// A guard of either copy; of the application's, every other one holds its value (its id),
/// and is disarmed by taking the value back.
enum Guard {
    App(finally::Guard),
    AppValue(finally::Guard<u32>),
    Library(finally_second::Guard),
}

impl Guard {
    fn new(copy: Copy, id: u32) -> Guard {
        let cleanup = cleanup_of(id);
        match copy {
            Copy::App if id % 2 == 0 => {
                Guard::AppValue(finally::guard_value(id, move |id, exit| {
                    clean(*id, cleanup, exit);
                }))
            }
            Copy::App => Guard::App(finally::guard(move |exit| clean(id, cleanup, exit))),
            Copy::Library => {
                Guard::Library(finally_second::guard(move |exit| clean(id, cleanup, exit)))
            }
        }
    }

    fn dismiss(self) {
        match self {
            Guard::App(guard) => guard.dismiss(),
            Guard::AppValue(guard) => drop(finally::Guard::into_inner(guard)),
            Guard::Library(guard) => guard.dismiss(),
        }
    }
}

/// What the holding thread is given: a guard to keep for good, or one to drop at once.
enum ToHolder {
    Keep(Guard),
    Drop(Guard, Sender<()>),
}

/// A command from the test.
enum Command {
    Return,
    Panic,
    Exit(i32),
}

/// What a thread needs while it makes its levels and waits at their bottom.
struct Thread {
    copy: Copy,
    bottom: Bottom,
    /// Says the thread is at its bottom.
    ready: Sender<()>,
    commands: Receiver<Command>,
    holder: Sender<ToHolder>,
}

impl Thread {
    /// Makes `levels`, outermost first, then waits at the bottom.
    fn run(&self, levels: &[Level]) {
        let Some((level, below)) = levels.split_first() else {
            return self.bottom();
        };
        let mut inner = || self.run(below);
        match level.kind {
            Kind::Function(grace) => function(self.copy, grace, level.id, &mut inner),
            Kind::Async => run_async(
                self.copy,
                level.id,
                self.ready.clone(),
                self.bottom == Bottom::Cooperative,
            ),
            Kind::Guard(Fate::Kept) => {
                let _kept = Guard::new(self.copy, level.id);
                inner();
            }
            Kind::Guard(Fate::Held) => {
                let guard = Guard::new(self.copy, level.id);
                self.holder.send(ToHolder::Keep(guard)).unwrap();
                inner();
            }
            Kind::Guard(Fate::DroppedElsewhere) => {
                let guard = Guard::new(self.copy, level.id);
                let (dropped, was_dropped) = mpsc::channel();
                self.holder.send(ToHolder::Drop(guard, dropped)).unwrap();
                was_dropped.recv().unwrap();
                inner();
            }
            Kind::Guard(Fate::Dismissed) => {
                Guard::new(self.copy, level.id).dismiss();
                inner();
            }
            // Every other one durable: its record goes as its cleanup runs, in the program
            // or, after a `kill -9`, in the guardian.
            Kind::GuardWith => {
                let locking = level.cleanup == Cleanup::Locking;
                let _kept = match level.id % 2 {
                    0 => finally::guard_with((level.id, locking), with_state),
                    _ => finally::guard_durable((level.id, locking), with_state),
                };
                inner();
            }
        }
    }

    /// The bottom: says it is ready, then does what the plan says until a command tells it to
    /// end (or, cooperative, its copy's stop is requested).
    fn bottom(&self) {
        self.ready.send(()).unwrap();
        let command = match self.bottom {
            Bottom::Wait => self.commands.recv().ok(),
            Bottom::Cooperative => loop {
                if self.stop_requested() {
                    break None;
                }
                match self.commands.recv_timeout(Duration::from_millis(5)) {
                    Ok(command) => break Some(command),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break None,
                }
            },
            Bottom::Loop => loop {
                {
                    let _lock = LOCK.lock().unwrap_or_else(PoisonError::into_inner);
                    match self.copy {
                        Copy::App => app_tiny(),
                        Copy::Library => library_tiny(),
                    }
                }
                if let Ok(command) = self.commands.try_recv() {
                    break Some(command);
                }
            },
        };
        match command {
            None => {}
            Some(Command::Return) => {}
            Some(Command::Panic) => panic!("boom"),
            Some(Command::Exit(code)) => process::exit(code),
        }
        if self.bottom == Bottom::Wait && command.is_none() {
            child::wait_forever();
        }
    }

    fn stop_requested(&self) -> bool {
        match self.copy {
            Copy::App => finally::stop_requested(),
            Copy::Library => finally_second::stop_requested(),
        }
    }
}

/// Runs the case of the command line; `guardian`: whether `main` has one (its options are
/// then the defaults, set by the attribute).
pub fn run(guardian: bool) {
    let mut args = env::args().skip(1);
    let mut number = || -> u64 { args.next().expect("SEED INDEX").parse().expect("a number") };
    let (seed, index) = (number(), number());
    let plan = PLAN.get_or_init(|| Plan::new(seed, index));
    assert_eq!(plan.guardian, guardian, "the plan's program");
    if plan.traced {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_max_level(tracing_subscriber::filter::LevelFilter::DEBUG)
            .with_ansi(false)
            .init();
    }
    if !guardian {
        finally::install(options(plan)).expect("the options installed");
    }
    let records = env::var_os("FINALLY_RECORDS").expect("FINALLY_RECORDS");
    finally::keep_records(records, finally::Durability::System).expect("records kept");
    let holder = start_holder();
    let commands = start_commands(plan.threads.len());
    let (ready, all_ready) = mpsc::channel();
    let mut commands = commands.into_iter();
    let main_commands = commands.next().expect("main's");
    for (thread, commands) in plan.threads.iter().skip(1).zip(commands) {
        let state = Thread {
            copy: thread.copy,
            bottom: thread.bottom,
            ready: ready.clone(),
            commands,
            holder: holder.clone(),
        };
        thread::spawn(move || state.run(&thread.levels));
    }
    for _ in 1..plan.threads.len() {
        all_ready.recv().unwrap();
    }
    let main = &plan.threads[0];
    let state = Thread {
        copy: main.copy,
        bottom: main.bottom,
        ready,
        commands: main_commands,
        holder,
    };
    // Says `ready` once `main` is at its bottom too.
    thread::spawn(move || {
        all_ready.recv().unwrap();
        println!("ready");
    });
    state.run(&main.levels);
}

/// The application's options, as the plan says.
fn options(plan: &Plan) -> finally::Options {
    let mut options = finally::Options::new();
    if plan.only_int_and_term {
        options = options.signals(&[finally::Signal::SIGINT, finally::Signal::SIGTERM]);
    }
    if let Some(millis) = plan.timeout_ms {
        options = options.timeout(Duration::from_millis(millis));
    }
    if let Some(count) = plan.force_quit_after {
        options = options.force_quit_after(count);
    }
    options
}

/// Starts the thread that keeps the guards moved to it, for good, and drops the others at
/// once. Its channel never closes: a sender is kept for good.
fn start_holder() -> Sender<ToHolder> {
    let (holder, given) = mpsc::channel::<ToHolder>();
    thread::spawn(move || {
        let mut kept: Vec<Box<dyn Any + Send>> = Vec::new();
        for guard in given {
            match guard {
                ToHolder::Keep(guard) => kept.push(Box::new(guard)),
                ToHolder::Drop(guard, dropped) => {
                    drop(guard);
                    dropped.send(()).unwrap();
                }
            }
        }
    });
    std::mem::forget(holder.clone());
    holder
}

/// Reads the test's commands from stdin, for `threads` threads: `return` and `panic` for
/// `main`, `exit THREAD CODE` for any. Returns each thread's end of its commands.
fn start_commands(threads: usize) -> Vec<Receiver<Command>> {
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..threads).map(|_| mpsc::channel()).unzip();
    thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let line = line.expect("a line from the test");
            let words: Vec<&str> = line.split_whitespace().collect();
            let (thread, command) = match words[..] {
                ["return"] => (0, Command::Return),
                ["panic"] => (0, Command::Panic),
                ["exit", thread, code] => (
                    thread.parse().expect("a thread"),
                    Command::Exit(code.parse().expect("a code")),
                ),
                _ => panic!("unknown command {line:?}"),
            };
            let _ = senders[thread].send(command);
        }
        // The test has gone: the senders stay, so that no thread takes it for a command.
        std::mem::forget(senders);
    });
    receivers
}
