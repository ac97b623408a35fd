//! The parent's side of the multi-process scenarios: creating the semaphores that helpers open,
//! and killing a holder while waiting for what it holds.
//!
//! Shared by `shmsem bench` and the criterion benches (included with `#[path]`, next to
//! `peers.rs`, `procs.rs` and `roles.rs`).

use std::time::Duration;

use anyhow::{Context, bail};
use shmsem::Semaphore;

use super::{
    peers::{KernelSem, PosixSem, SysvSem, unique_posix_name},
    procs,
    roles::{self, Impl, Role},
};

/// How long a helper may take to start and answer its first line.
pub const START: Duration = Duration::from_secs(10);

/// Get or create `name` in `namespace` (in `SHMSEM_DIR`), persistent, with `capacity`.
pub fn shmsem_sem(namespace: &str, name: &str, capacity: u32) -> anyhow::Result<Semaphore> {
    Semaphore::options()
        .namespace(namespace)
        .capacity(capacity)
        .persistent()
        .open(name)
        .with_context(|| format!("creating shmsem semaphore {namespace}/{name}"))
}

/// The same number of semaphores, of the same capacity, for each implementation, and how helpers
/// name them. Dropping it removes the kernel ones.
#[derive(Debug)]
pub struct Sems {
    /// shmsem's.
    pub shmsem: Vec<Semaphore>,
    /// POSIX's.
    pub posix: Vec<PosixSem>,
    /// SysV's.
    pub sysv: Vec<SysvSem>,
    specs: [Vec<String>; 3],
}

impl Sems {
    /// `count` semaphores of `capacity` each, all available; shmsem's in `namespace`.
    pub fn create(namespace: &str, count: usize, capacity: u16) -> anyhow::Result<Sems> {
        let mut s = Sems {
            shmsem: Vec::new(),
            posix: Vec::new(),
            sysv: Vec::new(),
            specs: Default::default(),
        };
        for i in 0..count {
            let name = format!("s{i}");
            s.shmsem
                .push(shmsem_sem(namespace, &name, capacity.into())?);
            s.specs[0].push(format!("{namespace}/{name}"));
            let px = PosixSem::create(&unique_posix_name(namespace), capacity.into())
                .context("sem_open")?;
            s.specs[1].push(px.name().to_owned());
            s.posix.push(px);
            let sv = SysvSem::create(capacity).context("semget")?;
            s.specs[2].push(sv.id().to_string());
            s.sysv.push(sv);
        }
        Ok(s)
    }

    /// How a helper names `imp`'s semaphores (see `roles`).
    pub fn specs(&self, imp: Impl) -> &[String] {
        &self.specs[imp as usize]
    }

    /// Post every kernel semaphore once: what frees the parent if a helper died.
    pub fn unblock(&self) {
        for p in &self.posix {
            let _ = p.post();
        }
        for v in &self.sysv {
            let _ = v.post();
        }
    }
}

/// Start a holder of `spec` (one semaphore of capacity 1), wait until it holds, then, while
/// `acquire` waits for the semaphore in this thread, SIGKILL the holder from another thread after
/// `delay`. `acquire` returns the `procs::mono_ns` time at which it got the permit (and gives it
/// back). The time from the kill to that moment.
pub fn kill_holder(
    helper_args: &[&str],
    imp: Impl,
    spec: &[String],
    delay: Duration,
    acquire: impl FnOnce() -> anyhow::Result<u64>,
) -> anyhow::Result<Duration> {
    let mut holder = roles::spawn(Role::Holder, imp, spec, helper_args)?;
    holder.expect("held", START)?;
    let pid = holder.pid();
    let (acquired, killed_at) = std::thread::scope(|s| {
        let killer = s.spawn(move || {
            std::thread::sleep(delay);
            let at = procs::mono_ns();
            procs::sigkill(pid);
            at
        });
        let acquired = acquire();
        (acquired, killer.join())
    });
    holder.kill();
    let acquired_at = acquired?;
    let Ok(killed_at) = killed_at else {
        bail!("the killer thread panicked");
    };
    if acquired_at < killed_at {
        bail!(
            "{} granted the permit while its holder was still alive",
            imp.as_str()
        );
    }
    Ok(Duration::from_nanos(acquired_at - killed_at))
}

/// A small xorshift generator: kill delays need spread, not quality.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from the clock.
    pub fn seeded() -> Rng {
        Rng(procs::mono_ns() | 1)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}
