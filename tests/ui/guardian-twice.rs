fn remove_scratch() {}

#[finally::with_cleanup(remove_scratch, guardian, guardian)]
fn main() {}
