fn remove_scratch() {}

#[finally::with_cleanup(remove_scratch, grace = "0s")]
fn main() {}
