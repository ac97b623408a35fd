//! The transitions of one lane: every change a thread makes to a semaphore's word, together
//! with its own holder record, bracketed as the module docs of `protocol` describe.

use std::sync::atomic::Ordering::{self, AcqRel, Relaxed, Release, SeqCst};

use super::{Atomic64, Hook, MAX_RETRIES, NoHook, Refused, holding, word};

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

/// A semaphore's word seen through one lane's holder record.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
/// use shmsem::internals::{protocol::Lane, word};
///
/// let (w, rec) = (AtomicU64::new(word::empty(0)), AtomicU64::new(0));
/// let lane = Lane::new(&w, &rec);
/// assert!(lane.try_take(0, 2, 3, false).is_ok());
/// assert_eq!(word::value(w.load(Relaxed)), 2);
/// ```
#[derive(Debug)]
pub struct Lane<'a, A, H = NoHook> {
    /// The semaphore's state word.
    pub word: &'a A,
    /// The lane's holder record word (see [`holding`]).
    pub holding: &'a A,
    /// Called at the kill points of each transition (see `Hook`).
    pub hook: H,
}

impl<'a, A> Lane<'a, A> {
    /// The lane of record `holding` on `word`, with no kill points.
    #[inline(always)]
    pub const fn new(word: &'a A, holding: &'a A) -> Self {
        Lane {
            word,
            holding,
            hook: NoHook,
        }
    }
}

impl<'a, A, H> Lane<'a, A, H> {
    /// The same lane, calling `hook` at its kill points.
    #[inline(always)]
    pub fn with_hook<G: Hook>(self, hook: G) -> Lane<'a, A, G> {
        Lane {
            word: self.word,
            holding: self.holding,
            hook,
        }
    }
}

/// How one bracketed change marks and closes the record, and where its kill points are.
#[derive(Clone, Copy)]
struct Bracket {
    /// The record before the change (what a withdrawal puts back).
    mine: u64,
    /// The record while the change is in flight (`BUSY` set).
    mark: u64,
    /// The record after the change.
    closing: u64,
    /// The success ordering of the compare-exchange.
    order: Ordering,
    /// The kill points after the mark and after the compare-exchange.
    steps: [&'static str; 2],
}

impl Bracket {
    /// An acquire of `weight` by a lane whose record is `mine`; a `counted` waiter uncounts
    /// itself in the same compare-exchange.
    #[inline(always)]
    const fn take(mine: u64, weight: u32, counted: bool) -> Bracket {
        // A counted waiter was uncounted by the same compare-exchange.
        let rest = if counted {
            holding::uncounted(mine)
        } else {
            mine
        };
        Bracket {
            mine,
            mark: mine | holding::BUSY,
            closing: holding::with_held(rest, holding::held(mine).wrapping_add(weight as i64)),
            // AcqRel: see "Notes about memory ordering".
            order: AcqRel,
            steps: ["acquire:marked", "acquire:swapped"],
        }
    }

    /// A release of `count` by a lane whose record is `mine`.
    ///
    /// The mark carries the weight as it will be after the release: a recount that finds it
    /// abandoned by a dead operator of a live holder (`Quiescent`) counts the release as done.
    /// A release is a holder giving up, so assuming it happened can never admit two holders,
    /// while assuming it did not would leave the holder's record with weight another process
    /// may already have taken.
    #[inline(always)]
    const fn give(mine: u64, count: u32) -> Bracket {
        let after = holding::add(mine, -(count as i64));
        Bracket {
            mine,
            mark: after | holding::BUSY,
            closing: after,
            // Release: see "Notes about memory ordering".
            order: Release,
            steps: ["release:marked", "release:swapped"],
        }
    }
}

impl<A: Atomic64, H: Hook> Lane<'_, A, H> {
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
        // The value is below the capacity, so adding the weight changes nothing but the value.
        let b = Bracket {
            // Not busy and not counted: the closing record is one addition.
            closing: holding::add(mine, weight as i64),
            ..Bracket::take(mine, weight, false)
        };
        self.once(current, current + weight as u64, b)
            .then_some(mine)
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
        self.once(current, current - count as u64, Bracket::give(mine, count))
            .then_some(current)
    }

    /// One bracketed compare-exchange of the word from `current` to `new`, for the uncontended
    /// paths: whether it changed the word (if not, the record is as it was).
    #[inline(always)]
    fn once(&self, current: u64, new: u64, b: Bracket) -> bool {
        self.holding.store(b.mark, Relaxed);
        self.hook.reached(b.steps[0]);
        if self
            .word
            .compare_exchange(current, new, b.order, Relaxed)
            .is_err()
        {
            // Release: a reclaimer that sees the flag clear knows the word was not changed.
            self.holding.store(b.mine, Release);
            return false;
        }
        self.hook.reached(b.steps[1]);
        self.holding.store(b.closing, Release);
        true
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
        self.change(
            generation,
            Bracket::take(mine, weight, counted),
            |current| word::take(current, weight, capacity, counted).ok_or(Refused::Full(current)),
        )
    }

    /// Give back `count`. Returns the word before the change (see [`word::wake_count`] for
    /// whom to wake).
    #[inline]
    pub fn give(&self, generation: u16, count: u32) -> Result<u64, Refused> {
        // Relaxed: only this lane writes its record.
        let mine = self.holding.load(Relaxed);
        self.change(generation, Bracket::give(mine, count), |current| {
            word::give(current, count).ok_or(Refused::Underflow(current))
        })
    }

    /// The step [`Self::try_take`] and [`Self::give`] share: compare-exchange the word to
    /// `next(current)`, bracketed by `b`, while it stays of `generation`, unfrozen and changes
    /// fewer than [`MAX_RETRIES`] times under it. The record is marked once, before the first
    /// exchange, and put back as it was when the change is refused.
    #[inline(always)]
    fn change(
        &self,
        generation: u16,
        b: Bracket,
        next: impl Fn(u64) -> Result<u64, Refused>,
    ) -> Result<u64, Refused> {
        let mut current = self.word.load(Relaxed);
        let mut announced = false;
        let mut retries = 0;
        loop {
            if word::generation(current) != generation {
                break self.withdraw(announced, b.mine, Refused::Removed);
            }
            if word::is_frozen(current) {
                break self.withdraw(announced, b.mine, Refused::Frozen(current));
            }
            if retries == MAX_RETRIES {
                break self.withdraw(announced, b.mine, Refused::Contended);
            }
            retries += 1;
            let new = match next(current) {
                Ok(new) => new,
                Err(why) => break self.withdraw(announced, b.mine, why),
            };
            if !announced {
                self.holding.store(b.mark, Relaxed);
                announced = true;
                self.hook.reached(b.steps[0]);
            }
            match self.word.compare_exchange(current, new, b.order, Relaxed) {
                Ok(before) => {
                    self.hook.reached(b.steps[1]);
                    self.holding.store(b.closing, Release);
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

impl<A: Atomic64, H: Hook> Lane<'_, A, H> {
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
                self.hook.reached("wait:marked");
            }
            // Release: publishes the BUSY mark to a recounter's freeze, as a value change does.
            // SeqCst: it may announce a sleep (see `clear_sleeping`).
            match self.word.compare_exchange(current, new, SeqCst, Relaxed) {
                Ok(_) => {
                    self.hook.reached("wait:counted");
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
    use crate::protocol::holding::tests::record as rec;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn take_and_give_keep_word_and_record_in_step() {
        let w = AtomicU64::new(word::empty(3));
        let r = rec(0, false);
        let lane = Lane::new(&w, &r);
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
        let lane = Lane::new(&w, &r);
        assert!(matches!(
            lane.try_take(0, 1, 1, false),
            Err(Refused::Frozen(_))
        ));
        assert_eq!(r.load(Relaxed), holding::of(4));
    }
}
