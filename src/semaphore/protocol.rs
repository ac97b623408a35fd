//! The counter protocol: every change to a semaphore's word, together with the holder record of
//! the lane that makes it. Generic over [`Atomic64`], so that the same code runs on a segment
//! and, under loom, on plain memory.
//!
//! # The crash-safe protocol
//!
//! Taking weight touches two places, the semaphore's word and the caller's holder record, and no
//! single instruction covers both. A process killed between the two must leave a state from
//! which a reclaimer can compute the true value. Each change is bracketed by an *intent*:
//!
//! ```text
//! acquire(w): intent := w;  CAS word.value += w;  held += w;  intent := 0
//! release(n): intent := n;  CAS word.value -= n;  held -= n;  intent := 0
//! ```
//!
//! The intent is written only by the record's *operator*: the owning thread lane while its
//! process lives, the reclaimer that holds the process slot's lock once it has died. So it is a
//! plain store, not a read-modify-write, and the uncontended acquire + release costs two
//! compare-exchanges, like glibc's `sem_wait` + `sem_post`.
//!
//! A reclaimer never guesses whether a dead lane's compare-exchange happened. It [`recount`]s:
//!
//! 1. set `FROZEN` in the word: from then on no compare-exchange that changes the value succeeds;
//! 2. wait until every record with a live operator shows `intent == 0`. A lane that was between
//!    setting its intent and its compare-exchange sees `FROZEN`, clears its intent and waits; a
//!    lane that had already changed the word finishes its record without touching the word again;
//! 3. the true value is then `Σ held` over the records of live holders, exactly: every applied
//!    change of a live lane is in its `held`, and nothing a dead lane did counts any more;
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
//!   released happens-before what the new holder does. *Release* publishes the intent stored just
//!   before it to a reclaimer, whose freezing read-modify-write reads the word later in its
//!   modification order and so synchronises with it (a release sequence).
//! * A release compare-exchange is `Release` for the same two reasons.
//! * Intents and `held` are stored `Relaxed` before the compare-exchange (the compare-exchange
//!   orders them) and the closing `intent := 0` is `Release`, paired with the reclaimer's
//!   `Acquire` load: a reclaimer that sees the intent cleared also sees the new `held`.
//! * The unfreezing store is `Release`, so the recounted value is seen together with the cleared
//!   dead records by any later acquirer.

use std::sync::atomic::Ordering::{self, AcqRel, Acquire, Relaxed, Release};

use super::word::{self, Wake};

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

/// The intent of an acquire of `weight` (the weight is kept for diagnostics only).
pub const INTENT_ACQUIRE: u64 = 1 << 62;
/// The intent of a release of `count`.
pub const INTENT_RELEASE: u64 = 2 << 62;

/// A semaphore's word seen through one lane's holder record.
#[derive(Debug)]
pub struct Lane<'a, A> {
    /// The semaphore's state word.
    pub word: &'a A,
    /// The lane's held weight, as `i64` bits.
    pub held: &'a A,
    /// The lane's intent.
    pub intent: &'a A,
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
        let mut current = self.word.load(Relaxed);
        let mut announced = false;
        loop {
            if word::generation(current) != generation {
                break self.withdraw(announced, Refused::Removed);
            }
            if word::is_frozen(current) {
                break self.withdraw(announced, Refused::Frozen(current));
            }
            let Some(new) = word::take(current, weight, capacity, counted) else {
                break self.withdraw(announced, Refused::Full(current));
            };
            if !announced {
                self.intent.store(INTENT_ACQUIRE | weight as u64, Relaxed);
                announced = true;
            }
            // AcqRel: see "Notes about memory ordering".
            match self.word.compare_exchange(current, new, AcqRel, Relaxed) {
                Ok(before) => {
                    let held = self.held.load(Relaxed) as i64;
                    self.held
                        .store(held.wrapping_add(weight as i64) as u64, Relaxed);
                    self.intent.store(0, Release);
                    break Ok(before);
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Give back `count`. Returns whom to wake.
    #[inline]
    pub fn give(&self, generation: u16, count: u32) -> Result<Wake, Refused> {
        let mut current = self.word.load(Relaxed);
        let mut announced = false;
        loop {
            if word::generation(current) != generation {
                break self.withdraw(announced, Refused::Removed);
            }
            if word::is_frozen(current) {
                break self.withdraw(announced, Refused::Frozen(current));
            }
            let Some(new) = word::give(current, count) else {
                break self.withdraw(announced, Refused::Underflow(current));
            };
            if !announced {
                self.intent.store(INTENT_RELEASE | count as u64, Relaxed);
                announced = true;
            }
            // Release: see "Notes about memory ordering".
            match self.word.compare_exchange(current, new, Release, Relaxed) {
                Ok(before) => {
                    let held = self.held.load(Relaxed) as i64;
                    self.held
                        .store(held.wrapping_sub(count as i64) as u64, Relaxed);
                    self.intent.store(0, Release);
                    break Ok(word::wake_count(before, count));
                }
                Err(actual) => current = actual,
            }
        }
    }

    #[inline]
    fn withdraw<T>(&self, announced: bool, why: Refused) -> Result<T, Refused> {
        if announced {
            self.intent.store(0, Release);
        }
        Err(why)
    }
}

/// Count one more waiter for `weight`. Returns the word after, or `None` when the generation
/// changed. A saturated count leaves the word alone and reports `Some(false)`.
pub fn count_waiter<A: Atomic64>(word: &A, generation: u16, weight: u32) -> Option<(u64, bool)> {
    let mut current = word.load(Relaxed);
    loop {
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
    /// A live process may be changing it: wait for its intent to clear, then count it.
    Live,
    /// The holder lives but nobody operates the record now (the recounter holds its lock): an
    /// intent left on it was abandoned by a dead operator and is rolled back. Count it.
    Quiescent,
    /// The holder is dead and the recounter holds its lock: do not count it; clear it.
    Dead,
}

/// One holder record of the semaphore being recounted.
#[derive(Debug)]
pub struct Counted<'a, A> {
    /// The record's held weight.
    pub held: &'a A,
    /// The record's intent.
    pub intent: &'a A,
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
    /// A live operator did not clear its intent in time; the word was unfrozen unchanged.
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
/// `held` after it without the word. `settle` is called between polls of live intents and returns
/// `false` once the caller's patience is exhausted.
pub fn recount<'a, A: Atomic64 + 'a>(
    word: &A,
    generation: u16,
    collect: impl FnOnce() -> Vec<Counted<'a, A>>,
    mut settle: impl FnMut() -> bool,
) -> Recount {
    // 1. Freeze (or adopt a word a dead recounter left frozen).
    let mut current = word.load(Relaxed);
    loop {
        if word::generation(current) != generation {
            return Recount::Removed;
        }
        // AcqRel: acquire every lane's intent published by its value-changing compare-exchange.
        match word.compare_exchange(current, current | word::FROZEN, AcqRel, Relaxed) {
            Ok(_) => break,
            Err(actual) => current = actual,
        }
    }
    let before = word::value(current);
    let records = collect();

    // 2. Quiesce live operators.
    while records
        .iter()
        .any(|r| r.operator == Operator::Live && r.intent.load(Acquire) != 0)
    {
        if !settle() {
            unfreeze(word, None);
            return Recount::Busy;
        }
    }

    // 3. Sum what live holders hold.
    let mut sum: i64 = 0;
    for r in records.iter().filter(|r| r.operator != Operator::Dead) {
        sum = sum.saturating_add(r.held.load(Acquire) as i64);
    }
    let Ok(after) = u32::try_from(sum) else {
        unfreeze(word, None);
        return Recount::Corrupt;
    };
    if after > word::MAX_CAPACITY {
        unfreeze(word, None);
        return Recount::Corrupt;
    }

    // 4. Clear dead records and abandoned intents, then publish.
    for r in &records {
        match r.operator {
            Operator::Dead => {
                r.held.store(0, Relaxed);
                r.intent.store(0, Relaxed);
            }
            Operator::Quiescent => r.intent.store(0, Relaxed),
            Operator::Live => {}
        }
    }
    unfreeze(word, Some(after));
    Recount::Done { before, after }
}

/// Clear `FROZEN`, setting the value to `value` if given. Waiter counts may have changed while
/// frozen, so this is a compare-exchange loop; only the value and the flag are ours.
fn unfreeze<A: Atomic64>(word: &A, value: Option<u32>) {
    let mut current = word.load(Relaxed);
    loop {
        let mut new = current & !word::FROZEN;
        if let Some(v) = value {
            new = word::with_value(new, v);
        }
        // Release: see "Notes about memory ordering".
        match word.compare_exchange(current, new, Release, Relaxed) {
            Ok(_) => return,
            Err(actual) => current = actual,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    struct Rec {
        held: AtomicU64,
        intent: AtomicU64,
    }
    fn rec() -> Rec {
        Rec {
            held: AtomicU64::new(0),
            intent: AtomicU64::new(0),
        }
    }

    #[test]
    fn take_and_give_keep_word_and_record_in_step() {
        let w = AtomicU64::new(word::empty(3));
        let r = rec();
        let lane = Lane {
            word: &w,
            held: &r.held,
            intent: &r.intent,
        };
        lane.try_take(3, 2, 3, false).unwrap();
        assert_eq!(word::value(w.load(Relaxed)), 2);
        assert_eq!(r.held.load(Relaxed), 2);
        assert!(matches!(
            lane.try_take(3, 2, 3, false),
            Err(Refused::Full(_))
        ));
        assert_eq!(
            r.intent.load(Relaxed),
            0,
            "a refused attempt leaves no intent"
        );
        assert_eq!(lane.give(3, 2), Ok(Wake::None));
        assert_eq!(r.held.load(Relaxed), 0);
        assert_eq!(lane.try_take(4, 1, 3, false), Err(Refused::Removed));
        assert!(matches!(lane.give(3, 1), Err(Refused::Underflow(_))));
    }

    #[test]
    fn recount_excludes_dead_and_rolls_back_abandoned_intents() {
        // Live lane holds 2; a dead lane held 3 and was mid-acquire of 1 (applied);
        // an external holder holds 1 and has an abandoned release intent (not applied).
        let w = AtomicU64::new(word::with_value(word::empty(0), 2 + 3 + 1 + 1));
        let (live, dead, ext) = (rec(), rec(), rec());
        live.held.store(2, Relaxed);
        dead.held.store(3, Relaxed);
        dead.intent.store(INTENT_ACQUIRE | 1, Relaxed);
        ext.held.store(1, Relaxed);
        ext.intent.store(INTENT_RELEASE | 1, Relaxed);
        let records = [
            Counted {
                held: &live.held,
                intent: &live.intent,
                operator: Operator::Live,
            },
            Counted {
                held: &dead.held,
                intent: &dead.intent,
                operator: Operator::Dead,
            },
            Counted {
                held: &ext.held,
                intent: &ext.intent,
                operator: Operator::Quiescent,
            },
        ];
        let out = recount(&w, 0, || records.into(), || true);
        assert_eq!(
            out,
            Recount::Done {
                before: 7,
                after: 3
            }
        );
        assert_eq!(word::value(w.load(Relaxed)), 3);
        assert!(!word::is_frozen(w.load(Relaxed)));
        assert_eq!(dead.held.load(Relaxed), 0);
        assert_eq!(ext.intent.load(Relaxed), 0);
    }

    #[test]
    fn recount_gives_up_on_a_busy_live_lane_and_changes_nothing() {
        let w = AtomicU64::new(word::with_value(word::empty(0), 5));
        let live = rec();
        live.intent.store(INTENT_ACQUIRE | 1, Relaxed);
        let records = [Counted {
            held: &live.held,
            intent: &live.intent,
            operator: Operator::Live,
        }];
        let mut polls = 0;
        let out = recount(
            &w,
            0,
            || records.into(),
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
        let r = rec();
        let lane = Lane {
            word: &w,
            held: &r.held,
            intent: &r.intent,
        };
        assert!(matches!(
            lane.try_take(0, 1, 1, false),
            Err(Refused::Frozen(_))
        ));
        assert_eq!(r.intent.load(Relaxed), 0);
    }
}
