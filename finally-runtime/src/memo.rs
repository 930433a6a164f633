//! What a cleanup needs to know, kept where the guardian can read it too.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::sync::{Mutex, MutexGuard, PoisonError};

static MEMO: Mutex<BTreeMap<String, OsString>> = Mutex::new(BTreeMap::new());

fn memo() -> MutexGuard<'static, BTreeMap<String, OsString>> {
    MEMO.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Keeps `value` under `key` for the cleanups, which cannot borrow the function's state: a
/// scratch directory's path, a run id, a start time.
///
/// With the guardian, [`recall`] finds it in the guardian too: the guardian is a copy of the
/// program made when `main` started, and sees nothing the program set up in memory later but
/// this. `key` and `value` together must fit in 64 KiB to reach the guardian; a longer one is
/// kept for the program's own cleanups only, and reported on stderr.
///
/// It never waits long for the guardian. A guardian that does not keep up (stopped, say, with
/// SIGSTOP) gets what fits in the channel; `remember` then waits once in the program's life, for
/// a tenth of a second at most, and after that a value that does not fit does not reach it,
/// which is reported on stderr once. A guardian that has ended is reported once too, and never
/// raises SIGPIPE. Either way the value is kept for the program's own cleanups.
///
/// ```
/// # use finally_runtime as finally;
/// let scratch = std::env::temp_dir().join("scratch-1234");
/// finally::remember("scratch", &scratch);
/// // ... later, in a cleanup:
/// if let Some(dir) = finally::recall("scratch") {
///     let _ = std::fs::remove_dir_all(dir);
/// }
/// ```
pub fn remember(key: &str, value: impl AsRef<OsStr>) {
    let value = value.as_ref().to_owned();
    crate::guardian::tell(key, &value);
    keep(key.to_owned(), value);
}

/// The value last kept under `key` with [`remember`], in the program or in its guardian.
pub fn recall(key: &str) -> Option<OsString> {
    memo().get(key).cloned()
}

pub(crate) fn keep(key: String, value: OsString) {
    memo().insert(key, value);
}
