use finally::Exit;

#[finally::guardian_cleanup]
fn remove(path: std::path::PathBuf, _: &Exit) {
    let _ = std::fs::remove_file(path);
}

fn main() {}
