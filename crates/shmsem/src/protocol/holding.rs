//! A holder record's word: `held << 3 | WANTS_MORE << 2 | COUNTED << 1 | BUSY`, `held` a
//! 61-bit two's-complement weight in the high bits.
//!
//! | `BUSY` | `COUNTED` | meaning |
//! |---|---|---|
//! | 0 | 0 | at rest: `held` is what the lane holds, and it is not counted as a waiter |
//! | 0 | 1 | at rest, and counted once in the word's waiter count (`WANTS_MORE`: for more than 1) |
//! | 1 | any | a compare-exchange of the word is in flight; the other bits are as before it |
//!
//! The weight sits above the flags so that a change of weight is one addition to the whole word
//! ([`add`]): it wraps at the top like any two's-complement number and never carries into a
//! flag, and `held` is one arithmetic shift.
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// A record holding `held`, marked busy if `busy`.
    pub(in crate::protocol) fn record(held: i64, busy: bool) -> AtomicU64 {
        let bits = of(held);
        AtomicU64::new(if busy { bits | BUSY } else { bits })
    }

    #[test]
    fn holding_word_round_trips_signed_weights() {
        for weight in [0, 1, -1, 5, -7, (1 << 40), -(1 << 40)] {
            let bits = of(weight);
            assert_eq!(held(bits), weight);
            assert_eq!(held(bits | BUSY), weight);
            assert!(!is_busy(bits));
        }
    }

    #[test]
    fn flags_never_carry_into_the_weight_and_waiter_flags_survive_a_new_weight() {
        let counted = of(3) | COUNTED | WANTS_MORE;
        assert_eq!(held(add(counted, -5)), -2);
        assert!(is_counted(add(counted, -5)));
        assert_eq!(with_held(counted | BUSY, 7), of(7) | COUNTED | WANTS_MORE);
        assert_eq!(uncounted(counted), of(3));
        assert!(holds_nothing(of(0)) && holds_nothing(of(-1)) && !holds_nothing(of(1)));
        // A corrupted word decodes to some weight the recount bounds, never a panic.
        assert_eq!(held(u64::MAX), -1);
        assert_eq!(held(1 << 63), i64::MIN >> 3);
    }
}
