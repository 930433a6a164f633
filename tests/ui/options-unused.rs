#![deny(unused_must_use)]

use std::time::Duration;

fn main() {
    let options = finally::Options::new();
    // `Options` is a value: the builder returns the changed options, it does not change these.
    options.timeout(Duration::from_secs(10));
    finally::Options::new();
    finally::install(options).unwrap();
}
