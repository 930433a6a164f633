use finally::Exit;

#[finally::guardian_cleanup]
fn remove<T: AsRef<std::path::Path>>(path: &T, _: &Exit) {
    let _ = std::fs::remove_file(path);
}

fn main() {}
