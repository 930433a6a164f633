//! Leftovers after the whole process dies, cleaned at the next start.
//!
//! `leftovers work DIR` makes a scratch directory in DIR with a durable guard (its record is on
//! disk, in DIR/records, before the work starts), prints `scratch PATH`, and works until
//! stopped. Ctrl-C, `kill`, a panic or a return remove the directory as any guard would. A
//! `kill -9` of the program (and of its guardian, if it had one: `kill -9 -PGID`), a container
//! killed whole or a power cut leave it: then any start of `leftovers` first recovers, and
//! prints `recovered PATH` for each leftover directory it removed.
//!
//! ```text
//! $ cargo run --example leftovers -- work /tmp/demo &
//! scratch /tmp/demo/scratch-12345
//! $ kill -9 %1
//! $ cargo run --example leftovers -- recover /tmp/demo
//! recovered /tmp/demo/scratch-12345
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;
use std::{env, fs, io, thread};

use finally::{guardian_cleanup, Durability, Exit};

/// Removes a scratch directory; after the process that made it died, says so.
#[guardian_cleanup]
fn remove_scratch(dir: &Path, exit: &Exit) -> io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    if let Exit::Recovered { .. } = exit {
        println!("recovered {}", dir.display());
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = env::args().skip(1);
    let (command, dir) = match (args.next(), args.next()) {
        (Some(command), Some(dir)) => (command, PathBuf::from(dir)),
        _ => return Err("usage: leftovers work|recover DIR".into()),
    };
    // `System`: the records survive the process and its container, not a power cut; `Disk`
    // (the default) flushes each one to the disk.
    let durability = match env::var_os("LEFTOVERS_SYSTEM") {
        Some(_) => Durability::System,
        None => Durability::Disk,
    };
    finally::keep_records(dir.join("records"), durability)?;
    finally::recover()?;
    if command != "work" {
        return Ok(());
    }
    let scratch = dir.join(format!("scratch-{}", finally::program_id()));
    fs::create_dir_all(&scratch)?;
    let scratch = finally::guard_durable(scratch, remove_scratch);
    scratch.durable()?;
    println!("scratch {}", scratch.display());
    loop {
        fs::write(scratch.join("work"), b"...")?;
        thread::sleep(Duration::from_millis(100));
    }
}
