fn remove_scratch() {}

#[finally::with_cleanup(remove_scratch, grace = "2 seconds")]
fn main() {}
