fn main() {
    let dir = std::path::PathBuf::from("/tmp/scratch");
    let _cleanup = finally::guard(|_| std::fs::remove_dir_all(&dir));
}
