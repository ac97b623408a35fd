//! The name table: semaphore names to records, by open addressing over the segment's
//! [`SemRecord`]s.
//!
//! Each record's `slot` word is `generation << 16 | state`:
//!
//! | state | meaning | who moves it on |
//! |---|---|---|
//! | `EMPTY` | never used; a lookup stops here | an inserter, to `RESERVED` |
//! | `RESERVED` | an inserter is writing the record; skipped by lookups | that inserter, to `LIVE`; or, if it died, the next inserter |
//! | `LIVE` | a semaphore; compared by lookups | a remover, to `TOMBSTONE` |
//! | `TOMBSTONE` | removed; a lookup probes on past it | an inserter, to `RESERVED` |
//!
//! Lookups take no lock: they read `slot` with `Acquire` (pairing with the inserter's `Release`
//! store of `LIVE`, so the name and capacity written before it are visible) and compare names.
//! Inserts and removals hold the namespace's table lock (an OFD lock the kernel drops if the
//! holder dies), so two processes creating the same name end with one record, and a `RESERVED`
//! record seen under the lock can only be a dead inserter's.
//!
//! # Generations and incarnations
//!
//! A record's *incarnation* counts its lives: every insert and every removal moves it on, it is
//! 64 bits wide and never wraps. Its low 16 bits are the *generation*, kept in `slot` and in the
//! top of the state word, where every compare-exchange compares it. Sixteen bits wrap after
//! 32,768 removals and re-creations, so the generation alone could let a handle of an old life
//! act on a new one. Two rules make that impossible, however many lives a record has:
//!
//! * **A generation is never reused while anything names it.** Whatever acts on a semaphore acts
//!   through a holder record whose key names (record, generation), claimed before its first
//!   compare-exchange and kept while it holds or waits. An insert that would give a record a
//!   generation it had before (an incarnation of 65,536 or more) first publishes the incarnation
//!   it chose, then scans the holder table, and moves on to the next incarnation while any key
//!   names that generation. Both sides are `SeqCst` (a claim, then a read of the incarnation;
//!   a store of the incarnation, then a scan), so at least one sees the other: either the insert
//!   skips the generation, or the claimer sees the new incarnation and knows its handle is stale.
//! * **A handle knows its incarnation.** It checks it whenever it claims or finds a holder record
//!   (the slow path) and, on the fast path, before it uses a cached record: a record that was
//!   freed and claimed again for a new life with the same generation cannot be mistaken.
//!
//! An in-flight operation therefore always compares against a generation that belongs to its
//! own incarnation: its record names that generation, so no other life can have it meanwhile.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};

use crate::{
    error::{Error, Result},
    protocol::{
        self, MAX_RETRIES,
        handle::{GENERATIONS, generation_of, with_generation},
        keys::{HolderKey, TableSlot},
        word,
    },
    segment::{
        Segment,
        layout::{MAX_HOLDERS, MAX_PROCESSES, MAX_SEMAPHORES, NAME_MAX, SemRecord, USED},
    },
    sys,
};

/// Incarnations stay below this, so that a handle can pack one with a record index into 64 bits
/// (see `protocol::handle`). A record that reaches it is retired: never reused (after 2^50
/// lives).
pub const INCARNATION_LIMIT: u64 = protocol::handle::INCARNATION_LIMIT;

/// Never used.
pub const EMPTY: u32 = TableSlot::EMPTY;
/// Being written by an inserter.
pub const RESERVED: u32 = TableSlot::RESERVED;
/// A semaphore.
pub const LIVE: u32 = TableSlot::LIVE;
/// Removed.
pub const TOMBSTONE: u32 = TableSlot::TOMBSTONE;

/// `flags` bit: the semaphore stays until removed.
pub const KIND_PERSISTENT: u32 = 1;

/// The idle period of an auto semaphore when none is given.
pub const DEFAULT_IDLE_MS: u32 = 60_000;

#[inline]
const fn state(slot: u32) -> u32 {
    TableSlot::from_bits(slot).state()
}

#[inline]
const fn generation(slot: u32) -> u16 {
    TableSlot::from_bits(slot).generation()
}

#[inline]
const fn slot(generation: u16, state: u32) -> u32 {
    TableSlot::new(generation, state).bits()
}

/// FNV-1a, 64-bit: stable across processes and builds, no seed.
pub fn hash(name: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A name packed into the record's words.
struct Packed([u64; NAME_MAX / 8]);

impl Packed {
    fn new(name: &[u8]) -> Packed {
        let mut words = [0u64; NAME_MAX / 8];
        for (i, chunk) in name.chunks(8).enumerate() {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            words[i] = u64::from_le_bytes(b);
        }
        Packed(words)
    }

    fn matches(&self, rec: &SemRecord, len: usize) -> bool {
        let n = len.div_ceil(8);
        rec.name[..n]
            .iter()
            .zip(&self.0[..n])
            .all(|(a, b)| a.load(Relaxed) == *b)
    }
}

/// A semaphore found in the table: a record and the generation of its life.
pub use crate::protocol::keys::Found;

fn probe(name: &[u8]) -> impl Iterator<Item = u32> {
    let start = hash(name) as u32;
    (0..MAX_SEMAPHORES).map(move |i| start.wrapping_add(i) & (MAX_SEMAPHORES - 1))
}

/// Find `name` without locking; returns its record and incarnation.
pub fn lookup_life(seg: &Segment, name: &str) -> Option<(Found, u64)> {
    let bytes = name.as_bytes();
    let packed = Packed::new(bytes);
    let h = hash(bytes);
    for index in probe(bytes) {
        let rec = seg.sem(index)?;
        // Acquire: pairs with the inserter's Release of LIVE.
        let s = rec.slot.load(Acquire);
        match state(s) {
            EMPTY => return None,
            // Re-check the slot: a removal between the two loads would have changed it.
            LIVE if rec.hash.load(Relaxed) == h
                && rec.name_len.load(Relaxed) as usize == bytes.len()
                && packed.matches(rec, bytes.len()) =>
            {
                let life = rec.incarnation.load(Acquire);
                if rec.slot.load(Acquire) == s && generation_of(life) == generation(s) {
                    return Some((
                        Found {
                            index,
                            generation: generation(s),
                        },
                        life,
                    ));
                }
            }
            _ => {}
        }
    }
    None
}

/// Whether `name` is the name in `rec` now.
pub fn has_name(rec: &SemRecord, name: &str) -> bool {
    let bytes = name.as_bytes();
    rec.hash.load(Relaxed) == hash(bytes)
        && rec.name_len.load(Relaxed) as usize == bytes.len()
        && Packed::new(bytes).matches(rec, bytes.len())
}

/// Whether `rec` is live in incarnation `life`, under `name`: what a handle checks whenever it
/// claims or finds a holder record (see the module docs). `SeqCst` loads: the claim before it
/// and an inserter's scan are the two sides of the rule.
pub fn is_life(rec: &SemRecord, life: u64, name: &str) -> bool {
    let s = rec.slot.load(SeqCst);
    rec.incarnation.load(SeqCst) == life
        && s == slot(generation_of(life), LIVE)
        && has_name(rec, name)
        && rec.slot.load(SeqCst) == s
}

/// What a new semaphore is created with.
#[derive(Debug, Clone, Copy)]
pub struct NewRecord {
    /// Capacity.
    pub capacity: u32,
    /// Persistent rather than auto.
    pub persistent: bool,
    /// Idle period of an auto semaphore.
    pub idle_ms: u32,
}

/// Find `name`, or insert it. The caller holds the table lock. Returns the record, its
/// incarnation, and whether it was created.
pub fn insert_life(seg: &Segment, name: &str, new: NewRecord) -> Result<(Found, u64, bool)> {
    if let Some((found, life)) = lookup_life(seg, name) {
        return Ok((found, life, false));
    }
    let bytes = name.as_bytes();
    let mut free = None;
    for index in probe(bytes) {
        let Some(rec) = seg.sem(index) else { break };
        let s = rec.slot.load(Acquire);
        if rec.incarnation.load(Relaxed) >= INCARNATION_LIMIT - 1 {
            continue; // retired
        }
        match state(s) {
            EMPTY => {
                free.get_or_insert(index);
                break;
            }
            // Under the table lock a RESERVED record is a dead inserter's: reusable.
            RESERVED | TOMBSTONE => {
                free.get_or_insert(index);
            }
            _ => {}
        }
    }
    let Some(index) = free else {
        return Err(Error::TableFull {
            table: "semaphore",
            capacity: MAX_SEMAPHORES,
        });
    };
    let rec = seg
        .sem(index)
        .ok_or_else(|| Error::corrupt("probe out of bounds"))?;
    let old = rec.slot.load(Relaxed);
    let first = rec.incarnation.load(Relaxed);
    let life = choose_life(
        seg,
        index,
        if state(old) == EMPTY {
            first
        } else {
            first + 1
        },
    );
    let generation = generation_of(life);
    rec.slot.store(slot(generation, RESERVED), Relaxed);
    let now = sys::wall_ms();
    // The word of a free record is written by nobody else (every compare-exchange compares a
    // generation that no handle of this life can have yet); still, replace exactly what was read.
    let mut current = rec.word.load(Relaxed);
    for _ in 0..MAX_RETRIES {
        match rec
            .word
            .compare_exchange(current, word::empty(generation), Relaxed, Relaxed)
        {
            Ok(_) => break,
            Err(actual) => current = actual,
        }
    }
    if word::generation(rec.word.load(Relaxed)) != generation {
        rec.slot.store(old, Relaxed);
        return Err(Error::corrupt(
            "a free semaphore record keeps changing; the segment is being written by something else",
        ));
    }
    rec.capacity.store(new.capacity, Relaxed);
    rec.flags
        .store(if new.persistent { KIND_PERSISTENT } else { 0 }, Relaxed);
    rec.idle_ms.store(new.idle_ms, Relaxed);
    rec.reservation.store(0, Relaxed);
    // A new life counts from zero; published with the rest by the Release store below.
    crate::semaphore::reset_counters(&rec.counters);
    rec.last_used_ms.store(now, Relaxed);
    rec.created_ms.store(now, Relaxed);
    let packed = Packed::new(bytes);
    for (cell, w) in rec.name.iter().zip(packed.0) {
        cell.store(w, Relaxed);
    }
    rec.name_len.store(bytes.len() as u32, Relaxed);
    rec.hash.store(hash(bytes), Relaxed);
    // Release: publishes everything above to lock-free lookups.
    rec.slot.store(slot(generation, LIVE), Release);
    seg.header().live_names.fetch_add(1, Relaxed);
    Ok((Found { index, generation }, life, true))
}

/// The incarnation for the next life of record `index`, from `life` on: the first whose
/// generation no holder record names (see the module docs). Published with `SeqCst` before the
/// holder table is scanned for it. The caller holds the table lock.
fn choose_life(seg: &Segment, index: u32, mut life: u64) -> u64 {
    let Some(rec) = seg.sem(index) else {
        return life;
    };
    // Bounded: each step past a generation means a holder record names it, and there are
    // MAX_HOLDERS of them.
    for _ in 0..=MAX_HOLDERS {
        rec.incarnation.store(life, SeqCst);
        // Below 2^16 every generation is new to this record: nothing can name it yet.
        if life < GENERATIONS || !generation_named(seg, index, generation_of(life)) {
            break;
        }
        life += 1;
    }
    life
}

/// Whether some holder record's key names (`index`, `generation`).
fn generation_named(seg: &Segment, index: u32, generation_: u16) -> bool {
    let wanted = Found {
        index,
        generation: generation_,
    };
    (0..MAX_HOLDERS).any(|i| {
        seg.holder(i).is_some_and(|h| {
            let key = HolderKey::from_bits(h.key.load(SeqCst));
            key.slot().is_some_and(|s| s < MAX_PROCESSES) && key.found() == wanted
        })
    })
}

/// What [`remove`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The record is a tombstone now.
    Removed,
    /// Not forced, and weight is held (the value, or 0 for a word frozen by a recount): nothing
    /// changed.
    InUse(u32),
    /// The record was not live with that generation.
    Gone,
}

/// Remove a live record. The caller holds the table lock.
///
/// The word moves to the next generation by one compare-exchange (see `protocol::remove`): an
/// unforced removal never removes a semaphore that is held, and a forced one leaves old permits
/// nothing to give back to. The slot then becomes a tombstone.
pub fn remove(seg: &Segment, found: Found, force: bool) -> Removal {
    let Some(rec) = seg.sem(found.index) else {
        return Removal::Gone;
    };
    if rec.slot.load(Acquire) != slot(found.generation, LIVE) {
        return Removal::Gone;
    }
    let life = rec.incarnation.load(Relaxed);
    match protocol::remove(&rec.word, found.generation, force) {
        Ok(()) => {}
        Err(protocol::Kept::InUse(value)) => return Removal::InUse(value),
        Err(protocol::Kept::Gone) => return Removal::Gone,
    }
    // Every handle of the old generation now fails its compare-exchanges; sleepers are woken by
    // the caller and see the new generation.
    retire(seg, rec, found.generation, life);
    Removal::Removed
}

/// After the word moved to generation `generation + 1`: the slot becomes a tombstone and the
/// incarnation moves on. The caller holds the table lock.
fn retire(seg: &Segment, rec: &SemRecord, generation_: u16, life: u64) {
    let next = generation_.wrapping_add(1);
    // The incarnation's low half follows the generation; a corrupted incarnation is realigned.
    let mut next_life = with_generation(life, next);
    if next_life <= life {
        next_life += GENERATIONS;
    }
    rec.incarnation
        .store(next_life.min(INCARNATION_LIMIT - 1), SeqCst);
    rec.slot.store(slot(next, TOMBSTONE), Release);
    let _ = seg
        .header()
        .live_names
        .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
}

/// The name of a record, validated: `None` unless it is live and well formed.
pub fn name_of(rec: &SemRecord) -> Option<String> {
    let s = rec.slot.load(Acquire);
    if state(s) != LIVE {
        return None;
    }
    let len = rec.name_len.load(Relaxed) as usize;
    if len == 0 || len > NAME_MAX {
        return None;
    }
    let mut bytes = Vec::with_capacity(NAME_MAX);
    for cell in &rec.name {
        bytes.extend_from_slice(&cell.load(Relaxed).to_le_bytes());
    }
    bytes.truncate(len);
    let name = String::from_utf8(bytes).ok()?;
    crate::scope::validate_name(&name).ok()?;
    (rec.slot.load(Acquire) == s).then_some(name)
}

/// Every live record, with its validated name.
pub fn live(seg: &Segment) -> Vec<(Found, String)> {
    (0..MAX_SEMAPHORES)
        .filter_map(|index| {
            let rec = seg.sem(index)?;
            let s = rec.slot.load(Acquire);
            let name = name_of(rec)?;
            Some((
                Found {
                    index,
                    generation: generation(s),
                },
                name,
            ))
        })
        .collect()
}

/// Remove every auto semaphore that has had no holder and no waiter for its idle period. The
/// caller holds the table lock. Returns what was removed.
///
/// Releases read no clock: a release that empties a semaphore stores [`USED`] in
/// `last_used_ms`. A sweep that finds a semaphore unused with that mark stamps the time instead;
/// a later sweep that finds it still unused and still stamped, a whole idle period after the
/// stamp, removes it. So a semaphore is never removed before it has been unused for its idle
/// period; it is removed at the first sweep after that (sweeps run whenever a process maps the
/// namespace, and on `ls`, `show`, `reap` and `watch`).
///
/// The removal is one compare-exchange of the state word from "nothing held, nobody waiting,
/// generation g" to an empty word of generation g + 1: an acquire that got in first makes it
/// fail, and one that comes after fails on the generation and finds or creates the name again.
/// So no permit is ever granted on a removed record, and the table never holds two live records
/// for one name (inserts also hold the table lock).
pub fn sweep_idle(seg: &Segment, now_ms: u64) -> Vec<Found> {
    let mut removed = Vec::new();
    for index in 0..MAX_SEMAPHORES {
        let Some(rec) = seg.sem(index) else { break };
        let s = rec.slot.load(Acquire);
        if state(s) != LIVE || rec.flags.load(Relaxed) & KIND_PERSISTENT != 0 {
            continue;
        }
        // The word first (Acquire): a releaser marks the record USED before its Release CAS, so
        // the mark of the release that emptied it is visible below.
        let w = rec.word.load(Acquire);
        if word::value(w) != 0
            || word::waiters(w) != 0
            || word::is_frozen(w)
            || word::generation(w) != generation(s)
            || rec.reservation.load(Relaxed) != 0
        {
            continue;
        }
        let stamp = rec.last_used_ms.load(Relaxed);
        if stamp == USED {
            // Unused now, used since the last sweep: the idle period starts now.
            let _ = rec
                .last_used_ms
                .compare_exchange(USED, now_ms.max(1), Relaxed, Relaxed);
            continue;
        }
        let idle = u64::from(rec.idle_ms.load(Relaxed));
        if now_ms < stamp.saturating_add(idle) {
            continue;
        }
        let next = generation(s).wrapping_add(1);
        if rec
            .word
            .compare_exchange(w, word::empty(next), AcqRel, Relaxed)
            .is_err()
        {
            continue; // used meanwhile
        }
        retire(seg, rec, generation(s), rec.incarnation.load(Relaxed));
        removed.push(Found {
            index,
            generation: generation(s),
        });
    }
    removed
}

/// Whether a handle's record is still the live record it opened.
pub fn is_current(rec: &SemRecord, generation_: u16) -> bool {
    rec.slot.load(Acquire) == slot(generation_, LIVE)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh segment in a temporary directory holding one auto semaphore `s` with idle period
    /// `idle_ms`, just used.
    fn segment_with_auto(idle_ms: u32) -> (tempfile::TempDir, Segment, Found) {
        let dir = tempfile::tempdir().unwrap();
        let seg = Segment::open_or_create(
            &dir.path().join("local.t"),
            crate::segment::Creation {
                mode: 0o600,
                group: None,
            },
            crate::segment::Expect {
                owner: None,
                private: true,
            },
        )
        .unwrap();
        let new = NewRecord {
            capacity: 1,
            persistent: false,
            idle_ms,
        };
        let (found, _, created) = insert_life(&seg, "s", new).unwrap();
        assert!(created);
        seg.sem(found.index)
            .unwrap()
            .last_used_ms
            .store(USED, Relaxed);
        (dir, seg, found)
    }

    #[test]
    fn an_unused_auto_semaphore_goes_at_the_first_sweep_a_whole_idle_period_after_the_one_that_stamped_it()
     {
        let (_dir, seg, found) = segment_with_auto(300);
        assert!(
            sweep_idle(&seg, 1_000).is_empty(),
            "the first sweep only stamps"
        );
        assert!(sweep_idle(&seg, 1_000).is_empty());
        assert!(
            sweep_idle(&seg, 1_299).is_empty(),
            "1 ms before its idle period ends"
        );
        assert_eq!(sweep_idle(&seg, 1_300), vec![found]);
        assert!(lookup_life(&seg, "s").is_none());
    }

    #[test]
    fn a_use_between_sweeps_starts_the_idle_period_again() {
        let (_dir, seg, found) = segment_with_auto(300);
        assert!(sweep_idle(&seg, 1_000).is_empty());
        seg.sem(found.index)
            .unwrap()
            .last_used_ms
            .store(USED, Relaxed);
        assert!(sweep_idle(&seg, 1_300).is_empty(), "a use restamps");
        assert!(sweep_idle(&seg, 1_599).is_empty());
        assert_eq!(sweep_idle(&seg, 1_600), vec![found]);
    }

    #[test]
    fn a_persistent_semaphore_is_never_swept() {
        let (_dir, seg, found) = segment_with_auto(300);
        seg.sem(found.index)
            .unwrap()
            .flags
            .fetch_or(KIND_PERSISTENT, Relaxed);
        assert!(sweep_idle(&seg, 1_000).is_empty());
        assert!(sweep_idle(&seg, u64::MAX / 2).is_empty());
        assert!(lookup_life(&seg, "s").is_some());
    }

    #[test]
    fn fnv_matches_reference_vectors() {
        assert_eq!(hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn slot_packing() {
        let s = slot(0xBEEF, LIVE);
        assert_eq!(state(s), LIVE);
        assert_eq!(generation(s), 0xBEEF);
    }
}
