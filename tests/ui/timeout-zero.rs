fn remove_scratch() {}

#[finally::with_cleanup(remove_scratch, timeout = "0ms")]
fn main() {}
