//! The cleanups that another process may run: those the program's code registered with
//! `#[finally::guardian_cleanup]`. The registry is in the executable itself (each registration
//! a static, linked into a list before `main`), so the program and its guardian, a copy of it or
//! the same executable started again, have the same one; the guardian's channel carries a
//! cleanup's place in it, a durable record its path (`crate::module::function`, the same in
//! every build), never an address.

use std::any::TypeId;
use std::borrow::Borrow;
use std::sync::OnceLock;

use crate::cleanup::Outcome;
use crate::exit::Exit;
use crate::state::{State, StateRef};

/// A cleanup registered for the guardian: a static that `#[guardian_cleanup]` makes beside the
/// function. Not a public API.
pub struct Registered {
    /// The function's own type, which `guard_with` is given: it tells this cleanup from any
    /// other, in every crate.
    type_id: fn() -> TypeId,
    /// The function, as a `fn(&B, &Exit) -> O`.
    cleanup: *const (),
    /// `decode_and_run::<B, O>`.
    run: unsafe fn(cleanup: *const (), state: &[u8], exit: &Exit, ran_by: &'static str),
    /// Whether a state is one this cleanup takes, whole.
    decodes: fn(state: &[u8]) -> bool,
    /// Its path, `crate::module::function`: the same in every build of the program, as durable
    /// records name it.
    name: &'static str,
}

// SAFETY: `cleanup` is the address of a function, which any thread may call.
unsafe impl Sync for Registered {}

inventory::collect!(Registered);

impl Registered {
    /// The registration of `cleanup`, given twice: as itself (its type tells it) and as a
    /// function pointer; `name` is its path.
    pub const fn new<F, B, O>(_: F, cleanup: fn(&B, &Exit) -> O, name: &'static str) -> Registered
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
            name,
        }
    }

    /// Its path, `crate::module::function`.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// Whether `state` is one this cleanup takes.
    pub(crate) fn decodes(&self, state: &[u8]) -> bool {
        (self.decodes)(state)
    }

    /// Runs the cleanup with `state`, one it [decodes](Self::decodes), told `exit`; `ran_by`
    /// names it in reports ("a guard's cleanup in the guardian").
    pub(crate) fn run(&self, state: &[u8], exit: &Exit, ran_by: &'static str) {
        // SAFETY: `run` was made for `cleanup`'s type, by `new`.
        unsafe { (self.run)(self.cleanup, state, exit, ran_by) }
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
pub(crate) fn place_of(type_id: TypeId) -> Option<u32> {
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

/// The cleanup whose type is `type_id`, if it was registered.
pub(crate) fn registered(type_id: TypeId) -> Option<&'static Registered> {
    at(place_of(type_id)?)
}

/// The cleanup registered under `name`, its path, if there is one.
pub(crate) fn named(name: &str) -> Option<&'static Registered> {
    all().into_iter().find(|registered| registered.name == name)
}

/// In the guardian: the cleanup at `place`, if there is one.
pub(crate) fn at(place: u32) -> Option<&'static Registered> {
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
unsafe fn decode_and_run<B, O>(cleanup: *const (), state: &[u8], exit: &Exit, ran_by: &str)
where
    B: ?Sized + StateRef,
    O: Outcome,
{
    // SAFETY: the caller vouches for the type.
    let cleanup: fn(&B, &Exit) -> O = unsafe { std::mem::transmute(cleanup) };
    match decode::<B>(state) {
        Some(state) => cleanup(state.borrow(), exit).report(&ran_by),
        None => crate::report::report(format_args!(
            "the state of {ran_by} did not decode: it did not run"
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
