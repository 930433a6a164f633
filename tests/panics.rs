//! Which panic goes on when a body, its cleanup, or both panic: the body's value or panic is
//! what the caller gets, unless only the cleanup panicked. In one process: these are return and
//! panic, with no signal involved.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use finally::{with_cleanup, Exit};

fn failing_cleanup(exit: &Exit) {
    panic!("cleanup failed after {exit:?}");
}

#[with_cleanup(failing_cleanup)]
fn returns() -> u32 {
    7
}

#[with_cleanup(failing_cleanup)]
fn panics() -> u32 {
    panic!("body failed")
}

#[with_cleanup(failing_cleanup)]
async fn returns_at_once() -> u32 {
    7
}

#[with_cleanup(failing_cleanup)]
async fn panics_at_once() -> u32 {
    panic!("body failed")
}

/// The message of the panic `f` ends with.
fn panic_of<T>(f: impl FnOnce() -> T) -> String {
    let payload: Box<dyn Any + Send> = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(_) => panic!("no panic"),
        Err(payload) => payload,
    };
    match (
        payload.downcast_ref::<String>(),
        payload.downcast_ref::<&str>(),
    ) {
        (Some(message), _) => message.clone(),
        (None, Some(message)) => (*message).to_owned(),
        (None, None) => panic!("a panic without a message"),
    }
}

struct Unused;

impl Wake for Unused {
    fn wake(self: Arc<Self>) {}
}

/// Polls `future`, which never waits, once.
fn complete<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unused));
    match pin!(future).poll(&mut Context::from_waker(&waker)) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("the futures here never wait"),
    }
}

#[test]
fn a_cleanup_that_panics_after_a_return_panics_the_caller() {
    assert_eq!(panic_of(returns), "cleanup failed after Returned");
    assert_eq!(
        panic_of(|| complete(returns_at_once())),
        "cleanup failed after Returned"
    );
}

#[test]
fn when_both_panic_the_body_s_panic_goes_on() {
    assert_eq!(panic_of(panics), "body failed");
    assert_eq!(panic_of(|| complete(panics_at_once())), "body failed");
}
