//! The attribute on every shape of function it supports: each compiles, returns its value
//! unchanged, and runs its cleanup once.

extern crate finally as renamed;

use std::cell::Cell;
use std::fmt::Display;
use std::io;

use finally::{with_cleanup, Exit};

thread_local! {
    /// What the cleanups saw on this thread, in order.
    static SEEN: Cell<Vec<String>> = const { Cell::new(Vec::new()) };
}

fn note(exit: &Exit) {
    SEEN.with(|seen| {
        let mut all = seen.take();
        all.push(format!("{exit:?}"));
        seen.set(all);
    });
}

fn count() {
    note(&Exit::Returned);
}

/// Runs `f` and returns what the cleanups saw meanwhile.
fn seen_by<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    SEEN.with(Cell::take);
    let value = f();
    (value, SEEN.with(Cell::take))
}

#[with_cleanup(note)]
fn free(a: u32, b: u32) -> u32 {
    a + b
}

struct Counter {
    value: u32,
}

impl Counter {
    #[with_cleanup(note)]
    fn get(&self) -> u32 {
        self.value
    }

    #[with_cleanup(count)]
    fn bump(&mut self) -> &mut u32 {
        self.value += 1;
        &mut self.value
    }

    #[with_cleanup(Self::cleanup)]
    fn into_value(self) -> u32 {
        self.value
    }

    fn cleanup(exit: &Exit) {
        note(exit)
    }
}

#[with_cleanup(note)]
fn generic<T, U>(t: T, u: U) -> String
where
    T: Display,
    U: Display + Copy,
{
    format!("{t}{u}")
}

#[with_cleanup(count)]
fn borrowed<'a>(text: &'a str, _other: &str) -> &'a str {
    text.trim()
}

#[with_cleanup(note)]
fn opaque(base: u32) -> impl Fn(u32) -> u32 {
    move |x| x + base
}

#[with_cleanup(note)]
fn result_with_question_mark(text: &str) -> Result<u32, std::num::ParseIntError> {
    let value: u32 = text.parse()?;
    Ok(value * 2)
}

#[with_cleanup(note)]
fn boxed_error(text: &str) -> Result<u8, Box<dyn std::error::Error>> {
    if text.is_empty() {
        return Err("empty".into());
    }
    Ok(text.parse()?)
}

#[with_cleanup(note)]
fn early_return(flag: bool) -> io::Result<&'static str> {
    if flag {
        return Ok("early");
    }
    Err(io::Error::other("late"))
}

/// # Safety
///
/// `p` must point to a readable `u8`.
#[with_cleanup(note)]
unsafe fn unsafe_read(p: *const u8) -> u8 {
    *p
}

#[with_cleanup(|| note(&Exit::Returned))]
fn closure_without_argument() -> u8 {
    1
}

#[with_cleanup(|exit| note(exit))]
fn closure_with_exit((a, b): (u8, u8), mut c: u8) -> u8 {
    c += a + b;
    c
}

#[with_cleanup(note)]
fn panics(message: &str) {
    panic!("{message}");
}

#[test]
fn free_function() {
    assert_eq!(seen_by(|| free(2, 3)), (5, vec!["Returned".into()]));
}

#[test]
fn methods_with_every_receiver() {
    let mut counter = Counter { value: 1 };
    assert_eq!(seen_by(|| counter.get()).1, ["Returned"]);
    let (_, seen) = seen_by(|| *counter.bump() += 10);
    assert_eq!((counter.value, seen), (12, vec!["Returned".into()]));
    assert_eq!(
        seen_by(|| counter.into_value()),
        (12, vec!["Returned".into()])
    );
}

#[test]
fn generics_lifetimes_and_impl_trait() {
    assert_eq!(
        seen_by(|| generic("a", 1)),
        ("a1".into(), vec!["Returned".into()])
    );
    assert_eq!(seen_by(|| borrowed(" x ", "y")).0, "x");
    let (add, seen) = seen_by(|| opaque(2));
    assert_eq!((add(3), seen), (5, vec!["Returned".into()]));
}

#[test]
fn results_with_question_mark_and_early_return() {
    assert_eq!(seen_by(|| result_with_question_mark("21")).0, Ok(42));
    let (err, seen) = seen_by(|| result_with_question_mark("x"));
    assert!(err.is_err());
    assert_eq!(seen, ["Returned"], "an Err is still a return");
    assert_eq!(seen_by(|| boxed_error("7")).0.unwrap(), 7);
    assert_eq!(
        seen_by(|| boxed_error("")).0.unwrap_err().to_string(),
        "empty"
    );
    assert_eq!(seen_by(|| early_return(true)).0.unwrap(), "early");
    assert_eq!(seen_by(|| early_return(false)).1, ["Returned"]);
}

#[test]
fn unsafe_function() {
    let byte = 9u8;
    // SAFETY: `byte` is a live `u8`.
    assert_eq!(
        seen_by(|| unsafe { unsafe_read(&byte) }),
        (9, vec!["Returned".into()])
    );
}

#[test]
fn closures_as_cleanups() {
    assert_eq!(
        seen_by(closure_without_argument),
        (1, vec!["Returned".into()])
    );
    assert_eq!(
        seen_by(|| closure_with_exit((1, 2), 3)),
        (6, vec!["Returned".into()])
    );
}

#[test]
fn panic_is_reported_to_the_cleanup_and_continues() {
    let (result, seen) = seen_by(|| std::panic::catch_unwind(|| panics("boom")));
    let payload = result.unwrap_err();
    assert_eq!(payload.downcast_ref::<String>().unwrap(), "boom");
    assert_eq!(seen, [r#"Panicked { message: Some("boom") }"#]);
}

#[test]
fn nested_calls_clean_up_innermost_first() {
    #[with_cleanup(|| note(&Exit::Cancelled))]
    fn outer() -> u32 {
        inner() + 1
    }
    #[with_cleanup(note)]
    fn inner() -> u32 {
        1
    }
    assert_eq!(
        seen_by(outer),
        (2, vec!["Returned".into(), "Cancelled".into()])
    );
}

#[renamed::with_cleanup(note, crate = "renamed")]
fn through_a_renamed_crate() -> u8 {
    3
}

#[test]
fn the_crate_option_finds_a_renamed_dependency() {
    assert_eq!(
        seen_by(through_a_renamed_crate),
        (3, vec!["Returned".into()])
    );
}
