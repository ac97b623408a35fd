//! The two layouts several packed words share, so that each is written once: a 64-bit word of
//! a 16-bit, a 16-bit and a 32-bit field ([`wide`]), and a 32-bit word of a generation above a
//! kind or state ([`Tagged`]). The words themselves name their fields; these only place bits.

/// A 64-bit word of three fields, high to low:
///
/// ```text
///  63          48 47          32 31                          0
/// +--------------+--------------+-----------------------------+
/// |     top      |    middle    |             low             |
/// +--------------+--------------+-----------------------------+
/// ```
pub(super) mod wide {
    /// Shift of the top field.
    pub const TOP_SHIFT: u32 = 48;
    /// Shift of the middle field.
    pub const MIDDLE_SHIFT: u32 = 32;

    /// `top` (its low 16 bits; the rest is shifted out), `middle` and `low` in one word.
    #[inline]
    pub const fn join(top: u64, middle: u16, low: u32) -> u64 {
        top << TOP_SHIFT | (middle as u64) << MIDDLE_SHIFT | low as u64
    }

    /// The top and middle fields together, to compare both at once.
    #[inline]
    pub const fn upper(bits: u64) -> u64 {
        bits >> MIDDLE_SHIFT
    }

    /// The middle field.
    #[inline]
    pub const fn middle(bits: u64) -> u16 {
        (bits >> MIDDLE_SHIFT) as u16
    }

    /// The low field.
    #[inline]
    pub const fn low(bits: u64) -> u32 {
        bits as u32
    }
}

/// A 32-bit word of a generation above a tag (a kind, a state) in the low `tag_bits` bits.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tagged {
    /// Bits of the tag; the generation has the rest.
    pub tag_bits: u32,
}

impl Tagged {
    /// Bits of the tag.
    #[inline]
    pub const fn tag_mask(self) -> u32 {
        (1 << self.tag_bits) - 1
    }

    /// `tag` (its low `tag_bits` bits) in generation `generation` (the bits that fit above it).
    #[inline]
    pub const fn join(self, generation: u32, tag: u32) -> u32 {
        generation << self.tag_bits | (tag & self.tag_mask())
    }

    /// The generation.
    #[inline]
    pub const fn generation(self, bits: u32) -> u32 {
        bits >> self.tag_bits
    }

    /// The tag.
    #[inline]
    pub const fn tag(self, bits: u32) -> u32 {
        bits & self.tag_mask()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_fields_round_trip_and_the_top_keeps_16_bits() {
        let bits = wide::join(0x1_ABCD, 0x1234, 0xDEAD_BEEF);
        assert_eq!(bits, 0xABCD_1234_DEAD_BEEF);
        assert_eq!((wide::middle(bits), wide::low(bits)), (0x1234, 0xDEAD_BEEF));
        assert_eq!(wide::upper(bits), 0xABCD_1234);
    }

    #[test]
    fn tagged_fields_round_trip_and_never_spill() {
        let t = Tagged { tag_bits: 8 };
        let bits = t.join(0x1AB_CDEF, 0x1FF);
        assert_eq!(bits, 0xABCD_EFFF);
        assert_eq!((t.generation(bits), t.tag(bits)), (0xAB_CDEF, 0xFF));
    }
}
