//! Cleanup that runs however a function ends.
#![warn(missing_docs)]

pub use finally_macros::with_cleanup;
pub use finally_runtime::{install, Error, Exit, Signal};

#[doc(hidden)]
pub mod __private {
    pub use finally_runtime::__private::*;
}
