struct Connection;

impl Connection {
    fn close(&self) {}

    #[finally::with_cleanup(|| self.close())]
    fn query(&self) {}
}

fn main() {
    Connection.query();
}
