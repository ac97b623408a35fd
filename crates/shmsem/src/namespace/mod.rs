//! A mapped namespace and this process's place in it: the process-wide registry of mapped
//! namespaces, registration, thread lanes, the table lock, and cleanup of `self` trees.
//!
//! A namespace is mapped once per process and stays mapped for the life of the process: its
//! process slot, and the liveness lock that goes with it, must outlive every handle.

use std::{
    collections::HashMap,
    fs::File,
    os::fd::{AsFd, AsRawFd, BorrowedFd},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

mod watch;

pub(crate) use self::watch::Waiting;
pub use self::watch::watch_for_deaths;

use crate::{
    error::{Error, Result},
    holders::{self, Ctx, Reclaimed, TABLE_LOCK},
    scope::{Location, Scope},
    segment::{self, Creation, Segment, layout::MAX_PROCESSES},
    sys,
    table::{self, Found},
    wait::Monotonic,
};

/// This process's registration in a namespace.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Registration {
    /// The fork epoch it belongs to.
    pub epoch: u32,
    /// Our process slot and its generation.
    pub slot: u32,
    pub slot_gen: u32,
}

#[derive(Debug)]
struct Inner {
    /// This process's own description of the segment file, for its locks (reopened in a
    /// forked child, whose inherited copy shares the parent's locks).
    lock_file: Option<File>,
    registration: Option<Registration>,
    /// Holder records of this process: (lane, semaphore) → record.
    records: HashMap<(u16, Found), u32>,
}

/// A mapped namespace.
#[derive(Debug)]
pub(crate) struct Namespace {
    pub loc: Location,
    pub seg: Segment,
    inner: Mutex<Inner>,
    /// Threads of this process take the table lock one at a time: OFD locks do not exclude
    /// threads sharing a descriptor.
    table: Mutex<()>,
    reclaim: Mutex<()>,
    last_reclaim_ns: AtomicU64,
    last_link_check_ns: AtomicU64,
    /// Set once a split was noticed; every later open of the namespace fails.
    split: std::sync::atomic::AtomicBool,
    /// External slots whose lock byte this process holds while acting for them.
    acting: Mutex<Vec<u32>>,
    /// What the reclaim at open gave back, until [`Namespace::reap`] reports it.
    reclaimed_at_open: Mutex<Vec<Reclaimed>>,
    /// This process's waiting threads here, and its watch thread (see `watch`).
    watch: watch::Watch,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these leaves nothing half-done that matters: recover.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

static REGISTRY: Mutex<Option<HashMap<PathBuf, Arc<Namespace>>>> = Mutex::new(None);

/// How long a call without a deadline of its own waits for a lock of the namespace before it
/// reports who holds it ([`Error::Busy`]). Locks are held for microseconds by live processes;
/// a wait this long means the holder is stopped, stuck or hostile.
pub(crate) const LOCK_PATIENCE: Duration = Duration::from_secs(5);

/// How often an open of an already-mapped namespace checks that its segment still has a name.
const LINK_CHECK: Duration = Duration::from_millis(100);

/// This process's own namespaces by (scope, name): opening a semaphore in a namespace that is
/// already mapped touches no file.
static BY_NAME: Mutex<Option<HashMap<Scope, ByNamespace>>> = Mutex::new(None);

/// One scope's namespaces by name.
type ByNamespace = HashMap<String, Arc<Namespace>>;

impl Namespace {
    /// The namespace `namespace` of `scope` as this process resolves it, mapped once per process;
    /// created if `creation` is given.
    pub fn open_named(
        scope: Scope,
        namespace: &str,
        creation: Option<Creation>,
    ) -> Result<Option<Arc<Namespace>>> {
        if let Some(ns) = lock(&BY_NAME)
            .get_or_insert_with(HashMap::new)
            .get(&scope)
            .and_then(|names| names.get(namespace))
        {
            ns.check_linked_every(LINK_CHECK)?;
            return Ok(Some(ns.clone()));
        }
        let opened = Namespace::open(Location::resolve(scope, namespace)?, creation)?;
        if let Some(ns) = &opened {
            lock(&BY_NAME)
                .get_or_insert_with(HashMap::new)
                .entry(scope)
                .or_default()
                .insert(namespace.to_owned(), ns.clone());
        }
        Ok(opened)
    }

    /// The namespace at `loc`, mapped once per process, created if `creation` is given.
    pub fn open(loc: Location, creation: Option<Creation>) -> Result<Option<Arc<Namespace>>> {
        sys::install_fork_hook();
        // A forked child starts with no fast-path entry: it holds nothing of its parent's.
        sys::on_fork_child(crate::semaphore::forget_fast_path);
        let mut registry = lock(&REGISTRY);
        let map = registry.get_or_insert_with(HashMap::new);
        if let Some(ns) = map.get(&loc.segment) {
            ns.check_linked_every(LINK_CHECK)?;
            return Ok(Some(ns.clone()));
        }
        if loc.scope == Scope::Tree {
            sweep_trees(loc.dir());
            install_exit_hook();
        }
        let expect = loc.expect();
        let seg = match creation {
            Some(c) => Segment::open_or_create(&loc.segment, c, expect)?,
            None => match Segment::open(&loc.segment, expect)? {
                Some(s) => s,
                None => return Ok(None),
            },
        };
        let ns = Arc::new(Namespace {
            loc,
            seg,
            inner: Mutex::new(Inner {
                lock_file: None,
                registration: None,
                records: HashMap::new(),
            }),
            table: Mutex::new(()),
            reclaim: Mutex::new(()),
            last_reclaim_ns: AtomicU64::new(0),
            last_link_check_ns: AtomicU64::new(Monotonic::now().0),
            split: std::sync::atomic::AtomicBool::new(false),
            acting: Mutex::new(Vec::new()),
            reclaimed_at_open: Mutex::new(Vec::new()),
            watch: watch::Watch::default(),
        });
        ns.registration()?;
        // Reclaim on open: whatever dead processes left behind comes back now; and auto
        // semaphores past their idle period go.
        *lock(&ns.reclaimed_at_open) = ns.reclaim()?;
        ns.sweep_idle()?;
        map.insert(ns.loc.segment.clone(), ns.clone());
        Ok(Some(ns))
    }

    /// This process's registration, made on first use and again in a forked child.
    pub fn registration(&self) -> Result<Registration> {
        let epoch = sys::FORK_EPOCH.load(Relaxed);
        let mut inner = lock(&self.inner);
        if let Some(r) = inner.registration
            && r.epoch == epoch
        {
            return Ok(r);
        }
        if inner.registration.is_some() {
            // A forked child: the hook closed our copy of the parent's lock description; forget the
            // parent's descriptor number without closing it again, and its records.
            if let Some(f) = inner.lock_file.take() {
                std::mem::forget(f);
            }
            inner.records.clear();
        }
        // Locks go on the segment file itself, through a description of our own: one file,
        // one owner, one mode, so nobody the segment refuses can hold or replace its locks.
        let file = self.describe(self.seg.file().as_fd())?;
        sys::close_in_forked_children(file.as_fd());
        let (slot, slot_gen) = self.register_through(&file)?;
        let r = Registration {
            epoch,
            slot,
            slot_gen,
        };
        inner.lock_file = Some(file);
        inner.registration = Some(r);
        Ok(r)
    }

    /// Register a process slot through a *new* open file description of the segment file (not
    /// this process's own): the slot lives for as long as some process has that description
    /// open, whoever it is, as a `flock(1)` lock does. Returns the description, the slot and its
    /// generation. The description is close-on-exec; a caller that hands it to a command clears
    /// that in the child.
    pub fn register_description(&self) -> Result<(File, u32, u32)> {
        // A new description of the very file this process uses, even if the path was replaced.
        let file = self.describe(self.fd()?)?;
        let (slot, slot_gen) = self.register_through(&file)?;
        Ok((file, slot, slot_gen))
    }

    /// A new open file description of the segment file that `from` refers to.
    fn describe(&self, from: BorrowedFd<'_>) -> Result<File> {
        sys::reopen(from)
            .map_err(|e| Error::io(format!("opening {} again", self.loc.segment.display()), e))
    }

    /// Register this process in a slot whose lock byte `file`'s description holds.
    fn register_through(&self, file: &File) -> Result<(u32, u32)> {
        let ctx = Ctx {
            seg: &self.seg,
            fd: file.as_fd(),
            me: None,
            acting: &[],
        };
        holders::register(ctx, sys::current())
    }

    /// The descriptor that carries this process's locks.
    fn fd(&self) -> Result<BorrowedFd<'_>> {
        self.registration()?;
        let inner = lock(&self.inner);
        let raw = inner
            .lock_file
            .as_ref()
            .map(|f| f.as_raw_fd())
            .ok_or_else(|| Error::corrupt("lock descriptor missing after registration"))?;
        // SAFETY: the lock description stays open for as long as `self` lives: it is only replaced in a
        // forked child, where the forking thread is the only thread, and never closed otherwise.
        Ok(unsafe { BorrowedFd::borrow_raw(raw) })
    }

    /// A context for the holder tables.
    pub fn ctx(&self) -> Result<Ctx<'_>> {
        let r = self.registration()?;
        Ok(Ctx {
            seg: &self.seg,
            fd: self.fd()?,
            me: Some(r.slot),
            acting: &[],
        })
    }

    /// The record of (`lane`, `found`) for this process, claimed on first use.
    pub fn record(&self, lane: u16, found: Found) -> Result<(u32, u32)> {
        let r = self.registration()?;
        if let Some(&index) = lock(&self.inner).records.get(&(lane, found)) {
            return Ok((index, r.epoch));
        }
        let ctx = self.ctx()?;
        let index = match holders::claim_record(ctx, r.slot, r.slot_gen, lane, found) {
            Err(Error::TableFull { .. }) if self.free_idle_records(lane) > 0 => {
                holders::claim_record(ctx, r.slot, r.slot_gen, lane, found)?
            }
            other => other?,
        };
        lock(&self.inner).records.insert((lane, found), index);
        Ok((index, r.epoch))
    }

    /// Free the records of `lane` that hold nothing and wait for nothing; returns how many.
    /// Called by the thread that owns `lane`, the only writer of its records, so none of them is
    /// in the middle of an operation. A handle that cached one notices the changed key and claims
    /// a record again.
    fn free_idle_records(&self, lane: u16) -> usize {
        let Ok(ctx) = self.ctx() else { return 0 };
        let mut inner = lock(&self.inner);
        let idle: Vec<(u16, Found)> = inner
            .records
            .iter()
            .filter(|&(&(l, _), &index)| {
                l == lane
                    && self.seg.holder(index).is_some_and(|r| {
                        r.holding.load(Relaxed) == 0 && r.wait_weight.load(Relaxed) == 0
                    })
            })
            .map(|(&key, _)| key)
            .collect();
        // This thread's fast-path entry may name one of them.
        crate::semaphore::forget_fast_path();
        for key in &idle {
            if let Some(index) = inner.records.remove(key) {
                holders::free_record(ctx, index);
            }
        }
        idle.len()
    }

    /// Forget this process's record of (`lane`, `found`) after the semaphore was removed; free it
    /// if it holds nothing.
    pub fn forget_record(&self, lane: u16, found: Found) {
        let Some(index) = lock(&self.inner).records.remove(&(lane, found)) else {
            return;
        };
        if let Some(r) = self.seg.holder(index)
            && r.holding.load(Relaxed) == 0
            && let Ok(ctx) = self.ctx()
        {
            // This thread's fast-path entry may name it.
            crate::semaphore::forget_fast_path();
            holders::free_record(ctx, index);
        }
    }

    /// Remove the auto semaphores past their idle period, and wake anyone still sleeping on them.
    pub fn sweep_idle(&self) -> Result<()> {
        // A sweep never waits for the table lock: whoever holds it, the next sweep comes.
        let removed = self
            .try_table_lock(|ctx| table::sweep_idle(ctx.seg, sys::wall_ms()))?
            .unwrap_or_default();
        for found in removed {
            if let Some(rec) = self.seg.sem(found.index) {
                crate::wait::wake(&rec.word, u32::MAX);
            }
        }
        Ok(())
    }

    /// Give group `gid` read and write access to the namespace's files (a POSIX ACL entry).
    pub fn grant_group(&self, gid: u32) -> Result<()> {
        sys::grant_group(self.seg.file().as_fd(), gid).map_err(|e| {
            Error::io(
                format!(
                    "granting group {gid} access to {}",
                    self.loc.segment.display()
                ),
                e,
            )
        })
    }

    /// Run `f` holding the table lock, waiting for it at most [`LOCK_PATIENCE`].
    pub fn with_table_lock<T>(&self, f: impl FnOnce(Ctx<'_>) -> Result<T>) -> Result<T> {
        self.with_table_lock_until(None, f)
    }

    /// Run `f` holding the table lock, waiting for it until `deadline` (or at most
    /// [`LOCK_PATIENCE`] without one). No lock of the engine is ever waited for without a bound:
    /// a process stopped (or a hostile one) holding it makes this fail with [`Error::Busy`],
    /// naming the holder when the system tells, instead of hanging.
    pub fn with_table_lock_until<T>(
        &self,
        deadline: Option<Monotonic>,
        f: impl FnOnce(Ctx<'_>) -> Result<T>,
    ) -> Result<T> {
        let _threads = lock(&self.table);
        let ctx = self.ctx()?;
        let start = Monotonic::now();
        let deadline = deadline.unwrap_or_else(|| start.after(LOCK_PATIENCE));
        let mut nap = Duration::from_micros(20);
        loop {
            if sys::try_lock_byte(ctx.fd, TABLE_LOCK)
                .map_err(|e| Error::io("taking the table lock", e))?
            {
                break;
            }
            let now = Monotonic::now();
            if now >= deadline {
                return Err(Error::Busy {
                    what: "namespace's table lock",
                    holder: sys::lock_holder(ctx.fd, TABLE_LOCK),
                    waited_ms: (now.0.saturating_sub(start.0)) / 1_000_000,
                });
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(2));
        }
        let out = f(ctx);
        let _ = sys::unlock_byte(ctx.fd, TABLE_LOCK);
        out
    }

    /// Run `f` holding the table lock if it is free now; `None` if someone holds it.
    pub fn try_table_lock<T>(&self, f: impl FnOnce(Ctx<'_>) -> T) -> Result<Option<T>> {
        let _threads = lock(&self.table);
        let ctx = self.ctx()?;
        if !sys::try_lock_byte(ctx.fd, TABLE_LOCK)
            .map_err(|e| Error::io("taking the table lock", e))?
        {
            return Ok(None);
        }
        let out = f(ctx);
        let _ = sys::unlock_byte(ctx.fd, TABLE_LOCK);
        Ok(Some(out))
    }

    /// Run `f` holding the lock byte of process slot `slot` (acting for an external holder),
    /// waiting at most until `deadline`.
    pub fn with_slot_lock<T>(
        &self,
        slot: u32,
        deadline: Option<Monotonic>,
        f: impl FnOnce(Ctx<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let ctx = self.ctx()?;
        // `lock_slot` also keeps this process's other threads (a reclaimer) off the slot.
        loop {
            if holders::lock_slot(ctx, slot)? {
                break;
            }
            if deadline.is_some_and(|d| Monotonic::now() >= d) {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        lock(&self.acting).push(slot);
        let out = f(ctx);
        lock(&self.acting).retain(|&s| s != slot);
        holders::unlock_slot(ctx, slot);
        out.map(Some)
    }

    /// Reclaim what dead holders hold.
    pub fn reclaim(&self) -> Result<Vec<Reclaimed>> {
        let _one = lock(&self.reclaim);
        self.last_reclaim_ns.store(Monotonic::now().0, Relaxed);
        let acting = lock(&self.acting).clone();
        holders::reclaim(Ctx {
            acting: &acting,
            ..self.ctx()?
        })
    }

    /// Reclaim, and report it together with what the reclaim at open gave back.
    pub fn reap(&self) -> Result<Vec<Reclaimed>> {
        let mut out = std::mem::take(&mut *lock(&self.reclaimed_at_open));
        out.extend(self.reclaim()?);
        Ok(out)
    }

    /// Reclaim, at most once per `every` from this process: for waiters' bounded sleeps.
    pub fn reclaim_every(&self, every: Duration) {
        let now = Monotonic::now();
        let last = Monotonic(self.last_reclaim_ns.load(Relaxed));
        if now >= last.after(every) {
            let _ = self.reclaim();
        }
    }

    /// Notice a namespace split: this segment was unlinked while mapped and another segment now
    /// has its name (a process that could not reach this one's descriptors created it). Opening
    /// the namespace then fails, rather than mixing handles of the two.
    pub fn check_linked(&self) -> Result<()> {
        if self.split.load(Relaxed) || self.seg.is_replaced() {
            self.split.store(true, Relaxed);
            return Err(Error::corrupt(format!(
                "{} was removed while in use and another segment took its name; processes that \
                 opened the namespace before and after do not share semaphores",
                self.loc.segment.display()
            )));
        }
        Ok(())
    }

    /// [`check_linked`](Self::check_linked) at most once per `every`.
    fn check_linked_every(&self, every: Duration) -> Result<()> {
        if self.split.load(Relaxed) {
            return self.check_linked();
        }
        let now = Monotonic::now();
        let last = Monotonic(self.last_link_check_ns.load(Relaxed));
        if now < last.after(every) {
            return Ok(());
        }
        self.last_link_check_ns.store(now.0, Relaxed);
        self.check_linked()
    }
}

// ===== `self` trees =====

/// Remove `self` segments in `dir` whose root has exited and that no process has registered in.
fn sweep_trees(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix("self.") else {
            continue;
        };
        let Some((root, _ns)) = rest.split_once('.') else {
            continue;
        };
        let Some(root) = crate::scope::parse_tree_id(root) else {
            continue;
        };
        if sys::liveness(root) == sys::Liveness::Alive {
            continue;
        }
        remove_if_unused(&entry.path());
    }
}

/// Remove a namespace's segment if no process holds a slot lock on it.
fn remove_if_unused(segment: &Path) {
    if let Ok(Some(f)) = segment::open_existing(segment)
        && matches!(
            sys::range_locked(f.as_fd(), 1, MAX_PROCESSES as u64),
            Ok(false)
        )
    {
        segment::remove_files(segment);
    }
}

fn install_exit_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    extern "C" fn at_exit() {
        let Ok(registry) = REGISTRY.try_lock() else {
            return;
        };
        let Some(map) = registry.as_ref() else { return };
        let me = std::process::id();
        for ns in map.values() {
            let Some(root) = ns.loc.tree_root else {
                continue;
            };
            if root.pid != me && sys::liveness(root) == sys::Liveness::Alive {
                continue; // the root lives on and may use it again
            }
            // Drop our own liveness lock, then remove the files if nobody else holds one.
            let inner = lock(&ns.inner);
            if let (Some(f), Some(r)) = (&inner.lock_file, inner.registration) {
                let _ = sys::unlock_byte(f.as_fd(), holders::lock_offset(r.slot));
                if matches!(
                    sys::range_locked(f.as_fd(), 1, MAX_PROCESSES as u64),
                    Ok(false)
                ) {
                    segment::remove_files(&ns.loc.segment);
                }
            }
        }
    }
    ONCE.call_once(|| {
        // SAFETY: `at_exit` is a valid `extern "C" fn()` for the whole program.
        unsafe { libc::atexit(at_exit) };
    });
}

// ===== lanes =====

/// Thread lanes: each thread that uses shmsem gets a number, unique among the live threads of
/// this process, which selects its holder records. A lane is returned when its thread exits.
///
/// The number sits in a `const`-initialised thread-local (one load on the fast path); a second
/// thread-local with a destructor hands it back when the thread exits.
struct LaneGuard(u16);

/// The lane used by code running while its thread's lane is already gone (late destructors),
/// and by threads beyond the 65 535th. Those callers serialise on [`SHARED_LANE_LOCK`].
pub(crate) const SHARED_LANE: u16 = u16::MAX;
static SHARED_LANE_LOCK: Mutex<()> = Mutex::new(());

/// `u32::MAX` until the thread's first use, then its lane.
const NO_LANE: u32 = u32::MAX;

static LANES: Mutex<(u16, Vec<u16>)> = Mutex::new((0, Vec::new()));

impl Drop for LaneGuard {
    fn drop(&mut self) {
        LANE.set(NO_LANE);
        if self.0 != SHARED_LANE {
            lock(&LANES).1.push(self.0);
        }
    }
}

thread_local! {
    static LANE: std::cell::Cell<u32> = const { std::cell::Cell::new(NO_LANE) };
    static LANE_GUARD: std::cell::RefCell<Option<LaneGuard>> = const { std::cell::RefCell::new(None) };
}

/// This thread's lane, or `None` when the thread must use the shared lane.
#[inline]
pub(crate) fn current_lane() -> Option<u16> {
    match LANE.try_with(std::cell::Cell::get) {
        Ok(l) if l < SHARED_LANE as u32 => Some(l as u16),
        Ok(NO_LANE) => assign_lane(),
        _ => None,
    }
}

#[cold]
fn assign_lane() -> Option<u16> {
    let lane = {
        let mut lanes = lock(&LANES);
        match lanes.1.pop() {
            Some(l) => l,
            None => {
                let l = lanes.0;
                lanes.0 = lanes.0.saturating_add(1); // sticks at SHARED_LANE
                l
            }
        }
    };
    // If the guard cannot be stored (the thread is exiting), give the lane back at once.
    let stored = LANE_GUARD.try_with(|g| *g.borrow_mut() = Some(LaneGuard(lane)));
    if stored.is_err() || lane == SHARED_LANE {
        if lane != SHARED_LANE {
            lock(&LANES).1.push(lane);
        }
        return None;
    }
    LANE.set(lane as u32);
    Some(lane)
}

/// Run `f` with this thread's lane, holding the shared-lane lock when it is the shared lane.
#[inline]
pub(crate) fn with_lane<T>(f: impl FnOnce(u16) -> T) -> T {
    match current_lane() {
        Some(lane) => f(lane),
        None => {
            let _one = lock(&SHARED_LANE_LOCK);
            f(SHARED_LANE)
        }
    }
}
