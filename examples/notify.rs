//! Tells someone how the program ended: a JSON notification, however it ended — even `kill -9`.
//!
//! A long job should say when it is over: that it finished, that it panicked, that someone
//! stopped it, or that it died without a word. A guard made at the top of `main` with
//! `finally::guard_with` runs `notify` once however `main` ends, and the guardian process (from
//! `#[with_cleanup(|| {}, guardian)]` on `main`) runs it too when the program dies without
//! running it itself (SIGKILL, a segfault, the OOM killer). `notify` sends one HTTP POST, with a
//! short time-out, of a JSON object such as:
//!
//! ```json
//! {"exit":"stopped by SIGTERM (15)","host":"build-7","pid":4242,"program":"notify",
//!  "reason":"signal","seconds":12.345,"signal":"SIGTERM"}
//! ```
//!
//! - `reason`: `returned`, `panicked`, `signal`, `exited` (`std::process::exit`), or `died`
//!   (sent by the guardian);
//! - `exit`: the [`Exit`]'s own description; `signal`: the signal's name, or `null`;
//! - `seconds`: how long the program ran; `host`: the host's name; `pid`: the program's pid,
//!   also when the guardian (a process of its own) sends it.
//!
//! What the guardian cannot know by itself, because it is a copy of the program made when
//! `main` started, is the guard's state, which reaches it when the guard is made: the URL, the
//! start time, the pid. A failed notification (nothing listening, a time-out, an error status)
//! is reported on stderr; the cleanup never panics, so it never hides how the program ended.
//!
//! # Running it
//!
//! Unix only. Give the URL as the first argument, or in `FINALLY_NOTIFY_URL` (plain `http://`:
//! the HTTP client here, `minreq`, is built without TLS):
//!
//! ```text
//! cargo run --example notify -- http://127.0.0.1:8080/
//! FINALLY_NOTIFY_URL=http://127.0.0.1:8080/ cargo run --example notify
//! ```
//!
//! It prints `ready`, says its pid on stderr, and works until it is stopped. To watch the
//! notifications, start a receiver in another terminal first. `nc -l 8080` (`nc -l -p 8080`
//! with the traditional netcat) shows the raw request, but never answers, so the example reports
//! a time-out on stderr after 5 seconds: the failure path. This Python one-liner answers
//! `200 OK` and prints each notification:
//!
//! ```text
//! python3 -c 'import http.server as h; h.HTTPServer(("127.0.0.1", 8080), type("H", (h.BaseHTTPRequestHandler,), {"do_POST": lambda s: (print(s.rfile.read(int(s.headers["Content-Length"])).decode(), flush=True), s.send_response(200), s.end_headers())})).serve_forever()'
//! ```
//!
//! Then end the example in each way and see what arrives:
//!
//! - Ctrl-C: `"reason": "signal"`, `"signal": "SIGINT"`; `kill <pid>`: the same with SIGTERM;
//! - `kill -9 <pid>`: `"reason": "died"`, sent by the guardian, with the program's pid;
//! - `-- http://127.0.0.1:8080/ --return-after 2000`: it returns after 2 s, `"returned"`;
//! - `-- http://127.0.0.1:8080/ --panic-after 2000`: it panics after 2 s, `"panicked"`.
//!
//! Exactly one notification arrives each time. A `kill -9` while the program is sending its
//! own makes two: the guardian, seeing the cleanup unfinished, sends `died` after it. Only a
//! kill of the program *and* its guardian (`kill -9 -<process group>`, a cgroup kill) sends
//! none.

use std::ffi::OsString;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use std::{env, process, thread};

use finally::Exit;
use serde_json::json;

/// Where the notification goes, when not on the command line.
const URL_VAR: &str = "FINALLY_NOTIFY_URL";
/// How long the notification may take, in seconds (connecting, sending, reading the answer):
/// a receiver that is down must not hold up the end of the program for long.
const TIMEOUT_SECS: u64 = 5;
/// How often the work looks at the clock, for `--return-after` and `--panic-after`.
const TICK: Duration = Duration::from_millis(20);
const USAGE: &str =
    "usage: notify [URL] [--return-after MS | --panic-after MS] (or the URL in FINALLY_NOTIFY_URL)";

/// What `notify` needs: the URL, the program's pid (in the guardian, `process::id()` is the
/// guardian's), and when it started, in milliseconds since the epoch (wall-clock time: the
/// guardian is another process).
type Run = (String, u32, u64);

#[finally::with_cleanup(|| {}, guardian)]
fn main() {
    let options = match Options::parse(env::args_os().skip(1)) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("notify: {error}\n{USAGE}");
            // No guard yet: nothing is sent.
            process::exit(2);
        }
    };
    // The cleanup cannot borrow `main`'s variables, and the guardian, forked when `main`
    // started, cannot see them at all: the guard carries what `notify` needs to both.
    let run: Run = (options.url, process::id(), millis_since_epoch());
    let _notify = finally::guard_with(run, notify);

    println!("ready");
    eprintln!(
        "notify: pid {}; stop it with Ctrl-C, `kill {0}` or `kill -9 {0}`",
        process::id()
    );

    // The work, standing in for a long job, goes on until the program is stopped (or, when
    // asked, returns or panics after a while).
    let started = Instant::now();
    loop {
        thread::sleep(TICK);
        match options.end {
            Some((End::Return, after)) if started.elapsed() >= after => return,
            Some((End::Panic, after)) if started.elapsed() >= after => {
                panic!("gave up after {} ms, as asked", after.as_millis())
            }
            _ => {}
        }
    }
}

/// The guard's cleanup: sends one notification of how the program ended. Runs in the program,
/// or, after a `kill -9` or a crash, in the guardian.
#[finally::guardian_cleanup]
fn notify((url, pid, started): &Run, exit: &Exit) {
    let body = report(exit, *pid, *started).to_string();
    let sent = minreq::post(url)
        .with_header("Content-Type", "application/json")
        .with_body(body)
        .with_timeout(TIMEOUT_SECS)
        .send();
    match sent {
        Ok(response) if (200..300).contains(&response.status_code) => {}
        Ok(response) => eprintln!(
            "notify: {url} answered {} {}",
            response.status_code, response.reason_phrase
        ),
        Err(error) => eprintln!("notify: could not notify {url}: {error}"),
    }
}

/// The notification: how the program ended, after how long, where, and which process it was.
fn report(exit: &Exit, pid: u32, started: u64) -> serde_json::Value {
    let reason = match exit {
        Exit::Returned => "returned",
        Exit::Panicked { .. } => "panicked",
        Exit::Signal(_) => "signal",
        Exit::Exited { .. } => "exited",
        Exit::Cancelled => "cancelled",
        Exit::Died { .. } => "died",
        // `Exit` may grow new variants.
        _ => "other",
    };
    let seconds = millis_since_epoch().saturating_sub(started) as f64 / 1000.0;
    let program = env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .and_then(|path| Some(path.file_name()?.to_string_lossy().into_owned()));
    json!({
        "reason": reason,
        "exit": exit.to_string(),
        "signal": exit.signal().map(|signal| signal.name()),
        "seconds": seconds,
        "host": host_name(),
        "pid": pid,
        "program": program,
    })
}

/// Wall-clock time, not `Instant`: the guardian, another process, compares it with its own.
fn millis_since_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// The host's name, as `hostname` prints it.
fn host_name() -> Option<String> {
    let mut name = [0u8; 256];
    // SAFETY: `gethostname` writes at most `name.len()` bytes into the buffer we own.
    let failed = unsafe { libc::gethostname(name.as_mut_ptr().cast(), name.len()) } != 0;
    if failed {
        return None;
    }
    // A name that fills the buffer may come without its terminating zero.
    let end = name
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(name.len());
    Some(String::from_utf8_lossy(&name[..end]).into_owned())
}

/// How `main` ends on its own, when asked to.
#[derive(Clone, Copy)]
enum End {
    Return,
    Panic,
}

struct Options {
    url: String,
    end: Option<(End, Duration)>,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = OsString>) -> Result<Self, String> {
        let mut url = None;
        let mut end = None;
        while let Some(arg) = args.next() {
            let arg = arg
                .into_string()
                .map_err(|arg| format!("not UTF-8: {arg:?}"))?;
            let how = match arg.as_str() {
                "--return-after" => End::Return,
                "--panic-after" => End::Panic,
                option if option.starts_with('-') => return Err(format!("unknown option {arg}")),
                _ if url.is_none() => {
                    url = Some(arg);
                    continue;
                }
                _ => return Err(format!("one URL only: {arg}")),
            };
            let millis = args
                .next()
                .and_then(|millis| millis.to_str()?.parse().ok())
                .ok_or_else(|| format!("{arg} takes a number of milliseconds"))?;
            end = Some((how, Duration::from_millis(millis)));
        }
        let url = match url {
            Some(url) => url,
            None => env::var(URL_VAR).map_err(|_| format!("no URL, and no {URL_VAR}"))?,
        };
        if !url.starts_with("http://") {
            return Err(format!("{url}: only http:// URLs (no TLS in this example)"));
        }
        Ok(Options { url, end })
    }
}
