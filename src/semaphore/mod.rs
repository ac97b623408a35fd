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
    info::{Info, Kind},
    options::Options,
    permit::Permit,
};

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{
            AtomicU64,
            Ordering::{Acquire, Relaxed},
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
    segment::layout::{HolderRecord, SemRecord},
    sys,
    table::{self, Found, KIND_PERSISTENT},
    wait::{self, Monotonic, Waited},
};

/// The longest a waiter sleeps before it looks for dead holders and re-checks.
const BOUNDED_SLEEP: Duration = Duration::from_millis(50);
/// Spins before the first sleep.
const SPINS: u32 = 6;

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
    ns: Arc<Namespace>,
    name: Arc<str>,
    found: Found,
    /// `fork epoch << 48 | lane << 32 | holder record`, the last (lane, record) used through this
    /// handle; `u64::MAX` when empty.
    cache: Arc<AtomicU64>,
    /// Weight taken with [`enter`](Self::enter) and not yet given back with
    /// [`exit`](Self::exit), by this process through any handle of this semaphore.
    unguarded: Arc<AtomicU64>,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("name", &self.name)
            .field("scope", &self.ns.loc.scope)
            .field("namespace", &self.ns.loc.namespace)
            .finish()
    }
}

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

    fn new(ns: Arc<Namespace>, name: &str, found: Found) -> Semaphore {
        Semaphore {
            ns,
            name: name.into(),
            found,
            cache: Arc::new(AtomicU64::new(Held::EMPTY)),
            unguarded: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The semaphore's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The scope it lives in.
    pub fn scope(&self) -> Scope {
        self.ns.loc.scope
    }

    /// The namespace it lives in.
    pub fn namespace(&self) -> &str {
        &self.ns.loc.namespace
    }

    /// The capacity now.
    pub fn capacity(&self) -> u32 {
        self.rec().capacity.load(Relaxed)
    }

    #[inline]
    fn rec(&self) -> &SemRecord {
        // `found.index` came from the table probe, which only yields in-bounds indices.
        self.ns
            .seg
            .sem(self.found.index)
            .unwrap_or_else(|| unreachable!())
    }

    /// This thread's holder record for this semaphore, and the fork epoch it belongs to.
    #[inline]
    fn holder(&self, lane: u16) -> Result<(&HolderRecord, Held)> {
        let held = Held(self.cache.load(Relaxed));
        if held.is_current(lane)
            && let Some(h) = self.ns.seg.holder(held.record())
        {
            return Ok((h, held));
        }
        self.holder_slow(lane)
    }

    #[cold]
    fn holder_slow(&self, lane: u16) -> Result<(&HolderRecord, Held)> {
        let (record, epoch) = self.ns.record(lane, self.found)?;
        let held = Held::new(epoch, lane, record);
        self.cache.store(held.0, Relaxed);
        let h = self
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
        self.take(weight, Until::Forever).map(|held| Permit {
            sem: self,
            weight,
            held,
        })
    }

    /// Wait at most `timeout` for `weight`; [`Error::Timeout`] when it elapses.
    #[inline]
    pub fn acquire_timeout(&self, weight: u32, timeout: Duration) -> Result<Permit<'_>> {
        self.take(weight, Until::Timeout(timeout))
            .map(|held| Permit {
                sem: self,
                weight,
                held,
            })
    }

    /// Take `weight` only if it is available now; [`Error::WouldBlock`] otherwise.
    #[inline]
    pub fn try_acquire(&self, weight: u32) -> Result<Permit<'_>> {
        self.take(weight, Until::Now).map(|held| Permit {
            sem: self,
            weight,
            held,
        })
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
        self.unguarded.fetch_add(weight as u64, Relaxed);
        Ok(())
    }

    /// Give back `count` of the weight taken with [`enter`](Self::enter);
    /// [`Error::NotHeld`] if this process entered less, and nothing changes then.
    pub fn exit(&self, count: u32) -> Result<()> {
        if count == 0 {
            return Err(Error::invalid("release count 0; give back at least 1"));
        }
        self.unguarded
            .fetch_update(Relaxed, Relaxed, |held| held.checked_sub(count as u64))
            .map_err(|held| Error::NotHeld { count, held })?;
        self.give(count).inspect_err(|_| {
            self.unguarded.fetch_add(count as u64, Relaxed);
        })
    }

    /// Capacity, value, kind, holders and waiters now.
    pub fn info(&self) -> Result<Info> {
        let rec = self.rec();
        if !table::is_current(rec, self.found.generation) {
            return Err(Error::Removed {
                name: self.name.to_string(),
            });
        }
        let w = rec.word.load(Acquire);
        let (holders, waiters) = holders::parties(&self.ns.seg, self.found);
        let flags = rec.flags.load(Relaxed);
        Ok(Info {
            name: self.name.to_string(),
            scope: self.ns.loc.scope,
            namespace: self.ns.loc.namespace.clone(),
            kind: if flags & KIND_PERSISTENT != 0 {
                Kind::Persistent
            } else {
                Kind::Auto
            },
            idle_ms: rec.idle_ms.load(Relaxed),
            capacity: rec.capacity.load(Relaxed),
            value: word::value(w),
            holders,
            waiters,
        })
    }

    /// Remove the semaphore. Refuses with [`Error::InUse`] while anything is held, unless
    /// `force`; sleepers wake and get [`Error::Removed`].
    pub fn remove(&self, force: bool) -> Result<()> {
        let rec = self.rec();
        self.ns.with_table_lock(|ctx| {
            if !table::is_current(rec, self.found.generation) {
                return Err(Error::NotFound {
                    name: self.name.to_string(),
                });
            }
            let value = word::value(rec.word.load(Acquire));
            if value != 0 && !force {
                return Err(Error::InUse {
                    name: self.name.to_string(),
                    value,
                });
            }
            table::remove(ctx.seg, self.found);
            Ok(())
        })?;
        wait::wake(&rec.word, u32::MAX);
        Ok(())
    }

    // ===== acquire =====

    /// Take `weight` through this thread's lane; returns where the holding is recorded.
    #[inline]
    fn take(&self, weight: u32, until: Until) -> Result<Held> {
        match current_lane() {
            Some(lane) => self.take_on(lane, weight, until),
            None => with_lane(|lane| self.take_on(lane, weight, until)),
        }
    }

    #[inline]
    fn take_on(&self, lane: u16, weight: u32, until: Until) -> Result<Held> {
        let rec = self.rec();
        let capacity = rec.capacity.load(Relaxed);
        check_weight(weight, capacity)?;
        let (h, held) = self.holder(lane)?;
        let lane_view = Lane {
            word: &rec.word,
            holding: &h.holding,
        };
        match lane_view.try_take(self.found.generation, weight, capacity, false) {
            Ok(_) => {
                note_since(h, weight);
                Ok(held)
            }
            Err(refused) => self
                .take_contended(weight, until.start(), h, refused)
                .map(|()| held),
        }
    }

    #[cold]
    fn take_contended(
        &self,
        weight: u32,
        until: Until,
        h: &HolderRecord,
        first: Refused,
    ) -> Result<()> {
        let rec = self.rec();
        let generation = self.found.generation;
        let lane = Lane {
            word: &rec.word,
            holding: &h.holding,
        };
        let mut seen = match first {
            Refused::Full(w) | Refused::Frozen(w) | Refused::Underflow(w) => w,
            Refused::Removed => return Err(self.removed()),
        };
        if let Until::Now = until {
            return Err(Error::WouldBlock {
                weight,
                available: word::available(seen, rec.capacity.load(Relaxed)),
            });
        }
        // Spin briefly: a holder in another process may be about to release.
        for i in 0..SPINS {
            for _ in 0..(1 << i) {
                std::hint::spin_loop();
            }
            match lane.try_take(generation, weight, rec.capacity.load(Relaxed), false) {
                Ok(_) => return self.taken(h, weight),
                Err(Refused::Removed) => return Err(self.removed()),
                Err(_) => {}
            }
        }
        // Sleep. Count ourselves as a waiter in the word so that releases wake us, and show
        // ourselves in the holder record so that `show` and `ps` list us.
        h.wait_since_ms.store(sys::wall_ms(), Relaxed);
        h.wait_weight.store(weight, Relaxed);
        let mut counted = false;
        let result = loop {
            if !counted {
                match protocol::count_waiter(&rec.word, generation, weight) {
                    None => break Err(self.removed()),
                    Some((_, c)) => counted = c,
                }
            }
            let capacity = rec.capacity.load(Relaxed);
            if let Err(e) = check_weight(weight, capacity) {
                break Err(e);
            }
            match lane.try_take(generation, weight, capacity, counted) {
                Ok(_) => {
                    counted = false; // uncounted by the same step
                    break self.taken(h, weight);
                }
                Err(Refused::Removed) => break Err(self.removed()),
                Err(Refused::Full(w) | Refused::Underflow(w)) => seen = w,
                Err(Refused::Frozen(w)) => seen = w,
            }
            let now = Monotonic::now();
            if let Until::Deadline(deadline, timeout) = until
                && now >= deadline
            {
                break Err(Error::Timeout {
                    weight,
                    timeout_ms: timeout.as_millis() as u64,
                });
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
                self.ns.reclaim_every(BOUNDED_SLEEP);
            }
        };
        if counted {
            protocol::uncount_waiter(&rec.word);
        }
        h.wait_weight.store(0, Relaxed);
        result
    }

    fn taken(&self, h: &HolderRecord, weight: u32) -> Result<()> {
        note_since(h, weight);
        Ok(())
    }

    fn removed(&self) -> Error {
        Error::Removed {
            name: self.name.to_string(),
        }
    }

    // ===== release =====

    /// Give back `count` through this thread's lane.
    fn give(&self, count: u32) -> Result<()> {
        with_lane(|lane| {
            let (h, _) = self.holder(lane)?;
            self.give_on(h, count)
        })
    }

    /// Give back `count` through holder record `h`, which this thread operates.
    #[inline]
    fn give_on(&self, h: &HolderRecord, count: u32) -> Result<()> {
        {
            let rec = self.rec();
            let lane_view = Lane {
                word: &rec.word,
                holding: &h.holding,
            };
            loop {
                match lane_view.give(self.found.generation, count) {
                    Ok(Wake::None) => return Ok(()),
                    Ok(Wake::Some(n)) => {
                        wait::wake(&rec.word, n);
                        return Ok(());
                    }
                    Ok(Wake::All) => {
                        wait::wake(&rec.word, u32::MAX);
                        return Ok(());
                    }
                    Err(Refused::Frozen(_)) => frozen_pause(),
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
                            self.name,
                            word::value(w)
                        )));
                    }
                }
            }
        }
    }
}

/// Record when a holding began, if this acquire began it.
#[inline]
fn note_since(h: &HolderRecord, weight: u32) {
    if holding::held(h.holding.load(Relaxed)) == weight as i64 {
        h.since_ms.store(sys::wall_ms(), Relaxed);
    }
}

fn check_weight(weight: u32, capacity: u32) -> Result<()> {
    if weight == 0 {
        return Err(Error::invalid("weight 0; ask for at least 1"));
    }
    if weight > capacity {
        return Err(Error::WeightTooLarge { weight, capacity });
    }
    Ok(())
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
