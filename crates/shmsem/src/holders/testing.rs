//! A namespace's segment in a temporary directory, with slots, semaphores and holdings recorded
//! directly, for the tests of liveness and reclaim.

use std::{
    os::fd::AsFd,
    sync::atomic::Ordering::{Acquire, Relaxed, Release},
};

use super::{Ctx, claim_record, slot_state};
use crate::{
    protocol::{Lane, word},
    segment::{Creation, Expect, Segment},
    sys::Identity,
    table::{self, Found, NewRecord},
};

/// A fresh segment, removed with its directory when dropped.
#[derive(Debug)]
pub struct Fixture {
    /// The segment, mapped by this process.
    pub seg: Segment,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// A segment created in a new temporary directory.
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let seg = Segment::open_or_create(
            &dir.path().join("namespace"),
            Creation {
                mode: 0o600,
                group: None,
            },
            Expect {
                owner: None,
                private: false,
            },
        )
        .expect("a fresh segment");
        Fixture { seg, _dir: dir }
    }

    /// The context of a process that is registered nowhere (as `shmsem reap` is).
    pub fn ctx(&self) -> Ctx<'_> {
        Ctx {
            seg: &self.seg,
            fd: self.seg.file().as_fd(),
            me: None,
            acting: &[],
        }
    }

    /// Record `who` in `slot` as a process of `kind`, generation 1, as registering does (but
    /// without its lock byte). Returns the generation.
    pub fn record_slot(&self, slot: u32, kind: u32, who: Identity) -> u32 {
        let s = self.seg.proc_slot(slot).expect("slot in bounds");
        s.pid.store(who.pid, Relaxed);
        s.start_time.store(who.start_time, Relaxed);
        s.state.store(slot_state(1, kind), Release);
        1
    }

    /// The raw state of `slot`.
    pub fn slot_state(&self, slot: u32) -> u32 {
        self.seg
            .proc_slot(slot)
            .expect("slot in bounds")
            .state
            .load(Acquire)
    }

    /// Create persistent semaphore `name` of `capacity`.
    pub fn semaphore(&self, name: &str, capacity: u32) -> Found {
        let new = NewRecord {
            capacity,
            persistent: true,
            idle_ms: 0,
        };
        table::insert_life(&self.seg, name, new)
            .expect("room for a semaphore")
            .0
    }

    /// Take `weight` of `found` for lane `lane` of `slot`, through the protocol. Returns the
    /// record's index.
    pub fn hold(&self, slot: u32, lane: u16, found: Found, weight: u32) -> u32 {
        let index =
            claim_record(self.ctx(), slot, 1, lane, found).expect("room for a holder record");
        let rec = self.seg.sem(found.index).expect("semaphore in bounds");
        let r = self.seg.holder(index).expect("record in bounds");
        let lane = Lane::new(&rec.word, &r.holding);
        let capacity = rec.capacity.load(Relaxed);
        lane.try_take(found.generation, weight, capacity, false)
            .expect("the weight is free");
        index
    }

    /// The value (weight taken) of `found` now.
    pub fn value(&self, found: Found) -> u32 {
        word::value(
            self.seg
                .sem(found.index)
                .expect("semaphore in bounds")
                .word
                .load(Acquire),
        )
    }

    /// Every holder record as (key, holding bits).
    pub fn records(&self) -> Vec<(u64, u64)> {
        (0..crate::segment::layout::MAX_HOLDERS)
            .map_while(|index| self.seg.holder(index))
            .map(|r| (r.key.load(Acquire), r.holding.load(Acquire)))
            .collect()
    }
}
