//! A generated case of the combination test, without the guardian: `combo SEED INDEX` (see
//! `case.rs`).

mod case;

fn main() {
    case::run(false);
}
