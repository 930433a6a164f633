fn remove_scratch() {}

#[finally::with_cleanup(remove_scratch, crate = "finally", crate = "finally")]
fn main() {}
