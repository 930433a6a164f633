#[derive(Debug)]
struct Failure;

fn main() {
    let _cleanup = finally::guard(|_| Err::<(), _>(Failure));
}
