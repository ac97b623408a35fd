//! The helper threads that wait for every waiting future of this process, and the futures'
//! registrations with them.
//!
//! A helper (`shmsem-async`) owns up to [`WORDS_PER_HELPER`] semaphore words and sleeps on all
//! of them and its doorbell at once ([`wait::wait_any`]). A future registers on the helper
//! that already watches its word, else on the least loaded one, else on a new one, up to
//! [`MAX_HELPERS`]; words beyond what they can sleep on are polled every [`POLL_NAP`].
//!
//! # The doorbell
//!
//! | bits | meaning |
//! |---|---|
//! | 0 (`ASLEEP`) | the helper is asleep on the doorbell, or about to be: a ring must wake it |
//! | 1.. | rings, counted |
//!
//! A ring adds 2 and wakes the helper only when it found `ASLEEP`: a registration while the
//! helper is awake costs no system call. The helper reads the doorbell before its pass, and
//! sets `ASLEEP` in a compare-exchange against what it read: a ring in between fails it, and
//! the helper makes another pass instead of sleeping. A ring after it changes the word the
//! helper sleeps on, so the sleep returns at once or the ring's wake finds it.

use std::{
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{
            AtomicPtr, AtomicU64,
            Ordering::{AcqRel, Acquire, Relaxed, SeqCst},
        },
    },
    task::Waker,
    time::Duration,
};

use super::{
    super::{BOUNDED_SLEEP, Semaphore, sleep::POLL_NAP},
    watched::{Entry, Word},
};
use crate::{
    namespace::current_lane,
    protocol::{keys::Reservation, word},
    sys,
    wait::{self, Monotonic, Waited},
};

/// The most helper threads a process starts.
pub const MAX_HELPERS: usize = 4;
/// The most semaphore words one helper sleeps on (the doorbell takes the last place).
pub const WORDS_PER_HELPER: usize = wait::MAX_WAIT_ANY - 1;
/// How long a drop waits for the helper's pass that gives up what it held for the future.
const SETTLE_PATIENCE: Duration = Duration::from_millis(200);

/// Set in the doorbell while the helper sleeps on it.
const ASLEEP: u64 = 1;
/// One ring.
const RING: u64 = 2;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a helper and the futures share.
struct Shared {
    words: Vec<Word>,
    /// Passes made; a drop waits for the next one.
    passes: u64,
    next_id: u64,
}

/// One helper thread.
pub(super) struct Helper {
    shared: Mutex<Shared>,
    passed: Condvar,
    doorbell: AtomicU64,
}

/// This process's helpers, for one fork epoch: a forked child starts afresh, and never touches
/// its parent's (whose threads it does not have, and whose locks may be held).
struct Registry {
    epoch: u32,
    helpers: Mutex<Vec<Arc<Helper>>>,
}

static REGISTRY: AtomicPtr<Registry> = AtomicPtr::new(std::ptr::null_mut());

/// The registry of this process's fork epoch. (A parent's is left as it was, leaked: a child
/// makes one per fork at most.)
fn registry() -> &'static Registry {
    let epoch = sys::FORK_EPOCH.load(Relaxed);
    loop {
        let current = REGISTRY.load(Acquire);
        // SAFETY: a non-null pointer in REGISTRY came from `Box::leak` below and is never freed.
        if let Some(r) = unsafe { current.as_ref() }
            && r.epoch == epoch
        {
            return r;
        }
        let fresh = Box::into_raw(Box::new(Registry {
            epoch,
            helpers: Mutex::new(Vec::new()),
        }));
        match REGISTRY.compare_exchange(current, fresh, AcqRel, Acquire) {
            // SAFETY: just leaked into the static; never freed.
            Ok(_) => return unsafe { &*fresh },
            // SAFETY: `fresh` was never shared: take it back.
            Err(_) => drop(unsafe { Box::from_raw(fresh) }),
        }
    }
}

/// A future's registration with a helper. Dropping it unregisters: see
/// [`Registration::drop`].
pub(in crate::semaphore) struct Registration {
    helper: Arc<Helper>,
    id: u64,
    epoch: u32,
    /// The word's key: the address of its record's state word, and the life.
    key: (usize, u64),
    /// Unregistered already, by [`Registration::taken`].
    done: bool,
}

/// The key of the word `sem` acts on now.
fn key_of(sem: &Semaphore) -> (usize, u64, (crate::table::Found, u64)) {
    let at = sem.current();
    let addr = std::ptr::from_ref(&sem.rec(at.0).word) as usize;
    (addr, at.1, at)
}

fn word_key(w: &Word) -> (usize, u64) {
    (std::ptr::from_ref(&w.sem.rec(w.at.0).word) as usize, w.at.1)
}

impl Registration {
    /// Register a future for `weight` on `sem`, to be woken through `waker`; `None` when no
    /// helper thread exists and none can be started (the future then asks to be polled again
    /// at once).
    pub fn new(sem: &Semaphore, weight: u32, waker: &Waker) -> Option<Registration> {
        let registry = registry();
        let (addr, life, at) = key_of(sem);
        let key = (addr, life);
        let helper = {
            let mut helpers = lock(&registry.helpers);
            let has = |h: &Arc<Helper>| lock(&h.shared).words.iter().any(|w| word_key(w) == key);
            let load = |h: &Arc<Helper>| lock(&h.shared).words.len();
            if let Some(h) = helpers.iter().find(|h| has(h)) {
                h.clone()
            } else if let Some(h) = helpers.iter().find(|h| load(h) < WORDS_PER_HELPER) {
                h.clone()
            } else if helpers.len() < MAX_HELPERS
                && let Some(h) = Helper::start()
            {
                helpers.push(h.clone());
                h
            } else {
                helpers.iter().min_by_key(|h| load(h))?.clone()
            }
        };
        let id = {
            let mut shared = lock(&helper.shared);
            let id = shared.next_id;
            shared.next_id += 1;
            let entry = Entry {
                id,
                weight,
                waker: waker.clone(),
                notified: false,
            };
            match shared.words.iter_mut().find(|w| word_key(w) == key) {
                Some(w) => w.entries.push(entry),
                None => {
                    let mut w = Word::new(sem.clone(), at);
                    w.entries.push(entry);
                    shared.words.push(w);
                }
            }
            id
        };
        helper.ring();
        Some(Registration {
            helper,
            id,
            epoch: sys::FORK_EPOCH.load(Relaxed),
            key,
            done: false,
        })
    }

    /// Whether this registration is of this process (not a parent's, inherited by `fork`).
    pub fn is_current(&self) -> bool {
        self.epoch == sys::FORK_EPOCH.load(Relaxed)
    }

    /// Whether this registration is of this process and watches the word `sem` acts on now (an
    /// auto semaphore removed and created again lives in another record, or another life).
    pub fn is_for(&self, sem: &Semaphore) -> bool {
        let (addr, life, _) = key_of(sem);
        self.is_current() && self.key == (addr, life)
    }

    /// The reservation the helper holds for this future, or [`Reservation::NONE`].
    pub fn reserved(&self) -> Reservation {
        if !self.is_current() {
            return Reservation::NONE;
        }
        let shared = lock(&self.helper.shared);
        shared
            .words
            .iter()
            .find(|w| word_key(w) == self.key)
            .map_or(Reservation::NONE, |w| w.reserved_for(self.id))
    }

    /// Polled again and still waiting: wake through `waker` from now on, and be checked again.
    pub fn again(&self, waker: &Waker) {
        {
            let mut shared = lock(&self.helper.shared);
            if let Some(e) = self.entry(&mut shared) {
                if !e.waker.will_wake(waker) {
                    e.waker = waker.clone();
                }
                e.notified = false;
            }
        }
        self.helper.ring();
    }

    /// The future took its weight: unregister, using up the reservation held for it.
    pub fn taken(mut self) {
        self.done = true;
        if !self.is_current() {
            return;
        }
        {
            let mut shared = lock(&self.helper.shared);
            if let Some(w) = shared.words.iter_mut().find(|w| word_key(w) == self.key) {
                w.taken_by(self.id);
                w.entries.retain(|e| e.id != self.id);
            }
        }
        // The helper gives up its count when it finds the word empty; no need to wait for it.
        self.helper.ring();
    }

    fn entry<'s>(&self, shared: &'s mut Shared) -> Option<&'s mut Entry> {
        shared
            .words
            .iter_mut()
            .find(|w| word_key(w) == self.key)?
            .entries
            .iter_mut()
            .find(|e| e.id == self.id)
    }
}

impl Drop for Registration {
    /// A future that did not complete: unregister, and when the helper holds something on the
    /// word for it (a count that nobody else needs, or the reservation), wait for the helper's
    /// next pass, which gives it up: on return nothing of this future is left.
    fn drop(&mut self) {
        if self.done || !self.is_current() {
            return; // taken; or a parent's, whose helper is not ours to touch
        }
        let mut shared = lock(&self.helper.shared);
        let Some(w) = shared.words.iter_mut().find(|w| word_key(w) == self.key) else {
            return;
        };
        let woken = w.entries.iter().any(|e| e.id == self.id && e.notified);
        w.entries.retain(|e| e.id != self.id);
        if woken {
            // Woken for weight it now leaves: whoever else waits may be owed the wake.
            w.pass_wake_on();
        }
        let must_settle = w.entries.is_empty() || w.reserved_for(self.id) != Reservation::NONE;
        if !must_settle {
            return;
        }
        let after = shared.passes + 1;
        drop(shared);
        self.helper.ring();
        let deadline = std::time::Instant::now() + SETTLE_PATIENCE;
        let mut shared = lock(&self.helper.shared);
        while shared.passes < after {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            shared = match self.helper.passed.wait_timeout(shared, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

impl Helper {
    fn new() -> Arc<Helper> {
        Arc::new(Helper {
            shared: Mutex::new(Shared {
                words: Vec::new(),
                passes: 0,
                next_id: 0,
            }),
            passed: Condvar::new(),
            doorbell: AtomicU64::new(0),
        })
    }

    /// Start a helper thread; `None` if the thread cannot be created.
    fn start() -> Option<Arc<Helper>> {
        let helper = Helper::new();
        let h = helper.clone();
        std::thread::Builder::new()
            .name("shmsem-async".into())
            .spawn(move || h.run())
            .ok()?;
        Some(helper)
    }

    /// Tell the helper something changed.
    fn ring(&self) {
        // SeqCst: ordered with the helper's compare-exchange that sets `ASLEEP`.
        let before = self.doorbell.fetch_add(RING, SeqCst);
        if before & ASLEEP != 0 {
            wait::wake(&self.doorbell, 1);
        }
    }

    /// The helper thread: pass over the words, sleep on all of them and the doorbell, forever.
    fn run(self: Arc<Self>) {
        let lane = current_lane();
        loop {
            let bell = self.doorbell.load(SeqCst) & !ASLEEP;
            // The pass, and what to sleep on.
            let (sems, polled) = {
                let mut shared = lock(&self.shared);
                shared.words.retain_mut(|w| w.pass(lane));
                shared.passes += 1;
                self.passed.notify_all();
                let mut polled = shared.words.len() > WORDS_PER_HELPER;
                let sems: Vec<(Semaphore, crate::table::Found, u32)> = shared
                    .words
                    .iter()
                    .take(WORDS_PER_HELPER)
                    .filter(|w| {
                        polled |= w.polled;
                        !w.polled
                    })
                    .map(|w| (w.sem.clone(), w.at.0, word::futex(w.seen)))
                    .collect();
                (sems, polled)
            };
            if self
                .doorbell
                .compare_exchange(bell, bell | ASLEEP, SeqCst, Relaxed)
                .is_err()
            {
                continue; // rung during the pass: another pass first
            }
            let mut words: Vec<(&AtomicU64, u32)> = sems
                .iter()
                .map(|(sem, found, seen)| (&sem.rec(*found).word, *seen))
                .collect();
            words.push((&self.doorbell, (bell | ASLEEP) as u32));
            // Wait in each namespace as a blocking waiter does, so that a watcher reclaims
            // from dead holders and wakes us; where nobody watches, nap and reclaim ourselves.
            let mut namespaces: Vec<&Semaphore> = Vec::new();
            for (sem, _, _) in &sems {
                if !namespaces
                    .iter()
                    .any(|s| Arc::ptr_eq(&s.inner.ns, &sem.inner.ns))
                {
                    namespaces.push(sem);
                }
            }
            let waiting: Vec<_> = namespaces.iter().map(|s| s.inner.ns.waiting()).collect();
            let unwatched = waiting.iter().any(|w| !w.watched());
            let deadline = if polled {
                Some(Monotonic::now().after(POLL_NAP))
            } else if unwatched {
                Some(Monotonic::now().after(BOUNDED_SLEEP))
            } else {
                None
            };
            let waited = match wait::wait_any(&words, deadline) {
                Some(waited) => waited,
                None => {
                    // No `futex_waitv`: poll every word.
                    std::thread::sleep(POLL_NAP);
                    lock(&self.shared)
                        .words
                        .iter_mut()
                        .for_each(|w| w.polled = true);
                    Waited::TimedOut
                }
            };
            drop(waiting);
            self.doorbell.fetch_and(!ASLEEP, SeqCst);
            if waited == Waited::TimedOut && unwatched {
                for sem in &namespaces {
                    sem.inner.ns.reclaim_every(BOUNDED_SLEEP);
                }
            }
            // Polled words: every future there tries again.
            let mut shared = lock(&self.shared);
            shared
                .words
                .iter_mut()
                .enumerate()
                .filter(|(i, w)| w.polled || *i >= WORDS_PER_HELPER)
                .for_each(|(_, w)| w.wake_all());
        }
    }
}
