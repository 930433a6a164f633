fn remove_scratch() {}

#[finally::with_cleanup(remove_scratch, guardian)]
#[tokio::main]
async fn main() {}
