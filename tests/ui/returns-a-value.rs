fn remove_scratch() -> u32 {
    0
}

#[finally::with_cleanup(remove_scratch)]
fn work() {}

fn main() {
    work();
}
