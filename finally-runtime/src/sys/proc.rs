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

/// The state and the start time of process `pid`: fields 3 and 22 of `/proc/PID/stat`.
pub(crate) fn stat(pid: pid_t) -> Option<(u8, u64)> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    // The name, field 2, is in parentheses and may hold anything, parentheses and spaces too.
    let after_name = stat.get(stat.iter().rposition(|&byte| byte == b')')? + 2..)?;
    let mut fields = after_name.split(|&byte| byte == b' ');
    let state = *fields.next()?.first()?;
    let start = std::str::from_utf8(fields.nth(22 - 4)?)
        .ok()?
        .parse()
        .ok()?;
    Some((state, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_reads_the_state_and_the_start_time() {
        // SAFETY: `getpid` cannot fail.
        let (state, start) = stat(unsafe { libc::getpid() }).expect("our own stat");
        // Running or sleeping (the test runs on a thread of its own), not a zombie.
        assert!(matches!(state, b'R' | b'S'), "state {}", state as char);
        assert!(start > 0);
        // Beyond `pid_max` (at most 2^22): no such process.
        assert_eq!(stat(1 << 23), None);
    }
}
