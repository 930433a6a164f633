fn remove_scratch() -> std::io::Result<()> {
    Ok(())
}

#[finally::with_cleanup(remove_scratch)]
fn work() {}

fn main() {
    work();
}
