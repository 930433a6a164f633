//! What `/proc` tells of this process and others.

use libc::pid_t;

/// How many threads the process has, or `None` where `/proc` cannot tell.
pub(crate) fn threads() -> Option<usize> {
    std::fs::read_dir("/proc/self/task")
        .ok()
        .map(Iterator::count)
}

/// This process's open descriptors, where `/proc` can tell.
pub(crate) fn open_descriptors() -> Option<Vec<libc::c_uint>> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    Some(
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
    )
}

/// What `/proc/PID/stat` tells of a process.
pub(crate) struct Stat {
    /// Field 3: `R`, `S`, ..., `Z` for a zombie.
    pub(crate) state: u8,
    /// Field 22: when it started, in clock ticks since boot; with the pid, it names the process.
    pub(crate) start: u64,
    /// Field 52 (Linux 3.5 and later): a zombie's wait status, as `waitpid` would give it.
    pub(crate) exit_code: Option<libc::c_int>,
}

/// What `/proc/PID/stat` tells of process `pid`, if it can be read.
pub(crate) fn stat(pid: pid_t) -> Option<Stat> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    // The name, field 2, is in parentheses and may hold anything, parentheses and spaces too.
    let after_name = stat.get(stat.iter().rposition(|&byte| byte == b')')? + 2..)?;
    let fields: Vec<&[u8]> = after_name.split(|&byte| byte == b' ').collect();
    let field = |number: usize| fields.get(number - 3).copied();
    let number = |number| {
        std::str::from_utf8(field(number)?)
            .ok()?
            .trim_end()
            .parse()
            .ok()
    };
    Some(Stat {
        state: *field(3)?.first()?,
        start: number(22)?,
        exit_code: number(52).and_then(|code: u64| libc::c_int::try_from(code).ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_reads_the_state_the_start_time_and_the_exit_code() {
        // SAFETY: `getpid` cannot fail.
        let ours = stat(unsafe { libc::getpid() }).expect("our own stat");
        // Running or sleeping (the test runs on a thread of its own), not a zombie.
        assert!(
            matches!(ours.state, b'R' | b'S'),
            "state {}",
            ours.state as char
        );
        assert!(ours.start > 0);
        assert_eq!(ours.exit_code, Some(0));
        // Beyond `pid_max` (at most 2^22): no such process.
        assert!(stat(1 << 23).is_none());
    }

    #[test]
    fn stat_reads_a_zombie_s_wait_status() {
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .expect("sleep");
        child.kill().expect("kill");
        let pid = child.id() as pid_t;
        // SAFETY: a zeroed `siginfo_t` is a valid out-parameter.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `waitid` of our own child; `WNOWAIT` leaves it a zombie, reaped below.
        let waited = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        assert_eq!(waited, 0);
        let zombie = stat(pid).expect("the zombie's stat");
        assert_eq!(zombie.state, b'Z');
        let status = zombie.exit_code.expect("Linux 3.5 or later");
        assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL);
        child.wait().expect("reaped");
    }
}
