//! The guardian's channel on Windows, made: a named pipe of one instance, in message mode, whose
//! client end this process opens itself at once, and which the current user alone may open.
//!
//! Windows has no anonymous pipe in message mode (`CreatePipe` makes byte pipes, whose
//! non-blocking writes may be cut), so the pipe has a name, but one of no use to anyone else.
//! It is random, so no one can take it first; `FILE_FLAG_FIRST_PIPE_INSTANCE` makes sure that
//! no one did, and the pipe has one instance, which this process takes before it hands the
//! client end on: from then on, every other `CreateFileW` of the name fails (`ERROR_PIPE_BUSY`),
//! for ever, since the program never disconnects it. Until then, its security descriptor keeps
//! other users out, and `PIPE_REJECT_REMOTE_CLIENTS` other machines.

use std::hash::{BuildHasher, Hasher};
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::{io, mem, ptr};

use windows_sys::Win32::Foundation::{GENERIC_ALL, GENERIC_READ, GENERIC_WRITE, HANDLE};
use windows_sys::Win32::Security::{
    AddAccessAllowedAce, GetTokenInformation, InitializeAcl, InitializeSecurityDescriptor,
    SetSecurityDescriptorDacl, TokenUser, ACL, ACL_REVISION, SECURITY_ATTRIBUTES,
    SECURITY_DESCRIPTOR, SECURITY_MAX_SID_SIZE, TOKEN_QUERY, TOKEN_USER,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FILE_FLAG_FIRST_PIPE_INSTANCE, OPEN_EXISTING, PIPE_ACCESS_DUPLEX,
};
use windows_sys::Win32::System::Pipes::{
    CreateNamedPipeW, GetNamedPipeInfo, GetNamedPipeServerProcessId, SetNamedPipeHandleState,
    PIPE_NOWAIT, PIPE_READMODE_MESSAGE, PIPE_REJECT_REMOTE_CLIENTS, PIPE_SERVER_END,
    PIPE_TYPE_MESSAGE,
};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

/// `winnt.h`'s, which `windows-sys` has in a module of its own.
const SECURITY_DESCRIPTOR_REVISION: u32 = 1;

/// A channel: this process's end, which never blocks, and the other, which no other process
/// has, to hand on; each with `room` bytes of buffer. Neither is inheritable.
pub(crate) fn pair(room: u32) -> io::Result<(OwnedHandle, OwnedHandle)> {
    let name: Vec<u16> = random_name().encode_utf16().chain([0]).collect();
    let server = create(&name, room)?;
    let client = connect(&name)?;
    Ok((server, client))
}

/// The process whose pipe `handle` is the client end of, where it is a handle of this process
/// and such an end, in message mode; `None` for any other handle value.
pub(crate) fn server_of(handle: HANDLE) -> Option<u32> {
    let (mut flags, mut server) = (0, 0);
    // SAFETY: asking only for the flags and the server's id; a handle that is not a pipe's, or
    // not this process's, fails.
    let known = unsafe {
        GetNamedPipeInfo(
            handle,
            &mut flags,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
        ) != 0
            && GetNamedPipeServerProcessId(handle, &mut server) != 0
    };
    let client = flags & PIPE_SERVER_END == 0 && flags & PIPE_TYPE_MESSAGE != 0;
    (known && client).then_some(server)
}

/// A name that no other process can guess: std's hash keys come from the system's random
/// generator.
fn random_name() -> String {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let pid = std::process::id();
    format!(r"\\.\pipe\finally-guardian-{pid}-{random:016x}")
}

/// The server end: the one instance of a new pipe named `name`, in message mode, that never
/// blocks.
fn create(name: &[u16], room: u32) -> io::Result<OwnedHandle> {
    let open_mode = PIPE_ACCESS_DUPLEX | FILE_FLAG_FIRST_PIPE_INSTANCE;
    let pipe_mode =
        PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_NOWAIT | PIPE_REJECT_REMOTE_CLIENTS;
    for_this_user_only(|attributes| {
        // SAFETY: a NUL-terminated name and valid security attributes.
        let pipe = unsafe {
            CreateNamedPipeW(
                name.as_ptr(),
                open_mode,
                pipe_mode,
                1,
                room,
                room,
                0,
                attributes,
            )
        };
        owned(pipe, "CreateNamedPipeW")
    })
}

/// The client end of the pipe named `name`, which takes its one instance: reads whole messages,
/// and may write one to the server (the guardian's "watching").
fn connect(name: &[u16]) -> io::Result<OwnedHandle> {
    // SAFETY: opening a NUL-terminated name, not inheritable.
    let client = unsafe {
        CreateFileW(
            name.as_ptr(),
            GENERIC_READ | GENERIC_WRITE,
            0,
            ptr::null(),
            OPEN_EXISTING,
            0,
            ptr::null_mut(),
        )
    };
    let client = owned(client, "CreateFileW")?;
    let mode = PIPE_READMODE_MESSAGE;
    // SAFETY: our end of the pipe, in message mode; the other settings left as they are.
    if unsafe { SetNamedPipeHandleState(client.as_raw_handle(), &mode, ptr::null(), ptr::null()) }
        == 0
    {
        return Err(last_error("SetNamedPipeHandleState"));
    }
    Ok(client)
}

/// Calls `create` with security attributes that let the current user alone open what it makes:
/// a pipe's default descriptor lets everyone read it.
fn for_this_user_only<T>(
    create: impl FnOnce(&SECURITY_ATTRIBUTES) -> io::Result<T>,
) -> io::Result<T> {
    // A `TOKEN_USER` and the SID it points to, aligned.
    let mut user =
        [0u64; (mem::size_of::<TOKEN_USER>() + SECURITY_MAX_SID_SIZE as usize).div_ceil(8)];
    let mut acl = [0u64; 16];
    let mut descriptor = SECURITY_DESCRIPTOR::default();
    let descriptor_ptr = ptr::from_mut(&mut descriptor).cast();
    let token = this_process_token()?;
    let mut length = 0;
    // SAFETY: buffers of the sizes given, live for this call; `TOKEN_USER`'s SID lies in
    // `user`, and the ACL holds one ACE with a copy of it (8 + 8 + at most 68 bytes); the
    // descriptor points to `acl`, which outlives its use in `create`.
    let made = unsafe {
        GetTokenInformation(
            token.as_raw_handle(),
            TokenUser,
            user.as_mut_ptr().cast(),
            mem::size_of_val(&user) as u32,
            &mut length,
        ) != 0
            && InitializeAcl(
                acl.as_mut_ptr().cast(),
                mem::size_of_val(&acl) as u32,
                ACL_REVISION,
            ) != 0
            && AddAccessAllowedAce(
                acl.as_mut_ptr().cast(),
                ACL_REVISION,
                GENERIC_ALL,
                (*user.as_ptr().cast::<TOKEN_USER>()).User.Sid,
            ) != 0
            && InitializeSecurityDescriptor(descriptor_ptr, SECURITY_DESCRIPTOR_REVISION) != 0
            && SetSecurityDescriptorDacl(descriptor_ptr, 1, acl.as_ptr().cast::<ACL>(), 0) != 0
    };
    if !made {
        return Err(last_error("a security descriptor for the current user"));
    }
    create(&SECURITY_ATTRIBUTES {
        nLength: mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
        lpSecurityDescriptor: descriptor_ptr,
        bInheritHandle: 0,
    })
}

/// This process's access token, to read its user from.
fn this_process_token() -> io::Result<OwnedHandle> {
    let mut token = ptr::null_mut();
    // SAFETY: the pseudo-handle of this process; `token` receives a new handle.
    if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
        return Err(last_error("OpenProcessToken"));
    }
    // SAFETY: a new handle, ours alone.
    Ok(unsafe { OwnedHandle::from_raw_handle(token) })
}

/// `handle`, just returned by `call`, owned; or why `call` failed.
fn owned(handle: HANDLE, call: &str) -> io::Result<OwnedHandle> {
    if handle == windows_sys::Win32::Foundation::INVALID_HANDLE_VALUE {
        return Err(last_error(call));
    }
    // SAFETY: a new handle, ours alone.
    Ok(unsafe { OwnedHandle::from_raw_handle(handle) })
}

/// The system's last error, said to come from `call`.
fn last_error(call: &str) -> io::Error {
    let error = io::Error::last_os_error();
    io::Error::new(error.kind(), format!("{call}: {error}"))
}
