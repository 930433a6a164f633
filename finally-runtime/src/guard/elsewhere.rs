//! Guards whose cleanup may also run outside this process: their state goes to the guardian
//! ([`guard_with`]), or into a durable record ([`guard_durable`]), and they say so when they end.

use std::any::{type_name, TypeId};
use std::borrow::Borrow;
use std::panic::Location;

use super::Guard;
use crate::cleanup::Outcome;
use crate::durable;
use crate::error::Error;
use crate::exit::Exit;
use crate::guardian;
use crate::registered;
use crate::report::report;
use crate::state::{State, StateRef};

/// Makes a guard whose cleanup also runs in the guardian. Documented in `finally-cleanup`, whose
/// `guard_with` calls this.
#[track_caller]
pub fn guard_with<T, B, F, O>(state: T, cleanup: F) -> Guard<T>
where
    T: State + Borrow<B>,
    B: ?Sized + StateRef<Owned = T>,
    F: Fn(&B, &Exit) -> O + Copy + Send + 'static,
    O: Outcome + 'static,
{
    let armed = guardian::arm(TypeId::of::<F>(), type_name::<F>(), &encoded(&state));
    let mut guard = with_state(state, cleanup, &armed, guardian::disarm, Location::caller());
    // SAFETY: the box is alive as long as the guard, and no one else has its address yet but
    // the list, which never writes this field.
    unsafe { guard.head.as_mut() }.guardian = Some(armed);
    guard
}

/// `state`, encoded for the guardian or a record.
fn encoded(state: &impl State) -> Vec<u8> {
    let mut encoded = Vec::new();
    state.encode(&mut encoded);
    encoded
}

/// A guard of `state` whose cleanup is `cleanup(state.borrow(), exit)`, after which, if `armed`
/// gave it an id, it tells `disarm` that the guard of that id has ended (the guardian, or the
/// records).
fn with_state<T, B, F, O>(
    state: T,
    cleanup: F,
    armed: &Result<u64, Error>,
    disarm: fn(u64),
    made_at: &'static Location<'static>,
) -> Guard<T>
where
    T: State + Borrow<B>,
    B: ?Sized,
    F: Fn(&B, &Exit) -> O + Copy + Send + 'static,
    O: Outcome + 'static,
{
    let id = armed.as_ref().ok().copied();
    let cleanup = move |state: &T, exit: &Exit| {
        let outcome = cleanup(state.borrow(), exit);
        if let Some(id) = id {
            disarm(id);
        }
        outcome
    };
    Guard::new(state, cleanup, made_at)
}

/// Makes a guard whose record survives the whole process dying. Documented in
/// `finally-cleanup`, whose `guard_durable` calls this.
#[track_caller]
pub fn guard_durable<T, B, F, O>(state: T, cleanup: F) -> Guard<T>
where
    T: State + Borrow<B>,
    B: ?Sized + StateRef<Owned = T>,
    F: Fn(&B, &Exit) -> O + Copy + Send + 'static,
    O: Outcome + 'static,
{
    let record = match registered::registered(TypeId::of::<F>()) {
        Some(registered) => {
            let armed = durable::arm(registered, &encoded(&state));
            if armed.is_ok() {
                guardian::keep_records_in(durable::dir());
            }
            armed
        }
        None => Err(Error::because(
            "keep a durable record of this guard",
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "`{}` is not registered: mark it `#[finally::guardian_cleanup]`",
                    type_name::<F>()
                ),
            ),
        )),
    };
    if let Err(error) = &record {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            let source = std::error::Error::source(error).map(ToString::to_string);
            report(format_args!(
                "{error}: {}; its cleanup runs in the program only",
                source.unwrap_or_default()
            ));
        });
    }
    let mut guard = with_state(state, cleanup, &record, durable::disarm, Location::caller());
    // SAFETY: the box is alive as long as the guard, and no one else has its address yet but
    // the list, which never writes this field.
    unsafe { guard.head.as_mut() }.durable = Some(record);
    guard
}
