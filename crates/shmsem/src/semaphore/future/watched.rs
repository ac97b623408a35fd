//! One semaphore word as a helper thread watches it for the futures waiting there: the helper
//! is one counted waiter on the word (through its own lane, as a blocking waiter), holds the
//! fairness reservation for the oldest future that wants more than 1, announces its sleep,
//! and wakes the futures whose weight fits.
//!
//! Everything here runs on the helper thread, under its state lock: the helper's holder
//! records are operated by that thread alone, as every lane's are.

use std::{
    sync::atomic::Ordering::{Relaxed, Release, SeqCst},
    task::Waker,
};

use super::super::{Semaphore, lane_of, sleep::fits_now};
use crate::{
    protocol::{self, keys::Reservation, word},
    segment::layout::{HolderRecord, SemRecord},
    table::Found,
    wait,
};

/// A future waiting on the word.
#[derive(Debug)]
pub(super) struct Entry {
    /// Names the future's registration.
    pub id: u64,
    pub weight: u32,
    pub waker: Waker,
    /// Woken since it last registered: it will poll again, and is not woken again until then.
    pub notified: bool,
}

impl Entry {
    fn notify(&mut self) {
        self.notified = true;
        self.waker.wake_by_ref();
    }
}

/// The futures waiting on one semaphore word (one life of one record), and what the helper
/// holds there for them.
pub(super) struct Word {
    pub sem: Semaphore,
    /// The record and its incarnation the futures registered on.
    pub at: (Found, u64),
    pub entries: Vec<Entry>,
    /// The helper's holder record on the word, once it has one.
    record: Option<u32>,
    /// The weight the helper counted itself with, while counted.
    counted: Option<u32>,
    /// The future the helper reserved for, and the reservation.
    reserved: Option<(u64, Reservation)>,
    /// The word the helper announced its sleep on, and sleeps on.
    pub seen: u64,
    /// The helper cannot sleep on this word this round (frozen, the count saturated, no lane
    /// of its own): it naps and wakes every future here, which try again.
    pub polled: bool,
}

impl Word {
    pub fn new(sem: Semaphore, at: (Found, u64)) -> Word {
        Word {
            sem,
            at,
            entries: Vec::new(),
            record: None,
            counted: None,
            reserved: None,
            seen: 0,
            polled: false,
        }
    }

    fn rec(&self) -> &SemRecord {
        self.sem.rec(self.at.0)
    }

    /// The reservation held for the future `id`, or [`Reservation::NONE`].
    pub fn reserved_for(&self, id: u64) -> Reservation {
        match self.reserved {
            Some((who, token)) if who == id => token,
            _ => Reservation::NONE,
        }
    }

    /// The future `id` took its weight: the reservation held for it is used up. Cleared as a
    /// blocking waiter clears its own after taking (no wake: the weight it held back is taken).
    pub fn taken_by(&mut self, id: u64) {
        if let Some((who, token)) = self.reserved
            && who == id
        {
            self.reserved = None;
            let _ = self.rec().reservation.compare_exchange(
                token.bits(),
                Reservation::NONE.bits(),
                SeqCst,
                Relaxed,
            );
        }
    }

    /// One pass of the helper over this word, on the helper thread with its `lane` (`None`:
    /// it has none, and polls). `false`: nothing waits here any more, and everything the
    /// helper held is given up; forget the word.
    pub fn pass(&mut self, lane: Option<u16>) -> bool {
        if self.entries.is_empty() {
            self.settle(lane);
            return false;
        }
        self.polled = true;
        let Some(lane) = lane else {
            return true;
        };
        let (found, life) = self.at;
        // A clone, so that the record it lends outlives the changes to `self` below.
        let sem = self.sem.clone();
        let h = match sem.holder(lane, found, life) {
            Ok((h, held)) => {
                self.record = Some(held.record());
                h
            }
            // Removed, or worse: the futures find out in their own attempt.
            Err(_) => {
                self.wake_all();
                return true;
            }
        };
        // A reservation for a future that was dropped goes back (one that took its weight
        // used its reservation up, see `taken_by`).
        if let Some((who, _)) = self.reserved
            && !self.entries.iter().any(|e| e.id == who)
        {
            self.give_up_reservation();
        }
        let want = self.entries.iter().map(|e| e.weight).max().unwrap_or(1);
        if !self.count(h, want) {
            return true;
        }
        self.reserve(lane);
        let rec = self.rec();
        let mut current = rec.word.load(Relaxed);
        for _ in 0..protocol::MAX_RETRIES {
            match protocol::announce_sleep(&rec.word, current) {
                Ok(w) => {
                    self.seen = w;
                    self.polled = false;
                    break;
                }
                Err(Some(actual)) => current = actual,
                Err(None) => break,
            }
        }
        if self.polled {
            return true;
        }
        // After the announcement: every future registered since the last wake, checked.
        let (rec, seen, reserved) = (self.sem.rec(found), self.seen, self.reserved);
        for e in self.entries.iter_mut().filter(|e| !e.notified) {
            let token = match reserved {
                Some((who, token)) if who == e.id => token,
                _ => Reservation::NONE,
            };
            if fits_now(rec, seen, e.weight, token) {
                e.notify();
            }
        }
        true
    }

    /// Count the helper as one waiter for `want` on the word through `h`, unless it is so
    /// already with the same heaviness (a waiter for more than 1 makes releases wake all).
    /// Also shows it as waiting in `h`, for `show` and `ps`. `false`: it cannot be counted this
    /// round (frozen, saturated, removed): poll.
    fn count(&mut self, h: &HolderRecord, want: u32) -> bool {
        let (rec, generation) = (self.sem.rec(self.at.0), self.at.0.generation);
        let lane = lane_of(rec, h);
        if let Some(counted) = self.counted
            && (counted > 1) != (want > 1)
        {
            self.sem.uncount(&lane, generation);
            self.counted = None;
        }
        if self.counted.is_none() {
            match lane.count_waiter(generation, want) {
                Ok((_, true)) => self.counted = Some(want),
                Ok((_, false)) => return false,
                Err(protocol::Refused::Removed) => {
                    self.entries.iter_mut().for_each(Entry::notify);
                    return false;
                }
                Err(_) => return false,
            }
        }
        if h.wait_weight.load(Relaxed) != want {
            // No clock: the first observer stamps when it saw us waiting (`holders::parties`).
            h.wait_since_ms.store(0, Relaxed);
            // Release: an observer that sees the weight sees the cleared stamp.
            h.wait_weight.store(want, Release);
        }
        true
    }

    /// Reserve for the oldest future that wants more than 1, if none is reserved for yet and
    /// the word has no other reservation (one at a time, as for blocking waiters). Only a
    /// counted waiter reserves (see `acquire`).
    fn reserve(&mut self, lane: u16) {
        if self.reserved.is_some() || self.counted.is_none() {
            return;
        }
        let Some(first) = self.entries.iter().find(|e| e.weight > 1) else {
            return;
        };
        let Ok(registration) = self.sem.inner.ns.registration() else {
            return;
        };
        let token = Reservation::new(registration.slot, lane, first.weight);
        let rec = self.sem.rec(self.at.0);
        if rec
            .reservation
            .compare_exchange(Reservation::NONE.bits(), token.bits(), Relaxed, Relaxed)
            .is_ok()
        {
            self.reserved = Some((first.id, token));
        }
    }

    /// Give up everything the helper holds on the word: its count, its row in `show`, and the
    /// reservation, waking whom it held back.
    fn settle(&mut self, lane: Option<u16>) {
        self.give_up_reservation();
        let (found, generation) = (self.at.0, self.at.0.generation);
        let rec = self.sem.rec(found);
        let h = self
            .record
            .take()
            .and_then(|record| self.sem.inner.ns.seg.holder(record));
        if let (Some(h), Some(_)) = (h, lane) {
            if self.counted.take().is_some() {
                self.sem.uncount(&lane_of(rec, h), generation);
                self.pass_wake_on();
            }
            h.wait_weight.store(0, Relaxed);
        }
    }

    /// The helper leaves the word, or a future it woke leaves without taking: a release's wake
    /// that reached the helper (a release of k wakes k sleepers, and the helper is one) may be
    /// owed to a waiter still asleep there. Wake them all; each looks again (a wake too many
    /// costs a look, a wake too few a waiter that sleeps with its weight free).
    pub fn pass_wake_on(&self) {
        let rec = self.sem.rec(self.at.0);
        if word::waiters(rec.word.load(SeqCst)) > 0 {
            wait::wake(&rec.word, u32::MAX);
        }
    }

    /// Give the reservation back, waking whom it held back, as a blocking waiter that leaves
    /// without its weight does.
    fn give_up_reservation(&mut self) {
        let rec = self.sem.rec(self.at.0);
        if let Some((_, token)) = self.reserved.take()
            && rec
                .reservation
                .compare_exchange(token.bits(), Reservation::NONE.bits(), SeqCst, Relaxed)
                .is_ok()
        {
            // What was held back is free for the others again (SeqCst, and the flag cleared
            // before the wake: see `protocol::clear_sleeping`).
            protocol::clear_sleeping(&rec.word);
            wait::wake(&rec.word, u32::MAX);
        }
    }

    /// Wake every future here: they try again.
    pub fn wake_all(&mut self) {
        self.entries.iter_mut().for_each(Entry::notify);
    }
}
