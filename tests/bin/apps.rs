//! An application that handles SIGINT itself and calls a library that uses `finally`:
//! `apps HANDLER ORDER WORK`.
//!
//! - `HANDLER`: how the application handles SIGINT: `none`, `flag` (a signal-hook flag),
//!   `tokio` (`tokio::signal::ctrl_c`) or `ctrlc`.
//! - `ORDER`: whether the application registers its handler `before` or `after` the library's
//!   first guarded call, which installs `finally`.
//! - `WORK`: what is going on when SIGINT comes: `idle` (no cleanup pending) or `pending` (the
//!   library's guarded function is running).
//!
//! It prints `ready` once set up. Told of SIGINT by its handler, the application writes
//! `app handled SIGINT` to the marker, lets the library's function return, and exits with 7.
//!
//! Other scenarios: `ctrlc-exits` (a ctrlc handler that calls `exit(7)` at once, the library's
//! function still running), `end-by` (the application ends by the signal through
//! `finally::end_by` after its own handling), `leave-signals` (`finally::install` with
//! `leave_signals_to_me`, and no handler of the application's), `too-late` (`finally::install`
//! after a library's guarded call).

use std::future::Future;
use std::sync::mpsc;
use std::task::Poll;
use std::{env, process, thread};

use finally::{with_cleanup, Options, Signal};

#[path = "../common/app_handler.rs"]
mod app_handler;
#[path = "../common/child.rs"]
mod child;

use child::{mark, ready, record};

/// The library: functions that use `#[with_cleanup]`, knowing nothing of the application.
mod library {
    use super::*;

    fn cleanup(exit: &finally::Exit) {
        record("library", exit);
    }

    /// Returns at once: nothing stays pending, but `finally` is installed.
    #[with_cleanup(|| {})]
    pub fn touch() {}

    /// Works until `stop` says so.
    #[with_cleanup(cleanup)]
    pub fn work(stop: &mpsc::Receiver<()>) {
        ready();
        let _ = stop.recv();
    }
}

/// Sends `()` on `notice` when the application's handler sees SIGINT; returns once the handler
/// is registered.
fn register(handler: &str, notice: &mpsc::Sender<()>) {
    let notice = notice.clone();
    match handler {
        "none" => {}
        "flag" => app_handler::flag(notice),
        "tokio" => {
            let (registered, is_registered) = mpsc::channel();
            thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio");
                runtime.block_on(async move {
                    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
                    // Its first poll registers tokio's handler.
                    std::future::poll_fn(|cx| {
                        assert!(ctrl_c.as_mut().poll(cx).is_pending());
                        Poll::Ready(())
                    })
                    .await;
                    registered.send(()).unwrap();
                    ctrl_c.await.expect("ctrl_c");
                    let _ = notice.send(());
                });
            });
            is_registered.recv().expect("tokio's handler registered");
        }
        "ctrlc" => app_handler::ctrlc(notice),
        other => panic!("unknown handler {other}"),
    }
}

fn matrix(handler: &str, order: &str, work: &str) {
    let (notice, noticed) = mpsc::channel();
    match order {
        "before" => {
            register(handler, &notice);
            library::touch();
        }
        "after" => {
            library::touch();
            register(handler, &notice);
        }
        other => panic!("unknown order {other}"),
    }
    match work {
        "idle" => {
            ready();
            let _ = noticed.recv();
        }
        "pending" => library::work(&noticed),
        other => panic!("unknown work {other}"),
    }
    mark("app handled SIGINT");
    process::exit(7);
}

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args[..] {
        [handler, order, work] => matrix(handler, order, work),
        ["ctrlc-exits"] => {
            ctrlc::set_handler(|| {
                mark("app handled SIGINT");
                process::exit(7);
            })
            .expect("ctrlc");
            let (_never, stop) = mpsc::channel();
            library::work(&stop);
        }
        ["end-by"] => {
            let (notice, noticed) = mpsc::channel();
            register("tokio", &notice);
            thread::spawn(move || {
                let _ = noticed.recv();
                mark("app handled SIGINT");
                finally::end_by(Signal::SIGINT);
            });
            let (_never, stop) = mpsc::channel();
            library::work(&stop);
        }
        ["leave-signals"] => {
            finally::install(Options::new().leave_signals_to_me()).expect("installed");
            let (_never, stop) = mpsc::channel();
            library::work(&stop);
        }
        ["too-late"] => {
            library::touch();
            match finally::install(Options::new().leave_signals_to_me()) {
                Ok(()) => mark("installed"),
                Err(error) => mark(&format!(
                    "refused: {error}: {}",
                    std::error::Error::source(&error).map_or(String::new(), ToString::to_string)
                )),
            }
            // The same options as the library installed: accepted.
            finally::install(Options::new()).expect("the defaults again");
            let (_never, stop) = mpsc::channel();
            library::work(&stop);
        }
        _ => panic!("usage: apps HANDLER ORDER WORK, or a scenario's name"),
    }
}
