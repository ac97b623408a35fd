//! The public semaphore: opening by name, acquiring with weights and timeouts, releasing, and
//! looking inside.
//!
//! # Memory ordering
//!
//! A successful acquire *acquires* and a release *releases*: everything a holder did before it
//! released happens-before everything the next holder does after its acquire, in any process,
//! as with a mutex. A failed try-acquire or a timed-out acquire synchronises with nothing.

mod acquire;
mod cluster;
mod counters;
mod external;
mod fd_permit;
#[cfg(feature = "async")]
mod future;
mod info;
mod options;
mod owned;
mod permit;
mod release;
mod sleep;
mod until;

pub(crate) use self::counters::{bump as bump_counter, reset as reset_counters};
#[cfg(feature = "async")]
pub use self::future::{AcquireFuture, AcquireOwnedFuture};
#[doc(hidden)]
use self::until::Until;
use self::{
    acquire::{Contended, fair_capacity},
    cluster::Mapped,
};
pub use self::{
    counters::Counters,
    fd_permit::FdPermit,
    info::{Info, Kind, Owner},
    options::Options,
    owned::OwnedPermit,
    permit::Permit,
};

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{
            AtomicU64,
            Ordering::{Acquire, Relaxed, SeqCst},
        },
    },
    time::Duration,
};

use crate::{
    error::{Error, Result},
    failpoint::KillPoints,
    holders,
    namespace::{Namespace, fast},
    protocol::{
        self, Lane,
        handle::{Entered, Held, LIFE_BITS, pack, unpack},
        holding,
        keys::{self, HolderKey},
        word,
    },
    scope::Scope,
    segment::layout::{HolderRecord, SemRecord, USED},
    sys,
    table::{self, Found, KIND_PERSISTENT, NewRecord},
    wait,
};

/// The semaphore's state word and fairness reservation as they are now, for tests that check
/// that nothing was left counted or reserved.
pub fn state_of(sem: &Semaphore) -> (u64, u64) {
    if sem.as_cluster().is_some() {
        return (0, 0); // no word: the cluster keeps the state
    }
    let rec = sem.rec(sem.found());
    (rec.word.load(SeqCst), rec.reservation.load(SeqCst))
}

/// Whether the calling thread remembers `sem` in the life the handle names now: its next
/// uncontended acquire (and the release of what that takes) then goes straight to the words.
pub fn on_fast_path(sem: &Semaphore) -> bool {
    fast::get(sem.inner.serial, sem.inner.found.load(Relaxed)).is_some()
}

/// The longest a waiter sleeps before it looks for dead holders and re-checks, when no watch
/// thread looks after it (see `namespace::watch`).
const BOUNDED_SLEEP: Duration = Duration::from_millis(25);
/// How long a release waits for a recount to finish before it gives up.
const FROZEN_PATIENCE: Duration = Duration::from_secs(2);
/// Spins before the first sleep.
const SPINS: u32 = 3;

/// A named counting semaphore shared by processes.
///
/// Cloning a handle is cheap; handles may be shared between threads.
///
/// # Examples
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("shmsem-doc-sem-{}", std::process::id()));
/// # // SAFETY: set before this example starts any thread.
/// # unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
/// use std::time::Duration;
/// use shmsem::{Error, Scope, Semaphore};
///
/// let sem = Semaphore::options().capacity(2).open("example")?;
/// let two = sem.acquire_weight(2)?;              // Use: held until dropped
/// assert!(matches!(
///     sem.acquire_timeout(1, Duration::from_millis(20)),
///     Err(Error::Timeout { .. })                 // Timeout
/// ));
/// drop(two);
/// sem.enter(1)?;                                 // Enter ...
/// sem.exit(1)?;                                  // ... Exit, with a release count
/// sem.with(|| println!("at most 2 of us here"))?;
/// # Ok::<(), shmsem::Error>(())
/// ```
#[derive(Clone)]
pub struct Semaphore {
    inner: Arc<Inner>,
}

/// What every clone of a handle shares.
struct Inner {
    /// Names this handle in the threads' fast-path entries (see `fast`); never reused.
    serial: u64,
    ns: Mapped,
    /// The cluster-scope semaphore this handle is, if it is one (see `crate::cluster`). Such a
    /// handle has no mapped namespace and never a fast-path entry, so its acquires reach
    /// [`Semaphore::take_cold`] and its permits' drops `drop_slow`, which branch here; the other
    /// methods branch at their top.
    cluster: Option<Arc<crate::cluster::Handle>>,
    name: Box<str>,
    /// The record and its incarnation, `index << 50 | incarnation` (see [`pack`]). It changes
    /// when an auto semaphore that was removed is created again through this handle.
    found: AtomicU64,
    /// How to create the semaphore again if it is removed: for handles of auto semaphores
    /// opened with get-or-create.
    recreate: Option<NewRecord>,
    /// The last holding recorded through this handle: a [`Held`] word, or [`Held::EMPTY`]...
    cache: AtomicU64,
    /// ... and the key of that holder record.
    cache_key: AtomicU64,
    /// Weight taken with [`enter`](Semaphore::enter) and not yet given back with
    /// [`exit`](Semaphore::exit), by this process through this handle and its clones, on one
    /// life of the semaphore (see [`Unguarded`]).
    unguarded: AtomicU64,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(c) = &self.inner.cluster {
            return f
                .debug_struct("Semaphore")
                .field("name", &self.inner.name)
                .field("scope", &Scope::Cluster)
                .field("namespace", &c.namespace())
                .finish();
        }
        f.debug_struct("Semaphore")
            .field("name", &self.inner.name)
            .field("scope", &self.inner.ns.loc.scope)
            .field("namespace", &self.inner.ns.loc.namespace)
            .finish()
    }
}

// A handle packs a record index with an incarnation (see `protocol::handle::pack`).
const _: () = assert!(1 << LIFE_BITS == table::INCARNATION_LIMIT);
const _: () = assert!(crate::segment::layout::MAX_SEMAPHORES <= 1 << (64 - LIFE_BITS));

/// Weight entered by this process through a handle, as an [`Entered`] word of the current fork
/// epoch:
///
/// * A forked child reads its parent's epoch and so sees nothing entered: `exit` is `NotHeld`
///   there, and the parent's weight is the parent's alone.
/// * Weight entered on a life of the semaphore that was removed since is gone with it: `exit`
///   never gives it back to a later life. The generation tells the lives apart, since one that
///   this process still holds weight on is never reused (see `table`).
struct Unguarded;

impl Unguarded {
    /// The weight entered on generation `generation` in this process.
    #[inline]
    fn weight(bits: u64, generation: u16) -> u64 {
        Entered::from_bits(bits).weight(sys::FORK_EPOCH.load(Relaxed), generation)
    }

    #[inline]
    fn with(weight: u64, generation: u16) -> Option<u64> {
        let weight = u32::try_from(weight).ok()?;
        Some(Entered::new(sys::FORK_EPOCH.load(Relaxed), generation, weight).bits())
    }
}

/// How many times one acquire re-creates a removed auto semaphore before it gives up.
const RECREATE_TRIES: u32 = 8;

impl Semaphore {
    /// The largest capacity a semaphore can have (2^30); a larger one is refused with
    /// [`Error::InvalidArgument`].
    pub const MAX_CAPACITY: u32 = word::MAX_CAPACITY;

    /// Open `name` in `scope` (namespace `default`), creating it with capacity 1 if it does not
    /// exist. See [`Semaphore::options`] for the rest.
    pub fn open(name: &str, scope: Scope) -> Result<Semaphore> {
        Options::default().scope(scope).open(name)
    }

    /// Options for opening a semaphore.
    pub fn options() -> Options {
        Options::default()
    }

    pub(crate) fn new(
        ns: Arc<Namespace>,
        name: &str,
        found: Found,
        life: u64,
        recreate: Option<NewRecord>,
    ) -> Semaphore {
        // Only auto semaphores come back by themselves; a removed persistent one stays removed.
        let recreate = recreate.filter(|_| {
            ns.seg
                .sem(found.index)
                .is_some_and(|r| r.flags.load(Relaxed) & KIND_PERSISTENT == 0)
        });
        Semaphore {
            inner: Arc::new(Inner {
                serial: fast::serial(),
                ns: Mapped(Some(ns)),
                cluster: None,
                name: name.into(),
                found: AtomicU64::new(pack(found, life)),
                recreate,
                cache: AtomicU64::new(Held::EMPTY),
                cache_key: AtomicU64::new(0),
                unguarded: AtomicU64::new(0),
            }),
        }
    }

    /// The semaphore's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The scope it lives in.
    pub fn scope(&self) -> Scope {
        if self.inner.cluster.is_some() {
            return Scope::Cluster;
        }
        self.inner.ns.loc.scope
    }

    /// The namespace it lives in.
    pub fn namespace(&self) -> &str {
        if let Some(c) = self.as_cluster() {
            return c.namespace();
        }
        &self.inner.ns.loc.namespace
    }

    /// The capacity now (for a cluster-scope semaphore: as last read from the cluster).
    pub fn capacity(&self) -> u32 {
        if let Some(c) = self.as_cluster() {
            return c.capacity();
        }
        self.rec(self.found()).capacity.load(Relaxed)
    }

    #[inline]
    fn found(&self) -> Found {
        self.current().0
    }

    /// The record this handle acts on and the incarnation it belongs to.
    #[inline]
    fn current(&self) -> (Found, u64) {
        unpack(self.inner.found.load(Relaxed))
    }

    #[inline]
    fn rec(&self, found: Found) -> &SemRecord {
        // `found.index` came from the table probe, which only yields in-bounds indices.
        self.inner
            .ns
            .seg
            .sem(found.index)
            .unwrap_or_else(|| unreachable!())
    }

    /// This lane's holder record for `found` in incarnation `life`, and where it is;
    /// [`Error::Removed`] if that incarnation is over.
    ///
    /// The cache is two words, written by whichever thread last missed; a hit needs the record
    /// it names to carry exactly the key cached beside it, and that key to name `found`. Two
    /// threads interleaving their writes can only cause a miss, never a wrong record. A hit also
    /// needs the semaphore to be in incarnation `life`: a record keyed to a generation keeps that
    /// generation from being reused (see `table`), so while it is keyed, the generation in the
    /// word means this incarnation.
    #[inline]
    fn holder(&self, lane: u16, found: Found, life: u64) -> Result<(&HolderRecord, Held)> {
        let held = Held::from_bits(self.inner.cache.load(Relaxed));
        let key = self.inner.cache_key.load(Relaxed);
        if held.is_of(sys::FORK_EPOCH.load(Relaxed), lane)
            && HolderKey::from_bits(key).names(lane, found)
            && let Some(h) = self.inner.ns.seg.holder(held.record())
            && h.key.load(Relaxed) == key
            && self.rec(found).incarnation.load(Relaxed) == life
        {
            self.remember(lane, (found, life), sys::FORK_EPOCH.load(Relaxed), h);
            return Ok((h, held));
        }
        self.holder_slow(lane, found, life)
    }

    /// Put this handle's record `h` on the fast path of the calling thread (see `fast`), if
    /// `lane` is the thread's own lane (not the lane threads share under a lock). Called
    /// whenever the slow path has found or claimed `h` for incarnation `life`, so a thread that
    /// came back to this handle after using others is on the fast path again at once.
    #[inline]
    fn remember(&self, lane: u16, (found, life): (Found, u64), epoch: u32, h: &HolderRecord) {
        if Some(lane) == crate::namespace::current_lane() && lane != crate::namespace::SHARED_LANE {
            fast::fill(
                self.inner.serial,
                pack(found, life),
                epoch,
                self.rec(found),
                h,
            );
        }
    }

    #[cold]
    fn holder_slow(&self, lane: u16, found: Found, life: u64) -> Result<(&HolderRecord, Held)> {
        let (record, epoch) = self.inner.ns.record(lane, found)?;
        // After the claim (SeqCst): see the generation rule in `table`.
        let rec = self.rec(found);
        if !table::is_life(rec, life, &self.inner.name) {
            return Err(self.removed());
        }
        if let Some(h) = self.inner.ns.seg.holder(record) {
            self.remember(lane, (found, life), epoch, h);
        }
        let held = Held::new(epoch, lane, record);
        let key = self
            .inner
            .ns
            .seg
            .holder(record)
            .map_or(0, |h| h.key.load(Relaxed));
        self.inner.cache.store(held.bits(), Relaxed);
        self.inner.cache_key.store(key, Relaxed);
        let h = self
            .inner
            .ns
            .seg
            .holder(record)
            .ok_or_else(|| Error::corrupt("record out of bounds"))?;
        Ok((h, held))
    }

    /// The lane-0 record of process slot `slot` (an external holder's, an `FdPermit`'s) on
    /// `found` in incarnation `life`, found or claimed; `None` once that incarnation is over.
    /// The caller operates the slot (holds its lock byte).
    fn slot_record(
        &self,
        ctx: holders::Ctx<'_>,
        slot: u32,
        slot_gen: u32,
        (found, life): (Found, u64),
    ) -> Result<Option<u32>> {
        let key = HolderKey::new(slot, 0, found).bits();
        let existing = (0..crate::segment::layout::MAX_HOLDERS).find(|&index| {
            ctx.seg
                .holder(index)
                .is_some_and(|h| h.key.load(Acquire) == key)
        });
        let index = match existing {
            Some(index) => index,
            None => holders::claim_record(ctx, slot, slot_gen, 0, found)?,
        };
        // After the claim: see the generation rule in `table`.
        Ok(table::is_life(self.rec(found), life, &self.inner.name).then_some(index))
    }

    /// Wait as long as it takes for weight 1.
    #[inline(always)]
    pub fn acquire(&self) -> Result<Permit<'_>> {
        self.acquire_weight(1)
    }

    /// Wait as long as it takes for `weight`.
    #[inline(always)]
    pub fn acquire_weight(&self, weight: u32) -> Result<Permit<'_>> {
        self.take(weight, Until::Forever)
            .map(|taken| Permit::new(self, weight, taken))
    }

    /// Wait at most `timeout` for `weight`; [`Error::Timeout`] when it elapses.
    #[inline]
    pub fn acquire_timeout(&self, weight: u32, timeout: Duration) -> Result<Permit<'_>> {
        self.take(weight, Until::Timeout(timeout))
            .map(|taken| Permit::new(self, weight, taken))
    }

    /// Take `weight` only if it is available now; [`Error::WouldBlock`] otherwise.
    #[inline]
    pub fn try_acquire(&self, weight: u32) -> Result<Permit<'_>> {
        if let Some(c) = self.as_cluster() {
            return c
                .take(weight, None, true)
                .map(|taken| Permit::new(self, weight, taken));
        }
        // A try that cannot succeed reads the word and returns.
        let found = self.found();
        let rec = self.rec(found);
        let w = rec.word.load(Relaxed);
        let capacity = rec.capacity.load(Relaxed);
        if weight.wrapping_sub(1) < capacity && word::generation(w) == found.generation {
            let fair = fair_capacity(rec, capacity, keys::Reservation::NONE);
            if word::take(w, weight, fair, false).is_none() {
                return Err(would_block(weight, w, fair));
            }
        }
        self.take(weight, Until::Now)
            .map(|taken| Permit::new(self, weight, taken))
    }

    /// Acquire weight 1, run `f`, and release, even if `f` panics.
    pub fn with<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        let _permit = self.acquire()?;
        Ok(f())
    }

    /// Take `weight` without a guard, waiting as long as it takes; give it back with
    /// [`exit`](Self::exit). Weight entered and never exited comes back when the process dies.
    pub fn enter(&self, weight: u32) -> Result<()> {
        if let Some(c) = self.as_cluster() {
            return c.enter(weight);
        }
        let (found, _) = self.take(weight, Until::Forever)?;
        self.add_unguarded(weight, unpack(found).0.generation);
        Ok(())
    }

    /// Count `weight` as entered by this process on generation `generation`. Weight counted for
    /// another generation was on a life that is over: it is dropped.
    pub(super) fn add_unguarded(&self, weight: u32, generation: u16) {
        let _ = self.inner.unguarded.fetch_update(Relaxed, Relaxed, |bits| {
            let before = Unguarded::weight(bits, generation);
            Unguarded::with(before.saturating_add(u64::from(weight)), generation)
        });
    }

    /// Give back `count` of the weight taken with [`enter`](Self::enter);
    /// [`Error::NotHeld`] if this process entered less, and nothing changes then.
    pub fn exit(&self, count: u32) -> Result<()> {
        if count == 0 {
            return Err(Error::invalid("release count 0; give back at least 1"));
        }
        if let Some(c) = self.as_cluster() {
            return c.exit(count);
        }
        let (found, life) = self.current();
        let generation = found.generation;
        self.inner
            .unguarded
            .fetch_update(Relaxed, Relaxed, |bits| {
                Unguarded::weight(bits, generation)
                    .checked_sub(u64::from(count))
                    .and_then(|left| Unguarded::with(left, generation))
            })
            .map_err(|bits| Error::NotHeld {
                count,
                held: Unguarded::weight(bits, generation),
            })?;
        // As a permit's drop: through this thread's entry when it has one (see `fast`).
        let packed = pack(found, life);
        if let Some(hit) = fast::get(self.inner.serial, packed)
            && hit.epoch == sys::FORK_EPOCH.load(Relaxed)
            && Semaphore::give_fast(&hit, count)
        {
            return Ok(());
        }
        self.give(found, life, count)
            .inspect_err(|_| self.add_unguarded(count, generation))
    }

    /// Change the capacity. Raising it wakes the waiters that now fit. Lowering it below the
    /// weight held now revokes nothing: no acquire succeeds until the value is below the new
    /// capacity.
    pub fn set_capacity(&self, capacity: u32) -> Result<()> {
        check_capacity(capacity)?;
        if let Some(c) = self.as_cluster() {
            return c.set_capacity(capacity);
        }
        let found = self.found();
        let rec = self.live_rec(found)?;
        // SeqCst, then the flag cleared, then the wake: a waiter sleeps on the value, which did
        // not change, so one that judged by the old capacity must find its sleep refused (see
        // `protocol::clear_sleeping`).
        rec.capacity.store(capacity, SeqCst);
        protocol::clear_sleeping(&rec.word);
        release::wake_counted(rec, u32::MAX);
        Ok(())
    }

    /// Make the semaphore persistent (`true`: stays until removed) or auto (`false`: removed
    /// after its idle period without holders or waiters; the period starts now).
    pub fn set_persistent(&self, persistent: bool) -> Result<()> {
        if let Some(c) = self.as_cluster() {
            return c.set_persistent(persistent);
        }
        let found = self.found();
        let rec = self.live_rec(found)?;
        self.inner.ns.with_table_lock(|_| {
            if !table::is_current(rec, found.generation) {
                return Err(self.removed());
            }
            let flags = rec.flags.load(Relaxed);
            if persistent {
                rec.flags.store(flags | KIND_PERSISTENT, Relaxed);
            } else {
                rec.last_used_ms.store(USED, Relaxed);
                rec.flags.store(flags & !KIND_PERSISTENT, Relaxed);
            }
            Ok(())
        })
    }

    fn live_rec(&self, found: Found) -> Result<&SemRecord> {
        let rec = self.rec(found);
        if table::is_current(rec, found.generation) {
            Ok(rec)
        } else {
            Err(self.removed())
        }
    }

    /// Capacity, value, kind, owner, holders and waiters now.
    pub fn info(&self) -> Result<Info> {
        if let Some(c) = self.as_cluster() {
            return c.info();
        }
        let found = self.found();
        let rec = self.live_rec(found)?;
        let w = rec.word.load(Acquire);
        let (holders, waiters) = holders::parties(&self.inner.ns.seg, found);
        let flags = rec.flags.load(Relaxed);
        Ok(Info {
            name: self.inner.name.to_string(),
            scope: self.inner.ns.loc.scope,
            namespace: self.inner.ns.loc.namespace.clone(),
            kind: if flags & KIND_PERSISTENT != 0 {
                Kind::Persistent
            } else {
                Kind::Auto
            },
            idle_ms: rec.idle_ms.load(Relaxed),
            capacity: rec.capacity.load(Relaxed),
            value: word::value(w),
            owner: Owner::of(self.inner.ns.seg.file()),
            holders,
            waiters,
        })
    }

    /// Remove the semaphore. Refuses with [`Error::InUse`] while anything is held, unless
    /// `force`; sleepers wake and get [`Error::Removed`].
    pub fn remove(&self, force: bool) -> Result<()> {
        if let Some(c) = self.as_cluster() {
            return c.remove(force);
        }
        let (found, life) = self.current();
        let rec = self.rec(found);
        let not_found = || Error::NotFound {
            name: self.inner.name.to_string(),
        };
        self.inner.ns.with_table_lock(|ctx| {
            if rec.incarnation.load(Acquire) != life {
                return Err(not_found());
            }
            match table::remove(ctx.seg, found, force) {
                table::Removal::Removed => Ok(()),
                table::Removal::Gone => Err(not_found()),
                table::Removal::InUse(value) => Err(Error::InUse {
                    name: self.inner.name.to_string(),
                    value,
                }),
            }
        })?;
        wait::wake(&rec.word, u32::MAX);
        Ok(())
    }

    /// After [`Refused::Removed`] on `old`: find or create the semaphore again, if this handle
    /// may; returns the record to retry on.
    #[cold]
    fn recreate(&self, old: (Found, u64), lane: u16, until: Until) -> Result<(Found, u64)> {
        let Some(new) = self.inner.recreate else {
            return Err(self.removed());
        };
        let ns = &self.inner.ns;
        let (found, life) = match table::lookup_life(&ns.seg, &self.inner.name) {
            Some(f) if f.1 != old.1 || f.0 != old.0 => f,
            _ => {
                let (found, life, _) = ns.with_table_lock_until(until.lock_deadline(), |ctx| {
                    table::insert_life(ctx.seg, &self.inner.name, new)
                })?;
                (found, life)
            }
        };
        // Several threads may race here; any of their answers is the live record.
        self.inner.found.store(pack(found, life), Relaxed);
        ns.forget_record(lane, old.0);
        Ok((found, life))
    }
}

fn check_capacity(capacity: u32) -> Result<()> {
    if capacity == 0 || capacity > word::MAX_CAPACITY {
        return Err(Error::invalid(format!(
            "capacity {capacity} is outside 1..={}",
            word::MAX_CAPACITY
        )));
    }
    Ok(())
}

/// Mark the start of a holding, if this acquire began it, as not yet stamped: the acquirer
/// reads no clock. Whoever first looks at the holding (`info`, `show`, `ps`) stamps it with the
/// time it saw it (see `holders::parties`), so `since` is when a holding was first seen, at most
/// that late.
#[inline]
fn note_since(h: &HolderRecord, weight: u32) {
    let held = holding::held(h.holding.load(Relaxed));
    if held > 0 && held <= weight as i64 {
        h.since_ms.store(0, Relaxed);
    }
}

#[inline]
fn check_weight(weight: u32, capacity: u32) -> Result<()> {
    if weight.wrapping_sub(1) < capacity {
        Ok(())
    } else {
        Err(weight_error(weight, capacity))
    }
}

/// The error for a try that found `word` too full.
#[cold]
fn would_block(weight: u32, word: u64, capacity: u32) -> Error {
    // A frozen word has nothing available until the recount ends.
    let available = if word::is_frozen(word) {
        0
    } else {
        word::available(word, capacity)
    };
    Error::WouldBlock { weight, available }
}

/// The error for a weight outside `1..=capacity`.
#[cold]
fn weight_error(weight: u32, capacity: u32) -> Error {
    if weight == 0 {
        Error::invalid("weight 0; ask for at least 1")
    } else {
        Error::WeightTooLarge { weight, capacity }
    }
}

#[cold]
fn frozen_pause() {
    std::thread::sleep(Duration::from_micros(500));
}

/// The lane of holder record `h` on semaphore record `rec`, calling the kill points of crash
/// tests (nothing without the `failpoints` feature).
#[inline(always)]
fn lane_of<'a>(rec: &'a SemRecord, h: &'a HolderRecord) -> Lane<'a, AtomicU64, KillPoints> {
    Lane::new(&rec.word, &h.holding).with_hook(KillPoints)
}
