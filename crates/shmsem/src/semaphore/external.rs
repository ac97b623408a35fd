//! Acting for another process: `shmsem acquire --holder PID` and `shmsem release --holder PID`.
//!
//! The weight is recorded in an *external* process slot keyed by the holder's pid and start
//! time; the holder is judged alive by pid and start time (see `holders`). This process takes
//! the slot's lock byte only for the moment it changes the slot's record, never while it waits:
//! two CLI processes acting for the same shell take turns, and a reclaimer never races them.
//!
//! A waiting `acquire --holder` counts and shows itself as a waiter in *its own* holder record,
//! not in the holder's: it is the process that waits, and if it is killed its slot is dead, so
//! the next recount forgets its count. When the weight is there, it takes it into the holder's
//! record under the slot lock, then uncounts itself.

use std::{sync::atomic::Ordering::Acquire, time::Duration};

use super::{
    Contended, Semaphore, Until,
    acquire::{Attempt, take_once},
};
use crate::{
    error::{Error, Result},
    holders,
    namespace::with_lane,
    protocol::{Refused, holding},
    sys,
    table::Found,
    wait::Monotonic,
};

/// How long `release_for` waits for another process acting for the same holder to let go of
/// the holder's slot. Acting processes hold it only for a compare-exchange and two stores.
const SLOT_PATIENCE: Duration = Duration::from_secs(5);

impl Semaphore {
    /// Acquire `weight` on behalf of process `pid` (for example a shell that runs
    /// `shmsem acquire`): the weight stays held until [`release_for`](Self::release_for) or until
    /// that process exits. `timeout` `None` waits forever; zero tries once.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("shmsem-doc-for-{}", std::process::id()));
    /// # // SAFETY: set before this example starts any thread.
    /// # unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
    /// use std::time::Duration;
    /// let sem = shmsem::Semaphore::options().capacity(2).open("for-parent")?;
    /// let parent = std::os::unix::process::parent_id();
    /// sem.acquire_for(parent, 1, Some(Duration::ZERO))?;
    /// assert_eq!(sem.info()?.value, 1);
    /// sem.release_for(parent, 1)?;
    /// # Ok::<(), shmsem::Error>(())
    /// ```
    pub fn acquire_for(&self, pid: u32, weight: u32, timeout: Option<Duration>) -> Result<()> {
        if let Some(c) = self.as_cluster() {
            return Err(c.unsupported("holding for another process or through a descriptor"));
        }
        let until = match timeout {
            None => Until::Forever,
            Some(d) if d.is_zero() => Until::Now,
            Some(d) => Until::Timeout(d),
        }
        .start();
        may_act_for(pid)?;
        let mut at = self.current();
        // Counted once in the semaphore's waits, however many rounds it takes.
        let mut slept = false;
        // Bounded: each round re-creates a removed semaphore or finds a freed slot again.
        for _ in 0..2 * super::RECREATE_TRIES {
            let (slot, slot_gen) = self.external_slot(pid, until.lock_deadline())?;
            let outcome = self.take_into(
                at,
                weight,
                until,
                |fair| self.take_external(slot, slot_gen, at, weight, fair),
                &mut slept,
            );
            match outcome {
                Ok(()) => return Ok(()),
                Err(Contended::Moved) => {}
                Err(Contended::Failed(e)) => {
                    // A holder that holds nothing keeps no slot.
                    self.free_external(slot);
                    return Err(e);
                }
                Err(Contended::Removed) => at = with_lane(|lane| self.recreate(at, lane, until))?,
            }
        }
        Err(self.removed())
    }

    /// Free external slot `slot` if it holds nothing, when its lock byte is free now.
    fn free_external(&self, slot: u32) {
        let now = Some(Monotonic::now());
        let _ = self
            .inner
            .ns
            .with_slot_lock(slot, now, |ctx| Ok(holders::free_if_empty(ctx, slot)));
    }

    /// One attempt to take `weight` into the record of external slot `slot`, under its lock.
    fn take_external(
        &self,
        slot: u32,
        slot_gen: u32,
        (found, life): (Found, u64),
        weight: u32,
        fair: u32,
    ) -> Attempt {
        let now = Some(Monotonic::now());
        let taken = self.inner.ns.with_slot_lock(slot, now, |ctx| {
            match holders::external_state(ctx, slot, slot_gen) {
                holders::External::Alive => {}
                holders::External::HolderDead => return Err(holder_gone()),
                holders::External::Moved => return Ok(Attempt::Moved),
            }
            let Some(index) = self.slot_record(ctx, slot, slot_gen, (found, life))? else {
                return Ok(Attempt::Refused(Refused::Removed));
            };
            let h = ctx
                .seg
                .holder(index)
                .ok_or_else(|| Error::corrupt("record out of bounds"))?;
            let rec = self.rec(found);
            Ok(take_once(rec, h, found.generation, weight, fair).into())
        });
        match taken {
            Ok(Some(a)) => a,
            Ok(None) => Attempt::Busy,
            Err(e) => Attempt::Failed(e),
        }
    }

    /// Give back `count` of what process `pid` holds through [`acquire_for`](Self::acquire_for);
    /// [`Error::NotHeld`] if it holds less, and nothing changes then.
    pub fn release_for(&self, pid: u32, count: u32) -> Result<()> {
        if let Some(c) = self.as_cluster() {
            return Err(c.unsupported("holding for another process or through a descriptor"));
        }
        if count == 0 {
            return Err(Error::invalid("release count 0; give back at least 1"));
        }
        may_act_for(pid)?;
        let (found, life) = self.current();
        let deadline = Monotonic::now().after(SLOT_PATIENCE);
        // Bounded: each round found the slot freed (it held nothing) and looks again.
        for _ in 0..4 {
            let (slot, slot_gen) = self.external_slot(pid, Some(deadline))?;
            let done = self.inner.ns.with_slot_lock(slot, Some(deadline), |ctx| {
                match holders::external_state(ctx, slot, slot_gen) {
                    holders::External::Alive => {}
                    holders::External::HolderDead => return Err(holder_gone()),
                    holders::External::Moved => return Ok(None),
                }
                let held = match self.slot_record(ctx, slot, slot_gen, (found, life))? {
                    Some(index) => ctx
                        .seg
                        .holder(index)
                        .map(|h| (h, holding::held(h.holding.load(Acquire)))),
                    None => None,
                };
                let out = match held {
                    Some((h, held)) if held >= count as i64 => self.give_on(found, h, count),
                    other => Err(Error::NotHeld {
                        count,
                        held: other.map_or(0, |(_, held)| held.max(0) as u64),
                    }),
                };
                // A holder that holds nothing any more keeps no slot.
                holders::free_if_empty(ctx, slot);
                out.map(Some)
            })?;
            match done {
                Some(Some(())) => return Ok(()),
                Some(None) => continue,
                None => {
                    return Err(Error::Busy {
                        what: "holder's process slot",
                        holder: None,
                        waited_ms: SLOT_PATIENCE.as_millis() as u64,
                    });
                }
            }
        }
        Err(Error::NotHeld { count, held: 0 })
    }

    fn external_slot(&self, pid: u32, deadline: Option<Monotonic>) -> Result<(u32, u32)> {
        let who = sys::identity(pid)
            .map_err(|e| Error::io(format!("looking up process {pid}"), e))?
            .ok_or_else(|| Error::invalid(format!("there is no process {pid}")))?;
        self.inner
            .ns
            .with_table_lock_until(deadline, |ctx| holders::external_slot(ctx, who))
    }
}

/// The process acted for exited (its weight went back to the semaphore).
fn holder_gone() -> Error {
    Error::invalid("the process to act for has exited")
}

/// Whether this process may act for process `pid`: one of its own uid, or anyone's as root.
fn may_act_for(pid: u32) -> Result<()> {
    let owner = sys::process_uid(pid)
        .map_err(|e| Error::io(format!("looking up process {pid}"), e))?
        .ok_or_else(|| Error::invalid(format!("there is no process {pid}")))?;
    if sys::euid() == 0 || owner == sys::uid() {
        return Ok(());
    }
    Err(Error::PermissionDenied {
        path: format!(
            "process {pid} belongs to uid {owner}; only its own user or root may hold or \
             release weight for it"
        ),
    })
}
