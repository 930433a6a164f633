use std::cell::Cell;

// Read by the code and by the cleanup, on another thread: the value must be `Sync`.
fn main() {
    let _count = finally::guard_value(Cell::new(0), |count, _| drop(count.get()));
}
