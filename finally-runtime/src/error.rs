use std::fmt;
use std::io;
use std::sync::Arc;

/// What the runtime could not do: set itself up (see [`install`](crate::install())), or start or
/// reach a guardian (see [`guardian_status`](crate::guardian_status)).
///
/// `Display` says what could not be done ("could not start the guardian"); [`source`] says why,
/// as an [`io::Error`] whose kind a program may look at. Print both: the first alone does not
/// say why.
///
/// ```
/// # use finally_runtime as finally;
/// use std::error::Error as _;
/// use std::io;
///
/// // Here `main` has no `guardian`, so none watches over this program.
/// if let Err(error) = finally::guardian_status() {
///     // "could not reach a guardian: none was asked for: ..."
///     let why = error.source().map(ToString::to_string).unwrap_or_default();
///     eprintln!("{error}: {why}");
///     // The system's error, whose kind tells the cases apart.
///     let system = error.source().and_then(|why| why.downcast_ref::<io::Error>());
///     assert_eq!(system.map(io::Error::kind), Some(io::ErrorKind::NotFound));
/// }
/// ```
///
/// [`source`]: std::error::Error::source
#[derive(Clone, Debug)]
pub struct Error {
    context: &'static str,
    source: Arc<io::Error>,
}

impl Error {
    /// "could not `context`", because of `source`.
    pub(crate) fn because(context: &'static str, source: io::Error) -> Self {
        Error {
            context,
            source: Arc::new(source),
        }
    }

    /// What could not be done: the `context` it was made with.
    pub(crate) fn context(&self) -> &'static str {
        self.context
    }

    /// Why not.
    pub(crate) fn io_error(&self) -> &io::Error {
        &self.source
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
