//! Processes exiting: waiting for others to (pidfds, `poll`, and a doorbell that wakes a polling
//! thread), and running a function when this one does.

use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd, OwnedFd},
    time::Duration,
};

/// What [`exit_handle`] found.
#[derive(Debug)]
pub enum ExitHandle {
    /// A descriptor that becomes readable when the process exits.
    Open(OwnedFd),
    /// No process has that pid: it has exited already.
    Gone,
    /// The process cannot be watched this way (a kernel without pidfds, no descriptors left, a
    /// pid outside this pid namespace).
    Unavailable,
}

/// A descriptor that becomes readable when process `pid` (of this pid namespace) exits: a
/// pidfd.
pub fn exit_handle(pid: u32) -> ExitHandle {
    let Some(pid) = rustix::process::Pid::from_raw(pid as i32) else {
        return ExitHandle::Unavailable;
    };
    match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => ExitHandle::Open(fd),
        Err(rustix::io::Errno::SRCH) => ExitHandle::Gone,
        Err(_) => ExitHandle::Unavailable,
    }
}

/// Sleep until one of `fds` is readable or `timeout` passes; the index of the first readable
/// one, if any. Interrupted sleeps count as passed (the caller loops anyway).
pub fn poll_readable(fds: &[BorrowedFd<'_>], timeout: Duration) -> io::Result<Option<usize>> {
    let mut polled: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `polled` is a valid array of `polled.len()` pollfd structs, exclusively borrowed for
    // the call; the descriptors are borrowed for at least as long.
    let r = unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(None)
        } else {
            Err(e)
        };
    }
    Ok(polled.iter().position(|p| p.revents != 0))
}

/// A counter descriptor (`eventfd`) that one thread of this process makes readable to wake
/// another from [`poll_readable`].
pub fn doorbell() -> io::Result<OwnedFd> {
    Ok(rustix::event::eventfd(
        0,
        rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
    )?)
}

/// Make a [`doorbell`] readable.
pub fn ring(bell: BorrowedFd<'_>) {
    // A full counter (it never is) would only mean it is readable already.
    let _ = rustix::io::write(bell, &1u64.to_ne_bytes());
}

/// Make a [`doorbell`] unreadable again.
pub fn silence(bell: BorrowedFd<'_>) {
    let mut buf = [0u8; 8];
    let _ = rustix::io::read(bell, &mut buf);
}

/// Run `f` when this process exits normally (returns from `main` or calls `exit`), after the
/// functions registered before it; never on a signal. Failure to register (the C library's
/// table full) is ignored: the caller's cleanup then has another way.
pub fn at_exit(f: extern "C" fn()) {
    // SAFETY: `f` is a valid `extern "C" fn()` for the whole life of the program.
    unsafe { libc::atexit(f) };
}
