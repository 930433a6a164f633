use std::fmt;
use std::io;
use std::sync::Arc;

/// What the runtime could not do: set itself up (see [`install`](crate::install)), or start or
/// reach a guardian (see [`guardian_status`](crate::guardian_status)).
///
/// `Display` says what could not be done ("could not start the guardian"); [`source`] says why,
/// as an [`io::Error`] whose kind a program may look at.
///
/// [`source`]: std::error::Error::source
#[derive(Clone, Debug)]
pub struct Error {
    pub(crate) context: &'static str,
    pub(crate) source: Arc<io::Error>,
}

impl Error {
    /// "could not `context`", because of `source`.
    pub(crate) fn because(context: &'static str, source: io::Error) -> Self {
        Error {
            context,
            source: Arc::new(source),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not {}", self.context)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}
