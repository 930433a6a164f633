//! Child processes for the durable guards' tests: `durable COMMAND DIR [RECORDS]`.
//!
//! - `work DIR [COUNT] [RECORDS]`: recovers, makes COUNT (1) scratch directories in DIR, each
//!   with a durable guard, prints `scratch PATH` for each and `ready`, and waits. Its records
//!   are in RECORDS (`DIR/records`). `main` has a guardian.
//! - `end HOW DIR`: one durable guard, then ends: `return`, `panic`, `exit`, or `signal` (waits,
//!   for the test's signal).
//! - `recover DIR`: recovers, prints `recovered N`.
//!
//! The cleanups write to the marker file (`tests/common/child.rs`): `start scratch-N`, then
//! `end scratch-N EXIT`.

use std::path::{Path, PathBuf};
use std::{env, fs, io, process};

use finally::{guardian_cleanup, with_cleanup, Durability, Exit};

#[path = "../common/child.rs"]
mod child;

use child::{mark, ready, record, wait_forever};

#[guardian_cleanup]
fn remove_scratch(dir: &Path, exit: &Exit) -> io::Result<()> {
    let name = dir
        .file_name()
        .map_or("?".into(), |name| name.to_string_lossy());
    record(&name, exit);
    match fs::remove_dir_all(dir) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// Makes a scratch directory `name` in `dir`, guarded durably.
fn scratch(dir: &Path, name: &str) -> finally::Guard<PathBuf> {
    let path = dir.join(name);
    fs::create_dir_all(&path).expect("make the scratch directory");
    let guard = finally::guard_durable(path, remove_scratch);
    match guard.durable() {
        Ok(()) => println!("scratch {}", guard.display()),
        Err(error) => {
            let why = std::error::Error::source(&error).map(ToString::to_string);
            println!("not durable: {error}: {}", why.unwrap_or_default());
        }
    }
    guard
}

#[with_cleanup(|| {}, guardian)]
fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    let arg = |at: usize| args.get(at).map(String::as_str);
    match (arg(0), arg(1), arg(2)) {
        (Some("work"), Some(dir), count) => {
            let dir = Path::new(dir);
            let records = arg(3).map_or_else(|| dir.join("records"), PathBuf::from);
            finally::keep_records(records, Durability::Disk).expect("keep records");
            finally::recover().expect("recover");
            let count = count.map_or(1, |count| count.parse().expect("a count"));
            let _guards: Vec<_> = (0..count)
                .map(|n| scratch(dir, &format!("scratch-{}-{n}", process::id())))
                .collect();
            ready();
            wait_forever();
        }
        (Some("end"), Some(how), Some(dir)) => {
            let dir = Path::new(dir);
            finally::keep_records(dir.join("records"), Durability::System).expect("keep");
            let _guard = scratch(dir, "scratch-0");
            match how {
                "return" => {}
                "panic" => panic!("boom"),
                "exit" => process::exit(3),
                "signal" => {
                    ready();
                    wait_forever();
                }
                other => panic!("unknown ending {other}"),
            }
        }
        (Some("recover"), Some(dir), None) => {
            finally::keep_records(Path::new(dir).join("records"), Durability::Disk)
                .expect("keep records");
            let recovered = finally::recover().expect("recover");
            mark(&format!("recovered {recovered}"));
            println!("recovered {recovered}");
        }
        _ => panic!("usage: durable work|end|recover ..."),
    }
}
