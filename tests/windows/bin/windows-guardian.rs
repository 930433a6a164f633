//! The guardian's child process of the Windows tests: its `main` starts a guardian, makes a guard
//! whose state reaches it, says `ready`, and waits to be killed. `windows-guardian channel`
//! first says `channel NAME`: the name of its channel's pipe, which Windows lists to anyone.

#[cfg(windows)]
#[path = "../../common/child.rs"]
mod child;

#[cfg(windows)]
mod guarded {
    use std::{env, process};

    use finally::{with_cleanup, Exit};
    use windows_sys::Win32::Storage::FileSystem::{
        FileNameInfo, GetFileInformationByHandleEx, FILE_NAME_INFO,
    };

    use super::child::{main_cleanup, mark, ready, record, wait_forever};

    #[finally::guardian_cleanup]
    fn remove_state(state: &str, exit: &Exit) {
        record(&format!("guard {state}"), exit);
    }

    #[with_cleanup(main_cleanup, guardian)]
    pub fn main() {
        let guard = finally::guard_with(format!("run-{}", process::id()), remove_state);
        if let Err(error) = guard.guardian() {
            mark(&format!("no guardian: {error}"));
        }
        if env::args().nth(1).as_deref() == Some("channel") {
            println!("channel {}", channel_name());
        }
        ready();
        wait_forever();
    }

    /// The name of the pipe of the program's end of the channel, as Windows tells it:
    /// `\finally-guardian-…`.
    fn channel_name() -> String {
        let channel = finally::__private::guardian_channel().expect("a guardian");
        // A `FILE_NAME_INFO`: the name's length in bytes, then the name.
        let mut info = [0u32; 256];
        // SAFETY: a buffer of the size given, for a handle of this process.
        let asked = unsafe {
            GetFileInformationByHandleEx(
                channel as _,
                FileNameInfo,
                info.as_mut_ptr().cast(),
                std::mem::size_of_val(&info) as u32,
            )
        };
        assert_ne!(asked, 0, "{}", std::io::Error::last_os_error());
        // SAFETY: the system filled in a `FILE_NAME_INFO` whose name lies in the buffer.
        let name = unsafe {
            let info = info.as_ptr().cast::<FILE_NAME_INFO>();
            let length = (*info).FileNameLength as usize / 2;
            std::slice::from_raw_parts(std::ptr::addr_of!((*info).FileName).cast::<u16>(), length)
        };
        String::from_utf16_lossy(name)
    }
}

#[cfg(windows)]
fn main() {
    guarded::main();
}

/// The scenario is a Windows one.
#[cfg(not(windows))]
fn main() {}
