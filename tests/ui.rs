//! Mistakes in using the attribute are compile errors that say what is wrong, at the user's own
//! tokens. The expected messages are the `.stderr` files beside each case.

#[test]
fn compile_errors() {
    trybuild::TestCases::new().compile_fail("*.rs");
}
