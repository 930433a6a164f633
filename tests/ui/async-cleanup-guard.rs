fn main() {
    let _cleanup = finally::guard(|_| async { eprintln!("removing") });
}
