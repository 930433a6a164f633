fn remove_scratch(_attempts: u32) {}

#[finally::with_cleanup(remove_scratch)]
fn work() {}

fn main() {
    work();
}
