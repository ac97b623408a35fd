//! Who holds what: process slots, holder records, liveness, and reclaiming the weight of the dead.
//!
//! # Process slots and liveness
//!
//! A process that uses a namespace registers once in a [`ProcSlot`] and, for as long as it lives,
//! holds an OFD write lock on byte `1 + slot` of the namespace's segment file (byte 0 is the
//! table lock; the locks are advisory and independent of the bytes' contents). The kernel drops that lock when the process dies, however it dies, so death is decided
//! by the lock, never by a timer or a pid: PID reuse and pid namespaces cannot fool it. A stopped
//! process keeps its locks and is alive. A forked child closes its inherited copy of the lock
//! file at once (see `sys`) and registers a slot of its own on first use, so it never inherits its
//! parent's holdings.
//!
//! An *external* holder (`shmsem acquire --holder PID`, typically a shell) is not an engine
//! process and holds no lock. Its slot records pid and start time, and it is dead when no process
//! with that pid and start time exists. The CLI process acting for it holds the slot's lock
//! while it changes the slot's records, so a reclaimer never races it.
//!
//! Slot `state` is `generation << 8 | kind`:
//!
//! | kind | meaning | lock byte held by |
//! |---|---|---|
//! | `FREE` | unused | nobody, or a registering process |
//! | `ENGINE` | an engine process | that process, while it lives |
//! | `EXTERNAL` | an external holder | the CLI process acting for it, while it acts |
//!
//! # Holder records
//!
//! One [`HolderRecord`] per (slot, lane, semaphore): a *lane* is a thread of the process, so each
//! record has one writer and is updated with plain stores (see `protocol`). The
//! weight a process holds is the sum over its lanes.
//!
//! # Reclaim
//!
//! [`reclaim`] takes the lock byte of every slot whose lock is free: for an engine slot that
//! proves its process dead; an external slot is then judged by pid and start time (the
//! [`liveness::Liveness`] the reclaimer is given decides; the engine's is [`Os`]). For every
//! semaphore a dead slot had records on, it runs the protocol's recount, which sets the value to
//! what live holders hold, exactly, whatever instruction the dead process (or an earlier
//! reclaimer) was killed at. Then it frees the dead records and slots and wakes the waiters of
//! every semaphore it touched. At most one process recounts a semaphore at a time: it claims the
//! record's `recounter` field first, and takes it over only from a dead recounter.

mod liveness;
mod reclaim;
#[cfg(test)]
mod reclaim_tests;
#[cfg(test)]
mod testing;
pub mod watch;

use std::{
    collections::BTreeMap,
    os::fd::BorrowedFd,
    sync::atomic::{
        AtomicU32,
        Ordering::{Acquire, Relaxed, Release, SeqCst},
    },
};

use self::liveness::Os;
pub use self::reclaim::{Reclaimed, reclaim};
use self::reclaim::{reclaim_locked, stuck_words};
use crate::{
    error::{Error, Result},
    failpoint,
    protocol::{
        holding,
        keys::{HolderKey, SlotState},
    },
    segment::{
        Segment,
        layout::{MAX_HOLDERS, MAX_PROCESSES},
    },
    sys::{self, Identity},
    table::Found,
};

/// Slot kind: unused.
pub const FREE: u32 = SlotState::FREE;
/// Slot kind: an engine process, alive while it holds its lock byte.
pub const ENGINE: u32 = SlotState::ENGINE;
/// Slot kind: an external holder, alive while its pid and start time match a process.
pub const EXTERNAL: u32 = SlotState::EXTERNAL;

/// Byte of the segment file whose OFD lock serialises name-table inserts and removals.
pub const TABLE_LOCK: u64 = 0;

/// The lock byte of slot `slot`.
#[inline]
pub const fn lock_offset(slot: u32) -> u64 {
    1 + slot as u64
}

/// The lock byte held by the watcher of the namespace (see `namespace::watch`): the first after
/// the slots' bytes.
pub const WATCH_LOCK: u64 = lock_offset(MAX_PROCESSES);

/// Slot lock bytes this process holds now, as (mapping, fork epoch, slot).
///
/// OFD locks exclude open file descriptions, not threads: two threads of one process locking a
/// slot's byte through the same description both succeed, and either one's unlock drops the
/// other's lock. So every lock of a slot byte in this process also claims the slot here, and a
/// slot claimed by one thread (a reclaimer, or a thread acting for an external holder) is busy
/// for the others, as another process's lock would be.
static HELD_HERE: std::sync::Mutex<Vec<(usize, u32, u32)>> = std::sync::Mutex::new(Vec::new());

fn held_key(ctx: Ctx<'_>, slot: u32) -> (usize, u32, u32) {
    let mapping = std::ptr::from_ref(ctx.seg.header()) as usize;
    (mapping, sys::FORK_EPOCH.load(Relaxed), slot)
}

fn held_here() -> std::sync::MutexGuard<'static, Vec<(usize, u32, u32)>> {
    HELD_HERE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Take slot `slot`'s lock byte without waiting: `false` if another process, or another thread
/// of this one, holds it.
pub fn lock_slot(ctx: Ctx<'_>, slot: u32) -> Result<bool> {
    let key = held_key(ctx, slot);
    let mut held = held_here();
    if held.contains(&key) {
        return Ok(false);
    }
    if !sys::try_lock_byte(ctx.fd, lock_offset(slot))
        .map_err(|e| Error::io("locking a process slot", e))?
    {
        return Ok(false);
    }
    held.push(key);
    Ok(true)
}

/// Drop slot `slot`'s lock byte, taken with [`lock_slot`].
pub fn unlock_slot(ctx: Ctx<'_>, slot: u32) {
    let key = held_key(ctx, slot);
    let mut held = held_here();
    let _ = sys::unlock_byte(ctx.fd, lock_offset(slot));
    held.retain(|&k| k != key);
}

/// Whether a thread of this process holds slot `slot`'s lock byte (which a lock test through
/// this process's own description cannot see).
pub fn locked_here(ctx: Ctx<'_>, slot: u32) -> bool {
    held_here().contains(&held_key(ctx, slot))
}

#[inline]
const fn kind(state: u32) -> u32 {
    SlotState::from_bits(state).kind()
}

#[inline]
const fn slot_generation(state: u32) -> u32 {
    SlotState::from_bits(state).generation()
}

#[inline]
const fn slot_state(generation: u32, kind: u32) -> u32 {
    SlotState::new(generation, kind).bits()
}

/// The key of the record of (`slot`, `lane`) on semaphore `found`.
#[inline]
pub const fn record_key(slot: u32, lane: u16, found: Found) -> u64 {
    HolderKey::new(slot, lane, found).bits()
}

/// The slot a record key belongs to, if the key is in use and in bounds.
#[inline]
fn key_slot(key: u64) -> Option<u32> {
    HolderKey::from_bits(key)
        .slot()
        .filter(|&s| s < MAX_PROCESSES)
}

/// The semaphore a record key refers to.
#[inline]
fn key_sem(key: u64) -> Found {
    HolderKey::from_bits(key).found()
}

/// What this process needs to operate on a segment's holder tables.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The segment.
    pub seg: &'a Segment,
    /// This process's own open file description of the segment file, which carries its locks.
    pub fd: BorrowedFd<'a>,
    /// This process's own slot, if registered.
    pub me: Option<u32>,
    /// External slots this process is acting for now: their lock bytes are held by this
    /// process's description, so probing them would wrongly succeed.
    pub acting: &'a [u32],
}

/// The entries of a table of `size` in the order a claimer tries them, with their indices: from
/// `hint` (where the last claim ended; read `Relaxed`, it is only a hint) round the table, up
/// to the first index `entry` finds nothing at.
#[inline]
fn from_hint<'a, T: 'a>(
    hint: &AtomicU32,
    size: u32,
    entry: impl Fn(u32) -> Option<&'a T>,
) -> impl Iterator<Item = (u32, &'a T)> {
    let start = hint.load(Relaxed) % size;
    (0..size)
        .map(move |i| (start + i) % size)
        .map_while(move |i| Some((i, entry(i)?)))
}

/// Register this process in a free slot, reclaiming a dead process's slot if that is what it
/// finds. Returns the slot and its generation.
pub fn register(ctx: Ctx<'_>, who: Identity) -> Result<(u32, u32)> {
    let header = ctx.seg.header();
    for (slot, s) in from_hint(&header.proc_hint, MAX_PROCESSES, |i| ctx.seg.proc_slot(i)) {
        let st = s.state.load(Acquire);
        if kind(st) == EXTERNAL {
            continue; // external slots are found and freed by the reclaimer, not taken here
        }
        if !lock_slot(ctx, slot)? {
            continue; // a live process has it
        }
        failpoint::hit("register:locked");
        // We hold the lock byte, so the slot's kind cannot change under us now; look again,
        // since a process making an external slot (which also takes the byte to write it) may
        // have taken it between our first look and the lock.
        if kind(s.state.load(Acquire)) == EXTERNAL {
            unlock_slot(ctx, slot);
            continue;
        }
        // A slot still marked ENGINE belonged to a process that died: give back what it held
        // before taking it over.
        if kind(s.state.load(Acquire)) == ENGINE {
            reclaim_locked(
                Ctx { me: None, ..ctx },
                &Os,
                &[slot],
                stuck_words(ctx, &[slot]),
            )?;
            if kind(s.state.load(Acquire)) != FREE {
                // Not all of it could be recounted yet: leave the slot to a later reclaim.
                unlock_slot(ctx, slot);
                continue;
            }
        }
        let generation = SlotState::from_bits(s.state.load(Acquire)).next_generation();
        fill_identity(s, who);
        failpoint::hit("register:filled");
        // Release: the identity above is visible with the kind.
        s.state.store(slot_state(generation, ENGINE), Release);
        header.proc_hint.store(slot + 1, Relaxed);
        // Release: a watcher that sees the new count sees the slot filled.
        header.registrations.fetch_add(1, Release);
        return Ok((slot, generation));
    }
    Err(Error::TableFull {
        table: "process",
        capacity: MAX_PROCESSES,
    })
}

/// Write `who` into a slot whose lock byte the caller holds; its kind is stored after, with
/// `Release`, by the caller.
fn fill_identity(s: &crate::segment::layout::ProcSlot, who: Identity) {
    s.pid.store(who.pid, Relaxed);
    s.start_time.store(who.start_time, Relaxed);
    s.pidns.store(sys::pid_namespace(), Relaxed);
    s.uid.store(sys::uid(), Relaxed);
    s.registered_ms.store(sys::wall_ms(), Relaxed);
}

/// Find or create the external slot of `who`. The caller holds the table lock, which serialises
/// creating external slots. Returns the slot and generation.
///
/// A free slot is taken with a *non-blocking* lock of its byte: a registering engine process
/// may hold that byte (it registers without the table lock), and waiting for it under the table
/// lock would hang the namespace if it stopped there. A slot whose byte is taken is skipped.
pub fn external_slot(ctx: Ctx<'_>, who: Identity) -> Result<(u32, u32)> {
    let mut free = Vec::new();
    for slot in 0..MAX_PROCESSES {
        let Some(s) = ctx.seg.proc_slot(slot) else {
            break;
        };
        let st = s.state.load(Acquire);
        match kind(st) {
            EXTERNAL
                if s.pid.load(Relaxed) == who.pid
                    && s.start_time.load(Relaxed) == who.start_time =>
            {
                return Ok((slot, slot_generation(st)));
            }
            FREE => free.push(slot),
            _ => {}
        }
    }
    for slot in free {
        let Some(s) = ctx.seg.proc_slot(slot) else {
            continue;
        };
        if !lock_slot(ctx, slot)? {
            continue; // an engine process is registering there
        }
        let st = s.state.load(Acquire);
        let taken = (kind(st) == FREE).then(|| {
            let generation = SlotState::from_bits(st).next_generation();
            fill_identity(s, who);
            s.state.store(slot_state(generation, EXTERNAL), Release);
            ctx.seg.header().registrations.fetch_add(1, Release);
            (slot, generation)
        });
        unlock_slot(ctx, slot);
        if let Some(found) = taken {
            return Ok(found);
        }
    }
    Err(Error::TableFull {
        table: "process",
        capacity: MAX_PROCESSES,
    })
}

/// How an external slot looks to the process about to act for it, which holds its lock byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum External {
    /// Still the slot it resolved, and its holder lives.
    Alive,
    /// Its holder has died: nothing may be taken in its name.
    HolderDead,
    /// The slot was freed (it held nothing) or reused since it was resolved: resolve again.
    Moved,
}

/// Whether `slot` is still the external slot of generation `slot_gen` and its holder lives. The
/// caller holds the slot's lock byte, so a reclaimer cannot free it meanwhile.
pub fn external_state(ctx: Ctx<'_>, slot: u32, slot_gen: u32) -> External {
    let Some(s) = ctx.seg.proc_slot(slot) else {
        return External::Moved;
    };
    if s.state.load(Acquire) != slot_state(slot_gen, EXTERNAL) {
        return External::Moved;
    }
    let who = Identity {
        pid: s.pid.load(Relaxed),
        start_time: s.start_time.load(Relaxed),
    };
    match sys::liveness(who) {
        sys::Liveness::Alive => External::Alive,
        sys::Liveness::Dead => External::HolderDead,
    }
}

/// Free external slot `slot` if none of its records holds anything or is mid-operation: a
/// process acted for leaves no slot behind once it holds nothing. The caller holds the slot's
/// lock byte. Returns whether it freed it.
pub fn free_if_empty(ctx: Ctx<'_>, slot: u32) -> bool {
    let Some(s) = ctx.seg.proc_slot(slot) else {
        return false;
    };
    if kind(s.state.load(Acquire)) != EXTERNAL {
        return false;
    }
    let busy = (0..MAX_HOLDERS).any(|index| {
        ctx.seg.holder(index).is_some_and(|r| {
            key_slot(r.key.load(Acquire)) == Some(slot) && r.holding.load(Acquire) != 0
        })
    });
    if busy {
        return false;
    }
    free_slot(ctx, slot);
    true
}

/// Show `who` as the process registered in `slot`, whose lock byte the caller holds (for
/// example the command a descriptor-held slot was handed to).
pub fn set_identity(ctx: Ctx<'_>, slot: u32, who: Identity) {
    if let Some(s) = ctx.seg.proc_slot(slot) {
        s.pid.store(who.pid, Relaxed);
        s.start_time.store(who.start_time, Relaxed);
    }
}

/// Free `slot`, whose lock byte the caller holds, with its records: it holds nothing now. The
/// caller unlocks the byte after.
pub fn free_slot(ctx: Ctx<'_>, slot: u32) {
    for index in 0..MAX_HOLDERS {
        if let Some(r) = ctx.seg.holder(index)
            && key_slot(r.key.load(Acquire)) == Some(slot)
        {
            free_record(ctx, index);
        }
    }
    if let Some(s) = ctx.seg.proc_slot(slot) {
        let st = s.state.load(Acquire);
        s.state
            .store(SlotState::from_bits(st).with_kind(FREE).bits(), Release);
    }
}

/// Claim a free holder record for (`slot`, `lane`) on `found`.
pub fn claim_record(
    ctx: Ctx<'_>,
    slot: u32,
    slot_gen: u32,
    lane: u16,
    found: Found,
) -> Result<u32> {
    let key = record_key(slot, lane, found);
    let header = ctx.seg.header();
    for (index, r) in from_hint(&header.holder_hint, MAX_HOLDERS, |i| ctx.seg.holder(i)) {
        if r.key.load(Relaxed) != 0 {
            continue;
        }
        // Acquire: a free record's zeroed fields were stored before its key was released.
        // SeqCst: the claim is one side of the generation rule (see `table`): a handle checks
        // its incarnation after it, an inserter scans keys after publishing one.
        if r.key.compare_exchange(0, key, SeqCst, Relaxed).is_ok() {
            failpoint::hit("claim:keyed");
            r.owner_gen.store(slot_gen, Relaxed);
            r.holding.store(0, Relaxed);
            r.since_ms.store(0, Relaxed);
            r.wait_weight.store(0, Relaxed);
            header.holder_hint.store(index + 1, Relaxed);
            return Ok(index);
        }
    }
    Err(Error::TableFull {
        table: "holder",
        capacity: MAX_HOLDERS,
    })
}

/// Free a record: zero it, then release the key.
pub fn free_record(ctx: Ctx<'_>, index: u32) {
    if let Some(r) = ctx.seg.holder(index) {
        r.holding.store(0, Relaxed);
        r.wait_weight.store(0, Relaxed);
        // Release: the zeroes above are seen by the next claimer's Acquire.
        r.key.store(0, Release);
    }
}

/// One holder or waiter as shown by `info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    /// Process id.
    pub pid: u32,
    /// Weight held, or waited for.
    pub weight: u64,
    /// Wall-clock ms since the epoch when it began.
    pub since_ms: u64,
    /// The host it runs on: for the cluster scope; `None` for the local scopes (this host).
    pub host: Option<String>,
    /// The holding's fencing token (see `Permit::token`): for cluster-scope holders; `None`
    /// otherwise.
    pub token: Option<u64>,
}

/// Holders and waiters of one semaphore, one entry per process.
pub fn parties(seg: &Segment, found: Found) -> (Vec<Party>, Vec<Party>) {
    let mut holders: BTreeMap<u32, Party> = BTreeMap::new();
    let mut waiters: Vec<Party> = Vec::new();
    for index in 0..MAX_HOLDERS {
        let Some(r) = seg.holder(index) else { break };
        let key = r.key.load(Acquire);
        let Some(slot) = key_slot(key) else { continue };
        if key_sem(key) != found {
            continue;
        }
        let Some(s) = seg.proc_slot(slot) else {
            continue;
        };
        if kind(s.state.load(Acquire)) == FREE {
            continue;
        }
        let pid = s.pid.load(Relaxed);
        let held = holding::held(r.holding.load(Relaxed));
        if held != 0 {
            // Acquirers read no clock: a holding not stamped yet is stamped by its first
            // observer, with the time it was first seen.
            let mut since = r.since_ms.load(Relaxed);
            if since == 0 && held > 0 {
                let now = sys::wall_ms().max(1);
                since = match r.since_ms.compare_exchange(0, now, Relaxed, Relaxed) {
                    Ok(_) => now,
                    Err(stamped) => stamped,
                };
            }
            let p = holders.entry(pid).or_insert(Party {
                pid,
                weight: 0,
                since_ms: since,
                host: None,
                token: None,
            });
            p.weight = (p.weight as i64).saturating_add(held).max(0) as u64;
            if since != 0 && (p.since_ms == 0 || since < p.since_ms) {
                p.since_ms = since;
            }
        }
        // Acquire: the waiter cleared its stamp before it showed its weight (Release).
        let w = r.wait_weight.load(Acquire);
        if w != 0 {
            // Waiters read no clock either: the first observer stamps the wait.
            let mut since = r.wait_since_ms.load(Relaxed);
            if since == 0 {
                let now = sys::wall_ms().max(1);
                since = match r.wait_since_ms.compare_exchange(0, now, Relaxed, Relaxed) {
                    Ok(_) => now,
                    Err(stamped) => stamped,
                };
            }
            waiters.push(Party {
                pid,
                weight: w as u64,
                since_ms: since,
                host: None,
                token: None,
            });
        }
    }
    let holders = holders.into_values().filter(|p| p.weight > 0).collect();
    waiters.sort_by_key(|p| (p.since_ms, p.pid));
    (holders, waiters)
}

/// What process `pid` holds and waits for, per semaphore: (semaphore, weight held, weights
/// waited for). Only slots in use count.
pub fn activity_of(seg: &Segment, pid: u32) -> BTreeMap<Found, (i64, Vec<u32>)> {
    let mut out: BTreeMap<Found, (i64, Vec<u32>)> = BTreeMap::new();
    for index in 0..MAX_HOLDERS {
        let Some(r) = seg.holder(index) else { break };
        let key = r.key.load(Acquire);
        let Some(slot) = key_slot(key) else { continue };
        let Some(s) = seg.proc_slot(slot) else {
            continue;
        };
        if kind(s.state.load(Acquire)) == FREE || s.pid.load(Relaxed) != pid {
            continue;
        }
        let held = holding::held(r.holding.load(Relaxed));
        let waiting = r.wait_weight.load(Relaxed);
        if held == 0 && waiting == 0 {
            continue;
        }
        let entry = out.entry(key_sem(key)).or_default();
        entry.0 = entry.0.saturating_add(held);
        if waiting != 0 {
            entry.1.push(waiting);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_keys_round_trip_and_zero_is_free() {
        let found = Found {
            index: 12_345,
            generation: 0xBEEF,
        };
        for (slot, lane) in [(0, 0), (7, 3), (MAX_PROCESSES - 1, u16::MAX - 1)] {
            let key = record_key(slot, lane, found);
            assert_eq!(key_slot(key), Some(slot));
            assert_eq!(key_sem(key), found);
            assert!(HolderKey::from_bits(key).names(lane, found));
        }
        assert_eq!(key_slot(0), None, "a free record's key names no slot");
        assert_eq!(
            key_slot(record_key(MAX_PROCESSES, 0, found)),
            None,
            "a slot past the table is refused"
        );
    }

    #[test]
    fn slot_states_round_trip() {
        for (generation, k) in [(0, FREE), (1, ENGINE), (0xFF_FFFF, EXTERNAL)] {
            let st = slot_state(generation, k);
            assert_eq!((slot_generation(st), kind(st)), (generation, k));
        }
    }
}
