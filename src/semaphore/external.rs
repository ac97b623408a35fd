//! Acting for another process: `shmsem acquire --holder PID` and `shmsem release --holder PID`.
//!
//! The weight is recorded in an *external* process slot keyed by the holder's pid and start
//! time. This process takes the slot's lock byte while it changes the slot's record, so that
//! two CLI processes acting for the same shell, or a reclaimer, never race it; the holder is
//! judged alive by pid and start time (see `holders`).

use std::{
    sync::atomic::Ordering::{Acquire, Relaxed},
    time::Duration,
};

use super::{
    Semaphore, Until, check_weight, frozen_pause,
    protocol::{Lane, Refused, holding},
    word::{self, Wake},
};
use crate::{
    error::{Error, Result},
    holders, sys,
    wait::{self, Monotonic},
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
        let done = self.ns.with_slot_lock(slot, deadline, |ctx| {
            let index = self.external_record(ctx, slot, slot_gen)?;
            let h = ctx
                .seg
                .holder(index)
                .ok_or_else(|| Error::corrupt("record out of bounds"))?;
            let rec = self.rec();
            let capacity = rec.capacity.load(Relaxed);
            check_weight(weight, capacity)?;
            let lane = Lane {
                word: &rec.word,
                holding: &h.holding,
            };
            match lane.try_take(self.found.generation, weight, capacity, false) {
                Ok(_) => self.taken(h, weight),
                Err(Refused::Removed) => Err(self.removed()),
                Err(refused) => self.take_contended(weight, until, h, refused),
            }
        })?;
        done.ok_or_else(|| match until {
            Until::Now => Error::WouldBlock {
                weight,
                available: 0,
            },
            Until::Deadline(_, d) => Error::Timeout {
                weight,
                timeout_ms: d.as_millis() as u64,
            },
            Until::Timeout(d) => Error::Timeout {
                weight,
                timeout_ms: d.as_millis() as u64,
            },
            Until::Forever => unreachable!("an unbounded wait for a lock always ends with it"),
        })
    }

    /// Give back `count` of what process `pid` holds through [`acquire_for`](Self::acquire_for);
    /// [`Error::NotHeld`] if it holds less, and nothing changes then.
    pub fn release_for(&self, pid: u32, count: u32) -> Result<()> {
        if count == 0 {
            return Err(Error::invalid("release count 0; give back at least 1"));
        }
        let (slot, slot_gen) = self.external_slot(pid)?;
        self.ns
            .with_slot_lock(slot, None, |ctx| {
                let index = self.external_record(ctx, slot, slot_gen)?;
                let h = ctx
                    .seg
                    .holder(index)
                    .ok_or_else(|| Error::corrupt("record out of bounds"))?;
                let held = holding::held(h.holding.load(Relaxed));
                if held < count as i64 {
                    return Err(Error::NotHeld {
                        count,
                        held: held.max(0) as u64,
                    });
                }
                let rec = self.rec();
                let lane = Lane {
                    word: &rec.word,
                    holding: &h.holding,
                };
                loop {
                    match lane.give(self.found.generation, count) {
                        Ok(Wake::None) => return Ok(()),
                        Ok(Wake::Some(n)) => {
                            wait::wake(&rec.word, n);
                            return Ok(());
                        }
                        Ok(Wake::All) => {
                            wait::wake(&rec.word, u32::MAX);
                            return Ok(());
                        }
                        Err(Refused::Frozen(_)) => frozen_pause(),
                        Err(Refused::Removed) => return Err(self.removed()),
                        Err(Refused::Underflow(w) | Refused::Full(w)) => {
                            return Err(Error::corrupt(format!(
                                "semaphore {:?} has value {} but {count} is being released",
                                self.name,
                                word::value(w)
                            )));
                        }
                    }
                }
            })
            .map(|done| done.unwrap_or(()))
    }

    fn external_slot(&self, pid: u32) -> Result<(u32, u32)> {
        let who = sys::identity(pid)
            .map_err(|e| Error::io(format!("looking up process {pid}"), e))?
            .ok_or_else(|| Error::invalid(format!("there is no process {pid}")))?;
        self.ns
            .with_table_lock(|ctx| holders::external_slot(ctx, who))
    }

    /// The record of external slot `slot` on this semaphore: lane 0, found or claimed. The caller
    /// holds the slot's lock byte.
    fn external_record(&self, ctx: holders::Ctx<'_>, slot: u32, slot_gen: u32) -> Result<u32> {
        let key = holders::record_key(slot, 0, self.found);
        for index in 0..crate::segment::layout::MAX_HOLDERS {
            if ctx
                .seg
                .holder(index)
                .is_some_and(|h| h.key.load(Acquire) == key)
            {
                return Ok(index);
            }
        }
        holders::claim_record(ctx, slot, slot_gen, 0, self.found)
    }
}
