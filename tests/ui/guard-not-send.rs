use std::rc::Rc;

fn main() {
    let counter = Rc::new(0);
    let _cleanup = finally::guard(move |_| drop(counter));
}
