//! The atomics of the registry's protocol: std's, or loom's when model-checking it.

#[cfg(all(test, loom))]
pub(crate) use loom::sync::atomic;
#[cfg(not(all(test, loom)))]
pub(crate) use std::sync::atomic;
