fn remove_scratch() {}

#[finally::with_cleanup(remove_scratch)]
async fn work() {}

fn main() {
    let _ = work();
}
