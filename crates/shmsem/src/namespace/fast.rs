//! The fast path's per-thread memory: where this thread's recently used semaphores and its
//! holder records for them are, so that an uncontended acquire or release goes straight to the
//! two words it changes, with no lookup and no re-check of keys.
//!
//! A thread remembers [`WAYS`] semaphores, one per way, the way chosen by the handle's serial.
//! The slow path fills a handle's way whenever it has found or claimed the thread's record for
//! it, so a thread that alternates between a few handles keeps them all on the fast path, and
//! one that comes back to a handle after using many others is back on it after one slow acquire.
//!
//! # Why an entry can be trusted without re-checking
//!
//! An entry (a way's fields) is filled by the slow path right after it found (or claimed) this
//! thread's holder record for the handle's semaphore and checked the semaphore's incarnation
//! (see `table`). It
//! names the handle by a serial number no other handle ever gets, and the handle's record and
//! incarnation by the handle's packed `found` word at that moment. From then on:
//!
//! * the holder record stays this lane's record for that semaphore until this very thread frees
//!   it (only a lane's own thread frees its records, and it clears its entries when it does), or
//!   the process dies;
//! * while the record is keyed to the semaphore's generation, no other life of the record can
//!   have that generation (the rule in `table`), so a word of that generation is this life's;
//! * a handle that moved to another life (re-created) has another `found` word: no match;
//! * a forked child starts with no entry (the fork hook clears the forking thread's, the only
//!   thread a child has), so it never gives back through its parent's records;
//! * the fast acquire reads no fairness reservation: it only takes from a word that counts no
//!   waiter, and only a counted waiter holds a reservation (see `acquire`).
//!
//! The pointers point into a mapping that stays mapped for the life of the process.

use std::{
    cell::Cell,
    ptr,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
};

use crate::{
    protocol::{handle::unpack, word},
    segment::layout::{HolderRecord, SemRecord},
};

/// How many semaphores a thread remembers (a power of two).
pub(crate) const WAYS: usize = 4;

/// One remembered semaphore: a way's fields side by side in one cache line, so that a hit
/// reads one line (laid out by field, every way's serial side by side and so on, a hit read
/// three). The benchmark's acquire + release pair runs at 1.045× POSIX in most processes and at
/// 1.13–1.16× in the others, with the same instructions: which, depends only on where
/// address-space randomisation puts things (with it turned off, one build is always slow, another
/// always fast), and the share of slow processes has varied from one in eight to more than half
/// between sessions on the same VM, with either layout. A conflict between lines the loop
/// touches (the L1 data cache's way predictor keys them by a hash of the virtual address) is the
/// likely cause; without a hardware counter on that VM it is not established.
#[repr(C, align(64))]
struct Way {
    /// The handle's serial (0: nothing remembered).
    serial: Cell<u64>,
    /// The handle's packed `found` word when the way was filled.
    found: Cell<u64>,
    /// The semaphore's record.
    rec: Cell<*const SemRecord>,
    /// This lane's holder record for it.
    holder: Cell<*const HolderRecord>,
    /// The fresh word of the life (`word::empty` of its generation), against which the fast
    /// paths compare the state word's upper bits.
    empty: Cell<u64>,
    /// The fork epoch it was filled in (the ways are cleared in a child, so always the current
    /// one).
    epoch: Cell<u32>,
}

const _: () = assert!(std::mem::size_of::<Way>() == 64);

thread_local! {
    static REMEMBERED: [Way; WAYS] = const {
        [const {
            Way {
                serial: Cell::new(0),
                found: Cell::new(0),
                rec: Cell::new(ptr::null()),
                holder: Cell::new(ptr::null()),
                empty: Cell::new(0),
                epoch: Cell::new(0),
            }
        }; WAYS]
    };
}

/// The way of the handle with `serial`.
#[inline(always)]
fn way(serial: u64) -> usize {
    serial as usize % WAYS
}

/// Serials of handles; 0 is never given out.
static SERIALS: AtomicU64 = AtomicU64::new(1);

/// A serial for a new handle.
pub(crate) fn serial() -> u64 {
    SERIALS.fetch_add(1, Relaxed)
}

/// What [`get`] found: the semaphore record, this lane's holder record and the fork epoch.
///
/// Raw pointers, not references, so that `Option<Hit>` has a tag of its own: the caller's branch
/// is then the key comparison itself, with no test of a pointer for the niche.
#[derive(Clone, Copy)]
pub(crate) struct Hit {
    rec: *const SemRecord,
    holder: *const HolderRecord,
    /// The fresh word of the life (`word::empty` of its generation).
    pub empty: u64,
    /// The fork epoch the entry was filled in (it is cleared in a child, so always the current
    /// one).
    pub epoch: u32,
}

impl Hit {
    /// The semaphore record.
    #[inline(always)]
    pub fn rec(&self) -> &'static SemRecord {
        // SAFETY: filled from a reference into a segment mapping, which stays mapped for the life
        // of the process (see the module docs).
        unsafe { &*self.rec }
    }

    /// This lane's holder record for it.
    #[inline(always)]
    pub fn holder(&self) -> &'static HolderRecord {
        // SAFETY: as in `rec`; and it is still this lane's record for this life (see the module
        // docs).
        unsafe { &*self.holder }
    }
}

/// This thread's entry, if it is for the handle with `serial` in the life packed in `found`.
#[inline(always)]
pub(crate) fn get(serial: u64, found: u64) -> Option<Hit> {
    REMEMBERED.with(|ways| {
        let w = &ways[way(serial)];
        if w.serial.get() == serial && w.found.get() == found {
            Some(Hit {
                rec: w.rec.get(),
                holder: w.holder.get(),
                empty: w.empty.get(),
                epoch: w.epoch.get(),
            })
        } else {
            None
        }
    })
}

/// Remember `rec` and `holder` for the handle with `serial`, in the life packed in `found`.
pub(crate) fn fill(serial: u64, found: u64, epoch: u32, rec: &SemRecord, holder: &HolderRecord) {
    REMEMBERED.with(|ways| {
        let w = &ways[way(serial)];
        w.serial.set(serial);
        w.found.set(found);
        w.rec.set(rec);
        w.holder.set(holder);
        w.empty.set(word::empty(unpack(found).0.generation));
        w.epoch.set(epoch);
    });
}

/// Forget what this thread remembers: called by a thread before it frees one of its lane's
/// records, and in the child of a fork.
pub(crate) fn clear() {
    // `try_with`: also called while the thread's locals are being destroyed, and in a forked
    // child, where nothing may allocate. Clearing the serial is enough: no way matches then.
    let _ = REMEMBERED.try_with(|ways| ways.iter().for_each(|w| w.serial.set(0)));
}
