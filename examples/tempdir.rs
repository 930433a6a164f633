//! A scratch directory that is gone when the program is, however it ends.
//!
//! The program makes a scratch directory with `tempfile`, and fills it while it works (a file
//! every 50 ms) until it is stopped. A guard made with `finally::guard_with`, not `TempDir`'s
//! `Drop`, removes the directory: `Drop` runs on return and on panic only, while the guard also
//! runs on Ctrl-C, `kill` and `kill -HUP`, and, in the guardian, after `kill -9` or a crash. The
//! removal does not follow symbolic links out of the directory.
//!
//! Run it with `cargo run --example tempdir` (Unix only). It prints `ready <path>` once the
//! directory is there; `ls <path>` in another terminal shows it filling. Then end it:
//!
//! - Ctrl-C, or `kill <pid>` (SIGTERM): it stops writing, the cleanup removes the directory and
//!   says `tempdir: stopped by SIGINT (2); removed <path>`, and the shell sees the program
//!   killed by the signal (`echo $?` prints 130 after Ctrl-C, 143 after `kill`).
//! - `kill -9 <pid>`: the program itself cannot do anything, but its guardian, a second process
//!   started at the top of `main`, runs the same cleanup: `tempdir: died without its own
//!   cleanup; removed <path>`.
//! - `cargo run --example tempdir -- --panic-after 500`: it panics after half a second; the
//!   cleanup runs, then the panic goes on (exit code 101).
//!
//! (`pgrep -f target/debug/examples/tempdir` lists two processes: the program and its guardian.
//! `kill` the older one, the program; the guardian ignores SIGINT and SIGTERM, and ends by
//! itself once the program has.)

use std::error::Error;
use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use finally::Exit;

/// How often the work writes a file.
const TICK: Duration = Duration::from_millis(50);

// `guardian`: a second process, started here, runs the guard's cleanup if the program dies
// without it. `grace`: on a signal, the guard waits (up to 2 s) for `main` to notice the stop and
// return, rather than run on the runtime's thread at once while `main` may be half-way through
// writing into the directory being removed; the process still ends by the signal.
#[finally::with_cleanup(|| {}, guardian, grace = "2s")]
fn main() -> Result<(), Box<dyn Error>> {
    let panic_after = panic_after()?;
    // Kept, not removed by `TempDir`'s `Drop`: the guard removes it, in every case alike.
    let scratch = tempfile::Builder::new()
        .prefix("finally-scratch-")
        .tempdir()?
        .keep();
    // Until this line a `kill -9` leaves the (still empty) directory behind: the guardian
    // cannot know the name `tempfile` has just chosen. From here on, it has it.
    let _removal = finally::guard_with(scratch.clone(), remove_scratch);
    println!("ready {}", scratch.display());

    let started = Instant::now();
    let mut parts = 0u64;
    while finally::wait_for_stop(TICK).is_none() {
        if panic_after.is_some_and(|after| started.elapsed() >= after) {
            panic!("asked to panic");
        }
        parts += 1;
        let part = scratch.join(format!("part-{parts:06}.txt"));
        fs::write(part, format!("part {parts}, {:?} in\n", started.elapsed()))?;
    }
    eprintln!("tempdir: stopping after {parts} file(s)");
    Ok(())
}

/// `--panic-after <ms>`, the only argument: panic that long after starting to work.
fn panic_after() -> Result<Option<Duration>, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok(None),
        [flag, millis] if flag == "--panic-after" => millis
            .parse()
            .map(|millis| Some(Duration::from_millis(millis)))
            .map_err(|error| format!("--panic-after {millis}: {error}")),
        _ => Err("usage: tempdir [--panic-after <milliseconds>]".to_owned()),
    }
}

/// Removes the scratch directory, once however `main` ended; in the guardian, after the program
/// died without it. It can run twice (the guardian runs it again if the program is killed
/// during it): a directory already gone is fine. A failure is reported by `finally`.
#[finally::guardian_cleanup]
fn remove_scratch(scratch: &Path, exit: &Exit) -> io::Result<()> {
    match remove(scratch) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    eprintln!("tempdir: {exit}; removed {}", scratch.display());
    Ok(())
}

/// Removes `dir` and everything in it, without following symbolic links.
///
/// `std::fs::remove_dir_all` removes a symbolic link found in the directory, not what it points
/// to ("does not follow symbolic links and it will simply remove the symbolic link itself", its
/// docs say). Since Rust 1.58.1 it is also safe from the race of CVE-2022-21658, where a
/// directory inside is swapped for a link between its check and its removal: on Unix it walks
/// the tree through directory descriptors (`openat` with `O_NOFOLLOW | O_DIRECTORY`, then
/// `unlinkat` relative to them), never by path again; its docs promise this protection on all
/// platforms but Redox and Miri. A hand-written walk with `fs::metadata` and `remove_file` would
/// have that bug.
fn remove(dir: &Path) -> io::Result<()> {
    // Should `main` still be writing (a stop whose grace period ran out), a file can land
    // between the listing and the final `rmdir`: that is `ENOTEMPTY`, and another pass removes
    // it. (`ErrorKind::DirectoryNotEmpty` is newer than the crate's minimum Rust, 1.79.)
    let mut passes = 3;
    loop {
        match fs::remove_dir_all(dir) {
            Err(error) if error.raw_os_error() == Some(libc::ENOTEMPTY) && passes > 1 => {
                passes -= 1;
            }
            done => return done,
        }
    }
}
