//! Pinning to CPUs with `sched_setaffinity`: which CPUs this process may use, and putting a
//! thread (this one, or a helper process's) on exactly one of them.
//!
//! Timed scenarios run pinned so that a measurement is never split across CPUs by a migration,
//! and so that multi-process scenarios can say whether their processes shared a CPU.
//!
//! This file depends on nothing but `std` and `libc`: the criterion benches include it with
//! `#[path]` as well as `shmsem bench`.

use std::io;

/// The CPUs this thread may run on, lowest first (at least one).
pub fn allowed() -> io::Result<Vec<usize>> {
    // SAFETY: an all-zero `cpu_set_t` is a valid, empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is valid and writable for `size_of::<cpu_set_t>()` bytes; pid 0 is this
    // thread.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, the size of the set.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect();
    if cpus.is_empty() {
        return Err(io::Error::other("sched_getaffinity returned no CPU"));
    }
    Ok(cpus)
}

/// Where the benchmark puts its processes: `main` for this process's measuring thread (the
/// highest allowed CPU, usually the one that handles fewest interrupts) and `other`, a
/// different CPU for cross-CPU scenarios if there is one.
#[derive(Debug, Clone)]
pub struct Cpus {
    /// Every CPU allowed, lowest first.
    pub all: Vec<usize>,
    /// The measuring thread's CPU.
    pub main: usize,
    /// Another CPU, if this process may use more than one.
    pub other: Option<usize>,
}

impl Cpus {
    /// Look at the allowed CPUs and choose.
    pub fn choose() -> io::Result<Cpus> {
        let all = allowed()?;
        let main = *all.last().unwrap_or(&0);
        let other = all.iter().copied().find(|&c| c != main);
        Ok(Cpus { all, main, other })
    }

    /// The CPU of the `i`-th of several processes spread over every allowed CPU.
    pub fn spread(&self, i: usize) -> usize {
        self.all[i % self.all.len()]
    }
}

/// Pin thread `tid` (0: the calling thread; a helper's pid: its main thread) to `cpu`.
pub fn pin(tid: libc::pid_t, cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("CPU {cpu} is beyond CPU_SETSIZE"),
        ));
    }
    // SAFETY: an all-zero `cpu_set_t` is a valid, empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE (checked above).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid set of `size_of::<cpu_set_t>()` bytes for the whole call.
    let r = unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
