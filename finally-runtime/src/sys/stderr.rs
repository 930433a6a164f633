//! Writing the runtime's own reports to stderr: once, without waiting long, never raising
//! SIGPIPE, errors ignored.

/// How long a report may wait for stderr to take it, in milliseconds.
const PATIENCE: u32 = 50;

/// Writes `bytes` to stderr in one `write`, if it is ready within [`PATIENCE`]; errors are
/// ignored, and a SIGPIPE the write raises is taken back.
#[cfg(unix)]
pub(crate) fn write(bytes: &[u8]) {
    let mut ready = libc::pollfd {
        fd: libc::STDERR_FILENO,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid `pollfd`.
    let polled = unsafe { libc::poll(&mut ready, 1, PATIENCE as libc::c_int) };
    if polled != 1 || ready.revents & libc::POLLOUT == 0 {
        return;
    }
    super::signal::without_sigpipe(|| {
        // SAFETY: writing a live buffer to stderr; a failure is ignored.
        unsafe { libc::write(libc::STDERR_FILENO, bytes.as_ptr().cast(), bytes.len()) };
    });
}

/// Writes `bytes` to stderr in one `write`, at once, errors ignored: for a signal handler, where
/// [`write`](fn@write)'s wait and SIGPIPE hold are not to be had. Async-signal-safe.
#[cfg(unix)]
pub(crate) fn write_now(bytes: &[u8]) {
    // SAFETY: writing a live buffer to stderr; a failure is ignored.
    unsafe { libc::write(libc::STDERR_FILENO, bytes.as_ptr().cast(), bytes.len()) };
}

/// Writes `bytes` to stderr in one `WriteFile`, errors ignored. Windows cannot ask whether a
/// pipe has room, so a write that could block (a pipe nobody reads) is left to a thread of its
/// own, given [`PATIENCE`].
#[cfg(windows)]
pub(crate) fn write(bytes: &[u8]) {
    use std::sync::mpsc;
    use std::time::Duration;

    let bytes = bytes.to_vec();
    let (done, is_done) = mpsc::channel();
    let writer = std::thread::Builder::new()
        .name("finally-report".into())
        .spawn(move || {
            write_now(&bytes);
            let _ = done.send(());
        });
    if writer.is_ok() {
        let _ = is_done.recv_timeout(Duration::from_millis(PATIENCE.into()));
    }
}

#[cfg(windows)]
fn write_now(bytes: &[u8]) {
    use windows_sys::Win32::Storage::FileSystem::WriteFile;
    use windows_sys::Win32::System::Console::{GetStdHandle, STD_ERROR_HANDLE};

    let length = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    let mut written = 0;
    // SAFETY: writing a live buffer of that length to this process's stderr, whatever it is; a
    // null or bad handle fails harmlessly.
    unsafe {
        WriteFile(
            GetStdHandle(STD_ERROR_HANDLE),
            bytes.as_ptr(),
            length,
            &mut written,
            std::ptr::null_mut(),
        )
    };
}
