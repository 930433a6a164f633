fn remove_scratch() {}

#[finally::with_cleanup(remove_scratch, timeout = "10s")]
fn work() {}

fn main() {
    work();
}
