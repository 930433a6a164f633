//! Waking the signal thread from a signal handler: a futex on Linux, a self-pipe elsewhere (as
//! signal-hook and ctrlc do), and on Linux built with `--cfg finally_portable`.

use std::io;
use std::sync::atomic::AtomicU32;

pub(crate) use imp::{prepare, reset_in_child, wait, wake};

#[cfg(all(target_os = "linux", not(finally_portable)))]
mod imp {
    use super::*;
    use crate::sys::futex;

    /// Makes ready what [`wake`] needs: nothing, for a futex.
    pub(crate) fn prepare() -> io::Result<()> {
        Ok(())
    }

    /// Sleeps while `word` holds `value`, until a [`wake`] (or a spurious wake-up: callers look
    /// at `word` again). Returns at once if `word` no longer holds `value`.
    pub(crate) fn wait(word: &AtomicU32, value: u32) {
        futex::wait(word, value);
    }

    /// Wakes the thread sleeping on `word`. Async-signal-safe: one system call.
    pub(crate) fn wake(word: &AtomicU32) {
        futex::wake(word, 1);
    }

    /// In a forked child: nothing to do. Async-signal-safe.
    pub(crate) fn reset_in_child() {}
}

#[cfg(not(all(target_os = "linux", not(finally_portable))))]
mod imp {
    use std::sync::atomic::AtomicI32;
    use std::sync::atomic::Ordering::SeqCst;

    use libc::c_int;

    use super::*;
    use crate::sys::check;

    /// The pipe's ends, or -1: the sleeper reads from the first, [`wake`] writes to the second,
    /// which never blocks.
    static ENDS: [AtomicI32; 2] = [AtomicI32::new(-1), AtomicI32::new(-1)];

    /// Makes the pipe, once. Async-signal-safe (`pipe2`, or `pipe` and `fcntl`).
    pub(crate) fn prepare() -> io::Result<()> {
        if ENDS[0].load(SeqCst) >= 0 {
            return Ok(());
        }
        let ends = close_on_exec_pipe()?;
        // SAFETY: `fcntl` on a descriptor of ours.
        unsafe {
            let flags = libc::fcntl(ends[1], libc::F_GETFL);
            libc::fcntl(ends[1], libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        ENDS[1].store(ends[1], SeqCst);
        ENDS[0].store(ends[0], SeqCst);
        Ok(())
    }

    /// A pipe whose ends close on `exec`, from the start: no program that another thread starts
    /// meanwhile can inherit them.
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "dragonfly",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "solaris",
        target_os = "illumos"
    ))]
    fn close_on_exec_pipe() -> io::Result<[c_int; 2]> {
        let mut ends = [-1 as c_int; 2];
        // SAFETY: `pipe2` fills the two descriptors.
        check(unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) })?;
        Ok(ends)
    }

    /// A pipe whose ends close on `exec`, where there is no `pipe2` (macOS): a program that
    /// another thread starts between the two calls may inherit them.
    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "dragonfly",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "solaris",
        target_os = "illumos"
    )))]
    fn close_on_exec_pipe() -> io::Result<[c_int; 2]> {
        let mut ends = [-1 as c_int; 2];
        // SAFETY: `pipe` fills the two descriptors; `fcntl` on descriptors of ours.
        unsafe {
            check(libc::pipe(ends.as_mut_ptr()))?;
            for end in ends {
                libc::fcntl(end, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
        Ok(ends)
    }

    /// Sleeps while `word` holds `value`, until a [`wake`] (or a spurious wake-up: callers look
    /// at `word` again). Returns at once if `word` no longer holds `value`.
    pub(crate) fn wait(word: &AtomicU32, value: u32) {
        if word.load(SeqCst) != value {
            return;
        }
        let mut bytes = [0u8; 16];
        // SAFETY: reading into a live buffer of that length; a bad descriptor fails at once.
        unsafe { libc::read(ENDS[0].load(SeqCst), bytes.as_mut_ptr().cast(), bytes.len()) };
    }

    /// Wakes the thread sleeping in [`wait`]: `word` was changed before. Async-signal-safe: one
    /// `write`, which never blocks (a full pipe already holds a wake-up).
    pub(crate) fn wake(_: &AtomicU32) {
        // SAFETY: writing one byte from a live buffer.
        unsafe { libc::write(ENDS[1].load(SeqCst), [1u8].as_ptr().cast(), 1) };
    }

    /// In a forked child: a pipe of its own, so that its signals do not wake the parent's
    /// thread, nor the parent's its. Async-signal-safe.
    pub(crate) fn reset_in_child() {
        for end in &ENDS {
            let fd = end.swap(-1, SeqCst);
            if fd >= 0 {
                // SAFETY: the child's copy of the parent's pipe, which nothing else uses here.
                unsafe { libc::close(fd) };
            }
        }
        // A child that cannot make one gets the report when it starts its signal thread.
        let _ = prepare();
    }
}

// It tells that the sleeper sleeps from `/proc`.
#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::sync::atomic::Ordering::SeqCst;
    use std::sync::mpsc;
    use std::thread;
    use std::time::Duration;

    use super::*;

    /// Whichever the build has, futex or self-pipe: a sleeper wakes once the word has changed
    /// and [`wake`] was called, and does not sleep on a word that has changed already.
    #[test]
    fn a_wake_after_the_word_changed_ends_the_wait() {
        static WORD: AtomicU32 = AtomicU32::new(0);
        prepare().expect("ready to wake");
        let (tid, sleeper_tid) = mpsc::channel();
        let (woken, is_woken) = mpsc::channel();
        let sleeper = thread::spawn(move || {
            // SAFETY: `gettid` has no preconditions.
            tid.send(unsafe { libc::gettid() }).unwrap();
            while WORD.load(SeqCst) == 0 {
                wait(&WORD, 0);
            }
            woken.send(()).unwrap();
        });
        // Asleep (state `S`, in the futex or the pipe's `read`) before the word changes, so that
        // it is the wake that ends its sleep.
        let stat = format!("/proc/self/task/{}/stat", sleeper_tid.recv().unwrap());
        let asleep = || {
            let stat = std::fs::read_to_string(&stat).unwrap_or_default();
            stat.rsplit_once(") ")
                .is_some_and(|(_, fields)| fields.starts_with('S'))
        };
        for _ in 0..10_000 {
            if asleep() {
                break;
            }
            thread::sleep(Duration::from_millis(1));
        }
        assert!(asleep(), "the sleeper never slept");
        WORD.store(7, SeqCst);
        wake(&WORD);
        is_woken
            .recv_timeout(Duration::from_secs(10))
            .expect("the sleeper woke");
        sleeper.join().unwrap();
        // Changed already: no sleep at all.
        wait(&WORD, 0);
    }
}
