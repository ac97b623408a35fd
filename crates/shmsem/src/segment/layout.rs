//! The bytes of a segment: one header, then three fixed-size tables.
//!
//! ```text
//! offset      size            what
//! 0           128             Header
//! 128         1024 × 64       ProcSlot    one per registered process (or external holder)
//! 65 664      16384 × 64      HolderRecord one per (process slot, lane, semaphore)
//! 1 114 240   16384 × 384     SemRecord   the name table: one per semaphore
//! 7 405 696                   end (the file is rounded up to a whole page)
//! ```
//!
//! # Invariants, once for every struct here
//!
//! * `#[repr(C)]` with an explicit alignment, fixed-width integers only, no pointers and no
//!   `usize`: the layout is identical in every process on the machine, 32- or 64-bit.
//! * Every field is an atomic. A `&SemRecord` is therefore a reference to interior-mutable cells,
//!   which other processes may change at any moment; nothing is ever read through a plain `&u64`
//!   or a slice. Any bit pattern is a valid value of every field, so a corrupted segment can give
//!   wrong numbers but never undefined behaviour: every number read is validated before use.
//! * Sizes and offsets are checked at compile time below, and folded into [`FINGERPRINT`], which
//!   the header carries: a segment written by a build with another layout is refused at open.

use std::sync::atomic::{AtomicU32, AtomicU64};

/// `b"SHMSEM\0\x01"` read as a little-endian integer.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMSEM\0\x01");
/// Bumped whenever the meaning of any byte changes.
pub const LAYOUT_VERSION: u32 = 5;
/// Semaphore records in the name table.
pub const MAX_SEMAPHORES: u32 = 16_384;
/// Process slots.
pub const MAX_PROCESSES: u32 = 1_024;
/// Holder records.
pub const MAX_HOLDERS: u32 = 16_384;
/// Longest name, in bytes.
pub const NAME_MAX: usize = 200;
/// Words of the inline name.
const NAME_WORDS: usize = NAME_MAX / 8;

/// [`SemRecord::last_used_ms`] after a release emptied the semaphore: used, idle time not yet
/// stamped. A plain store, so that releases read no clock.
pub const USED: u64 = 0;

/// [`Header::init`] while the creator is still writing the segment.
pub const INIT_CREATING: u32 = 0;
/// [`Header::init`] once the segment is complete. Stored last, with `Release`.
pub const INIT_READY: u32 = 0x5EAD_1E55;

/// The first line of the segment.
#[repr(C, align(128))]
#[derive(Debug)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: AtomicU64,
    /// [`LAYOUT_VERSION`].
    pub layout_version: AtomicU32,
    /// [`FINGERPRINT`].
    pub fingerprint: AtomicU32,
    /// [`INIT_CREATING`] or [`INIT_READY`].
    pub init: AtomicU32,
    /// [`MAX_SEMAPHORES`].
    pub sem_capacity: AtomicU32,
    /// [`MAX_PROCESSES`].
    pub proc_capacity: AtomicU32,
    /// [`MAX_HOLDERS`].
    pub holder_capacity: AtomicU32,
    /// The file size the creator gave the segment.
    pub total_size: AtomicU64,
    /// A random number chosen at creation: tells two segments of the same name apart.
    pub segment_id: AtomicU64,
    /// Wall-clock creation time, milliseconds since the Unix epoch.
    pub created_ms: AtomicU64,
    /// Semaphores currently in the name table (a statistic; never trusted for bounds).
    pub live_names: AtomicU32,
    /// Where the next process-slot search starts (a hint; any value is safe).
    pub proc_hint: AtomicU32,
    /// Where the next holder-record search starts (a hint; any value is safe).
    pub holder_hint: AtomicU32,
    /// The uid that created the segment.
    pub creator_uid: AtomicU32,
    /// Bumped whenever a process slot is taken: the watcher of the namespace (see
    /// `holders::watch`) rescans the slots when it changed.
    pub registrations: AtomicU32,
    _pad0: AtomicU32,
    _reserved: [AtomicU64; 6],
}

/// One registered process: an engine process, or an external holder (`--holder PID`).
///
/// The slot's liveness lock is byte `1 + index` of the segment file. See `holders`.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct ProcSlot {
    /// `generation << 8 | kind`; see `holders::slot_state`.
    pub state: AtomicU32,
    /// Process id, as seen in the registering process's pid namespace.
    pub pid: AtomicU32,
    /// Start time of the process, in clock ticks since boot (`/proc/PID/stat` field 22).
    pub start_time: AtomicU64,
    /// Inode of the registering process's pid namespace.
    pub pidns: AtomicU64,
    /// The registering process's uid.
    pub uid: AtomicU32,
    _pad0: AtomicU32,
    /// Wall-clock registration time, ms since the Unix epoch.
    pub registered_ms: AtomicU64,
    _reserved: [AtomicU64; 3],
}

/// What one thread lane of one process holds of, and waits for on, one semaphore.
///
/// Only the thread that owns the lane writes a live record (a reclaimer writes it once the owner
/// is proven dead), so its fields are updated with plain atomic stores, not read-modify-writes.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct HolderRecord {
    /// 0 when free, else `(slot + 1) << 48 | lane << 32 | sem_index << 16 | sem_generation`.
    pub key: AtomicU64,
    /// The generation of the owning process slot when the record was claimed.
    pub owner_gen: AtomicU32,
    _pad0: AtomicU32,
    /// The weight held through this record and the in-flight flag; see
    /// `protocol::holding`. One lane may release what another lane of the same process
    /// acquired, so a single record's weight can be negative; the per-process sum cannot.
    pub holding: AtomicU64,
    _reserved0: AtomicU64,
    /// Wall-clock time the holding began (held went from 0 to positive), ms since the epoch,
    /// recorded to the second.
    pub since_ms: AtomicU64,
    /// Weight this lane is blocked waiting for, or 0.
    pub wait_weight: AtomicU32,
    _pad1: AtomicU32,
    /// Wall-clock time the wait began, ms since the epoch.
    pub wait_since_ms: AtomicU64,
    _reserved: AtomicU64,
}

/// One semaphore: the hot line with its state word, then its name.
#[repr(C, align(128))]
#[derive(Debug)]
pub struct SemRecord {
    /// The state word; see `protocol::word`.
    pub word: AtomicU64,
    /// Most weight that may be held at once.
    pub capacity: AtomicU32,
    /// Name-table slot state: `generation << 16 | state`; see `table`.
    pub slot: AtomicU32,
    /// Kind and other flags; see `table::KIND_*`.
    pub flags: AtomicU32,
    /// Idle period of an auto semaphore, in milliseconds.
    pub idle_ms: AtomicU32,
    /// Reserved for the weighted-fairness reservation.
    pub reservation: AtomicU64,
    /// When a sweep first found the semaphore unused (wall-clock ms), or [`USED`] after a
    /// release emptied it: the start of an auto semaphore's idle period. See `table::sweep_idle`.
    pub last_used_ms: AtomicU64,
    /// Wall-clock creation time, ms since the epoch.
    pub created_ms: AtomicU64,
    /// The process slot recounting this semaphore: `(slot + 1) << 32 | slot generation`, or 0.
    pub recounter: AtomicU64,
    /// Which life of the record this is: every insert and every removal moves it on, and it
    /// never wraps. The 16-bit generation in `slot` and in the state word is its low half; see
    /// `table` for why a generation is never reused while anything could still act on it.
    pub incarnation: AtomicU64,
    _hot_reserved: [AtomicU64; 8],
    /// FNV-1a hash of the name.
    pub hash: AtomicU64,
    /// Length of the name in bytes.
    pub name_len: AtomicU32,
    _pad0: AtomicU32,
    /// The name, little-endian packed, zero-padded.
    pub name: [AtomicU64; NAME_WORDS],
    /// Statistics of this life of the semaphore, for `shmsem metrics` and
    /// [`Semaphore::counters`](crate::Semaphore::counters): see `semaphore::counters`.
    ///
    /// They live here, in the cold name line, and are written only on slow paths: the fast path
    /// never touches this line, so it pays nothing for them, and the hot line (state word,
    /// capacity) stays free of statistics writes that would bounce it between waiters.
    ///
    /// Each is a wrapping `u64` changed only by `Relaxed` `fetch_add` and reset to 0 by
    /// `table::insert_life` when the record starts a new life; any value is valid (a corrupted
    /// counter is a wrong number, nothing more).
    ///
    /// Layout decision: these words were `_name_reserved` before, which no build ever wrote, so
    /// a segment made by an older build reads 0 in them. Sizes and every offset that the
    /// [`FINGERPRINT`] covers stay the same, so neither it nor [`LAYOUT_VERSION`] changes: old
    /// and new builds keep sharing segments. An older build neither counts nor resets them
    /// (a record it re-uses keeps the previous life's counts), which is acceptable for
    /// statistics and needs no incompatibility.
    pub counters: SemCounters,
    _name_reserved: [AtomicU64; 1],
}

/// The statistics words of a [`SemRecord`]; see [`SemRecord::counters`].
#[repr(C)]
#[derive(Debug)]
pub struct SemCounters {
    /// Acquires that had to sleep: each one that went to sleep at least once counts 1.
    pub waits: AtomicU64,
    /// Timed acquires that ended with a timeout.
    pub timeouts: AtomicU64,
    /// Weight given back from dead holders by reclaims.
    pub reclaimed_weight: AtomicU64,
    /// Futex wakes issued by releases and capacity changes.
    pub wakes: AtomicU64,
}

// ===== offsets =====

/// Offset of the process-slot table.
pub const PROCS_OFFSET: usize = size_of::<Header>();
/// Offset of the holder table.
pub const HOLDERS_OFFSET: usize = PROCS_OFFSET + MAX_PROCESSES as usize * size_of::<ProcSlot>();
/// Offset of the name table.
pub const SEMS_OFFSET: usize = HOLDERS_OFFSET + MAX_HOLDERS as usize * size_of::<HolderRecord>();
/// Bytes the tables need.
pub const END: usize = SEMS_OFFSET + MAX_SEMAPHORES as usize * size_of::<SemRecord>();
/// File size: [`END`] rounded up to 4 KiB.
pub const SEGMENT_SIZE: usize = END.div_ceil(4096) * 4096;

// ===== compile-time layout checks =====

const _: () = {
    use std::mem::{align_of, offset_of};
    assert!(size_of::<Header>() == 128 && align_of::<Header>() == 128);
    assert!(offset_of!(Header, init) == 16);
    assert!(offset_of!(Header, total_size) == 32);
    assert!(offset_of!(Header, creator_uid) == 68);
    assert!(offset_of!(Header, registrations) == 72);
    assert!(size_of::<ProcSlot>() == 64 && align_of::<ProcSlot>() == 64);
    assert!(offset_of!(ProcSlot, start_time) == 8);
    assert!(offset_of!(ProcSlot, registered_ms) == 32);
    assert!(size_of::<HolderRecord>() == 64 && align_of::<HolderRecord>() == 64);
    assert!(offset_of!(HolderRecord, holding) == 16);
    assert!(offset_of!(HolderRecord, wait_since_ms) == 48);
    assert!(size_of::<SemRecord>() == 384 && align_of::<SemRecord>() == 128);
    assert!(offset_of!(SemRecord, word) == 0);
    assert!(offset_of!(SemRecord, capacity) == 8);
    assert!(offset_of!(SemRecord, slot) == 12);
    assert!(offset_of!(SemRecord, recounter) == 48);
    assert!(offset_of!(SemRecord, incarnation) == 56);
    assert!(offset_of!(SemRecord, hash) == 128);
    assert!(offset_of!(SemRecord, name) == 144);
    // The counters took the first four of the five reserved words after the name.
    assert!(size_of::<SemCounters>() == 32 && align_of::<SemCounters>() == 8);
    assert!(offset_of!(SemRecord, counters) == 144 + NAME_MAX);
    assert!(offset_of!(SemRecord, counters) + offset_of!(SemCounters, waits) == 344);
    assert!(offset_of!(SemRecord, counters) + offset_of!(SemCounters, timeouts) == 352);
    assert!(offset_of!(SemRecord, counters) + offset_of!(SemCounters, reclaimed_weight) == 360);
    assert!(offset_of!(SemRecord, counters) + offset_of!(SemCounters, wakes) == 368);
    assert!(offset_of!(SemRecord, _name_reserved) == 376);
    assert!(PROCS_OFFSET % 128 == 0 && HOLDERS_OFFSET % 128 == 0 && SEMS_OFFSET % 128 == 0);
    assert!(SEGMENT_SIZE == 7_409_664);
    // Table indices are packed into 16-bit fields of HolderRecord::key.
    assert!(MAX_SEMAPHORES <= 1 << 16 && MAX_PROCESSES < 1 << 16);
    assert!(MAX_SEMAPHORES.is_power_of_two());
};

/// A hash of everything above that decides where bytes are: sizes, offsets, table capacities.
pub const FINGERPRINT: u32 = {
    let parts: [u64; 12] = [
        LAYOUT_VERSION as u64,
        size_of::<Header>() as u64,
        size_of::<ProcSlot>() as u64,
        size_of::<HolderRecord>() as u64,
        size_of::<SemRecord>() as u64,
        MAX_SEMAPHORES as u64,
        MAX_PROCESSES as u64,
        MAX_HOLDERS as u64,
        NAME_MAX as u64,
        SEGMENT_SIZE as u64,
        std::mem::offset_of!(SemRecord, name) as u64,
        cfg!(target_endian = "little") as u64,
    ];
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < parts.len() {
        h ^= parts[i];
        h = h.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    (h ^ (h >> 32)) as u32
};
