//! A TCP server that shuts down gracefully on Ctrl-C or `kill`.
//!
//! On SIGINT, SIGTERM, SIGHUP or SIGQUIT it stops accepting connections at once, lets the
//! requests already started finish, and then runs its cleanup. `#[with_cleanup]` on `main` does
//! the signal handling: the signal first *requests* a stop, which the server awaits with
//! [`finally::stop_signal`]; the grace period bounds how long the server may take to wind down
//! before its cleanup runs anyway; and the process then ends by the signal, as a shell or a
//! supervisor expects of a program that was stopped.
//!
//! The protocol is one line per request: the client sends a line, the server works on it for a
//! second and replies `done <line>`.
//!
//! Run it with `cargo run --example server` (Unix only; an optional argument picks the port,
//! as in `cargo run --example server -- 7878`). It prints `ready 127.0.0.1:<port>`. In another
//! terminal, talk to it:
//!
//! ```text
//! $ nc 127.0.0.1 <port>
//! hello
//! done hello
//! ```
//!
//! Then type a line and press Ctrl-C in the server's terminal before the reply comes: the server
//! stops accepting, `nc` still gets its `done` line, the cleanup reports `server ended: stopped
//! by SIGINT (2)`, and the shell sees the server killed by SIGINT. With
//! `FINALLY_SERVER_WORK_MS=10000` a request outlasts the 5 s grace period: when it runs out,
//! the cleanup runs without waiting any longer, and the process ends with the request unanswered.

use std::env;
use std::io;
use std::time::Duration;

use finally::Exit;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// How long a request takes, in milliseconds, if not one second.
const WORK_MS: &str = "FINALLY_SERVER_WORK_MS";

// `#[tokio::main]` comes first, so `#[with_cleanup]` guards the whole program: the runtime too,
// not only the future that `#[tokio::main]` runs on it. After a graceful stop the cleanup then
// runs once the runtime has shut down, when no connection task is left to race it. (The other
// order compiles as well, but its cleanup runs inside `block_on`, while the runtime and any
// task still left are alive.)
#[tokio::main]
#[finally::with_cleanup(cleanup, grace = "5s")]
async fn main() -> io::Result<()> {
    let port = match env::args().nth(1) {
        Some(port) => port.parse().map_err(io::Error::other)?,
        None => 0,
    };
    let work = match env::var(WORK_MS) {
        Ok(millis) => Duration::from_millis(millis.parse().map_err(io::Error::other)?),
        Err(_) => Duration::from_secs(1),
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("ready {}", listener.local_addr()?);

    let mut connections = JoinSet::new();
    let mut stop = finally::stop_signal();
    let signal = loop {
        tokio::select! {
            // Checked first: once the stop is requested, not one more connection is accepted.
            biased;
            signal = &mut stop => break signal,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve(stream, work));
                }
                // A failed accept (a client that gave up, too many open files) is not a
                // reason to stop serving the others.
                Err(error) => eprintln!("accept: {error}"),
            },
            // Reaps the finished connections, so the set does not grow for ever.
            Some(finished) = connections.join_next() => report(finished),
        }
    };
    // Closing the listener makes new clients fail at once, instead of waiting in the backlog.
    drop(listener);
    println!(
        "stopping on {}: {} connection(s) still open",
        signal.name(),
        connections.len()
    );
    // No time-out of our own: should the connections outlast the grace period, `finally` runs
    // the cleanup anyway and ends the process.
    while let Some(finished) = connections.join_next().await {
        report(finished);
    }
    Ok(())
}

/// Serves one client, a request per line, until it hangs up or the server stops.
async fn serve(mut stream: TcpStream, work: Duration) -> io::Result<()> {
    let (reader, mut writer) = stream.split();
    let mut requests = BufReader::new(reader).lines();
    let mut stop = finally::stop_signal();
    loop {
        // Waiting for the next request is where a connection may be closed on a stop: a request
        // already started is finished, but an idle client must not hold the shutdown up.
        let request = tokio::select! {
            biased;
            _ = &mut stop => return Ok(()),
            request = requests.next_line() => match request? {
                Some(request) => request,
                None => return Ok(()),
            },
        };
        println!("request {request}");
        // The work: a database query, a computation, a call to another service...
        tokio::time::sleep(work).await;
        writer
            .write_all(format!("done {request}\n").as_bytes())
            .await?;
    }
}

fn report(finished: Result<io::Result<()>, tokio::task::JoinError>) {
    match finished {
        Ok(Ok(())) => {}
        Ok(Err(error)) => eprintln!("connection: {error}"),
        Err(error) => eprintln!("connection task: {error}"),
    }
}

/// Runs once however the server ends: `main` returning (after a stop, or with an error),
/// panicking, or the grace period running out.
fn cleanup(exit: &Exit) {
    // A real server would remove its pid file or Unix socket here, or deregister from a load
    // balancer; this one says how it ended.
    eprintln!("server ended: {exit}");
}
