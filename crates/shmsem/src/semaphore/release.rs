//! Giving weight back: one compare-exchange, a wake only when someone waits, and patience with a
//! recount in progress.

use std::sync::atomic::Ordering::Relaxed;

use super::{BOUNDED_SLEEP, FROZEN_PATIENCE, Semaphore, counters, frozen_pause, lane_of};
use crate::namespace::fast;
use crate::{
    error::{Error, Result},
    namespace::with_lane,
    protocol::{
        Refused, holding,
        word::{self, Wake},
    },
    segment::layout::{HolderRecord, SemRecord, USED},
    table::Found,
    wait::{self, Monotonic},
};

impl Semaphore {
    /// Give back `count` on `found`, incarnation `life`, through this thread's lane. A
    /// semaphore removed since has nothing to give back to.
    pub(super) fn give(&self, found: Found, life: u64, count: u32) -> Result<()> {
        with_lane(|lane| match self.holder(lane, found, life) {
            Ok((h, _)) => self.give_on(found, h, count),
            Err(Error::Removed { .. }) => Ok(()),
            Err(e) => Err(e),
        })
    }

    /// Give back `count` on `found` through holder record `h`, which this thread operates.
    pub(super) fn give_on(&self, found: Found, h: &HolderRecord, count: u32) -> Result<()> {
        let rec = self.rec(found);
        mark_used(rec);
        self.give_slow(rec, found.generation, h, count)
    }

    /// Give back `count` through this thread's entry `hit` (see `fast`): one compare-exchange,
    /// on a word nobody sleeps on (see [`word::is_open`]), so no wake. `false` when it did not
    /// change the word (the record is then as it was, and the caller goes to
    /// [`Self::give_slow`], which wakes whom the word says).
    #[inline(always)]
    pub(super) fn give_fast(hit: &fast::Hit, count: u32) -> bool {
        let rec = hit.rec();
        mark_used(rec);
        lane_of(rec, hit.holder())
            .give_once(hit.empty, count)
            .is_some()
    }

    /// Give back `count` on semaphore record `rec` of generation `generation` through holder
    /// record `h`, with retries, waiting out a recount. The record is marked used already.
    #[cold]
    #[inline(never)]
    pub(super) fn give_slow(
        &self,
        rec: &SemRecord,
        generation: u16,
        h: &HolderRecord,
        count: u32,
    ) -> Result<()> {
        match lane_of(rec, h).give(generation, count) {
            Ok(before) => {
                wake_after_release(rec, before, count);
                Ok(())
            }
            Err(refused) => self.give_refused(rec, generation, h, count, refused),
        }
    }

    /// The release was refused: wait out a recount, or settle a removal.
    #[cold]
    #[inline(never)]
    fn give_refused(
        &self,
        rec: &SemRecord,
        generation: u16,
        h: &HolderRecord,
        count: u32,
        mut refused: Refused,
    ) -> Result<()> {
        let lane = lane_of(rec, h);
        let mut frozen_since = None;
        loop {
            match refused {
                Refused::Frozen(_) => {
                    // A recount is running. If its recounter died, this release is what notices:
                    // reclaiming takes the recount over (see `holders::reclaim`). Bounded: a
                    // recounter that stays stopped longer than this leaves the weight held, as
                    // a holder that is stopped does, and it comes back when this process exits.
                    let since = *frozen_since.get_or_insert_with(Monotonic::now);
                    if Monotonic::now() >= since.after(FROZEN_PATIENCE) {
                        return Err(Error::corrupt(format!(
                            "semaphore {:?} stayed frozen for {} s; a reclaimer is stuck",
                            self.inner.name,
                            FROZEN_PATIENCE.as_secs()
                        )));
                    }
                    frozen_pause();
                    self.inner.ns.reclaim_every(BOUNDED_SLEEP);
                }
                Refused::Contended => return Err(self.contended()),
                Refused::Removed => {
                    // The semaphore is gone; there is nothing to give back to.
                    let bits = h.holding.load(Relaxed);
                    let held = holding::held(bits).wrapping_sub(count as i64);
                    h.holding.store(holding::with_held(bits, held), Relaxed);
                    return Ok(());
                }
                Refused::Underflow(w) | Refused::Full(w) => {
                    return Err(Error::corrupt(format!(
                        "semaphore {:?} has value {} but {count} is being released",
                        self.inner.name,
                        word::value(w)
                    )));
                }
            }
            match lane.give(generation, count) {
                Ok(before) => {
                    wake_after_release(rec, before, count);
                    return Ok(());
                }
                Err(r) => refused = r,
            }
        }
    }
}

/// Mark `rec` used, before the release's compare-exchange (Release), so that a sweeper that sees
/// the value at zero also sees the mark and restarts the idle period (see `table::sweep_idle`).
/// A plain store and no clock, unconditional: the field shares the state word's cache line,
/// which the compare-exchange makes this core's own anyway.
#[inline(always)]
fn mark_used(rec: &SemRecord) {
    rec.last_used_ms.store(USED, Relaxed);
}

/// Wake whom a release of `count` that found the word `before` must wake: nobody when nobody is
/// counted (no system call, and nothing counted).
#[inline(always)]
fn wake_after_release(rec: &SemRecord, before: u64, count: u32) {
    match word::wake_count(before, count) {
        Wake::None => {}
        Wake::Some(n) => wake_counted(rec, n),
        Wake::All => wake_counted(rec, u32::MAX),
    }
}

/// Wake up to `n` sleepers on `rec`'s word, and count the wake in the record's statistics (see
/// `counters`). Only for the wakes of releases and capacity changes, which a waiter's count
/// made necessary: never on the fast path.
#[cold]
#[inline(never)]
pub(super) fn wake_counted(rec: &SemRecord, n: u32) {
    counters::bump(&rec.counters.wakes, 1);
    wait::wake(&rec.word, n);
}
