fn remove_scratch() {}

#[finally::with_cleanup(remove_scratch, force_quit_after = 0)]
fn main() {}
