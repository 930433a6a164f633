//! Durable guards: a record on disk from the guard's start to its cleanup's end, so that a later
//! start runs what a process that died whole (with its guardian) left, once.

mod common;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A place for one test: the scratch directories and records, and a marker that every process
/// of the test writes to.
struct Place {
    dir: tempfile::TempDir,
}

impl Place {
    fn new() -> Self {
        Place {
            dir: tempfile::tempdir().expect("a temporary folder"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn marker(&self) -> PathBuf {
        self.path().join("marker")
    }

    fn records(&self) -> PathBuf {
        self.path().join("records")
    }

    /// Starts `durable ARGS`, writing to this place's marker.
    fn start(&self, args: &[&str], setup: impl FnOnce(&mut Command)) -> Scenario {
        let marker = self.marker();
        Scenario::start_bin(env!("CARGO_BIN_EXE_durable").as_ref(), args, |command| {
            command.env("FINALLY_TEST_MARKER", marker);
            setup(command);
        })
    }

    /// Starts `durable work DIR COUNT` in a process group of its own; the scratch directories
    /// it made, once it is ready.
    fn work(&self, count: usize) -> (Scenario, Vec<PathBuf>) {
        let dir = self.path().to_str().unwrap().to_owned();
        let worker = self.start(&["work", &dir, &count.to_string()], |command| {
            command.process_group(0);
        });
        let scratch = (0..count)
            .map(|_| {
                let line = worker.next_line();
                let path = line.strip_prefix("scratch ").unwrap_or_else(|| {
                    panic!("unexpected line {line:?}");
                });
                PathBuf::from(path)
            })
            .collect();
        worker.expect_line("ready");
        (worker, scratch)
    }

    /// Runs `durable recover DIR` to its end: how many cleanups it ran, and its stderr.
    fn recover(&self) -> (usize, String) {
        let dir = self.path().to_str().unwrap().to_owned();
        let recovering = self.start(&["recover", &dir], |_| {});
        let line = recovering.next_line();
        let ended = recovering.wait();
        ended.assert_exit_code(0);
        let count = line.strip_prefix("recovered ").and_then(|n| n.parse().ok());
        (
            count.unwrap_or_else(|| panic!("unexpected line {line:?}")),
            ended.stderr,
        )
    }

    /// The marker's lines, as every process of the test wrote them.
    fn marked(&self) -> Vec<String> {
        fs::read_to_string(self.marker())
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// How many times the cleanup of `scratch` started, and with which `Exit`s it ended.
    fn cleaned(&self, scratch: &Path) -> (usize, Vec<String>) {
        let name = scratch.file_name().unwrap().to_str().unwrap();
        let marked = self.marked();
        let starts = marked
            .iter()
            .filter(|line| **line == format!("start {name}"))
            .count();
        let prefix = format!("end {name} ");
        let ends = marked
            .iter()
            .filter_map(|line| line.strip_prefix(&prefix).map(str::to_owned))
            .collect();
        (starts, ends)
    }

    /// Asserts that `scratch` was cleaned up once, told `exit`, and is gone.
    fn assert_cleaned_once(&self, scratch: &Path, exit: &str) {
        assert_eq!(
            self.cleaned(scratch),
            (1, vec![exit.to_owned()]),
            "{:?}",
            self.marked()
        );
        assert!(!scratch.exists(), "{} is left", scratch.display());
    }

    /// The records files in the records' directory, and any set aside.
    fn record_files(&self, extension: &str) -> Vec<PathBuf> {
        fs::read_dir(self.records())
            .map(|entries| {
                entries
                    .flatten()
                    .map(|entry| entry.path())
                    .filter(|path| path.extension().is_some_and(|found| found == extension))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Kills the process group of `worker` (the program and its guardian) with SIGKILL, as a
/// container runtime or a reboot would, and waits until both have ended.
fn kill_group(worker: Scenario) -> Ended {
    // SAFETY: `kill` of the process group that the worker leads.
    assert_eq!(unsafe { libc::kill(-worker.pid(), libc::SIGKILL) }, 0);
    worker.wait()
}

/// A worker with `count` durable guards, killed with its guardian: its place, its scratch
/// directories and its one record file.
fn killed_with_one_record(count: usize) -> (Place, Vec<PathBuf>, PathBuf) {
    let place = Place::new();
    let (worker, scratch) = place.work(count);
    kill_group(worker);
    let [record] = &place.record_files("rec")[..] else {
        panic!("one record file");
    };
    let record = record.clone();
    (place, scratch, record)
}

fn recovered(owner: i32) -> String {
    format!("Recovered {{ owner: {owner} }}")
}

#[test]
fn killed_with_its_guardian_the_next_start_runs_the_leftover_once() {
    let place = Place::new();
    let (worker, scratch) = place.work(2);
    let owner = worker.pid();
    assert_eq!(place.record_files("rec").len(), 1);
    kill_group(worker).assert_killed_by(libc::SIGKILL);
    assert!(scratch.iter().all(|path| path.exists()), "nothing ran it");
    let (count, stderr) = place.recover();
    assert_eq!(count, 2, "{stderr}");
    for path in &scratch {
        place.assert_cleaned_once(path, &recovered(owner));
    }
    assert_eq!(place.record_files("rec"), Vec::<PathBuf>::new());
    assert_eq!(place.recover().0, 0, "a second start finds nothing");
}

#[test]
fn killed_alone_its_guardian_runs_the_record_and_removes_it() {
    let place = Place::new();
    let (worker, scratch) = place.work(1);
    worker.signal(libc::SIGKILL);
    worker.wait().assert_killed_by(libc::SIGKILL);
    place.assert_cleaned_once(&scratch[0], KILLED);
    assert_eq!(place.record_files("rec"), Vec::<PathBuf>::new());
    assert_eq!(place.recover().0, 0);
    assert_eq!(place.cleaned(&scratch[0]).0, 1, "{:?}", place.marked());
}

#[test]
fn every_ending_in_the_program_removes_the_record() {
    let endings = [
        ("return", "Returned".to_owned(), Some(0)),
        (
            "panic",
            r#"Panicked { message: Some("boom") }"#.to_owned(),
            Some(101),
        ),
        ("exit", exited(3), Some(3)),
        ("signal", signal_reason(SIGTERM), None),
    ];
    for (how, exit, code) in endings {
        let place = Place::new();
        let dir = place.path().to_str().unwrap().to_owned();
        let program = place.start(&["end", how, &dir], |_| {});
        let line = program.next_line();
        assert!(line.starts_with("scratch "), "{how}: {line}");
        let ended = match code {
            Some(_) => program.wait(),
            None => program.signal_when_ready(SIGTERM),
        };
        match code {
            Some(code) => ended.assert_exit_code(code),
            None => ended.assert_killed_by(SIGTERM),
        }
        place.assert_cleaned_once(&place.path().join("scratch-0"), &exit);
        assert_eq!(place.record_files("rec"), Vec::<PathBuf>::new(), "{how}");
        assert_eq!(place.recover().0, 0, "{how}");
    }
}

#[test]
fn a_living_owner_s_records_are_never_touched() {
    let place = Place::new();
    let (worker, scratch) = place.work(3);
    for _ in 0..3 {
        assert_eq!(place.recover().0, 0);
    }
    assert!(scratch.iter().all(|path| path.exists()));
    assert_eq!(place.record_files("rec").len(), 1);
    worker.signal(SIGTERM);
    worker.wait().assert_killed_by(SIGTERM);
    for path in &scratch {
        place.assert_cleaned_once(path, "Signal(SIGTERM=15)");
    }
}

#[test]
fn two_starts_recovering_at_once_run_each_leftover_once() {
    let mut random = Random::new();
    for _ in 0..5 {
        let place = Place::new();
        // Both alive at once, so that neither start recovers the other's.
        let workers = [place.work(3), place.work(3)];
        let owners: Vec<i32> = workers.iter().map(|(worker, _)| worker.pid()).collect();
        let mut scratch = Vec::new();
        for (worker, made) in workers {
            kill_group(worker);
            scratch.extend(made);
        }
        let dir = place.path().to_str().unwrap().to_owned();
        let first = place.start(&["recover", &dir], |_| {});
        // A random head start, for the two to meet at different points.
        std::thread::sleep(std::time::Duration::from_micros(random.below(20_000)));
        let second = place.start(&["recover", &dir], |_| {});
        let counts: usize = [first, second]
            .into_iter()
            .map(|recovering| {
                let line = recovering.next_line();
                recovering.wait().assert_exit_code(0);
                line.strip_prefix("recovered ")
                    .unwrap()
                    .parse::<usize>()
                    .unwrap()
            })
            .sum();
        assert_eq!(counts, 6, "{:?}", place.marked());
        for path in &scratch {
            let (starts, ends) = place.cleaned(path);
            assert_eq!(starts, 1, "{:?}", place.marked());
            assert!(
                owners.iter().any(|owner| ends == [recovered(*owner)]),
                "{ends:?}"
            );
        }
        assert_eq!(place.record_files("rec"), Vec::<PathBuf>::new());
    }
}

#[test]
fn a_damaged_record_is_reported_and_set_aside_never_run() {
    let (place, scratch, record) = killed_with_one_record(2);
    let mut bytes = fs::read(&record).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    fs::write(&record, bytes).unwrap();
    let (count, stderr) = place.recover();
    assert_eq!(count, 0);
    assert!(stderr.contains("are damaged"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(place.record_files("corrupt").len(), 1);
    assert!(scratch.iter().all(|path| path.exists()), "none ran");
    let (count, stderr) = place.recover();
    assert_eq!((count, stderr.as_str()), (0, ""), "said once");
}

#[test]
fn a_torn_last_entry_is_one_that_was_never_acknowledged() {
    let (place, scratch, record) = killed_with_one_record(2);
    // The second guard's entry, cut short, as a process killed while writing it leaves it.
    let bytes = fs::read(&record).unwrap();
    fs::write(&record, &bytes[..bytes.len() - 3]).unwrap();
    let (count, stderr) = place.recover();
    assert_eq!((count, stderr.as_str()), (1, ""));
    let owner = record.file_name().unwrap().to_str().unwrap();
    let owner: i32 = owner.split('-').next().unwrap().parse().unwrap();
    place.assert_cleaned_once(&scratch[0], &recovered(owner));
}

#[test]
fn records_that_cannot_be_written_leave_the_program_its_cleanups() {
    let place = Place::new();
    let records = place.path().join("unwritable");
    fs::create_dir(&records).unwrap();
    let full = full_disk(&records);
    if full.is_none() {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&records, fs::Permissions::from_mode(0o500)).unwrap();
        if fs::write(records.join("probe"), b"").is_ok() {
            eprintln!("skipped: root writes anywhere, and no tmpfs could be filled here");
            return;
        }
    }
    let dir = place.path().to_str().unwrap().to_owned();
    let program = place.start(&["work", &dir, "1", records.to_str().unwrap()], |command| {
        if let Some(wrapper) = &full {
            wrapper(command);
        }
    });
    let line = program.next_line();
    assert!(
        line.starts_with("not durable: could not keep a durable record"),
        "{line}"
    );
    let ended = program.signal_when_ready(SIGTERM);
    ended.assert_killed_by(SIGTERM);
    assert!(
        ended
            .stderr
            .contains("its cleanup runs in the program only"),
        "{}",
        ended.stderr
    );
    let marked = place.marked();
    assert_eq!(
        marked
            .iter()
            .filter(|line| line.starts_with("end scratch-"))
            .count(),
        1,
        "{marked:?}"
    );
    assert!(marked
        .iter()
        .any(|line| line.ends_with("Signal(SIGTERM=15)")));
}

/// What a test does to a command before it starts it.
type Setup = Box<dyn Fn(&mut Command)>;

/// Makes `dir` a full file system, for a program started with the returned setup: a tmpfs of a
/// page, filled, mounted in a mount namespace of the program's own. `None` where that cannot be
/// done (not root, no `unshare`).
fn full_disk(dir: &Path) -> Option<Setup> {
    // SAFETY: `geteuid` cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let probe = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "true"])
        .status()
        .ok()?;
    if !probe.success() {
        return None;
    }
    let dir = dir.to_owned();
    Some(Box::new(move |command: &mut Command| {
        let dir = dir.clone();
        // SAFETY: what runs in the child before `exec`: system calls, no allocation that a
        // lock could hold up (the strings are made before the fork).
        let target = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
        let fill = std::ffi::CString::new(dir.join("fill").to_str().unwrap()).unwrap();
        unsafe {
            command.pre_exec(move || {
                if libc::unshare(libc::CLONE_NEWNS) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let root = c"/";
                libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                );
                let tmpfs = c"tmpfs";
                let options = c"size=4k";
                if libc::mount(
                    tmpfs.as_ptr(),
                    target.as_ptr(),
                    tmpfs.as_ptr(),
                    0,
                    options.as_ptr().cast(),
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                let fd = libc::open(fill.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o600);
                let page = [0u8; 4096];
                while fd >= 0 && libc::write(fd, page.as_ptr().cast(), page.len()) > 0 {}
                libc::close(fd);
                Ok(())
            });
        }
    }))
}

#[test]
fn killed_with_its_cgroup_the_next_start_runs_the_leftover_once() {
    let Some(cgroup) = Cgroup::new() else {
        eprintln!("skipped: no cgroup v2 with cgroup.kill that this user can make");
        return;
    };
    let place = Place::new();
    let dir = place.path().to_str().unwrap().to_owned();
    let procs = std::ffi::CString::new(cgroup.0.join("cgroup.procs").to_str().unwrap()).unwrap();
    let worker = place.start(&["work", &dir, "1"], |command| {
        // SAFETY: system calls only, on a string made before the fork.
        unsafe {
            command.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                let joined = fd >= 0 && libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
                libc::close(fd);
                match joined {
                    true => Ok(()),
                    false => Err(std::io::Error::last_os_error()),
                }
            });
        }
    });
    let line = worker.next_line();
    let scratch = PathBuf::from(line.strip_prefix("scratch ").expect("a scratch line"));
    worker.expect_line("ready");
    let owner = worker.pid();
    fs::write(cgroup.0.join("cgroup.kill"), "1").expect("kill the cgroup");
    worker.wait().assert_killed_by(libc::SIGKILL);
    assert!(scratch.exists(), "the guardian went with the cgroup");
    assert_eq!(place.recover().0, 1);
    place.assert_cleaned_once(&scratch, &recovered(owner));
}

/// A cgroup of the test's own, removed when dropped.
struct Cgroup(PathBuf);

impl Cgroup {
    fn new() -> Option<Self> {
        let base = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .into_iter()
            .map(Path::new)
            .find(|base| base.join("cgroup.procs").exists() && base.join("cgroup.stat").exists())?;
        let dir = base.join(format!(
            "finally-test-{}-{}",
            std::process::id(),
            Random::new().below(1 << 40)
        ));
        fs::create_dir(&dir).ok()?;
        let cgroup = Cgroup(dir);
        cgroup.0.join("cgroup.kill").exists().then_some(cgroup)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Empty once its processes are reaped; the kernel may take a moment to say so.
        for _ in 0..100 {
            if fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// A new PID namespace stands for a reboot: every process of the old one is gone, and the new
/// one's pids start again, so the dead owner's pid is a living process's (here the recovering
/// program's own: both are PID 1).
#[test]
fn after_a_reboot_a_reused_pid_does_not_keep_the_leftovers() {
    // SAFETY: `geteuid` cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let unshare = ["unshare", "--pid", "--fork"];
    if !root
        || !Command::new("unshare")
            .args(&unshare[1..])
            .arg("true")
            .status()
            .is_ok_and(|s| s.success())
    {
        eprintln!("skipped: needs root and unshare for a PID namespace");
        return;
    }
    let place = Place::new();
    let dir = place.path().to_str().unwrap().to_owned();
    let example = example("leftovers");
    let start = |command: &str| {
        let example = example.clone();
        let dir = dir.clone();
        Scenario::start_bin(Path::new("unshare"), &[], move |wrapped| {
            wrapped
                .args(&unshare[1..])
                .arg(example)
                .args([command, &dir]);
            wrapped.process_group(0);
        })
    };
    let worker = start("work");
    let line = worker.next_line();
    let scratch = line
        .strip_prefix("scratch ")
        .expect("a scratch line")
        .to_owned();
    let [record] = &place.record_files("rec")[..] else {
        panic!("one record file");
    };
    assert!(
        record
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("1-"),
        "PID 1's"
    );
    kill_group(worker);
    assert!(Path::new(&scratch).exists());
    let recovering = start("recover");
    assert_eq!(recovering.next_line(), format!("recovered {scratch}"));
    recovering.wait().assert_exit_code(0);
    assert!(!Path::new(&scratch).exists());
    assert_eq!(place.record_files("rec"), Vec::<PathBuf>::new());
}

/// The example, as its documentation runs it: killed, then started again.
#[test]
fn the_leftovers_example_recovers_what_a_killed_run_left() {
    let place = Place::new();
    let dir = place.path().to_str().unwrap().to_owned();
    let worker = Scenario::start_example("leftovers", &["work", &dir], |_| {});
    let line = worker.next_line();
    let scratch = line
        .strip_prefix("scratch ")
        .expect("a scratch line")
        .to_owned();
    worker.signal(libc::SIGKILL);
    worker.wait().assert_killed_by(libc::SIGKILL);
    assert!(Path::new(&scratch).exists());
    let again = Scenario::start_example("leftovers", &["recover", &dir], |_| {});
    assert_eq!(again.next_line(), format!("recovered {scratch}"));
    again.wait().assert_exit_code(0);
    assert!(!Path::new(&scratch).exists());
}
