//! Durable cleanups: a record on disk of each pending durable guard, so that a later start of
//! the program cleans up after a process that died with its guardian (a container killed whole,
//! the OOM killer taking the cgroup, a reboot, a power cut).
//!
//! - **One file per process**, `PID-NONCE.rec` in the records' directory, so that guards of
//!   different processes never contend. It is a log of entries: a header naming the owner (pid,
//!   start time and boot where the system tells them), then `armed` (an id, the cleanup's path
//!   as `#[guardian_cleanup]` registered it, the encoded state) and `ended` (an id). Each entry
//!   is framed by its length and a checksum: a torn last entry (the process died writing it)
//!   is ignored, any other damage makes the file corrupt. The file goes when no guard of its
//!   process is pending.
//! - **Alive is locked.** The owner holds an exclusive lock on its file (`sys/lock.rs`), which
//!   the system lets go of when the process ends, however it ends: a recovering process takes
//!   the lock without waiting or leaves the file alone. So a living owner's records are never
//!   touched, a pid reused by another process or another boot changes nothing, and of two
//!   processes recovering at once one runs each file. The file is made under a hidden name,
//!   locked, then renamed, so that no one sees it unlocked.
//! - **Recovery** runs the armed entries of a file whose owner is gone, newest first, told
//!   [`Exit::Recovered`], appending `ended` after each (a recovery that is itself killed does
//!   not run them again), then removes the file.
//! - **Its own format, here.** The entries' framing is not beside the guardian's messages
//!   (`guardian/wire.rs`): those join two processes of one build for one run, in packets that
//!   arrive whole, while a record is read by a later start, perhaps of a newer build (the
//!   header's magic names the format's version), after a crash in the middle of a write (the
//!   checksums, the torn last entry). One contract each, each written once.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::error::Error;
use crate::exit::Exit;
use crate::registered::{self, Registered};
use crate::report::report;
use crate::sys::lock::try_lock;

/// How durable a record is once [`guard_durable`](crate::guard_durable) has returned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// On the disk (`fsync` of the record, and of the directory for a new file): survives a
    /// power cut. Costs a disk flush at each durable guard's start and end.
    #[default]
    Disk,
    /// Written to the system, not flushed: survives the process, its container and its
    /// guardian dying, not the machine (a reboot after a crash may lose the latest records).
    System,
}

/// Where the records are kept, and how.
struct Place {
    dir: PathBuf,
    durability: Durability,
}

static PLACE: OnceLock<Place> = OnceLock::new();

/// Keeps the durable records in `dir` (made if missing, readable by the user only), with
/// `durability`, instead of the default: `$XDG_STATE_HOME/finally/PROGRAM` (or
/// `~/.local/state/finally/PROGRAM`; `%LOCALAPPDATA%\finally\PROGRAM` on Windows) and
/// [`Durability::Disk`]. Call it first thing in `main`, before [`recover`] and the first
/// durable guard: once records are kept somewhere, another place is refused.
pub fn keep_records(dir: impl Into<PathBuf>, durability: Durability) -> Result<(), Error> {
    let wanted = Place {
        dir: dir.into(),
        durability,
    };
    make_dir(&wanted.dir)
        .map_err(|error| Error::because("make the directory of records", error))?;
    let mut fresh = Some(wanted);
    let place = PLACE.get_or_init(|| fresh.take().expect("taken once"));
    match fresh {
        Some(wanted) if wanted.dir != place.dir || wanted.durability != place.durability => {
            Err(Error::because(
                "keep the records there",
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("they are kept in {} already", place.dir.display()),
                ),
            ))
        }
        _ => Ok(()),
    }
}

fn place() -> &'static Place {
    PLACE.get_or_init(|| Place {
        dir: default_dir(),
        durability: Durability::Disk,
    })
}

/// The user's state directory, `finally`, the program's name.
fn default_dir() -> PathBuf {
    let program = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.file_stem().map(ToOwned::to_owned))
        .unwrap_or_else(|| "program".into());
    #[cfg(unix)]
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|dir| Path::new(dir).is_absolute())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".local/state")));
    #[cfg(windows)]
    let state = std::env::var_os("LOCALAPPDATA").map(PathBuf::from);
    state
        .unwrap_or_else(std::env::temp_dir)
        .join("finally")
        .join(program)
}

fn make_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

// The entries, each `[length: u32][checksum: u64][kind: u8][body]`, little-endian; the length
// counts the kind and the body, the checksum covers them.
const HEADER: u8 = 1;
const ARMED: u8 = 2;
const ENDED: u8 = 3;
const MAGIC: &[u8] = b"finally records 1";

/// FNV-1a, 64 bits: enough to tell a torn or damaged entry, not meant against an attacker (the
/// directory is the user's own).
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn entry(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(13 + body.len());
    let length = u32::try_from(1 + body.len()).expect("a state is at most 64 KiB");
    framed.extend_from_slice(&length.to_le_bytes());
    framed.extend_from_slice(&[0; 8]);
    framed.push(kind);
    framed.extend_from_slice(body);
    let sum = checksum(&framed[12..]);
    framed[4..12].copy_from_slice(&sum.to_le_bytes());
    framed
}

/// This process's file.
struct Records {
    file: File,
    path: PathBuf,
    /// The process it belongs to: a child forked without `exec` makes its own.
    pid: u32,
    armed: usize,
    next: u64,
}

static RECORDS: Mutex<Option<Records>> = Mutex::new(None);

/// Records a durable guard of the cleanup `registered`, with `state`: its id.
pub(crate) fn arm(registered: &Registered, state: &[u8]) -> Result<u64, Error> {
    let name = registered.name().as_bytes();
    let mut records = RECORDS.lock().unwrap_or_else(PoisonError::into_inner);
    let armed = (|| {
        if records
            .as_ref()
            .map_or(true, |records| records.pid != std::process::id())
        {
            // A child forked without `exec` closes its copy of the parent's file, whose lock
            // then stays the parent's alone.
            *records = Some(open()?);
        }
        let records = records.as_mut().expect("opened");
        let id = records.next;
        let mut body = Vec::with_capacity(10 + name.len() + state.len());
        body.extend_from_slice(&id.to_le_bytes());
        body.extend_from_slice(&u16::try_from(name.len()).unwrap_or(u16::MAX).to_le_bytes());
        body.extend_from_slice(name);
        body.extend_from_slice(state);
        append(&mut records.file, &entry(ARMED, &body))?;
        records.next += 1;
        records.armed += 1;
        Ok(id)
    })();
    armed.map_err(|error: io::Error| Error::because("keep a durable record of this guard", error))
}

/// The durable guard `id` has ended: its cleanup ran, or it was dismissed.
pub(crate) fn disarm(id: u64) {
    let mut records = RECORDS.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(ours) = records
        .as_mut()
        .filter(|records| records.pid == std::process::id())
    else {
        return;
    };
    ours.armed -= 1;
    // Recorded before the file goes: a removal that a power cut undoes leaves nothing to run.
    if let Err(error) = append(&mut ours.file, &entry(ENDED, &id.to_le_bytes())) {
        report(format_args!(
            "could not record the end of a durable guard in {}: {error}; a later recovery runs it again",
            ours.path.display()
        ));
        return;
    }
    if ours.armed == 0 {
        // Nothing pending: the file goes, and its lock with it.
        let gone = records.take().expect("there");
        let _ = fs::remove_file(&gone.path);
    }
}

/// Makes this process's file: under a hidden name, locked, its header written, then renamed.
fn open() -> io::Result<Records> {
    let place = place();
    make_dir(&place.dir)?;
    let pid = std::process::id();
    let nonce = checksum(
        &[
            pid.to_le_bytes().as_slice(),
            &crate::sys::monotonic_nanos().to_le_bytes(),
            &(std::ptr::addr_of!(pid) as usize).to_le_bytes(),
            &std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
                .to_le_bytes(),
        ]
        .concat(),
    );
    let name = format!("{pid}-{nonce:016x}.rec");
    let hidden = place.dir.join(format!(".{name}.new"));
    let path = place.dir.join(&name);
    let mut options = OpenOptions::new();
    options.read(true).write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&hidden)?;
    if !try_lock(&file)? {
        return Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "a new file is locked",
        ));
    }
    let (start, boot) = owner_identity(pid);
    let mut header = MAGIC.to_vec();
    header.extend_from_slice(&pid.to_le_bytes());
    header.extend_from_slice(&start.to_le_bytes());
    header.extend_from_slice(&boot);
    append(&mut file, &entry(HEADER, &header))?;
    fs::rename(&hidden, &path)?;
    if place.durability == Durability::Disk {
        sync_dir(&place.dir)?;
    }
    Ok(Records {
        file,
        path,
        pid,
        armed: 0,
        next: 0,
    })
}

/// Writes an entry at the end of the file, flushed to the disk where the place asks it.
fn append(file: &mut File, entry: &[u8]) -> io::Result<()> {
    file.seek(SeekFrom::End(0))?;
    file.write_all(entry)?;
    if place().durability == Durability::Disk {
        file.sync_data()?;
    }
    Ok(())
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Windows has no handle on a directory to flush: the rename is as durable as NTFS makes it.
#[cfg(windows)]
fn sync_dir(_: &Path) -> io::Result<()> {
    Ok(())
}

/// The process's start time (clock ticks since boot) and the boot's id, where the system tells
/// them (Linux); zeros elsewhere. The lock decides whether the owner is alive: these say who
/// it was, in reports.
fn owner_identity(pid: u32) -> (u64, [u8; 16]) {
    #[cfg(target_os = "linux")]
    {
        let start = libc::pid_t::try_from(pid)
            .ok()
            .and_then(crate::sys::proc::stat)
            .map_or(0, |stat| stat.start);
        let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        let mut id = [0; 16];
        let hex: Vec<u8> = boot.bytes().filter(u8::is_ascii_hexdigit).collect();
        for (byte, pair) in id.iter_mut().zip(hex.chunks(2)) {
            *byte = std::str::from_utf8(pair)
                .ok()
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .unwrap_or(0);
        }
        (start, id)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        (0, [0; 16])
    }
}

/// Runs the cleanups that processes now gone left pending in the records' directory (see
/// [`keep_records`]): each once, newest first, told [`Exit::Recovered`]; returns how many ran.
///
/// Call it early in `main`. Records of a living process are never touched, whoever it is
/// (another instance of the program); two processes recovering at once never run one record
/// twice. A record that names a cleanup this program does not register (another program's,
/// or one renamed since) is kept, for the program that knows it; a damaged one is reported and
/// set aside, renamed `*.corrupt`. A missing directory is nothing to recover; one that cannot be
/// read is an error.
///
/// ```no_run
/// # use finally_runtime as finally;
/// # fn main() -> Result<(), finally::Error> {
/// let recovered = finally::recover()?;
/// if recovered > 0 {
///     eprintln!("cleaned up after {recovered} guards of earlier runs");
/// }
/// # Ok(()) }
/// ```
pub fn recover() -> Result<usize, Error> {
    let dir = &place().dir;
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(Error::because("read the directory of records", error)),
    };
    let mut ran = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let recovered = if name.ends_with(".rec") {
            recover_file(&path, None)
        } else if name.starts_with('.') && name.ends_with(".new") {
            remove_abandoned(&path).map(|()| 0)
        } else {
            continue;
        };
        match recovered {
            Ok(count) => ran += count,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => report(format_args!(
                "could not recover the records {}: {error}",
                path.display()
            )),
        }
    }
    Ok(ran)
}

/// In the guardian, once the program `owner` has died: runs the cleanups of its records in
/// `dir`, told `exit`, and removes them; records that a later start's recovery took first are
/// its.
pub(crate) fn recover_owned(dir: &Path, owner: u32, exit: &Exit) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let prefix = format!("{owner}-");
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(&prefix) && name.ends_with(".rec")) {
            continue;
        }
        let path = entry.path();
        if let Err(error) = recover_file(&path, Some((owner, exit))) {
            report(format_args!(
                "could not run the records {}: {error}",
                path.display()
            ));
        }
    }
}

/// The directory of records.
pub(crate) fn dir() -> &'static Path {
    &place().dir
}

/// A file left under its hidden name by a process that died making it.
fn remove_abandoned(path: &Path) -> io::Result<()> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    if try_lock(&file)? && is_still(&file, path)? {
        fs::remove_file(path)?;
    }
    Ok(())
}

/// Runs the pending records of the file at `path`, if its owner is gone, and removes it: told
/// [`Exit::Recovered`], or for the guardian `(owner, exit)`, only if `owner` made the file.
fn recover_file(path: &Path, guardian: Option<(u32, &Exit)>) -> io::Result<usize> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    // Its owner, or another recovering process, holds it; or it was removed meanwhile.
    if !try_lock(&file)? || !is_still(&file, path)? {
        return Ok(0);
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let (owner, pending) = match parse(&bytes) {
        Ok(parsed) => parsed,
        Err(why) => {
            let aside = path.with_extension("corrupt");
            fs::rename(path, &aside)?;
            report(format_args!(
                "the records {} are damaged ({why}): none of them ran; set aside as {}",
                path.display(),
                aside.display()
            ));
            return Ok(0);
        }
    };
    let recovered = Exit::Recovered { owner };
    let exit = match guardian {
        Some((program, _)) if program != owner => return Ok(0),
        Some((_, exit)) => exit,
        None => &recovered,
    };
    let (mut ran, mut kept) = (0, 0);
    for (id, name, state) in pending.iter().rev() {
        match registered::named(name) {
            Some(cleanup) if cleanup.decodes(state) => {
                let ran_by = "a durable guard's cleanup, recovered";
                crate::registry::call_caught(&ran_by, exit, || cleanup.run(state, exit, ran_by));
                // Recorded at once: a recovery killed now does not run it again.
                let _ = append(&mut file, &entry(ENDED, &id.to_le_bytes()));
                ran += 1;
            }
            found => {
                let why = match found {
                    Some(_) => "whose state it cannot decode",
                    None => "that this program does not register",
                };
                report(format_args!(
                    "the records {} name the cleanup `{name}`, {why}: kept",
                    path.display()
                ));
                kept += 1;
            }
        }
    }
    if kept == 0 {
        fs::remove_file(path)?;
    }
    Ok(ran)
}

/// Whether `path` still names the file open as `file` (not removed and made again since).
fn is_still(file: &File, path: &Path) -> io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let (open, named) = (file.metadata()?, fs::metadata(path)?);
        Ok(open.dev() == named.dev() && open.ino() == named.ino())
    }
    #[cfg(windows)]
    {
        let _ = file;
        Ok(path.exists())
    }
}

type Pending = Vec<(u64, String, Vec<u8>)>;

/// The owner's pid and the entries still armed, oldest first; or why the file is damaged. A
/// last entry cut short is one the owner died writing: not acknowledged, so not pending.
fn parse(mut bytes: &[u8]) -> Result<(u32, Pending), String> {
    let mut owner = None;
    let mut pending: Pending = Vec::new();
    while !bytes.is_empty() {
        let Some((length, rest)) = bytes.split_first_chunk::<4>() else {
            break;
        };
        let length = u32::from_le_bytes(*length) as usize;
        let Some((sum, rest)) = rest.split_first_chunk::<8>() else {
            break;
        };
        if rest.len() < length {
            break;
        }
        let (framed, rest) = rest.split_at(length);
        if length == 0 || checksum(framed) != u64::from_le_bytes(*sum) {
            return Err(format!(
                "a checksum does not match, {} bytes from the end",
                bytes.len()
            ));
        }
        bytes = rest;
        let (kind, body) = (framed[0], &framed[1..]);
        match (kind, owner) {
            (HEADER, None) => {
                let pid = body
                    .strip_prefix(MAGIC)
                    .and_then(|body| body.first_chunk::<4>())
                    .ok_or("the header is not one of finally's")?;
                owner = Some(u32::from_le_bytes(*pid));
            }
            (ARMED, Some(_)) => {
                let (id, body) = body.split_first_chunk::<8>().ok_or("an entry is short")?;
                let (length, body) = body.split_first_chunk::<2>().ok_or("an entry is short")?;
                let length = usize::from(u16::from_le_bytes(*length));
                let name = body.get(..length).ok_or("an entry is short")?;
                let name = std::str::from_utf8(name).map_err(|_| "a name is not text")?;
                pending.push((
                    u64::from_le_bytes(*id),
                    name.to_owned(),
                    body[length..].to_vec(),
                ));
            }
            (ENDED, Some(_)) => {
                let id = u64::from_le_bytes(*body.first_chunk::<8>().ok_or("an entry is short")?);
                pending.retain(|(armed, _, _)| *armed != id);
            }
            _ => return Err(format!("an entry of kind {kind} is out of place")),
        }
    }
    let owner = owner.ok_or("there is no header")?;
    Ok((owner, pending))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(entries: &[Vec<u8>]) -> Vec<u8> {
        entries.concat()
    }

    fn header(pid: u32) -> Vec<u8> {
        entry(
            HEADER,
            &[MAGIC, pid.to_le_bytes().as_slice(), &[0; 24]].concat(),
        )
    }

    fn armed(id: u64, name: &str, state: &[u8]) -> Vec<u8> {
        let length = u16::try_from(name.len()).unwrap().to_le_bytes();
        entry(
            ARMED,
            &[id.to_le_bytes().as_slice(), &length, name.as_bytes(), state].concat(),
        )
    }

    #[test]
    fn the_armed_entries_not_ended_are_pending() {
        let bytes = file(&[
            header(7),
            armed(0, "a::x", b"one"),
            armed(1, "a::y", b"two"),
            entry(ENDED, &0_u64.to_le_bytes()),
        ]);
        let (owner, pending) = parse(&bytes).unwrap();
        assert_eq!(owner, 7);
        assert_eq!(pending, vec![(1, "a::y".to_owned(), b"two".to_vec())]);
    }

    #[test]
    fn a_torn_last_entry_was_never_acknowledged() {
        let mut bytes = file(&[header(7), armed(0, "a::x", b"one")]);
        let torn = armed(1, "a::y", b"two");
        bytes.extend_from_slice(&torn[..torn.len() - 2]);
        assert_eq!(parse(&bytes).unwrap().1.len(), 1);
    }

    #[test]
    fn damage_anywhere_else_is_corrupt() {
        let mut bytes = file(&[header(7), armed(0, "a::x", b"one"), armed(1, "a::y", b"z")]);
        let middle = header(7).len() + 15;
        bytes[middle] ^= 0x40;
        assert!(parse(&bytes).is_err());
        assert!(parse(&armed(0, "a::x", b"one")).is_err(), "no header");
        assert!(parse(&entry(HEADER, b"someone else's")).is_err());
    }
}
