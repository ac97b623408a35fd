//! Reclaiming the weight of dead holders: finding them by their lock bytes, recounting every
//! semaphore they touched (see `protocol::recount`), freeing their records and slots,
//! and repairing words a dead recounter left frozen.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst},
    time::Duration,
};

use super::{
    Ctx, FREE, free_record, key_sem, key_slot, kind,
    liveness::{Liveness, Os, Probe},
    slot_generation,
};
use crate::{
    error::{Error, Result},
    failpoint::{self, KillPoints},
    protocol::{
        self, Counted, Operator, Recount, holding,
        keys::{RecounterId, Reservation, SlotState},
        word,
    },
    segment::layout::{MAX_HOLDERS, MAX_PROCESSES, MAX_SEMAPHORES},
    table::{self, Found},
    wait,
};

/// What a reclaim ([`Namespace::reap`](crate::Namespace::reap)) gave back from one dead holder
/// on one semaphore.
///
/// # Examples
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("shmsem-doc-reclaimed-{}", std::process::id()));
/// # // SAFETY: set before this example starts any thread.
/// # unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
/// use shmsem::{Namespace, Scope};
///
/// for r in Namespace::new(Scope::Local, "default")?.reap()? {
///     println!("process {} had held {} of {}", r.pid, r.weight, r.semaphore);
/// }
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), shmsem::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reclaimed {
    /// The semaphore's name.
    pub semaphore: String,
    /// The dead holder's pid.
    pub pid: u32,
    /// The weight that came back.
    pub weight: u64,
}

/// Reclaim what dead holders hold, as the kernel tells who is dead ([`Os`]). Returns what came
/// back.
pub fn reclaim(ctx: Ctx<'_>) -> Result<Vec<Reclaimed>> {
    reclaim_by(ctx, &Os)
}

/// Reclaim what dead holders hold, as `liveness` tells who is dead. Returns what came back.
#[cold]
pub fn reclaim_by(ctx: Ctx<'_>, liveness: &dyn Liveness) -> Result<Vec<Reclaimed>> {
    let mut dead = Vec::new();
    let mut abandoned = Vec::new();
    for slot in 0..MAX_PROCESSES {
        if Some(slot) == ctx.me || ctx.acting.contains(&slot) {
            continue;
        }
        let Some(s) = ctx.seg.proc_slot(slot) else {
            break;
        };
        if kind(s.state.load(Acquire)) == FREE {
            continue;
        }
        match liveness.probe(ctx, slot)? {
            Probe::Operated => {}
            Probe::Dead => dead.push(slot),
            Probe::Quiescent => {
                // Nobody acts for the holder now: a slot that holds nothing goes, one with a
                // record left mid-operation gets its semaphores recounted.
                if !super::free_if_empty(ctx, slot) {
                    abandoned.extend(abandoned_records(ctx, slot));
                }
                super::unlock_slot(ctx, slot);
            }
            Probe::Free => {
                super::unlock_slot(ctx, slot);
            }
        }
    }
    let mut stuck = stuck_words(ctx, &dead);
    stuck.extend(abandoned);
    if dead.is_empty() && stuck.is_empty() {
        return Ok(Vec::new());
    }
    let out = reclaim_locked(ctx, liveness, &dead, stuck);
    for &slot in &dead {
        super::unlock_slot(ctx, slot);
    }
    out
}

/// Reclaim the slots in `dead`, whose lock bytes the caller holds, and free them. On return the
/// caller still holds those bytes.
/// Semaphores also to recount: `stuck` (see [`stuck_words`]).
///
/// A recount can find more slots dead than the caller did: processes that died since it looked,
/// whose records the recount meets. Their records are freed with the others, so every semaphore
/// they name is recounted too, even one recounted already (it counted them as alive then), and so
/// are the words they left frozen: no record goes before its semaphore has been recounted with
/// its slot known dead. Slots met on the way are probed with `liveness`.
pub(super) fn reclaim_locked(
    ctx: Ctx<'_>,
    liveness: &dyn Liveness,
    dead: &[u32],
    stuck: BTreeSet<Found>,
) -> Result<Vec<Reclaimed>> {
    let mut dead: BTreeSet<u32> = dead.iter().copied().collect();
    let mut known_dead = dead.clone();
    let mut extra_locks: Vec<u32> = Vec::new();
    let mut queue = stuck;
    queue.extend(touched_by(ctx, &dead));
    let mut report: BTreeMap<(String, u32), u64> = BTreeMap::new();
    let mut result = Ok(());
    // A semaphore that could not be recounted now (a live process stopped in the middle of an
    // operation on it, or another live reclaimer on it) keeps the dead slots for a later try.
    let mut deferred = false;
    while let Some(found) = queue.pop_first() {
        let Some(rec) = ctx.seg.sem(found.index) else {
            continue;
        };
        if !table::is_current(rec, found.generation) {
            continue; // removed: its records are simply freed below
        }
        let name = table::name_of(rec).unwrap_or_default();
        let outcome = recount_one(ctx, liveness, found, &mut dead, &mut extra_locks);
        match outcome {
            Ok(Some(gone)) => {
                for (pid, weight) in gone {
                    *report.entry((name.clone(), pid)).or_default() += weight;
                    // The semaphore's statistics (see `semaphore::counters`).
                    crate::semaphore::bump_counter(&rec.counters.reclaimed_weight, weight);
                }
            }
            Ok(None) => deferred = true,
            Err(e) => {
                result = Err(e);
                break;
            }
        }
        wait::wake(&rec.word, u32::MAX);
        let found_dead: Vec<u32> = dead.difference(&known_dead).copied().collect();
        if !found_dead.is_empty() {
            queue.extend(touched_by(ctx, &found_dead.iter().copied().collect()));
            queue.extend(stuck_words(ctx, &found_dead));
            known_dead.extend(found_dead);
        }
    }
    drop_dead_reservations(ctx, &dead);
    if result.is_ok() && !deferred {
        failpoint::hit("reclaim:recounted");
        // Free the dead records and slots; every semaphore they touched was recounted.
        for index in 0..MAX_HOLDERS {
            let Some(r) = ctx.seg.holder(index) else {
                break;
            };
            if key_slot(r.key.load(Acquire)).is_some_and(|s| dead.contains(&s)) {
                free_record(ctx, index);
            }
        }
        failpoint::hit("reclaim:freed");
        for &slot in &dead {
            if let Some(s) = ctx.seg.proc_slot(slot) {
                let st = s.state.load(Acquire);
                s.state
                    .store(SlotState::from_bits(st).with_kind(FREE).bits(), Release);
            }
        }
    }
    for slot in extra_locks {
        if Some(slot) != ctx.me {
            super::unlock_slot(ctx, slot);
        }
    }
    result.map(|()| {
        report
            .into_iter()
            .filter(|(_, w)| *w > 0)
            .map(|((semaphore, pid), weight)| Reclaimed {
                semaphore,
                pid,
                weight,
            })
            .collect()
    })
}

/// Give back the fairness reservations that waiters in `dead` held, on every semaphore, and wake
/// whoever sleeps on those: a dead waiter waits no more. Every semaphore, not only those its
/// records name: a waiter counted on one life of a semaphore may reserve on the next (removed
/// and created again in between) before it notices, and die before it gives the reservation
/// back.
fn drop_dead_reservations(ctx: Ctx<'_>, dead: &BTreeSet<u32>) {
    for index in 0..MAX_SEMAPHORES {
        let Some(rec) = ctx.seg.sem(index) else { break };
        let r = rec.reservation.load(Acquire);
        if Reservation::from_bits(r)
            .slot()
            .is_some_and(|slot| dead.contains(&slot))
            && rec
                .reservation
                .compare_exchange(r, 0, SeqCst, Relaxed)
                .is_ok()
        {
            // SeqCst, and the flag cleared before the wake: as for any reservation given up (see
            // `protocol::clear_sleeping`).
            protocol::clear_sleeping(&rec.word);
            wait::wake(&rec.word, u32::MAX);
        }
    }
}

/// The semaphores (record and generation) that records of the slots in `slots` name.
fn touched_by(ctx: Ctx<'_>, slots: &BTreeSet<u32>) -> BTreeSet<Found> {
    (0..MAX_HOLDERS)
        .filter_map(|index| {
            let key = ctx.seg.holder(index)?.key.load(Acquire);
            key_slot(key)
                .is_some_and(|s| slots.contains(&s))
                .then(|| key_sem(key))
        })
        .collect()
}

/// Semaphores on which a live external holder's record was left mid-operation: the process
/// acting for it died between marking the record and closing it (for example between its
/// compare-exchange and its record store). Nobody else would ever notice, since the holder
/// itself lives; recounting them rolls the abandoned change back (see `protocol::Operator`).
/// The caller holds the slot's lock byte, so nobody operates the slot's records now.
fn abandoned_records(ctx: Ctx<'_>, slot: u32) -> Vec<Found> {
    (0..MAX_HOLDERS)
        .filter_map(|index| {
            let r = ctx.seg.holder(index)?;
            let key = r.key.load(Acquire);
            let bits = r.holding.load(Acquire);
            (key_slot(key) == Some(slot) && (holding::is_busy(bits) || holding::is_counted(bits)))
                .then(|| key_sem(key))
        })
        .collect()
}

/// Words left frozen with nobody to finish the recount: their recounter is one of `dead`, or
/// is not set at all (a recounter sets it before it freezes and clears it after it unfreezes, so
/// that state comes only from a corrupted word). Recounting them repairs them.
pub(super) fn stuck_words(ctx: Ctx<'_>, dead: &[u32]) -> BTreeSet<Found> {
    let mut out = BTreeSet::new();
    for index in 0..MAX_SEMAPHORES {
        let Some(rec) = ctx.seg.sem(index) else { break };
        let w = rec.word.load(Acquire);
        if !word::is_frozen(w) {
            continue;
        }
        let recounter = RecounterId::from_bits(rec.recounter.load(Acquire));
        if recounter.is_nobody() || recounter.slot().is_some_and(|s| dead.contains(&s)) {
            out.insert(Found {
                index,
                generation: word::generation(w),
            });
        }
    }
    out
}

/// The `recounter` value naming `slot` as it is registered now.
fn recounter_id(ctx: Ctx<'_>, slot: u32) -> u64 {
    let generation = ctx
        .seg
        .proc_slot(slot)
        .map_or(0, |s| slot_generation(s.state.load(Relaxed)));
    RecounterId::new(slot, generation).bits()
}

/// Recount one semaphore. Slots found dead on the way join `dead` (their lock bytes are then
/// held by the caller); slots locked for a quiescent look join `extra_locks`. Returns the weight
/// that came back per dead pid.
fn recount_one(
    ctx: Ctx<'_>,
    liveness: &dyn Liveness,
    found: Found,
    dead: &mut BTreeSet<u32>,
    extra_locks: &mut Vec<u32>,
) -> Result<Option<Vec<(u32, u64)>>> {
    let rec = ctx
        .seg
        .sem(found.index)
        .ok_or_else(|| Error::corrupt("semaphore index out of bounds"))?;
    // The recounter is named by a slot whose lock byte this process holds: its own, or, while it
    // registers, the dead slot it is taking over.
    let Some(me) = ctx.me.or_else(|| dead.first().copied()) else {
        return Ok(None);
    };
    let my_id = recounter_id(ctx, me);
    // Claim the recounter field, taking it over only from a dead recounter.
    let mut cur = rec.recounter.load(Acquire);
    loop {
        if cur != 0 && cur != my_id {
            // A value naming no slot (corrupted) counts as a live reclaimer's.
            let other_dead = RecounterId::from_bits(cur).slot().is_some_and(|other| {
                dead.contains(&other) || (other < MAX_PROCESSES && !liveness.may_live(ctx, other))
            });
            if !other_dead {
                return Ok(None); // a live reclaimer is on it: try again later
            }
        }
        match rec.recounter.compare_exchange(cur, my_id, AcqRel, Acquire) {
            Ok(_) => break,
            Err(actual) => cur = actual,
        }
    }
    failpoint::hit("reclaim:claimed");

    let mut gone: Vec<(u32, u64)> = Vec::new();
    let mut probe_error = None;
    let mut polls = 0u32;
    let outcome = protocol::recount(
        &rec.word,
        found.generation,
        KillPoints,
        || {
            let mut counted = Vec::new();
            let mut seen: BTreeMap<u32, Operator> = BTreeMap::new();
            for index in 0..MAX_HOLDERS {
                let Some(r) = ctx.seg.holder(index) else {
                    break;
                };
                let key = r.key.load(Acquire);
                let Some(slot) = key_slot(key) else { continue };
                if key_sem(key) != found {
                    continue;
                }
                let operator = match seen.get(&slot) {
                    Some(&op) => op,
                    None => {
                        let op = if Some(slot) == ctx.me || ctx.acting.contains(&slot) {
                            Operator::Live
                        } else if dead.contains(&slot) {
                            Operator::Dead
                        } else {
                            match liveness.probe(ctx, slot) {
                                Ok(Probe::Operated) => Operator::Live,
                                Ok(Probe::Dead) => {
                                    dead.insert(slot);
                                    extra_locks.push(slot);
                                    Operator::Dead
                                }
                                Ok(Probe::Quiescent | Probe::Free) => {
                                    extra_locks.push(slot);
                                    Operator::Quiescent
                                }
                                Err(e) => {
                                    // Unknown counts as alive.
                                    probe_error.get_or_insert(e);
                                    Operator::Live
                                }
                            }
                        };
                        seen.insert(slot, op);
                        op
                    }
                };
                if operator == Operator::Dead {
                    let held = holding::held(r.holding.load(Acquire));
                    let pid = ctx.seg.proc_slot(slot).map_or(0, |s| s.pid.load(Relaxed));
                    if held > 0 {
                        gone.push((pid, held as u64));
                    }
                }
                counted.push(Counted {
                    holding: &r.holding,
                    operator,
                });
            }
            counted
        },
        || {
            polls += 1;
            std::thread::sleep(Duration::from_micros(200));
            // About 50 ms: the word is frozen meanwhile, so waiting longer for a live
            // process that stays mid-operation (stopped) would stall everyone.
            polls < 250
        },
    );
    // Release the recounter claim only if it is still ours.
    let _ = rec.recounter.compare_exchange(my_id, 0, Release, Relaxed);
    if let Some(e) = probe_error {
        return Err(e);
    }
    match outcome {
        Recount::Done { after, .. } => {
            if after == 0 {
                // Now unused: the idle period of an auto semaphore starts here.
                rec.last_used_ms
                    .store(crate::segment::layout::USED, Relaxed);
            }
            Ok(Some(gone))
        }
        Recount::Removed => Ok(Some(gone)),
        Recount::Busy => Ok(None),
        Recount::Corrupt => Err(Error::corrupt(format!(
            "holder records of semaphore #{} sum to an impossible weight",
            found.index
        ))),
    }
}
