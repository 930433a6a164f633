#[finally::with_cleanup(|| async { eprintln!("removing") })]
fn work() {}

fn main() {
    work();
}
