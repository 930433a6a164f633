#[finally::with_cleanup(|| std::fs::remove_dir_all(&path).unwrap())]
fn work(path: String) {
    println!("{path}");
}

fn main() {
    work(String::new());
}
