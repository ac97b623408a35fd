//! The counter protocol: every change to a semaphore's word, together with the holder record of
//! the lane that makes it. Generic over [`Atomic64`], so that the same code runs on a segment
//! and, under loom, on plain memory.
//!
//! This layer knows nothing of mappings, names, processes or handles: it is the words and what
//! may be done to them. [`word`] is the state word, [`holding`] a holder record's word, [`keys`]
//! and [`handle`] the other packed words (who holds, who reserves, who recounts, which life a
//! handle names); [`Lane`] and [`recount()`] are the transitions. Where a crash test may kill
//! the process between two writes, a transition calls its [`Hook`], which the engine fills with
//! its kill points and everything else leaves empty ([`NoHook`]).
//!
//! # The crash-safe protocol
//!
//! Taking weight touches two places, the semaphore's word and the caller's holder record, and no
//! single instruction covers both. A process killed between the two must leave a state from
//! which a reclaimer can compute the true value. Each change is bracketed by the record's
//! *in-flight* flag (`BUSY`, kept in the same word as the record's weight, see [`holding`]):
//!
//! ```text
//! acquire(w): rec := held | BUSY;      CAS word.value += w;  rec := held + w
//! release(n): rec := held - n | BUSY;  CAS word.value -= n;  rec := held - n
//! ```
//!
//! A record is written only by its *operator*: the owning thread lane while its process lives,
//! the reclaimer that holds the process slot's lock once it has died. So these are plain stores,
//! not read-modify-writes, and an uncontended acquire + release costs two compare-exchanges,
//! like glibc's `sem_wait` + `sem_post`.
//!
//! A reclaimer never guesses whether a dead lane's compare-exchange happened. It recounts
//! (`recount`):
//!
//! 1. set `FROZEN` in the word: from then on no compare-exchange that changes the value succeeds;
//! 2. list the semaphore's records, and wait until every record with a live operator is not
//!    `BUSY`. A lane that was between marking itself busy and its compare-exchange sees `FROZEN`,
//!    clears the flag and waits; a lane that had already changed the word finishes its record
//!    without touching the word again;
//! 3. the true value is then `Σ held` over the records of live holders, exactly: every applied
//!    change of a live lane is in its record, and nothing a dead lane did counts any more;
//! 4. clear the dead records, then store the true value and clear `FROZEN`.
//!
//! At no moment does the word's value fall below the weight that live holders hold, so no more
//! than the capacity is ever granted. A reclaimer killed anywhere leaves the word frozen with a
//! dead recounter, and the next reclaimer runs the same recount from the start: it is idempotent.
//!
//! # Waiters are counted the same way
//!
//! A sleeping waiter counts itself in the word so that releases wake it. That count is made
//! exact by the same bracket: the waiter marks its record `BUSY`, changes the count with a
//! compare-exchange, and closes the record with [`holding::COUNTED`] set (or cleared, when it
//! uncounts itself or takes its weight with the same compare-exchange that uncounts it). Counts,
//! like values, never change while the word is frozen. So a recount also knows exactly how many
//! live waiters are counted and whether one of them wants more than 1 ([`holding::WANTS_MORE`]),
//! and it publishes those: a waiter killed while counted stops counting at the next recount,
//! instead of making every later release wake nobody.
//!
//! # Every write of the word compares the whole word
//!
//! Acquire, release, counting, freezing and unfreezing are all compare-exchanges against the word
//! that was read, generation included. A recounter whose semaphore was removed (and perhaps
//! created again) under it finds another generation and leaves the word alone.
//!
//! # Notes about memory ordering
//!
//! * A successful acquire compare-exchange is `AcqRel`. *Acquire* pairs with the `Release` of the
//!   compare-exchange that last gave weight back, so whatever the previous holder did before it
//!   released happens-before what the new holder does. *Release* publishes the `BUSY` mark stored
//!   just before it to a reclaimer, whose freezing read-modify-write reads the word later in its
//!   modification order and so synchronises with it (a release sequence).
//! * A release compare-exchange is `Release` for the same two reasons.
//! * The `BUSY` mark is stored `Relaxed` (the compare-exchange after it orders it); the closing
//!   store of the new weight is `Release`, paired with the reclaimer's `Acquire` load, so a
//!   reclaimer that sees the flag clear sees the weight that goes with it: they are one word.
//! * The unfreezing store is `Release`, so the recounted value is seen together with the cleared
//!   dead records by any later acquirer.

use std::sync::atomic::Ordering;

/// A packed word as a `#[repr(transparent)]` newtype over its bits, with the two conversions
/// every packed word has: [`from_bits`] for what was loaded (any bits, however a corrupted segment
/// left them) and [`bits`] for what is to be stored. The fields are the type's own methods.
///
/// [`from_bits`]: keys::HolderKey::from_bits
/// [`bits`]: keys::HolderKey::bits
macro_rules! packed_word {
    ($(#[$meta:meta])* pub struct $name:ident($bits:ty);) => {
        $(#[$meta])*
        #[repr(transparent)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name($bits);

        impl $name {
            /// The word stored as `bits`.
            #[inline]
            pub const fn from_bits(bits: $bits) -> $name {
                $name(bits)
            }

            /// The bits to store.
            #[inline]
            pub const fn bits(self) -> $bits {
                self.0
            }
        }
    };
}

mod fields;
pub mod handle;
pub mod holding;
pub mod keys;
mod lane;
mod recount;
pub mod word;

pub use self::lane::{Lane, announce_sleep, clear_sleeping};
pub use self::recount::{Counted, Kept, Operator, Recount, recount, remove};

/// The atomic operations the protocol needs on a 64-bit cell.
pub trait Atomic64 {
    /// Atomic load.
    fn load(&self, order: Ordering) -> u64;
    /// Atomic store.
    fn store(&self, value: u64, order: Ordering);
    /// Strong compare-exchange.
    fn compare_exchange(
        &self,
        current: u64,
        new: u64,
        ok: Ordering,
        err: Ordering,
    ) -> Result<u64, u64>;
}

impl Atomic64 for std::sync::atomic::AtomicU64 {
    #[inline]
    fn load(&self, order: Ordering) -> u64 {
        self.load(order)
    }
    #[inline]
    fn store(&self, value: u64, order: Ordering) {
        self.store(value, order)
    }
    #[inline]
    fn compare_exchange(&self, c: u64, n: u64, ok: Ordering, err: Ordering) -> Result<u64, u64> {
        self.compare_exchange(c, n, ok, err)
    }
}

/// Called at each step between two writes to shared memory where a crash test may kill the
/// process (the steps are listed in the engine's kill-point table, under the same names).
///
/// The protocol never decides what happens there; the caller does. [`NoHook`] does nothing and
/// compiles to nothing; the engine's hook kills or stops the process where a crash test armed
/// it to.
pub trait Hook: Copy {
    /// The transition reached `step`.
    fn reached(self, step: &'static str);
}

/// The hook that does nothing: for the loom model and everything that is not a crash test.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHook;

impl Hook for NoHook {
    #[inline(always)]
    fn reached(self, _step: &'static str) {}
}

/// Most compare-exchange retries of one operation. Each failure means another process changed
/// the word; legitimately that never happens this many times in a row, so past it the word is
/// taken to be written by something broken or hostile, and the operation gives up
/// ([`Refused::Contended`]) instead of spinning forever.
pub const MAX_RETRIES: u32 = 1 << 20;

/// Why a single attempt did not change the word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Too little is available; carries the word that was seen.
    Full(u64),
    /// A reclaimer is recounting; carries the word that was seen.
    Frozen(u64),
    /// The word belongs to another generation: the semaphore was removed.
    Removed,
    /// A release would take the value below zero: the word or the caller's count is wrong.
    Underflow(u64),
    /// The word changed `MAX_RETRIES` times in a row under this operation.
    Contended,
}
