//! The packed words of the segment other than the state word and the holding: a holder record's
//! key, a fairness reservation, a recounter's name, a process slot's state and a name-table
//! record's slot. One typed encoder per word, so that nobody shifts bits by hand.
//!
//! Every decoder takes any bits, however a corrupted segment left them, and returns a field as
//! it is or `None`: a value out of range is the caller's to reject (against the segment's
//! limits, which this layer does not know), never a panic here.

use super::fields::{Tagged, wide};

/// A semaphore life as the words name it: a name-table record and the generation of its life
/// (see `table` for generations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Found {
    /// Record index.
    pub index: u32,
    /// Record generation.
    pub generation: u16,
}

/// The slot named by the `slot + 1` field at `shift` of `bits`: `None` when the field is 0.
#[inline]
const fn slot_field(bits: u64, shift: u32) -> Option<u32> {
    ((bits >> shift) as u32).checked_sub(1)
}

packed_word! {
    /// A holder record's `key`: which lane of which process slot the record belongs to, on which
    /// semaphore life. 0 is a free record.
    ///
    /// ```text
    ///  63          48 47          32 31          16 15           0
    /// +--------------+--------------+--------------+--------------+
    /// |   slot + 1   |     lane     | record index |  generation  |
    /// +--------------+--------------+--------------+--------------+
    /// ```
    ///
    /// | slot field | meaning |
    /// |---|---|
    /// | 0 | free: no slot owns the record (a key of all zeroes) |
    /// | n > 0 | claimed by slot `n - 1` (the caller checks it against the slot table's size) |
    pub struct HolderKey(u64);
}

impl HolderKey {
    /// Shift of the slot field (slot + 1).
    pub const SLOT_SHIFT: u32 = wide::TOP_SHIFT;
    /// Shift of the record index.
    pub const INDEX_SHIFT: u32 = 16;

    /// The key of the record of (`slot`, `lane`) on `found`. `slot` is below `0xFFFF` and
    /// `found.index` below `1 << 16` (the segment's tables are that small).
    #[inline]
    pub const fn new(slot: u32, lane: u16, found: Found) -> HolderKey {
        let life = found.index << Self::INDEX_SHIFT | found.generation as u32;
        HolderKey(wide::join(slot as u64 + 1, lane, life))
    }

    /// The slot that owns the record; `None` for a free record.
    #[inline]
    pub const fn slot(self) -> Option<u32> {
        slot_field(self.0, Self::SLOT_SHIFT)
    }

    /// The lane that owns the record.
    #[inline]
    pub const fn lane(self) -> u16 {
        wide::middle(self.0)
    }

    /// The semaphore life the record is on (meaningful only while the record is claimed).
    #[inline]
    pub const fn found(self) -> Found {
        let life = wide::low(self.0);
        Found {
            index: life >> Self::INDEX_SHIFT,
            generation: life as u16,
        }
    }

    /// Claimed, by `lane` of some slot, on `found`.
    #[inline]
    pub const fn names(self, lane: u16, found: Found) -> bool {
        let f = self.found();
        self.slot().is_some()
            && self.lane() == lane
            && f.index == found.index
            && f.generation == found.generation
    }
}

packed_word! {
    /// A semaphore's `reservation`: the waiter for more than 1 that holds the fairness reservation,
    /// and the weight it reserved. 0 is no reservation.
    ///
    /// ```text
    ///  63          48 47          32 31                          0
    /// +--------------+--------------+-----------------------------+
    /// |   slot + 1   |     lane     |       weight reserved       |
    /// +--------------+--------------+-----------------------------+
    /// ```
    ///
    /// Never 0 once made, since the slot field is at least 1.
    pub struct Reservation(u64);
}

impl Reservation {
    /// No reservation.
    pub const NONE: Reservation = Reservation(0);
    /// Shift of the slot field (slot + 1).
    pub const SLOT_SHIFT: u32 = wide::TOP_SHIFT;

    /// The reservation of waiter `lane` of process slot `slot` (below `0xFFFF`) for `weight`.
    #[inline]
    pub const fn new(slot: u32, lane: u16, weight: u32) -> Reservation {
        Reservation(wide::join(slot as u64 + 1, lane, weight))
    }

    /// Nobody reserves.
    #[inline]
    pub const fn is_none(self) -> bool {
        self.0 == 0
    }

    /// The process slot of the waiter that reserves; `None` when the slot field is 0 (no
    /// reservation, or a corrupted one that names nobody).
    #[inline]
    pub const fn slot(self) -> Option<u32> {
        slot_field(self.0, Self::SLOT_SHIFT)
    }

    /// The weight reserved.
    #[inline]
    pub const fn weight(self) -> u32 {
        wide::low(self.0)
    }

    /// What is left of `capacity` under this reservation to a taker whose own reservation is
    /// `mine` ([`Reservation::NONE`]: none): all of it when nobody else reserves, else less
    /// the weight reserved.
    #[inline]
    pub const fn fair(self, capacity: u32, mine: Reservation) -> u32 {
        if self.is_none() || self.0 == mine.0 {
            capacity
        } else {
            capacity.saturating_sub(self.weight())
        }
    }
}

packed_word! {
    /// A semaphore's `recounter`: the process slot, as registered now, of the reclaimer that
    /// recounts it. 0 names nobody.
    ///
    /// ```text
    ///  63                        32 31                          0
    /// +----------------------------+-----------------------------+
    /// |          slot + 1          |       slot generation       |
    /// +----------------------------+-----------------------------+
    /// ```
    pub struct RecounterId(u64);
}

impl RecounterId {
    /// Shift of the slot field (slot + 1).
    pub const SLOT_SHIFT: u32 = 32;

    /// The recounter registered in `slot` (below `u32::MAX`) with slot generation `generation`.
    #[inline]
    pub const fn new(slot: u32, generation: u32) -> RecounterId {
        RecounterId(((slot as u64 + 1) << Self::SLOT_SHIFT) | generation as u64)
    }

    /// Nobody recounts.
    #[inline]
    pub const fn is_nobody(self) -> bool {
        self.0 == 0
    }

    /// The recounter's slot; `None` when the slot field is 0 (nobody, or a corrupted value that
    /// names nobody).
    #[inline]
    pub const fn slot(self) -> Option<u32> {
        slot_field(self.0, Self::SLOT_SHIFT)
    }
}

packed_word! {
    /// A process slot's `state`: what is registered there, and how many times the slot was taken.
    ///
    /// ```text
    ///  31                                  8 7          0
    /// +-------------------------------------+------------+
    /// |          generation (24 bits)       |    kind    |
    /// +-------------------------------------+------------+
    /// ```
    ///
    /// | kind | meaning | lock byte held by |
    /// |---|---|---|
    /// | [`FREE`](Self::FREE) | unused | nobody, or a registering process |
    /// | [`ENGINE`](Self::ENGINE) | an engine process | that process, while it lives |
    /// | [`EXTERNAL`](Self::EXTERNAL) | an external holder | the process acting for it, while it acts |
    /// | anything else | a corrupted slot | matches none of the kinds above |
    pub struct SlotState(u32);
}

impl SlotState {
    /// Kind: unused.
    pub const FREE: u32 = 0;
    /// Kind: an engine process, alive while it holds its lock byte.
    pub const ENGINE: u32 = 1;
    /// Kind: an external holder, alive while its pid and start time match a process.
    pub const EXTERNAL: u32 = 2;
    /// The layout: a 24-bit generation above an 8-bit kind.
    const LAYOUT: Tagged = Tagged { tag_bits: 8 };
    /// Bits of the generation, once shifted down.
    pub const GENERATION_MASK: u32 = 0xFF_FFFF;

    /// Kind `kind` in generation `generation` (its low 24 bits).
    #[inline]
    pub const fn new(generation: u32, kind: u32) -> SlotState {
        SlotState(Self::LAYOUT.join(generation, kind))
    }

    /// What is registered: one of the kinds, or something else in a corrupted slot.
    #[inline]
    pub const fn kind(self) -> u32 {
        Self::LAYOUT.tag(self.0)
    }

    /// How many times the slot was taken (wrapping at 24 bits).
    #[inline]
    pub const fn generation(self) -> u32 {
        Self::LAYOUT.generation(self.0)
    }

    /// The generation the next registration in this slot gets.
    #[inline]
    pub const fn next_generation(self) -> u32 {
        self.generation().wrapping_add(1) & Self::GENERATION_MASK
    }

    /// The same generation with kind `kind`.
    #[inline]
    pub const fn with_kind(self, kind: u32) -> SlotState {
        SlotState::new(self.generation(), kind)
    }
}

packed_word! {
    /// A name-table record's `slot`: the state of the record and the generation of its life.
    ///
    /// ```text
    ///  31                        16 15                          0
    /// +----------------------------+-----------------------------+
    /// |         generation         |            state            |
    /// +----------------------------+-----------------------------+
    /// ```
    ///
    /// The states and who moves them on are in the state table of `table`; a state other than the
    /// four below (a corrupted record) matches none of them.
    pub struct TableSlot(u32);
}

impl TableSlot {
    /// Never used.
    pub const EMPTY: u32 = 0;
    /// Being written by an inserter.
    pub const RESERVED: u32 = 1;
    /// A semaphore.
    pub const LIVE: u32 = 2;
    /// Removed.
    pub const TOMBSTONE: u32 = 3;
    /// The layout: a 16-bit generation above a 16-bit state.
    const LAYOUT: Tagged = Tagged { tag_bits: 16 };

    /// State `state` in generation `generation`.
    #[inline]
    pub const fn new(generation: u16, state: u32) -> TableSlot {
        TableSlot(Self::LAYOUT.join(generation as u32, state))
    }

    /// The record's state: one of the four, or something else in a corrupted record.
    #[inline]
    pub const fn state(self) -> u32 {
        Self::LAYOUT.tag(self.0)
    }

    /// The generation of the record's life.
    #[inline]
    pub const fn generation(self) -> u16 {
        Self::LAYOUT.generation(self.0) as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOP: Found = Found {
        index: 0xFFFF,
        generation: u16::MAX,
    };

    #[test]
    fn holder_keys_round_trip_at_their_field_limits() {
        for (slot, lane, found) in [
            (
                0,
                0,
                Found {
                    index: 0,
                    generation: 0,
                },
            ),
            (
                7,
                3,
                Found {
                    index: 12_345,
                    generation: 0xBEEF,
                },
            ),
            (0xFFFE, u16::MAX, TOP),
        ] {
            let key = HolderKey::new(slot, lane, found);
            assert_ne!(
                key,
                HolderKey::from_bits(0),
                "a claimed key is never a free one"
            );
            assert_eq!(HolderKey::from_bits(key.bits()), key);
            assert_eq!(
                (key.slot(), key.lane(), key.found()),
                (Some(slot), lane, found)
            );
            assert!(key.names(lane, found));
            assert!(!key.names(lane ^ 1, found));
            let other = Found {
                generation: found.generation ^ 1,
                ..found
            };
            assert!(!key.names(lane, other), "another life of the same record");
        }
    }

    #[test]
    fn a_free_or_corrupted_holder_key_names_no_slot_and_no_lane() {
        assert_eq!(HolderKey::from_bits(0).slot(), None);
        assert!(!HolderKey::from_bits(0).names(
            0,
            Found {
                index: 0,
                generation: 0
            }
        ));
        // Lane and semaphore bits with no slot: nobody's record.
        let orphan = HolderKey::from_bits(HolderKey::new(3, 2, TOP).bits() & 0xFFFF_FFFF_FFFF);
        assert_eq!(orphan.slot(), None);
        assert!(!orphan.names(2, TOP));
        // Every bit set: a slot far past any table, for the caller to reject.
        assert_eq!(HolderKey::from_bits(u64::MAX).slot(), Some(0xFFFE));
    }

    #[test]
    fn reservations_are_never_zero_and_name_their_slot_and_weight() {
        for (slot, lane, weight) in [(0, 0, 2), (5, 3, 7), (0xFFFE, u16::MAX, u32::MAX)] {
            let r = Reservation::new(slot, lane, weight);
            assert!(!r.is_none());
            assert_eq!(Reservation::from_bits(r.bits()), r);
            assert_eq!((r.slot(), r.weight()), (Some(slot), weight));
        }
        assert!(Reservation::NONE.is_none());
        assert_eq!(Reservation::NONE.slot(), None);
        let theirs = Reservation::new(4, 1, 3);
        assert_eq!(Reservation::NONE.fair(5, Reservation::NONE), 5);
        assert_eq!(
            theirs.fair(5, Reservation::NONE),
            2,
            "held back for another"
        );
        assert_eq!(
            theirs.fair(5, theirs),
            5,
            "one's own reservation holds nothing back"
        );
        assert_eq!(theirs.fair(2, Reservation::NONE), 0, "never below zero");
        // A corrupted reservation with no slot field names nobody, whatever its weight.
        assert_eq!(Reservation::from_bits(0x0000_0001_0000_0005).slot(), None);
    }

    #[test]
    fn recounter_ids_name_their_slot_and_zero_names_nobody() {
        for (slot, generation) in [(0, 0), (1, 7), (u32::MAX - 1, u32::MAX)] {
            let id = RecounterId::new(slot, generation);
            assert!(!id.is_nobody());
            assert_eq!(RecounterId::from_bits(id.bits()), id);
            assert_eq!((id.slot(), id.bits() as u32), (Some(slot), generation));
        }
        assert!(RecounterId::from_bits(0).is_nobody());
        assert_eq!(RecounterId::from_bits(0).slot(), None);
        assert_eq!(RecounterId::from_bits(42).slot(), None, "no slot field");
    }

    #[test]
    fn slot_states_round_trip_and_generations_wrap_at_24_bits() {
        for (generation, kind) in [
            (0, SlotState::FREE),
            (1, SlotState::ENGINE),
            (0xFF_FFFF, SlotState::EXTERNAL),
        ] {
            let st = SlotState::new(generation, kind);
            assert_eq!(SlotState::from_bits(st.bits()), st);
            assert_eq!((st.generation(), st.kind()), (generation, kind));
            assert_eq!(st.with_kind(SlotState::FREE).generation(), generation);
        }
        let top = SlotState::new(0xFF_FFFF, SlotState::ENGINE);
        assert_eq!(top.next_generation(), 0);
        assert_eq!(SlotState::new(9, 0x1FF).kind(), 0xFF, "a kind never spills");
    }

    #[test]
    fn a_corrupted_slot_state_is_of_no_known_kind() {
        let st = SlotState::from_bits(0xFFFF_FF07);
        let known = [SlotState::FREE, SlotState::ENGINE, SlotState::EXTERNAL];
        assert!(!known.contains(&st.kind()));
        assert_eq!(st.generation(), 0xFF_FFFF);
        assert_eq!(st.next_generation(), 0);
    }

    #[test]
    fn table_slots_round_trip_and_a_corrupted_state_is_not_live() {
        for (generation, state) in [
            (0, TableSlot::EMPTY),
            (1, TableSlot::RESERVED),
            (0xBEEF, TableSlot::LIVE),
            (u16::MAX, TableSlot::TOMBSTONE),
        ] {
            let s = TableSlot::new(generation, state);
            assert_eq!(TableSlot::from_bits(s.bits()), s);
            assert_eq!((s.generation(), s.state()), (generation, state));
        }
        let bad = TableSlot::from_bits(0x0001_0102);
        let known = [
            TableSlot::EMPTY,
            TableSlot::RESERVED,
            TableSlot::LIVE,
            TableSlot::TOMBSTONE,
        ];
        assert!(
            !known.contains(&bad.state()),
            "state 0x102 is none of the four"
        );
        assert_eq!(bad.generation(), 1);
    }
}
