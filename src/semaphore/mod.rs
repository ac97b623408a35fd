//! The public semaphore: opening by name, acquiring with weights and timeouts, releasing, and
//! looking inside.
//!
//! # Memory ordering
//!
//! A successful acquire *acquires* and a release *releases*: everything a holder did before it
//! released happens-before everything the next holder does after its acquire, in any process,
//! as with a mutex. A failed try-acquire or a timed-out acquire synchronises with nothing.

mod external;
mod info;
mod options;
mod permit;
pub mod protocol;
pub mod word;

pub use self::{
    info::{Info, Kind, Owner},
    options::Options,
    permit::Permit,
};

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{
            AtomicU64,
            Ordering::{Acquire, Relaxed, Release},
        },
    },
    time::Duration,
};

use self::{
    protocol::{Lane, Refused, holding},
    word::Wake,
};
use crate::{
    error::{Error, Result},
    holders,
    namespace::{Namespace, current_lane, with_lane},
    scope::Scope,
    segment::layout::{HolderRecord, SemRecord, USED},
    sys,
    table::{self, Found, KIND_PERSISTENT, NewRecord},
    wait::{self, Monotonic, Waited},
};

/// The longest a waiter sleeps before it looks for dead holders and re-checks.
const BOUNDED_SLEEP: Duration = Duration::from_millis(50);
/// How long a release waits for a recount to finish before it gives up.
const FROZEN_PATIENCE: Duration = Duration::from_secs(10);
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
    ns: Arc<Namespace>,
    name: Box<str>,
    /// The record, `index << 16 | generation`. It changes when an auto semaphore that was
    /// removed is created again through this handle.
    found: AtomicU64,
    /// How to create the semaphore again if it is removed: for handles of auto semaphores
    /// opened with get-or-create.
    recreate: Option<NewRecord>,
    /// The last holding recorded through this handle: a [`Held`] word, or [`Held::EMPTY`]...
    cache: AtomicU64,
    /// ... and the key of that holder record.
    cache_key: AtomicU64,
    /// Weight taken with [`enter`](Semaphore::enter) and not yet given back with
    /// [`exit`](Semaphore::exit), by this process through this handle and its clones.
    unguarded: AtomicU64,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("name", &self.inner.name)
            .field("scope", &self.inner.ns.loc.scope)
            .field("namespace", &self.inner.ns.loc.namespace)
            .finish()
    }
}

#[inline]
const fn pack(found: Found) -> u64 {
    (found.index as u64) << 16 | found.generation as u64
}

#[inline]
const fn unpack(bits: u64) -> Found {
    Found {
        index: (bits >> 16) as u32,
        generation: bits as u16,
    }
}

/// How many times one acquire re-creates a removed auto semaphore before it gives up.
const RECREATE_TRIES: u32 = 8;

impl Semaphore {
    /// Open `name` in `scope` (namespace `default`), creating it with capacity 1 if it does not
    /// exist. See [`Semaphore::options`] for the rest.
    pub fn open(name: &str, scope: Scope) -> Result<Semaphore> {
        Options::default().scope(scope).open(name)
    }

    /// Options for opening a semaphore.
    pub fn options() -> Options {
        Options::default()
    }

    fn new(ns: Arc<Namespace>, name: &str, found: Found, recreate: Option<NewRecord>) -> Semaphore {
        // Only auto semaphores come back by themselves; a removed persistent one stays removed.
        let recreate = recreate.filter(|_| {
            ns.seg
                .sem(found.index)
                .is_some_and(|r| r.flags.load(Relaxed) & KIND_PERSISTENT == 0)
        });
        Semaphore {
            inner: Arc::new(Inner {
                ns,
                name: name.into(),
                found: AtomicU64::new(pack(found)),
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
        self.inner.ns.loc.scope
    }

    /// The namespace it lives in.
    pub fn namespace(&self) -> &str {
        &self.inner.ns.loc.namespace
    }

    /// The capacity now.
    pub fn capacity(&self) -> u32 {
        self.rec(self.found()).capacity.load(Relaxed)
    }

    #[inline]
    fn found(&self) -> Found {
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

    /// This lane's holder record for `found`, and where it is.
    ///
    /// The cache is two words, written by whichever thread last missed; a hit needs the record
    /// it names to carry exactly the key cached beside it, and that key to name `found`. Two
    /// threads interleaving their writes can only cause a miss, never a wrong record.
    #[inline]
    fn holder(&self, lane: u16, found: Found) -> Result<(&HolderRecord, Held)> {
        let held = Held(self.inner.cache.load(Relaxed));
        let key = self.inner.cache_key.load(Relaxed);
        if held.is_current(lane)
            && holders::key_names(key, lane, found)
            && let Some(h) = self.inner.ns.seg.holder(held.record())
            && h.key.load(Relaxed) == key
        {
            return Ok((h, held));
        }
        self.holder_slow(lane, found)
    }

    #[cold]
    fn holder_slow(&self, lane: u16, found: Found) -> Result<(&HolderRecord, Held)> {
        let (record, epoch) = self.inner.ns.record(lane, found)?;
        let held = Held::new(epoch, lane, record);
        let key = self
            .inner
            .ns
            .seg
            .holder(record)
            .map_or(0, |h| h.key.load(Relaxed));
        self.inner.cache.store(held.0, Relaxed);
        self.inner.cache_key.store(key, Relaxed);
        let h = self
            .inner
            .ns
            .seg
            .holder(record)
            .ok_or_else(|| Error::corrupt("record out of bounds"))?;
        Ok((h, held))
    }

    /// Wait as long as it takes for weight 1.
    #[inline]
    pub fn acquire(&self) -> Result<Permit<'_>> {
        self.acquire_weight(1)
    }

    /// Wait as long as it takes for `weight`.
    #[inline]
    pub fn acquire_weight(&self, weight: u32) -> Result<Permit<'_>> {
        self.take(weight, Until::Forever)
            .map(|(found, held)| Permit::new(self, weight, found, held))
    }

    /// Wait at most `timeout` for `weight`; [`Error::Timeout`] when it elapses.
    #[inline]
    pub fn acquire_timeout(&self, weight: u32, timeout: Duration) -> Result<Permit<'_>> {
        self.take(weight, Until::Timeout(timeout))
            .map(|(found, held)| Permit::new(self, weight, found, held))
    }

    /// Take `weight` only if it is available now; [`Error::WouldBlock`] otherwise.
    #[inline]
    pub fn try_acquire(&self, weight: u32) -> Result<Permit<'_>> {
        // A try that cannot succeed reads the word and returns.
        let found = self.found();
        let rec = self.rec(found);
        let w = rec.word.load(Relaxed);
        let capacity = rec.capacity.load(Relaxed);
        if weight.wrapping_sub(1) < capacity && word::generation(w) == found.generation {
            let fair = fair_capacity(rec, capacity, 0);
            if word::take(w, weight, fair, false).is_none() {
                return Err(would_block(weight, w, fair));
            }
        }
        self.take(weight, Until::Now)
            .map(|(found, held)| Permit::new(self, weight, found, held))
    }

    /// Acquire weight 1, run `f`, and release, even if `f` panics.
    pub fn with<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        let _permit = self.acquire()?;
        Ok(f())
    }

    /// Take `weight` without a guard, waiting as long as it takes; give it back with
    /// [`exit`](Self::exit). Weight entered and never exited comes back when the process dies.
    pub fn enter(&self, weight: u32) -> Result<()> {
        self.take(weight, Until::Forever)?;
        self.inner.unguarded.fetch_add(weight as u64, Relaxed);
        Ok(())
    }

    /// Give back `count` of the weight taken with [`enter`](Self::enter);
    /// [`Error::NotHeld`] if this process entered less, and nothing changes then.
    pub fn exit(&self, count: u32) -> Result<()> {
        if count == 0 {
            return Err(Error::invalid("release count 0; give back at least 1"));
        }
        let unguarded = &self.inner.unguarded;
        unguarded
            .fetch_update(Relaxed, Relaxed, |held| held.checked_sub(count as u64))
            .map_err(|held| Error::NotHeld { count, held })?;
        self.give(self.found(), count).inspect_err(|_| {
            unguarded.fetch_add(count as u64, Relaxed);
        })
    }

    /// Change the capacity. Raising it wakes the waiters that now fit. Lowering it below the
    /// weight held now revokes nothing: no acquire succeeds until the value is below the new
    /// capacity.
    pub fn set_capacity(&self, capacity: u32) -> Result<()> {
        check_capacity(capacity)?;
        let found = self.found();
        let rec = self.live_rec(found)?;
        // Release: a waiter that reads the new capacity sees it with everything before it.
        rec.capacity.store(capacity, Release);
        // A waiter sleeps on the value, which did not change: wake everyone to re-check. One that
        // read the old capacity just before this wake sleeps at most its bounded 50 ms.
        wait::wake(&rec.word, u32::MAX);
        Ok(())
    }

    /// Make the semaphore persistent (`true`: stays until removed) or auto (`false`: removed
    /// after its idle period without holders or waiters; the period starts now).
    pub fn set_persistent(&self, persistent: bool) -> Result<()> {
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
        let found = self.found();
        let rec = self.rec(found);
        self.inner.ns.with_table_lock(|ctx| {
            if !table::is_current(rec, found.generation) {
                return Err(Error::NotFound {
                    name: self.inner.name.to_string(),
                });
            }
            let value = word::value(rec.word.load(Acquire));
            if value != 0 && !force {
                return Err(Error::InUse {
                    name: self.inner.name.to_string(),
                    value,
                });
            }
            table::remove(ctx.seg, found);
            Ok(())
        })?;
        wait::wake(&rec.word, u32::MAX);
        Ok(())
    }

    /// After [`Refused::Removed`] on `old`: find or create the semaphore again, if this handle
    /// may; returns the record to retry on.
    #[cold]
    fn recreate(&self, old: Found, lane: u16) -> Result<Found> {
        let Some(new) = self.inner.recreate else {
            return Err(self.removed());
        };
        let ns = &self.inner.ns;
        let found = match table::lookup(&ns.seg, &self.inner.name) {
            Some(f) if f != old => f,
            _ => {
                ns.with_table_lock(|ctx| table::insert(ctx.seg, &self.inner.name, new))?
                    .0
            }
        };
        // Several threads may race here; any of their answers is the live record.
        self.inner.found.store(pack(found), Relaxed);
        ns.forget_record(lane, old);
        Ok(found)
    }

    // ===== acquire =====

    /// Take `weight` through this thread's lane; returns the record taken from and where the
    /// holding is recorded.
    #[inline]
    fn take(&self, weight: u32, until: Until) -> Result<(Found, Held)> {
        match current_lane() {
            Some(lane) => self.take_on(lane, weight, until),
            None => with_lane(|lane| self.take_on(lane, weight, until)),
        }
    }

    /// One compare-exchange when the weight is free; everything else is [`Self::take_slow`].
    #[inline]
    fn take_on(&self, lane: u16, weight: u32, until: Until) -> Result<(Found, Held)> {
        let found = self.found();
        let rec = self.rec(found);
        let capacity = rec.capacity.load(Relaxed);
        // `weight - 1 < capacity` is `1 <= weight <= capacity` in one comparison.
        if weight.wrapping_sub(1) < capacity {
            let fair = fair_capacity(rec, capacity, 0);
            let (h, held) = self.holder(lane, found)?;
            let lane_view = Lane {
                word: &rec.word,
                holding: &h.holding,
            };
            match lane_view.try_take(found.generation, weight, fair, false) {
                Ok(_) => {
                    note_since(h, weight);
                    return Ok((found, held));
                }
                Err(refused) => return self.take_slow(lane, weight, until, found, refused),
            }
        }
        Err(weight_error(weight, capacity))
    }

    /// The fast path failed with `first`: wait, and re-create the semaphore if it was removed.
    #[cold]
    fn take_slow(
        &self,
        lane: u16,
        weight: u32,
        until: Until,
        mut found: Found,
        mut refused: Refused,
    ) -> Result<(Found, Held)> {
        let until = until.start();
        let token = reservation_token(self.inner.ns.registration()?.slot, lane, weight);
        for _ in 0..RECREATE_TRIES {
            let (h, held) = self.holder(lane, found)?;
            let outcome = match refused {
                Refused::Removed => Err(Contended::Removed),
                _ => self.take_contended(found, weight, until, h, token, refused),
            };
            match outcome {
                Ok(()) => return Ok((found, held)),
                Err(Contended::Failed(e)) => return Err(e),
                Err(Contended::Removed) => {
                    found = self.recreate(found, lane)?;
                    let rec = self.rec(found);
                    let capacity = rec.capacity.load(Relaxed);
                    check_weight(weight, capacity)?;
                    let (h, held) = self.holder(lane, found)?;
                    let lane_view = Lane {
                        word: &rec.word,
                        holding: &h.holding,
                    };
                    let fair = fair_capacity(rec, capacity, 0);
                    match lane_view.try_take(found.generation, weight, fair, false) {
                        Ok(_) => {
                            note_since(h, weight);
                            return Ok((found, held));
                        }
                        Err(r) => refused = r,
                    }
                }
            }
        }
        Err(self.removed())
    }

    /// Wait for `weight` on `found` after the fast path failed. `token` names this waiter in the
    /// semaphore's fairness reservation.
    #[cold]
    fn take_contended(
        &self,
        found: Found,
        weight: u32,
        until: Until,
        h: &HolderRecord,
        token: u64,
        first: Refused,
    ) -> Result<(), Contended> {
        let rec = self.rec(found);
        let generation = found.generation;
        let lane = Lane {
            word: &rec.word,
            holding: &h.holding,
        };
        let mut seen = match first {
            Refused::Full(w) | Refused::Frozen(w) | Refused::Underflow(w) => w,
            Refused::Removed => return Err(Contended::Removed),
            Refused::Contended => return Err(Contended::Failed(self.contended())),
        };
        if let Until::Now = until {
            let fair = fair_capacity(rec, rec.capacity.load(Relaxed), 0);
            return Err(Contended::Failed(Error::WouldBlock {
                weight,
                available: word::available(seen, fair),
            }));
        }
        // Spin briefly: a holder in another process may be about to release.
        for i in 0..SPINS {
            for _ in 0..(1 << i) {
                std::hint::spin_loop();
            }
            let fair = fair_capacity(rec, rec.capacity.load(Relaxed), 0);
            match lane.try_take(generation, weight, fair, false) {
                Ok(_) => {
                    note_since(h, weight);
                    return Ok(());
                }
                Err(Refused::Removed) => return Err(Contended::Removed),
                Err(_) => {}
            }
        }
        // Sleep. Count ourselves as a waiter in the word so that releases wake us, and show
        // ourselves in the holder record so that `show` and `ps` list us.
        h.wait_since_ms.store(sys::wall_ms(), Relaxed);
        h.wait_weight.store(weight, Relaxed);
        let mut counted = false;
        let mut reserved = false;
        let result = loop {
            if !counted {
                match protocol::count_waiter(&rec.word, generation, weight) {
                    None => break Err(Contended::Removed),
                    Some((_, c)) => counted = c,
                }
            }
            // Fairness: a waiter for more than 1 reserves its weight, so that a stream of small
            // acquires cannot starve it. One reservation at a time; the others queue behind it.
            if weight > 1 && !reserved {
                reserved = rec
                    .reservation
                    .compare_exchange(0, token, Relaxed, Relaxed)
                    .is_ok();
            }
            let capacity = rec.capacity.load(Relaxed);
            if let Err(e) = check_weight(weight, capacity) {
                break Err(Contended::Failed(e));
            }
            let fair = fair_capacity(rec, capacity, token);
            match lane.try_take(generation, weight, fair, counted) {
                Ok(_) => {
                    counted = false; // uncounted by the same step
                    note_since(h, weight);
                    break Ok(());
                }
                Err(Refused::Removed) => break Err(Contended::Removed),
                Err(Refused::Contended) => break Err(Contended::Failed(self.contended())),
                Err(Refused::Full(w) | Refused::Underflow(w) | Refused::Frozen(w)) => seen = w,
            }
            let now = Monotonic::now();
            if let Until::Deadline(deadline, timeout) = until
                && now >= deadline
            {
                break Err(Contended::Failed(Error::Timeout {
                    weight,
                    timeout_ms: timeout.as_millis() as u64,
                }));
            }
            // Bounded: a frozen word or an uncounted waiter polls; everyone re-checks for dead
            // holders at least every BOUNDED_SLEEP, so a releaser killed between giving back and
            // waking cannot strand us.
            let nap = if word::is_frozen(seen) || !counted {
                Duration::from_millis(2)
            } else {
                BOUNDED_SLEEP
            };
            let wake_at = match until {
                Until::Deadline(d, _) => d.min(now.after(nap)),
                _ => now.after(nap),
            };
            if wait::wait(&rec.word, word::value(seen), wake_at) == Waited::TimedOut
                && wake_at < until.deadline()
            {
                self.inner.ns.reclaim_every(BOUNDED_SLEEP);
            }
        };
        if counted {
            protocol::uncount_waiter(&rec.word);
        }
        if reserved {
            let _ = rec.reservation.compare_exchange(token, 0, Relaxed, Relaxed);
            if result.is_err() {
                // What we held back is free for the others again.
                wait::wake(&rec.word, u32::MAX);
            }
        }
        h.wait_weight.store(0, Relaxed);
        result
    }

    fn contended(&self) -> Error {
        Error::corrupt(format!(
            "the state word of semaphore {:?} changed {} times in a row under one operation",
            self.inner.name,
            protocol::MAX_RETRIES
        ))
    }

    fn removed(&self) -> Error {
        Error::Removed {
            name: self.inner.name.to_string(),
        }
    }

    // ===== release =====

    /// Give back `count` on `found` through this thread's lane.
    fn give(&self, found: Found, count: u32) -> Result<()> {
        with_lane(|lane| {
            let (h, _) = self.holder(lane, found)?;
            self.give_on(found, h, count)
        })
    }

    /// Give back `count` on `found` through holder record `h`, which this thread operates.
    #[inline]
    fn give_on(&self, found: Found, h: &HolderRecord, count: u32) -> Result<()> {
        let rec = self.rec(found);
        let lane_view = Lane {
            word: &rec.word,
            holding: &h.holding,
        };
        // Mark the semaphore used, before the Release compare-exchange, so that a sweeper that
        // sees the value at zero also sees the mark and restarts the idle period (see
        // `table::sweep_idle`). A plain store, no clock; skipped when already marked.
        if rec.last_used_ms.load(Relaxed) != USED {
            rec.last_used_ms.store(USED, Relaxed);
        }
        let mut frozen_since = None;
        loop {
            match lane_view.give(found.generation, count) {
                Ok(before) => {
                    match word::wake_count(before, count) {
                        Wake::None => {}
                        Wake::Some(n) => wait::wake(&rec.word, n),
                        Wake::All => wait::wake(&rec.word, u32::MAX),
                    }
                    return Ok(());
                }
                Err(Refused::Frozen(_)) => {
                    // A recount is running. If its recounter died, this release is what notices:
                    // reclaiming takes the recount over (see `holders::reclaim`). Bounded: a
                    // recounter that stays stopped longer than this leaves the weight held, as
                    // a holder that is stopped does, and it comes back when this process exits.
                    let since = *frozen_since.get_or_insert_with(Monotonic::now);
                    if Monotonic::now() >= since.after(FROZEN_PATIENCE) {
                        return Err(Error::corrupt(format!(
                            "semaphore {:?} stayed frozen for {} s; a reclaimer is stuck",
                            self.inner.name,
                            FROZEN_PATIENCE.as_secs()
                        )));
                    }
                    frozen_pause();
                    self.inner.ns.reclaim_every(BOUNDED_SLEEP);
                }
                Err(Refused::Contended) => return Err(self.contended()),
                Err(Refused::Removed) => {
                    // The semaphore is gone; there is nothing to give back to.
                    let held = holding::held(h.holding.load(Relaxed));
                    h.holding
                        .store(holding::of(held.wrapping_sub(count as i64)), Relaxed);
                    return Ok(());
                }
                Err(Refused::Underflow(w)) | Err(Refused::Full(w)) => {
                    return Err(Error::corrupt(format!(
                        "semaphore {:?} has value {} but {count} is being released",
                        self.inner.name,
                        word::value(w)
                    )));
                }
            }
        }
    }
}

/// Why a contended acquire ended without the weight.
#[derive(Debug)]
enum Contended {
    /// The semaphore was removed: the caller may create it again.
    Removed,
    /// Anything else.
    Failed(Error),
}

/// The fairness reservation of waiter `lane` of process slot `slot` for `weight`:
/// `(slot + 1) << 48 | lane << 32 | weight`. Never 0.
#[inline]
fn reservation_token(slot: u32, lane: u16, weight: u32) -> u64 {
    ((slot as u64 + 1) << 48) | ((lane as u64) << 32) | weight as u64
}

/// The capacity left to a taker whose own reservation token is `mine` (0: none): the capacity,
/// less what another waiter has reserved.
#[inline]
fn fair_capacity(rec: &SemRecord, capacity: u32, mine: u64) -> u32 {
    let r = rec.reservation.load(Relaxed);
    if r == 0 || r == mine {
        capacity
    } else {
        capacity.saturating_sub(r as u32)
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

/// Record when a holding began, if this acquire began it: to the second, which costs a third of
/// a millisecond clock on the fast path.
#[inline]
fn note_since(h: &HolderRecord, weight: u32) {
    let held = holding::held(h.holding.load(Relaxed));
    if held > 0 && held <= weight as i64 {
        h.since_ms.store(sys::wall_secs_as_ms(), Relaxed);
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
    Error::WouldBlock {
        weight,
        available: word::available(word, capacity),
    }
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

/// How long an acquire may wait.
#[derive(Debug, Clone, Copy)]
enum Until {
    /// Not at all.
    Now,
    /// A timeout whose clock has not started: the fast path never reads the clock.
    Timeout(Duration),
    /// A started timeout: its absolute deadline, and the timeout for the error message.
    Deadline(Monotonic, Duration),
    /// Forever.
    Forever,
}

impl Until {
    /// Start the clock of a [`Until::Timeout`].
    fn start(self) -> Until {
        match self {
            Until::Timeout(d) => Until::Deadline(Monotonic::now().after(d), d),
            other => other,
        }
    }

    fn deadline(self) -> Monotonic {
        match self {
            Until::Now => Monotonic(0),
            Until::Deadline(d, _) => d,
            Until::Timeout(_) | Until::Forever => Monotonic(u64::MAX),
        }
    }
}

/// Where a holding is recorded, packed in one word (the handle caches the same word):
/// `fork epoch (low 16 bits) << 48 | lane << 32 | holder record`.
#[derive(Debug, Clone, Copy)]
struct Held(u64);

impl Held {
    const EMPTY: u64 = u64::MAX;

    #[inline]
    fn new(epoch: u32, lane: u16, record: u32) -> Held {
        Held(((epoch & 0xFFFF) as u64) << 48 | (lane as u64) << 32 | record as u64)
    }

    /// Made in this process (not inherited through a fork) by `lane`.
    #[inline]
    fn is_current(self, lane: u16) -> bool {
        self.0 != Held::EMPTY
            && self.0 >> 32 == Held::new(sys::FORK_EPOCH.load(Relaxed), lane, 0).0 >> 32
    }

    /// Made in this process, by any lane.
    #[inline]
    fn is_this_process(self) -> bool {
        self.0 >> 48 == (sys::FORK_EPOCH.load(Relaxed) & 0xFFFF) as u64
    }

    #[inline]
    fn lane(self) -> u16 {
        (self.0 >> 32) as u16
    }

    #[inline]
    fn record(self) -> u32 {
        self.0 as u32
    }
}
