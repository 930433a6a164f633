// The cleanup may read the value on the signal thread at any moment: no `DerefMut`.
fn main() {
    let mut names = finally::guard_value(Vec::<String>::new(), |names, _| drop(names.len()));
    names.push(String::from("scratch"));
}
