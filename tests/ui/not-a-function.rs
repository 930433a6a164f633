fn remove_scratch() {}

#[finally::with_cleanup(remove_scratch)]
struct Scratch {
    path: String,
}

fn main() {
    let _ = Scratch { path: String::new() }.path;
}
