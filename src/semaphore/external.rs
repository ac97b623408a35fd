//! Acting for another process: `shmsem acquire --holder PID` and `shmsem release --holder PID`.
//!
//! The weight is recorded in an *external* process slot keyed by the holder's pid and start
//! time. This process takes the slot's lock byte while it changes the slot's record, so that
//! two CLI processes acting for the same shell, or a reclaimer, never race it; the holder is
//! judged alive by pid and start time (see `holders`).

use std::{sync::atomic::Ordering::Acquire, time::Duration};

use super::{
    Contended, Semaphore, Until, check_weight, fair_capacity, note_since,
    protocol::{Lane, Refused, holding},
    reservation_token,
};
use crate::{
    error::{Error, Result},
    holders, sys,
    table::Found,
    wait::Monotonic,
};

impl Semaphore {
    /// Acquire `weight` on behalf of process `pid` (for example a shell that runs
    /// `shmsem acquire`): the weight stays held until [`release_for`](Self::release_for) or until
    /// that process exits. `timeout` `None` waits forever; zero tries once.
    pub fn acquire_for(&self, pid: u32, weight: u32, timeout: Option<Duration>) -> Result<()> {
        let until = match timeout {
            None => Until::Forever,
            Some(d) if d.is_zero() => Until::Now,
            Some(d) => Until::Timeout(d),
        }
        .start();
        let (slot, slot_gen) = self.external_slot(pid)?;
        let deadline = match until {
            Until::Deadline(d, _) => Some(d),
            Until::Now => Some(Monotonic::now()),
            Until::Timeout(_) | Until::Forever => None,
        };
        let timed_out = || match until {
            Until::Now => Error::WouldBlock {
                weight,
                available: 0,
            },
            Until::Deadline(_, d) | Until::Timeout(d) => Error::Timeout {
                weight,
                timeout_ms: d.as_millis() as u64,
            },
            Until::Forever => unreachable!("an unbounded wait for a lock always ends with it"),
        };
        let me = self.inner.ns.registration()?.slot;
        let mut found = self.found();
        for _ in 0..super::RECREATE_TRIES {
            let outcome = self.inner.ns.with_slot_lock(slot, deadline, |ctx| {
                let index = self.external_record(ctx, slot, slot_gen, found)?;
                let h = ctx
                    .seg
                    .holder(index)
                    .ok_or_else(|| Error::corrupt("record out of bounds"))?;
                let rec = self.rec(found);
                let capacity = rec.capacity.load(std::sync::atomic::Ordering::Relaxed);
                check_weight(weight, capacity)?;
                let lane = Lane {
                    word: &rec.word,
                    holding: &h.holding,
                };
                let fair = fair_capacity(rec, capacity, 0);
                Ok(match lane.try_take(found.generation, weight, fair, false) {
                    Ok(_) => {
                        note_since(h, weight);
                        Ok(())
                    }
                    Err(Refused::Removed) => Err(Contended::Removed),
                    Err(refused) => {
                        let token = reservation_token(me, u16::MAX - 1, weight);
                        self.take_contended(found, weight, until, h, token, refused)
                    }
                })
            })?;
            match outcome {
                None => return Err(timed_out()),
                Some(Ok(())) => return Ok(()),
                Some(Err(Contended::Failed(e))) => return Err(e),
                Some(Err(Contended::Removed)) => found = self.recreate(found, 0)?,
            }
        }
        Err(self.removed())
    }

    /// Give back `count` of what process `pid` holds through [`acquire_for`](Self::acquire_for);
    /// [`Error::NotHeld`] if it holds less, and nothing changes then.
    pub fn release_for(&self, pid: u32, count: u32) -> Result<()> {
        if count == 0 {
            return Err(Error::invalid("release count 0; give back at least 1"));
        }
        let (slot, slot_gen) = self.external_slot(pid)?;
        let found = self.found();
        self.inner
            .ns
            .with_slot_lock(slot, None, |ctx| {
                let index = self.external_record(ctx, slot, slot_gen, found)?;
                let h = ctx
                    .seg
                    .holder(index)
                    .ok_or_else(|| Error::corrupt("record out of bounds"))?;
                let held = holding::held(h.holding.load(Acquire));
                if held < count as i64 {
                    return Err(Error::NotHeld {
                        count,
                        held: held.max(0) as u64,
                    });
                }
                self.give_on(found, h, count)
            })
            .map(|done| done.unwrap_or(()))
    }

    fn external_slot(&self, pid: u32) -> Result<(u32, u32)> {
        let who = sys::identity(pid)
            .map_err(|e| Error::io(format!("looking up process {pid}"), e))?
            .ok_or_else(|| Error::invalid(format!("there is no process {pid}")))?;
        self.inner
            .ns
            .with_table_lock(|ctx| holders::external_slot(ctx, who))
    }

    /// The record of external slot `slot` on `found`: lane 0, found or claimed. The caller holds
    /// the slot's lock byte.
    fn external_record(
        &self,
        ctx: holders::Ctx<'_>,
        slot: u32,
        slot_gen: u32,
        found: Found,
    ) -> Result<u32> {
        let key = holders::record_key(slot, 0, found);
        for index in 0..crate::segment::layout::MAX_HOLDERS {
            if ctx
                .seg
                .holder(index)
                .is_some_and(|h| h.key.load(Acquire) == key)
            {
                return Ok(index);
            }
        }
        holders::claim_record(ctx, slot, slot_gen, 0, found)
    }
}
