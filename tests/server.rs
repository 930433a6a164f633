//! The example `examples/server.rs`, run as its users run it: a client's request in flight when
//! SIGTERM arrives is still answered, new clients are turned away, the cleanup runs once, and
//! the server ends by SIGTERM.

mod common;

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use common::{signal_reason, SIGHUP, SIGINT, SIGQUIT, SIGTERM};

/// How long any one step may take before the test gives up on the server.
const PATIENCE: Duration = Duration::from_secs(20);

#[test]
fn a_request_in_flight_is_answered_then_the_server_cleans_up_once() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let marker = dir.path().join("marker");
    let server = Server::start(&marker);
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
    assert_eq!(
        ended.status.signal(),
        Some(SIGTERM),
        "the server should end by SIGTERM, not {:?}; stderr: {}",
        ended.status,
        ended.stderr
    );
    let marker = std::fs::read_to_string(&marker).unwrap_or_default();
    assert_eq!(
        marker.lines().collect::<Vec<_>>(),
        [signal_reason(SIGTERM)],
        "the cleanup should run once, for SIGTERM; stderr: {}",
        ended.stderr
    );
    assert!(
        ended
            .stderr
            .contains("server ended: stopped by SIGTERM (15)"),
        "stderr: {}",
        ended.stderr
    );
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

/// The example's binary, built by cargo for this test.
///
/// Cargo tells integration tests where the package's binaries are (`CARGO_BIN_EXE_<name>`), but
/// not its examples, and it builds the examples for a plain `cargo test` only, not for
/// `cargo test --test server`. So the test asks cargo to build the example, as
/// `cargo run --example server` would, and runs the file cargo names: up to date however the
/// test was started, and it is the example itself that is tested, not a copy of its code.
/// (Cargo releases its build lock before it runs the tests, so this build does not wait for the
/// one that started the test; when the example is up to date it takes a fraction of a second.)
fn server_binary() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--quiet", "--example", "server"])
        .args(["--message-format", "json"])
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .stdin(Stdio::null());
    if !cfg!(debug_assertions) {
        command.arg("--release");
    }
    let output = command.output().expect("run cargo to build the example");
    assert!(
        output.status.success(),
        "`cargo build --example server` failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // One JSON message per line; the example's is the one artifact with a file to run.
    let messages = String::from_utf8_lossy(&output.stdout);
    let executable = messages
        .lines()
        .filter(|message| message.contains(r#""kind":["example"]"#))
        .find_map(|message| message.split(r#""executable":""#).nth(1)?.split('"').next())
        .expect("cargo names the example's executable");
    assert!(
        !executable.contains('\\'),
        "an escaped path in cargo's message: {executable}"
    );
    PathBuf::from(executable)
}

/// The server as a child process: its stdout line by line, its stderr, and it is killed if the
/// test fails before it ended.
struct Server {
    child: Child,
    lines: Receiver<String>,
    stderr: Option<thread::JoinHandle<String>>,
}

/// How the server ended.
struct Ended {
    status: ExitStatus,
    stderr: String,
}

impl Server {
    fn start(marker: &Path) -> Self {
        let mut command = Command::new(server_binary());
        command
            .env("FINALLY_SERVER_MARKER", marker)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                // The test runner may have been started with signals ignored or blocked (a
                // background job ignores SIGINT): the server starts from the defaults.
                for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] {
                    libc::signal(signal, libc::SIG_DFL);
                }
                let mut none: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut none);
                libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
                Ok(())
            });
        }
        let mut child = command.spawn().expect("start the server");
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Server {
            child,
            lines,
            stderr: Some(stderr),
        }
    }

    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|error| panic!("no line from the server: {error}"))
    }

    fn expect_line(&self, expected: &str) {
        assert_eq!(
            self.next_line(),
            expected,
            "unexpected line from the server"
        );
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: `kill` with the pid of our own child, not yet reaped.
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(sent, 0, "kill({}, {signal})", self.child.id());
    }

    /// Waits (bounded) for the server to end.
    fn wait(mut self) -> Ended {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not end within {PATIENCE:?}"
            );
            thread::sleep(Duration::from_millis(5));
        };
        let stderr = self.stderr.take().unwrap().join().unwrap_or_default();
        Ended { status, stderr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failed test must not leave the server behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
