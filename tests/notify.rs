//! The example `examples/notify.rs`, run as its users run it: a local HTTP server receives
//! exactly one notification, with the right reason, however the program ends — `kill -9`
//! included, when the guardian sends it.

mod common;

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const SIGKILL: i32 = libc::SIGKILL;
/// The longest the test server runs, should a test forget to stop it.
const SERVER_LIFETIME: Duration = Duration::from_secs(60);
/// How long the server waits for a client to send its request.
const CLIENT_PATIENCE: Duration = Duration::from_secs(10);
/// How often the server looks for a new connection.
const POLL: Duration = Duration::from_millis(5);

#[test]
fn returning_sends_one_notification() {
    let server = Server::start();
    let program =
        Scenario::start_example("notify", &[&server.url, "--return-after", "200"], |_| {});
    let pid = program.pid();
    program.expect_line("ready");
    let ended = program.wait();
    ended.assert_exit_code(0);

    let note = server.only_notification(&ended);
    assert_describes(&note, pid, "returned", "returned", None);
    assert!(note["seconds"].as_f64().unwrap() >= 0.2, "{note}");
}

#[test]
fn panicking_sends_one_notification() {
    let server = Server::start();
    let program = Scenario::start_example("notify", &[&server.url, "--panic-after", "100"], |_| {});
    let pid = program.pid();
    program.expect_line("ready");
    let ended = program.wait();
    ended.assert_exit_code(101);

    let note = server.only_notification(&ended);
    assert_describes(
        &note,
        pid,
        "panicked",
        "panicked: gave up after 100 ms, as asked",
        None,
    );
}

#[test]
fn sigterm_sends_one_notification_to_the_url_in_the_environment() {
    let server = Server::start();
    let program = Scenario::start_example("notify", &[], |command| {
        command.env("FINALLY_NOTIFY_URL", &server.url);
    });
    let pid = program.pid();
    let ended = program.signal_when_ready(SIGTERM);
    ended.assert_killed_by(SIGTERM);

    let note = server.only_notification(&ended);
    assert_describes(
        &note,
        pid,
        "signal",
        "stopped by SIGTERM (15)",
        Some("SIGTERM"),
    );
}

#[test]
fn kill_9_is_notified_by_the_guardian_with_the_programs_pid() {
    let server = Server::start();
    let program = Scenario::start_example("notify", &[&server.url], |_| {});
    let pid = program.pid();
    let ended = program.signal_when_ready(SIGKILL);
    ended.assert_killed_by(SIGKILL);

    // The guardian, a process of its own, sent it; the pid is still the program's.
    let note = server.only_notification(&ended);
    assert_describes(
        &note,
        pid,
        "died",
        "died by SIGKILL (9) without its own cleanup",
        Some("SIGKILL"),
    );
}

#[test]
fn a_receiver_that_is_not_there_is_reported_on_stderr() {
    // A port that was free a moment ago: connecting to it is refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://127.0.0.1:{port}/");
    let program = Scenario::start_example("notify", &[&url, "--return-after", "0"], |_| {});
    program.expect_line("ready");
    let ended = program.wait();
    // The failed notification changes nothing in how the program ended.
    ended.assert_exit_code(0);
    assert!(
        ended
            .stderr
            .contains(&format!("notify: could not notify {url}: ")),
        "stderr: {}",
        ended.stderr
    );
}

/// Asserts what the notification says, and that it says it of the program `pid` on this host.
fn assert_describes(note: &Value, pid: i32, reason: &str, exit: &str, signal: Option<&str>) {
    assert_eq!(note["reason"], reason, "{note}");
    assert_eq!(note["exit"], exit, "{note}");
    assert_eq!(
        note["signal"],
        signal.map_or(Value::Null, Value::from),
        "{note}"
    );
    assert_eq!(note["pid"], pid, "{note}");
    assert_eq!(note["host"], host_name(), "{note}");
    assert_eq!(note["program"], "notify", "{note}");
    let seconds = note["seconds"].as_f64().expect("`seconds`, a number");
    assert!((0.0..60.0).contains(&seconds), "{note}");
}

/// The host's name, as the example finds it.
fn host_name() -> String {
    let mut name = [0u8; 256];
    // SAFETY: `gethostname` writes at most `name.len()` bytes into the buffer we own.
    let result = unsafe { libc::gethostname(name.as_mut_ptr().cast(), name.len()) };
    assert_eq!(result, 0, "gethostname: {}", io::Error::last_os_error());
    let end = name
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(name.len());
    String::from_utf8_lossy(&name[..end]).into_owned()
}

/// A request as the test server received it.
struct Request {
    head: String,
    body: Vec<u8>,
}

/// A one-thread HTTP server on 127.0.0.1 that answers every request `200 OK` and hands it to the
/// test.
struct Server {
    url: String,
    requests: Receiver<Result<Request, String>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the test server");
        let url = format!("http://{}/notify", listener.local_addr().unwrap());
        // Polled, so that the thread ends when told to, or at its deadline, with no client.
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (send, requests) = mpsc::channel();
        let thread = thread::spawn({
            let stop = Arc::clone(&stop);
            move || serve(&listener, &stop, &send)
        });
        Server {
            url,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the server and returns the one notification it received, parsed; `ended` is the
    /// program's end, for the messages.
    ///
    /// Called once the program has ended, and its guardian too: `Scenario::wait` returns only
    /// when every process holding the program's stderr has closed it. So no request can come
    /// any more: each one was sent, over a connection made, before this. The server, told to
    /// stop, still takes every connection waiting to be accepted and ends only when none is
    /// left; what it has handed over by then is everything the program and its guardian sent.
    /// So "exactly one" is exact, with no time-out to guess.
    fn only_notification(mut self, ended: &Ended) -> Value {
        self.stop.store(true, SeqCst);
        let thread = self.thread.take().unwrap();
        thread.join().expect("the test server panicked");
        let requests: Vec<_> = self.requests.try_iter().collect();
        assert_eq!(
            requests.len(),
            1,
            "expected one notification, got {}; stderr: {}",
            requests.len(),
            ended.stderr
        );
        let request = requests
            .into_iter()
            .next()
            .unwrap()
            .expect("a valid request");
        assert!(
            request.head.starts_with("POST /notify HTTP/1.1\r\n"),
            "{}",
            request.head
        );
        assert!(
            request
                .head
                .to_ascii_lowercase()
                .contains("\r\ncontent-type: application/json\r\n"),
            "{}",
            request.head
        );
        serde_json::from_slice(&request.body).unwrap_or_else(|error| {
            panic!(
                "not JSON ({error}): {}",
                String::from_utf8_lossy(&request.body)
            )
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failed test does not leave the thread behind: it ends at its next poll.
        self.stop.store(true, SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts connections until told to stop (and none is waiting) or until its deadline.
fn serve(listener: &TcpListener, stop: &AtomicBool, requests: &Sender<Result<Request, String>>) {
    let deadline = Instant::now() + SERVER_LIFETIME;
    while Instant::now() < deadline {
        // Read before `accept`: a stop seen then means this `accept` comes after every client
        // of the test has connected, so finding no connection means that there will be none.
        let stopping = stop.load(SeqCst);
        match listener.accept() {
            Ok((stream, _)) => {
                let request = receive(&stream).map_err(|error| error.to_string());
                if requests.send(request).is_err() {
                    return;
                }
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                if stopping {
                    return;
                }
                thread::sleep(POLL);
            }
            Err(error) => {
                let _ = requests.send(Err(format!("accept: {error}")));
                return;
            }
        }
    }
}

/// Reads one request, its head and its `Content-Length` body, and answers `200 OK`.
fn receive(mut stream: &TcpStream) -> io::Result<Request> {
    // An accepted connection may inherit the listener's non-blocking mode (it does on BSDs).
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CLIENT_PATIENCE))?;
    stream.set_write_timeout(Some(CLIENT_PATIENCE))?;
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let start = head.len();
        if reader.read_line(&mut head)? == 0 {
            return Err(io::Error::new(
                ErrorKind::UnexpectedEof,
                format!("the client hung up in the head: {head:?}"),
            ));
        }
        if head[start..] == *"\r\n" {
            break;
        }
    }
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>())
        })
        .ok_or_else(|| io::Error::other(format!("no Content-Length: {head:?}")))?
        .map_err(io::Error::other)?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    Ok(Request { head, body })
}
