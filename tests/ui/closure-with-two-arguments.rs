#[finally::with_cleanup(|exit, extra: u32| println!("{exit} {extra}"))]
fn work() {}

fn main() {
    work();
}
