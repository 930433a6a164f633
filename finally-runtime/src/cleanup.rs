//! What a cleanup is: the forms the attribute takes, what a cleanup returns, and a cleanup ready
//! to run, whatever its form, as the registry keeps it in a node and the guardian runs it.

use std::marker::PhantomData;

use crate::Exit;

/// A cleanup, told why its function ended. Copied into each node, and, through `fork`, into the
/// guardian: so `Copy`, `Send`, `Sync` and `'static`.
pub trait Run: Copy + Send + Sync + 'static {
    /// Runs the cleanup, named `name` in its reports.
    fn run(&self, exit: &Exit, name: &str);
}

/// A cleanup: a `fn()` or a `fn(&Exit)` (a path to a function, or a closure that captures
/// nothing), returning `()` or `Result<(), E: Display>`. `Marker` tells the forms apart;
/// [`cleanup`] makes it [`Ready`](Cleanup::Ready) to run.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a cleanup: a cleanup is a `fn()` or a `fn(&finally::Exit)`",
    label = "not a `fn()` or a `fn(&finally::Exit)`",
    note = "a cleanup takes no argument, or one `&finally::Exit` telling why the function ended, and returns `()` or `Result<(), E>` with `E: Display`",
    note = "a cleanup that needs state made at run time, such as `self`'s data or the function's arguments, is a guard made in the function: `let _cleanup = finally::guard(move |exit| ...);`"
)]
pub trait Cleanup<Marker>: Copy + Send + Sync + 'static {
    /// The cleanup, ready to run.
    type Ready: Run;
    /// Makes it ready.
    fn ready(self) -> Self::Ready;
}

/// Marks a `fn()` cleanup.
pub enum NoArgument {}
/// Marks a `fn(&Exit)` cleanup.
pub enum WithExit {}

/// A `fn()` cleanup returning `O`, ready to run.
pub struct CallWithout<F, O>(F, PhantomData<fn() -> O>);
/// A `fn(&Exit)` cleanup returning `O`, ready to run.
pub struct CallWith<F, O>(F, PhantomData<fn() -> O>);

macro_rules! copy {
    ($($ready:ident),*) => {$(
        impl<F: Copy, O> Clone for $ready<F, O> {
            fn clone(&self) -> Self {
                *self
            }
        }

        impl<F: Copy, O> Copy for $ready<F, O> {}
    )*};
}

copy!(CallWithout, CallWith);

impl<F, O> Cleanup<(NoArgument, O)> for F
where
    F: Fn() -> O + Copy + Send + Sync + 'static,
    O: Outcome + 'static,
{
    type Ready = CallWithout<F, O>;

    #[inline]
    fn ready(self) -> Self::Ready {
        CallWithout(self, PhantomData)
    }
}

impl<F, O> Cleanup<(WithExit, O)> for F
where
    F: Fn(&Exit) -> O + Copy + Send + Sync + 'static,
    O: Outcome + 'static,
{
    type Ready = CallWith<F, O>;

    #[inline]
    fn ready(self) -> Self::Ready {
        CallWith(self, PhantomData)
    }
}

impl<F, O> Run for CallWithout<F, O>
where
    F: Fn() -> O + Copy + Send + Sync + 'static,
    O: Outcome + 'static,
{
    #[inline]
    fn run(&self, _: &Exit, name: &str) {
        (self.0)().report(&name);
    }
}

impl<F, O> Run for CallWith<F, O>
where
    F: Fn(&Exit) -> O + Copy + Send + Sync + 'static,
    O: Outcome + 'static,
{
    #[inline]
    fn run(&self, exit: &Exit, name: &str) {
        (self.0)(exit).report(&name);
    }
}

/// What a cleanup returns: `()`, or `Result<(), E>` with `E: Display`, whose error is reported in
/// one line on stderr (`finally: CLEANUP failed: ERROR`), never as a panic; or `!`, for a cleanup
/// that ends the process with `std::process::exit`.
pub trait Outcome: outcome::Sealed {
    /// Reports a failure of the cleanup `what`.
    #[doc(hidden)]
    fn report(self, what: &dyn std::fmt::Display);
}

impl Outcome for () {
    #[inline]
    fn report(self, _: &dyn std::fmt::Display) {}
}

impl<E: std::fmt::Display> Outcome for Result<(), E> {
    #[inline]
    fn report(self, what: &dyn std::fmt::Display) {
        if let Err(error) = self {
            failed(what, &error);
        }
    }
}

/// A cleanup that ends the process (`|_| std::process::exit(4)`, a `fn(&Exit) -> !`) returns
/// `!`: so does a closure whose body only calls such a function, once edition 2024 infers its
/// return type as `!` (2021 infers `()`, and warns when that is what made the code compile).
/// Hidden: the docs would name it by its path to `!`, which the trait's docs say plainly.
#[doc(hidden)]
impl Outcome for Never {
    #[inline]
    fn report(self, _: &dyn std::fmt::Display) {
        self
    }
}

/// `!`, which stable Rust names only as what a `fn() -> !` returns.
type Never = <fn() -> ! as outcome::Returns>::Output;

#[cold]
fn failed(what: &dyn std::fmt::Display, error: &dyn std::fmt::Display) {
    crate::report::report(format_args!("{what} failed: {error}"));
}

mod outcome {
    pub trait Sealed {}
    impl Sealed for () {}
    impl<E: std::fmt::Display> Sealed for Result<(), E> {}
    impl Sealed for super::Never {}

    /// What a function returns: how [`Never`](super::Never) is named.
    pub trait Returns {
        type Output;
    }

    impl<R> Returns for fn() -> R {
        type Output = R;
    }
}

/// Checks that `cleanup` is one, where the error can point at the user's tokens, and makes it
/// ready: its type is the trait's, so a wrong cleanup makes one error, and nothing after it.
#[inline]
pub fn cleanup<M, C: Cleanup<M>>(cleanup: C) -> C::Ready {
    cleanup.ready()
}
