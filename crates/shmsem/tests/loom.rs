//! Loom models of the counter protocol on plain memory: each process is a loom thread, the
//! segment is a few loom atomics, and the futex is a condition variable.
//!
//! Run with the `model` feature (it is part of `cargo test --release --all-features`):
//!
//! ```text
//! cargo test --release -p shmsem --features model --test loom
//! ```
//!
//! A killed process is modelled by [`Mortal`]: a view of the shared atomics whose writes, after
//! the `k`-th one, silently do nothing. The victim's code runs on, but from its `k`-th shared
//! write on nothing it does reaches memory, exactly like a process SIGKILLed between two writes.
//! Every `k` from 0 to the number of writes of a full acquire + release is checked.
#![cfg(feature = "model")]

use std::sync::atomic::Ordering;

use std::cell::Cell;

use loom::{
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicU32, AtomicU64},
    },
    thread,
};
use shmsem::internals::{
    protocol::{self, Atomic64, Counted, Lane, NoHook, Operator, Recount, Refused, holding},
    word::{self, Wake},
};

/// A shared 64-bit cell.
struct Cell64(AtomicU64);

impl Cell64 {
    fn new(v: u64) -> Arc<Cell64> {
        Arc::new(Cell64(AtomicU64::new(v)))
    }
}

impl Atomic64 for Cell64 {
    fn load(&self, order: Ordering) -> u64 {
        self.0.load(order)
    }
    fn store(&self, value: u64, order: Ordering) {
        self.0.store(value, order)
    }
    fn compare_exchange(&self, c: u64, n: u64, ok: Ordering, err: Ordering) -> Result<u64, u64> {
        self.0.compare_exchange(c, n, ok, err)
    }
}

/// The victim's view of a cell: writes past its budget are dropped (the process is dead).
/// A dropped compare-exchange reports success, so the dead code runs to its end without
/// looping; it just never changes memory again.
struct Mortal<'a> {
    cell: &'a Cell64,
    budget: &'a Cell<u32>,
}

impl<'a> Mortal<'a> {
    fn new(cell: &'a Cell64, budget: &'a Cell<u32>) -> Self {
        Mortal { cell, budget }
    }

    fn alive(&self) -> bool {
        let left = self.budget.get();
        if left == 0 {
            return false;
        }
        self.budget.set(left - 1);
        true
    }
}

impl Atomic64 for Mortal<'_> {
    fn load(&self, order: Ordering) -> u64 {
        self.cell.load(order)
    }
    fn store(&self, value: u64, order: Ordering) {
        if self.alive() {
            self.cell.store(value, order)
        }
    }
    fn compare_exchange(&self, c: u64, n: u64, ok: Ordering, err: Ordering) -> Result<u64, u64> {
        if self.budget.get() == 0 {
            return Ok(c);
        }
        let r = self.cell.compare_exchange(c, n, ok, err);
        if r.is_ok() {
            self.alive();
        }
        r
    }
}

/// Shared writes of an uncontended acquire + release: mark, CAS, store; mark, CAS, store.
const WRITES: u32 = 6;

/// Release as `Semaphore::give_on` does: a frozen word means wait for the recount and retry.
fn release<A: Atomic64>(lane: &Lane<'_, A>, count: u32) {
    loop {
        match lane.give(0, count) {
            Ok(_) => return,
            Err(Refused::Frozen(_)) => thread::yield_now(),
            Err(other) => panic!("{other:?}"),
        }
    }
}

/// A loom model checking every interleaving with at most `preemptions` preemptions.
fn check(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder.check(f);
}

/// Recount generation `generation` of `word` over `records` (each with who operates it), as a
/// reclaimer does. A `patient` reclaimer yields each time it waits for busy records to settle;
/// an impatient one settles at once.
fn recount_over<A: Atomic64>(
    word: &A,
    generation: u16,
    records: &[(&A, Operator)],
    patient: bool,
) -> Recount {
    protocol::recount(
        word,
        generation,
        NoHook,
        || {
            records
                .iter()
                .map(|&(holding, operator)| Counted { holding, operator })
                .collect()
        },
        || {
            if patient {
                thread::yield_now();
            }
            true
        },
    )
}

/// Try to acquire 1 of a capacity-1 semaphore through `lane`; if granted, check that nobody
/// else is `inside` while it holds, then release.
fn hold_once_alone(lane: &Lane<'_, Cell64>, inside: &AtomicU32) {
    if lane.try_take(0, 1, 1, false).is_ok() {
        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "over-granted");
        inside.fetch_sub(1, Ordering::SeqCst);
        release(lane, 1);
    }
}

/// SIGKILL at every write of an acquire + release, with a live lane and a newcomer contending
/// and a reclaimer recounting concurrently: never more than the capacity is granted, and at the
/// end the value equals what live holders hold.
#[test]
fn kill_at_every_write_then_recount() {
    // The victim acquires and releases through the slow paths' `try_take` and `give`, then
    // through the fast paths' `take_quiet` and `give_once`: the same brackets, so the same
    // recount must hold for both.
    for (k, once) in (0..=WRITES).flat_map(|k| [(k, false), (k, true)]) {
        check(2, move || {
            let word = Cell64::new(word::empty(0));
            let victim = Cell64::new(0);
            let live = Cell64::new(0);
            let newcomer = Cell64::new(0);
            // How many processes believe they hold the (capacity 1) semaphore.
            let inside = Arc::new(AtomicU32::new(0));

            // The victim: acquire and release, dying after `k` writes.
            let v = {
                let (word, victim) = (word.clone(), victim.clone());
                thread::spawn(move || {
                    let budget = Cell::new(k);
                    let w = Mortal::new(&word, &budget);
                    let h = Mortal::new(&victim, &budget);
                    let lane = Lane::new(&w, &h);
                    let took = if once {
                        lane.take_quiet(word::empty(0), 1, 1).is_some()
                    } else {
                        lane.try_take(0, 1, 1, false).is_ok()
                    };
                    if took && !(once && lane.give_once(word::empty(0), 1).is_some()) {
                        let _ = lane.give(0, 1);
                    }
                })
            };
            // A live process holding briefly.
            let l = {
                let (word, live, inside) = (word.clone(), live.clone(), inside.clone());
                thread::spawn(move || {
                    hold_once_alone(&Lane::new(&*word, &*live), &inside);
                })
            };
            v.join().unwrap();
            // The victim is dead: recount, treating the live lane as live.
            let out = recount_over(
                &*word,
                0,
                &[(&*victim, Operator::Dead), (&*live, Operator::Live)],
                true,
            );
            assert!(matches!(out, Recount::Done { .. }), "{out:?}");
            // A newcomer after the recount.
            hold_once_alone(&Lane::new(&*word, &*newcomer), &inside);
            l.join().unwrap();
            let end = word.load(Ordering::SeqCst);
            let held = holding::held(live.load(Ordering::SeqCst))
                + holding::held(newcomer.load(Ordering::SeqCst));
            assert_eq!(
                word::value(end) as i64,
                held,
                "value != sum of live holders"
            );
            assert!(!word::is_frozen(end));
            assert_eq!(victim.load(Ordering::SeqCst), 0, "dead record not cleared");
        });
    }
}

/// A reclaimer killed mid-recount leaves the word frozen; the next recount adopts it and
/// restores the exact value.
#[test]
fn killed_recounter_is_taken_over() {
    for k in 0..=3 {
        loom::model(move || {
            let word = Cell64::new(word::with_value(word::empty(0), 2));
            let dead = Cell64::new(holding::of(1));
            let live = Cell64::new(holding::of(1));
            let r = {
                let (word, dead, live) = (word.clone(), dead.clone(), live.clone());
                thread::spawn(move || {
                    let budget = Cell::new(k);
                    let w = Mortal::new(&word, &budget);
                    let d = Mortal::new(&dead, &budget);
                    let l = Mortal::new(&live, &budget);
                    recount_over(&w, 0, &[(&d, Operator::Dead), (&l, Operator::Live)], false);
                })
            };
            r.join().unwrap();
            let out = recount_over(
                &*word,
                0,
                &[(&*dead, Operator::Dead), (&*live, Operator::Live)],
                false,
            );
            assert_eq!(
                out,
                Recount::Done {
                    before: if k >= 3 { 1 } else { 2 },
                    after: 1
                }
            );
            assert_eq!(
                word.load(Ordering::SeqCst),
                word::with_value(word::empty(0), 1)
            );
        });
    }
}

/// The futex, modelled: a condition variable for the whole segment.
struct Futex {
    lock: Mutex<()>,
    cv: Condvar,
}

impl Futex {
    fn new() -> Arc<Futex> {
        Arc::new(Futex {
            lock: Mutex::new(()),
            cv: Condvar::new(),
        })
    }

    /// Sleep while the futex half of `word` is `expected` (the kernel's check and sleep are
    /// atomic with respect to wakes, as the lock makes them here).
    fn wait(&self, word: &Cell64, expected: u32) {
        let guard = self.lock.lock().unwrap();
        if word::futex(word.load(Ordering::SeqCst)) == expected {
            drop(self.cv.wait(guard).unwrap());
        }
    }
    /// Wake as `FUTEX_WAKE` would: `n` sleepers for `Some(n)`, every one for `All`.
    fn wake(&self, wake: Wake) {
        let _guard = self.lock.lock().unwrap();
        match wake {
            Wake::None => {}
            Wake::Some(n) => (0..n).for_each(|_| self.cv.notify_one()),
            Wake::All => self.cv.notify_all(),
        }
    }
}

/// Release `weight` through `lane` and wake as `Semaphore::give_on` does.
fn release_and_wake(lane: &Lane<'_, Cell64>, futex: &Futex, weight: u32) {
    let before = lane.give(0, weight).unwrap();
    futex.wake(word::wake_count(before, weight));
}

/// The blocking path as `Semaphore::take_contended` runs it: count as a waiter, re-check,
/// announce the sleep (`SLEEPING`) and sleep on the futex half seen; take and uncount in one
/// step.
fn acquire_blocking(word: &Cell64, rec: &Cell64, futex: &Futex, weight: u32, capacity: u32) {
    let lane = Lane::new(word, rec);
    if lane.try_take(0, weight, capacity, false).is_ok() {
        return;
    }
    let (_, counted) = lane.count_waiter(0, weight).unwrap();
    assert!(counted);
    assert!(holding::is_counted(rec.load(Ordering::SeqCst)));
    loop {
        match lane.try_take(0, weight, capacity, true) {
            Ok(_) => {
                assert!(!holding::is_counted(rec.load(Ordering::SeqCst)));
                return;
            }
            // Announce the sleep against the word seen, and sleep on value and flag together;
            // a word that moved meanwhile is looked at again.
            Err(Refused::Full(seen)) => {
                if let Ok(announced) = protocol::announce_sleep(word, seen) {
                    futex.wait(word, word::futex(announced));
                }
            }
            Err(other) => panic!("{other:?}"),
        }
    }
}

/// Processes waiting for `weights` on a semaphore of `capacity`, held whole by another: the
/// holder releases, each waiter gets its weight in turn and releases it. Loom reports a
/// deadlock if a wake-up is ever lost. At the end nothing is held, nobody is counted as waiting,
/// and `HEAVY` is clear.
fn waiters_behind_a_holder(capacity: u32, weights: &'static [u32]) {
    check(2, move || {
        let word = Cell64::new(word::empty(0));
        let futex = Futex::new();
        let holder = Cell64::new(0);
        Lane::new(&*word, &*holder)
            .try_take(0, capacity, capacity, false)
            .unwrap();
        let waiters: Vec<_> = weights
            .iter()
            .map(|&weight| {
                let (word, futex) = (word.clone(), futex.clone());
                thread::spawn(move || {
                    let rec = Cell64::new(0);
                    acquire_blocking(&word, &rec, &futex, weight, capacity);
                    release_and_wake(&Lane::new(&*word, &*rec), &futex, weight);
                })
            })
            .collect();
        release_and_wake(&Lane::new(&*word, &*holder), &futex, capacity);
        for w in waiters {
            w.join().unwrap();
        }
        let end = word.load(Ordering::SeqCst);
        assert_eq!(word::value(end), 0);
        assert_eq!(word::waiters(end), 0);
        assert!(!word::is_heavy(end));
    });
}

/// Two processes block on a capacity-1 semaphore held by a third: every release wakes a waiter.
#[test]
fn no_lost_wakeups() {
    waiters_behind_a_holder(1, &[1, 1]);
}

/// A waiter that announced its sleep while a holder releases and takes the weight straight
/// back: the release woke nobody (the waiter was not asleep yet) and cleared `SLEEPING`, and the
/// value is back to what the waiter saw. The waiter sleeps on value and flag together, so its
/// sleep returns at once; had it slept on the value alone, the holder's next release (which sees
/// no `SLEEPING` and wakes nobody) would leave it asleep for good, which loom reports.
#[test]
fn a_release_and_retake_before_the_waiter_sleeps_loses_no_wake() {
    check(3, || {
        let word = Cell64::new(word::empty(0));
        let futex = Futex::new();
        let holder = Cell64::new(0);
        let h = Lane::new(&*word, &*holder);
        h.try_take(0, 1, 1, false).unwrap();
        let waiter = {
            let (word, futex) = (word.clone(), futex.clone());
            thread::spawn(move || {
                let rec = Cell64::new(0);
                acquire_blocking(&word, &rec, &futex, 1, 1);
                release_and_wake(&Lane::new(&*word, &*rec), &futex, 1);
            })
        };
        release_and_wake(&h, &futex, 1);
        // Straight back, uncounted, as a fast or spinning acquire takes it.
        if h.try_take(0, 1, 1, false).is_ok() {
            release_and_wake(&h, &futex, 1);
        }
        waiter.join().unwrap();
        assert_eq!(word::value(word.load(Ordering::SeqCst)), 0);
    });
}

/// A weight-2 waiter and a weight-1 waiter on capacity 2, both blocked behind a holder of 2: the
/// release wakes both (`HEAVY`), and both finish.
#[test]
fn heavy_waiters_are_all_woken() {
    waiters_behind_a_holder(2, &[2, 1]);
}

/// An unforced removal racing a lane's acquire + release, twice (DESIGN §3, bug 1): a removal
/// succeeds only while the lane does not hold. The remover retries while the semaphore is in use,
/// as a loop of `remove(false)` does, so it always ends removed: each of the lane's acquires
/// either comes before the removal and is released before the removal's compare-exchange, or
/// comes after it and is refused (`Removed`). Never does the lane hold weight on a removed
/// semaphore. Two witnesses: the lane's `inside` flag (set after its acquire, cleared before its
/// release), read by the remover right after its removal succeeds; and the lane itself, which
/// finds its semaphore still there while it holds and its release accepted. A removal that
/// stored its word instead of comparing it, or that ignored the value, fails both.
#[test]
fn unforced_remove_never_removes_a_held_semaphore() {
    check(2, || {
        let word = Cell64::new(word::empty(0));
        let rec = Cell64::new(0);
        let inside = Arc::new(AtomicU32::new(0));
        let user = {
            let (word, rec, inside) = (word.clone(), rec.clone(), inside.clone());
            thread::spawn(move || {
                let lane = Lane::new(&*word, &*rec);
                for _ in 0..2 {
                    match lane.try_take(0, 1, 1, false) {
                        Ok(_) => {}
                        Err(Refused::Removed) => return,
                        Err(other) => panic!("{other:?}"),
                    }
                    inside.store(1, Ordering::SeqCst);
                    assert_eq!(
                        word::generation(word.load(Ordering::SeqCst)),
                        0,
                        "removed while the lane holds"
                    );
                    inside.store(0, Ordering::SeqCst);
                    assert_eq!(
                        lane.give(0, 1).map(|_| ()),
                        Ok(()),
                        "the release found its semaphore removed"
                    );
                }
            })
        };
        loop {
            match protocol::remove(&*word, 0, false) {
                Ok(()) => break,
                // Refused only because the lane holds.
                Err(protocol::Kept::InUse(1)) => thread::yield_now(),
                Err(other) => panic!("{other:?}"),
            }
        }
        assert_eq!(
            inside.load(Ordering::SeqCst),
            0,
            "removed while the lane holds"
        );
        user.join().unwrap();
        // Sound while the word is only ever compare-exchanged. Loom does not order a plain store
        // after the read-modify-writes it raced (tokio-rs/loom#389), so with a removal that
        // stores the word this load may read the lane's last release even when the removal came
        // after it; the witnesses above catch such a removal on their own.
        assert_eq!(word.load(Ordering::SeqCst), word::empty(1));
        assert_eq!(rec.load(Ordering::SeqCst), 0, "record left holding or busy");
    });
}

/// A reclaimer recounts generation 0 (its victim died holding 1) while another process removes
/// the semaphore by force, re-creates it (a compare-exchange from the tombstone word, generation
/// 1, to an empty word of generation `new_generation`), acquires 1 on the new semaphore and
/// recounts the new generation itself (DESIGN §3, bug 2). The old recount never changes the new
/// generation's word: the newcomer's acquire is never refused, the new recount finds its word
/// as it froze it, and at the end the value is exactly what the newcomer holds. An unfreeze that
/// ignored the generation would write the old sum (0) over it.
fn recount_races_remove_and_recreate(new_generation: u16) {
    check(2, move || {
        let word = Cell64::new(word::with_value(word::empty(0), 1));
        let victim = Cell64::new(holding::of(1));
        let newcomer = Cell64::new(0);
        let other = {
            let (word, newcomer) = (word.clone(), newcomer.clone());
            thread::spawn(move || {
                // Forced: succeeds whether or not the word is frozen.
                assert_eq!(protocol::remove(&*word, 0, true), Ok(()));
                word.compare_exchange(
                    word::empty(1),
                    word::empty(new_generation),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .expect("the tombstone word changed");
                let lane = Lane::new(&*word, &*newcomer);
                lane.try_take(new_generation, 1, 1, false)
                    .expect("the new semaphore refused its first acquire");
                let out = recount_over(
                    &*word,
                    new_generation,
                    &[(&*newcomer, Operator::Live)],
                    false,
                );
                assert_eq!(
                    out,
                    Recount::Done {
                        before: 1,
                        after: 1
                    },
                    "the new generation's recount was disturbed"
                );
            })
        };
        let out = recount_over(&*word, 0, &[(&*victim, Operator::Dead)], true);
        assert!(
            matches!(
                out,
                Recount::Done {
                    before: 1,
                    after: 0
                } | Recount::Removed
            ),
            "{out:?}"
        );
        other.join().unwrap();
        let held = holding::held(newcomer.load(Ordering::SeqCst));
        assert_eq!(held, 1);
        assert_eq!(
            word.load(Ordering::SeqCst),
            word::with_value(word::empty(new_generation), held as u32),
            "the new generation's word is not what its holder holds"
        );
    });
}

/// Re-created in the generation `protocol::remove` leaves in the word.
#[test]
fn recount_never_touches_a_recreated_semaphore() {
    recount_races_remove_and_recreate(1);
}

/// Re-created in the generation after the tombstone's, as `table::insert_life` picks for a
/// record whose slot is a tombstone.
#[test]
fn recount_never_touches_a_semaphore_recreated_past_its_tombstone() {
    recount_races_remove_and_recreate(2);
}

/// Shared writes of a waiter counting itself: mark, CAS, store.
const COUNT_WRITES: u32 = 3;

/// Retry an operation refused because a recount runs, as the blocking path waits for it.
fn unfrozen<T>(mut op: impl FnMut() -> Result<T, Refused>) -> T {
    loop {
        match op() {
            Ok(t) => return t,
            Err(Refused::Frozen(_)) => thread::yield_now(),
            Err(other) => panic!("{other:?}"),
        }
    }
}

/// A waiter for 2 counts itself (`HEAVY`) and is SIGKILLed after each of its writes, while a live
/// waiter for 1 counts itself and gives up (uncounts) and a reclaimer recounts, with a live
/// holder holding the whole capacity (DESIGN §3, bug 8). The live waiter's count is never lost: as
/// long as it is counted, the word shows a waiter. After the recount, the word counts only live
/// counted waiters: once the live one has uncounted, no waiter and no `HEAVY` is left, whatever
/// the dead one did.
#[test]
fn killed_waiter_is_uncounted_by_the_recount() {
    for k in 0..=COUNT_WRITES {
        check(2, move || {
            let word = Cell64::new(word::with_value(word::empty(0), 2));
            let holder = Cell64::new(holding::of(2));
            let victim = Cell64::new(0);
            let live = Cell64::new(0);
            let v = {
                let (word, victim) = (word.clone(), victim.clone());
                thread::spawn(move || {
                    let budget = Cell::new(k);
                    let w = Mortal::new(&word, &budget);
                    let h = Mortal::new(&victim, &budget);
                    let lane = Lane::new(&w, &h);
                    let _ = lane.count_waiter(0, 2);
                })
            };
            let l = {
                let (word, live) = (word.clone(), live.clone());
                thread::spawn(move || {
                    let lane = Lane::new(&*word, &*live);
                    let (_, counted) = unfrozen(|| lane.count_waiter(0, 1));
                    assert!(counted);
                    assert!(
                        word::waiters(word.load(Ordering::SeqCst)) >= 1,
                        "a live waiter's count was lost"
                    );
                    unfrozen(|| lane.uncount_waiter(0));
                })
            };
            v.join().unwrap();
            let out = recount_over(
                &*word,
                0,
                &[
                    (&*holder, Operator::Live),
                    (&*victim, Operator::Dead),
                    (&*live, Operator::Live),
                ],
                true,
            );
            assert_eq!(
                out,
                Recount::Done {
                    before: 2,
                    after: 2
                }
            );
            l.join().unwrap();
            let end = word.load(Ordering::SeqCst);
            assert_eq!(word::waiters(end), 0, "a dead waiter is still counted");
            assert!(!word::is_heavy(end), "a dead waiter's HEAVY is left");
            assert_eq!(end, word::with_value(word::empty(0), 2));
            assert_eq!(victim.load(Ordering::SeqCst), 0, "dead record not cleared");
            assert_eq!(live.load(Ordering::SeqCst), 0);
        });
    }
}

/// The reclaim's liveness, modelled: a process slot's lock byte (held by whoever operates the
/// slot's records, let go by the kernel when that process dies) and whether the slot's holder
/// lives. A probe answers as the engine's `Liveness` does, and keeps the byte when the answer
/// lets the caller reclaim.
struct SlotLiveness {
    byte: Mutex<()>,
    holder_lives: bool,
}

/// What a probe of a slot answers (the engine's `Probe`, less `Free`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// Someone holds the byte: a live process operates the slot's records; leave them.
    Operated,
    /// The byte is free and the holder lives: nobody operates its records.
    Quiescent,
    /// The byte is free and the holder is dead.
    Dead,
}

impl SlotLiveness {
    fn probe(&self) -> (Probe, Option<loom::sync::MutexGuard<'_, ()>>) {
        match self.byte.try_lock() {
            Err(_) => (Probe::Operated, None),
            Ok(byte) if self.holder_lives => (Probe::Quiescent, Some(byte)),
            Ok(byte) => (Probe::Dead, Some(byte)),
        }
    }
}

/// A process acting for a live external holder (`acquire --holder`) is SIGKILLed after each of
/// the writes of an acquire + release on the holder's record, while a live lane takes and
/// releases and a reclaimer probes the slot. While the actor lives the probe says `Operated` and
/// the reclaimer leaves the record alone; once the actor is dead its byte is free and the holder
/// still lives, so the probe says `Quiescent` and the recount rolls the abandoned change back or
/// forward rather than clearing the record. Afterwards the holder holds exactly what the actor's
/// completed steps gave it, the word's value is what the records hold, and a newcomer gets the
/// capacity-1 semaphore if and only if the holder holds nothing.
#[test]
fn a_killed_actor_for_a_live_holder_is_settled_by_the_reclaim_its_probe_allows() {
    for k in 0..=WRITES {
        check(2, move || {
            let word = Cell64::new(word::empty(0));
            let (external, live, newcomer) = (Cell64::new(0), Cell64::new(0), Cell64::new(0));
            let slot = Arc::new(SlotLiveness {
                byte: Mutex::new(()),
                holder_lives: true,
            });
            let acting = Arc::new(AtomicU32::new(0));
            let took = Arc::new(AtomicU32::new(0));
            let inside = Arc::new(AtomicU32::new(0));

            // The actor takes the slot's byte, acquires and releases for the holder and dies
            // after `k` writes; the byte goes with it.
            let actor = {
                let (word, external, slot, acting, took) = (
                    word.clone(),
                    external.clone(),
                    slot.clone(),
                    acting.clone(),
                    took.clone(),
                );
                thread::spawn(move || {
                    let _byte = slot.byte.lock().unwrap();
                    acting.store(1, Ordering::SeqCst);
                    let budget = Cell::new(k);
                    let (w, h) = (Mortal::new(&word, &budget), Mortal::new(&external, &budget));
                    let lane = Lane::new(&w, &h);
                    if lane.try_take(0, 1, 1, false).is_ok() {
                        took.store(1, Ordering::SeqCst);
                        let _ = lane.give(0, 1);
                    }
                })
            };
            let l = {
                let (word, live, inside) = (word.clone(), live.clone(), inside.clone());
                thread::spawn(move || hold_once_alone(&Lane::new(&*word, &*live), &inside))
            };
            // The reclaimer probes until the probe lets it in, and recounts as it says.
            while acting.load(Ordering::SeqCst) == 0 {
                thread::yield_now();
            }
            let (probe, _byte) = loop {
                match slot.probe() {
                    (Probe::Operated, _) => thread::yield_now(),
                    answer => break answer,
                }
            };
            assert_eq!(probe, Probe::Quiescent, "the holder lives");
            let out = recount_over(
                &*word,
                0,
                &[(&*external, Operator::Quiescent), (&*live, Operator::Live)],
                true,
            );
            assert!(matches!(out, Recount::Done { .. }), "{out:?}");
            actor.join().unwrap();
            l.join().unwrap();
            let kept = external.load(Ordering::SeqCst);
            assert!(!holding::is_busy(kept), "the abandoned mark was settled");
            // Only an actor killed between its acquire's closing store and its release's mark
            // (after write 3) leaves the holder holding; every other death undoes or completes
            // the change the actor was making.
            let holds = k == 3 && took.load(Ordering::SeqCst) == 1;
            assert_eq!(
                holding::held(kept),
                i64::from(holds),
                "what the holder holds"
            );
            let end = word.load(Ordering::SeqCst);
            assert!(!word::is_frozen(end));
            assert_eq!(
                word::value(end) as i64,
                holding::held(kept) + holding::held(live.load(Ordering::SeqCst)),
                "value != what the records hold"
            );
            let took_after = Lane::new(&*word, &*newcomer)
                .try_take(0, 1, 1, false)
                .is_ok();
            assert_eq!(
                took_after, !holds,
                "a newcomer gets the semaphore exactly when the holder holds nothing"
            );
        });
    }
}

/// The futexes of the async model, as the kernel keeps them: each sleeper waits on its own
/// keys (a semaphore word, the helper's doorbell, or both for `futex_waitv`), and a wake of a
/// word wakes that many of the sleepers on it, the longest asleep first; a ring of the doorbell
/// wakes only the helper. (The model of the blocking tests, one condition variable for all,
/// would let the doorbell's ring wake a blocking waiter too, and hide a wake the helper took
/// from it.)
struct Futexes {
    /// Sleepers in the order they went to sleep: (id, on the word, on the doorbell, woken).
    sleepers: Mutex<Vec<(usize, bool, bool, bool)>>,
    cv: Condvar,
}

impl Futexes {
    fn new() -> Arc<Futexes> {
        Arc::new(Futexes {
            sleepers: Mutex::new(Vec::new()),
            cv: Condvar::new(),
        })
    }

    /// Sleep as `id` while `word` (if given) still holds `seen` and the doorbell (if given)
    /// still holds `rung`, until a wake picks `id`.
    fn wait(&self, id: usize, word: Option<(&Cell64, u32)>, bell: Option<(&AtomicU64, u64)>) {
        let mut sleepers = self.sleepers.lock().unwrap();
        if word.is_some_and(|(w, seen)| word::futex(w.load(Ordering::SeqCst)) != seen)
            || bell.is_some_and(|(b, rung)| b.load(Ordering::SeqCst) != rung)
        {
            return;
        }
        sleepers.push((id, word.is_some(), bell.is_some(), false));
        loop {
            sleepers = self.cv.wait(sleepers).unwrap();
            if let Some(i) = sleepers.iter().position(|s| s.0 == id && s.3) {
                sleepers.remove(i);
                return;
            }
        }
    }

    /// `FUTEX_WAKE` on the word: `wake` of the sleepers on it.
    fn wake_word(&self, wake: Wake) {
        let n = match wake {
            Wake::None => return,
            Wake::Some(n) => n as usize,
            Wake::All => usize::MAX,
        };
        let mut sleepers = self.sleepers.lock().unwrap();
        sleepers
            .iter_mut()
            .filter(|s| s.1 && !s.3)
            .take(n)
            .for_each(|s| s.3 = true);
        self.cv.notify_all();
    }

    /// A ring of the helper's doorbell.
    fn wake_bell(&self) {
        let mut sleepers = self.sleepers.lock().unwrap();
        sleepers.iter_mut().filter(|s| s.2).for_each(|s| s.3 = true);
        self.cv.notify_all();
    }
}

/// Release 1 through `lane` and wake as `Semaphore::give_on` does, on [`Futexes`].
fn release_waking(lane: &Lane<'_, Cell64>, futex: &Futexes) {
    let before = lane.give(0, 1).unwrap();
    futex.wake_word(word::wake_count(before, 1));
}

/// [`acquire_blocking`] for weight 1 of capacity 1, sleeping on [`Futexes`] as `id`.
fn blocking_acquire(id: usize, word: &Cell64, rec: &Cell64, futex: &Futexes) {
    let lane = Lane::new(word, rec);
    if lane.try_take(0, 1, 1, false).is_ok() {
        return;
    }
    assert!(lane.count_waiter(0, 1).unwrap().1);
    loop {
        match lane.try_take(0, 1, 1, true) {
            Ok(_) => return,
            Err(Refused::Full(seen)) => {
                if let Ok(announced) = protocol::announce_sleep(word, seen) {
                    futex.wait(id, Some((word, word::futex(announced))), None);
                }
            }
            Err(other) => panic!("{other:?}"),
        }
    }
}

/// What a future and its helper share: the registration (`Some(notified)` while registered),
/// the helper's doorbell, and the future's waker (a flag its executor parks on).
struct Registry {
    entry: Mutex<Option<bool>>,
    bell: AtomicU64,
    woken: Mutex<bool>,
    unpark: Condvar,
    /// The future completed: the helper leaves when it finds the registration gone.
    done: AtomicU32,
}

impl Registry {
    fn ring(&self, futex: &Futexes) {
        self.bell.fetch_add(1, Ordering::SeqCst);
        futex.wake_bell();
    }

    fn wake_future(&self) {
        *self.woken.lock().unwrap() = true;
        self.unpark.notify_one();
    }
}

/// A future for weight 1, polled by an executor that parks until woken: each poll tries once
/// through the polling thread's lane, and registers (again) when refused (`poll_waiting`).
fn future_acquire(word: &Cell64, rec: &Cell64, reg: &Registry, futex: &Futexes) {
    let lane = Lane::new(word, rec);
    loop {
        if lane.try_take(0, 1, 1, false).is_ok() {
            *reg.entry.lock().unwrap() = None; // `Registration::taken`
            reg.done.store(1, Ordering::SeqCst);
            reg.ring(futex);
            return;
        }
        *reg.entry.lock().unwrap() = Some(false); // registered, not notified
        reg.ring(futex);
        let mut woken = reg.woken.lock().unwrap();
        while !*woken {
            woken = reg.unpark.wait(woken).unwrap();
        }
        *woken = false;
    }
}

/// The helper's loop as `Helper::run` and `Word::pass` run it: read the doorbell; count once,
/// announce the sleep, and only then check the registered future against the word announced,
/// waking it if it fits; sleep on the word and the doorbell (`futex_waitv`). It leaves when the
/// future is done: uncounting and passing a release's wake on (`Word::settle`).
fn helper(id: usize, word: &Cell64, rec: &Cell64, reg: &Registry, futex: &Futexes) {
    let lane = Lane::new(word, rec);
    let mut counted = false;
    loop {
        let rung = reg.bell.load(Ordering::SeqCst);
        let mut seen = None;
        {
            let mut entry = reg.entry.lock().unwrap();
            match *entry {
                None if reg.done.load(Ordering::SeqCst) == 1 => {
                    drop(entry);
                    if counted {
                        lane.uncount_waiter(0).unwrap();
                        futex.wake_word(Wake::All);
                    }
                    return;
                }
                None => {}
                Some(notified) => {
                    if !counted {
                        assert!(lane.count_waiter(0, 1).unwrap().1);
                        counted = true;
                    }
                    let current = word.load(Ordering::SeqCst);
                    match protocol::announce_sleep(word, current) {
                        Ok(announced) => {
                            seen = Some(word::futex(announced));
                            if !notified && word::value(announced) < 1 {
                                *entry = Some(true);
                                reg.wake_future();
                            }
                        }
                        Err(Some(_)) => continue, // the word moved: look again
                        Err(None) => panic!("a counted helper can always announce"),
                    }
                }
            }
        }
        let bell = Some((&reg.bell, rung));
        futex.wait(id, seen.map(|seen| (word, seen)), bell);
    }
}

/// A future waits, through the helper, on a capacity-1 semaphore held by a holder, beside a
/// blocking waiter: the holder releases, and the future and the blocking waiter each get the
/// weight in turn and release it. Loom reports a deadlock if a wake is lost.
fn future_beside_a_blocking_waiter() {
    check(2, || {
        let word = Cell64::new(word::empty(0));
        let futex = Futexes::new();
        let holder = Cell64::new(0);
        Lane::new(&*word, &*holder)
            .try_take(0, 1, 1, false)
            .unwrap();
        let reg = Arc::new(Registry {
            entry: Mutex::new(None),
            bell: AtomicU64::new(0),
            woken: Mutex::new(false),
            unpark: Condvar::new(),
            done: AtomicU32::new(0),
        });
        let future = {
            let (word, futex, reg) = (word.clone(), futex.clone(), reg.clone());
            thread::spawn(move || {
                let rec = Cell64::new(0);
                future_acquire(&word, &rec, &reg, &futex);
                release_waking(&Lane::new(&*word, &*rec), &futex);
            })
        };
        let helper_thread = {
            let (word, futex, reg) = (word.clone(), futex.clone(), reg.clone());
            thread::spawn(move || helper(1, &word, &Cell64::new(0), &reg, &futex))
        };
        let blocking = {
            let (word, futex) = (word.clone(), futex.clone());
            thread::spawn(move || {
                let rec = Cell64::new(0);
                blocking_acquire(2, &word, &rec, &futex);
                release_waking(&Lane::new(&*word, &*rec), &futex);
            })
        };
        release_waking(&Lane::new(&*word, &*holder), &futex);
        future.join().unwrap();
        blocking.join().unwrap();
        helper_thread.join().unwrap();
        let end = word.load(Ordering::SeqCst);
        assert_eq!(word::value(end), 0);
        assert_eq!(word::waiters(end), 0, "the helper left its count");
    });
}

/// No wake is lost between a future's registration and the helper's sleep, nor taken from a
/// blocking waiter by the helper: a helper that leaves a word passes the wake on.
#[test]
fn a_future_waiting_through_the_helper_loses_no_wake() {
    future_beside_a_blocking_waiter();
}
