//! The application's own handling of SIGINT, for the programs that test `finally` beside it:
//! each sends `()` on `notice` once its handler has seen SIGINT, and returns once the handler is
//! registered.

#![allow(dead_code)] // each program uses its own part of this module

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A signal-hook flag, which the application's main loop looks at.
pub fn flag(notice: mpsc::Sender<()>) {
    let flag = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(libc::SIGINT, flag.clone()).expect("signal-hook flag");
    thread::spawn(move || {
        while !flag.load(SeqCst) {
            thread::sleep(Duration::from_millis(1));
        }
        let _ = notice.send(());
    });
}

/// A ctrlc handler (with its `termination` feature: SIGTERM and SIGHUP too).
pub fn ctrlc(notice: mpsc::Sender<()>) {
    let notice = Mutex::new(notice);
    ctrlc::set_handler(move || {
        let _ = notice.lock().unwrap().send(());
    })
    .expect("ctrlc");
}
