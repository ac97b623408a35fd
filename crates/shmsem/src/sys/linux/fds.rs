//! Descriptors: opening a file again as a description of its own, keeping a descriptor across
//! `exec`, and finding a descriptor of an unlinked file among this user's processes.

use std::{
    fs, io,
    os::fd::{AsRawFd, BorrowedFd},
    path::{Path, PathBuf},
};

/// A new open file description of the file that `fd` refers to, read-write and close-on-exec:
/// unlike a duplicate of `fd`, its OFD locks are its own. Through `/proc/self/fd`, so it is the
/// same file even if its path now names another.
pub fn reopen(fd: BorrowedFd<'_>) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Let `fd` be inherited across `exec` (clear close-on-exec). Called in a child between `fork`
/// and `exec`: async-signal-safe.
pub fn keep_across_exec(fd: i32) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor number has no memory effects; a bad number gives EBADF.
    let r = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A descriptor, in some process of this process's effective uid, of the file that was at
/// `path` and has been unlinked since: a `/proc/PID/fd/N` path that opens it. Scans `/proc`;
/// processes of other uids are skipped, even for root.
pub fn find_unlinked(path: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let target = format!("{} (deleted)", path.display());
    let me = super::proc::euid();
    super::proc::processes()?
        // Only processes of our own uid: root must not adopt a file another user kept open
        // (and may have replaced or may still lock), whatever root is allowed to read.
        .filter(|(_, entry)| entry.metadata().is_ok_and(|m| m.uid() == me))
        .find_map(|(_, entry)| {
            fs::read_dir(entry.path().join("fd"))
                .ok()?
                .flatten()
                .map(|fd| fd.path())
                .find(|fd| fs::read_link(fd).is_ok_and(|t| t.as_os_str() == target.as_str()))
        })
}
