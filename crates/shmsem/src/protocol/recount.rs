//! Removal and the recount: the two writes of a state word made for a whole semaphore rather
//! than for one lane. See the module docs of `protocol` for the protocol and the proof.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

use super::{Atomic64, Hook, MAX_RETRIES, holding, word};

/// Why [`remove`] left a word as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// Not forced, and weight is held (the value; a word frozen by a recount counts as held).
    InUse(u32),
    /// The word belongs to another generation: removed already.
    Gone,
}

/// Move the word of generation `generation` to an empty word of the next generation: the
/// removal of a semaphore, as one compare-exchange against the word that was read. Unless
/// `force`, only while nothing is held and no recount runs. An acquire whose compare-exchange
/// lands first makes this one fail, and the word is looked at again; one that comes after fails
/// on the generation. A recounter that unfreezes after it finds another generation and leaves
/// the word alone (see [`recount`]).
pub fn remove<A: Atomic64>(word: &A, generation: u16, force: bool) -> Result<(), Kept> {
    let next = word::empty(generation.wrapping_add(1));
    let mut current = word.load(Acquire);
    for _ in 0..MAX_RETRIES {
        if word::generation(current) != generation {
            return Err(Kept::Gone);
        }
        if !force && (word::value(current) != 0 || word::is_frozen(current)) {
            return Err(Kept::InUse(word::value(current)));
        }
        // AcqRel: acquire the last release (what its holder did is over); release the new word.
        match word.compare_exchange(current, next, AcqRel, Acquire) {
            Ok(_) => return Ok(()),
            Err(actual) => current = actual,
        }
    }
    Err(Kept::InUse(word::value(current)))
}

/// Who operates a holder record during a recount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// A live process may be changing it: wait until it is not busy, then count it.
    Live,
    /// The holder lives but nobody operates the record now (the recounter holds its lock): a busy
    /// flag left on it was abandoned by a dead operator. Count the weight the mark carries: an
    /// abandoned acquire is rolled back (the mark keeps the weight from before it), an abandoned
    /// release is rolled forward (its mark carries the weight after it). Nobody waits through
    /// such a record.
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
    /// The value and the waiter count were set; carries the value before and after.
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
    hook: impl Hook,
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
    hook.reached("reclaim:frozen");
    let records = collect();

    // 2. Quiesce live operators, and 3. sum what live holders hold and count the live waiters,
    // from records read while not busy. A live lane may mark its record after the freeze (its
    // compare-exchange then fails and it puts the record back): a busy record read during the
    // sum means exactly that, so the sum starts over once it is quiet again.
    let (sum, waiters, heavy) = loop {
        while records
            .iter()
            .any(|r| r.operator == Operator::Live && holding::is_busy(r.holding.load(Acquire)))
        {
            if !settle() {
                unfreeze(word, generation, None);
                return Recount::Busy;
            }
        }
        hook.reached("reclaim:quiesced");
        let mut sum: i64 = 0;
        let mut waiters: u64 = 0;
        let mut heavy = false;
        let mut quiet = true;
        for r in records.iter().filter(|r| r.operator != Operator::Dead) {
            let bits = r.holding.load(Acquire);
            if r.operator == Operator::Live && holding::is_busy(bits) {
                quiet = false;
                break;
            }
            // A quiescent record's abandoned mark counts as its operation's outcome: see
            // `Operator::Quiescent`.
            sum = sum.saturating_add(holding::held(bits));
            if r.operator == Operator::Live && holding::is_counted(bits) {
                waiters += 1;
                heavy |= bits & holding::WANTS_MORE != 0;
            }
        }
        if quiet {
            break (sum, waiters, heavy);
        }
        if !settle() {
            unfreeze(word, generation, None);
            return Recount::Busy;
        }
    };
    let after = match u32::try_from(sum) {
        Ok(v) if v <= word::MAX_CAPACITY => v,
        _ => {
            unfreeze(word, generation, None);
            return Recount::Corrupt;
        }
    };

    // 4. Clear dead records and settle abandoned marks as counted, then publish.
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
    hook.reached("reclaim:cleared");
    let counts = Counts {
        value: after,
        waiters: waiters.min(word::MAX_WAITERS),
        heavy,
    };
    if unfreeze(word, generation, Some(counts)) {
        Recount::Done { before, after }
    } else {
        Recount::Removed
    }
}

/// What a recount publishes.
#[derive(Debug, Clone, Copy)]
struct Counts {
    value: u32,
    waiters: u64,
    heavy: bool,
}

/// Clear `FROZEN` in generation `generation`, publishing `counts` if given. A compare-exchange
/// against the word read, so it never touches a word of another generation: a semaphore removed
/// (and perhaps created again) during the recount is left as it is. Nothing else changes a frozen
/// word, so the first attempt normally succeeds. Returns whether it unfroze the word.
fn unfreeze<A: Atomic64>(word: &A, generation: u16, counts: Option<Counts>) -> bool {
    let target = |current: u64| {
        let thawed = current & !word::FROZEN;
        match counts {
            None => thawed,
            Some(c) => word::with_counts(thawed, c.value, c.waiters, c.heavy),
        }
    };
    let mut current = word.load(Relaxed);
    for _ in 0..MAX_RETRIES {
        if word::generation(current) != generation || !word::is_frozen(current) {
            return false;
        }
        // Release: see "Notes about memory ordering".
        match word.compare_exchange(current, target(current), Release, Relaxed) {
            Ok(_) => return true,
            Err(actual) => current = actual,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{NoHook, holding::tests::record as rec};
    use std::sync::atomic::AtomicU64;

    #[test]
    fn recount_excludes_dead_and_rolls_back_abandoned_marks() {
        // Live lane holds 2; a dead lane held 3 and was mid-acquire of 1 (applied);
        // an external holder holds 1 and has an abandoned release mark (not applied).
        let w = AtomicU64::new(word::with_value(word::empty(0), 2 + 3 + 1 + 1));
        let (live, dead, ext) = (rec(2, false), rec(3, true), rec(1, true));
        let out = recount(
            &w,
            0,
            NoHook,
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
            NoHook,
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
}
