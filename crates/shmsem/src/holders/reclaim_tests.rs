//! The reclaimer driven by a table of live processes ([`Declared`]): slots recorded for processes
//! that never ran, declared dead when the test says so.

use super::{
    Ctx, ENGINE, EXTERNAL, FREE, key_slot, kind,
    liveness::Declared,
    lock_slot, locked_here,
    reclaim::{Reclaimed, reclaim_by, reclaim_locked, stuck_words},
    testing::Fixture,
    unlock_slot,
};
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};

use crate::{protocol::holding, sys::Identity};

fn process(pid: u32) -> Identity {
    Identity {
        pid,
        start_time: u64::from(pid) * 10,
    }
}

/// The records of `slot`, as (key, holding bits).
fn records_of(fx: &Fixture, slot: u32) -> Vec<(u64, u64)> {
    fx.records()
        .into_iter()
        .filter(|&(key, _)| key_slot(key) == Some(slot))
        .collect()
}

fn reclaimed(semaphore: &str, pid: u32, weight: u64) -> Reclaimed {
    Reclaimed {
        semaphore: semaphore.to_owned(),
        pid,
        weight,
    }
}

/// The slot of the reclaiming process, registered as the engine registers it.
const RECLAIMER: u32 = 0;

/// This process registered in [`RECLAIMER`], its lock byte held, as a process running a reclaim
/// is (`shmsem reap`, a waiter, the watcher); the byte is given back when dropped.
struct Registered<'a>(&'a Fixture);

impl<'a> Registered<'a> {
    fn new(fx: &'a Fixture) -> Registered<'a> {
        fx.record_slot(RECLAIMER, ENGINE, crate::sys::current());
        assert!(lock_slot(fx.ctx(), RECLAIMER).expect("locking"));
        Registered(fx)
    }

    fn ctx(&self) -> Ctx<'a> {
        Ctx {
            me: Some(RECLAIMER),
            ..self.0.ctx()
        }
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        unlock_slot(self.0.ctx(), RECLAIMER);
    }
}

/// Whether the reclaim left no slot's byte held but the reclaimer's own.
fn no_slot_byte_is_held_here(fx: &Fixture) -> bool {
    (1..16).all(|slot| !locked_here(fx.ctx(), slot))
}

#[test]
fn a_slot_declared_dead_gives_back_every_permit_and_nothing_else_moves() {
    let fx = Fixture::new();
    let liveness = Declared::default();
    let (doomed, live, external) = (2, 4, 6);
    for (slot, k, pid) in [
        (doomed, ENGINE, 100),
        (live, ENGINE, 200),
        (external, EXTERNAL, 300),
    ] {
        fx.record_slot(slot, k, process(pid));
        liveness.born(process(pid));
    }
    let (a, b, c) = (
        fx.semaphore("a", 4),
        fx.semaphore("b", 3),
        fx.semaphore("c", 2),
    );
    fx.hold(doomed, 0, a, 2);
    fx.hold(doomed, 1, a, 1);
    fx.hold(doomed, 0, b, 1);
    fx.hold(live, 0, a, 1);
    fx.hold(live, 0, c, 1);
    fx.hold(external, 0, b, 2);
    let values = |fx: &Fixture| (fx.value(a), fx.value(b), fx.value(c));
    assert_eq!(values(&fx), (4, 3, 1));
    let survivors = |fx: &Fixture| {
        (
            records_of(fx, live),
            records_of(fx, external),
            fx.slot_state(live),
            fx.slot_state(external),
        )
    };
    let before = survivors(&fx);
    let doomed_state = fx.slot_state(doomed);
    let registered = Registered::new(&fx);
    let me = registered.ctx();

    let out = reclaim_by(me, &liveness).expect("reclaiming");
    assert_eq!(out, [], "nobody is dead yet");
    assert_eq!(values(&fx), (4, 3, 1));
    assert_eq!(records_of(&fx, doomed).len(), 3);
    assert_eq!(fx.slot_state(doomed), doomed_state);

    liveness.slot_died(&fx.seg, doomed);
    let out = reclaim_by(me, &liveness).expect("reclaiming");
    assert_eq!(out, [reclaimed("a", 100, 3), reclaimed("b", 100, 1)]);
    assert_eq!(values(&fx), (1, 2, 1), "the dead slot's weight came back");
    assert_eq!(records_of(&fx, doomed), [], "its records are freed");
    assert_eq!(kind(fx.slot_state(doomed)), FREE, "its slot is freed");
    assert_eq!(survivors(&fx), before, "nothing of the living moved");
    assert!(no_slot_byte_is_held_here(&fx));

    let out = reclaim_by(me, &liveness).expect("reclaiming again");
    assert_eq!(out, [], "a second reclaim finds nothing");
    assert_eq!(values(&fx), (1, 2, 1));
}

/// A process registering in `first`'s slot (which holds its byte and recounts in its name) found
/// only `first` dead; `late` died after it looked, and the recount of `a` finds
/// it dead. Its records must not go before `b`, which only it touched, is recounted too, or `b`
/// would keep weight that nobody holds.
#[test]
fn a_slot_found_dead_during_a_reclaim_gets_every_semaphore_it_held_recounted() {
    let fx = Fixture::new();
    let liveness = Declared::default();
    let (first, late) = (1, 3);
    for (slot, pid) in [(first, 100), (late, 200)] {
        fx.record_slot(slot, ENGINE, process(pid));
        liveness.born(process(pid));
    }
    let (a, b) = (fx.semaphore("a", 2), fx.semaphore("b", 2));
    fx.hold(first, 0, a, 1);
    fx.hold(late, 0, a, 1);
    fx.hold(late, 0, b, 1);
    liveness.slot_died(&fx.seg, first);
    assert!(
        lock_slot(fx.ctx(), first).expect("locking"),
        "the caller's probe"
    );
    liveness.slot_died(&fx.seg, late);
    assert_eq!(
        stuck_words(fx.ctx(), &[first]).len(),
        0,
        "nothing is frozen"
    );

    let out = reclaim_locked(
        fx.ctx(),
        &liveness,
        &[first],
        stuck_words(fx.ctx(), &[first]),
    )
    .expect("reclaiming");
    unlock_slot(fx.ctx(), first);
    assert_eq!(
        out,
        [
            reclaimed("a", 100, 1),
            reclaimed("a", 200, 1),
            reclaimed("b", 200, 1)
        ]
    );
    assert_eq!(
        (fx.value(a), fx.value(b)),
        (0, 0),
        "weight nobody holds stayed behind"
    );
    for slot in [first, late] {
        assert_eq!(records_of(&fx, slot), [], "slot {slot}'s records are freed");
        assert_eq!(kind(fx.slot_state(slot)), FREE, "slot {slot} is freed");
    }
    assert!(no_slot_byte_is_held_here(&fx));
}

/// A CLI acting for a live external holder was killed between its compare-exchange and its
/// record store, in an acquire of 2: the word counts 2 that the record does not. The holder
/// lives and nobody acts for it, so the reclaim rolls the abandoned acquire back and leaves what
/// the holder held before.
#[test]
fn an_acquire_abandoned_for_a_live_external_holder_is_rolled_back() {
    let fx = Fixture::new();
    let liveness = Declared::default();
    let holder = 5;
    fx.record_slot(holder, EXTERNAL, process(500));
    liveness.born(process(500));
    let a = fx.semaphore("a", 4);
    let index = fx.hold(holder, 0, a, 1);
    let r = fx.seg.holder(index).expect("record in bounds");
    let mine = r.holding.load(Acquire);
    r.holding.store(mine | holding::BUSY, Relaxed);
    let rec = fx.seg.sem(a.index).expect("semaphore in bounds");
    rec.word.fetch_add(2, AcqRel);
    assert_eq!(fx.value(a), 3);
    let registered = Registered::new(&fx);
    let me = registered.ctx();

    let out = reclaim_by(me, &liveness).expect("reclaiming");
    assert_eq!(out, [], "nobody died");
    assert_eq!(fx.value(a), 1, "the abandoned acquire is rolled back");
    let bits = r.holding.load(Acquire);
    assert_eq!(holding::held(bits), 1, "what the holder held stays");
    assert!(!holding::is_busy(bits));
    assert_eq!(kind(fx.slot_state(holder)), EXTERNAL, "its slot stays");
    assert!(no_slot_byte_is_held_here(&fx));
}
