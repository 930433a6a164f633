//! What a cleanup is: the forms the attribute takes, what a cleanup returns, and a cleanup ready
//! to run, whatever its form, as the registry keeps it in a node and the guardian runs it.

// `#[diagnostic::do_not_recommend]` is Rust 1.85's; an older one ignores it, and says so.
#![allow(unknown_or_malformed_diagnostic_attributes)]

use std::marker::PhantomData;

use crate::exit::Exit;

/// A cleanup, told why its function ended. Copied into each node, and, through `fork`, into the
/// guardian: so `Copy`, `Send`, `Sync` and `'static`.
pub trait Run: Copy + Send + Sync + 'static {
    /// Runs the cleanup, named `name` in its reports.
    fn run(&self, exit: &Exit, name: &dyn std::fmt::Display);
}

/// What `#[with_cleanup]` takes as a cleanup: a `fn()` or a `fn(&Exit)`, a path to a function or
/// a closure that captures nothing, returning an [`Outcome`]. `Form` is the one it is:
/// `fn() -> O` or `fn(&Exit) -> O`. Implemented for every such function; there is nothing to
/// implement, and compile errors name it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a cleanup: a cleanup is a `fn()` or a `fn(&finally::Exit)`",
    label = "not a `fn()` or a `fn(&finally::Exit)`",
    note = "a cleanup takes no argument, or one `&finally::Exit` telling why the function ended, and returns `()` or `Result<(), E>` with `E: Display`",
    note = "a cleanup that needs state made at run time, such as `self`'s data or the function's arguments, is a guard made in the function: `let _cleanup = finally::guard(move |exit| ...);`"
)]
pub trait Cleanup<Form>: Copy + Send + Sync + 'static {
    /// What it returns.
    #[doc(hidden)]
    type Output;
    /// The cleanup, ready to run once what it returns is checked.
    #[doc(hidden)]
    type Ready;
    /// Makes it ready, for [`Outcome::returned_by`] to check what it returns.
    #[doc(hidden)]
    fn ready(self) -> Returning<Self::Ready, Self::Output>;
}

/// A cleanup ready to run, `R`, that returns `O`: what [`Outcome::returned_by`] checks.
pub struct Returning<R, O>(R, PhantomData<fn() -> O>);

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

// What the cleanup returns is not checked here but by `Outcome::returned_by`, so that a cleanup of
// the right form that returns something else is told so, rather than that it is no cleanup.
impl<F, O> Cleanup<fn() -> O> for F
where
    F: Fn() -> O + Copy + Send + Sync + 'static,
    O: 'static,
{
    type Output = O;
    type Ready = CallWithout<F, O>;

    #[inline]
    fn ready(self) -> Returning<Self::Ready, O> {
        Returning(CallWithout(self, PhantomData), PhantomData)
    }
}

impl<F, O> Cleanup<fn(&Exit) -> O> for F
where
    F: Fn(&Exit) -> O + Copy + Send + Sync + 'static,
    O: 'static,
{
    type Output = O;
    type Ready = CallWith<F, O>;

    #[inline]
    fn ready(self) -> Returning<Self::Ready, O> {
        Returning(CallWith(self, PhantomData), PhantomData)
    }
}

impl<F, O> Run for CallWithout<F, O>
where
    F: Fn() -> O + Copy + Send + Sync + 'static,
    O: Outcome + 'static,
{
    #[inline]
    fn run(&self, _: &Exit, name: &dyn std::fmt::Display) {
        (self.0)().report(name);
    }
}

impl<F, O> Run for CallWith<F, O>
where
    F: Fn(&Exit) -> O + Copy + Send + Sync + 'static,
    O: Outcome + 'static,
{
    #[inline]
    fn run(&self, exit: &Exit, name: &dyn std::fmt::Display) {
        (self.0)(exit).report(name);
    }
}

/// What a cleanup returns: `()`, or `Result<(), E>` with `E: Display`, whose error is reported in
/// one line on stderr, never as a panic: `finally: CLEANUP of FUNCTION failed: ERROR` for the
/// attribute's cleanup (`CLEANUP` as written in the attribute, or `the cleanup closure`),
/// `finally: the guard made at FILE:LINE failed: ERROR` for a guard, and in the guardian
/// `finally: main's cleanup failed: ERROR` or `finally: a guard's cleanup in the guardian failed:
/// ERROR`; or `!`, for a cleanup that ends the process with `std::process::exit`.
///
/// The impls say `do_not_recommend`: a `Result` whose error is not `Display` is then told this
/// trait's message, not `Display`'s, and no list of impls in the runtime's sources follows.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be what a cleanup returns: a cleanup returns `()`, or `Result<(), E>` with `E: Display`",
    label = "this cleanup returns `{Self}`",
    note = "a cleanup's error is reported in one line on stderr, `finally: CLEANUP failed: ERROR`: so it implements `Display`",
    note = "a cleanup runs to its end where nothing would poll a future (on the signal thread, in a destructor, inside `exit`), so it cannot be `async`; to await something when the program is stopped, await `finally::stop_signal()` in the function's body and give it a `grace` period"
)]
pub trait Outcome: outcome::Sealed {
    /// Reports a failure of the cleanup `what`.
    #[doc(hidden)]
    fn report(self, what: &dyn std::fmt::Display);

    /// Named by `#[guardian_cleanup]`, so that a cleanup that returns something else is told by
    /// this trait.
    #[doc(hidden)]
    const CHECKED: () = ();

    /// The cleanup `ready`, once it is checked that it returns an `Outcome`: a call of a method
    /// of this trait, so that an error names this trait and no function of the runtime.
    #[doc(hidden)]
    #[inline]
    fn returned_by<R>(ready: Returning<R, Self>) -> R
    where
        Self: Sized,
    {
        ready.0
    }
}

#[diagnostic::do_not_recommend]
impl Outcome for () {
    #[inline]
    fn report(self, _: &dyn std::fmt::Display) {}
}

#[diagnostic::do_not_recommend]
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
#[diagnostic::do_not_recommend]
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
    crate::trace::failed();
    crate::report::report(format_args!("{what} failed: {error}"));
}

mod outcome {
    pub trait Sealed {}
    impl Sealed for () {}
    // Without `E: Display`, which `Outcome`'s impl asks for: an error is then told as
    // `Outcome`'s.
    impl<E> Sealed for Result<(), E> {}
    impl Sealed for super::Never {}

    /// What a function returns: how [`Never`](super::Never) is named.
    pub trait Returns {
        type Output;
    }

    impl<R> Returns for fn() -> R {
        type Output = R;
    }
}

/// `cleanup`, checked and ready to run, in one call: for code that makes one by hand, as the
/// benchmarks do (the attribute calls the traits' methods, for its errors' sake).
#[inline]
pub fn cleanup<F, C: Cleanup<F>>(cleanup: C) -> C::Ready
where
    C::Output: Outcome,
{
    Outcome::returned_by(cleanup.ready())
}
