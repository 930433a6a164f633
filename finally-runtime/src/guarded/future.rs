//! Guarding an `async fn`: its future, wrapped.

use std::future::Future;
use std::marker::PhantomPinned;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr;
use std::task::{Context, Poll};

use super::{end, ended, rethrow, Grace, Site};
use crate::cleanup::Run;
use crate::exit::stopped_for;
use crate::exit::Exit;
use crate::protocol::Header;
use crate::registry::{self, Link, Lives, Node, Panic, Slot};
use crate::{standby, stop};

/// Wraps the future of a guarded `async fn` body; see [`Guarded`]. `GRACE`: whether `site` has
/// a grace period, told by the attribute, so that a future without one does not look. `MAIN`:
/// whether it is `async fn main`'s, whose thread, stopped during a shutdown, waits for the end
/// in its poll (as `guard_main`'s does) rather than unwinding out of the runtime that drives it.
pub fn guard_future<C, F, const GRACE: bool, const MAIN: bool>(
    cleanup: C,
    site: &'static Site,
    future: F,
) -> Guarded<C, F, GRACE, MAIN>
where
    C: Run,
    F: Future,
{
    Guarded {
        cleanup,
        site,
        node: MaybeUninit::uninit(),
        link: MaybeUninit::uninit(),
        state: Progress::Unpolled,
        future: ManuallyDrop::new(future),
        _pinned: PhantomPinned,
    }
}

/// The future of a guarded `async fn`: its cleanup is pending from the first poll until it
/// runs, once, when the future completes, panics, is dropped, or the process stops.
///
/// Made in the caller's frame and moved into place before its first poll, it holds little until
/// then: the node and the link are written where the future stays, when they are needed.
#[must_use = "futures do nothing unless awaited"]
pub struct Guarded<C, F, const GRACE: bool = false, const MAIN: bool = false> {
    cleanup: C,
    site: &'static Site,
    /// Made at the first poll, on the polling thread's stack then, and in a slot's list through
    /// `link` if it waits: this future must not move after its first poll, which `Pin` ensures.
    /// Initialised once `state` is not `Unpolled`.
    node: MaybeUninit<Node<C>>,
    /// Initialised once `state` is `Pending` with a slot.
    link: MaybeUninit<Link>,
    state: Progress,
    /// Dropped in place by `drop`, before the cleanup runs, as a body's locals are.
    future: ManuallyDrop<F>,
    _pinned: PhantomPinned,
}

/// How far a guarded future has come: not polled yet, pending (its node linked), finished.
enum Progress {
    Unpolled,
    /// Linked into this slot's list, or into none if no slot could be had.
    Pending(Option<&'static Slot>, Grace),
    Finished,
}

impl<C, F, const GRACE: bool, const MAIN: bool> Guarded<C, F, GRACE, MAIN> {
    fn body(&mut self) -> Pin<&mut F> {
        // SAFETY: `future` is structurally pinned: never moved, dropped in place.
        unsafe { Pin::new_unchecked(&mut *self.future) }
    }

    /// Runs the cleanup of a future that was polled, once: the state becomes `Finished` first.
    /// Through the node's type-erased call, so that `Drop`, which cannot require `C: Run`,
    /// finishes the same way.
    fn finish(&mut self, exit: Exit) -> Option<Panic> {
        let Progress::Pending(slot, grace) = std::mem::replace(&mut self.state, Progress::Finished)
        else {
            return None;
        };
        // SAFETY: a future pending has its node.
        let header = unsafe { self.node.assume_init_ref() }.header();
        let panic = match slot {
            Some(slot) => {
                // SAFETY: a future pending in a slot's list has its link.
                let link = unsafe { self.link.assume_init_ref() };
                let mine = super::slot();
                registry::finish_linked(slot, link, header, Some(&exit), mine, Lives::InFuture).1
            }
            None => registry::call_unlinked(header, &exit),
        };
        grace.finish();
        panic
    }
}

impl<C, F, const GRACE: bool, const MAIN: bool> Guarded<C, F, GRACE, MAIN>
where
    C: Run,
    F: Future,
{
    /// The first poll, with the node on the thread's stack above `top` as for a synchronous
    /// call: a body that finishes at once is cleaned up as a call is. One that waits moves its
    /// node to the slot's list, from which any thread may finish it.
    #[inline]
    fn first_poll(
        &mut self,
        (slot, top): (&'static Slot, *mut Header),
        context: &mut Context<'_>,
    ) -> Poll<F::Output> {
        let grace = match GRACE {
            true => Grace::start(&self.site.grace),
            false => Grace(None),
        };
        let node = &*self
            .node
            .write(Node::above(self.cleanup, &self.site.name, top));
        if !registry::push(slot, node.header()) {
            grace.abandon();
            stop::stop();
            // Unwinding already: as a cleanup's calls are, return and panic only.
            self.state = Progress::Pending(None, Grace(None));
            return self.poll_again(context);
        }
        // SAFETY: `future` is structurally pinned: never moved, dropped in place.
        let body = unsafe { Pin::new_unchecked(&mut *self.future) };
        let result = match catch_unwind(AssertUnwindSafe(|| body.poll(context))) {
            Ok(Poll::Pending) => {
                self.wait_linked(slot, grace);
                return Poll::Pending;
            }
            Ok(Poll::Ready(value)) => Ok(value),
            Err(payload) => Err(payload),
        };
        self.state = Progress::Finished;
        Poll::Ready(end(result, grace, slot, node))
    }

    /// The first poll returned `Pending`: the node moves from the stack to the slot's list.
    #[cold]
    fn wait_linked(&mut self, slot: &'static Slot, grace: Grace) {
        // SAFETY: written by the first poll.
        let header = unsafe { self.node.assume_init_ref() }.header();
        let link = self.link.write(Link::new());
        registry::link_future(slot, link, header);
        // Pending before the node leaves the stack: a shutdown may stop the thread there, and
        // the future, dropped then, must unlink it.
        self.state = Progress::Pending(Some(slot), grace);
        registry::unpush(slot, header);
    }

    /// A poll after the first, or a first where no slot could be had.
    #[inline(never)]
    fn poll_again(&mut self, context: &mut Context<'_>) -> Poll<F::Output> {
        if let Progress::Unpolled = self.state {
            // No slot to be found by a shutdown: completion and drop only.
            self.node
                .write(Node::above(self.cleanup, &self.site.name, ptr::null_mut()));
            self.state = Progress::Pending(None, Grace::start(&self.site.grace));
        }
        let result = match catch_unwind(AssertUnwindSafe(|| self.body().poll(context))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(value)) => Ok(value),
            Err(payload) => Err(payload),
        };
        let cleanup_panic = self.finish(ended(&result));
        Poll::Ready(rethrow(result, cleanup_panic))
    }
}

impl<C, F, const GRACE: bool, const MAIN: bool> Future for Guarded<C, F, GRACE, MAIN>
where
    C: Run,
    F: Future,
{
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: nothing is moved out of `this`; `future` is pinned along with it.
        let this = unsafe { self.get_unchecked_mut() };
        if MAIN {
            return this.poll_main(context);
        }
        this.poll_here(context)
    }
}

impl<C, F, const GRACE: bool, const MAIN: bool> Guarded<C, F, GRACE, MAIN>
where
    C: Run,
    F: Future,
{
    #[inline]
    fn poll_here(&mut self, context: &mut Context<'_>) -> Poll<F::Output> {
        if let Progress::Unpolled = self.state {
            if let Some(registering) = super::registering() {
                return self.first_poll(registering, context);
            }
        }
        self.poll_again(context)
    }

    /// `async fn main`'s poll: a stop ends here (see [`guard_future`]).
    #[cold]
    fn poll_main(&mut self, context: &mut Context<'_>) -> Poll<F::Output> {
        match catch_unwind(AssertUnwindSafe(|| self.poll_here(context))) {
            Ok(poll) => poll,
            Err(payload) if stopped_for(&*payload).is_some() => standby::park_for_good(),
            Err(payload) => std::panic::resume_unwind(payload),
        }
    }
}

impl<C, F, const GRACE: bool, const MAIN: bool> Drop for Guarded<C, F, GRACE, MAIN> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: dropped in place, once: here, and nowhere else.
        unsafe { ManuallyDrop::drop(&mut self.future) };
        if let Progress::Pending(..) = self.state {
            self.cancelled();
        }
    }
}

impl<C, F, const GRACE: bool, const MAIN: bool> Guarded<C, F, GRACE, MAIN> {
    /// Dropped while pending.
    #[cold]
    fn cancelled(&mut self) {
        // A cleanup that panics while its future is dropped: reported by the panic hook;
        // panicking out of a drop, maybe during unwinding, would abort.
        drop(self.finish(Exit::Cancelled));
    }
}
