//! What [`remember`](crate::remember) keeps, for the cleanups: in the program, and in its
//! guardian, which keeps what the program sends it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::sync::{Mutex, MutexGuard, PoisonError};

static MEMO: Mutex<BTreeMap<String, OsString>> = Mutex::new(BTreeMap::new());

fn memo() -> MutexGuard<'static, BTreeMap<String, OsString>> {
    MEMO.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The value last kept under `key` with [`remember`](crate::remember), in the program or in
/// its guardian.
pub fn recall(key: &str) -> Option<OsString> {
    memo().get(key).cloned()
}

pub(crate) fn keep(key: String, value: OsString) {
    memo().insert(key, value);
}
