use finally::Exit;

struct Connection;

// A state must reach another process: a `State`, or what one borrows as.
#[finally::guardian_cleanup]
fn close(_: &Connection, _: &Exit) {}

fn main() {}
