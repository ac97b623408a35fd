//! The kernel semaphores shmsem is compared with, behind one small interface: POSIX named
//! semaphores (`sem_open`, `sem_wait`, `sem_trywait`, `sem_timedwait`, `sem_post`, `sem_close`,
//! `sem_unlink`) and SysV semaphores used with `SEM_UNDO` (`semget`, `semop`, `semtimedop`,
//! `semctl(IPC_RMID)`), called through `libc`.
//!
//! Whoever creates a semaphore owns it: dropping the owner removes the kernel object
//! (`sem_unlink`, `IPC_RMID`), so nothing outlives a run, even one that fails half-way. Handles
//! opened by helper processes only close.
//!
//! This file depends on nothing but `std` and `libc`: the criterion benches include it with
//! `#[path]` as well as `shmsem bench`.

use std::{
    ffi::{CStr, CString},
    io,
    sync::atomic::{AtomicU32, Ordering::Relaxed},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// What the benchmarks do with a kernel semaphore. Waits retry after `EINTR`.
pub trait KernelSem {
    /// Take 1, waiting as long as it takes.
    fn wait(&self) -> io::Result<()>;
    /// Take 1 if available now; `Ok(false)` if not.
    fn try_wait(&self) -> io::Result<bool>;
    /// Take 1, waiting at most `timeout`; `Ok(false)` when it elapses.
    fn timed_wait(&self, timeout: Duration) -> io::Result<bool>;
    /// Give back 1.
    fn post(&self) -> io::Result<()>;
    /// Take `n`: one call where the kernel can (SysV), else `n` single waits (POSIX).
    fn wait_n(&self, n: u16) -> io::Result<()>;
    /// Give back `n`: one call where the kernel can (SysV), else `n` single posts (POSIX).
    fn post_n(&self, n: u16) -> io::Result<()>;
}

/// A name nobody else uses: this process's pid, a tag and a counter.
pub fn unique_posix_name(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "/shmsem-bench.{}.{tag}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Relaxed)
    )
}

fn cstring(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))
}

/// Run `f` until it does not fail with `EINTR`; `-1` becomes the `errno` error.
fn retry_eintr(mut f: impl FnMut() -> libc::c_int) -> io::Result<()> {
    loop {
        if f() != -1 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Like [`retry_eintr`], but `errno == would_fail` becomes `Ok(false)`.
fn retry_eintr_or(would_fail: libc::c_int, mut f: impl FnMut() -> libc::c_int) -> io::Result<bool> {
    loop {
        if f() != -1 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(code) if code == would_fail => return Ok(false),
            _ => return Err(e),
        }
    }
}

// ===== POSIX =====

/// A POSIX named semaphore, open in this process.
#[derive(Debug)]
pub struct PosixSem {
    sem: *mut libc::sem_t,
    name: CString,
    /// Unlink the name on drop: this handle created it.
    owner: bool,
}

// SAFETY: a `sem_t` opened with `sem_open` is made to be used by several threads (and processes)
// at once; the pointer stays valid until `sem_close` in `Drop`, which needs `&mut self`.
unsafe impl Send for PosixSem {}
// SAFETY: as above; every operation takes the pointer by value and the kernel or glibc does the
// synchronisation.
unsafe impl Sync for PosixSem {}

impl PosixSem {
    /// Create `name` (which must not exist) with `value` available; the handle owns the name.
    pub fn create(name: &str, value: u32) -> io::Result<PosixSem> {
        let cname = cstring(name)?;
        // SAFETY: `cname` is a valid NUL-terminated string; with `O_CREAT`, `sem_open` reads
        // exactly two variadic arguments, a mode and an unsigned value, passed here as such.
        let sem = unsafe {
            libc::sem_open(
                cname.as_ptr(),
                libc::O_CREAT | libc::O_EXCL,
                0o600 as libc::c_uint,
                value as libc::c_uint,
            )
        };
        PosixSem::opened(sem, cname, true)
    }

    /// Open the existing `name`; dropping the handle only closes it.
    pub fn open(name: &str) -> io::Result<PosixSem> {
        let cname = cstring(name)?;
        // SAFETY: `cname` is a valid NUL-terminated string; without `O_CREAT` no variadic
        // argument is read.
        let sem = unsafe { libc::sem_open(cname.as_ptr(), 0) };
        PosixSem::opened(sem, cname, false)
    }

    /// The handle of what `sem_open` just returned for `name`, or its error (`errno`, read
    /// before anything else can change it).
    fn opened(sem: *mut libc::sem_t, name: CString, owner: bool) -> io::Result<PosixSem> {
        if sem == libc::SEM_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(PosixSem { sem, name, owner })
    }

    /// Create `name` with `value` available and close it at once, leaving only the name: what
    /// the `open` scenario opens. The returned guard unlinks it.
    pub fn create_name_only(name: &str, value: u32) -> io::Result<PosixName> {
        let mut sem = PosixSem::create(name, value)?;
        sem.owner = false; // the guard unlinks; closing `sem` must not
        Ok(PosixName {
            name: sem.name.clone(),
        })
    }

    /// The name.
    pub fn name(&self) -> &str {
        self.name.to_str().unwrap_or("")
    }

    /// `sem_open` then `sem_close` of an existing name: the cost of opening a POSIX semaphore.
    pub fn open_close(name: &CStr) -> io::Result<()> {
        // SAFETY: `name` is NUL-terminated; no variadic argument is read without `O_CREAT`.
        let sem = unsafe { libc::sem_open(name.as_ptr(), 0) };
        if sem == libc::SEM_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `sem` was just returned by `sem_open` and is closed once.
        if unsafe { libc::sem_close(sem) } == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl KernelSem for PosixSem {
    #[inline]
    fn wait(&self) -> io::Result<()> {
        // SAFETY: `self.sem` is open until `Drop`.
        retry_eintr(|| unsafe { libc::sem_wait(self.sem) })
    }

    #[inline]
    fn try_wait(&self) -> io::Result<bool> {
        // SAFETY: `self.sem` is open until `Drop`.
        retry_eintr_or(libc::EAGAIN, || unsafe { libc::sem_trywait(self.sem) })
    }

    #[inline]
    fn timed_wait(&self, timeout: Duration) -> io::Result<bool> {
        // `sem_timedwait` takes an absolute CLOCK_REALTIME deadline.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let at = now + timeout;
        let deadline = libc::timespec {
            tv_sec: at.as_secs() as libc::time_t,
            tv_nsec: at.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `self.sem` is open until `Drop`; `deadline` outlives the call.
        retry_eintr_or(libc::ETIMEDOUT, || unsafe {
            libc::sem_timedwait(self.sem, &deadline)
        })
    }

    #[inline]
    fn post(&self) -> io::Result<()> {
        // SAFETY: `self.sem` is open until `Drop`.
        retry_eintr(|| unsafe { libc::sem_post(self.sem) })
    }

    #[inline]
    fn wait_n(&self, n: u16) -> io::Result<()> {
        for _ in 0..n {
            self.wait()?;
        }
        Ok(())
    }

    #[inline]
    fn post_n(&self, n: u16) -> io::Result<()> {
        for _ in 0..n {
            self.post()?;
        }
        Ok(())
    }
}

impl Drop for PosixSem {
    fn drop(&mut self) {
        // SAFETY: `self.sem` came from `sem_open` and is closed exactly once, here.
        unsafe { libc::sem_close(self.sem) };
        if self.owner {
            // SAFETY: `self.name` is a valid NUL-terminated string.
            unsafe { libc::sem_unlink(self.name.as_ptr()) };
        }
    }
}

/// A POSIX semaphore name that no handle of this process keeps open; unlinked on drop.
#[derive(Debug)]
pub struct PosixName {
    name: CString,
}

impl PosixName {
    /// The name, for `sem_open`.
    pub fn as_c_str(&self) -> &CStr {
        &self.name
    }
}

impl Drop for PosixName {
    fn drop(&mut self) {
        // SAFETY: `self.name` is a valid NUL-terminated string.
        unsafe { libc::sem_unlink(self.name.as_ptr()) };
    }
}

// ===== SysV =====

/// One SysV semaphore (a set of one), used with `SEM_UNDO` so that the kernel gives back what a
/// dead process held.
#[derive(Debug)]
pub struct SysvSem {
    id: libc::c_int,
    key: libc::key_t,
    /// Remove the set on drop: this handle created it.
    owner: bool,
}

impl SysvSem {
    /// Create a new set of one semaphore with `value` available, under a fresh key (so that
    /// [`SysvSem::lookup`] can find it); the handle owns it.
    pub fn create(value: u16) -> io::Result<SysvSem> {
        let mut seed = std::process::id() as u64 ^ nanos_now();
        for _ in 0..64 {
            // xorshift: a key nobody else is likely to use; `IPC_EXCL` makes sure.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let key = (seed as u32 & 0x7FFF_FFFF) as libc::key_t;
            if key == libc::IPC_PRIVATE {
                continue;
            }
            // SAFETY: plain system call on integers.
            let id = unsafe { libc::semget(key, 1, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
            if id == -1 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EEXIST) {
                    continue;
                }
                return Err(e);
            }
            let sem = SysvSem {
                id,
                key,
                owner: true,
            };
            // A new set starts at 0: bring it up to `value` without SEM_UNDO, so that the
            // initial value is not charged to this process. (`semctl(SETVAL)` would need the
            // variadic `union semun`.) On error, `sem` is dropped and the set removed.
            if value > 0 {
                sem.op(sem_delta(value)?, 0)?;
            }
            return Ok(sem);
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free SysV key after 64 tries",
        ))
    }

    /// Use the existing set `id` (from another process); dropping the handle removes nothing.
    pub fn attach(id: libc::c_int) -> SysvSem {
        SysvSem {
            id,
            key: libc::IPC_PRIVATE,
            owner: false,
        }
    }

    /// The set's id, valid in every process.
    pub fn id(&self) -> libc::c_int {
        self.id
    }

    /// The key the set was created under.
    pub fn key(&self) -> libc::key_t {
        self.key
    }

    /// `semget` of an existing key: the cost of opening a SysV semaphore.
    pub fn lookup(key: libc::key_t) -> io::Result<libc::c_int> {
        // SAFETY: plain system call on integers.
        let id = unsafe { libc::semget(key, 1, 0) };
        if id == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(id)
    }

    /// One `semop` of `delta` with `flags`.
    #[inline]
    fn op(&self, delta: i16, flags: libc::c_int) -> io::Result<()> {
        let mut sop = libc::sembuf {
            sem_num: 0,
            sem_op: delta,
            sem_flg: flags as libc::c_short,
        };
        // SAFETY: `sop` is one valid `sembuf` that outlives the call.
        retry_eintr(|| unsafe { libc::semop(self.id, &mut sop, 1) })
    }

    /// `semop` of `delta` with `SEM_UNDO | IPC_NOWAIT`; `Ok(false)` if it would block.
    #[inline]
    fn try_op(&self, delta: i16) -> io::Result<bool> {
        let mut sop = libc::sembuf {
            sem_num: 0,
            sem_op: delta,
            sem_flg: (libc::SEM_UNDO | libc::IPC_NOWAIT) as libc::c_short,
        };
        // SAFETY: `sop` is one valid `sembuf` that outlives the call.
        retry_eintr_or(libc::EAGAIN, || unsafe {
            libc::semop(self.id, &mut sop, 1)
        })
    }
}

impl KernelSem for SysvSem {
    #[inline]
    fn wait(&self) -> io::Result<()> {
        self.op(-1, libc::SEM_UNDO)
    }

    #[inline]
    fn try_wait(&self) -> io::Result<bool> {
        self.try_op(-1)
    }

    #[inline]
    fn timed_wait(&self, timeout: Duration) -> io::Result<bool> {
        let mut sop = libc::sembuf {
            sem_num: 0,
            sem_op: -1,
            sem_flg: libc::SEM_UNDO as libc::c_short,
        };
        let rel = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // libc has no `semtimedop` wrapper: call the system call. Its timeout is relative.
        // SAFETY: the arguments are the set id, one valid `sembuf`, its count and a valid
        // `timespec`, all outliving the call, as `semtimedop(2)` expects.
        retry_eintr_or(libc::EAGAIN, || unsafe {
            libc::syscall(
                libc::SYS_semtimedop,
                self.id,
                &mut sop as *mut libc::sembuf,
                1 as libc::size_t,
                &rel as *const libc::timespec,
            ) as libc::c_int
        })
    }

    #[inline]
    fn post(&self) -> io::Result<()> {
        self.op(1, libc::SEM_UNDO)
    }

    #[inline]
    fn wait_n(&self, n: u16) -> io::Result<()> {
        self.op(-sem_delta(n)?, libc::SEM_UNDO)
    }

    #[inline]
    fn post_n(&self, n: u16) -> io::Result<()> {
        self.op(sem_delta(n)?, libc::SEM_UNDO)
    }
}

/// `n` as a `sem_op`, which is a `short`.
#[inline]
fn sem_delta(n: u16) -> io::Result<i16> {
    i16::try_from(n).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "weight over 32767"))
}

impl Drop for SysvSem {
    fn drop(&mut self) {
        if self.owner {
            // SAFETY: plain system call on integers; `IPC_RMID` reads no fourth argument.
            unsafe { libc::semctl(self.id, 0, libc::IPC_RMID) };
        }
    }
}

fn nanos_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
