use std::fmt;
use std::io;
use std::sync::Arc;

/// The runtime could not set itself up: see [`install`](crate::install).
#[derive(Clone, Debug)]
pub struct Error {
    pub(crate) context: &'static str,
    pub(crate) source: Arc<io::Error>,
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
