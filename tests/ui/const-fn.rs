fn remove_scratch() {}

#[finally::with_cleanup(remove_scratch)]
const fn work() -> u32 {
    1
}

fn main() {
    work();
}
