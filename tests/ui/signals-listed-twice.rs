fn remove_scratch() {}

#[finally::with_cleanup(remove_scratch, signals = [SIGINT, SIGTERM, SIGINT])]
fn main() {}
