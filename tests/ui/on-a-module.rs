fn remove_scratch() {}

#[finally::with_cleanup(remove_scratch)]
mod work {
    pub fn run() {}
}

fn main() {
    work::run();
}
