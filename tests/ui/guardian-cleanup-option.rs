use finally::Exit;

#[finally::guardian_cleanup(guardian)]
fn remove(path: &std::path::Path, _: &Exit) {
    let _ = std::fs::remove_file(path);
}

fn main() {}
