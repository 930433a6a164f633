//! The cleanups the guardian may run: those the program's code registered with
//! `#[finally::guardian_cleanup]`. The registry is in the executable itself (each registration
//! a static, linked into a list before `main`), so the program and its guardian, a copy of it or
//! the same executable started again, have the same one; the channel carries a cleanup's place
//! in it, never an address.

use std::any::TypeId;
use std::borrow::Borrow;
use std::sync::OnceLock;

use crate::cleanup::Outcome;
use crate::state::{State, StateRef};
use crate::Exit;

/// A cleanup registered for the guardian: a static that `#[guardian_cleanup]` makes beside the
/// function. Not a public API.
pub struct Registered {
    /// The function's own type, which `guard_with` is given: it tells this cleanup from any
    /// other, in every crate.
    type_id: fn() -> TypeId,
    /// The function, as a `fn(&B, &Exit) -> O`.
    cleanup: *const (),
    /// `decode_and_run::<B, O>`.
    run: unsafe fn(cleanup: *const (), state: &[u8], exit: &Exit),
    /// Whether a state is one this cleanup takes, whole.
    decodes: fn(state: &[u8]) -> bool,
}

// SAFETY: `cleanup` is the address of a function, which any thread may call.
unsafe impl Sync for Registered {}

inventory::collect!(Registered);

impl Registered {
    /// The registration of `cleanup`, given twice: as itself (its type tells it) and as a
    /// function pointer.
    pub const fn new<F, B, O>(_: F, cleanup: fn(&B, &Exit) -> O) -> Registered
    where
        F: Fn(&B, &Exit) -> O + Copy + 'static,
        B: ?Sized + StateRef + 'static,
        O: Outcome + 'static,
    {
        Registered {
            type_id: TypeId::of::<F>,
            cleanup: cleanup as *const (),
            run: decode_and_run::<B, O>,
            decodes: decodes::<B>,
        }
    }

    /// Whether `state` is one this cleanup takes.
    pub(super) fn decodes(&self, state: &[u8]) -> bool {
        (self.decodes)(state)
    }

    /// Runs the cleanup with `state`, one it [decodes](Self::decodes), told `exit`.
    pub(super) fn run(&self, state: &[u8], exit: &Exit) {
        // SAFETY: `run` was made for `cleanup`'s type, by `new`.
        unsafe { (self.run)(self.cleanup, state, exit) }
    }
}

/// The registered cleanups, oldest registration first: a library loaded later adds its own at
/// the end, so a cleanup's place never changes.
fn all() -> Vec<&'static Registered> {
    let mut all: Vec<_> = inventory::iter::<Registered>.into_iter().collect();
    all.reverse();
    all
}

/// In the program: the place of the cleanup whose type is `type_id`, if it was registered.
pub(super) fn place_of(type_id: TypeId) -> Option<u32> {
    static PLACES: OnceLock<Vec<(TypeId, u32)>> = OnceLock::new();
    let find = |places: &[(TypeId, u32)]| {
        let at = places.binary_search_by_key(&type_id, |&(id, _)| id).ok()?;
        Some(places[at].1)
    };
    let places = PLACES.get_or_init(|| {
        let mut places: Vec<_> = (all().into_iter().zip(0..))
            .map(|(registered, place)| ((registered.type_id)(), place))
            .collect();
        places.sort_unstable();
        places
    });
    // Not there: perhaps in a library loaded since (rare, so looked up afresh).
    find(places).or_else(|| {
        let place = all()
            .iter()
            .position(|registered| (registered.type_id)() == type_id)?;
        u32::try_from(place).ok()
    })
}

/// In the guardian: the cleanup at `place`, if there is one.
pub(super) fn at(place: u32) -> Option<&'static Registered> {
    static ALL: OnceLock<Vec<&'static Registered>> = OnceLock::new();
    ALL.get_or_init(all)
        .get(usize::try_from(place).ok()?)
        .copied()
}

/// Decodes a state of `B` and calls `cleanup` with it.
///
/// # Safety
///
/// `cleanup` must be a `fn(&B, &Exit) -> O`.
unsafe fn decode_and_run<B, O>(cleanup: *const (), state: &[u8], exit: &Exit)
where
    B: ?Sized + StateRef,
    O: Outcome,
{
    // SAFETY: the caller vouches for the type.
    let cleanup: fn(&B, &Exit) -> O = unsafe { std::mem::transmute(cleanup) };
    match decode::<B>(state) {
        Some(state) => cleanup(state.borrow(), exit).report(&"a guard's cleanup in the guardian"),
        None => crate::report::report(format_args!(
            "a guard's state did not decode in the guardian: its cleanup did not run"
        )),
    }
}

fn decodes<B: ?Sized + StateRef>(state: &[u8]) -> bool {
    decode::<B>(state).is_some()
}

/// A whole state of `B`, nothing left over.
fn decode<B: ?Sized + StateRef>(mut state: &[u8]) -> Option<B::Owned> {
    let decoded = B::Owned::decode(&mut state)?;
    state.is_empty().then_some(decoded)
}
