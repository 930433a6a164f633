//! The example `examples/database.rs`, run as its users run it and stopped for real: its
//! temporary rows are gone afterwards, the permanent rows and other runs' rows are not, and the
//! test reads the database itself to say so.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::*;
use rusqlite::{Connection, OpenFlags};

const SIGKILL: i32 = libc::SIGKILL;

/// How long the test's own connection waits for a run's transaction.
const PATIENCE: Duration = Duration::from_secs(20);

#[test]
fn sigterm_deletes_the_runs_temporary_rows_and_keeps_the_permanent_ones() {
    stop_one_run(SIGTERM, &stopped_by(SIGTERM));
}

#[test]
fn kill_9_leaves_the_delete_to_the_guardian() {
    stop_one_run(SIGKILL, &killed());
}

/// Starts a run, ends it with `signal`, and checks that its cleanup ran once, told `exit` (as
/// `Exit`'s `Display` says it), and deleted its rows.
fn stop_one_run(signal: libc::c_int, exit: &str) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("rows.sqlite3");
    let run = Scenario::start_example("database", &[path.to_str().unwrap()], |_| {});
    let id = ready(&run, &path);

    let db = Database::open(&path);
    let permanent = db.permanent_rows();
    assert!(!permanent.is_empty(), "no permanent rows");
    let staged = db.temporary_rows(&id);
    assert!(
        !staged.is_empty(),
        "no temporary rows when the run said ready"
    );

    run.signal(signal);
    let ended = run.wait();
    ended.assert_killed_by(signal);
    assert!(deleted(&ended, &id, exit) >= staged.len());
    assert_eq!(db.temporary_rows(&id), []);
    assert_eq!(db.permanent_rows(), permanent);
}

#[test]
fn two_runs_at_once_delete_only_their_own_rows() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("rows.sqlite3");
    // Both start on a database that does not exist yet: each one's set-up races the other's.
    let first = Scenario::start_example("database", &[path.to_str().unwrap()], |_| {});
    let second = Scenario::start_example("database", &[path.to_str().unwrap()], |_| {});
    let first_id = ready(&first, &path);
    let second_id = ready(&second, &path);
    assert_ne!(first_id, second_id);

    let db = Database::open(&path);
    let permanent = db.permanent_rows();
    let payloads: BTreeSet<_> = permanent.iter().map(|(_, payload)| payload).collect();
    assert_eq!(
        payloads.len(),
        permanent.len(),
        "permanent rows inserted twice: {permanent:?}"
    );
    assert!(!db.temporary_rows(&first_id).is_empty());
    let second_rows = db.temporary_rows(&second_id);
    assert!(!second_rows.is_empty());

    first.signal(SIGTERM);
    let ended = first.wait();
    ended.assert_killed_by(SIGTERM);
    deleted(&ended, &first_id, &stopped_by(SIGTERM));
    assert_eq!(db.temporary_rows(&first_id), []);
    // The second run goes on working, and every row it had is still there.
    let now = db.temporary_rows(&second_id);
    assert!(
        second_rows.iter().all(|id| now.contains(id)),
        "rows of the second run were deleted: had {second_rows:?}, have {now:?}"
    );

    second.signal(SIGINT);
    let ended = second.wait();
    ended.assert_killed_by(SIGINT);
    deleted(&ended, &second_id, &stopped_by(SIGINT));
    assert_eq!(db.all_temporary_rows(), 0);
    assert_eq!(db.permanent_rows(), permanent);
}

/// Reads the run's `ready <database> <run id>` line, and returns the run id.
fn ready(run: &Scenario, path: &Path) -> String {
    let line = run.next_line();
    let rest = line
        .strip_prefix(&format!("ready {} ", path.display()))
        .unwrap_or_else(|| panic!("not a `ready {} <run id>` line: {line:?}", path.display()));
    assert!(
        !rest.is_empty() && !rest.contains(' '),
        "not a run id: {rest:?}"
    );
    rest.to_owned()
}

/// How many rows the cleanup of the run `id` said it deleted, on the line where it says how the
/// run ended, `database: run ID: EXIT; deleted N temporary row(s)`: it must say it once, and say
/// `exit`.
fn deleted(ended: &Ended, id: &str, exit: &str) -> usize {
    let said = ended.said_once(&format!("database: run {id}: "), " temporary row(s)");
    let (told, count) = said
        .rsplit_once("; deleted ")
        .unwrap_or_else(|| panic!("no `; deleted N` in {said:?}"));
    assert_eq!(told, exit, "stderr: {}", ended.stderr);
    count
        .parse()
        .unwrap_or_else(|_| panic!("no count of deleted rows in {said:?}"))
}

/// The test's own look at the database, beside the runs' connections.
struct Database(Connection);

impl Database {
    /// Opens the database the example created (without creating one if it did not).
    fn open(path: &Path) -> Self {
        let db = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .expect("open the example's database");
        // The runs write every 20 ms: wait for their transactions rather than fail.
        db.busy_timeout(PATIENCE).unwrap();
        Database(db)
    }

    /// The permanent rows, `(id, payload)`, in order.
    fn permanent_rows(&self) -> Vec<(i64, String)> {
        let mut statement = self
            .0
            .prepare("SELECT id, payload FROM rows WHERE temporary = 0 ORDER BY id")
            .unwrap();
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)));
        rows.unwrap().collect::<Result<_, _>>().unwrap()
    }

    /// The ids of the temporary rows of the run `run`, in order.
    fn temporary_rows(&self, run: &str) -> Vec<i64> {
        let mut statement = self
            .0
            .prepare("SELECT id FROM rows WHERE temporary = 1 AND run = ?1 ORDER BY id")
            .unwrap();
        let rows = statement.query_map([run], |row| row.get(0));
        rows.unwrap().collect::<Result<_, _>>().unwrap()
    }

    /// How many temporary rows there are, of any run.
    fn all_temporary_rows(&self) -> u64 {
        self.0
            .query_row("SELECT count(*) FROM rows WHERE temporary = 1", [], |row| {
                row.get(0)
            })
            .unwrap()
    }
}
