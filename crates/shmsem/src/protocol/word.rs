//! The 64-bit state word of a semaphore, as pure functions on `u64` values: its one job is to
//! say what a word means and what it becomes; the transitions that write it are in `lane`.
//!
//! ```text
//!  63            48 47  46  45                 32 31  30                          0
//! +----------------+---+---+---------------------+---+-----------------------------+
//! |   generation   | F | H |       waiters       | S |  value: weight held now     |
//! +----------------+---+---+---------------------+---+-----------------------------+
//!                                                  \____ the futex word (low half) ____/
//! ```
//!
//! # State table
//!
//! | F (`FROZEN`) | H (`HEAVY`) | S (`SLEEPING`) | waiters | meaning |
//! |---|---|---|---|---|
//! | 0 | 0 | 0 | 0 | Nobody waits: a release changes the value and makes no system call. |
//! | 0 | any | 0 | n > 0 | About n waiters, none asleep yet (spinning, or woken and not yet back): a release changes the value, which each of them re-checks before it sleeps, and makes no system call. |
//! | 0 | 0 | 1 | n > 0 | About n waiters for weight 1, some asleep: a release of k wakes k of them. |
//! | 0 | 1 | 1 | n > 0 | Some waiter wants more than 1: a release wakes all, each re-checks. |
//! | 1 | any | any | any | A reclaimer is recounting the value and the waiter count from the holder records; no acquire, release or count may change the word until it clears F. |
//!
//! * **value** is the sum of the weights held now, not what is available: the capacity lives in its
//!   own field and may change at run time without touching this word. A waiter sleeps on the value
//!   it saw; any release changes the value and so cannot slip past a sleeping waiter.
//! * **waiters** counts the waiters, as in glibc's `new_sem`: a waiter adds itself in a
//!   compare-exchange that saw the value too high, and removes itself in the same one that takes
//!   its weight. Each change is bracketed in the waiter's holder record (see
//!   `protocol::holding::COUNTED`), so a recount knows the exact count of live waiters and
//!   publishes it: a waiter killed while counted stops counting at the next recount. It
//!   saturates at [`MAX_WAITERS`]; a waiter that cannot count itself polls.
//! * **S** (`SLEEPING`, parking_lot's `PARKED` bit) says a counted waiter may be asleep on the
//!   futex. A waiter sets it in a compare-exchange against the word it is about to sleep on (so
//!   a release in between fails the exchange, and the waiter looks again instead of sleeping);
//!   a release makes the wake system call only when it is set, and clears it in its own
//!   compare-exchange when the wake reaches every counted waiter (all of them, or at least as
//!   many as there are counted). So a waiter that has not gone to sleep costs releases nothing,
//!   and no wake is lost: a sleeper is always counted, and S stays set until a wake covered it.
//!   S lives in the futex half, and the waiter sleeps on value and S together: a release that
//!   cleared S and woke nobody (the waiter was not asleep yet) changes the futex word even if
//!   an acquire brought the value back before the waiter slept, so the sleep returns at once
//!   instead of waiting for a wake that already happened.
//! * **generation** is the low half of the record's incarnation (see `table`). Every
//!   compare-exchange compares the whole word, and a generation is never reused while anything
//!   still names it, so a handle to a removed semaphore can never take weight from a new one
//!   that reused the record.

/// Bits of the value.
pub const VALUE_MASK: u64 = 0x7FFF_FFFF;
/// Set while a counted waiter may be asleep on the futex: the top bit of the futex half.
pub const SLEEPING: u64 = 1 << 31;
/// Shift of the waiter count.
pub const WAITERS_SHIFT: u32 = 32;
/// The waiter count saturates here.
pub const MAX_WAITERS: u64 = (1 << 14) - 1;
/// One waiter.
pub const ONE_WAITER: u64 = 1 << WAITERS_SHIFT;
/// Bits of the waiter count.
pub const WAITERS_MASK: u64 = MAX_WAITERS << WAITERS_SHIFT;
/// Set while some counted waiter wants a weight above 1.
pub const HEAVY: u64 = 1 << 46;
/// Set while a reclaimer recounts the value.
pub const FROZEN: u64 = 1 << 47;
/// Shift of the generation.
pub const GENERATION_SHIFT: u32 = 48;
const _: () = assert!(
    FROZEN == 1 << (GENERATION_SHIFT - 1)
        && HEAVY == FROZEN >> 1
        && WAITERS_MASK < HEAVY
        && SLEEPING > VALUE_MASK
        && (MAX_CAPACITY as u64) < VALUE_MASK
);
/// The largest capacity, chosen so that `value + weight` never overflows 32 bits.
pub const MAX_CAPACITY: u32 = 1 << 30;

/// The weight held now.
#[inline]
pub const fn value(word: u64) -> u32 {
    (word & VALUE_MASK) as u32
}

/// The futex half: the value and [`SLEEPING`], what a waiter sleeps on.
#[inline]
pub const fn futex(word: u64) -> u32 {
    word as u32
}

/// The waiter-count hint.
#[inline]
pub const fn waiters(word: u64) -> u64 {
    (word & WAITERS_MASK) >> WAITERS_SHIFT
}

/// The name-table generation the word belongs to.
#[inline]
pub const fn generation(word: u64) -> u16 {
    (word >> GENERATION_SHIFT) as u16
}

/// A reclaimer is recounting: the value must not change.
#[inline]
pub const fn is_frozen(word: u64) -> bool {
    word & FROZEN != 0
}

/// A release must wake every waiter, not just as many as the weight it gave back.
#[inline]
pub const fn is_heavy(word: u64) -> bool {
    word & HEAVY != 0
}

/// The word belongs to the life whose fresh word is `empty` (see [`empty`]), is not frozen, and
/// no waiter sleeps on it or wants more than 1: a release changes the value and wakes nobody.
/// (One exclusive-or and one mask.)
#[inline]
pub const fn is_open(word: u64, empty: u64) -> bool {
    (word ^ empty) & OPEN_MASK == 0
}

/// What [`is_open`] compares: the generation, `FROZEN`, `HEAVY` and `SLEEPING`.
const OPEN_MASK: u64 = !((1 << (GENERATION_SHIFT - 2)) - 1) | SLEEPING;

/// The word belongs to the life whose fresh word is `empty`, is not frozen and counts no waiter:
/// an acquire need look at nothing but the value. (One exclusive-or and one shift.)
#[inline]
pub const fn is_quiet(word: u64, empty: u64) -> bool {
    (word ^ empty) >> WAITERS_SHIFT == 0
}

/// The word of a fresh record of generation `generation`: nothing held, nobody waiting.
#[inline]
pub const fn empty(generation: u16) -> u64 {
    (generation as u64) << GENERATION_SHIFT
}

/// The same word with the value replaced.
#[inline]
pub const fn with_value(word: u64, value: u32) -> u64 {
    (word & !VALUE_MASK) | value as u64
}

/// The same word with the value, the waiter count and [`HEAVY`] replaced, as a recount
/// publishes them: `HEAVY` only while some waiter is counted, and the count saturated at
/// [`MAX_WAITERS`].
#[inline]
pub const fn with_counts(word: u64, value: u32, waiters: u64, heavy: bool) -> u64 {
    let rest = word & !(VALUE_MASK | WAITERS_MASK | HEAVY);
    let waiters = if waiters > MAX_WAITERS {
        MAX_WAITERS
    } else {
        waiters
    };
    let heavy = if heavy && waiters > 0 { HEAVY } else { 0 };
    rest | (value as u64 & VALUE_MASK) | (waiters << WAITERS_SHIFT) | heavy
}

/// What is available under `capacity`; zero when the value is at or above it.
#[inline]
pub const fn available(word: u64, capacity: u32) -> u32 {
    capacity.saturating_sub(value(word))
}

/// The word after taking `weight`, or `None` when it does not fit under `capacity` or the word
/// is frozen. A counted waiter (`counted`) uncounts itself in the same step.
#[inline]
pub const fn take(word: u64, weight: u32, capacity: u32, counted: bool) -> Option<u64> {
    if is_frozen(word) {
        return None;
    }
    // `value` may exceed `capacity` after the capacity was lowered; nothing fits then.
    let v = value(word) as u64;
    if v + weight as u64 > capacity as u64 {
        return None;
    }
    let taken = word + weight as u64;
    Some(if counted { uncount(taken) } else { taken })
}

/// The word after giving back `count`, or `None` when the value is smaller than `count` (a
/// corrupted word, or a release of weight that was never taken) or the word is frozen. The
/// release's wake ([`wake_count`]) reaches every counted waiter when it wakes all or at least as
/// many as are counted; then nobody can be left asleep, and [`SLEEPING`] is cleared.
#[inline]
pub const fn give(word: u64, count: u32) -> Option<u64> {
    if is_frozen(word) || value(word) < count {
        return None;
    }
    let given = word - count as u64;
    Some(if is_heavy(word) || waiters(word) <= count as u64 {
        given & !SLEEPING
    } else {
        given
    })
}

/// A counted waiter may be asleep.
#[inline]
pub const fn is_sleeping(word: u64) -> bool {
    word & SLEEPING != 0
}

/// The word with [`SLEEPING`] set, for a counted waiter about to sleep on it; `None` when it is
/// frozen (nothing changes a frozen word) or counts no waiter.
#[inline]
pub const fn sleeping(word: u64) -> Option<u64> {
    if is_frozen(word) || waiters(word) == 0 {
        return None;
    }
    Some(word | SLEEPING)
}

/// The word with one more counted waiter for `weight`, or `None` when the count is saturated.
#[inline]
pub const fn count(word: u64, weight: u32) -> Option<u64> {
    if waiters(word) >= MAX_WAITERS {
        return None;
    }
    let counted = word + ONE_WAITER;
    Some(if weight > 1 { counted | HEAVY } else { counted })
}

/// The word with one counted waiter fewer; the last one out clears [`HEAVY`] and [`SLEEPING`]
/// (nobody counted, so nobody asleep who relies on a wake).
#[inline]
pub const fn uncount(word: u64) -> u64 {
    if waiters(word) == 0 {
        return word & !(HEAVY | SLEEPING);
    }
    let uncounted = word - ONE_WAITER;
    if waiters(uncounted) == 0 {
        uncounted & !(HEAVY | SLEEPING)
    } else {
        uncounted
    }
}

/// How many sleepers a release of `count` should wake, judged from the word before it: nobody
/// unless a counted waiter may be asleep; all of them when some waiter wants more than 1, or
/// when no more are counted than `count` (the same condition on which [`give`] clears
/// [`SLEEPING`]); else `count`, and [`SLEEPING`] stays set for the next release. Only counted
/// waiters sleep on the futex (one that cannot count itself naps elsewhere), so a wake always
/// reaches a waiter the count knows.
#[inline]
pub const fn wake_count(word_before: u64, count: u32) -> Wake {
    if !is_sleeping(word_before) || waiters(word_before) == 0 {
        Wake::None
    } else if is_heavy(word_before) || waiters(word_before) <= count as u64 {
        Wake::All
    } else {
        Wake::Some(count)
    }
}

/// Whom a change of the word must wake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Nobody counted is asleep.
    None,
    /// Up to this many weight-1 waiters (fewer than are counted).
    Some(u32),
    /// Everyone: some waiter wants more than 1, no more are counted than were given back, or
    /// the capacity changed.
    All,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_respects_capacity_and_counts() {
        let w = empty(7);
        let w = take(w, 3, 5, false).unwrap();
        assert_eq!(value(w), 3);
        let w = take(w, 2, 5, false).unwrap();
        assert_eq!(value(w), 5);
        assert_eq!(take(w, 1, 5, false), None);
        assert_eq!(generation(w), 7);
        assert_eq!(available(w, 5), 0);
    }

    #[test]
    fn quiet_and_open_words() {
        let (mine, other) = (empty(9), empty(8));
        let w = with_value(mine, 3);
        assert!(is_quiet(w, mine) && is_open(w, mine));
        assert!(!is_quiet(w, other) && !is_open(w, other) && !is_open(w, empty(10)));
        let counted = count(w, 1).unwrap();
        assert!(!is_quiet(counted, mine) && is_open(counted, mine));
        assert!(!is_open(sleeping(counted).unwrap(), mine), "someone asleep");
        assert!(
            !is_open(count(w, 2).unwrap(), mine),
            "someone wants more than 1"
        );
        assert!(
            !is_quiet(count(w, 2).unwrap() & !WAITERS_MASK, mine),
            "HEAVY alone"
        );
        let frozen = w | FROZEN;
        assert!(!is_quiet(frozen, mine) && !is_open(frozen, mine));
        // The highest generation: no bit of the comparison falls off.
        let top = empty(u16::MAX);
        assert!(is_quiet(top, top) && is_open(top, top));
        assert!(!is_open(top | FROZEN, top) && !is_open(top, empty(u16::MAX - 1)));
    }

    #[test]
    fn lowered_capacity_admits_nothing_until_value_drops() {
        let w = with_value(empty(0), 4);
        assert_eq!(take(w, 1, 2, false), None);
        assert_eq!(available(w, 2), 0);
        let w = give(w, 3).unwrap();
        assert_eq!(take(w, 1, 2, false).map(value), Some(2));
    }

    #[test]
    fn waiters_count_and_heavy_flag() {
        let w = count(empty(1), 1).unwrap();
        assert_eq!(waiters(w), 1);
        assert!(!is_heavy(w));
        let w = count(w, 5).unwrap();
        assert!(is_heavy(w));
        assert_eq!(wake_count(w, 1), Wake::None, "nobody asleep yet");
        let w = sleeping(w).unwrap();
        assert_eq!(wake_count(w, 1), Wake::All);
        let w = uncount(w);
        assert!(is_heavy(w), "heavy stays while any waiter is counted");
        let w = take(w, 1, 1, true).unwrap();
        assert_eq!(waiters(w), 0);
        assert!(
            !is_heavy(w) && !is_sleeping(w),
            "the last one out clears H and S"
        );
        assert_eq!(wake_count(w, 1), Wake::None);
    }

    #[test]
    fn sleeping_flag_is_cleared_only_by_a_wake_that_covers_every_counted_waiter() {
        let three = sleeping(
            count(
                count(count(with_value(empty(4), 3), 1).unwrap(), 1).unwrap(),
                1,
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(waiters(three), 3);
        // Giving back 1 of 3: wake one, and the others stay announced.
        assert_eq!(wake_count(three, 1), Wake::Some(1));
        assert!(is_sleeping(give(three, 1).unwrap()));
        // Giving back 3: everyone counted is woken, so the flag goes.
        assert_eq!(wake_count(three, 3), Wake::All);
        assert!(!is_sleeping(give(three, 3).unwrap()));
        // A heavy waiter: every release wakes all and clears it.
        let heavy = sleeping(count(with_value(empty(4), 3), 2).unwrap()).unwrap();
        assert_eq!(wake_count(heavy, 1), Wake::All);
        assert!(!is_sleeping(give(heavy, 1).unwrap()));
        // Nobody may announce a sleep on a frozen word or one that counts nobody.
        assert_eq!(sleeping(three | FROZEN), None);
        assert_eq!(sleeping(with_value(empty(4), 3)), None);
        // A release of an announced word never takes the fast path.
        assert!(!is_open(three, empty(4)) && !is_quiet(three, empty(4)));
    }

    #[test]
    fn saturated_waiters_and_underflow_are_refused() {
        let w = empty(0) | WAITERS_MASK;
        assert_eq!(count(w, 1), None);
        assert_eq!(give(with_value(empty(0), 1), 2), None);
        assert_eq!(uncount(empty(3)), empty(3));
    }

    #[test]
    fn frozen_word_refuses_value_changes() {
        let w = with_value(empty(2), 1) | FROZEN;
        assert_eq!(take(w, 1, 10, false), None);
        assert_eq!(give(w, 1), None);
        assert!(
            count(w, 1).is_some(),
            "waiter counts may change while frozen"
        );
    }

    #[test]
    fn published_counts_replace_value_waiters_and_heavy_and_keep_the_rest() {
        let w = sleeping(count(with_value(empty(9), 5), 3).unwrap()).unwrap();
        let out = with_counts(w, 2, 4, true);
        assert_eq!((value(out), waiters(out), generation(out)), (2, 4, 9));
        assert!(
            is_heavy(out) && is_sleeping(out),
            "HEAVY set, SLEEPING kept"
        );
        let none = with_counts(w, 0, 0, true);
        assert!(!is_heavy(none), "no HEAVY without a counted waiter");
        assert_eq!(waiters(with_counts(w, 0, u64::MAX, false)), MAX_WAITERS);
        assert_eq!(value(with_counts(w, u32::MAX, 0, false)), VALUE_MASK as u32);
        assert!(!is_frozen(with_counts(w, u32::MAX, u64::MAX, false)));
    }

    #[test]
    fn value_never_carries_into_waiters() {
        let w = with_value(empty(0), MAX_CAPACITY);
        assert_eq!(take(w, MAX_CAPACITY, MAX_CAPACITY, false), None);
        let w = take(empty(0), MAX_CAPACITY, MAX_CAPACITY, false).unwrap();
        assert_eq!(waiters(w), 0);
    }
}
