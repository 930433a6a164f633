#[finally::with_cleanup(|exit| eprintln!("{exit}: removing {}", path))]
fn work(path: String) {
    println!("{path}");
}

fn main() {
    work(String::new());
}
