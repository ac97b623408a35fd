//! The shared-memory witness (see the test's module docs): counters in a file that the test and
//! every process map, independent of shmsem, and the statistics kept in it.

use std::{
    fmt,
    path::Path,
    sync::atomic::{AtomicU64, Ordering::SeqCst},
    thread,
    time::{Duration, Instant},
};

use crate::common::shared::SharedFile;
use crate::config::{
    FIRST_PER_INCARNATION, FORKERS, NAMES, OP_THREADS, PER_INCARNATION, PRINT_LIMIT, Rule, SPECS,
    WORKERS,
};

// =====================================================================================
// Statistics
// =====================================================================================

/// Counters in the witness, bumped by every process.
#[derive(Debug, Clone, Copy)]
pub enum Stat {
    Grants,
    Blocking,
    Timed,
    Try,
    Enters,
    External,
    ChildGrants,
    SelfExits,
    CrossExits,
    ExternalReleases,
    Timeouts,
    WouldBlock,
    Busy,
    TooLarge,
    Removes,
    ForceRemoves,
    RemovesInUse,
    RemovesGone,
    Removed,
    Reopens,
    Recreations,
    Capacity,
    Reaps,
    Reclaimed,
    Lists,
    Infos,
    Forks,
    ForkChecks,
    ForkChildKilled,
    Unlabelled,
    Unwitnessed,
    WitnessFull,
    Errors,
    VStrict,
    VIncarnation,
    VValue,
    VFork,
    /// Error messages printed (to cap them).
    Printed,
    /// Violation messages printed.
    VPrinted,
}

const STAT_COUNT: usize = Stat::VPrinted as usize + 1;

// =====================================================================================
// The witness file
// =====================================================================================

/// Witness owners: one per process that puts entries in, reused by its successor.
const OWNERS: usize = 16;
/// Entries per owner.
const ENTRIES: usize = 48;
/// Incarnation buckets per per-incarnation name (incarnation number modulo this): two
/// incarnations share a bucket only if an entry of one outlives this many removals of the name
/// (at a hundred or so removals a second, half a minute; entries live milliseconds).
const BUCKETS: usize = 4096;

pub const fn worker_owner(i: usize) -> usize {
    i
}
pub const fn forker_owner(j: usize) -> usize {
    WORKERS + j
}
pub const fn child_owner(j: usize) -> usize {
    WORKERS + FORKERS + j
}
/// The reaper never puts entries in; it has an owner for its messages only.
pub const REAPER_OWNER: usize = OWNERS - 1;
const _: () = assert!(WORKERS + 2 * FORKERS < REAPER_OWNER);
/// Threads of a worker that remove per-incarnation names: the op threads and the churn thread.
const REMOVERS: usize = OP_THREADS + 1;
const _: () = assert!(REMOVERS * WORKERS <= 32);

// Cell indices (u64 each).
const CELLS: usize = 16384;
const LOCK: usize = 0;
pub const STOP: usize = 1;
const STAT: usize = 8;
const INSIDE: usize = 64;
pub const MAX_INSIDE: usize = 72;
pub const SEQ: usize = 80;
pub const GRANTS_BY_NAME: usize = 88;
const META: usize = 128;
const META_FIELDS: usize = 4;
pub const M_PID: usize = 0;
pub const M_READY: usize = 1;
const M_DOOMED: usize = 2;
const ENTRY: usize = META + OWNERS * META_FIELDS;
const BUCKET: usize = ENTRY + OWNERS * ENTRIES;
const _: () = assert!(STAT + STAT_COUNT <= INSIDE && NAMES <= 8);
const _: () = assert!(BUCKET + PER_INCARNATION * BUCKETS <= CELLS);
// Entries keep 24 bits of the incarnation number: its bucket must not depend on the rest.
const _: () = assert!((1 << 24) % BUCKETS == 0);

/// The lock word's value while the test itself holds the lock.
const HARNESS_LOCK: u64 = 1000;

const E_USED: u64 = 1 << 63;
const E_LABELLED: u64 = 1 << 62;

/// An entry: name, incarnation (if known) and weight.
fn encode(n: usize, label: Option<u32>, weight: u32) -> u64 {
    E_USED
        | label.map_or(0, |_| E_LABELLED)
        | (n as u64) << 56
        | u64::from(label.unwrap_or(0) & 0xFF_FFFF) << 32
        | u64::from(weight)
}

fn decode(e: u64) -> (usize, Option<u32>, u64) {
    let n = ((e >> 56) & 0x3F) as usize;
    let label = (e & E_LABELLED != 0).then_some(((e >> 32) & 0xFF_FFFF) as u32);
    (n, label, e & 0xFFFF_FFFF)
}

/// The counter an entry belongs to, if any.
fn counter_of(n: usize, label: Option<u32>) -> Option<usize> {
    match (SPECS[n].rule, label) {
        (Rule::Strict, _) => Some(INSIDE + n),
        (Rule::PerIncarnation, Some(l)) => {
            Some(BUCKET + (n - FIRST_PER_INCARNATION) * BUCKETS + l as usize % BUCKETS)
        }
        (Rule::PerIncarnation, None) => None,
    }
}

/// Every counter cell.
fn counter_cells() -> impl Iterator<Item = usize> {
    (0..NAMES)
        .filter(|&n| SPECS[n].rule == Rule::Strict)
        .map(|n| INSIDE + n)
        .chain(BUCKET..BUCKET + PER_INCARNATION * BUCKETS)
}

/// The removal-bracket bit of thread `t` of worker owner `owner` in a sequence word.
pub const fn remover_bit(owner: usize, t: usize) -> u64 {
    assert!(owner < WORKERS && t < REMOVERS);
    1 << (32 + REMOVERS * owner + t)
}

/// Counters shared by the test and every process, in a file each maps itself.
pub struct Witness {
    file: SharedFile,
}

/// What [`Witness::enter`] did.
pub enum Entered {
    /// The weight is in: its entry, and the counter it produced (0 for an unlabelled grant).
    In { slot: usize, inside: u64 },
    /// The test is about to kill this process (or has killed its fork child's predecessor).
    Doomed,
    /// The owner's table is full (a bug of the test).
    Full,
}

fn spin(round: &mut u32) {
    *round += 1;
    if *round < 64 {
        std::hint::spin_loop();
    } else if *round < 256 {
        thread::yield_now();
    } else {
        thread::sleep(Duration::from_micros(50));
    }
}

impl Witness {
    const LEN: usize = CELLS * 8;

    pub fn create(path: &Path) {
        SharedFile::create(path, Self::LEN);
    }

    pub fn open(path: &Path) -> Witness {
        Witness {
            file: SharedFile::open(path, Self::LEN),
        }
    }

    pub fn cell(&self, index: usize) -> &AtomicU64 {
        assert!(index < CELLS);
        self.file.u64_at(index)
    }

    pub fn get(&self, index: usize) -> u64 {
        self.cell(index).load(SeqCst)
    }

    pub fn stat(&self, s: Stat) -> u64 {
        self.get(STAT + s as usize)
    }

    pub fn add(&self, s: Stat, v: u64) {
        self.cell(STAT + s as usize).fetch_add(v, SeqCst);
    }

    pub fn bump(&self, s: Stat) {
        self.add(s, 1);
    }

    pub fn meta(&self, owner: usize, field: usize) -> &AtomicU64 {
        assert!(owner < OWNERS && field < META_FIELDS);
        self.cell(META + owner * META_FIELDS + field)
    }

    fn slot(&self, owner: usize, k: usize) -> &AtomicU64 {
        assert!(owner < OWNERS && k < ENTRIES);
        self.cell(ENTRY + owner * ENTRIES + k)
    }

    /// Print an error message, if fewer than [`PRINT_LIMIT`] were printed.
    pub fn say(&self, msg: fmt::Arguments<'_>) {
        if self
            .cell(STAT + Stat::Printed as usize)
            .fetch_add(1, SeqCst)
            < PRINT_LIMIT
        {
            eprintln!("chaos: {msg}");
        }
    }

    /// Count a violation and print it, if fewer than [`PRINT_LIMIT`] were printed.
    pub fn violation(&self, s: Stat, msg: fmt::Arguments<'_>) {
        self.bump(s);
        if self
            .cell(STAT + Stat::VPrinted as usize)
            .fetch_add(1, SeqCst)
            < PRINT_LIMIT
        {
            eprintln!("chaos: VIOLATION ({s:?}): {msg}");
        }
    }

    fn lock(&self, id: u64) {
        let mut round = 0;
        while self
            .cell(LOCK)
            .compare_exchange(0, id, SeqCst, SeqCst)
            .is_err()
        {
            spin(&mut round);
        }
    }

    fn unlock(&self) {
        self.cell(LOCK).store(0, SeqCst);
    }

    /// The test takes the lock, or takes it over from one of the `dead` owners (lock ids);
    /// whether it took it over.
    fn lock_as_harness(&self, dead: &[u64]) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut round = 0;
        loop {
            let cur = self.get(LOCK);
            if (cur == 0 || dead.contains(&cur))
                && self
                    .cell(LOCK)
                    .compare_exchange(cur, HARNESS_LOCK, SeqCst, SeqCst)
                    .is_ok()
            {
                return cur != 0;
            }
            assert!(
                Instant::now() < deadline,
                "the witness lock stayed held by {cur} (owner {}) for 20 s",
                cur.wrapping_sub(1)
            );
            spin(&mut round);
        }
    }

    /// Put `weight` of name `n` (incarnation `label`) in for `owner`.
    pub fn enter(&self, owner: usize, n: usize, label: Option<u32>, weight: u32) -> Entered {
        self.lock(owner as u64 + 1);
        if self.meta(owner, M_DOOMED).load(SeqCst) != 0 {
            self.unlock();
            return Entered::Doomed;
        }
        let Some(slot) = (0..ENTRIES).find(|&k| self.slot(owner, k).load(SeqCst) == 0) else {
            self.unlock();
            return Entered::Full;
        };
        self.slot(owner, slot)
            .store(encode(n, label, weight), SeqCst);
        let inside = match counter_of(n, label) {
            Some(c) => self.cell(c).fetch_add(u64::from(weight), SeqCst) + u64::from(weight),
            None => 0,
        };
        self.cell(MAX_INSIDE + n).fetch_max(inside, SeqCst);
        self.unlock();
        Entered::In { slot, inside }
    }

    /// Take entry `slot` of `owner` out.
    pub fn leave(&self, owner: usize, slot: usize) {
        self.lock(owner as u64 + 1);
        let e = self.slot(owner, slot).swap(0, SeqCst);
        if e != 0 {
            let (n, label, weight) = decode(e);
            if let Some(c) = counter_of(n, label) {
                self.cell(c).fetch_sub(weight, SeqCst);
            }
        }
        self.unlock();
    }

    /// Take every entry of `owner` out (a fork child that panicked, before it exits).
    pub fn leave_all(&self, owner: usize) {
        for k in 0..ENTRIES {
            if self.slot(owner, k).load(SeqCst) != 0 {
                self.leave(owner, k);
            }
        }
    }

    /// Wait until `owner` is no longer doomed (a fork child whose predecessor was killed); a
    /// doomed process is about to be killed and waits here for it.
    pub fn await_undoomed(&self, owner: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.meta(owner, M_DOOMED).load(SeqCst) != 0 {
            if Instant::now() > deadline {
                eprintln!("chaos: owner {owner} stayed doomed for 60 s; the test is gone");
                // SAFETY: _exit ends the process without running anything else.
                unsafe { libc::_exit(3) };
            }
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Record that this process, `owner`, has registered in the namespace (for the counts).
    pub fn record_self(&self, owner: usize) {
        self.meta(owner, M_PID)
            .store(u64::from(std::process::id()), SeqCst);
        self.meta(owner, M_READY).store(1, SeqCst);
    }

    // ----- test side -----

    /// Mark `owners` doomed: they add no entry any more.
    pub fn doom(&self, owners: &[usize]) {
        self.lock_as_harness(&[]);
        for &o in owners {
            self.meta(o, M_DOOMED).store(1, SeqCst);
        }
        self.unlock();
    }

    /// The counters as the entries say, indexed by cell.
    fn recount(&self) -> Vec<u64> {
        let mut sums = vec![0u64; CELLS];
        for o in 0..OWNERS {
            for k in 0..ENTRIES {
                let e = self.slot(o, k).load(SeqCst);
                if e != 0 {
                    let (n, label, weight) = decode(e);
                    if let Some(c) = counter_of(n, label) {
                        sums[c] += weight;
                    }
                }
            }
        }
        sums
    }

    /// Remove the entries of the dead `owners`, close the removal brackets they left open,
    /// undoom them, and (`forget`) clear what they recorded. Returns a description of any
    /// inconsistency found in the witness itself.
    pub fn purge(&self, owners: &[usize], forget: bool) -> Option<String> {
        let dead: Vec<u64> = owners.iter().map(|&o| o as u64 + 1).collect();
        let took_over = self.lock_as_harness(&dead);
        let mut problem = None;
        if !took_over {
            let sums = self.recount();
            for c in counter_cells() {
                if sums[c] != self.get(c) {
                    problem = Some(format!(
                        "witness counter {c} is {} but its entries sum to {}",
                        self.get(c),
                        sums[c]
                    ));
                }
            }
        }
        for &o in owners {
            for k in 0..ENTRIES {
                self.slot(o, k).store(0, SeqCst);
            }
            for n in FIRST_PER_INCARNATION..NAMES {
                for t in (0..REMOVERS).filter(|_| o < WORKERS) {
                    let bit = remover_bit(o, t);
                    if self.get(SEQ + n) & bit != 0 {
                        self.cell(SEQ + n).fetch_add(1u64.wrapping_sub(bit), SeqCst);
                    }
                }
            }
            if forget {
                self.meta(o, M_READY).store(0, SeqCst);
                self.meta(o, M_PID).store(0, SeqCst);
            }
            self.meta(o, M_DOOMED).store(0, SeqCst);
        }
        let sums = self.recount();
        for c in counter_cells() {
            self.cell(c).store(sums[c], SeqCst);
        }
        self.unlock();
        problem
    }

    /// The weight of every entry, and of every counter.
    pub fn totals(&self) -> (u64, u64) {
        let entries = (0..OWNERS)
            .flat_map(|o| (0..ENTRIES).map(move |k| (o, k)))
            .map(|(o, k)| decode(self.slot(o, k).load(SeqCst)).2)
            .sum();
        let counters = counter_cells().map(|c| self.get(c)).sum();
        (entries, counters)
    }
}
