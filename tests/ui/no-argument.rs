#[finally::with_cleanup]
fn work() {}

fn main() {
    work();
}
