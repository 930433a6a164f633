//! Guarding an `async fn`: its future, wrapped.

use std::future::Future;
use std::marker::PhantomPinned;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::{end, rethrow, slot, Grace, Site};
use crate::cleanup::Run;
use crate::registry::{self, Link, Node, Panic, Slot};
use crate::Exit;

/// Wraps the future of a guarded `async fn` body; see [`Guarded`].
pub fn guard_future<C, F>(cleanup: C, site: &'static Site, future: F) -> Guarded<C, F>
where
    C: Run,
    F: Future,
{
    Guarded {
        cleanup,
        name: &site.name,
        node: None,
        link: Link::new(),
        grace: site.grace,
        state: State::Unpolled,
        future: ManuallyDrop::new(future),
        _pinned: PhantomPinned,
    }
}

/// The future of a guarded `async fn`: its cleanup is pending from the first poll until it
/// runs, once, when the future completes, panics, is dropped, or the process stops.
#[must_use = "futures do nothing unless awaited"]
pub struct Guarded<C, F> {
    cleanup: C,
    name: &'static &'static str,
    /// Made at the first poll, on the polling thread's stack then, and in a slot's list through
    /// `link` if it waits: this future must not move after its first poll, which `Pin` ensures.
    node: Option<Node<C>>,
    link: Link,
    grace: Duration,
    state: State,
    /// Dropped in place by `drop`, before the cleanup runs, as a body's locals are.
    future: ManuallyDrop<F>,
    _pinned: PhantomPinned,
}

enum State {
    Unpolled,
    /// Linked into this slot's list, or into none if no slot could be had.
    Pending(Option<&'static Slot>, Grace),
    Finished,
}

impl<C, F> Guarded<C, F> {
    fn body(&mut self) -> Pin<&mut F> {
        // SAFETY: `future` is structurally pinned: never moved, dropped in place.
        unsafe { Pin::new_unchecked(&mut *self.future) }
    }

    /// Runs the cleanup of a future that was polled, once: the state becomes `Finished` first.
    /// Through the node's type-erased call, so that `Drop`, which cannot require `C: Run`,
    /// finishes the same way.
    fn finish(&mut self, exit: impl FnOnce(Grace) -> Exit) -> Option<Panic> {
        let State::Pending(slot, grace) = std::mem::replace(&mut self.state, State::Finished)
        else {
            return None;
        };
        let exit = exit(grace);
        let header = self.node.as_ref()?.header();
        let panic = match slot {
            Some(slot) => {
                registry::finish_linked(slot, &self.link, header, Some(&exit), super::slot())
            }
            None => registry::call_unlinked(header, &exit),
        };
        grace.finish();
        panic
    }
}

impl<C, F> Guarded<C, F>
where
    C: Run,
    F: Future,
{
    /// The first poll, with the node on the thread's stack as for a synchronous call: a body
    /// that finishes at once is cleaned up as a call is. One that waits moves its node to the
    /// slot's list, from which any thread may finish it.
    fn first_poll(&mut self, slot: &'static Slot, context: &mut Context<'_>) -> Poll<F::Output> {
        let grace = Grace::start(self.grace);
        let node = &*self
            .node
            .insert(Node::new(self.cleanup, self.name, Some(slot)));
        registry::push(slot, node.header());
        // SAFETY: `future` is structurally pinned: never moved, dropped in place.
        let body = unsafe { Pin::new_unchecked(&mut *self.future) };
        let result = match catch_unwind(AssertUnwindSafe(|| body.poll(context))) {
            Ok(Poll::Pending) => {
                registry::link_future(slot, &self.link, node.header());
                registry::unpush(slot, node.header());
                self.state = State::Pending(Some(slot), grace);
                return Poll::Pending;
            }
            Ok(Poll::Ready(value)) => Ok(value),
            Err(payload) => Err(payload),
        };
        self.state = State::Finished;
        Poll::Ready(end(result, grace, |exit| {
            registry::finish(slot, node, exit)
        }))
    }
}

impl<C, F> Future for Guarded<C, F>
where
    C: Run,
    F: Future,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: nothing is moved out of `this`; `future` is pinned along with it.
        let this = unsafe { self.get_unchecked_mut() };
        if let State::Unpolled = this.state {
            match slot() {
                Some(slot) => return this.first_poll(slot, context),
                None => {
                    // No slot to be found by a shutdown: completion and drop only.
                    this.node = Some(Node::new(this.cleanup, this.name, None));
                    this.state = State::Pending(None, Grace::start(this.grace));
                }
            }
        }
        let result = match catch_unwind(AssertUnwindSafe(|| this.body().poll(context))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(value)) => Ok(value),
            Err(payload) => Err(payload),
        };
        let cleanup_panic = this.finish(|grace| grace.exit(&result));
        Poll::Ready(rethrow(result, cleanup_panic))
    }
}

impl<C, F> Drop for Guarded<C, F> {
    fn drop(&mut self) {
        // SAFETY: dropped in place, once: here, and nowhere else.
        unsafe { ManuallyDrop::drop(&mut self.future) };
        // A cleanup that panics while its future is dropped: reported by the panic hook;
        // panicking out of a drop, maybe during unwinding, would abort.
        drop(self.finish(|_| Exit::Cancelled));
    }
}
