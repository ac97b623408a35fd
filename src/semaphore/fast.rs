//! The fast path's per-thread memory: where this thread's last-used semaphore and its holder
//! record are, so that an uncontended acquire or release goes straight to the two words it
//! changes, with no lookup and no re-check of keys.
//!
//! # Why an entry can be trusted without re-checking
//!
//! An entry is filled by the slow path right after it found (or claimed) this thread's holder
//! record for the handle's semaphore and checked the semaphore's incarnation (see `table`). It
//! names the handle by a serial number no other handle ever gets, and the handle's record and
//! incarnation by the handle's packed `found` word at that moment. From then on:
//!
//! * the holder record stays this lane's record for that semaphore until this very thread frees
//!   it (only a lane's own thread frees its records, and it clears its entry when it does), or
//!   the process dies;
//! * while the record is keyed to the semaphore's generation, no other life of the record can
//!   have that generation (the rule in `table`), so a word of that generation is this life's;
//! * a handle that moved to another life (re-created) has another `found` word: no match;
//! * a forked child starts with no entry (the fork hook clears the forking thread's, the only
//!   thread a child has), so it never gives back through its parent's records.
//!
//! The pointers point into a mapping that stays mapped for the life of the process.

use std::{
    cell::Cell,
    ptr,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
};

use crate::segment::layout::{HolderRecord, SemRecord};

/// One thread's remembered semaphore.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    /// The handle's serial (0: no entry).
    pub serial: u64,
    /// The handle's packed `found` word when the entry was filled.
    pub found: u64,
    /// The semaphore's record.
    pub rec: *const SemRecord,
    /// This lane's holder record for it.
    pub holder: *const HolderRecord,
    /// The fork epoch it was filled in (it is cleared in a child, so always the current one).
    pub epoch: u32,
}

impl Entry {
    const EMPTY: Entry = Entry {
        serial: 0,
        found: 0,
        rec: ptr::null(),
        holder: ptr::null(),
        epoch: 0,
    };
}

thread_local! {
    static ENTRY: Cell<Entry> = const { Cell::new(Entry::EMPTY) };
}

/// Serials of handles; 0 is never given out.
static SERIALS: AtomicU64 = AtomicU64::new(1);

/// A serial for a new handle.
pub(super) fn serial() -> u64 {
    SERIALS.fetch_add(1, Relaxed)
}

/// The semaphore record, this lane's holder record and the fork epoch, if this thread's entry is
/// for the handle with `serial` in the life packed in `found`.
#[inline(always)]
pub(super) fn get(
    serial: u64,
    found: u64,
) -> Option<(&'static SemRecord, &'static HolderRecord, u32)> {
    let e = ENTRY.get();
    if e.serial == serial && e.found == found {
        // SAFETY: the entry was filled from references into a segment mapping, which stays
        // mapped for the life of the process; and it is still this lane's record for this life
        // (see the module docs).
        Some(unsafe { (&*e.rec, &*e.holder, e.epoch) })
    } else {
        None
    }
}

/// Remember `rec` and `holder` for the handle with `serial`, in the life packed in `found`.
pub(super) fn fill(serial: u64, found: u64, epoch: u32, rec: &SemRecord, holder: &HolderRecord) {
    ENTRY.set(Entry {
        serial,
        found,
        rec,
        holder,
        epoch,
    });
}

/// Forget this thread's entry: called by a thread before it frees one of its lane's records,
/// and in the child of a fork.
pub(crate) fn clear() {
    // `try_with`: also called while the thread's locals are being destroyed, and in a forked
    // child, where nothing may allocate.
    let _ = ENTRY.try_with(|e| e.set(Entry::EMPTY));
}
