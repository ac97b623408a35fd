//! The SIGKILL storm (DESIGN §3): [`WORKERS`] processes hammer
//! one semaphore of capacity [`CAPACITY`] with weighted blocking, timed and try acquires while
//! the test SIGKILLs random workers at random times and respawns them, at least
//! [`MIN_KILLS`] times (`SHMSEM_STORM_KILLS` raises it). Safety is checked by a witness that does
//! not depend on shmsem; at the end, with every worker stopped and a reap run, the semaphore must
//! be empty.
//!
//! # The witness
//!
//! A small file the test maps itself (`memmap2`) holds one `AtomicU64` occupancy word. A worker
//! adds its weight right after a successful acquire and takes it away right before releasing;
//! the worker that adds checks that the occupancy it produced is at most the capacity, and counts
//! a violation otherwise. Every weight in the word was granted by the engine and not yet given
//! back, so with a correct engine the check never fires; an engine that grants more than the
//! capacity while the holders overlap makes it fire.
//!
//! A killed worker's weight stays in the word until the test takes it out, and that must happen
//! before the engine can hand the weight to anyone else, or a correct engine would raise false
//! alarms. The engine decides death by the OFD lock a process holds on its slot's byte
//! (`1 + slot`) of the namespace's one file, the segment (DESIGN §3). A worker has the segment
//! open twice: the descriptor its mapping was made from, and its own open file description that
//! carries its locks (made by reopening the first through `/proc/self/fd`). Each worker reports
//! the number of the second, the one whose `/proc/self/fdinfo` lists an OFD lock; before killing
//! worker *i* the test copies that descriptor into itself with `pidfd_open` + `pidfd_getfd` and
//! checks that the copy is of the segment and carries a slot byte's lock. OFD locks belong to
//! the open file description, which the copy keeps open, so to the engine worker *i* stays alive
//! after SIGKILL: its weight stays granted, nothing reclaims it. The test then reaps the corpse
//! (`waitpid`), takes exactly its contribution out of the word, and only then closes the copy,
//! which drops the lock and lets the engine reclaim.
//!
//! ## Exact contribution
//!
//! The occupancy word is `presence << 32 | occupancy`: worker *i* adds and removes
//! `weight + (1 << (32 + i))` in one `fetch_add` / `fetch_sub`, so bit `32 + i` is set exactly
//! while its weight is in the low half (it is clear before its add: its previous sub cleared
//! it; the add cannot carry into it, and the low half never exceeds `WORKERS * CAPACITY`).
//! Worker *i* also keeps its weight in its own cell `held[i]`, written before the add and
//! cleared after the sub, so `held[i]` is its weight whenever the bit is set. After `waitpid`
//! nothing of worker *i* changes any more, so its contribution is exactly: bit set → `held[i]`
//! (plus the bit), bit clear → nothing, whatever instruction it died at (before the add, between
//! add and sub, after the sub). The subtraction is exact; there is no window in which it can be
//! wrong either way.

mod common;

use std::{
    fs,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::process::ExitStatusExt,
    },
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering::SeqCst},
    thread,
    time::{Duration, Instant},
};

use common::{Kid, Spawn, TestDir, report, shared::SharedFile};
use shmsem::{Error, Semaphore, internals::layout::MAX_PROCESSES};

/// The worker's index (0..WORKERS).
const INDEX_ENV: &str = "SHMSEM_STORM_INDEX";
/// The witness file's path.
const WITNESS_ENV: &str = "SHMSEM_STORM_WITNESS";
/// Raises the number of kills.
const KILLS_ENV: &str = "SHMSEM_STORM_KILLS";

const SEM: &str = "storm";
const WORKERS: usize = 8;
const CAPACITY: u32 = 16;
const MAX_WEIGHT: u32 = 8;
const MIN_KILLS: u64 = 1000;
/// The storm fails rather than run longer than this.
const STORM_LIMIT: Duration = Duration::from_secs(240);
/// Stopped workers must all have exited within this.
const STOP_LIMIT: Duration = Duration::from_secs(60);
/// The storm fails if no acquire at all succeeds for this long.
const STALL_LIMIT: Duration = Duration::from_secs(20);

// =====================================================================================
// The witness file
// =====================================================================================

/// Counters shared by the test and every worker, in a file each maps itself.
struct Witness {
    file: SharedFile,
}

/// Low half of the occupancy word: the weight inside.
const OCCUPANCY: u64 = 0xFFFF_FFFF;

impl Witness {
    const LEN: usize = 4096;
    const OCC: usize = 0;
    const VIOLATIONS: usize = 1;
    const ACQUIRES: usize = 2;
    const TIMEOUTS: usize = 3;
    const WOULD_BLOCK: usize = 4;
    const ERRORS: usize = 5;
    const STOP: usize = 6;
    const MAX_OCC: usize = 7;
    const RELEASES: usize = 8;
    const HELD: usize = 16;

    fn create(path: &Path) {
        SharedFile::create(path, Self::LEN);
    }

    fn open(path: &Path) -> Witness {
        Witness {
            file: SharedFile::open(path, Self::LEN),
        }
    }

    fn cell(&self, index: usize) -> &AtomicU64 {
        self.file.u64_at(index)
    }

    fn occ(&self) -> &AtomicU64 {
        self.cell(Self::OCC)
    }
    fn held(&self, worker: usize) -> &AtomicU64 {
        assert!(worker < WORKERS);
        self.cell(Self::HELD + worker)
    }
    fn get(&self, index: usize) -> u64 {
        self.cell(index).load(SeqCst)
    }
    fn bump(&self, index: usize) {
        self.cell(index).fetch_add(1, SeqCst);
    }
}

/// Worker `i`'s presence bit in the occupancy word.
fn presence(i: usize) -> u64 {
    1 << (32 + i)
}

// =====================================================================================
// Child side
// =====================================================================================

crate::child_roles! {
    "worker" => role_worker(), "audit" => role_audit(),
}

fn open() -> Semaphore {
    Semaphore::options()
        .capacity(CAPACITY)
        .open(SEM)
        .unwrap_or_else(|e| panic!("opening {SEM}: {e}"))
}

/// xorshift64*: enough randomness for choosing weights, modes and pauses.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng((t ^ (u64::from(std::process::id()) << 32)) | 1)
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
}

/// Locked byte ranges: `(start, end)`, inclusive, `None` for an end at EOF.
type Locks = Vec<(u64, Option<u64>)>;

/// The OFD locks that the open file description behind a descriptor holds, as its `fdinfo`
/// (`/proc/PID/fdinfo/FD`) lists them. `fdinfo` shows a lock only on the description that owns
/// it, through any descriptor of it.
fn ofd_locks(fdinfo: &Path) -> Locks {
    let text =
        fs::read_to_string(fdinfo).unwrap_or_else(|e| panic!("reading {}: {e}", fdinfo.display()));
    text.lines()
        .filter(|l| l.starts_with("lock:") && l.contains("OFDLCK"))
        .map(|l| {
            // "lock:\t1: OFDLCK ADVISORY  WRITE -1 00:1b:174 1 1"
            let f: Vec<&str> = l.split_whitespace().collect();
            let start = f.get(7).and_then(|s| s.parse().ok());
            let end = f.get(8).map(|e| e.parse().ok());
            match (start, end) {
                (Some(start), Some(end)) => (start, end),
                _ => panic!("an fdinfo lock line not understood: {l:?}"),
            }
        })
        .collect()
}

/// Whether `locks` is exactly one process slot's liveness lock: one byte in
/// `1..=MAX_PROCESSES` (byte 0 is the table lock, held only for moments).
fn is_one_slot_lock(locks: &[(u64, Option<u64>)]) -> bool {
    matches!(locks, [(start, Some(end))]
        if start == end && (1..=u64::from(MAX_PROCESSES)).contains(start))
}

/// The namespace's segment, canonical: the path `/proc/*/fd` links name.
fn segment_path() -> PathBuf {
    let dir = PathBuf::from(std::env::var_os(shmsem::DIR_ENV).expect("SHMSEM_DIR"));
    fs::canonicalize(&dir)
        .expect("canonical SHMSEM_DIR")
        .join(format!("local.{}", shmsem::DEFAULT_NAMESPACE))
}

/// This process's descriptor that carries its slot's liveness lock. Of the namespace's one file,
/// the segment, a process has exactly two descriptors open: the one its mapping was made from,
/// and its own open file description for its locks. Exactly the second holds an OFD lock, on
/// one byte `1 + slot`.
fn liveness_fd() -> i32 {
    let segment = segment_path();
    let mut on_segment = Vec::new();
    for entry in fs::read_dir("/proc/self/fd").expect("listing /proc/self/fd") {
        let Ok(entry) = entry else { continue };
        let Ok(target) = fs::read_link(entry.path()) else {
            continue;
        };
        if target == segment {
            let fd: i32 = entry
                .file_name()
                .to_string_lossy()
                .parse()
                .expect("fd number");
            on_segment.push(fd);
        }
    }
    assert_eq!(
        on_segment.len(),
        2,
        "expected the segment {} open twice (its mapping's descriptor and the lock \
         description), found descriptors {on_segment:?}",
        segment.display()
    );
    let locking: Vec<(i32, Locks)> = on_segment
        .iter()
        .map(|&fd| (fd, ofd_locks(Path::new(&format!("/proc/self/fdinfo/{fd}")))))
        .filter(|(_, locks)| !locks.is_empty())
        .collect();
    assert!(
        matches!(&locking[..], [(_, locks)] if is_one_slot_lock(locks)),
        "expected exactly one descriptor of the segment to carry locks, one slot byte's; \
         found (descriptor, locks) {locking:?} among {on_segment:?}"
    );
    locking[0].0
}

fn role_worker() {
    let i: usize = std::env::var(INDEX_ENV)
        .expect("worker index")
        .parse()
        .expect("worker index is a number");
    let w = Witness::open(Path::new(
        &std::env::var_os(WITNESS_ENV).expect("witness path"),
    ));
    let sem = open();
    // Register before reporting the descriptor: the slot's lock is taken at open.
    report("fd", liveness_fd());
    let mut rng = Rng::seeded();
    let bit = presence(i);
    // An unexpected error: counted, and told.
    let error = |what: &str, e: &Error| {
        w.bump(Witness::ERRORS);
        eprintln!("storm worker {i} (pid {}): {what}: {e}", std::process::id());
    };
    while w.get(Witness::STOP) == 0 {
        let weight = rng.range(1, u64::from(MAX_WEIGHT)) as u32;
        let got = match rng.range(0, 2) {
            0 => sem.acquire_weight(weight),
            1 => sem.acquire_timeout(weight, Duration::from_micros(rng.range(0, 3000))),
            _ => sem.try_acquire(weight),
        };
        let permit = match got {
            Ok(p) => p,
            Err(Error::Timeout { .. }) => {
                w.bump(Witness::TIMEOUTS);
                continue;
            }
            Err(Error::WouldBlock { .. }) => {
                w.bump(Witness::WOULD_BLOCK);
                // Don't spin on a full semaphore: two cores are shared by nine processes.
                thread::sleep(Duration::from_micros(rng.range(0, 500)));
                continue;
            }
            Err(e) => {
                error("acquire", &e);
                continue;
            }
        };
        w.bump(Witness::ACQUIRES);
        // In: held[i] before the add (see the module docs), then the checked add.
        w.held(i).store(u64::from(weight), SeqCst);
        let now = w.occ().fetch_add(u64::from(weight) + bit, SeqCst) + u64::from(weight) + bit;
        let inside = now & OCCUPANCY;
        w.cell(Witness::MAX_OCC).fetch_max(inside, SeqCst);
        if inside > u64::from(CAPACITY) && w.cell(Witness::VIOLATIONS).fetch_add(1, SeqCst) < 5 {
            eprintln!(
                "storm worker {i} (pid {}): VIOLATION: {inside} > {CAPACITY} inside after \
                 taking {weight}",
                std::process::id()
            );
        }
        thread::sleep(Duration::from_micros(rng.range(0, 2000)));
        // Out: the sub, then held[i], then the engine's release.
        w.occ().fetch_sub(u64::from(weight) + bit, SeqCst);
        w.held(i).store(0, SeqCst);
        if rng.range(0, 1) == 0 {
            drop(permit);
        } else {
            permit.forget();
            if let Err(e) = sem.exit(weight) {
                error("release", &e);
                continue;
            }
        }
        w.bump(Witness::RELEASES);
    }
    report("stopped", i);
}

/// A fresh process: reap, then report the semaphore's state.
fn role_audit() {
    let reaped = shmsem::Namespace::default().reap().expect("reap");
    report(
        "reaped",
        reaped.iter().map(|r| r.weight).sum::<u64>().to_string(),
    );
    let sem = open();
    let info = sem.info().expect("info");
    report("value", info.value);
    report("holders", info.holders.len());
    report("waiters", info.waiters.len());
    // Everything must be free at once.
    match sem.try_acquire(CAPACITY) {
        Ok(p) => {
            drop(p);
            report("all", "ok");
        }
        Err(e) => report("all", format!("error:{e:?}")),
    }
}

// =====================================================================================
// Parent side
// =====================================================================================

/// The witness file of the test in `dir`.
fn witness_path(dir: &TestDir) -> PathBuf {
    dir.work_file("witness")
}

/// A child of this test binary in `role`; a worker gets its index.
fn spawn(dir: &TestDir, role: &str, index: Option<usize>) -> Kid {
    let mut spawn = Spawn::new(dir, role)
        .env(WITNESS_ENV, witness_path(dir))
        .env_remove(shmsem::failpoint::ENV)
        .inherit_stderr();
    if let Some(i) = index {
        spawn = spawn
            .env(INDEX_ENV, i.to_string())
            .label(format!("worker {i}"));
    }
    spawn.spawn()
}

/// A worker slot of the controller.
struct Slot {
    kid: Kid,
    /// The number of its descriptor that carries its liveness lock, once reported.
    fd: Option<i32>,
}

fn spawn_worker(dir: &TestDir, i: usize) -> Slot {
    Slot {
        kid: spawn(dir, "worker", Some(i)),
        fd: None,
    }
}

/// `pidfd_open(pid)` then `pidfd_getfd(pidfd, fd)`: our own copy of `pid`'s descriptor `fd`,
/// sharing its open file description (and so its OFD locks).
fn steal_fd(pid: i32, fd: i32) -> OwnedFd {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    assert!(
        pidfd >= 0,
        "pidfd_open({pid}): {} (needs Linux >= 5.3)",
        std::io::Error::last_os_error()
    );
    // SAFETY: pidfd_open returned a new descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    // SAFETY: pidfd_getfd(2) takes a pidfd, a descriptor number in that process and flags, and
    // returns a new descriptor or -1.
    let copy = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    assert!(
        copy >= 0,
        "pidfd_getfd({pid}, {fd}): {} (needs Linux >= 5.6 and ptrace rights over the worker)",
        std::io::Error::last_os_error()
    );
    // SAFETY: pidfd_getfd returned a new descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(copy as i32) }
}

/// The path a descriptor of ours refers to.
fn fd_path(fd: &OwnedFd) -> PathBuf {
    fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("readlink of our fd")
}

/// The storm: kill, subtract, let go, respawn, until enough kills; then stop, reap and audit.
#[test]
fn sigkill_storm_never_over_grants_and_loses_nothing() {
    let target = std::env::var(KILLS_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(MIN_KILLS, |k| k.max(MIN_KILLS));
    let dir = TestDir::new("storm");
    Witness::create(&witness_path(&dir));
    let w = Witness::open(&witness_path(&dir));
    let segment = fs::canonicalize(&dir.shm)
        .expect("canonical SHMSEM_DIR")
        .join(format!("local.{}", shmsem::DEFAULT_NAMESPACE));
    let started = Instant::now();

    let mut slots: Vec<Slot> = (0..WORKERS).map(|i| spawn_worker(&dir, i)).collect();
    let mut rng = Rng::seeded();
    let mut kills = 0u64;
    let mut subtracted_weight = 0u64;
    let mut subtracted_kills = 0u64;
    let mut last_acquires = 0u64;
    let mut last_progress = Instant::now();

    while kills < target {
        assert!(
            started.elapsed() < STORM_LIMIT,
            "the storm took longer than {STORM_LIMIT:?} ({kills} kills)"
        );
        thread::sleep(Duration::from_millis(rng.range(5, 20)));
        let acquires = w.get(Witness::ACQUIRES);
        if acquires != last_acquires {
            last_acquires = acquires;
            last_progress = Instant::now();
        }
        assert!(
            last_progress.elapsed() < STALL_LIMIT,
            "no acquire succeeded for {STALL_LIMIT:?} after {kills} kills: the workers are \
             stuck (occupancy word {:#x})",
            w.get(Witness::OCC)
        );
        // Collect descriptor reports, and fail on a worker that died on its own.
        for (i, s) in slots.iter_mut().enumerate() {
            if let Some(fd) = s.kid.reports().get("fd") {
                s.fd = Some(fd.parse().expect("fd number"));
            }
            if let Some(status) = s.kid.try_wait() {
                panic!("worker {i} exited on its own during the storm: {status:?}");
            }
        }
        let ready: Vec<usize> = (0..WORKERS).filter(|&i| slots[i].fd.is_some()).collect();
        if ready.is_empty() {
            continue;
        }
        let i = ready[rng.range(0, ready.len() as u64 - 1) as usize];
        let pid = slots[i].kid.pid() as i32;
        let fd = slots[i].fd.expect("ready");

        // Keep the worker alive to the engine: our copy of its lock description.
        let keep_alive = steal_fd(pid, fd);
        assert_eq!(
            fd_path(&keep_alive),
            segment,
            "worker {i}'s descriptor {fd} is not of the namespace's segment"
        );
        let locks = ofd_locks(Path::new(&format!(
            "/proc/self/fdinfo/{}",
            keep_alive.as_raw_fd()
        )));
        // (Besides its own slot's byte, the worker may hold another for a moment, reclaiming
        // a dead process, and the kernel may show adjacent bytes as one range.)
        assert!(
            locks
                .iter()
                .any(|&(start, end)| start <= u64::from(MAX_PROCESSES)
                    && end.is_none_or(|end| end >= 1)),
            "our copy of worker {i}'s descriptor {fd} carries no slot byte's lock: {locks:?}"
        );
        // SIGKILL and reap the corpse.
        let status = slots[i].kid.sigkill();
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "worker {i} (pid {pid}) was not killed by SIGKILL: {status:?}"
        );
        kills += 1;
        // Take its contribution out: exactly `held[i]` iff its presence bit is set.
        let bit = presence(i);
        if w.occ().load(SeqCst) & bit != 0 {
            let weight = w.held(i).load(SeqCst);
            assert!(
                (1..=u64::from(MAX_WEIGHT)).contains(&weight),
                "worker {i} is inside with weight {weight}"
            );
            w.occ().fetch_sub(weight + bit, SeqCst);
            subtracted_weight += weight;
            subtracted_kills += 1;
        }
        w.held(i).store(0, SeqCst);
        // Now the engine may see it dead and reclaim its weight.
        drop(keep_alive);
        slots[i] = spawn_worker(&dir, i);
    }
    let storm_time = started.elapsed();

    // Stop: every worker finishes its round, gives back and exits normally.
    w.cell(Witness::STOP).store(1, SeqCst);
    let stop_deadline = Instant::now() + STOP_LIMIT;
    for (i, s) in slots.iter_mut().enumerate() {
        loop {
            if let Some(status) = s.kid.try_wait() {
                assert!(status.success(), "worker {i} failed at stop: {status:?}");
                break;
            }
            assert!(
                Instant::now() < stop_deadline,
                "worker {i} did not stop within {STOP_LIMIT:?}"
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    // A fresh process reaps and audits.
    let mut audit = spawn(&dir, "audit", None);
    let (status, reports) = audit.finish(STOP_LIMIT);
    assert!(status.success(), "the audit failed: {status:?} {reports:?}");
    let get = |key: &str| -> String {
        reports
            .get(key)
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("the audit did not report {key:?}: {reports:?}"))
    };
    let value: u64 = get("value").parse().expect("value");
    let holders: u64 = get("holders").parse().expect("holders");
    let waiters: u64 = get("waiters").parse().expect("waiters");
    let all = get("all");
    let reaped = get("reaped");

    // `shmsem show --json` agrees.
    let shown = common::cli::show(&dir, SEM);

    let violations = w.get(Witness::VIOLATIONS);
    let errors = w.get(Witness::ERRORS);
    let occ = w.get(Witness::OCC);
    let acquires = w.get(Witness::ACQUIRES);
    println!(
        "storm: kills={kills}, acquires={acquires}, releases={}, timeouts={}, would_block={}, \
         violations={violations}, errors={errors}, max inside={} of {CAPACITY}, killed inside={} \
         (weight {}), reaped at the end={reaped}, final value={value}, holders={holders}, \
         waiters={waiters}; storm {storm_time:.1?}, total {:.1?}",
        w.get(Witness::RELEASES),
        w.get(Witness::TIMEOUTS),
        w.get(Witness::WOULD_BLOCK),
        w.get(Witness::MAX_OCC),
        subtracted_kills,
        subtracted_weight,
        started.elapsed()
    );
    assert_eq!(violations, 0, "the engine granted more than the capacity");
    assert_eq!(errors, 0, "acquire or release returned an unexpected error");
    assert_eq!(occ, 0, "the witness is not empty at the end: {occ:#x}");
    assert!(kills >= MIN_KILLS, "only {kills} kills");
    assert!(
        acquires > kills,
        "too few acquires ({acquires}) to mean anything"
    );
    assert_eq!(value, 0, "value after stop and reap");
    assert_eq!(holders, 0, "holders after stop and reap");
    assert_eq!(waiters, 0, "waiters after stop and reap");
    assert_eq!(all, "ok", "the full capacity is not free at the end");
    assert_eq!(shown["value"], 0, "shmsem show: {shown}");
    assert_eq!(
        shown["holders"],
        serde_json::json!([]),
        "shmsem show: {shown}"
    );
}
