#[finally::with_cleanup(|| eprintln!("removing {path:?}"))]
fn work(path: String) {
    println!("{path}");
}

fn main() {
    work(String::new());
}
