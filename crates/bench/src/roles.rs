//! The multi-process protocols, both sides: what a helper process does in its role, and the
//! parent's half of the ping-pong.
//!
//! A helper is the current executable started again with [`procs::ROLE_ENV`] naming its role,
//! [`IMPL_ENV`] the implementation (`shmsem`, `posix` or `sysv`) and [`SEMS_ENV`] the semaphores
//! it opens, comma-separated: `NAMESPACE/NAME` for shmsem (in the inherited `SHMSEM_DIR`), the
//! name for POSIX, the set id for SysV. The parent creates every semaphore; helpers only open.
//! Helpers talk on stdin/stdout, one line at a time:
//!
//! | role | protocol |
//! |---|---|
//! | `pingpong` | takes semaphore 2, says `ready`, then plays [`pingpong_rounds`]' other side until killed |
//! | `worker` | reads `window START END` (monotonic ns) and answers `COUNT CPU_NS`: the critical sections it completed in that window and the CPU time it used meanwhile; or reads `count N` and answers `done` after N; exits at end of input |
//! | `holder` | takes semaphore 0, says `held`, and keeps it until killed (or end of input) |
//! | `waiter` | says `waiting`, then waits for semaphore 0 (which the parent keeps full) until killed |
//!
//! Shared by `shmsem bench` and the criterion benches (included with `#[path]`, next to
//! `peers.rs` and `procs.rs`).

use std::{
    io::{BufRead, Write},
    sync::atomic::{AtomicBool, Ordering::Relaxed},
};

use anyhow::{Context, bail};
use shmsem::{Permit, Semaphore};

use super::{
    peers::{KernelSem, PosixSem, SysvSem},
    procs::{self, Helper},
};

/// The environment variable naming a helper's implementation.
pub const IMPL_ENV: &str = "SHMSEM_BENCH_IMPL";
/// The environment variable listing a helper's semaphores.
pub const SEMS_ENV: &str = "SHMSEM_BENCH_SEMS";

/// Which semaphore implementation. The discriminant is its index in tables of three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    /// This crate.
    Shmsem = 0,
    /// POSIX named semaphores.
    Posix = 1,
    /// SysV semaphores with `SEM_UNDO`.
    Sysv = 2,
}

impl Impl {
    /// The three, in table order.
    pub const ALL: [Impl; 3] = [Impl::Shmsem, Impl::Posix, Impl::Sysv];

    /// `shmsem`, `posix` or `sysv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Impl::Shmsem => "shmsem",
            Impl::Posix => "posix",
            Impl::Sysv => "sysv",
        }
    }

    fn parse(s: &str) -> anyhow::Result<Impl> {
        Impl::ALL
            .into_iter()
            .find(|i| i.as_str() == s)
            .with_context(|| format!("{IMPL_ENV}={s:?} is not shmsem, posix or sysv"))
    }
}

/// What a helper process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The other side of the ping-pong.
    PingPong,
    /// One of the contending processes.
    Worker,
    /// A holder that the parent kills.
    Holder,
    /// A process blocked on a full semaphore, watched while idle.
    Waiter,
}

impl Role {
    const ALL: [Role; 4] = [Role::PingPong, Role::Worker, Role::Holder, Role::Waiter];

    /// The value of [`procs::ROLE_ENV`].
    pub fn as_str(self) -> &'static str {
        match self {
            Role::PingPong => "pingpong",
            Role::Worker => "worker",
            Role::Holder => "holder",
            Role::Waiter => "waiter",
        }
    }
}

/// Start a helper in `role` on `sems` (see the module docs for their spelling). `args` are the
/// command-line arguments that lead the executable to [`requested`]: `["bench", "--quick"]` for
/// `shmsem`, none for the criterion benches.
pub fn spawn(role: Role, imp: Impl, sems: &[String], args: &[&str]) -> anyhow::Result<Helper> {
    Helper::spawn(
        args,
        &[
            (procs::ROLE_ENV, role.as_str().to_owned()),
            (IMPL_ENV, imp.as_str().to_owned()),
            (SEMS_ENV, sems.join(",")),
        ],
        format!("the {} {} helper", imp.as_str(), role.as_str()),
    )
}

/// If this process was started as a helper, play its role and return its outcome; `None` for an
/// ordinary start. Call it first thing, before any thread exists.
pub fn requested() -> Option<anyhow::Result<()>> {
    let role = std::env::var(procs::ROLE_ENV).ok()?;
    Some(run_role(&role))
}

fn run_role(role: &str) -> anyhow::Result<()> {
    die_with_parent()?;
    let role = Role::ALL
        .into_iter()
        .find(|r| r.as_str() == role)
        .with_context(|| format!("{}={role:?} is not a helper role", procs::ROLE_ENV))?;
    let imp = Impl::parse(&std::env::var(IMPL_ENV).unwrap_or_default())?;
    let list = std::env::var(SEMS_ENV).with_context(|| format!("{SEMS_ENV} is not set"))?;
    let specs: Vec<&str> = list.split(',').filter(|s| !s.is_empty()).collect();
    match imp {
        Impl::Shmsem => {
            let sems = specs
                .iter()
                .map(|spec| {
                    if spec.starts_with("cluster@") {
                        return crate::cluster::open_spec(spec);
                    }
                    let (ns, name) = spec
                        .split_once('/')
                        .with_context(|| format!("{spec:?} is not NAMESPACE/NAME"))?;
                    Semaphore::options()
                        .namespace(ns)
                        .open_existing(name)
                        .with_context(|| format!("opening {spec}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            act(role, &mut ShmsemLocks::new(&sems))
        }
        Impl::Posix => {
            let sems = specs
                .iter()
                .map(|name| PosixSem::open(name).with_context(|| format!("sem_open {name}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            act(role, &mut KernelLocks::new(&sems))
        }
        Impl::Sysv => {
            let sems = specs
                .iter()
                .map(|id| {
                    id.parse()
                        .map(SysvSem::attach)
                        .with_context(|| format!("{id:?} is not a SysV id"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            act(role, &mut KernelLocks::new(&sems))
        }
    }
}

/// Be killed when the parent dies, and stop at once if it already has. (The death signal
/// follows the parent *thread* that started us: helpers are started from the main thread.)
fn die_with_parent() -> anyhow::Result<()> {
    // SAFETY: `PR_SET_PDEATHSIG` takes one integer argument, a signal number.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) } == -1 {
        return Err(std::io::Error::last_os_error()).context("prctl(PR_SET_PDEATHSIG)");
    }
    if let Ok(parent) = std::env::var(procs::PARENT_ENV) {
        // SAFETY: plain system call without arguments.
        let ppid = unsafe { libc::getppid() };
        if parent.parse::<libc::pid_t>().ok() != Some(ppid) {
            bail!("the parent process {parent} is gone");
        }
    }
    Ok(())
}

fn act<L: Locks>(role: Role, locks: &mut L) -> anyhow::Result<()> {
    match role {
        Role::PingPong => pingpong_peer(locks),
        Role::Worker => worker(locks),
        Role::Holder => holder(locks),
        Role::Waiter => waiter(locks),
    }
}

fn say(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .context("writing to the parent")
}

// ===== the locks, uniformly =====

/// Semaphores of capacity 1 used as locks: what the multi-process protocols need. A process
/// only releases what it acquired itself (shmsem permits belong to their holder; SysV
/// `SEM_UNDO` adjustments stay balanced).
pub trait Locks {
    /// Take semaphore `i`, waiting as long as it takes.
    fn acquire(&mut self, i: usize) -> anyhow::Result<()>;
    /// Give semaphore `i` back.
    fn release(&mut self, i: usize) -> anyhow::Result<()>;
}

/// shmsem semaphores, with the permits this process holds.
#[derive(Debug)]
pub struct ShmsemLocks<'a> {
    sems: &'a [Semaphore],
    held: Vec<Option<Permit<'a>>>,
}

impl<'a> ShmsemLocks<'a> {
    /// Locks over `sems`, none held.
    pub fn new(sems: &'a [Semaphore]) -> Self {
        ShmsemLocks {
            sems,
            held: sems.iter().map(|_| None).collect(),
        }
    }
}

impl Locks for ShmsemLocks<'_> {
    #[inline]
    fn acquire(&mut self, i: usize) -> anyhow::Result<()> {
        let (Some(sem), Some(slot)) = (self.sems.get(i), self.held.get_mut(i)) else {
            bail!("no semaphore {i}");
        };
        *slot = Some(sem.acquire()?);
        Ok(())
    }

    #[inline]
    fn release(&mut self, i: usize) -> anyhow::Result<()> {
        match self.held.get_mut(i).and_then(Option::take) {
            Some(permit) => {
                drop(permit);
                Ok(())
            }
            None => bail!("semaphore {i} is not held"),
        }
    }
}

/// Kernel semaphores: acquire is a wait, release a post.
#[derive(Debug)]
pub struct KernelLocks<'a, S> {
    sems: &'a [S],
}

impl<'a, S: KernelSem> KernelLocks<'a, S> {
    /// Locks over `sems`.
    pub fn new(sems: &'a [S]) -> Self {
        KernelLocks { sems }
    }

    fn sem(&self, i: usize) -> anyhow::Result<&'a S> {
        self.sems
            .get(i)
            .with_context(|| format!("no semaphore {i}"))
    }
}

impl<S: KernelSem> Locks for KernelLocks<'_, S> {
    #[inline]
    fn acquire(&mut self, i: usize) -> anyhow::Result<()> {
        Ok(self.sem(i)?.wait()?)
    }

    #[inline]
    fn release(&mut self, i: usize) -> anyhow::Result<()> {
        Ok(self.sem(i)?.post()?)
    }
}

// ===== ping-pong =====

// Three locks L0, L1, L2 (a semaphore cannot be released by a process that does not hold it, so
// two would not do: the side that just released one could take it straight back). Before round
// i, the parent holds L(i) and L(i+1), the helper L(i+2) (indices mod 3). In round i the parent
// releases L(i) and acquires L(i+2); the helper acquires L(i), then releases L(i+2). So each
// round is one hand-off each way, a round trip, and strict alternation follows: the parent gets
// L(i+2) only after the helper got L(i), and the helper gets L(i+1) only after the parent got
// L(i+2). The parent starts holding L0 and L1; the helper takes L2 before it says `ready`.

/// The parent's side: play `rounds` rounds from round `*next`, stopping early once `stop` is
/// raised.
#[inline]
pub fn pingpong_rounds<L: Locks>(
    locks: &mut L,
    next: &mut u64,
    rounds: u64,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    for _ in 0..rounds {
        let i = (*next % 3) as usize;
        locks.release(i)?;
        locks.acquire((i + 2) % 3)?;
        *next += 1;
        if stop.load(Relaxed) {
            bail!("stopped");
        }
    }
    Ok(())
}

/// The parent's starting position: L0 and L1 held.
pub fn pingpong_start<L: Locks>(locks: &mut L) -> anyhow::Result<()> {
    locks.acquire(0)?;
    locks.acquire(1)
}

fn pingpong_peer<L: Locks>(locks: &mut L) -> anyhow::Result<()> {
    locks.acquire(2)?;
    say("ready")?;
    for round in 0u64.. {
        let i = (round % 3) as usize;
        locks.acquire(i)?;
        locks.release((i + 2) % 3)?;
    }
    Ok(())
}

// ===== contention =====

/// The tiny critical section of `contended4`: a few dependent multiplications, about 30 ns.
#[inline]
pub fn critical_section(x: &mut u64) {
    for _ in 0..16 {
        *x = std::hint::black_box(
            x.wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407),
        );
    }
}

fn worker<L: Locks>(locks: &mut L) -> anyhow::Result<()> {
    let mut x = std::process::id() as u64;
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading a command")?;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["window", start, end] => {
                let (start, end): (u64, u64) = (start.parse()?, end.parse()?);
                procs::sleep_until_ns(start);
                let cpu_start = procs::cpu_ns();
                let mut done = 0u64;
                'window: loop {
                    for _ in 0..16 {
                        locks.acquire(0)?;
                        critical_section(&mut x);
                        locks.release(0)?;
                        done += 1;
                    }
                    if procs::mono_ns() >= end {
                        break 'window;
                    }
                }
                say(&format!(
                    "{done} {}",
                    procs::cpu_ns().saturating_sub(cpu_start)
                ))?;
            }
            ["count", n] => {
                let n: u64 = n.parse()?;
                for _ in 0..n {
                    locks.acquire(0)?;
                    critical_section(&mut x);
                    locks.release(0)?;
                }
                say("done")?;
            }
            _ => bail!("unknown worker command {line:?}"),
        }
    }
    Ok(())
}

// ===== reclaim =====

fn holder<L: Locks>(locks: &mut L) -> anyhow::Result<()> {
    locks.acquire(0)?;
    say("held")?;
    // Keep it until killed; end of input (the parent is gone) also ends it.
    let mut sink = String::new();
    while std::io::stdin().lock().read_line(&mut sink)? > 0 {
        sink.clear();
    }
    locks.release(0)
}

// ===== idle =====

fn waiter<L: Locks>(locks: &mut L) -> anyhow::Result<()> {
    say("waiting")?;
    // The parent keeps the semaphore full: this waits until the process is killed.
    locks.acquire(0)?;
    say("acquired")?;
    wait_for_end_of_input();
    locks.release(0)
}

/// Block until end of input (the parent is gone, or closed our stdin).
fn wait_for_end_of_input() {
    let mut sink = String::new();
    while std::io::stdin()
        .lock()
        .read_line(&mut sink)
        .is_ok_and(|n| n > 0)
    {
        sink.clear();
    }
}
