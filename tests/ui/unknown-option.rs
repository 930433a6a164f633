fn remove_scratch() {}

#[finally::with_cleanup(remove_scratch, guardain)]
fn main() {}
