//! The counter protocol: every change to a semaphore's word, together with the holder record of
//! the lane that makes it. Generic over [`Atomic64`], so that the same code runs on a segment
//! and, under loom, on plain memory.
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

use std::sync::atomic::Ordering::{self, AcqRel, Relaxed, Release, SeqCst};

use super::word;
use crate::failpoint;

mod recount;

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
    fn compare_exchange(
        &self,
        current: u64,
        new: u64,
        ok: Ordering,
        err: Ordering,
    ) -> Result<u64, u64> {
        self.compare_exchange(current, new, ok, err)
    }
}

/// A holder record's word: `held << 3 | WANTS_MORE << 2 | COUNTED << 1 | BUSY`, `held` a
/// 61-bit two's-complement weight in the high bits.
///
/// | `BUSY` | `COUNTED` | meaning |
/// |---|---|---|
/// | 0 | 0 | at rest: `held` is what the lane holds, and it is not counted as a waiter |
/// | 0 | 1 | at rest, and counted once in the word's waiter count (`WANTS_MORE`: for more than 1) |
/// | 1 | any | a compare-exchange of the word is in flight; the other bits are as before it |
///
/// The weight sits above the flags so that a change of weight is one addition to the whole word
/// ([`holding::add`]): it wraps at the top like any two's-complement number and never carries into a
/// flag, and `held` is one arithmetic shift.
pub mod holding {
    /// Set while an operation that changes the semaphore's word is in flight.
    pub const BUSY: u64 = 1 << 0;
    /// Set while the lane is counted in the word's waiter count.
    pub const COUNTED: u64 = 1 << 1;
    /// With [`COUNTED`]: the lane waits for more than 1 (the word's `HEAVY` flag).
    pub const WANTS_MORE: u64 = 1 << 2;
    /// Shift of the weight held.
    const HELD_SHIFT: u32 = 3;
    const FLAGS: u64 = BUSY | COUNTED | WANTS_MORE;

    /// The weight held.
    #[inline]
    pub const fn held(bits: u64) -> i64 {
        bits as i64 >> HELD_SHIFT
    }

    /// The lane holds nothing, or less than nothing (it gave back what another lane took).
    #[inline]
    pub const fn holds_nothing(bits: u64) -> bool {
        (bits as i64) < (1 << HELD_SHIFT)
    }

    /// An operation is in flight.
    #[inline]
    pub const fn is_busy(bits: u64) -> bool {
        bits & BUSY != 0
    }

    /// The lane is counted as a waiter.
    #[inline]
    pub const fn is_counted(bits: u64) -> bool {
        bits & COUNTED != 0
    }

    /// The word for weight `held`, not busy, not counted.
    #[inline]
    pub const fn of(held: i64) -> u64 {
        (held as u64) << HELD_SHIFT
    }

    /// `bits` with `delta` more weight held, its flags as they were.
    #[inline]
    pub const fn add(bits: u64, delta: i64) -> u64 {
        bits.wrapping_add(of(delta))
    }

    /// `bits` with weight `held`, keeping its waiter flags, not busy.
    #[inline]
    pub const fn with_held(bits: u64, held: i64) -> u64 {
        of(held) | (bits & (COUNTED | WANTS_MORE))
    }

    /// `bits` without its waiter flags.
    #[inline]
    pub const fn uncounted(bits: u64) -> u64 {
        bits & !(COUNTED | WANTS_MORE)
    }

    const _: () = assert!(FLAGS < 1 << HELD_SHIFT);
}

/// Announce that a counted waiter is about to sleep on `word`, which it saw as `seen`: set
/// [`word::SLEEPING`] in one compare-exchange against `seen`. `Ok(word)`: sleep on that word.
/// `Err(Some(actual))`: the word changed (a release came in between); look again instead of
/// sleeping. `Err(None)`: it cannot be announced (frozen, or it counts nobody); nap instead.
///
/// No record bracket: the flag changes neither the value nor the count, so a recount need not
/// know of it (it keeps the flag as it finds it, and a wake with nobody asleep costs a system
/// call, nothing more). Relaxed: every access is to this one word, and the release that clears
/// the flag and wakes reads it in its own compare-exchange.
pub fn announce_sleep<A: Atomic64>(word: &A, seen: u64) -> Result<u64, Option<u64>> {
    if word::is_sleeping(seen) {
        return Ok(seen);
    }
    let new = word::sleeping(seen).ok_or(None)?;
    // SeqCst: the waiter reads the capacity and the reservation again after this (see
    // `clear_sleeping`).
    word.compare_exchange(seen, new, SeqCst, Relaxed)
        .map(|_| new)
        .map_err(Some)
}

/// Clear [`word::SLEEPING`], after something a sleeper judged by changed without changing the
/// value (the capacity, a fairness reservation); the caller then wakes everyone. The futex half
/// then differs from what any sleeper announced, so one about to sleep returns at once.
///
/// Why nobody sleeps on a stale judgement: the changer stores its change, then clears the flag
/// (both `SeqCst`); a waiter announces the sleep (or finds it announced), then reads the
/// capacity and reservation again (`SeqCst`) and sleeps only if its weight still does not fit.
/// If that read saw the old value, it came before the change in the single total order, so the
/// clearing comes after the word the waiter sleeps on: its sleep returns, or the wake finds it.
/// A frozen word is left alone: the recount that froze it wakes everyone when it ends.
pub fn clear_sleeping<A: Atomic64>(word: &A) {
    let mut current = word.load(SeqCst);
    for _ in 0..MAX_RETRIES {
        if !word::is_sleeping(current) || word::is_frozen(current) {
            return;
        }
        match word.compare_exchange(current, current & !word::SLEEPING, SeqCst, SeqCst) {
            Ok(_) => return,
            Err(actual) => current = actual,
        }
    }
}

/// Most compare-exchange retries of one operation. Each failure means another process changed
/// the word; legitimately that never happens this many times in a row, so past it the word is
/// taken to be written by something broken or hostile, and the operation gives up
/// ([`Refused::Contended`]) instead of spinning forever.
pub const MAX_RETRIES: u32 = 1 << 20;

/// A semaphore's word seen through one lane's holder record.
#[derive(Debug)]
pub struct Lane<'a, A> {
    /// The semaphore's state word.
    pub word: &'a A,
    /// The lane's holder record word (see [`holding`]).
    pub holding: &'a A,
}

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
    /// The word changed [`MAX_RETRIES`] times in a row under this operation.
    Contended,
}

impl<A: Atomic64> Lane<'_, A> {
    /// The uncontended acquire: one look at the word and one compare-exchange, bracketed like
    /// every other (`BUSY` mark, compare-exchange, closing store), for a word that is quiet (see
    /// [`word::is_quiet`]: nobody waits, so no fairness reservation can stand in the way) and a
    /// lane that is not counted as a waiter. `None` when anything stood in the way (too full,
    /// frozen, waiters, another generation, or the word changed under it); the record is then
    /// as it was, and the caller takes the slow path, which looks again. Returns the record's
    /// word before the acquire. `empty` is the fresh word of the life to take from
    /// ([`word::empty`] of its generation); `weight` must be at least 1.
    #[inline(always)]
    pub fn take_quiet(&self, empty: u64, weight: u32, capacity: u32) -> Option<u64> {
        let current = self.word.load(Relaxed);
        // `value` may exceed `capacity` after the capacity was lowered; nothing fits then.
        if !word::is_quiet(current, empty)
            || word::value(current) as u64 + weight as u64 > capacity as u64
        {
            return None;
        }
        // Relaxed: only this lane writes its record.
        let mine = self.holding.load(Relaxed);
        self.holding.store(mine | holding::BUSY, Relaxed);
        failpoint::hit("acquire:marked");
        // AcqRel: see "Notes about memory ordering". The value is below the capacity, so adding
        // the weight changes nothing but the value.
        if self
            .word
            .compare_exchange(current, current + weight as u64, AcqRel, Relaxed)
            .is_err()
        {
            // Release: a reclaimer that sees the flag clear knows the word was not changed.
            self.holding.store(mine, Release);
            return None;
        }
        failpoint::hit("acquire:swapped");
        self.holding
            .store(holding::add(mine, weight as i64), Release);
        Some(mine)
    }

    /// The uncontended release: [`Self::give`]'s first attempt alone, for a word of the life
    /// whose fresh word is `empty` that is not frozen. `None` when it did not change the word
    /// (the record is then as it was; the caller falls back to [`Self::give`]). Returns the word
    /// before the release, for [`word::wake_count`].
    #[inline(always)]
    pub fn give_once(&self, empty: u64, count: u32) -> Option<u64> {
        let current = self.word.load(Relaxed);
        if !word::is_open(current, empty) || word::value(current) < count {
            return None;
        }
        // Relaxed: only this lane writes its record.
        let mine = self.holding.load(Relaxed);
        // The mark carries the weight after the release, as in `give`.
        let after = holding::add(mine, -(count as i64));
        self.holding.store(after | holding::BUSY, Relaxed);
        failpoint::hit("release:marked");
        // Release: see "Notes about memory ordering".
        if self
            .word
            .compare_exchange(current, current - count as u64, Release, Relaxed)
            .is_err()
        {
            // Release: a reclaimer that sees the flag clear knows the word was not changed.
            self.holding.store(mine, Release);
            return None;
        }
        failpoint::hit("release:swapped");
        self.holding.store(after, Release);
        Some(current)
    }

    /// Try once to take `weight` under `capacity`. A `counted` waiter uncounts itself in the same
    /// step. Returns the word before the change.
    #[inline]
    pub fn try_take(
        &self,
        generation: u16,
        weight: u32,
        capacity: u32,
        counted: bool,
    ) -> Result<u64, Refused> {
        // Relaxed: only this lane writes its record.
        let mine = self.holding.load(Relaxed);
        let mut current = self.word.load(Relaxed);
        let mut announced = false;
        let mut retries = 0;
        loop {
            if word::generation(current) != generation {
                break self.withdraw(announced, mine, Refused::Removed);
            }
            if word::is_frozen(current) {
                break self.withdraw(announced, mine, Refused::Frozen(current));
            }
            if retries == MAX_RETRIES {
                break self.withdraw(announced, mine, Refused::Contended);
            }
            retries += 1;
            let Some(new) = word::take(current, weight, capacity, counted) else {
                break self.withdraw(announced, mine, Refused::Full(current));
            };
            if !announced {
                self.holding.store(mine | holding::BUSY, Relaxed);
                announced = true;
                failpoint::hit("acquire:marked");
            }
            // AcqRel: see "Notes about memory ordering".
            match self.word.compare_exchange(current, new, AcqRel, Relaxed) {
                Ok(before) => {
                    failpoint::hit("acquire:swapped");
                    let held = holding::held(mine).wrapping_add(weight as i64);
                    // A counted waiter was uncounted by the same compare-exchange.
                    let rest = if counted {
                        holding::uncounted(mine)
                    } else {
                        mine
                    };
                    self.holding.store(holding::with_held(rest, held), Release);
                    break Ok(before);
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Give back `count`. Returns the word before the change (see [`word::wake_count`] for
    /// whom to wake).
    #[inline]
    pub fn give(&self, generation: u16, count: u32) -> Result<u64, Refused> {
        let mine = self.holding.load(Relaxed);
        let mut current = self.word.load(Relaxed);
        let mut announced = false;
        let mut retries = 0;
        loop {
            if word::generation(current) != generation {
                break self.withdraw(announced, mine, Refused::Removed);
            }
            if word::is_frozen(current) {
                break self.withdraw(announced, mine, Refused::Frozen(current));
            }
            if retries == MAX_RETRIES {
                break self.withdraw(announced, mine, Refused::Contended);
            }
            retries += 1;
            let Some(new) = word::give(current, count) else {
                break self.withdraw(announced, mine, Refused::Underflow(current));
            };
            if !announced {
                // The mark carries the weight as it will be after the release: a recount that
                // finds it abandoned by a dead operator of a live holder (`Quiescent`) counts the
                // release as done. A release is a holder giving up, so assuming it happened can
                // never admit two holders, while assuming it did not would leave the holder's
                // record with weight another process may already have taken.
                self.holding
                    .store(holding::add(mine, -(count as i64)) | holding::BUSY, Relaxed);
                announced = true;
                failpoint::hit("release:marked");
            }
            // Release: see "Notes about memory ordering".
            match self.word.compare_exchange(current, new, Release, Relaxed) {
                Ok(before) => {
                    failpoint::hit("release:swapped");
                    self.holding
                        .store(holding::add(mine, -(count as i64)), Release);
                    break Ok(before);
                }
                Err(actual) => current = actual,
            }
        }
    }

    #[inline]
    fn withdraw<T>(&self, announced: bool, mine: u64, why: Refused) -> Result<T, Refused> {
        if announced {
            // Release: a reclaimer that sees the flag clear knows the word was not changed.
            self.holding.store(mine, Release);
        }
        Err(why)
    }
}

impl<A: Atomic64> Lane<'_, A> {
    /// Count this lane as a waiter for `weight`, unless it is already counted. Returns the word
    /// seen and whether the lane is counted (the count saturates at [`word::MAX_WAITERS`]; an
    /// uncounted waiter polls instead). Refused while the word is frozen (counts, like values,
    /// do not change during a recount) and once the generation changed.
    pub fn count_waiter(&self, generation: u16, weight: u32) -> Result<(u64, bool), Refused> {
        self.count_waiter_to_sleep(generation, weight, None)
    }

    /// [`Self::count_waiter`], and when `full_under` is given and `weight` does not fit under it
    /// in the word counted, announce the sleep ([`word::SLEEPING`]) in the same
    /// compare-exchange: the caller may then sleep on the word returned at once, with no second
    /// look and no second exchange (see [`announce_sleep`]).
    #[inline]
    pub fn count_waiter_to_sleep(
        &self,
        generation: u16,
        weight: u32,
        full_under: Option<u32>,
    ) -> Result<(u64, bool), Refused> {
        let mine = self.holding.load(Relaxed);
        let mut current = self.word.load(Relaxed);
        if holding::is_counted(mine) {
            return Ok((current, true));
        }
        let mut announced = false;
        for _ in 0..MAX_RETRIES {
            if word::generation(current) != generation {
                return self.withdraw(announced, mine, Refused::Removed);
            }
            if word::is_frozen(current) {
                return self.withdraw(announced, mine, Refused::Frozen(current));
            }
            let Some(mut new) = word::count(current, weight) else {
                // Saturated: wait uncounted.
                if announced {
                    self.holding.store(mine, Release);
                }
                return Ok((current, false));
            };
            if let Some(capacity) = full_under
                && word::value(current) as u64 + weight as u64 > capacity as u64
            {
                new |= word::SLEEPING;
            }
            if !announced {
                self.holding.store(mine | holding::BUSY, Relaxed);
                announced = true;
                failpoint::hit("wait:marked");
            }
            // Release: publishes the BUSY mark to a recounter's freeze, as a value change does.
            // SeqCst: it may announce a sleep (see `clear_sleeping`).
            match self.word.compare_exchange(current, new, SeqCst, Relaxed) {
                Ok(_) => {
                    failpoint::hit("wait:counted");
                    let flags = if weight > 1 {
                        holding::COUNTED | holding::WANTS_MORE
                    } else {
                        holding::COUNTED
                    };
                    self.holding.store(mine | flags, Release);
                    return Ok((new, true));
                }
                Err(actual) => current = actual,
            }
        }
        self.withdraw(announced, mine, Refused::Contended)
    }

    /// Stop counting this lane as a waiter (it timed out or gives up), if it is counted.
    /// Refused while the word is frozen: the caller waits for the recount to end, or leaves the
    /// lane counted (record and word still agree). Once the generation changed there is nothing
    /// to uncount: the flags are just cleared.
    pub fn uncount_waiter(&self, generation: u16) -> Result<(), Refused> {
        let mine = self.holding.load(Relaxed);
        if !holding::is_counted(mine) {
            return Ok(());
        }
        let mut current = self.word.load(Relaxed);
        let mut announced = false;
        for _ in 0..MAX_RETRIES {
            if word::generation(current) != generation {
                // Release: as every closing store of the record.
                self.holding.store(holding::uncounted(mine), Release);
                return Err(Refused::Removed);
            }
            if word::is_frozen(current) {
                return self.withdraw(announced, mine, Refused::Frozen(current));
            }
            if !announced {
                self.holding.store(mine | holding::BUSY, Relaxed);
                announced = true;
            }
            match self
                .word
                .compare_exchange(current, word::uncount(current), Release, Relaxed)
            {
                Ok(_) => {
                    self.holding.store(holding::uncounted(mine), Release);
                    return Ok(());
                }
                Err(actual) => current = actual,
            }
        }
        self.withdraw(announced, mine, Refused::Contended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    fn rec(held: i64, busy: bool) -> AtomicU64 {
        let bits = holding::of(held);
        AtomicU64::new(if busy { bits | holding::BUSY } else { bits })
    }

    #[test]
    fn holding_word_round_trips_signed_weights() {
        for held in [0, 1, -1, 5, -7, (1 << 40), -(1 << 40)] {
            let bits = holding::of(held);
            assert_eq!(holding::held(bits), held);
            assert_eq!(holding::held(bits | holding::BUSY), held);
            assert!(!holding::is_busy(bits));
        }
    }

    #[test]
    fn take_and_give_keep_word_and_record_in_step() {
        let w = AtomicU64::new(word::empty(3));
        let r = rec(0, false);
        let lane = Lane {
            word: &w,
            holding: &r,
        };
        lane.try_take(3, 2, 3, false).unwrap();
        assert_eq!(word::value(w.load(Relaxed)), 2);
        assert_eq!(holding::held(r.load(Relaxed)), 2);
        assert!(matches!(
            lane.try_take(3, 2, 3, false),
            Err(Refused::Full(_))
        ));
        assert!(
            !holding::is_busy(r.load(Relaxed)),
            "a refused attempt leaves no mark"
        );
        assert_eq!(
            lane.give(3, 2).map(|b| word::wake_count(b, 2)),
            Ok(word::Wake::None)
        );
        assert_eq!(r.load(Relaxed), 0);
        assert_eq!(lane.try_take(4, 1, 3, false), Err(Refused::Removed));
        assert!(matches!(lane.give(3, 1), Err(Refused::Underflow(_))));
    }

    #[test]
    fn frozen_word_refuses_lanes_and_they_withdraw() {
        let w = AtomicU64::new(word::empty(0) | word::FROZEN);
        let r = rec(4, false);
        let lane = Lane {
            word: &w,
            holding: &r,
        };
        assert!(matches!(
            lane.try_take(0, 1, 1, false),
            Err(Refused::Frozen(_))
        ));
        assert_eq!(r.load(Relaxed), holding::of(4));
    }
}
