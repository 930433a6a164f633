//! Every shape the attribute, guards and `#[guardian_cleanup]` support, in a crate that denies
//! every lint: what `finally` generates warns of nothing, so `#![deny(warnings)]` builds.
//!
//! Built three ways: by trybuild, which runs it (`tests/ui.rs`, edition 2021); as an example of
//! the `finally-ui` package, which `cargo clippy --all-targets` lints; and by clippy in a crate of
//! edition 2024 (`tests/ui.rs` again).

#![deny(warnings)]
#![deny(
    ambiguous_negative_literals,
    closure_returning_async_block,
    deref_into_dyn_supertrait,
    future_incompatible,
    impl_trait_redundant_captures,
    keyword_idents,
    let_underscore,
    macro_use_extern_crate,
    meta_variable_misuse,
    missing_debug_implementations,
    missing_docs,
    non_ascii_idents,
    nonstandard_style,
    noop_method_call,
    redundant_imports,
    redundant_lifetimes,
    rust_2018_idioms,
    rust_2021_compatibility,
    rust_2024_compatibility,
    single_use_lifetimes,
    trivial_casts,
    trivial_numeric_casts,
    unit_bindings,
    unnameable_types,
    unreachable_pub,
    unsafe_code,
    unused,
    unused_extern_crates,
    unused_import_braces,
    unused_lifetimes,
    unused_macro_rules,
    unused_qualifications,
    unused_results,
    variant_size_differences
)]
#![deny(clippy::all, clippy::pedantic)]

use std::fmt::Display;
use std::path::Path;

use finally::{guardian_cleanup, with_cleanup, Exit};

fn note(exit: &Exit) {
    eprintln!("cleanup: {exit}");
}

const fn quiet() {}

fn fallible(exit: &Exit) -> Result<(), String> {
    if exit.ended_well() {
        Ok(())
    } else {
        Err(format!("{exit}"))
    }
}

/// Sets the exit code, as `main`'s cleanup often does.
fn exit_with_four(_: &Exit) -> ! {
    std::process::exit(4)
}

#[with_cleanup(note)]
fn add(a: u32, b: u32) -> u32 {
    a + b
}

#[with_cleanup(quiet)]
fn nothing() {}

#[with_cleanup(fallible)]
fn result(text: &str) -> Result<u32, std::num::ParseIntError> {
    if text.is_empty() {
        return Ok(0);
    }
    let value: u32 = text.parse()?;
    Ok(value * 2)
}

#[with_cleanup(note)]
fn generic<T, U>(t: T, u: U) -> String
where
    T: Display,
    U: Display + Copy,
{
    format!("{t}{u}")
}

#[with_cleanup(note)]
fn opaque(base: u32) -> impl Fn(u32) -> u32 {
    move |x| x + base
}

#[with_cleanup(note)]
fn borrowed<'a>(text: &'a str, _other: &str) -> &'a str {
    text.trim()
}

/// # Safety
///
/// `p` must point to a readable `u8`.
#[allow(unsafe_code)]
#[with_cleanup(note)]
unsafe fn read(p: *const u8) -> u8 {
    // SAFETY: as the caller promised.
    unsafe { *p }
}

#[with_cleanup(|| eprintln!("closure without argument"))]
fn closure_without_argument() -> u8 {
    1
}

#[with_cleanup(|exit| eprintln!("closure: {exit}"))]
fn closure_with_exit(a: u8) -> u8 {
    a + 1
}

#[with_cleanup(|_| std::process::exit(4))]
fn closure_that_exits() {}

// The closure's own `path` and `signal`, not the arguments: no capture.
#[with_cleanup(|exit| {
    let path = exit.to_string();
    eprintln!("{path}");
})]
fn shadows(path: &str) -> usize {
    path.len()
}

#[with_cleanup(|exit| assert!(!matches!(exit, Exit::Signal(signal) if signal.number() == 0)))]
fn binds_in_a_pattern(signal: i32) -> i32 {
    signal
}

#[with_cleanup(exit_with_four)]
fn path_that_exits() {}

#[with_cleanup(note, grace = "1s", crate = "::finally")]
fn graceful() -> bool {
    finally::stop_requested()
}

// One-expression bodies on one line, as people write them (rustfmt would spread them).
#[rustfmt::skip]
#[with_cleanup(note)]
async fn add_later(a: u32, b: u32) -> u32 { a + b }

#[rustfmt::skip]
#[with_cleanup(note)]
async fn show_later(a: u32) -> impl Display { a }

#[rustfmt::skip]
#[with_cleanup(note)]
async fn print_later(a: u32) { eprintln!("{a}") }

#[with_cleanup(fallible)]
async fn parse_later(text: &str) -> Result<u32, std::num::ParseIntError> {
    if text.is_empty() {
        return Ok(0);
    }
    let value = text.parse()?;
    Ok(value)
}

#[with_cleanup(|| ())]
async fn nothing_later() {}

/// A type whose methods are guarded.
#[derive(Debug)]
struct Counter {
    value: u32,
}

impl Counter {
    #[with_cleanup(note)]
    fn get(&self) -> u32 {
        self.value
    }

    #[with_cleanup(Self::cleanup)]
    fn bump(&mut self) -> &mut u32 {
        self.value += 1;
        &mut self.value
    }

    #[with_cleanup(note)]
    fn into_value(self) -> u32 {
        self.value
    }

    #[rustfmt::skip]
    #[with_cleanup(note)]
    async fn get_later(&self) -> u32 { self.value }

    #[with_cleanup(note)]
    async fn bump_later(&mut self) {
        self.value += 1;
    }

    fn cleanup(exit: &Exit) {
        note(exit);
    }
}

#[guardian_cleanup]
fn remove(dir: &Path, exit: &Exit) -> std::io::Result<()> {
    eprintln!("removing {}: {exit}", dir.display());
    std::fs::remove_dir_all(dir)
}

/// Ends the guardian too, with the code the program would have had.
#[guardian_cleanup]
fn give_up(code: &i32, _: &Exit) -> ! {
    std::process::exit(*code)
}

#[guardian_cleanup(crate = "::finally")]
fn forget(what: &str, _: &Exit) {
    eprintln!("forgetting {what}");
}

#[with_cleanup(
    note,
    guardian,
    signals = [SIGINT, SIGTERM],
    timeout = "10s",
    force_quit_after = 3,
    grace = "1s"
)]
fn main() -> std::io::Result<()> {
    let mut counter = Counter { value: add(1, 2) };
    nothing();
    assert_eq!(result("21"), Ok(42));
    assert_eq!(result(""), Ok(0));
    assert!(result("x").is_err());
    assert_eq!(generic("a", 1), "a1");
    assert_eq!(opaque(2)(3), 5);
    assert_eq!(borrowed(" x ", "y"), "x");
    let byte = 9;
    // SAFETY: `byte` is a live `u8`.
    #[allow(unsafe_code)]
    let read = unsafe { read(std::ptr::from_ref(&byte)) };
    assert_eq!(read, 9);
    assert_eq!(closure_without_argument() + closure_with_exit(1), 3);
    assert_eq!(shadows("ab"), 2);
    assert_eq!(binds_in_a_pattern(1), 1);
    assert!(!graceful());
    assert_eq!(counter.get(), 3);
    *counter.bump() += 1;

    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    runtime.block_on(async {
        assert_eq!(add_later(1, 2).await, 3);
        assert_eq!(show_later(4).await.to_string(), "4");
        print_later(5).await;
        assert_eq!(parse_later("7").await, Ok(7));
        nothing_later().await;
        counter.bump_later().await;
        assert_eq!(counter.get_later().await, 6);
    });
    assert_eq!(counter.into_value(), 6);

    let dir = std::env::temp_dir().join(format!("builds-clean-{}", finally::program_id()));
    std::fs::create_dir_all(&dir)?;
    let removal = finally::guard_with(dir, remove);
    let forgotten = finally::guard_with(String::from("nothing"), forget);
    let message = String::from("dismissed");
    finally::guard(move |_| eprintln!("{message}")).dismiss();
    let fails = finally::guard(|_| Err::<(), _>("reported"));
    drop((removal, forgotten, fails));

    // The exit code set by a cleanup: not run here, where the test expects 0.
    if std::env::var_os("BUILDS_CLEAN_EXIT").is_some() {
        let _exits = finally::guard(|_| std::process::exit(4));
        let _exits_too = finally::guard(exit_with_four);
        let _gives_up = finally::guard_with(4, give_up);
        closure_that_exits();
        path_that_exits();
    }
    Ok(())
}
