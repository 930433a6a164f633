//! Windows' console: the control handlers.

use std::io;

use windows_sys::core::BOOL;
use windows_sys::Win32::System::Console::SetConsoleCtrlHandler;

/// Adds `handler` to the process's console control handlers: it is called first, before those
/// added earlier.
pub(crate) fn add_handler(handler: unsafe extern "system" fn(u32) -> BOOL) -> io::Result<()> {
    // SAFETY: a handler function that lives as long as the process.
    match unsafe { SetConsoleCtrlHandler(Some(handler), 1) } {
        0 => Err(io::Error::last_os_error()),
        _ => Ok(()),
    }
}
