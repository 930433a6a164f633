fn remove_scratch() {}

#[finally::with_cleanup(remove_scratch, timeout = "soon")]
fn main() {}
