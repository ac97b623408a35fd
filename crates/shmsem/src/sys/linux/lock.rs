//! Byte-range locks on open file descriptions (OFD locks): taken per description rather than
//! per process, and dropped by the kernel when the last descriptor of the description closes,
//! including at the death of its process.

use std::{
    fs, io,
    os::fd::{AsRawFd, BorrowedFd},
};

fn ofd_lock(
    fd: BorrowedFd<'_>,
    cmd: libc::c_int,
    kind: libc::c_short,
    offset: u64,
    len: u64,
) -> io::Result<libc::flock> {
    // SAFETY: `flock` is a plain C struct for which all-zero bytes are a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = offset as libc::off_t;
    fl.l_len = len as libc::off_t;
    loop {
        // SAFETY: `fd` is an open descriptor for the duration of the call and `fl` is a valid,
        // exclusively borrowed `flock` as F_OFD_* commands require.
        let r = unsafe { libc::fcntl(fd.as_raw_fd(), cmd, &mut fl) };
        if r == 0 {
            return Ok(fl);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Take a write lock on byte `offset` of `fd`'s file, waiting as long as another open file
/// description holds one (the kernel hands it over when that description closes, including at
/// its process's death). No timeout: the caller is a thread that exists to wait for it.
pub fn lock_byte_wait(fd: BorrowedFd<'_>, offset: u64) -> io::Result<()> {
    ofd_lock(fd, libc::F_OFD_SETLKW, libc::F_WRLCK as _, offset, 1).map(drop)
}

/// Take a write lock on byte `offset` of `fd`'s file without waiting. `Ok(false)` when another
/// open file description holds a lock on it.
///
/// OFD locks belong to the open file description, not the process: every thread of this process
/// using the same descriptor shares them, and the kernel drops them when the last descriptor of
/// the description closes, including at process death.
pub fn try_lock_byte(fd: BorrowedFd<'_>, offset: u64) -> io::Result<bool> {
    match ofd_lock(fd, libc::F_OFD_SETLK, libc::F_WRLCK as _, offset, 1) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Drop this description's lock on byte `offset`.
pub fn unlock_byte(fd: BorrowedFd<'_>, offset: u64) -> io::Result<()> {
    ofd_lock(fd, libc::F_OFD_SETLK, libc::F_UNLCK as _, offset, 1).map(drop)
}

/// Whether another open file description holds a lock on byte `offset`.
pub fn byte_locked(fd: BorrowedFd<'_>, offset: u64) -> io::Result<bool> {
    range_locked(fd, offset, 1)
}

/// Whether another open file description holds a lock on any byte of `offset..offset + len`.
pub fn range_locked(fd: BorrowedFd<'_>, offset: u64, len: u64) -> io::Result<bool> {
    let fl = ofd_lock(fd, libc::F_OFD_GETLK, libc::F_WRLCK as _, offset, len)?;
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// The process that holds a lock on byte `offset` of the file `fd` refers to: found in the
/// `lock:` lines of `/proc/PID/fdinfo` (`/proc/locks` shows no pid for OFD locks). Only
/// processes this one may inspect are seen; `None` when none of them holds it. For error
/// messages only: it scans `/proc`.
pub fn lock_holder(fd: BorrowedFd<'_>, offset: u64) -> Option<u32> {
    let meta = rustix::fs::fstat(fd).ok()?;
    let dev = meta.st_dev as libc::dev_t;
    let id = format!(
        "{:02x}:{:02x}:{}",
        libc::major(dev),
        libc::minor(dev),
        meta.st_ino
    );
    let me = std::process::id();
    super::proc::processes()?
        .filter(|&(pid, _)| pid != me)
        .find(|(_, entry)| {
            let Ok(fds) = fs::read_dir(entry.path().join("fdinfo")) else {
                return false;
            };
            fds.flatten().any(|info| {
                fs::read_to_string(info.path()).is_ok_and(|text| {
                    text.lines()
                        .any(|l| l.starts_with("lock:") && lock_line_covers(l, &id, offset))
                })
            })
        })
        .map(|(pid, _)| pid)
}

/// Whether an fdinfo `lock:` line is a lock on byte `offset` of the file `id` (`MAJ:MIN:INODE`).
fn lock_line_covers(line: &str, id: &str, offset: u64) -> bool {
    // "lock:\t1: OFDLCK ADVISORY  WRITE -1 00:1b:174 0 0"
    let f: Vec<&str> = line.split_whitespace().collect();
    let (Some(file), Some(start), Some(end)) = (f.get(6), f.get(7), f.get(8)) else {
        return false;
    };
    let Ok(start) = start.parse::<u64>() else {
        return false;
    };
    *file == id
        && match *end {
            "EOF" => offset >= start,
            end => end
                .parse::<u64>()
                .is_ok_and(|end| (start..=end).contains(&offset)),
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_line_covers_its_range_of_its_file_only() {
        let line = "lock:\t1: OFDLCK ADVISORY  WRITE -1 00:1b:174 3 5";
        assert!(lock_line_covers(line, "00:1b:174", 3));
        assert!(lock_line_covers(line, "00:1b:174", 5));
        assert!(!lock_line_covers(line, "00:1b:174", 6));
        assert!(!lock_line_covers(line, "00:1b:175", 4));
        let to_end = "lock:\t1: OFDLCK ADVISORY  WRITE -1 00:1b:174 7 EOF";
        assert!(lock_line_covers(to_end, "00:1b:174", 1 << 40));
        assert!(!lock_line_covers(to_end, "00:1b:174", 6));
        assert!(!lock_line_covers("lock:\t1: garbage", "00:1b:174", 0));
    }
}
