//! The article's experiment, live: which way of writing a cleanup survives which way of ending?
//!
//! For every technique and every event, this example starts itself again as a child process,
//! makes the event happen to it for real (a panic, a Ctrl-C sent to its process group, `kill`,
//! `kill -9`, a segfault, ...), then reads the marker file the child's cleanup writes to. The
//! table shows ○ where the cleanup ran exactly once and to its end, × otherwise, and a second
//! table shows how each child ended, as a shell would see it.
//!
//! Run it with `cargo run --example matrix` (Unix only); it takes a few seconds.

use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{self, Child, ChildStdout, Command, ExitStatus, Stdio};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use std::{env, thread};

use finally::with_cleanup;
use libc::{c_int, pid_t};
use signal_hook::consts::{SIGINT, SIGKILL, SIGTERM};
use signal_hook::iterator::Signals;
use signal_hook::low_level::signal_name;

/// How long the slow cleanup (the "Ctrl-C mashed" event) takes.
const CLEANUP_TIME: Duration = Duration::from_millis(300);
/// How many more SIGINTs are sent while the slow cleanup runs.
const MASHES: u32 = 10;
/// How long a child may take, from its start to its end.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Technique {
    DropGuard,
    Atexit,
    SignalHandler,
    WithCleanup,
    Guardian,
}

impl Technique {
    const ALL: [Self; 5] = [
        Self::DropGuard,
        Self::Atexit,
        Self::SignalHandler,
        Self::WithCleanup,
        Self::Guardian,
    ];

    /// Its column heading, also its name on the child's command line.
    fn label(self) -> &'static str {
        match self {
            Self::DropGuard => "Drop guard",
            Self::Atexit => "libc::atexit",
            Self::SignalHandler => "signal handler",
            Self::WithCleanup => "#[with_cleanup]",
            Self::Guardian => "+ guardian",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Event {
    Return,
    Panic,
    CtrlC,
    Kill,
    CtrlCMashed,
    Exit,
    Kill9,
    Segfault,
}

impl Event {
    const ALL: [Self; 8] = [
        Self::Return,
        Self::Panic,
        Self::CtrlC,
        Self::Kill,
        Self::CtrlCMashed,
        Self::Exit,
        Self::Kill9,
        Self::Segfault,
    ];

    /// Its row heading, also its name on the child's command line.
    fn label(self) -> &'static str {
        match self {
            Self::Return => "normal end",
            Self::Panic => "panic",
            Self::CtrlC => "Ctrl-C",
            Self::Kill => "kill",
            Self::CtrlCMashed => "Ctrl-C mashed",
            Self::Exit => "exit(3)",
            Self::Kill9 => "kill -9",
            Self::Segfault => "segfault",
        }
    }
}

fn main() -> io::Result<()> {
    let args: Vec<String> = env::args().skip(1).collect();
    match args.as_slice() {
        [] => run_matrix(),
        [role, technique, event, marker] if role == "child" => {
            let technique = Technique::ALL.into_iter().find(|t| t.label() == technique);
            let event = Event::ALL.into_iter().find(|e| e.label() == event);
            match (technique, event) {
                (Some(technique), Some(event)) => run_child(technique, event, marker.into()),
                _ => Err(io::Error::other("unknown technique or event")),
            }
        }
        _ => Err(io::Error::other("usage: matrix (takes no arguments)")),
    }
}

// ---- The child: one technique, one event ----

static MARKER: OnceLock<PathBuf> = OnceLock::new();
static SLOW: AtomicBool = AtomicBool::new(false);

/// The cleanup of every technique. It must not panic: it may run inside `exit`, from an
/// `extern "C"` function, where unwinding would abort.
fn cleanup() {
    mark("start");
    // The parent mashes Ctrl-C once it reads this.
    let _ = writeln!(io::stdout(), "cleaning");
    if SLOW.load(Relaxed) {
        thread::sleep(CLEANUP_TIME);
    }
    mark("end");
}

/// Appends `line` to the marker file in one `write`, so lines never interleave.
fn mark(line: &str) {
    if let Some(path) = MARKER.get() {
        let file = OpenOptions::new().create(true).append(true).open(path);
        let _ = file.and_then(|mut file| file.write_all(format!("{line}\n").as_bytes()));
    }
}

/// Technique 1: Rust's try/finally.
struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        cleanup();
    }
}

/// Technique 2: libc runs it inside `exit`, which also ends a `main` that returns or panics.
extern "C" fn cleanup_at_exit() {
    cleanup();
}

/// Technique 3, the article's case 3: catch the signals, clean up, exit. Nothing else.
fn install_signal_handler() -> io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    thread::spawn(move || {
        if signals.forever().next().is_some() {
            cleanup();
            process::exit(1);
        }
    });
    Ok(())
}

/// Technique 4.
#[with_cleanup(cleanup)]
fn guarded_work(event: Event) {
    work(event);
}

/// Technique 5: technique 4 with a guardian process, which runs the cleanup if the child dies.
mod guardian {
    // The guardian watches the whole process, hence a `main`: this is the child's main work.
    #[finally::with_cleanup(super::cleanup, guardian)]
    pub fn main(event: super::Event) {
        super::work(event);
    }
}

fn run_child(technique: Technique, event: Event, marker: PathBuf) -> io::Result<()> {
    // Set before the guardian forks: its copy of the process runs the cleanup with what is here.
    MARKER.get_or_init(|| marker);
    SLOW.store(event == Event::CtrlCMashed, Relaxed);
    match technique {
        Technique::DropGuard => {
            let _guard = Guard;
            work(event);
        }
        Technique::Atexit => {
            // SAFETY: `cleanup_at_exit` is an `extern "C" fn()` that does not unwind.
            if unsafe { libc::atexit(cleanup_at_exit) } != 0 {
                return Err(io::Error::other("libc::atexit failed"));
            }
            work(event);
        }
        Technique::SignalHandler => {
            install_signal_handler()?;
            work(event);
        }
        Technique::WithCleanup => guarded_work(event),
        // Nothing before it has started a thread: the guardian forks, which wants one thread.
        Technique::Guardian => guardian::main(event),
    }
    Ok(())
}

/// The work, which ends as `event` says; the parent delivers the events that come from outside.
fn work(event: Event) {
    match event {
        Event::Return => {}
        Event::Panic => panic!("the work failed"),
        Event::Exit => process::exit(3),
        Event::Segfault => segfault(),
        Event::CtrlC | Event::Kill | Event::CtrlCMashed | Event::Kill9 => {
            println!("ready");
            // Blocks until the event ends the process. Should the parent die first, its end of
            // the pipe closes and the work returns, so no child is left waiting forever.
            let _ = io::stdin().read(&mut [0]);
        }
    }
}

fn segfault() {
    // A crash made on purpose should not leave a core file behind.
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `setrlimit` only reads the struct it is given.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
    // SAFETY: none, deliberately: this write is the invalid memory access the event is about.
    // Address 1 lies in the page at 0, which is never mapped, so the kernel sends SIGSEGV. Not
    // address 0: before Rust 1.90, debug builds check volatile writes for null and abort.
    unsafe { NonNull::<u8>::dangling().as_ptr().write_volatile(1) };
}

// ---- The parent: run every cell, print the tables ----

/// What one child showed.
struct Outcome {
    /// The marker holds exactly one `start` and one `end`, in that order.
    cleaned: bool,
    /// How the process ended: `exit 0`, `by SIGINT`, ...
    ended: String,
    /// What kept the experiment itself from running as planned (the cell is then ×).
    note: Option<String>,
}

/// The folder of the children's markers: made, and made to go when the experiment ends.
fn markers() -> io::Result<PathBuf> {
    let dir = env::temp_dir().join(format!("finally-matrix-{}", process::id()));
    fs::create_dir(&dir)?;
    Ok(dir)
}

fn remove_markers() {
    let _ = fs::remove_dir_all(env::temp_dir().join(format!("finally-matrix-{}", process::id())));
}

#[with_cleanup(remove_markers)]
fn run_matrix() -> io::Result<()> {
    let started = Instant::now();
    let exe = env::current_exe()?;
    // The children's markers, removed however the experiment ends: by `finally` itself.
    let dir = markers()?;
    start_children_like_a_terminal();
    print_heading();
    let (mut rows, mut notes) = (Vec::new(), Vec::new());
    for event in Event::ALL {
        let mut row = Vec::new();
        for technique in Technique::ALL {
            let name = format!("{}-{}", event as u8, technique as u8);
            let outcome = run_cell(&exe, technique, event, &dir.join(name))?;
            if let Some(note) = &outcome.note {
                notes.push(format!("{} / {}: {note}", technique.label(), event.label()));
            }
            row.push(outcome);
        }
        rows.push(row);
    }
    print_table(&rows, |outcome| if outcome.cleaned { "○" } else { "×" });
    println!("\nHow each child ended, as a shell sees it:");
    print_table(&rows, |outcome| &outcome.ended);
    for note in notes {
        println!("note: {note}");
    }
    fs::remove_dir_all(&dir)?;
    println!("\n(took {:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

/// Children inherit ignored signals, and a shell without job control starts background jobs
/// with SIGINT ignored: the table would show that shell, not the techniques. So put Ctrl-C and
/// kill back to their default action, as for a program started from a terminal.
fn start_children_like_a_terminal() {
    for signal in [SIGINT, SIGTERM] {
        // SAFETY: sets a default action; this process has no handler of its own to replace.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    }
}

fn run_cell(exe: &Path, technique: Technique, event: Event, marker: &Path) -> io::Result<Outcome> {
    let mut child = Command::new(exe)
        .args(["child", technique.label(), event.label()])
        .arg(marker)
        .env("RUST_BACKTRACE", "0")
        // Kept open and never written to: the child waits on it (see `work`).
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // Panic messages would clutter the table.
        .stderr(Stdio::null())
        // Its own process group, as a terminal makes for a job, so Ctrl-C goes to the group.
        .process_group(0)
        .spawn()?;
    let deadline = Instant::now() + TIMEOUT;
    let lines = read_lines(child.stdout.take().expect("stdout is piped"));
    let mut note = deliver(&child, event, &lines, deadline).err();
    if let Err(late) = read_until(&lines, None, deadline) {
        send(-pid(&child), SIGKILL);
        note = note.or(Some(late));
    }
    let status = child.wait()?;
    let marks = fs::read_to_string(marker).unwrap_or_default();
    Ok(Outcome {
        cleaned: note.is_none() && marks == "start\nend\n",
        ended: describe(status),
        note,
    })
}

/// Makes an event that comes from outside happen to the child, once it says it is ready.
fn deliver(child: &Child, event: Event, lines: &Lines, deadline: Instant) -> Result<(), String> {
    // A negative pid names the process group: a terminal's Ctrl-C reaches the whole job.
    let (target, signal) = match event {
        Event::CtrlC | Event::CtrlCMashed => (-pid(child), SIGINT),
        Event::Kill => (pid(child), SIGTERM),
        Event::Kill9 => (pid(child), SIGKILL),
        Event::Return | Event::Panic | Event::Exit | Event::Segfault => return Ok(()),
    };
    if !read_until(lines, Some("ready"), deadline)? {
        return Err("the child ended before it was ready".into());
    }
    send(target, signal);
    // No `cleaning` line: the child died without cleaning up, and there is nothing to mash.
    if event == Event::CtrlCMashed && read_until(lines, Some("cleaning"), deadline)? {
        // These sleeps are the event itself (a user pressing keys), not synchronisation;
        // spread so every SIGINT lands while the cleanup still runs.
        for _ in 0..MASHES {
            thread::sleep(CLEANUP_TIME / (MASHES + 2));
            send(target, SIGINT);
        }
    }
    Ok(())
}

fn pid(child: &Child) -> pid_t {
    pid_t::try_from(child.id()).expect("a pid fits in pid_t")
}

/// Sends `signal` to a pid, or to a process group given as a negative pid. The child is reaped
/// only after the last signal, so its pid and group cannot have been reused by then; a signal
/// to a child that already ended does nothing.
fn send(target: pid_t, signal: c_int) {
    // SAFETY: `kill` has no memory-safety preconditions.
    unsafe { libc::kill(target, signal) };
}

/// The child's stdout, line by line. The channel closes when the pipe does: when the child has
/// ended, or, under `+ guardian`, when its guardian has, which holds a copy of the pipe until
/// it has run the cleanup the child could not. Either way the marker is complete by then.
type Lines = Receiver<String>;

fn read_lines(stdout: ChildStdout) -> Lines {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
        let _ = lines.try_for_each(|line| sender.send(line));
    });
    receiver
}

/// Reads the child's stdout until the line `until` (`Ok(true)`) or the child's end
/// (`Ok(false)`); `None` reads to the end. An error once `deadline` has passed.
fn read_until(lines: &Lines, until: Option<&str>, deadline: Instant) -> Result<bool, String> {
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if Some(line.as_str()) == until => return Ok(true),
            Ok(_) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(false),
            Err(RecvTimeoutError::Timeout) => {
                return Err(match until {
                    Some(line) => format!("no `{line}` within {TIMEOUT:?}: killed"),
                    None => format!("still running after {TIMEOUT:?}: killed"),
                })
            }
        }
    }
}

fn describe(status: ExitStatus) -> String {
    match status.signal() {
        Some(signal) => format!("by {}", signal_name(signal).unwrap_or("a signal")),
        None => format!("exit {}", status.code().unwrap_or_default()),
    }
}

fn print_heading() {
    println!(
        "\
Does the cleanup run exactly once, and to its end? Each cell is a child process to which the
event really happens; ○ = its cleanup wrote `start` then `end`, once; × = anything else.

  Drop guard       a struct whose Drop runs the cleanup, held while the work runs
  libc::atexit     the cleanup registered with libc::atexit
  signal handler   a signal-hook thread: on SIGINT or SIGTERM, clean up, then exit(1)
  #[with_cleanup]  the work in a function under #[finally::with_cleanup(cleanup)]
  + guardian       the same with (cleanup, guardian), on the child's main work: a process it
                   forks first runs the cleanup if the child dies without it (kill -9, a crash)

  Ctrl-C: SIGINT to the child's process group. kill: SIGTERM. kill -9: SIGKILL.
  Ctrl-C mashed: {MASHES} more SIGINTs while a {CLEANUP_TIME:?} cleanup runs. segfault: a bad write.
"
    );
}

const LABEL_WIDTH: usize = 15;
const CELL_WIDTH: usize = 17;

/// A row per event, a column per technique.
fn print_table<'a>(rows: &'a [Vec<Outcome>], cell: impl Fn(&'a Outcome) -> &'a str) {
    print_row("", Technique::ALL.map(Technique::label));
    for (event, row) in Event::ALL.iter().zip(rows) {
        print_row(event.label(), row.iter().map(&cell));
    }
}

/// Padding counts `char`s, not bytes, which is what a terminal shows for ○ and × (one column
/// each, though three and two bytes in UTF-8).
fn print_row<'a>(label: &str, cells: impl IntoIterator<Item = &'a str>) {
    let mut line = format!("{label:LABEL_WIDTH$}");
    for cell in cells {
        line += &format!("{cell:CELL_WIDTH$}");
    }
    println!("{}", line.trim_end());
}
