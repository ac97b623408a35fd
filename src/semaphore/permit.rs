//! The guard that holds weight until dropped.

use std::{fmt, sync::atomic::Ordering::Relaxed};

use super::{Held, Semaphore};
use crate::{namespace::current_lane, table::Found};

/// Weight held until dropped.
///
/// Dropping it gives the weight back and wakes waiters. In a child created by `fork`, dropping
/// the parent's permit does nothing: the weight belongs to the parent.
#[must_use = "the weight is given back as soon as the permit is dropped"]
pub struct Permit<'a> {
    sem: &'a Semaphore,
    weight: u32,
    /// The record the weight was taken from, and its incarnation.
    found: Found,
    life: u64,
    /// Where the holding is recorded...
    held: Held,
    /// ... and that record's key then. A record that gave its weight back through another
    /// thread's permit may since have been freed and reused; the drop checks the key first.
    key: u64,
}

impl<'a> Permit<'a> {
    #[inline]
    pub(super) fn new(
        sem: &'a Semaphore,
        weight: u32,
        (found, life, held): (Found, u64, Held),
    ) -> Permit<'a> {
        let key = sem
            .inner
            .ns
            .seg
            .holder(held.record())
            .map_or(0, |h| h.key.load(Relaxed));
        Permit {
            sem,
            weight,
            found,
            life,
            held,
            key,
        }
    }

    /// The weight held.
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// Keep the weight held without a guard, as [`Semaphore::enter`] does; give it back with
    /// [`Semaphore::exit`].
    pub fn forget(self) {
        self.sem.add_unguarded(self.weight, self.found.generation);
        std::mem::forget(self);
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("semaphore", &self.sem.name())
            .field("weight", &self.weight)
            .finish()
    }
}

impl Drop for Permit<'_> {
    #[inline]
    fn drop(&mut self) {
        if !self.held.is_this_process() {
            return; // a forked child: the parent holds this weight
        }
        let sem = self.sem;
        // An error here means the segment was corrupted under us; a destructor cannot report it,
        // and the weight comes back when this process exits.
        let _ = match (current_lane(), sem.inner.ns.seg.holder(self.held.record())) {
            // The acquiring thread: its own record, no lookup. While the permit's weight is held,
            // some record of this process names its generation, so the generation is this
            // permit's incarnation (see `table`).
            (Some(lane), Some(h))
                if lane == self.held.lane() && h.key.load(Relaxed) == self.key =>
            {
                sem.give_on(self.found, h, self.weight)
            }
            // Another thread: give back through that thread's lane.
            _ => sem.give(self.found, self.life, self.weight),
        };
    }
}
