//! The packed words a handle keeps in its own memory: which life of which record it names, where
//! its last holding was recorded, and the weight entered through it. One typed encoder per
//! word, so that nobody shifts bits by hand. They never live in the segment, but a decoder
//! still takes any bits and returns fields the caller compares, never a panic.

use super::{fields::wide, keys::Found};

/// Bits of an incarnation in a packed life (see [`pack`]).
pub const LIFE_BITS: u32 = 50;
/// Incarnations stay below this, so that [`pack`] can put one with a record index in 64 bits.
pub const INCARNATION_LIMIT: u64 = 1 << LIFE_BITS;
/// How many generations there are: an incarnation's low 16 bits are its generation.
pub const GENERATIONS: u64 = 1 << 16;

/// The generation of incarnation `life`: its low 16 bits.
#[inline]
pub const fn generation_of(life: u64) -> u16 {
    life as u16
}

/// Incarnation `life` with its generation replaced by `generation`.
#[inline]
pub const fn with_generation(life: u64, generation: u16) -> u64 {
    (life & !(GENERATIONS - 1)) | generation as u64
}

/// A record index and an incarnation in one word, so that threads racing to re-create a
/// semaphore never leave a handle with one of each:
///
/// ```text
///  63            50 49                                     0
/// +----------------+----------------------------------------+
/// |  record index  |   incarnation (below INCARNATION_LIMIT) |
/// +----------------+----------------------------------------+
/// ```
///
/// The record index must be below `1 << (64 - LIFE_BITS)`.
#[inline]
pub const fn pack(found: Found, life: u64) -> u64 {
    (found.index as u64) << LIFE_BITS | (life & (INCARNATION_LIMIT - 1))
}

/// The record, generation and incarnation [`pack`] put in `bits`.
#[inline]
pub const fn unpack(bits: u64) -> (Found, u64) {
    let life = bits & (INCARNATION_LIMIT - 1);
    (
        Found {
            index: (bits >> LIFE_BITS) as u32,
            generation: generation_of(life),
        },
        life,
    )
}

packed_word! {
    /// Where a holding is recorded, as a handle caches it: the fork epoch it was recorded in, the
    /// lane, and the holder record.
    ///
    /// ```text
    ///  63           48 47          32 31                         0
    /// +---------------+--------------+----------------------------+
    /// | epoch (low 16)|     lane     |        holder record       |
    /// +---------------+--------------+----------------------------+
    /// ```
    ///
    /// [`Held::EMPTY`] (every bit set) is nothing cached: [`Held::is_of`] is false for it, whatever
    /// the epoch and lane.
    pub struct Held(u64);
}

impl Held {
    /// Nothing cached.
    pub const EMPTY: u64 = u64::MAX;
    /// Holder record `record` of `lane`, recorded in fork epoch `epoch` (its low 16 bits).
    #[inline]
    pub const fn new(epoch: u32, lane: u16, record: u32) -> Held {
        Held(wide::join(epoch as u64, lane, record))
    }

    /// Recorded by `lane` in fork epoch `epoch` (so not inherited through a fork), and not
    /// [`Held::EMPTY`].
    #[inline]
    pub const fn is_of(self, epoch: u32, lane: u16) -> bool {
        self.0 != Held::EMPTY && wide::upper(self.0) == wide::upper(Held::new(epoch, lane, 0).0)
    }

    /// The holder record.
    #[inline]
    pub const fn record(self) -> u32 {
        wide::low(self.0)
    }
}

packed_word! {
    /// Weight entered (taken without a guard) by this process through a handle: the fork epoch it
    /// was entered in, the generation of the life it was entered on, and the weight.
    ///
    /// ```text
    ///  63           48 47          32 31                         0
    /// +---------------+--------------+----------------------------+
    /// | epoch (low 16)|  generation  |           weight           |
    /// +---------------+--------------+----------------------------+
    /// ```
    ///
    /// Weight entered in another epoch (a forked child reads its parent's) or on another life (one
    /// removed since) counts as none: see [`Entered::weight`].
    pub struct Entered(u64);
}

impl Entered {
    /// `weight` entered on generation `generation` in fork epoch `epoch` (its low 16 bits).
    #[inline]
    pub const fn new(epoch: u32, generation: u16, weight: u32) -> Entered {
        Entered(wide::join(epoch as u64, generation, weight))
    }

    /// The weight entered in fork epoch `epoch` on generation `generation`; 0 when the word is
    /// of another epoch or generation.
    #[inline]
    pub const fn weight(self, epoch: u32, generation: u16) -> u64 {
        if wide::upper(self.0) == wide::upper(Entered::new(epoch, generation, 0).0) {
            wide::low(self.0) as u64
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_lives_round_trip_at_their_field_limits() {
        for (index, life) in [
            (0, 0),
            (5, 0x1_0007),
            ((1 << 14) - 1, INCARNATION_LIMIT - 1),
        ] {
            let found = Found {
                index,
                generation: generation_of(life),
            };
            assert_eq!(unpack(pack(found, life)), (found, life));
        }
        // An incarnation past the limit loses its top bits rather than spill into the index.
        let (found, life) = unpack(pack(
            Found {
                index: 3,
                generation: 0,
            },
            INCARNATION_LIMIT,
        ));
        assert_eq!((found.index, life), (3, 0));
    }

    #[test]
    fn an_incarnation_keeps_its_generation_in_its_low_half() {
        let life = 7 * GENERATIONS + 9;
        assert_eq!(generation_of(life), 9);
        assert_eq!(with_generation(life, 0xFFFF), 7 * GENERATIONS + 0xFFFF);
        assert_eq!(generation_of(with_generation(u64::MAX, 0)), 0);
    }

    #[test]
    fn held_words_round_trip_and_belong_to_one_epoch_and_lane() {
        for (epoch, lane, record) in [(0, 0, 0), (3, 7, 99), (0x1_FFFE, u16::MAX - 1, u32::MAX)] {
            let held = Held::new(epoch, lane, record);
            assert_eq!(Held::from_bits(held.bits()), held);
            assert_eq!(held.record(), record);
            assert!(held.is_of(epoch, lane));
            assert!(
                held.is_of(epoch + 0x1_0000, lane),
                "epochs compare by their low 16 bits"
            );
            assert!(!held.is_of(epoch + 1, lane), "inherited through a fork");
            assert!(!held.is_of(epoch, lane ^ 1));
        }
    }

    #[test]
    fn an_empty_held_word_is_current_for_nobody() {
        let empty = Held::from_bits(Held::EMPTY);
        assert!(!empty.is_of(0xFFFF, u16::MAX));
        assert!(!empty.is_of(0, 0));
    }

    #[test]
    fn entered_weight_counts_only_in_its_epoch_and_generation() {
        let e = Entered::new(0x1_0005, u16::MAX, u32::MAX);
        assert_eq!(Entered::from_bits(e.bits()), e);
        assert_eq!(e.weight(5, u16::MAX), u64::from(u32::MAX));
        assert_eq!(e.weight(6, u16::MAX), 0, "a forked child's epoch");
        assert_eq!(e.weight(5, 0), 0, "another life");
        assert_eq!(Entered::from_bits(0).weight(0, 0), 0);
        assert_eq!(
            Entered::from_bits(u64::MAX).weight(0xFFFF, u16::MAX),
            0xFFFF_FFFF
        );
    }
}
