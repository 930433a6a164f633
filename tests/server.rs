//! The example `examples/server.rs`, run as its users run it: a client's request in flight when
//! SIGTERM arrives is still answered, new clients are turned away, the cleanup runs once, and
//! the server ends by SIGTERM.

mod common;

use std::io::{self, BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;

/// How long any one step may take before the test gives up on the server.
const PATIENCE: Duration = Duration::from_secs(20);

#[test]
fn a_request_in_flight_is_answered_then_the_server_cleans_up_once() {
    let server = Scenario::start_example("server", &[], |_| {});
    let address: SocketAddr = server
        .next_line()
        .strip_prefix("ready ")
        .expect("a `ready <address>` line first")
        .parse()
        .expect("the server's address");

    let mut client = connect(address).expect("connect to the server");
    client.write_all(b"hello\n").unwrap();
    server.expect_line("request hello");
    server.signal(SIGTERM);
    server.expect_line("stopping on SIGTERM: 1 connection(s) still open");

    // The stop came mid-request: the reply is still to come (the work takes a second).
    client.set_nonblocking(true).unwrap();
    let early = client.peek(&mut [0]);
    client.set_nonblocking(false).unwrap();
    assert!(
        matches!(&early, Err(error) if error.kind() == ErrorKind::WouldBlock),
        "the request was not in flight when the stop took effect: {early:?}"
    );
    assert_not_served(address);

    let mut replies = BufReader::new(client);
    let mut reply = String::new();
    replies.read_line(&mut reply).expect("the reply");
    assert_eq!(reply, "done hello\n");
    // Then the server hangs up, rather than wait for a next request.
    assert_eq!(replies.read_line(&mut reply).expect("the hang-up"), 0);

    let ended = server.wait();
    ended.assert_killed_by(SIGTERM);
    let told = ended.said_once("server ended: ", "");
    assert_eq!(told, stopped_by(SIGTERM), "stderr: {}", ended.stderr);
}

fn connect(address: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&address, PATIENCE)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    stream.set_write_timeout(Some(PATIENCE))?;
    Ok(stream)
}

/// Asserts that a client arriving after the stop is refused, or at least never answered.
fn assert_not_served(address: SocketAddr) {
    let Ok(mut late) = connect(address) else {
        return; // refused: the listener is closed
    };
    let _ = late.write_all(b"late\n");
    let mut reply = String::new();
    let read = BufReader::new(&mut late).read_line(&mut reply);
    assert!(
        !reply.starts_with("done"),
        "a client that came after the stop was served: {read:?} {reply:?}"
    );
}
