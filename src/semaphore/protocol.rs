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
//! acquire(w): rec := held | BUSY;  CAS word.value += w;  rec := held + w
//! release(n): rec := held | BUSY;  CAS word.value -= n;  rec := held - n
//! ```
//!
//! A record is written only by its *operator*: the owning thread lane while its process lives,
//! the reclaimer that holds the process slot's lock once it has died. So these are plain stores,
//! not read-modify-writes, and an uncontended acquire + release costs two compare-exchanges,
//! like glibc's `sem_wait` + `sem_post`.
//!
//! A reclaimer never guesses whether a dead lane's compare-exchange happened. It [`recount`]s:
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

use std::sync::atomic::Ordering::{self, AcqRel, Acquire, Relaxed, Release};

use super::word;
use crate::failpoint;

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

/// A holder record's word: `BUSY << 63 | held`, `held` a 63-bit two's-complement weight.
pub mod holding {
    /// Set while an operation that changes the semaphore's value is in flight.
    pub const BUSY: u64 = 1 << 63;
    const HELD: u64 = !BUSY;

    /// The weight held.
    #[inline]
    pub const fn held(bits: u64) -> i64 {
        ((bits << 1) as i64) >> 1
    }

    /// An operation is in flight.
    #[inline]
    pub const fn is_busy(bits: u64) -> bool {
        bits & BUSY != 0
    }

    /// The word for weight `held`, not busy.
    #[inline]
    pub const fn of(held: i64) -> u64 {
        held as u64 & HELD
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
                    self.holding.store(holding::of(held), Release);
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
                self.holding.store(mine | holding::BUSY, Relaxed);
                announced = true;
                failpoint::hit("release:marked");
            }
            // Release: see "Notes about memory ordering".
            match self.word.compare_exchange(current, new, Release, Relaxed) {
                Ok(before) => {
                    failpoint::hit("release:swapped");
                    let held = holding::held(mine).wrapping_sub(count as i64);
                    self.holding.store(holding::of(held), Release);
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

/// Count one more waiter for `weight`. Returns the word after and whether the waiter is counted
/// (the count saturates), or `None` when the generation changed.
pub fn count_waiter<A: Atomic64>(word: &A, generation: u16, weight: u32) -> Option<(u64, bool)> {
    let mut current = word.load(Relaxed);
    for _ in 0..MAX_RETRIES {
        if word::generation(current) != generation {
            return None;
        }
        let Some(new) = word::count(current, weight) else {
            return Some((current, false));
        };
        // Relaxed: the count is a hint; the futex compare re-reads the value.
        match word.compare_exchange(current, new, Relaxed, Relaxed) {
            Ok(_) => return Some((new, true)),
            Err(actual) => current = actual,
        }
    }
    // Not counted: the waiter still wakes on its bounded sleeps.
    Some((current, false))
}

/// Uncount a waiter that gives up (timeout, removal).
pub fn uncount_waiter<A: Atomic64>(word: &A) {
    let mut current = word.load(Relaxed);
    // Bounded: each failure means another process changed the word; the hint is allowed to be
    // wrong, so after many failures we give up rather than spin.
    for _ in 0..1024 {
        match word.compare_exchange(current, word::uncount(current), Relaxed, Relaxed) {
            Ok(_) => return,
            Err(actual) => current = actual,
        }
    }
}

/// Who operates a holder record during a recount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// A live process may be changing it: wait until it is not busy, then count it.
    Live,
    /// The holder lives but nobody operates the record now (the recounter holds its lock): a busy
    /// flag left on it was abandoned by a dead operator and is rolled back. Count it.
    Quiescent,
    /// The holder is dead and the recounter holds its lock: do not count it; clear it.
    Dead,
}

/// One holder record of the semaphore being recounted.
#[derive(Debug)]
pub struct Counted<'a, A> {
    /// The record's word (see [`holding`]).
    pub holding: &'a A,
    /// Who operates it.
    pub operator: Operator,
}

/// What a recount did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recount {
    /// The value was set; carries the value before and after.
    Done {
        /// The value the frozen word had.
        before: u32,
        /// The recounted value.
        after: u32,
    },
    /// A live operator stayed busy too long; the word was unfrozen unchanged.
    Busy,
    /// The records sum to an impossible value; the word was unfrozen unchanged.
    Corrupt,
    /// The word belongs to another generation.
    Removed,
}

/// Recount a semaphore's value from its holder records. See the module docs.
///
/// `collect` runs once the word is frozen and must list every record keyed to this semaphore and
/// generation: a record claimed before the freeze is visible then, and no record can change its
/// weight after it without the word. `settle` is called between polls of live records and
/// returns `false` once the caller's patience is exhausted.
pub fn recount<'a, A: Atomic64 + 'a>(
    word: &A,
    generation: u16,
    collect: impl FnOnce() -> Vec<Counted<'a, A>>,
    mut settle: impl FnMut() -> bool,
) -> Recount {
    // 1. Freeze (or adopt a word a dead recounter left frozen).
    let mut current = word.load(Relaxed);
    let mut retries = 0;
    loop {
        if word::generation(current) != generation {
            return Recount::Removed;
        }
        if retries == MAX_RETRIES {
            return Recount::Busy;
        }
        retries += 1;
        // AcqRel: acquire every lane's BUSY mark published by its value-changing CAS.
        match word.compare_exchange(current, current | word::FROZEN, AcqRel, Relaxed) {
            Ok(_) => break,
            Err(actual) => current = actual,
        }
    }
    let before = word::value(current);
    failpoint::hit("reclaim:frozen");
    let records = collect();

    // 2. Quiesce live operators.
    while records
        .iter()
        .any(|r| r.operator == Operator::Live && holding::is_busy(r.holding.load(Acquire)))
    {
        if !settle() {
            unfreeze(word, None);
            return Recount::Busy;
        }
    }

    failpoint::hit("reclaim:quiesced");

    // 3. Sum what live holders hold.
    let mut sum: i64 = 0;
    for r in records.iter().filter(|r| r.operator != Operator::Dead) {
        sum = sum.saturating_add(holding::held(r.holding.load(Acquire)));
    }
    let after = match u32::try_from(sum) {
        Ok(v) if v <= word::MAX_CAPACITY => v,
        _ => {
            unfreeze(word, None);
            return Recount::Corrupt;
        }
    };

    // 4. Clear dead records and roll back abandoned marks, then publish.
    for r in &records {
        match r.operator {
            Operator::Dead => r.holding.store(0, Relaxed),
            Operator::Quiescent => {
                let bits = r.holding.load(Relaxed);
                r.holding.store(holding::of(holding::held(bits)), Relaxed);
            }
            Operator::Live => {}
        }
    }
    failpoint::hit("reclaim:cleared");
    unfreeze(word, Some(after));
    Recount::Done { before, after }
}

/// Clear `FROZEN`, setting the value to `value` if given. Waiter counts may have changed while
/// frozen, so this is a compare-exchange loop; only the value and the flag are ours.
fn unfreeze<A: Atomic64>(word: &A, value: Option<u32>) {
    let target = |current: u64| {
        let new = current & !word::FROZEN;
        value.map_or(new, |v| word::with_value(new, v))
    };
    let mut current = word.load(Relaxed);
    for _ in 0..MAX_RETRIES {
        // Release: see "Notes about memory ordering".
        match word.compare_exchange(current, target(current), Release, Relaxed) {
            Ok(_) => return,
            Err(actual) => current = actual,
        }
    }
    // Something keeps rewriting the word: publish anyway. Only the waiter-count hint can be
    // lost this way, since no value change succeeds while the word is frozen.
    word.store(target(word.load(Relaxed)), Release);
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
    fn recount_excludes_dead_and_rolls_back_abandoned_marks() {
        // Live lane holds 2; a dead lane held 3 and was mid-acquire of 1 (applied);
        // an external holder holds 1 and has an abandoned release mark (not applied).
        let w = AtomicU64::new(word::with_value(word::empty(0), 2 + 3 + 1 + 1));
        let (live, dead, ext) = (rec(2, false), rec(3, true), rec(1, true));
        let out = recount(
            &w,
            0,
            || {
                vec![
                    Counted {
                        holding: &live,
                        operator: Operator::Live,
                    },
                    Counted {
                        holding: &dead,
                        operator: Operator::Dead,
                    },
                    Counted {
                        holding: &ext,
                        operator: Operator::Quiescent,
                    },
                ]
            },
            || true,
        );
        assert_eq!(
            out,
            Recount::Done {
                before: 7,
                after: 3
            }
        );
        assert_eq!(word::value(w.load(Relaxed)), 3);
        assert!(!word::is_frozen(w.load(Relaxed)));
        assert_eq!(dead.load(Relaxed), 0);
        assert_eq!(ext.load(Relaxed), holding::of(1));
    }

    #[test]
    fn recount_gives_up_on_a_busy_live_lane_and_changes_nothing() {
        let w = AtomicU64::new(word::with_value(word::empty(0), 5));
        let live = rec(0, true);
        let mut polls = 0;
        let out = recount(
            &w,
            0,
            || {
                vec![Counted {
                    holding: &live,
                    operator: Operator::Live,
                }]
            },
            || {
                polls += 1;
                polls < 3
            },
        );
        assert_eq!(out, Recount::Busy);
        assert_eq!(w.load(Relaxed), word::with_value(word::empty(0), 5));
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
