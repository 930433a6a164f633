fn remove_scratch() {}

#[finally::with_cleanup(remove_scratch, guardian)]
fn work() {}

fn main() {
    work();
}
