//! The lifecycle chaos test (issue 9, SPEC §5.3): several processes do every operation of the
//! library at random on a few semaphores of one namespace, while the test SIGKILLs them at random
//! times and starts them again, for at least [`MIN_RUN`] and [`MIN_KILLS`] kills
//! (`SHMSEM_CHAOS_KILLS` raises it for a soak). A witness that does not depend on shmsem checks
//! that no more than the capacity is ever granted; at the end, with everything stopped and
//! reaped, every value must equal what the live holders hold.
//!
//! # Roles
//!
//! Every role is this test binary run again with `SHMSEM_CHAOS_ROLE` set (as in `storm.rs`), in
//! a private temporary `SHMSEM_DIR`, namespace [`NS`]:
//!
//! * **worker** (×[`WORKERS`]): [`OP_THREADS`] threads that pick at random: acquire with a
//!   weight (blocking, timed, try) and hold a little, then give back by dropping the permit, by
//!   `forget` + `exit` on the same thread, or by handing the entered weight to the *exiter*
//!   thread, which `exit`s it (enter/exit across threads); `enter`; `remove(false)`;
//!   `remove(true)` (on the names that allow it); `set_capacity` up and down; re-opening
//!   (get-or-create, so re-creation after a removal or an idle sweep); `list` (which sweeps idle
//!   auto semaphores); `reap`; `info`. A *churn* thread removes, changes capacities and sweeps
//!   about every millisecond, to race all that. One more thread acquires and releases with
//!   `acquire_for`/`release_for` on behalf of a `sleep` process the test started for that worker.
//! * **forker** (×[`FORKERS`], single-threaded): takes a guarded permit and entered weight,
//!   forks, and waits for the child. The child must hold nothing of its parent's: its `exit` of
//!   the parent's entered weight must be `NotHeld`, dropping its copy of the parent's permit must
//!   give nothing back, and `info` must still show the parent's holdings and a value at least as
//!   high; then it acquires a little on its own and `_exit`s. The forker checks its holdings again
//!   after the child ended (possibly SIGKILLed).
//! * **reaper**: `reap`, `list`, `info`, and acquires that it does not show the witness (which
//!   can hide nothing the witness checks). Since it puts nothing in the witness, it may die by
//!   itself: with the `failpoints` feature, most reapers are started with a random kill point
//!   (`SHMSEM_FAILPOINT=STEP@N`, any step of the engine: mid-recount, mid-acquire, mid-release,
//!   counted as a waiter, mid-registration). Besides, the test itself runs the CLI's `shmsem
//!   reap` now and then, half of them with a recount kill point, and SIGKILLs some of them too.
//!
//! Every few milliseconds the test SIGKILLs one of them at random (a worker, a forker together
//! with its child, a fork child alone, the reaper, or a running `shmsem reap`), at any point of
//! its life including registration, and starts a new one.
//!
//! # The names and what the witness checks
//!
//! Capacity changes revoke nothing and `remove(true)` starts a new semaphore while the old
//! holders still hold, so the rules are chosen so that each violation is a real bug:
//!
//! | name | kind | capacity | removal | witness rule |
//! |---|---|---|---|---|
//! | `mutex` | auto, idle 5–50 ms | 1 | `remove(false)`, idle sweep | strict, ≤ 1 |
//! | `fixed` | auto, idle 5–50 ms | 3 | `remove(false)`, idle sweep | strict, ≤ 3 |
//! | `flex` | auto, idle 5–50 ms | 2..=6, `set_capacity` | `remove(false)`, idle sweep | strict, ≤ 6 |
//! | `keep` | persistent | 4 | `remove(false)` | strict, ≤ 4 |
//! | `force` | persistent | 2 | `remove(true)`, `remove(false)` | per incarnation, ≤ 2 |
//! | `forceflex` | persistent | 1..=4, `set_capacity` | `remove(true)`, `remove(false)` | per incarnation, ≤ 4 |
//!
//! * **Strict** names are never force-removed: a removal or an idle sweep only happens while
//!   nothing is held, so at every moment the weight inside under the name, over all its
//!   incarnations, is at most the highest capacity the name can ever have. Creation and
//!   `set_capacity` stay within the bounds, so lowering the capacity under holders is legal.
//! * **Per-incarnation** names are persistent (no idle sweep) and every removal of them is
//!   bracketed in the witness: a remover sets its bit in the name's sequence word before
//!   `remove` and, in one `fetch_add`, clears it and counts one more finished removal after. An
//!   acquirer reads the word before it asks and after it got the weight; if both reads are equal
//!   and no removal was in progress, no removal happened while it acquired, so the grant came
//!   from incarnation *number of finished removals*, and its weight goes to that incarnation's
//!   bucket. Otherwise the grant is counted as unlabelled and checked by the final accounting
//!   only. Each bucket must stay at most the highest capacity.
//! * `info` and `list` must never show a value above the highest capacity of any name
//!   ([`MAX_CAP`]).
//! * The fork checks above.
//!
//! Unexpected errors (anything but timeouts, would-block, weight-too-large after a capacity
//! change, in-use, removed and not-found where a removal explains them, and `Busy` from a call
//! whose own deadline ran out while another process held a lock) are counted and fail the test
//! too.
//!
//! # The witness and SIGKILL
//!
//! A file outside `SHMSEM_DIR` that every process maps (`memmap2`). A process adds a weight
//! right after the engine granted it and takes it away right before giving it back, so with a
//! correct engine the witness never holds more than the engine has granted. Updates run under a
//! spin lock in the file: an *entry* in the process's own table (name, incarnation, weight) and
//! the counter it belongs to change together, and the adder checks the counter it produced.
//! Entries belong to the process, not the thread, so the exiter can take away what another thread
//! of its process put in.
//!
//! A killed process leaves its entries behind, and they must go before the engine can give its
//! weight to anyone else, or a correct engine would raise false alarms. The engine decides the
//! death of one of its processes by an OFD lock the process holds on its slot's byte (SPEC
//! §5.3), and an OFD lock belongs to the open file description. So, as in `storm.rs`, the test
//! copies the process's descriptors into itself (`pidfd_getfd`) before the SIGKILL: all of those
//! that refer to a file in `SHMSEM_DIR`, whichever of them carries the lock. To the engine the
//! process stays alive until the test drops the copies. In order, to kill a process the test:
//!
//! 1. marks its witness owner *doomed* (under the lock): from then on it can add no entry;
//! 2. copies its descriptors into `SHMSEM_DIR` (a process that has entries has registered, so
//!    the description that carries its lock is among them); for a forker, also its child's,
//!    found by the pid the child recorded (checked to be the forker's child);
//! 3. SIGKILLs, and waits until the process is dead (`waitpid`, or a pidfd for a fork child);
//! 4. *purges* the owner: under the lock (taken over from the dead process if it died holding
//!    it), deletes its entries, recomputes every counter from all the entries, and closes any
//!    removal bracket it left open (as a finished removal, which can only split an incarnation's
//!    grants into two buckets, never merge two incarnations);
//! 5. drops the copies: now the engine may reclaim; then kills that worker's `sleep` process,
//!    whose externally held weight the engine reclaims after that.
//!
//! `acquire_for` weight is counted as the acting worker's; its holder lives until step 5, so the
//! engine keeps that weight until the witness has dropped it. The forker's child of a killed
//! forker gets `PR_SET_PDEATHSIG`; the test is a child subreaper and reaps every orphan, and every
//! process it starts dies with it (`PR_SET_PDEATHSIG`), so nothing outlives the test.
//!
//! # The final accounting
//!
//! After the last kill every role is SIGKILLed the same way and every `sleep` killed, and the
//! witness must be empty. Then, in fresh processes: `shmsem reap` (the CLI) and a reap; every
//! semaphore must have value 0 and no holders and no waiters (also as `shmsem ls --json` shows
//! them). Two processes then hold weights on every name: each value must equal the sum of the
//! holders' weights in `info` and the sum of what the holders took. One of them exits, the other
//! is SIGKILLed; after a reap every value is 0 again. Finally, after their idle period, the auto
//! semaphores must be swept: one that stays was left with a waiter count or reservation.
//!
//! # Running
//!
//! ```text
//! cargo test --release --all-features --test chaos -- --nocapture
//! SHMSEM_CHAOS_KILLS=100000 cargo test --release --all-features --test chaos -- --nocapture
//! ```
//!
//! The counts (kills, grants, removals, re-creations, violations, errors) go to stderr at the
//! end, with the first violations and errors as they happen. A run fails after
//! `SHMSEM_CHAOS_SECS` seconds (default: 300, or a quarter of a second per kill for a soak,
//! whichever is more), or when no grant happens for [`STALL_LIMIT`]. To narrow a failure down,
//! `SHMSEM_CHAOS_WITHOUT=fork,external,...` turns operations off (see [`WITHOUT_ENV`]).

use std::{
    collections::HashSet,
    fmt, fs,
    io::{self, BufRead, BufReader},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::process::{CommandExt, ExitStatusExt},
    },
    panic::{AssertUnwindSafe, catch_unwind},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        atomic::{AtomicU64, Ordering::SeqCst},
        mpsc::{self, Receiver, SyncSender, TrySendError},
    },
    thread,
    time::{Duration, Instant},
};

use shmsem::{Error, Info, Options, Permit, Semaphore};

// =====================================================================================
// Configuration
// =====================================================================================

/// The environment variable naming a child's role; absent in the harness itself.
const ROLE_ENV: &str = "SHMSEM_CHAOS_ROLE";
/// The role's index (which worker, which forker).
const INDEX_ENV: &str = "SHMSEM_CHAOS_INDEX";
/// The witness file's path.
const WITNESS_ENV: &str = "SHMSEM_CHAOS_WITNESS";
/// The pid of the process a worker acts for with `acquire_for`.
const SLEEPER_ENV: &str = "SHMSEM_CHAOS_SLEEPER";
/// Raises the number of kills.
const KILLS_ENV: &str = "SHMSEM_CHAOS_KILLS";
/// Overrides the time limit, in seconds.
const SECS_ENV: &str = "SHMSEM_CHAOS_SECS";
/// Turns operations off, to narrow a failure down: a comma-separated list of `fork`, `external`
/// (`acquire_for`), `force` (`remove(true)` becomes `remove(false)`), `remove`, `idle` (auto
/// semaphores get a 60 s idle period), `capacity`, `enter` (and exits across threads), `reap`
/// (and `shmsem reap`).
const WITHOUT_ENV: &str = "SHMSEM_CHAOS_WITHOUT";
/// The test children run.
const CHILD_TEST: &str = "child_role";
/// Marker of a child's report lines on stdout.
const MARK: &str = "@@chaos ";
/// The namespace everything happens in.
const NS: &str = "chaos";

const WORKERS: usize = 3;
const OP_THREADS: usize = 2;
const FORKERS: usize = 2;
const REAPERS: usize = 1;
const MIN_KILLS: u64 = 1000;
/// The default run fails rather than run longer than this.
const DEFAULT_LIMIT: Duration = Duration::from_secs(300);
/// A soak may take this long per kill.
const SOAK_SECS_PER_KILL: f64 = 0.25;
/// The run fails if no acquire at all succeeds for this long.
const STALL_LIMIT: Duration = Duration::from_secs(30);
/// How long an audit or holder process may take.
const CHILD_LIMIT: Duration = Duration::from_secs(60);
/// A default run lasts at least this long (and has at least [`MIN_KILLS`] kills).
const MIN_RUN: Duration = Duration::from_secs(60);
/// A role lives at least a random time up to this before it may be killed (up to
/// [`EARLY_MS`] for one in [`EARLY_PERCENT`], which may die while it registers).
const MAX_MIN_LIFE_MS: u64 = 250;
const EARLY_MS: u64 = 8;
const EARLY_PERCENT: usize = 15;
/// How long the engine waits for a lock of the namespace when the call has no deadline of its
/// own, before it fails with `Busy`.
const LOCK_PATIENCE_MS: u64 = 5000;
/// At most this many error and violation messages each are printed, over all processes.
const PRINT_LIMIT: u64 = 40;

/// How the witness checks a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Never force-removed: at most the highest capacity inside, over all incarnations.
    Strict,
    /// Force-removed: at most the highest capacity inside each incarnation.
    PerIncarnation,
}

struct Spec {
    name: &'static str,
    rule: Rule,
    persistent: bool,
    /// The capacity is always within these bounds (creation and `set_capacity`).
    cap: (u32, u32),
}

const NAMES: usize = 6;
const SPECS: [Spec; NAMES] = [
    Spec {
        name: "mutex",
        rule: Rule::Strict,
        persistent: false,
        cap: (1, 1),
    },
    Spec {
        name: "fixed",
        rule: Rule::Strict,
        persistent: false,
        cap: (3, 3),
    },
    Spec {
        name: "flex",
        rule: Rule::Strict,
        persistent: false,
        cap: (2, 6),
    },
    Spec {
        name: "keep",
        rule: Rule::Strict,
        persistent: true,
        cap: (4, 4),
    },
    Spec {
        name: "force",
        rule: Rule::PerIncarnation,
        persistent: true,
        cap: (2, 2),
    },
    Spec {
        name: "forceflex",
        rule: Rule::PerIncarnation,
        persistent: true,
        cap: (1, 4),
    },
];
/// The per-incarnation names are the last ones, from this index.
const FIRST_PER_INCARNATION: usize = 4;
const PER_INCARNATION: usize = NAMES - FIRST_PER_INCARNATION;
/// The highest capacity of any name: no value may ever be above it.
const MAX_CAP: u32 = 6;

// =====================================================================================
// Statistics
// =====================================================================================

/// Counters in the witness, bumped by every process.
#[derive(Debug, Clone, Copy)]
enum Stat {
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

const fn worker_owner(i: usize) -> usize {
    i
}
const fn forker_owner(j: usize) -> usize {
    WORKERS + j
}
const fn child_owner(j: usize) -> usize {
    WORKERS + FORKERS + j
}
/// The reaper never puts entries in; it has an owner for its messages only.
const REAPER_OWNER: usize = OWNERS - 1;
const _: () = assert!(WORKERS + 2 * FORKERS < REAPER_OWNER);
/// Threads of a worker that remove per-incarnation names: the op threads and the churn thread.
const REMOVERS: usize = OP_THREADS + 1;
const _: () = assert!(REMOVERS * WORKERS <= 32);

// Cell indices (u64 each).
const CELLS: usize = 16384;
const LOCK: usize = 0;
const STOP: usize = 1;
const STAT: usize = 8;
const INSIDE: usize = 64;
const MAX_INSIDE: usize = 72;
const SEQ: usize = 80;
const GRANTS_BY_NAME: usize = 88;
const META: usize = 128;
const META_FIELDS: usize = 4;
const M_PID: usize = 0;
const M_READY: usize = 1;
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
const fn remover_bit(owner: usize, t: usize) -> u64 {
    assert!(owner < WORKERS && t < REMOVERS);
    1 << (32 + REMOVERS * owner + t)
}

/// Counters shared by the test and every process, in a file each maps itself.
struct Witness {
    map: memmap2::MmapRaw,
}

/// What [`Witness::enter`] did.
enum Entered {
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

    fn create(path: &Path) {
        let f = fs::File::create(path).expect("creating the witness");
        f.set_len(Self::LEN as u64).expect("sizing the witness");
    }

    fn open(path: &Path) -> Witness {
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .expect("opening the witness");
        let map = memmap2::MmapOptions::new()
            .len(Self::LEN)
            .map_raw(&f)
            .expect("mapping the witness");
        Witness { map }
    }

    fn cell(&self, index: usize) -> &AtomicU64 {
        assert!(index < CELLS);
        // SAFETY: the mapping is LEN bytes, page-aligned, shared and alive as long as `self`;
        // `index < CELLS` keeps the 8-byte, 8-aligned cell in bounds; every process only
        // accesses it atomically.
        unsafe { &*self.map.as_mut_ptr().add(index * 8).cast::<AtomicU64>() }
    }

    fn get(&self, index: usize) -> u64 {
        self.cell(index).load(SeqCst)
    }

    fn stat(&self, s: Stat) -> u64 {
        self.get(STAT + s as usize)
    }

    fn add(&self, s: Stat, v: u64) {
        self.cell(STAT + s as usize).fetch_add(v, SeqCst);
    }

    fn bump(&self, s: Stat) {
        self.add(s, 1);
    }

    fn meta(&self, owner: usize, field: usize) -> &AtomicU64 {
        assert!(owner < OWNERS && field < META_FIELDS);
        self.cell(META + owner * META_FIELDS + field)
    }

    fn slot(&self, owner: usize, k: usize) -> &AtomicU64 {
        assert!(owner < OWNERS && k < ENTRIES);
        self.cell(ENTRY + owner * ENTRIES + k)
    }

    /// Print an error message, if fewer than [`PRINT_LIMIT`] were printed.
    fn say(&self, msg: fmt::Arguments<'_>) {
        if self
            .cell(STAT + Stat::Printed as usize)
            .fetch_add(1, SeqCst)
            < PRINT_LIMIT
        {
            eprintln!("chaos: {msg}");
        }
    }

    /// Count a violation and print it, if fewer than [`PRINT_LIMIT`] were printed.
    fn violation(&self, s: Stat, msg: fmt::Arguments<'_>) {
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
    fn enter(&self, owner: usize, n: usize, label: Option<u32>, weight: u32) -> Entered {
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
    fn leave(&self, owner: usize, slot: usize) {
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
    fn leave_all(&self, owner: usize) {
        for k in 0..ENTRIES {
            if self.slot(owner, k).load(SeqCst) != 0 {
                self.leave(owner, k);
            }
        }
    }

    /// Wait until `owner` is no longer doomed (a fork child whose predecessor was killed); a
    /// doomed process is about to be killed and waits here for it.
    fn await_undoomed(&self, owner: usize) {
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
    fn record_self(&self, owner: usize) {
        self.meta(owner, M_PID)
            .store(u64::from(std::process::id()), SeqCst);
        self.meta(owner, M_READY).store(1, SeqCst);
    }

    // ----- test side -----

    /// Mark `owners` doomed: they add no entry any more.
    fn doom(&self, owners: &[usize]) {
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
    fn purge(&self, owners: &[usize], forget: bool) -> Option<String> {
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
    fn totals(&self) -> (u64, u64) {
        let entries = (0..OWNERS)
            .flat_map(|o| (0..ENTRIES).map(move |k| (o, k)))
            .map(|(o, k)| decode(self.slot(o, k).load(SeqCst)).2)
            .sum();
        let counters = counter_cells().map(|c| self.get(c)).sum();
        (entries, counters)
    }
}

// =====================================================================================
// Child side
// =====================================================================================

/// The entry point of every child process; in the harness (no role) it returns at once.
#[test]
fn child_role() {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return;
    };
    match role.as_str() {
        "worker" => role_worker(),
        "forker" => role_forker(),
        "reaper" => role_reaper(),
        "audit" => role_audit(),
        "idle" => role_idle(),
        "hold" => role_hold(),
        other => panic!("unknown role {other:?}"),
    }
}

fn report(key: &str, value: impl fmt::Display) {
    println!("\n{MARK}{key} {value}");
}

fn index() -> usize {
    std::env::var(INDEX_ENV)
        .expect("role index")
        .parse()
        .expect("role index is a number")
}

fn witness() -> &'static Witness {
    let path = std::env::var_os(WITNESS_ENV).expect("witness path");
    Box::leak(Box::new(Witness::open(Path::new(&path))))
}

/// Whether `SHMSEM_CHAOS_WITHOUT` turns `what` off.
fn without(what: &str) -> bool {
    static OFF: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    OFF.get_or_init(|| {
        std::env::var(WITHOUT_ENV)
            .unwrap_or_default()
            .split(',')
            .map(|w| w.trim().to_owned())
            .filter(|w| !w.is_empty())
            .collect()
    })
    .iter()
    .any(|w| w == what)
}

fn ns() -> Options {
    Options::default().namespace(NS)
}

/// xorshift64*: enough randomness for choosing operations, weights and pauses.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        static SEQ_NO: AtomicU64 = AtomicU64::new(0);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let salt = SEQ_NO
            .fetch_add(1, SeqCst)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Rng((t ^ (u64::from(std::process::id()) << 32) ^ salt) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 0
    }
}

fn parties(info: &Info) -> String {
    let mut hs: Vec<(u32, u64)> = info.holders.iter().map(|p| (p.pid, p.weight)).collect();
    hs.sort_unstable();
    hs.iter()
        .map(|(p, w)| format!("{p}:{w}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn engine_view(sem: &Semaphore) -> String {
    match sem.info() {
        Ok(i) => format!(
            "engine now: value {} capacity {} holders [{}] waiters {}",
            i.value,
            i.capacity,
            parties(&i),
            i.waiters.len()
        ),
        Err(e) => format!("engine now: info failed: {e}"),
    }
}

/// Entered weight handed to the exiter thread.
struct Token {
    sem: Semaphore,
    n: usize,
    weight: u32,
    slot: Option<usize>,
}

/// One thread's view: its witness owner, its handles, its randomness.
struct Actor {
    w: &'static Witness,
    owner: usize,
    who: String,
    rng: Rng,
    handles: Vec<Option<Semaphore>>,
    /// Its bit in the removal brackets; 0 if it never removes a per-incarnation name.
    remover_bit: u64,
}

impl Actor {
    fn new(w: &'static Witness, owner: usize, who: String) -> Actor {
        Actor {
            w,
            owner,
            who: format!("{who} (pid {})", std::process::id()),
            rng: Rng::seeded(),
            handles: (0..NAMES).map(|_| None).collect(),
            remover_bit: 0,
        }
    }

    fn pause(&mut self, max_us: u64) {
        let us = self.rng.range(0, max_us);
        if us > 0 {
            thread::sleep(Duration::from_micros(us));
        }
    }

    fn options(&mut self, n: usize) -> Options {
        let s = &SPECS[n];
        let o = ns().capacity(self.rng.range(s.cap.0.into(), s.cap.1.into()) as u32);
        if s.persistent {
            o.persistent()
        } else if without("idle") {
            o.auto(Duration::from_secs(60))
        } else {
            o.auto(Duration::from_millis(self.rng.range(5, 50)))
        }
    }

    /// This thread's handle of name `n`, opened (get-or-create) if it has none.
    fn handle(&mut self, n: usize) -> Option<Semaphore> {
        if self.handles[n].is_none() {
            let opts = self.options(n);
            match opts.open(SPECS[n].name) {
                Ok(s) => self.handles[n] = Some(s),
                Err(e) => {
                    self.unexpected("open", n, &e);
                    return None;
                }
            }
        }
        self.handles[n].clone()
    }

    fn weight(&mut self, n: usize) -> u32 {
        match self.rng.below(20) {
            0..=11 => 1,
            12..=16 => 2,
            _ => self.rng.range(1, SPECS[n].cap.1.into()) as u32,
        }
    }

    /// The removal sequence word of a per-incarnation name (0 for the others).
    fn seq(&self, n: usize) -> u64 {
        match SPECS[n].rule {
            Rule::Strict => 0,
            Rule::PerIncarnation => self.w.get(SEQ + n),
        }
    }

    fn unexpected(&self, what: &str, n: usize, e: &Error) {
        self.w.bump(Stat::Errors);
        self.w.say(format_args!(
            "{}: {what} on {}: unexpected error: {e} ({e:?})",
            self.who, SPECS[n].name
        ));
    }

    /// An acquire-like call failed with `e`.
    fn failed(&mut self, n: usize, e: Error, what: &str) {
        match e {
            Error::Timeout { .. } => self.w.bump(Stat::Timeouts),
            Error::WouldBlock { .. } => {
                self.w.bump(Stat::WouldBlock);
                self.pause(300);
            }
            // A capacity lowered by another process.
            Error::WeightTooLarge { .. } => self.w.bump(Stat::TooLarge),
            // A lock of the namespace held past the caller's own deadline by another process
            // (perhaps one just killed, whose descriptors the test keeps for a moment). Without
            // a deadline the engine waits [`LOCK_PATIENCE_MS`], and that is unexpected here.
            Error::Busy { waited_ms, .. } if waited_ms < LOCK_PATIENCE_MS => {
                self.w.bump(Stat::Busy);
            }
            // Removed under us: open again next time (get-or-create).
            Error::Removed { .. } | Error::NotFound { .. } => {
                self.w.bump(Stat::Removed);
                self.handles[n] = None;
            }
            e => self.unexpected(what, n, &e),
        }
    }

    /// The engine granted `weight` of name `n` (the sequence word read before asking was
    /// `before`): put it in the witness and check.
    fn inside(
        &mut self,
        n: usize,
        before: u64,
        weight: u32,
        what: &str,
        sem: &Semaphore,
    ) -> Option<usize> {
        self.w.bump(Stat::Grants);
        self.w.cell(GRANTS_BY_NAME + n).fetch_add(1, SeqCst);
        let label = match SPECS[n].rule {
            Rule::Strict => None,
            Rule::PerIncarnation => {
                let after = self.w.get(SEQ + n);
                if after == before && after >> 32 == 0 {
                    Some(after as u32)
                } else {
                    self.w.bump(Stat::Unlabelled);
                    None
                }
            }
        };
        loop {
            match self.w.enter(self.owner, n, label, weight) {
                Entered::In { slot, inside } => {
                    let bound = u64::from(SPECS[n].cap.1);
                    if inside > bound {
                        let (stat, scope) = match label {
                            Some(l) => (Stat::VIncarnation, format!("incarnation {l} of")),
                            None => (Stat::VStrict, "all incarnations of".to_owned()),
                        };
                        self.w.violation(
                            stat,
                            format_args!(
                                "{}: {what} granted {weight} of {}; now {inside} inside {scope} \
                                 it, above its highest capacity {bound}; {}",
                                self.who,
                                SPECS[n].name,
                                engine_view(sem)
                            ),
                        );
                    }
                    return Some(slot);
                }
                Entered::Doomed => self.w.await_undoomed(self.owner),
                Entered::Full => {
                    self.w.bump(Stat::WitnessFull);
                    return None;
                }
            }
        }
    }

    /// Take a witness entry out, right before giving the weight back.
    fn out(&self, slot: Option<usize>) {
        if let Some(slot) = slot {
            self.w.leave(self.owner, slot);
        }
    }

    fn exit(&self, sem: &Semaphore, n: usize, weight: u32, stat: Stat) {
        match sem.exit(weight) {
            Ok(()) => self.w.bump(stat),
            Err(e) => self.unexpected("exit", n, &e),
        }
    }

    /// Give entered weight to the exiter thread, or exit it here if its queue is full.
    fn hand_over(&mut self, tx: &SyncSender<Token>, token: Token) {
        match tx.try_send(token) {
            Ok(()) => {}
            Err(TrySendError::Full(t) | TrySendError::Disconnected(t)) => {
                self.out(t.slot);
                self.exit(&t.sem, t.n, t.weight, Stat::SelfExits);
            }
        }
    }

    // ----- worker operations -----

    fn op_loop(&mut self, tx: &SyncSender<Token>) -> ! {
        loop {
            let n = self.rng.below(NAMES);
            match self.rng.below(100) {
                0..=44 => self.acquire_hold(n, tx),
                45..=53 if !without("enter") => self.enter_op(n, tx),
                54..=59 if !without("remove") => self.remove(n, false),
                60..=64 if SPECS[n].rule == Rule::PerIncarnation && !without("remove") => {
                    self.remove(n, !without("force"))
                }
                60..=69 if !without("capacity") => self.set_capacity(n),
                70..=75 => self.reopen(n),
                76..=80 => self.list(),
                81..=83 if !without("reap") => self.reap(),
                84..=92 => self.info(n),
                _ => self.pause(3000),
            }
            self.pause(300);
        }
    }

    fn acquire_hold(&mut self, n: usize, tx: &SyncSender<Token>) {
        let Some(sem) = self.handle(n) else { return };
        let weight = self.weight(n);
        let before = self.seq(n);
        let mode = self.rng.below(10);
        let got = match mode {
            0..=1 => sem.acquire_weight(weight),
            2..=6 => {
                let t = Duration::from_micros(self.rng.range(0, 5000));
                sem.acquire_timeout(weight, t)
            }
            _ => sem.try_acquire(weight),
        };
        let permit = match got {
            Ok(p) => p,
            Err(e) => return self.failed(n, e, "acquire"),
        };
        self.w.bump(match mode {
            0..=1 => Stat::Blocking,
            2..=6 => Stat::Timed,
            _ => Stat::Try,
        });
        let slot = self.inside(n, before, weight, "acquire", &sem);
        self.pause(2000);
        match self.rng.below(20) {
            14..=16 if !without("enter") => {
                permit.forget();
                self.out(slot);
                self.exit(&sem, n, weight, Stat::SelfExits);
            }
            17.. if !without("enter") => {
                permit.forget();
                let token = Token {
                    sem: sem.clone(),
                    n,
                    weight,
                    slot,
                };
                self.hand_over(tx, token);
            }
            _ => {
                self.out(slot);
                drop(permit);
            }
        }
    }

    fn enter_op(&mut self, n: usize, tx: &SyncSender<Token>) {
        let Some(sem) = self.handle(n) else { return };
        let weight = self.weight(n);
        let before = self.seq(n);
        if let Err(e) = sem.enter(weight) {
            return self.failed(n, e, "enter");
        }
        self.w.bump(Stat::Enters);
        let slot = self.inside(n, before, weight, "enter", &sem);
        self.pause(1000);
        if self.rng.below(4) == 0 {
            self.out(slot);
            self.exit(&sem, n, weight, Stat::SelfExits);
        } else {
            self.hand_over(
                tx,
                Token {
                    sem,
                    n,
                    weight,
                    slot,
                },
            );
        }
    }

    fn remove(&mut self, n: usize, force: bool) {
        let Some(sem) = self.handle(n) else { return };
        let bracket = SPECS[n].rule == Rule::PerIncarnation;
        if bracket {
            // Only op threads remove per-incarnation names; others never get here for them.
            assert_ne!(
                self.remover_bit, 0,
                "{} removes without a bracket",
                self.who
            );
            self.w.cell(SEQ + n).fetch_add(self.remover_bit, SeqCst);
        }
        let r = sem.remove(force);
        if bracket {
            // Clear the bit and count a finished removal, in one step.
            self.w
                .cell(SEQ + n)
                .fetch_add(1u64.wrapping_sub(self.remover_bit), SeqCst);
        }
        match r {
            Ok(()) => {
                self.w.bump(if force {
                    Stat::ForceRemoves
                } else {
                    Stat::Removes
                });
                self.handles[n] = None;
            }
            Err(Error::InUse { .. }) => self.w.bump(Stat::RemovesInUse),
            Err(Error::NotFound { .. } | Error::Removed { .. }) => {
                self.w.bump(Stat::RemovesGone);
                self.handles[n] = None;
            }
            Err(e) => self.unexpected(if force { "remove(true)" } else { "remove" }, n, &e),
        }
    }

    fn set_capacity(&mut self, n: usize) {
        let (lo, hi) = SPECS[n].cap;
        if lo == hi {
            return self.info(n);
        }
        let Some(sem) = self.handle(n) else { return };
        let c = self.rng.range(lo.into(), hi.into()) as u32;
        match sem.set_capacity(c) {
            Ok(()) => self.w.bump(Stat::Capacity),
            Err(Error::Removed { .. } | Error::NotFound { .. }) => {
                self.w.bump(Stat::Removed);
                self.handles[n] = None;
            }
            Err(e) => self.unexpected("set_capacity", n, &e),
        }
    }

    /// Removal, capacity changes and idle sweeps, about every millisecond: what the op threads
    /// do, denser, to race every other operation.
    fn churn_loop(&mut self) -> ! {
        loop {
            let n = self.rng.below(NAMES);
            match self.rng.below(10) {
                0..=5 if !without("remove") => {
                    let force = SPECS[n].rule == Rule::PerIncarnation
                        && !without("force")
                        && self.rng.coin();
                    self.remove(n, force);
                }
                6..=7 if !without("capacity") => self.set_capacity(n),
                _ => self.list(),
            }
            self.pause(2000);
        }
    }

    /// Drop this thread's handle and open the name again (get-or-create); a re-creation if it
    /// did not exist.
    fn reopen(&mut self, n: usize) {
        match ns().open_existing(SPECS[n].name) {
            Ok(_) => {}
            Err(Error::NotFound { .. }) => self.w.bump(Stat::Recreations),
            Err(e) => self.unexpected("open_existing", n, &e),
        }
        self.handles[n] = None;
        if self.handle(n).is_some() {
            self.w.bump(Stat::Reopens);
        }
    }

    fn check_value(&self, info: &Info, what: &str) {
        if info.value > MAX_CAP {
            self.w.violation(
                Stat::VValue,
                format_args!(
                    "{}: {what} shows {} with value {} above every capacity ({MAX_CAP}); \
                     capacity {} holders [{}]",
                    self.who,
                    info.name,
                    info.value,
                    info.capacity,
                    parties(info)
                ),
            );
        }
    }

    fn list(&mut self) {
        match ns().list() {
            Ok(infos) => {
                self.w.bump(Stat::Lists);
                for i in &infos {
                    self.check_value(i, "list");
                }
            }
            Err(e) => self.unexpected("list", 0, &e),
        }
    }

    fn reap(&mut self) {
        match ns().reap() {
            Ok(r) => {
                self.w.bump(Stat::Reaps);
                self.w
                    .add(Stat::Reclaimed, r.iter().map(|r| r.weight).sum());
            }
            Err(e) => self.unexpected("reap", 0, &e),
        }
    }

    fn info(&mut self, n: usize) {
        let Some(sem) = self.handle(n) else { return };
        match sem.info() {
            Ok(i) => {
                self.w.bump(Stat::Infos);
                self.check_value(&i, "info");
            }
            Err(Error::Removed { .. } | Error::NotFound { .. }) => {
                self.w.bump(Stat::Removed);
                self.handles[n] = None;
            }
            Err(e) => self.unexpected("info", n, &e),
        }
    }

    /// Acquire and give back without the witness (the reaper, which may die at a kill point):
    /// the witness then holds less than the engine granted, which can hide nothing it checks.
    fn unwitnessed(&mut self, n: usize) {
        let Some(sem) = self.handle(n) else { return };
        let weight = self.weight(n);
        let t = Duration::from_micros(self.rng.range(0, 5000));
        match sem.acquire_timeout(weight, t) {
            Ok(p) => {
                self.w.bump(Stat::Unwitnessed);
                self.pause(2000);
                if self.rng.coin() {
                    drop(p);
                } else {
                    p.forget();
                    self.exit(&sem, n, weight, Stat::SelfExits);
                }
            }
            Err(e) => self.failed(n, e, "acquire"),
        }
    }

    fn exit_loop(&mut self, rx: Receiver<Token>) {
        for t in rx {
            self.pause(2000);
            self.out(t.slot);
            self.exit(&t.sem, t.n, t.weight, Stat::CrossExits);
        }
    }

    /// Acquire and release on behalf of process `holder`.
    fn external_loop(&mut self, holder: u32) -> ! {
        while without("external") {
            thread::sleep(Duration::from_secs(1));
        }
        loop {
            let n = self.rng.below(NAMES);
            if let Some(sem) = self.handle(n) {
                let weight = self.weight(n);
                let before = self.seq(n);
                let timeout = match self.rng.below(4) {
                    0 => Duration::ZERO,
                    _ => Duration::from_micros(self.rng.range(500, 5000)),
                };
                match sem.acquire_for(holder, weight, Some(timeout)) {
                    Ok(()) => {
                        self.w.bump(Stat::External);
                        let slot = self.inside(n, before, weight, "acquire_for", &sem);
                        self.pause(3000);
                        self.out(slot);
                        match sem.release_for(holder, weight) {
                            Ok(()) => self.w.bump(Stat::ExternalReleases),
                            // Force-removed meanwhile: nothing to give back to.
                            Err(
                                Error::NotHeld { .. }
                                | Error::Removed { .. }
                                | Error::NotFound { .. },
                            ) if SPECS[n].rule == Rule::PerIncarnation => {
                                self.w.bump(Stat::Removed);
                                self.handles[n] = None;
                            }
                            Err(e) => self.unexpected("release_for", n, &e),
                        }
                    }
                    Err(e) => self.failed(n, e, "acquire_for"),
                }
            }
            self.pause(1000);
        }
    }

    // ----- fork -----

    /// What process `pid` holds, as `info` shows, must be `expect` on every strict name, and the
    /// value at least that.
    fn check_holdings(&mut self, pid: u32, expect: &[u64; NAMES], when: &str) {
        for (n, &expected) in expect.iter().enumerate() {
            if SPECS[n].rule != Rule::Strict {
                continue;
            }
            let Some(sem) = self.handle(n) else { continue };
            let info = match sem.info() {
                Ok(i) => i,
                Err(Error::Removed { .. } | Error::NotFound { .. }) if expected == 0 => {
                    self.handles[n] = None;
                    continue;
                }
                Err(e) => {
                    self.unexpected(when, n, &e);
                    continue;
                }
            };
            let held: u64 = info
                .holders
                .iter()
                .filter(|p| p.pid == pid)
                .map(|p| p.weight)
                .sum();
            if held != expected || u64::from(info.value) < expected {
                self.w.violation(
                    Stat::VFork,
                    format_args!(
                        "{}: {when}: forker {pid} holds {expected} of {}, but info shows it \
                         holding {held} and a value of {} (holders [{}])",
                        self.who,
                        SPECS[n].name,
                        info.value,
                        parties(&info)
                    ),
                );
            }
        }
    }

    /// One round of the forker: hold, fork, let the child try, wait for it, give back.
    fn fork_round(&mut self, j: usize) {
        let co = child_owner(j);
        let me = std::process::id();
        let mut expect = [0u64; NAMES];
        // A guarded permit.
        let n1 = self.rng.below(NAMES);
        let sem1 = self.handle(n1);
        let mut hold = None;
        if let Some(sem1) = &sem1 {
            let w1 = self.weight(n1);
            let before = self.seq(n1);
            let got = if self.rng.coin() {
                sem1.try_acquire(w1)
            } else {
                sem1.acquire_timeout(w1, Duration::from_micros(self.rng.range(0, 3000)))
            };
            match got {
                Ok(p) => {
                    let slot = self.inside(n1, before, w1, "acquire before fork", sem1);
                    expect[n1] += u64::from(w1);
                    hold = Some((p, slot));
                }
                Err(e) => self.failed(n1, e, "acquire before fork"),
            }
        }
        // Entered weight.
        let n2 = self.rng.below(NAMES);
        let sem2 = self.handle(n2);
        let mut entered = None;
        if let Some(sem2) = &sem2 {
            let w2 = self.weight(n2);
            let before = self.seq(n2);
            let got = if self.rng.below(4) == 0 {
                sem2.enter(w2)
            } else {
                let t = Duration::from_micros(self.rng.range(0, 3000));
                sem2.acquire_timeout(w2, t).map(Permit::forget)
            };
            match got {
                Ok(()) => {
                    let slot = self.inside(n2, before, w2, "enter before fork", sem2);
                    expect[n2] += u64::from(w2);
                    entered = Some((w2, slot));
                }
                Err(e) => self.failed(n2, e, "enter before fork"),
            }
        }
        self.check_holdings(me, &expect, "before fork");
        if without("fork") {
            self.pause(2000);
            if let Some((p, slot)) = hold {
                self.out(slot);
                drop(p);
            }
            if let (Some(sem2), Some((w2, slot))) = (&sem2, entered) {
                self.out(slot);
                self.exit(sem2, n2, w2, Stat::SelfExits);
            }
            return;
        }
        self.w.bump(Stat::Forks);
        // SAFETY: fork(2) has no preconditions; this process is single-threaded apart from
        // libtest's main thread, which only waits for this test, so the child may run Rust
        // code (glibc keeps malloc usable after fork).
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let entered_child = match (&sem2, entered) {
                (Some(s), Some((w2, _))) => Some((s, w2)),
                _ => None,
            };
            self.fork_child(co, me, hold, entered_child, &expect);
        }
        if pid < 0 {
            self.w.bump(Stat::Errors);
            self.w.say(format_args!(
                "{}: fork: {}",
                self.who,
                io::Error::last_os_error()
            ));
        } else {
            self.w.meta(co, M_PID).store(pid as u64, SeqCst);
            let status = wait_pid(pid);
            match (status.code(), status.signal()) {
                (Some(0), _) => {}
                (_, Some(libc::SIGKILL)) => self.w.bump(Stat::ForkChildKilled),
                _ => {
                    self.w.bump(Stat::Errors);
                    self.w.say(format_args!(
                        "{}: fork child {pid} ended with {status:?}",
                        self.who
                    ));
                }
            }
            self.w.meta(co, M_PID).store(0, SeqCst);
            self.check_holdings(me, &expect, "after its fork child ended");
        }
        if let Some((p, slot)) = hold {
            self.out(slot);
            drop(p);
        }
        if let (Some(sem2), Some((w2, slot))) = (&sem2, entered) {
            self.out(slot);
            self.exit(sem2, n2, w2, Stat::SelfExits);
        }
    }

    /// The child side of a fork: never returns.
    fn fork_child(
        &mut self,
        co: usize,
        forker: u32,
        hold: Option<(Permit<'_>, Option<usize>)>,
        entered: Option<(&Semaphore, u32)>,
        expect: &[u64; NAMES],
    ) -> ! {
        let me = std::process::id();
        self.w.meta(co, M_PID).store(u64::from(me), SeqCst);
        // SAFETY: prctl(PR_SET_PDEATHSIG) and getppid take and return integers only.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() as u32 != forker {
                libc::_exit(0);
            }
        }
        self.owner = co;
        self.rng = Rng::seeded();
        self.who = format!("fork child (pid {me}) of forker {forker}");
        let body = catch_unwind(AssertUnwindSafe(|| {
            self.fork_child_body(forker, hold, entered, expect)
        }));
        let code = match body {
            Ok(()) => 0,
            Err(_) => 101,
        };
        self.w.leave_all(co);
        // SAFETY: _exit ends the child without running the parent's destructors or atexit
        // handlers.
        unsafe { libc::_exit(code) }
    }

    fn fork_child_body(
        &mut self,
        forker: u32,
        hold: Option<(Permit<'_>, Option<usize>)>,
        entered: Option<(&Semaphore, u32)>,
        expect: &[u64; NAMES],
    ) {
        // The parent's entered weight is not the child's to give back.
        if let Some((sem, w2)) = entered {
            match sem.exit(w2) {
                Err(Error::NotHeld { .. }) => self.w.bump(Stat::ForkChecks),
                Ok(()) => self.w.violation(
                    Stat::VFork,
                    format_args!(
                        "{}: exit({w2}) of {} returned Ok in the child: it gave back weight \
                         its parent entered; {}",
                        self.who,
                        sem.name(),
                        engine_view(sem)
                    ),
                ),
                Err(e) => {
                    let n = SPECS.iter().position(|s| s.name == sem.name()).unwrap_or(0);
                    self.unexpected("exit of the parent's weight in a fork child", n, &e);
                }
            }
        }
        // Nor is its guard: dropping the child's copy gives nothing back. (Its witness entry
        // is the parent's.)
        drop(hold);
        self.check_holdings(forker, expect, "in its fork child");
        for _ in 0..self.rng.range(1, 3) {
            let n = self.rng.below(NAMES);
            let Some(sem) = self.handle(n) else { continue };
            let weight = self.weight(n);
            let before = self.seq(n);
            let got = if self.rng.coin() {
                sem.try_acquire(weight)
            } else {
                sem.acquire_timeout(weight, Duration::from_micros(self.rng.range(0, 3000)))
            };
            match got {
                Ok(p) => {
                    self.w.bump(Stat::ChildGrants);
                    let slot = self.inside(n, before, weight, "acquire in a fork child", &sem);
                    self.pause(1000);
                    self.out(slot);
                    drop(p);
                }
                Err(e) => self.failed(n, e, "acquire in a fork child"),
            }
        }
        self.check_holdings(forker, expect, "in its fork child, after its own acquires");
    }
}

fn wait_pid(pid: i32) -> ExitStatus {
    let mut status = 0;
    loop {
        // SAFETY: waitpid writes the status of our child `pid` into `status`.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return ExitStatus::from_raw(status);
        }
        let e = io::Error::last_os_error();
        assert_eq!(e.kind(), io::ErrorKind::Interrupted, "waitpid({pid}): {e}");
    }
}

fn role_worker() {
    let i = index();
    let owner = worker_owner(i);
    let w = witness();
    let holder: u32 = std::env::var(SLEEPER_ENV)
        .expect("the sleeper's pid")
        .parse()
        .expect("a pid");
    let mut main = Actor::new(w, owner, format!("worker {i}"));
    for n in 0..NAMES {
        main.handle(n);
    }
    w.record_self(owner);
    let (tx, rx) = mpsc::sync_channel::<Token>(16);
    for t in 0..OP_THREADS {
        let mut a = Actor::new(w, owner, format!("worker {i} thread {t}"));
        a.remover_bit = remover_bit(owner, t);
        let tx = tx.clone();
        thread::spawn(move || a.op_loop(&tx));
    }
    drop(tx);
    let mut churn = Actor::new(w, owner, format!("worker {i} churn"));
    churn.remover_bit = remover_bit(owner, OP_THREADS);
    thread::spawn(move || churn.churn_loop());
    let mut exiter = Actor::new(w, owner, format!("worker {i} exiter"));
    thread::spawn(move || exiter.exit_loop(rx));
    let mut external = Actor::new(w, owner, format!("worker {i} acting for {holder}"));
    thread::spawn(move || external.external_loop(holder));
    loop {
        thread::sleep(Duration::from_secs(1));
    }
}

fn role_forker() {
    let j = index();
    let owner = forker_owner(j);
    let w = witness();
    let mut a = Actor::new(w, owner, format!("forker {j}"));
    for n in 0..NAMES {
        a.handle(n);
    }
    w.meta(child_owner(j), M_PID).store(0, SeqCst);
    w.record_self(owner);
    loop {
        a.fork_round(j);
        a.pause(2000);
    }
}

fn role_reaper() {
    let w = witness();
    let mut a = Actor::new(w, REAPER_OWNER, "reaper".to_owned());
    loop {
        let n = a.rng.below(NAMES);
        match a.rng.below(20) {
            0..=6 if !without("reap") => a.reap(),
            0..=10 => a.list(),
            11..=13 => match ns().open_existing(SPECS[n].name) {
                Ok(s) => match s.info() {
                    Ok(i) => a.check_value(&i, "info"),
                    Err(Error::Removed { .. } | Error::NotFound { .. }) => {}
                    Err(e) => a.unexpected("info", n, &e),
                },
                Err(Error::NotFound { .. }) => {}
                Err(e) => a.unexpected("open_existing", n, &e),
            },
            _ => a.unwitnessed(n),
        }
        a.pause(8000);
    }
}

/// Reap, then report every semaphore: `sem.NAME value holders-sum holders waiters kind cap`.
fn role_audit() {
    let reaped = ns().reap().expect("reap");
    report("reaped", reaped.iter().map(|r| r.weight).sum::<u64>());
    let infos = ns().list().expect("list");
    for i in &infos {
        report(
            &format!("sem.{}", i.name),
            format!(
                "{} {} {} {} {} {} [{}]",
                i.value,
                i.holders.iter().map(|p| p.weight).sum::<u64>(),
                i.holders.len(),
                i.waiters.len(),
                i.kind.as_str(),
                i.capacity,
                parties(i)
            ),
        );
    }
    report(
        "names",
        infos
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>()
            .join(","),
    );
}

/// Sweep, wait past every idle period, sweep again, and report what is left.
fn role_idle() {
    for _ in 0..3 {
        ns().list().expect("list");
        thread::sleep(Duration::from_millis(200));
    }
    let infos = ns().list().expect("list");
    for i in &infos {
        report(
            &format!("left.{}", i.name),
            format!(
                "{} value {} holders [{}] waiters {}",
                i.kind.as_str(),
                i.value,
                parties(i),
                i.waiters.len()
            ),
        );
    }
    report(
        "names",
        infos
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>()
            .join(","),
    );
}

/// Take weight 1 of every name if it is free (guarded, and entered for `keep`), report it, and
/// hold until the witness says stop.
fn role_hold() {
    let w = witness();
    let mut a = Actor::new(w, REAPER_OWNER, format!("holder {}", index()));
    let sems: Vec<Semaphore> = (0..NAMES)
        .map(|n| a.handle(n).expect("opening for the final holders"))
        .collect();
    let mut permits = Vec::new();
    let mut entered = Vec::new();
    for (n, sem) in sems.iter().enumerate() {
        let weight = 1 + (n as u32 % 2);
        let got = if SPECS[n].name == "keep" {
            sem.try_acquire(weight).map(|p| {
                p.forget();
                entered.push((sem, weight));
            })
        } else {
            sem.try_acquire(weight).map(|p| permits.push(p))
        };
        match got {
            Ok(()) => report(&format!("held.{}", SPECS[n].name), weight),
            Err(Error::WouldBlock { .. } | Error::WeightTooLarge { .. }) => {
                report(&format!("held.{}", SPECS[n].name), 0);
            }
            Err(e) => panic!("holder: try_acquire on {}: {e}", SPECS[n].name),
        }
    }
    report("pid", std::process::id());
    report("ready", 1);
    let deadline = Instant::now() + CHILD_LIMIT;
    while w.get(STOP) == 0 {
        assert!(Instant::now() < deadline, "no stop within {CHILD_LIMIT:?}");
        thread::sleep(Duration::from_millis(2));
    }
    drop(permits);
    for (sem, weight) in entered {
        sem.exit(weight).expect("exit");
    }
    report("released", 1);
}

// =====================================================================================
// Parent side
// =====================================================================================

/// A fresh directory under the system temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let p = std::env::temp_dir().join(format!("shmsem-chaos-{}-{nanos}", std::process::id()));
        fs::create_dir_all(p.join("shm")).expect("creating the test directory");
        TempDir(p)
    }
    fn shm(&self) -> PathBuf {
        self.0.join("shm")
    }
    fn witness(&self) -> PathBuf {
        self.0.join("witness")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Make `cmd`'s process die with this thread (`PR_SET_PDEATHSIG`), so that nothing outlives the
/// test however it ends.
fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe calls
    // (prctl, getppid, _exit) without allocating.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() as u32 != parent {
                libc::_exit(0);
            }
            Ok(())
        });
    }
}

/// A child process running this test binary in `role`.
fn role_command(dir: &TempDir, role: &str, index: usize) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(ROLE_ENV, role)
        .env(INDEX_ENV, index.to_string())
        .env(shmsem::DIR_ENV, dir.shm())
        .env(WITNESS_ENV, dir.witness())
        .env_remove(shmsem::SELF_ENV)
        .env_remove(shmsem::failpoint::ENV)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    die_with_parent(&mut cmd);
    cmd
}

fn cli_command(dir: &TempDir, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shmsem"));
    cmd.args(["--namespace", NS])
        .args(args)
        .env(shmsem::DIR_ENV, dir.shm())
        .env_remove(shmsem::SELF_ENV)
        .env_remove(shmsem::failpoint::ENV)
        .stdin(Stdio::null());
    die_with_parent(&mut cmd);
    cmd
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Worker(usize),
    Forker(usize),
    Reaper(usize),
}

impl Kind {
    /// The witness owners of its processes (for a forker: itself and its child).
    fn owners(self) -> Vec<usize> {
        match self {
            Kind::Worker(i) => vec![worker_owner(i)],
            Kind::Forker(j) => vec![forker_owner(j), child_owner(j)],
            Kind::Reaper(_) => Vec::new(),
        }
    }
    fn main_owner(self) -> Option<usize> {
        match self {
            Kind::Worker(i) => Some(worker_owner(i)),
            Kind::Forker(j) => Some(forker_owner(j)),
            Kind::Reaper(_) => None,
        }
    }
}

/// A running role process, and the `sleep` a worker acts for.
struct Role {
    kind: Kind,
    child: Child,
    reaped: bool,
    born: Instant,
    min_life: Duration,
    sleeper: Option<Child>,
    /// The kill point it was started with (`SHMSEM_FAILPOINT`), if any.
    point: Option<String>,
}

impl Drop for Role {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(s) = &mut self.sleeper {
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}

/// A short-lived child whose marked stdout lines come through a channel.
struct Kid {
    child: Child,
    lines: Receiver<(String, String)>,
    seen: Vec<(String, String)>,
    reaped: bool,
}

impl Kid {
    fn spawn(mut cmd: Command) -> Kid {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning a child");
        let out = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find(MARK) {
                    let rest = &line[at + MARK.len()..];
                    let (k, v) = rest.split_once(' ').unwrap_or((rest, ""));
                    let _ = tx.send((k.to_owned(), v.trim().to_owned()));
                }
            }
        });
        Kid {
            child,
            lines,
            seen: Vec::new(),
            reaped: false,
        }
    }

    /// Wait at most `timeout` for report `key`.
    fn expect(&mut self, key: &str, timeout: Duration) -> Option<String> {
        if let Some((_, v)) = self.seen.iter().find(|(k, _)| k == key) {
            return Some(v.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (k, v) = self.lines.recv_timeout(left).ok()?;
            self.seen.push((k.clone(), v.clone()));
            if k == key {
                return Some(v);
            }
        }
    }

    /// Wait for the child to exit (SIGKILL after `timeout`) and for its output to end.
    fn finish(&mut self, timeout: Duration) -> (Option<ExitStatus>, Vec<(String, String)>) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break Some(s);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            thread::sleep(Duration::from_millis(2));
        };
        self.reaped = true;
        while let Ok(kv) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(kv);
        }
        (status, self.seen.clone())
    }

    fn sigkill(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        let s = self.child.wait().expect("wait");
        self.reaped = true;
        s
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pidfd_open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Our own copy of descriptor `fd` of the process behind `pidfd`, sharing its open file
/// description (and so its OFD locks).
fn pidfd_getfd(pidfd: &OwnedFd, fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_getfd(2) takes a pidfd, a descriptor number in that process and flags, and
    // returns a new descriptor or -1.
    let copy = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if copy < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pidfd_getfd returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(copy as i32) })
}

fn pidfd_kill(pidfd: &OwnedFd) {
    // SAFETY: pidfd_send_signal(2) takes a pidfd, a signal number, a null siginfo and flags.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        );
    }
}

/// Wait until the process behind `pidfd` has exited; whether it did within `timeout`.
fn pidfd_wait(pidfd: &OwnedFd, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll(2) reads and writes the one valid pollfd we pass.
    let r = unsafe { libc::poll(&mut p, 1, timeout.as_millis().min(i32::MAX as u128) as i32) };
    r > 0
}

/// The parent pid of `pid`, from `/proc`.
fn ppid_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// The pids of this process's children (orphans adopted as subreaper included).
fn children() -> Vec<u32> {
    let mut out = Vec::new();
    let mut any = false;
    if let Ok(tasks) = fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Ok(s) = fs::read_to_string(t.path().join("children")) {
                any = true;
                out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    if !any {
        // No /proc/.../children (CONFIG_PROC_CHILDREN off): scan every process.
        let me = std::process::id();
        if let Ok(procs) = fs::read_dir("/proc") {
            for p in procs.flatten() {
                if let Ok(pid) = p.file_name().to_string_lossy().parse::<u32>()
                    && ppid_of(pid) == Some(me)
                {
                    out.push(pid);
                }
            }
        }
    }
    out
}

/// Counts of the run, on the parent side.
#[derive(Debug, Default)]
struct Kills {
    workers: u64,
    forkers: u64,
    fork_children: u64,
    reapers: u64,
    cli: u64,
    /// Of the workers and forkers: killed before they had recorded their lock descriptor.
    early: u64,
    /// Not counted in the total: reapers and `shmsem reap` runs that killed themselves at the
    /// kill point they were started with, by step.
    points: std::collections::BTreeMap<String, u64>,
}

impl Kills {
    /// The SIGKILLs the test sent.
    fn total(&self) -> u64 {
        self.workers + self.forkers + self.fork_children + self.reapers + self.cli
    }

    fn point(&mut self, point: &str) {
        let step = point.split('@').next().unwrap_or(point);
        *self.points.entry(step.to_owned()).or_default() += 1;
    }
}

/// The kill points of a reclaimer.
const RECLAIM_STEPS: &[&str] = &[
    "reclaim:claimed",
    "reclaim:frozen",
    "reclaim:quiesced",
    "reclaim:cleared",
    "reclaim:recounted",
    "reclaim:freed",
];

/// A kill point for a process that puts nothing in the witness: one of the engine's steps, at a
/// random one of its first few visits. `None` without the `failpoints` feature.
fn kill_point(rng: &mut Rng, steps: &[&str]) -> Option<String> {
    if !cfg!(feature = "failpoints") {
        return None;
    }
    Some(format!(
        "{}@{}",
        steps[rng.below(steps.len())],
        rng.range(1, 4)
    ))
}

struct Run {
    dir: TempDir,
    w: Witness,
    shm: PathBuf,
    rng: Rng,
    roles: Vec<Role>,
    cli: Option<(Child, Option<String>)>,
    cli_runs: u64,
    kills: Kills,
    crashes: u64,
    orphans: u64,
    failures: Vec<String>,
}

impl Run {
    fn new() -> Run {
        let dir = TempDir::new();
        Witness::create(&dir.witness());
        let w = Witness::open(&dir.witness());
        let shm = fs::canonicalize(dir.shm()).expect("canonical SHMSEM_DIR");
        Run {
            dir,
            w,
            shm,
            rng: Rng::seeded(),
            roles: Vec::new(),
            cli: None,
            cli_runs: 0,
            kills: Kills::default(),
            crashes: 0,
            orphans: 0,
            failures: Vec::new(),
        }
    }

    fn fail(&mut self, msg: String) {
        eprintln!("chaos: FAILURE: {msg}");
        self.failures.push(msg);
    }

    fn spawn(&mut self, kind: Kind) -> Role {
        let (role, index) = match kind {
            Kind::Worker(i) => ("worker", i),
            Kind::Forker(j) => ("forker", j),
            Kind::Reaper(k) => ("reaper", k),
        };
        let sleeper = match kind {
            Kind::Worker(_) => {
                let mut cmd = Command::new("sleep");
                cmd.arg("100000").stdin(Stdio::null()).stdout(Stdio::null());
                die_with_parent(&mut cmd);
                Some(cmd.spawn().expect("spawning sleep"))
            }
            _ => None,
        };
        let mut cmd = role_command(&self.dir, role, index);
        cmd.stdout(Stdio::null());
        if let Some(s) = &sleeper {
            cmd.env(SLEEPER_ENV, s.id().to_string());
        }
        // The reaper puts nothing in the witness, so it may die by itself anywhere.
        let point = match kind {
            Kind::Reaper(_) if self.rng.below(100) < 60 => {
                kill_point(&mut self.rng, shmsem::failpoint::STEPS)
            }
            _ => None,
        };
        if let Some(p) = &point {
            cmd.env(shmsem::failpoint::ENV, p);
        }
        let child = cmd.spawn().expect("spawning a role");
        Role {
            kind,
            child,
            reaped: false,
            born: Instant::now(),
            min_life: Duration::from_millis(if self.rng.below(100) < EARLY_PERCENT {
                self.rng.range(0, EARLY_MS)
            } else {
                self.rng.range(0, MAX_MIN_LIFE_MS)
            }),
            sleeper,
            point,
        }
    }

    fn start(&mut self) {
        let kinds: Vec<Kind> = (0..WORKERS)
            .map(Kind::Worker)
            .chain((0..FORKERS).map(Kind::Forker))
            .chain((0..REAPERS).map(Kind::Reaper))
            .collect();
        for k in kinds {
            let r = self.spawn(k);
            self.roles.push(r);
        }
    }

    /// Copies of every descriptor of process `pid` (behind `pidfd`) that refers to a file in
    /// our `SHMSEM_DIR`: whichever open file description carries its liveness lock, the copy
    /// keeps it (OFD locks belong to the description), so to the engine the process stays alive
    /// until the copies are dropped. The last error of `pidfd_getfd`, if any.
    fn copy_descriptors(&self, pidfd: &OwnedFd, pid: u32) -> (Vec<OwnedFd>, Option<io::Error>) {
        let mut copies = Vec::new();
        let mut error = None;
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            return (copies, error);
        };
        for entry in fds.flatten() {
            let Ok(target) = fs::read_link(entry.path()) else {
                continue;
            };
            let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if !target.starts_with(&self.shm) {
                continue;
            }
            match pidfd_getfd(pidfd, fd) {
                // The number may have been reused meanwhile: keep only what is ours.
                Ok(copy) => {
                    if fs::read_link(format!("/proc/self/fd/{}", copy.as_raw_fd()))
                        .is_ok_and(|p| p.starts_with(&self.shm))
                    {
                        copies.push(copy);
                    }
                }
                Err(e) => error = Some(e),
            }
        }
        (copies, error)
    }

    /// The child of forker `j` (pid `forker`), if there is one: a pidfd of it, with copies of
    /// its descriptors into `SHMSEM_DIR` pushed to `keep`.
    fn fork_child(&mut self, j: usize, forker: u32, keep: &mut Vec<OwnedFd>) -> Option<OwnedFd> {
        let co = child_owner(j);
        let pid = self.w.meta(co, M_PID).load(SeqCst) as u32;
        if pid == 0 {
            return None;
        }
        let pidfd = pidfd_open(pid).ok()?;
        // Its parent must be the forker (the pid could have been reused after the child was
        // reaped); while the pidfd's process lives, /proc/PID is that process.
        if ppid_of(pid) != Some(forker) || pidfd_wait(&pidfd, Duration::ZERO) {
            return None;
        }
        let (copies, _) = self.copy_descriptors(&pidfd, pid);
        keep.extend(copies);
        Some(pidfd)
    }

    /// Kill role `r` (see the module docs for the order), and start a new one if `respawn`.
    fn kill(&mut self, r: usize, respawn: bool) {
        if let Ok(Some(status)) = self.roles[r].child.try_wait() {
            self.ended(r, status);
            if respawn {
                return;
            }
        }
        let kind = self.roles[r].kind;
        let owners = kind.owners();
        self.w.doom(&owners);
        let pid = self.roles[r].child.id();
        let mut keep = Vec::new();
        let mut early = false;
        if let Some(o) = kind.main_owner() {
            let ready = self.w.meta(o, M_READY).load(SeqCst) != 0;
            early = !ready;
            let pidfd = pidfd_open(pid).expect("pidfd_open of a role (needs Linux >= 5.3)");
            let (copies, error) = self.copy_descriptors(&pidfd, pid);
            if ready && copies.is_empty() && self.roles[r].child.try_wait().ok().flatten().is_none()
            {
                panic!(
                    "could not copy any descriptor of {kind:?} (pid {pid}) into SHMSEM_DIR: \
                     {error:?} (needs Linux >= 5.6 and ptrace rights over our children)"
                );
            }
            keep.extend(copies);
        }
        let child = match kind {
            Kind::Forker(j) => self.fork_child(j, pid, &mut keep),
            _ => None,
        };
        if let Some(c) = &child {
            pidfd_kill(c);
            self.kills.fork_children += 1;
        }
        let _ = self.roles[r].child.kill();
        let status = self.roles[r].child.wait().expect("waitpid");
        self.roles[r].reaped = true;
        if status.signal() == Some(libc::SIGKILL) {
            match kind {
                Kind::Worker(_) => self.kills.workers += 1,
                Kind::Forker(_) => self.kills.forkers += 1,
                Kind::Reaper(_) => self.kills.reapers += 1,
            }
            if early {
                self.kills.early += 1;
            }
        } else {
            self.crashes += 1;
            self.fail(format!("{kind:?} (pid {pid}) ended by itself: {status:?}"));
        }
        if let Some(c) = &child
            && !pidfd_wait(c, Duration::from_secs(20))
        {
            self.fail(format!("the fork child of {kind:?} did not die"));
        }
        if let Some(problem) = self.w.purge(&kind.owners(), true) {
            self.fail(problem);
        }
        // Now the engine may find them dead.
        drop(keep);
        if let Some(mut s) = self.roles[r].sleeper.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        if respawn {
            self.roles[r] = self.spawn(kind);
        }
    }

    /// Kill the fork child of forker `j` alone.
    fn kill_fork_child(&mut self, j: usize) {
        let r = WORKERS + j;
        assert_eq!(self.roles[r].kind, Kind::Forker(j));
        let forker = self.roles[r].child.id();
        let co = child_owner(j);
        self.w.doom(&[co]);
        let mut keep = Vec::new();
        if let Some(c) = self.fork_child(j, forker, &mut keep) {
            pidfd_kill(&c);
            self.kills.fork_children += 1;
            if !pidfd_wait(&c, Duration::from_secs(20)) {
                self.fail(format!("the fork child of forker {j} did not die"));
            }
        }
        // The next child of the forker keeps what it recorded.
        if let Some(problem) = self.w.purge(&[co], false) {
            self.fail(problem);
        }
        drop(keep);
    }

    /// Roles that ended without being killed: a failure, unless a reaper reached its kill
    /// point; start them again.
    fn check_exits(&mut self) {
        for r in 0..self.roles.len() {
            if let Ok(Some(status)) = self.roles[r].child.try_wait() {
                self.ended(r, status);
            }
        }
    }

    /// Role `r` ended by itself with `status`: start it again.
    fn ended(&mut self, r: usize, status: ExitStatus) {
        let kind = self.roles[r].kind;
        self.roles[r].reaped = true;
        match &self.roles[r].point {
            Some(p) if status.signal() == Some(libc::SIGKILL) => {
                let p = p.clone();
                self.kills.point(&p);
            }
            point => {
                let msg = format!("{kind:?} (kill point {point:?}) ended by itself: {status:?}");
                self.crashes += 1;
                self.fail(msg);
            }
        }
        if let Some(problem) = self.w.purge(&kind.owners(), true) {
            self.fail(problem);
        }
        if let Some(mut s) = self.roles[r].sleeper.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        self.roles[r] = self.spawn(kind);
    }

    fn known_pids(&self) -> HashSet<u32> {
        let mut known = HashSet::new();
        for r in &self.roles {
            known.insert(r.child.id());
            if let Some(s) = &r.sleeper {
                known.insert(s.id());
            }
        }
        if let Some((c, _)) = &self.cli {
            known.insert(c.id());
        }
        known
    }

    /// Reap adopted orphans (children of killed forkers); how many are still running.
    fn reap_orphans(&mut self, known: &HashSet<u32>) -> usize {
        let mut running = 0;
        for pid in children() {
            if known.contains(&pid) {
                continue;
            }
            let mut status = 0;
            // SAFETY: waitpid on a child of ours that no `Child` handle owns.
            let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
            if r == pid as libc::pid_t {
                self.orphans += 1;
            } else if r == 0 {
                running += 1;
            }
        }
        running
    }

    /// Now and then run `shmsem reap`, and SIGKILL some of the runs.
    fn cli_step(&mut self) {
        match self.cli.take() {
            None => {
                if self.rng.below(100) < 6 && !without("reap") {
                    let mut cmd = cli_command(&self.dir, &["reap"]);
                    cmd.stdout(Stdio::null()).stderr(Stdio::inherit());
                    // It puts nothing in the witness: it may die in the middle of a recount.
                    let point = if self.rng.coin() {
                        kill_point(&mut self.rng, RECLAIM_STEPS)
                    } else {
                        None
                    };
                    if let Some(p) = &point {
                        cmd.env(shmsem::failpoint::ENV, p);
                    }
                    self.cli = Some((cmd.spawn().expect("spawning shmsem reap"), point));
                }
            }
            Some((mut c, point)) => match c.try_wait().expect("try_wait") {
                Some(status) => {
                    self.cli_runs += 1;
                    match &point {
                        Some(p) if status.signal() == Some(libc::SIGKILL) => self.kills.point(p),
                        _ if status.success() => {}
                        _ => self.fail(format!("shmsem reap ({point:?}) failed: {status:?}")),
                    }
                }
                None => {
                    if self.rng.below(100) < 40 {
                        let _ = c.kill();
                        let status = c.wait().expect("wait");
                        if status.signal() == Some(libc::SIGKILL) {
                            self.kills.cli += 1;
                        } else {
                            self.cli_runs += 1;
                        }
                    } else {
                        self.cli = Some((c, point));
                    }
                }
            },
        }
    }

    /// Kill at random until `target` kills, the time limit, or a stall.
    fn storm(&mut self, target: u64, min_run: Duration, limit: Duration) {
        let started = Instant::now();
        let mut last_grants = 0;
        let mut last_progress = Instant::now();
        let mut round = 0u64;
        while self.kills.total() < target || started.elapsed() < min_run {
            round += 1;
            if started.elapsed() > limit {
                let msg = format!(
                    "the run took longer than {limit:?} ({} kills of {target})",
                    self.kills.total()
                );
                self.fail(msg);
                return;
            }
            thread::sleep(Duration::from_millis(self.rng.range(2, 12)));
            let grants = self.w.stat(Stat::Grants);
            if grants != last_grants {
                last_grants = grants;
                last_progress = Instant::now();
            } else if last_progress.elapsed() > STALL_LIMIT {
                let msg = format!(
                    "no acquire succeeded for {STALL_LIMIT:?} after {} kills: the namespace \
                     hangs or weight leaked",
                    self.kills.total()
                );
                self.fail(msg);
                return;
            }
            self.check_exits();
            if round % 16 == 0 {
                let known = self.known_pids();
                self.reap_orphans(&known);
            }
            self.cli_step();
            let pick = self.rng.below(self.roles.len() + FORKERS);
            if pick >= self.roles.len() {
                self.kill_fork_child(pick - self.roles.len());
            } else if self.roles[pick].born.elapsed() >= self.roles[pick].min_life {
                self.kill(pick, true);
            }
        }
    }

    /// Kill everything, and check that nothing is left: no process, no witness entry.
    fn stop_all(&mut self) {
        if let Some((mut c, _)) = self.cli.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for r in 0..self.roles.len() {
            self.kill(r, false);
        }
        let known = HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let running = self.reap_orphans(&known);
            if running == 0 {
                break;
            }
            if Instant::now() > deadline {
                let msg = format!("{running} processes outlived their parents");
                self.fail(msg);
                for pid in children() {
                    // SAFETY: kill(2) of a child of ours.
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                }
                thread::sleep(Duration::from_millis(100));
                self.reap_orphans(&known);
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let (entries, counters) = self.w.totals();
        if entries != 0 || counters != 0 {
            self.fail(format!(
                "the witness is not empty after every process died: entries {entries}, \
                 counters {counters}"
            ));
        }
    }

    fn audit(&mut self, when: &str) -> Vec<(String, String)> {
        let mut kid = Kid::spawn(role_command(&self.dir, "audit", 0));
        let (status, reports) = kid.finish(CHILD_LIMIT);
        if !status.is_some_and(|s| s.success()) {
            self.fail(format!("the audit {when} failed: {status:?} {reports:?}"));
        }
        reports
    }

    /// Every semaphore in `reports` (of an audit): value, holders' sum, holders, waiters.
    fn audited(reports: &[(String, String)]) -> Vec<(String, [u64; 4], String)> {
        reports
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("sem.")?;
                let f: Vec<u64> = v
                    .split_whitespace()
                    .take(4)
                    .map(|x| x.parse().expect("a number"))
                    .collect();
                Some((name.to_owned(), [f[0], f[1], f[2], f[3]], v.clone()))
            })
            .collect()
    }

    /// Every value 0, no holders, no waiters.
    fn expect_empty(&mut self, when: &str) {
        let reports = self.audit(when);
        for (name, [value, sum, holders, waiters], line) in Self::audited(&reports) {
            if value != 0 || sum != 0 || holders != 0 || waiters != 0 {
                self.fail(format!(
                    "{when}: {name} is not empty: value {value}, holders {holders} (weight \
                     {sum}), waiters {waiters} ({line})"
                ));
            }
        }
    }

    /// The final accounting (see the module docs).
    fn final_accounting(&mut self) {
        // The CLI's reap first, then the library's in a fresh process.
        let out = cli_command(&self.dir, &["reap"])
            .output()
            .expect("running shmsem reap");
        if !out.status.success() {
            self.fail(format!("the final shmsem reap failed: {out:?}"));
        }
        self.expect_empty("after every process died and a reap");
        let ls = cli_command(&self.dir, &["ls", "--json"])
            .output()
            .expect("running shmsem ls");
        match serde_json::from_slice::<serde_json::Value>(&ls.stdout) {
            Ok(serde_json::Value::Array(items)) => {
                for i in items {
                    if i["value"] != 0 || i["holders"] != 0 || i["waiters"] != 0 {
                        self.fail(format!("shmsem ls after the final reap: {i}"));
                    }
                }
            }
            other => self.fail(format!("shmsem ls --json: {other:?} {ls:?}")),
        }

        // Live holders: every value is what they hold.
        self.w.cell(STOP).store(0, SeqCst);
        let mut holders: Vec<Kid> = (0..2)
            .map(|i| {
                let mut cmd = role_command(&self.dir, "hold", i);
                cmd.stderr(Stdio::inherit());
                Kid::spawn(cmd)
            })
            .collect();
        let mut held = [0u64; NAMES];
        for h in &mut holders {
            if h.expect("ready", CHILD_LIMIT).is_none() {
                self.fail("a final holder did not get ready".to_owned());
            }
            for (n, spec) in SPECS.iter().enumerate() {
                held[n] += h
                    .expect(&format!("held.{}", spec.name), Duration::ZERO)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
            }
        }
        let reports = self.audit("with two live holders");
        let audited = Self::audited(&reports);
        for (n, spec) in SPECS.iter().enumerate() {
            match audited.iter().find(|(name, _, _)| name == spec.name) {
                Some((_, [value, sum, _, waiters], line)) => {
                    if *value != held[n] || *sum != held[n] || *waiters != 0 {
                        self.fail(format!(
                            "with live holders holding {} of {}: {line} (value, holders' \
                             weight, holders, waiters, ...)",
                            held[n], spec.name
                        ));
                    }
                }
                None => self.fail(format!("{} vanished under live holders", spec.name)),
            }
        }
        // One gives back and exits, the other is SIGKILLed.
        let killed = holders[1].sigkill();
        if killed.signal() != Some(libc::SIGKILL) {
            self.fail(format!(
                "the second final holder ended before its kill: {killed:?}"
            ));
        }
        self.w.cell(STOP).store(1, SeqCst);
        let (status, reports) = holders[0].finish(CHILD_LIMIT);
        if !status.is_some_and(|s| s.success()) {
            self.fail(format!(
                "the first final holder failed: {status:?} {reports:?}"
            ));
        }
        self.expect_empty("after the final holders ended and a reap");

        // Idle auto semaphores go.
        if without("idle") {
            return;
        }
        let mut kid = Kid::spawn(role_command(&self.dir, "idle", 0));
        let (status, reports) = kid.finish(CHILD_LIMIT);
        if !status.is_some_and(|s| s.success()) {
            self.fail(format!("the idle check failed: {status:?} {reports:?}"));
        }
        for (k, v) in &reports {
            if let Some(name) = k.strip_prefix("left.")
                && v.starts_with("auto")
            {
                self.fail(format!(
                    "auto semaphore {name} was not swept past its idle period: {v}"
                ));
            }
        }
    }

    fn report(&self, elapsed: Duration) {
        let w = &self.w;
        let s = |x: Stat| w.stat(x);
        let k = &self.kills;
        eprintln!(
            "chaos: {:.1?}: {} kills (workers {}, forkers {}, fork children {}, reapers {}, \
             shmsem reap {}; {} before registering), {} role crashes, {} orphans reaped, {} \
             shmsem reap runs; deaths at kill points {:?}",
            elapsed,
            k.total(),
            k.workers,
            k.forkers,
            k.fork_children,
            k.reapers,
            k.cli,
            k.early,
            self.crashes,
            self.orphans,
            self.cli_runs,
            k.points
        );
        let by_name: Vec<String> = SPECS
            .iter()
            .enumerate()
            .map(|(n, spec)| {
                format!(
                    "{} {} (max inside {}/{})",
                    spec.name,
                    w.get(GRANTS_BY_NAME + n),
                    w.get(MAX_INSIDE + n),
                    spec.cap.1
                )
            })
            .collect();
        eprintln!(
            "chaos: grants {} (blocking {}, timed {}, try {}, enter {}, acquire_for {}, in fork \
             children {}; unlabelled {}; unwitnessed {}); by name: {}",
            s(Stat::Grants),
            s(Stat::Blocking),
            s(Stat::Timed),
            s(Stat::Try),
            s(Stat::Enters),
            s(Stat::External),
            s(Stat::ChildGrants),
            s(Stat::Unlabelled),
            s(Stat::Unwitnessed),
            by_name.join(", ")
        );
        eprintln!(
            "chaos: exits {} on the same thread, {} across threads, release_for {}; timeouts {}, \
             would-block {}, busy {}, weight too large {}",
            s(Stat::SelfExits),
            s(Stat::CrossExits),
            s(Stat::ExternalReleases),
            s(Stat::Timeouts),
            s(Stat::WouldBlock),
            s(Stat::Busy),
            s(Stat::TooLarge)
        );
        eprintln!(
            "chaos: removals {} (force {}), refused in use {}, already gone {}; found removed {}; \
             re-creations {}, re-opens {}; set_capacity {}; reaps {} (weight reclaimed {}), \
             lists {}, infos {}; forks {} (children killed {}, exit checks {})",
            s(Stat::Removes) + s(Stat::ForceRemoves),
            s(Stat::ForceRemoves),
            s(Stat::RemovesInUse),
            s(Stat::RemovesGone),
            s(Stat::Removed),
            s(Stat::Recreations),
            s(Stat::Reopens),
            s(Stat::Capacity),
            s(Stat::Reaps),
            s(Stat::Reclaimed),
            s(Stat::Lists),
            s(Stat::Infos),
            s(Stat::Forks),
            s(Stat::ForkChildKilled),
            s(Stat::ForkChecks)
        );
        eprintln!(
            "chaos: violations {} (strict {}, per incarnation {}, value above capacity {}, fork \
             {}); unexpected errors {}; witness full {}",
            self.violations(),
            s(Stat::VStrict),
            s(Stat::VIncarnation),
            s(Stat::VValue),
            s(Stat::VFork),
            s(Stat::Errors),
            s(Stat::WitnessFull)
        );
    }

    fn violations(&self) -> u64 {
        [Stat::VStrict, Stat::VIncarnation, Stat::VValue, Stat::VFork]
            .into_iter()
            .map(|x| self.w.stat(x))
            .sum()
    }
}

/// The chaos run: kill, purge, let go, respawn, until enough kills; then stop everything, reap
/// and account.
#[test]
fn lifecycle_chaos_never_over_grants_and_loses_nothing() {
    let target = std::env::var(KILLS_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(MIN_KILLS, |k| k.max(MIN_KILLS));
    let limit = std::env::var(SECS_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or_else(
            || DEFAULT_LIMIT.max(Duration::from_secs_f64(target as f64 * SOAK_SECS_PER_KILL)),
            Duration::from_secs,
        );
    // Orphans (children of killed forkers) come to us, to be reaped.
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes an integer.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
    assert_eq!(
        r,
        0,
        "PR_SET_CHILD_SUBREAPER: {}",
        io::Error::last_os_error()
    );

    let started = Instant::now();
    let mut run = Run::new();
    run.start();
    run.storm(target, MIN_RUN, limit);
    let kills = run.kills.total();
    run.stop_all();
    run.final_accounting();
    run.report(started.elapsed());

    let violations = run.violations();
    let errors = run.w.stat(Stat::Errors);
    let grants = run.w.stat(Stat::Grants);
    assert_eq!(violations, 0, "the witness saw violations (see above)");
    assert_eq!(errors, 0, "unexpected errors (see above)");
    assert!(
        run.failures.is_empty(),
        "{} failures:\n{}",
        run.failures.len(),
        run.failures.join("\n")
    );
    assert!(kills >= target, "only {kills} kills");
    assert!(grants > kills, "too few grants ({grants}) to mean anything");
}
