//! Temporary rows in a real database, deleted however the program ends, even after `kill -9`.
//!
//! A program that works in a shared database often leaves rows that only mean something while it
//! runs: a job's partial results, a lease, a half-done import. When it ends, they must go, and
//! only they: the permanent rows stay, and so do the rows of other runs working at the same
//! time. This example keeps such rows in SQLite (through `rusqlite`, with SQLite built in, so
//! nothing needs installing). Each run tags its temporary rows with a run id of its own and its
//! cleanup deletes exactly those, in one transaction, whether the program returns, panics, is
//! stopped by Ctrl-C or `kill`, or, thanks to the guardian, is killed with `kill -9`.
//!
//! Three things make it work:
//!
//! - **The cleanup opens its own connection.** On a signal it runs on `finally`'s own thread
//!   while `main` is still inserting; with the guardian it runs in another process, after the
//!   program died, perhaps in the middle of a transaction (which SQLite rolls back). Both
//!   connections wait for each other's short transactions (a busy timeout) instead of failing
//!   with "database is locked".
//! - **The cleanup carries what it needs.** The database's path and the run id are known only
//!   once `main` runs: `main` makes a guard with them, [`finally::guard_with`], whose state
//!   reaches the guardian too, before it inserts its first temporary row.
//! - **No row after the cleanup.** `main` goes on inserting while the cleanup deletes, so it
//!   checks [`finally::stop_requested`] inside each insert's transaction, once it holds the
//!   database's write lock, which the cleanup needs too. The stop is requested before the
//!   cleanup starts: either the insert commits before the delete (and is deleted with the
//!   others), or it sees the stop and inserts nothing. (A body that would rather stop first can
//!   return on the stop instead, given a grace period: `#[with_cleanup(f, grace = "5s")]`.)
//!
//! Run it with `cargo run --example database` (Unix only). It uses the database
//! `finally-example.sqlite3` in the temporary folder, or the path given, as in
//! `cargo run --example database -- rows.sqlite3`, and prints `ready <database> <run id>`; the
//! run id starts with the program's pid. Then end it as you like:
//!
//! ```text
//! $ cargo run --example database
//! database: /tmp/finally-example.sqlite3 has 3 permanent row(s), 0 temporary row(s) of other runs
//! ready /tmp/finally-example.sqlite3 41871-1718031129733911207
//! ^Cdatabase: run 41871-1718031129733911207: stopped by SIGINT (2); deleted 164 temporary row(s)
//! ```
//!
//! `kill 41871` from another terminal does the same with SIGTERM; `kill -9 41871` leaves the
//! cleanup to the guardian, which reports `died without its own cleanup`. Start several runs at
//! once, stop them one by one, and look at what is left with
//! `sqlite3 /tmp/finally-example.sqlite3 'SELECT run, temporary, count(*) FROM rows GROUP BY 1, 2'`,
//! or start the example again: its first line counts the rows it finds.

use std::env;
use std::path::{Path, PathBuf};
use std::process;
use std::thread;
use std::time::{Duration, SystemTime};

use finally::Exit;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS rows (
        id        INTEGER PRIMARY KEY,
        run       TEXT,             -- the run that inserted a temporary row
        temporary INTEGER NOT NULL, -- 1: deleted when its run ends
        payload   TEXT NOT NULL
    );
";
/// The rows that outlive every run, inserted by the first run on an empty database.
const PERMANENT: [&str; 3] = ["customer: Ada", "customer: Grace", "customer: Edsger"];
/// How many temporary rows a run inserts before it says `ready`, and then each time.
const FIRST_ROWS: u32 = 3;
/// How long a run pauses between two inserts.
const PAUSE: Duration = Duration::from_millis(20);
/// How long a connection waits for another one's transaction before it gives up. Every
/// transaction here takes milliseconds: this only bounds the wait if something is stuck.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

// The guardian, started here, runs the guard's cleanup if the program dies without it.
#[finally::with_cleanup(|| {}, guardian)]
fn main() -> rusqlite::Result<()> {
    let path = match env::args_os().nth(1) {
        Some(path) => PathBuf::from(path),
        None => env::temp_dir().join("finally-example.sqlite3"),
    };
    // Unique among the runs that share the database: no two live processes have the same pid,
    // and a pid used again comes with a later start time.
    let run = format!("{}-{}", process::id(), nanos_since_epoch());

    let mut db = open(&path, OpenFlags::default())?;
    set_up(&mut db, &path)?;
    // Made before the first temporary row goes in: even after a `kill -9` right after it, the
    // guardian knows what to delete.
    let _cleanup = finally::guard_with((path.clone(), run.clone()), delete_temporary_rows);

    let mut inserted = 0;
    // Not when a signal came first: the process is about to end by it.
    if insert_temporary_rows(&mut db, &run, FIRST_ROWS, &mut inserted)? {
        println!("ready {} {run}", path.display());
    }
    // The work: a temporary row every `PAUSE`. It does not end on a signal: `finally` runs the
    // cleanup on its own thread meanwhile, then ends the process by the signal.
    loop {
        thread::sleep(PAUSE);
        insert_temporary_rows(&mut db, &run, 1, &mut inserted)?;
    }
}

/// Opens the database, waiting up to `BUSY_TIMEOUT` for other connections' transactions.
fn open(path: &Path, flags: OpenFlags) -> rusqlite::Result<Connection> {
    let db = Connection::open_with_flags(path, flags)?;
    db.busy_timeout(BUSY_TIMEOUT)?;
    Ok(db)
}

/// Creates the table and its permanent rows, unless another run did, and tells what is there.
fn set_up(db: &mut Connection, path: &Path) -> rusqlite::Result<()> {
    // `Immediate` takes the write lock first: two runs starting at once on an empty database
    // create the table and its permanent rows once.
    let transaction = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
    transaction.execute_batch(SCHEMA)?;
    if count_rows(&transaction, false)? == 0 {
        for payload in PERMANENT {
            transaction.execute(
                "INSERT INTO rows (run, temporary, payload) VALUES (NULL, 0, ?1)",
                [payload],
            )?;
        }
    }
    let permanent = count_rows(&transaction, false)?;
    let temporary = count_rows(&transaction, true)?;
    transaction.commit()?;
    eprintln!(
        "database: {} has {permanent} permanent row(s), {temporary} temporary row(s) of other runs",
        path.display()
    );
    Ok(())
}

/// How many temporary rows, or permanent ones, there are.
fn count_rows(db: &Connection, temporary: bool) -> rusqlite::Result<u64> {
    let sql = "SELECT count(*) FROM rows WHERE temporary = ?1";
    db.query_row(sql, [temporary], |row| row.get(0))
}

/// Inserts `count` temporary rows of the run `run` in one transaction; returns `false`, having
/// inserted nothing, if the program is stopping.
fn insert_temporary_rows(
    db: &mut Connection,
    run: &str,
    count: u32,
    inserted: &mut u64,
) -> rusqlite::Result<bool> {
    let transaction = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Checked with the write lock held, which the cleanup needs too. The stop is requested
    // before the cleanup starts: if the cleanup has deleted our rows already, we see it here
    // and insert no row it would miss. (Dropping the transaction rolls it back.)
    if finally::stop_requested() {
        return Ok(false);
    }
    for _ in 0..count {
        *inserted += 1;
        transaction.execute(
            "INSERT INTO rows (run, temporary, payload) VALUES (?1, 1, ?2)",
            (run, format!("work item {inserted}")),
        )?;
    }
    transaction.commit()?;
    Ok(true)
}

/// The cleanup: runs once however `main` ends, in the guardian if the program died. A failure
/// is reported by `finally`.
#[finally::guardian_cleanup]
fn delete_temporary_rows((path, run): &(PathBuf, String), exit: &Exit) -> rusqlite::Result<()> {
    let deleted = delete_run(path, run)?;
    eprintln!("database: run {run}: {exit}; deleted {deleted} temporary row(s)");
    Ok(())
}

/// Deletes the temporary rows of the run `run`, and says how many there were. Deleting them
/// again deletes nothing: the guardian may run this after a program killed in the middle of it.
fn delete_run(path: &Path, run: &str) -> rusqlite::Result<usize> {
    // A connection of its own: `main`'s may be in use on another thread, or, in the guardian,
    // belong to a process that has died. Without `CREATE`: a database that is gone has no rows
    // left to delete, and should not come back empty.
    let mut db = open(path, OpenFlags::default() - OpenFlags::SQLITE_OPEN_CREATE)?;
    let transaction = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let deleted =
        transaction.execute("DELETE FROM rows WHERE run = ?1 AND temporary = 1", [run])?;
    transaction.commit()?;
    Ok(deleted)
}

fn nanos_since_epoch() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos())
}
