async fn remove_scratch() {}

#[finally::with_cleanup(remove_scratch)]
fn work() {}

fn main() {
    work();
}
