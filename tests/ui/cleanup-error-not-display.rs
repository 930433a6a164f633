#[derive(Debug)]
struct Failure;

// A cleanup's error is reported in one line: it must be `Display`.
fn remove_scratch() -> Result<(), Failure> {
    Err(Failure)
}

#[finally::with_cleanup(remove_scratch)]
fn work() {}

fn main() {
    work();
}
