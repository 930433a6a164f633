fn remove_scratch() {}

#[finally::with_cleanup(remove_scratch)]
trait Work {
    fn work(&self) {}
}

fn main() {}
