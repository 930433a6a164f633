fn remove_scratch() {}

struct Scratch;

#[finally::with_cleanup(remove_scratch)]
impl Scratch {
    fn work(&self) {}
}

fn main() {
    Scratch.work();
}
