//! Linux: open-file-description (OFD) locks, `/proc`, pidfds and `poll`,
//! `CLOCK_REALTIME_COARSE`.

use std::{
    fs, io,
    os::fd::{AsRawFd, BorrowedFd},
    time::Duration,
};

use super::{Identity, Liveness};

// ===== byte-range locks =====

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
    let covers = |line: &str| {
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
    };
    let me = std::process::id();
    for proc_entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = proc_entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = fs::read_dir(proc_entry.path().join("fdinfo")) else {
            continue;
        };
        for info in fds.flatten() {
            if fs::read_to_string(info.path())
                .is_ok_and(|text| text.lines().any(|l| l.starts_with("lock:") && covers(l)))
            {
                return Some(pid);
            }
        }
    }
    None
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

/// Stop this process with SIGSTOP, until someone sends SIGCONT (a test's pause point).
#[cfg(feature = "failpoints")]
pub fn stop_self() {
    // SAFETY: raise has no memory effects.
    unsafe { libc::raise(libc::SIGSTOP) };
}

/// End this process at once with SIGKILL (crash tests).
#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
pub fn kill_self() -> ! {
    // SAFETY: raise(2) with a valid signal number; SIGKILL cannot be caught, so it never returns.
    unsafe { libc::raise(libc::SIGKILL) };
    std::process::abort()
}

// ===== process identity =====

/// Parse field 22 (`starttime`) and field 3 (`state`) of a `/proc/PID/stat` line. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3; starttime is field 22, 19 further on.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

fn read_stat(pid: u32) -> io::Result<Option<(char, u64)>> {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => Ok(parse_stat(&s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// This process.
pub fn current() -> Identity {
    let pid = std::process::id();
    let start_time = read_stat(pid).ok().flatten().map_or(0, |(_, t)| t);
    Identity { pid, start_time }
}

/// Who `pid` is now, or `None` if there is no such process.
pub fn identity(pid: u32) -> io::Result<Option<Identity>> {
    Ok(read_stat(pid)?.map(|(_, start_time)| Identity { pid, start_time }))
}

/// The real uid of process `pid`, or `None` if there is no such process.
pub fn process_uid(pid: u32) -> io::Result<Option<u32>> {
    let status = match fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no Uid line in /proc/{pid}/status")))?;
    Ok(Some(uid))
}

/// This process's effective uid: what the kernel checks its access with.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Whether the process recorded as `who` still runs. A zombie (exited, not yet waited for) is
/// dead; a stopped process is alive.
pub fn liveness(who: Identity) -> Liveness {
    match read_stat(who.pid) {
        Ok(Some((state, start))) if start == who.start_time && state != 'Z' && state != 'X' => {
            Liveness::Alive
        }
        Ok(_) => Liveness::Dead,
        // Unreadable (permissions, hidepid): unknown counts as alive, never as dead.
        Err(_) => Liveness::Alive,
    }
}

/// Inode of this process's pid namespace, or 0 when it cannot be read.
pub fn pid_namespace() -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino())
}

/// This process's real user id.
pub fn uid() -> u32 {
    rustix::process::getuid().as_raw()
}

// ===== clocks =====

/// Wall-clock milliseconds since the Unix epoch, from the coarse clock (a few ms resolution,
/// no system call): for display only.
#[inline]
pub fn wall_ms() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, exclusively borrowed timespec; the clock id is a constant Linux
    // has had since 2.6.32.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut t) };
    (t.tv_sec as u64).saturating_mul(1000) + t.tv_nsec as u64 / 1_000_000
}

// ===== process exit notification =====

/// A descriptor that becomes readable when process `pid` (of this pid namespace) exits.
pub fn pidfd(pid: u32) -> io::Result<std::os::fd::OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid as i32)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    Ok(rustix::process::pidfd_open(
        pid,
        rustix::process::PidfdFlags::empty(),
    )?)
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
pub fn doorbell() -> io::Result<std::os::fd::OwnedFd> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let line = "42 (a) b) (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(parse_stat(line), Some(('S', 98765)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_identity_is_alive_and_a_wrong_start_time_is_dead() {
        let me = current();
        assert!(me.start_time > 0);
        assert_eq!(liveness(me), Liveness::Alive);
        let impostor = Identity {
            start_time: me.start_time + 1,
            ..me
        };
        assert_eq!(liveness(impostor), Liveness::Dead);
    }
}

// ===== owners and access =====

/// The name of user `uid`, if it has one.
pub fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: `passwd` is a plain C struct; all-zero is a valid value to be overwritten.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: `pw` and `out` are exclusively borrowed and
    // `buf` is writable for its length; the strings written point into `buf`.
    let r = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
    if r != 0 || out.is_null() {
        return None;
    }
    // SAFETY: on success `pw_name` is a NUL-terminated string inside `buf`, alive here.
    let name = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// The name of group `gid`, if it has one.
pub fn group_name(gid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: `group` is a plain C struct; all-zero is a valid value to be overwritten.
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as in `user_name`.
    let r = unsafe { libc::getgrgid_r(gid, &mut gr, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
    if r != 0 || out.is_null() {
        return None;
    }
    // SAFETY: on success `gr_name` is a NUL-terminated string inside `buf`, alive here.
    let name = unsafe { std::ffi::CStr::from_ptr(gr.gr_name) };
    Some(name.to_string_lossy().into_owned())
}

/// POSIX ACL xattr layout (`include/uapi/linux/posix_acl_xattr.h`): a 4-byte version, then
/// 8-byte entries `{tag: u16, perm: u16, id: u32}`, little-endian, sorted by tag then id.
mod acl {
    pub const NAME: &str = "system.posix_acl_access";
    pub const VERSION: u32 = 2;
    pub const USER_OBJ: u16 = 0x01;
    pub const GROUP_OBJ: u16 = 0x04;
    pub const GROUP: u16 = 0x08;
    pub const MASK: u16 = 0x10;
    pub const OTHER: u16 = 0x20;
    pub const NO_ID: u32 = u32::MAX;
}

/// Give group `gid` read and write access to `fd`'s file through a POSIX ACL entry, keeping the
/// entries already there (or the ones the mode implies). The mask is widened to cover it.
pub fn grant_group(fd: BorrowedFd<'_>, gid: u32) -> io::Result<()> {
    let mut entries: Vec<(u16, u16, u32)> = Vec::new();
    let mut buf = vec![0u8; 4096];
    match rustix::fs::fgetxattr(fd, acl::NAME, &mut buf[..]) {
        Ok(n)
            if n >= 4
                && u32::from_le_bytes(buf[..4].try_into().unwrap_or_default()) == acl::VERSION =>
        {
            for e in buf[4..n].chunks_exact(8) {
                let tag = u16::from_le_bytes([e[0], e[1]]);
                let perm = u16::from_le_bytes([e[2], e[3]]);
                let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
                entries.push((tag, perm, id));
            }
        }
        Ok(_) | Err(rustix::io::Errno::NODATA) => {
            let mode = rustix::fs::fstat(fd)?.st_mode;
            let bits = |shift: u32| ((mode >> shift) & 7) as u16;
            entries.push((acl::USER_OBJ, bits(6), acl::NO_ID));
            entries.push((acl::GROUP_OBJ, bits(3), acl::NO_ID));
            entries.push((acl::OTHER, bits(0), acl::NO_ID));
        }
        Err(e) => return Err(e.into()),
    }
    entries.retain(|&(tag, _, id)| !(tag == acl::GROUP && id == gid) && tag != acl::MASK);
    entries.push((acl::GROUP, 6, gid));
    // The mask bounds every group-class entry: make it their union.
    let mask = entries
        .iter()
        .filter(|&&(tag, _, _)| tag == acl::GROUP_OBJ || tag == acl::GROUP || tag == 0x02)
        .fold(0, |m, &(_, perm, _)| m | perm);
    entries.push((acl::MASK, mask, acl::NO_ID));
    entries.sort_by_key(|&(tag, _, id)| (tag, id));
    let mut out = acl::VERSION.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    rustix::fs::fsetxattr(fd, acl::NAME, &out, rustix::fs::XattrFlags::empty())?;
    Ok(())
}

// ===== unlinked files =====

/// A descriptor, in some process of this process's effective uid, of the file that was at
/// `path` and has been unlinked since: a `/proc/PID/fd/N` path that opens it. Scans `/proc`;
/// processes of other uids are skipped, even for root.
pub fn find_unlinked(path: &std::path::Path) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let target = format!("{} (deleted)", path.display());
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    for proc_entry in fs::read_dir("/proc").ok()?.flatten() {
        let name = proc_entry.file_name();
        if !name
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        // Only processes of our own uid: root must not adopt a file another user kept open
        // (and may have replaced or may still lock), whatever root is allowed to read.
        if proc_entry.metadata().map_or(true, |m| m.uid() != me) {
            continue;
        }
        let fd_dir = proc_entry.path().join("fd");
        let Ok(fds) = fs::read_dir(&fd_dir) else {
            continue;
        };
        for fd in fds.flatten() {
            if fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == target.as_str()) {
                return Some(fd.path());
            }
        }
    }
    None
}
