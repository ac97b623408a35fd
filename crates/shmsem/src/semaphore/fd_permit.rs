//! Weight held by an open file description rather than by a process: what `shmsem run` holds
//! for its command, as `flock(1)`'s lock belongs to the descriptor the command inherits.
//!
//! The holding lives in a process slot of its own, registered through a new open file
//! description of the namespace's segment file (see `Namespace::register_description`): the slot
//! is alive for as long as any process has that description open. The process that acquired
//! operates the slot's record; it hands the description to a command, which keeps the slot
//! alive after that process is gone, and the weight comes back when the last process that has
//! the description exits (or when [`FdPermit`] is dropped, whichever is first).

use std::{
    fs::File,
    os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd},
    sync::atomic::Ordering::Relaxed,
    time::Duration,
};

use super::{
    Contended, Semaphore, Until,
    acquire::{Attempt, take_once},
};
use crate::{
    error::{Error, Result},
    holders::{self, Ctx},
    namespace::with_lane,
    protocol::Refused,
    sys,
    table::Found,
};

/// Weight held for as long as some process has an open file description: the permit's own, or
/// a copy a child process inherited (see [`FdPermit::descriptor`]).
///
/// Dropping it gives the weight back at once, even while children still have the description
/// open. If this process dies without dropping it, the weight stays held until every process
/// that has the description has exited or closed it. In a forked child, dropping it does
/// nothing.
///
/// # Examples
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("shmsem-doc-fd-{}", std::process::id()));
/// # // SAFETY: set before this example starts any thread.
/// # unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
/// use std::{os::fd::AsRawFd, os::unix::process::CommandExt, process::Command};
/// let sem = shmsem::Semaphore::open("build", shmsem::Scope::Local)?;
/// let permit = sem.acquire_fd(1, None)?;
/// let fd = permit.descriptor().as_raw_fd();
/// let mut cmd = Command::new("true");
/// // SAFETY: the closure only calls fcntl, which is async-signal-safe.
/// unsafe { cmd.pre_exec(move || shmsem::FdPermit::inherit(fd)) };
/// let status = cmd.status().expect("running true");
/// assert!(status.success());
/// drop(permit);
/// # Ok::<(), shmsem::Error>(())
/// ```
#[must_use = "the weight is given back as soon as the permit is dropped"]
pub struct FdPermit {
    sem: Semaphore,
    file: File,
    slot: u32,
    slot_gen: u32,
    weight: u32,
    found: Found,
    life: u64,
    /// The fork epoch it was made in.
    epoch: u32,
}

impl Semaphore {
    /// Acquire `weight` for an open file description that child processes can inherit (see
    /// [`FdPermit`]). `timeout` `None` waits forever; zero tries once.
    pub fn acquire_fd(&self, weight: u32, timeout: Option<Duration>) -> Result<FdPermit> {
        if let Some(c) = self.as_cluster() {
            return Err(c.unsupported("holding for another process or through a descriptor"));
        }
        let until = match timeout {
            None => Until::Forever,
            Some(d) if d.is_zero() => Until::Now,
            Some(d) => Until::Timeout(d),
        }
        .start();
        let (file, slot, slot_gen) = self.inner.ns.register_description()?;
        let mut permit = FdPermit {
            sem: self.clone(),
            file,
            slot,
            slot_gen,
            weight: 0,
            found: self.found(),
            life: 0,
            epoch: sys::FORK_EPOCH.load(Relaxed),
        };
        let mut at = self.current();
        // Counted once in the semaphore's waits, however many rounds it takes.
        let mut slept = false;
        for _ in 0..super::RECREATE_TRIES {
            let outcome = self.take_into(
                at,
                weight,
                until,
                |fair| permit.take(weight, at, fair),
                &mut slept,
            );
            match outcome {
                Ok(()) => {
                    (permit.found, permit.life, permit.weight) = (at.0, at.1, weight);
                    return Ok(permit);
                }
                Err(Contended::Failed(e)) => return Err(e),
                Err(Contended::Moved) => unreachable!("the permit's own slot never moves"),
                Err(Contended::Removed) => at = with_lane(|lane| self.recreate(at, lane, until))?,
            }
        }
        Err(self.removed())
    }
}

impl FdPermit {
    /// The weight held.
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// The open file description that holds the weight. It is close-on-exec; a child that is
    /// to inherit the holding calls [`FdPermit::inherit`] with its number between `fork` and
    /// `exec`.
    pub fn descriptor(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// In a child between `fork` and `exec` (for example in `CommandExt::pre_exec`): let the
    /// command inherit descriptor `fd`, so that the holding lasts as long as the command does.
    /// Async-signal-safe.
    pub fn inherit(fd: RawFd) -> std::io::Result<()> {
        sys::keep_across_exec(fd)
    }

    /// Show process `pid` as the holder (for example the command the description was handed
    /// to), in `show`, `ps` and `info`.
    pub fn show_as(&self, pid: u32) -> Result<()> {
        let who = sys::identity(pid)
            .map_err(|e| Error::io(format!("looking up process {pid}"), e))?
            .ok_or_else(|| Error::invalid(format!("there is no process {pid}")))?;
        holders::set_identity(self.ctx(), self.slot, who);
        Ok(())
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            seg: &self.sem.inner.ns.seg,
            fd: self.file.as_fd(),
            me: Some(self.slot),
            acting: &[],
        }
    }

    /// The slot's record on `found` in incarnation `life`, found or claimed; `None` once that
    /// incarnation is over.
    fn record(&self, at: (Found, u64)) -> Result<Option<u32>> {
        self.sem
            .slot_record(self.ctx(), self.slot, self.slot_gen, at)
    }

    /// One attempt to take `weight` into the slot's record.
    fn take(&self, weight: u32, at: (Found, u64), fair: u32) -> Attempt {
        let index = match self.record(at) {
            Ok(Some(index)) => index,
            Ok(None) => return Attempt::Refused(Refused::Removed),
            Err(_) => return Attempt::Refused(Refused::Contended),
        };
        let Some(h) = self.sem.inner.ns.seg.holder(index) else {
            return Attempt::Refused(Refused::Contended);
        };
        let rec = self.sem.rec(at.0);
        take_once(rec, h, at.0.generation, weight, fair).into()
    }
}

impl std::fmt::Debug for FdPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FdPermit")
            .field("semaphore", &self.sem.name())
            .field("weight", &self.weight)
            .field("descriptor", &self.file.as_raw_fd())
            .finish()
    }
}

impl Drop for FdPermit {
    fn drop(&mut self) {
        if self.epoch != sys::FORK_EPOCH.load(Relaxed) {
            // A forked child: the weight is the description's, and the parent's to give back.
            return;
        }
        if self.weight > 0
            && let Ok(Some(index)) = self.record((self.found, self.life))
            && let Some(h) = self.sem.inner.ns.seg.holder(index)
        {
            // An error means the segment was corrupted under us; the weight then comes back
            // when the description is closed everywhere.
            if self.sem.give_on(self.found, h, self.weight).is_err() {
                return;
            }
        }
        holders::free_slot(self.ctx(), self.slot);
        holders::unlock_slot(self.ctx(), self.slot);
    }
}
