//! A generated case of the combination test, with the guardian on `main`: `combo-guardian SEED
//! INDEX` (see `case.rs`).

mod case;

#[finally::with_cleanup(case::main_cleanup, guardian)]
fn main() {
    case::run(true);
}
