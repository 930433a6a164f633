use finally::Exit;

#[finally::guardian_cleanup]
fn remove(_: &Exit) {}

fn main() {}
