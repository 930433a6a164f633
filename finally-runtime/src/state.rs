//! What a guard's state is, to reach the guardian: [`State`], encoded into bytes in the program
//! and decoded there, and [`StateRef`], what a cleanup borrows it as.

use std::borrow::Borrow;

/// A value that can reach the guardian (see [`guard_with`](crate::guard_with)): encoded into bytes when the guard
/// is made, decoded there.
///
/// Implemented for strings, paths, byte vectors, integers, `bool`, `Option`s and tuples of
/// these; implement it for a type of yours by encoding its fields in turn, and decoding them in
/// the same order:
///
/// ```
/// # extern crate finally_runtime as finally;
/// use std::path::PathBuf;
///
/// use finally::{Exit, State};
///
/// /// What a run leaves behind: a scratch directory, and rows tagged with its id.
/// struct Run {
///     scratch: PathBuf,
///     id: u64,
/// }
///
/// impl State for Run {
///     fn encode(&self, into: &mut Vec<u8>) {
///         self.scratch.encode(into);
///         self.id.encode(into);
///     }
///
///     fn decode(from: &mut &[u8]) -> Option<Self> {
///         Some(Run {
///             scratch: PathBuf::decode(from)?,
///             id: u64::decode(from)?,
///         })
///     }
/// }
///
/// #[finally::guardian_cleanup]
/// fn clean(run: &Run, exit: &Exit) -> std::io::Result<()> {
///     eprintln!("cleaning up after run {}: {exit}", run.id);
///     std::fs::remove_dir_all(&run.scratch)
/// }
///
/// # fn main() -> std::io::Result<()> {
/// let scratch = std::env::temp_dir().join(format!("run-{}", finally::program_id()));
/// std::fs::create_dir_all(&scratch)?;
/// // In the program, and after a `kill -9` in the guardian, if `main` has one.
/// let _cleanup = finally::guard_with(Run { scratch, id: 7 }, clean);
/// # Ok(()) }
/// ```
///
/// `decode` must take back exactly what `encode` wrote. The guardian decodes each state as it
/// arrives, and refuses one that does not decode, or leaves bytes over, with a line on stderr:
/// that guard's cleanup then does not run there.
pub trait State: Send + Sized + 'static {
    /// Appends `self` to `into`.
    fn encode(&self, into: &mut Vec<u8>);
    /// Takes a value from the front of `from`, as [`encode`](Self::encode) put it; `None` if
    /// `from` does not start with one.
    fn decode(from: &mut &[u8]) -> Option<Self>;
}

/// What a guardian cleanup takes its state as (see [`guard_with`](crate::guard_with)): a [`State`] itself, or
/// `str`, `Path`, `OsStr` and `[u8]`, borrowed from a `String`, `PathBuf`, `OsString` and
/// `Vec<u8>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a guard's state in the guardian",
    label = "a guardian cleanup's state",
    note = "a guardian cleanup takes a `finally::State` (strings, paths, integers, tuples of them, or a type of yours that implements it), or `str`, `Path`, `OsStr` or `[u8]`"
)]
pub trait StateRef {
    /// The state that is sent to the guardian, and decoded there.
    type Owned: State + Borrow<Self>;

    /// Named by `#[guardian_cleanup]`, so that a state that is none is told by this trait.
    #[doc(hidden)]
    const CHECKED: () = ();
}

impl<T: State> StateRef for T {
    type Owned = T;
}

impl StateRef for str {
    type Owned = String;
}

impl StateRef for std::path::Path {
    type Owned = std::path::PathBuf;
}

impl StateRef for std::ffi::OsStr {
    type Owned = std::ffi::OsString;
}

impl StateRef for [u8] {
    type Owned = Vec<u8>;
}

macro_rules! integers {
    ($($integer:ty),*) => {$(
        impl State for $integer {
            fn encode(&self, into: &mut Vec<u8>) {
                into.extend_from_slice(&self.to_le_bytes());
            }

            fn decode(from: &mut &[u8]) -> Option<Self> {
                let (bytes, rest) = from.split_first_chunk()?;
                *from = rest;
                Some(<$integer>::from_le_bytes(*bytes))
            }
        }
    )*};
}

integers!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);

impl State for bool {
    fn encode(&self, into: &mut Vec<u8>) {
        u8::from(*self).encode(into);
    }

    fn decode(from: &mut &[u8]) -> Option<Self> {
        Some(u8::decode(from)? != 0)
    }
}

impl State for Vec<u8> {
    fn encode(&self, into: &mut Vec<u8>) {
        (self.len() as u64).encode(into);
        into.extend_from_slice(self);
    }

    fn decode(from: &mut &[u8]) -> Option<Self> {
        let length = usize::try_from(u64::decode(from)?).ok()?;
        let bytes = from.get(..length)?.to_vec();
        *from = &from[length..];
        Some(bytes)
    }
}

impl State for String {
    fn encode(&self, into: &mut Vec<u8>) {
        self.as_bytes().to_vec().encode(into);
    }

    fn decode(from: &mut &[u8]) -> Option<Self> {
        String::from_utf8(Vec::decode(from)?).ok()
    }
}

/// Its bytes on Unix.
#[cfg(unix)]
impl State for std::ffi::OsString {
    fn encode(&self, into: &mut Vec<u8>) {
        use std::os::unix::ffi::OsStrExt;
        self.as_bytes().to_vec().encode(into);
    }

    fn decode(from: &mut &[u8]) -> Option<Self> {
        use std::os::unix::ffi::OsStringExt;
        Some(std::ffi::OsString::from_vec(Vec::decode(from)?))
    }
}

/// Its UTF-16 units on Windows, which may be unpaired.
#[cfg(windows)]
impl State for std::ffi::OsString {
    fn encode(&self, into: &mut Vec<u8>) {
        use std::os::windows::ffi::OsStrExt;
        let units: Vec<u8> = self.encode_wide().flat_map(u16::to_le_bytes).collect();
        units.encode(into);
    }

    fn decode(from: &mut &[u8]) -> Option<Self> {
        use std::os::windows::ffi::OsStringExt;
        let bytes = Vec::decode(from)?;
        let units: Vec<u16> = bytes
            .chunks(2)
            .map(|unit| Some(u16::from_le_bytes([unit[0], *unit.get(1)?])))
            .collect::<Option<_>>()?;
        Some(std::ffi::OsString::from_wide(&units))
    }
}

impl State for std::path::PathBuf {
    fn encode(&self, into: &mut Vec<u8>) {
        self.as_os_str().to_owned().encode(into);
    }

    fn decode(from: &mut &[u8]) -> Option<Self> {
        Some(std::ffi::OsString::decode(from)?.into())
    }
}

impl<T: State> State for Option<T> {
    fn encode(&self, into: &mut Vec<u8>) {
        self.is_some().encode(into);
        if let Some(value) = self {
            value.encode(into);
        }
    }

    fn decode(from: &mut &[u8]) -> Option<Self> {
        Some(if bool::decode(from)? {
            Some(T::decode(from)?)
        } else {
            None
        })
    }
}

macro_rules! tuples {
    ($(($($name:ident),*)),*) => {$(
        impl<$($name: State),*> State for ($($name,)*) {
            #[allow(non_snake_case)]
            fn encode(&self, into: &mut Vec<u8>) {
                let ($($name,)*) = self;
                $($name.encode(into);)*
            }

            fn decode(from: &mut &[u8]) -> Option<Self> {
                Some(($($name::decode(from)?,)*))
            }
        }
    )*};
}

tuples!((A, B), (A, B, C), (A, B, C, D));
