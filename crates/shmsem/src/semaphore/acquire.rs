//! Taking weight: the fast path (one compare-exchange), and the slow path that spins when it
//! pays, reserves for fairness, counts itself and sleeps on the shared futex (see `sleep`), and
//! re-creates an auto semaphore that was removed under it.

use std::{
    sync::atomic::{
        AtomicU64,
        Ordering::{Relaxed, Release, SeqCst},
    },
    time::Duration,
};

use super::{
    FROZEN_PATIENCE, Held, RECREATE_TRIES, SPINS, Semaphore, Until, check_weight, counters,
    frozen_pause, lane_of, note_since,
    sleep::{POLL_NAP, SpinLuck, fits_now, nap},
    unpack,
};
use crate::{
    error::{Error, Result},
    failpoint::{self, KillPoints},
    namespace::{current_lane, fast, with_lane},
    protocol::{
        self, Lane, Refused, holding,
        keys::{Found, Reservation},
        word,
    },
    segment::layout::{HolderRecord, SemRecord},
    sys,
    wait::{self, Monotonic},
};

/// What one attempt of a waiting acquire did.
#[derive(Debug)]
pub(super) enum Attempt {
    /// The weight was taken; `uncounted`: by the compare-exchange that also uncounted the waiter.
    Taken { uncounted: bool },
    /// Not taken.
    Refused(Refused),
    /// Not tried: someone else operates the record (another process acting for the same
    /// holder). Try again soon.
    Busy,
    /// Cannot be taken any more (the process acted for has exited).
    Failed(Error),
    /// The record to take into is not where it was looked up (an external slot freed since):
    /// look it up again.
    Moved,
}

impl Semaphore {
    /// Take `weight` through this thread's lane; returns the life taken from (packed as in
    /// [`super::pack`]) and the fork epoch it was taken in.
    ///
    /// The fast path: this thread's entry (see `fast`) names the two words to change, and when
    /// nobody waits (so no fairness reservation can apply, see `fair_capacity`) one
    /// compare-exchange bracketed by the record's marks takes the weight. Anything else, the
    /// first use on this thread and every acquire while others wait included, goes through
    /// [`Self::take_cold`].
    #[inline(always)]
    pub(super) fn take(&self, weight: u32, until: Until) -> Result<(u64, u32)> {
        let packed = self.inner.found.load(Relaxed);
        if let Some(hit) = fast::get(self.inner.serial, packed)
            && weight != 0
        {
            let (rec, h) = (hit.rec(), hit.holder());
            let capacity = rec.capacity.load(Relaxed);
            if let Some(before) = lane_of(rec, h).take_quiet(hit.empty, weight, capacity) {
                // A holding that begins now is not stamped yet (see `note_since`).
                if holding::holds_nothing(before) {
                    h.since_ms.store(0, Relaxed);
                }
                return Ok((packed, hit.epoch));
            }
            let (timeout, now) = until.to_registers();
            return self.take_remembered(hit, packed, weight, timeout, now);
        }
        let (timeout, now) = until.to_registers();
        self.take_cold(weight, timeout, now)
    }

    /// [`Self::take`] through the record this thread remembers (`hit`) when the word was not
    /// quiet or too full: another look, then waiting, with no lookup of lane, record or
    /// registration. A removal goes to [`Self::take_by_lookup`], which re-creates, with the
    /// deadline as started.
    #[cold]
    #[inline(never)]
    fn take_remembered(
        &self,
        hit: fast::Hit,
        packed: u64,
        weight: u32,
        timeout: Option<Duration>,
        now: bool,
    ) -> Result<(u64, u32)> {
        let until = Until::from_registers(timeout, now).start();
        let (found, _) = unpack(packed);
        let (rec, h) = (hit.rec(), hit.holder());
        let capacity = capacity_for(rec, weight)?;
        let fair = fair_capacity(rec, capacity, Reservation::NONE);
        let refused = match take_once(rec, h, found.generation, weight, fair) {
            Ok(()) => return Ok((packed, hit.epoch)),
            Err(Refused::Removed) => return self.take_by_lookup(weight, until),
            Err(refused) => refused,
        };
        // A weight-1 waiter never reserves, so needs no token (see `fair_capacity`).
        let token = if weight == 1 {
            Reservation::NONE
        } else {
            match current_lane() {
                Some(lane) => Reservation::new(self.inner.ns.registration()?.slot, lane, weight),
                None => return self.take_by_lookup(weight, until),
            }
        };
        let lane = lane_of(rec, h);
        let outcome = self.take_contended(
            found,
            weight,
            until,
            h,
            token,
            refused,
            own_attempt(&lane, found.generation, weight),
            &mut false,
        );
        match outcome {
            Ok(()) => Ok((packed, hit.epoch)),
            // The deadline stays the one started above.
            Err(Contended::Removed | Contended::Moved) => self.take_by_lookup(weight, until),
            Err(Contended::Failed(e)) => Err(e),
        }
    }

    /// [`Self::take`] without the fast path: find this thread's lane and its record. (`until` in
    /// two registers, see [`Until::to_registers`]: a loop of acquires writes nothing to memory
    /// for the call it does not make.)
    #[cold]
    #[inline(never)]
    fn take_cold(&self, weight: u32, timeout: Option<Duration>, now: bool) -> Result<(u64, u32)> {
        if let Some(c) = self.as_cluster() {
            return c.take(weight, timeout, now);
        }
        self.take_by_lookup(weight, Until::from_registers(timeout, now))
    }

    /// Take `weight` through this thread's lane, looked up.
    fn take_by_lookup(&self, weight: u32, until: Until) -> Result<(u64, u32)> {
        let (found, life, _) = match current_lane() {
            Some(lane) => self.take_on(lane, weight, until),
            None => with_lane(|lane| self.take_on(lane, weight, until)),
        }?;
        Ok((super::pack(found, life), sys::FORK_EPOCH.load(Relaxed)))
    }

    /// One compare-exchange when the weight is free; everything else is [`Self::take_slow`].
    pub(super) fn take_on(
        &self,
        lane: u16,
        weight: u32,
        until: Until,
    ) -> Result<(Found, u64, Held)> {
        let at = self.current();
        match self.try_on(lane, at, weight)? {
            Ok(held) => Ok((at.0, at.1, held)),
            Err(refused) => self.take_slow(lane, weight, until, at, refused),
        }
    }

    /// The try-once path of a looked-up acquire: check the weight against the capacity, find
    /// (or claim) this lane's record for life `at`, and take `weight` in one attempt
    /// ([`take_once`]). `Ok(Err(Refused::Removed))` when that life is over.
    #[inline]
    fn try_on(&self, lane: u16, (found, life): (Found, u64), weight: u32) -> Result<Tried<Held>> {
        let rec = self.rec(found);
        let capacity = capacity_for(rec, weight)?;
        let (h, held) = match self.holder(lane, found, life) {
            Ok(x) => x,
            Err(Error::Removed { .. }) => return Ok(Err(Refused::Removed)),
            Err(e) => return Err(e),
        };
        let fair = fair_capacity(rec, capacity, Reservation::NONE);
        Ok(take_once(rec, h, found.generation, weight, fair).map(|()| held))
    }

    /// The fast path failed with `first`: wait, and re-create the semaphore if it was removed.
    #[cold]
    pub(super) fn take_slow(
        &self,
        lane: u16,
        weight: u32,
        until: Until,
        mut at: (Found, u64),
        mut refused: Refused,
    ) -> Result<(Found, u64, Held)> {
        let until = until.start();
        let token = Reservation::new(self.inner.ns.registration()?.slot, lane, weight);
        // Counted once however many rounds this acquire takes (see `counters`).
        let mut slept = false;
        for _ in 0..RECREATE_TRIES {
            let (found, life) = at;
            let outcome = match refused {
                Refused::Removed => Err(Contended::Removed),
                _ => match self.holder(lane, found, life) {
                    Err(Error::Removed { .. }) => Err(Contended::Removed),
                    Err(e) => return Err(e),
                    Ok((h, held)) => {
                        let lane_view = lane_of(self.rec(found), h);
                        let attempt = own_attempt(&lane_view, found.generation, weight);
                        self.take_contended(
                            found, weight, until, h, token, refused, attempt, &mut slept,
                        )
                        .map(|()| held)
                    }
                },
            };
            match outcome {
                Ok(held) => return Ok((found, life, held)),
                Err(Contended::Failed(e)) => return Err(e),
                Err(Contended::Moved) => unreachable!("a lane's own record never moves"),
                Err(Contended::Removed) => {
                    at = self.recreate(at, lane, until)?;
                    match self.try_on(lane, at, weight)? {
                        Ok(held) => return Ok((at.0, at.1, held)),
                        Err(r) => refused = r,
                    }
                }
            }
        }
        Err(self.removed())
    }

    /// Wait for `weight` on `found` after a first attempt was refused with `first`, taking it
    /// with `attempt(capacity, counted)`. `h` is this thread's own record: the waiter counts and
    /// shows itself there (so a waiter that dies stops counting at the next recount). `token`
    /// names this waiter in the semaphore's fairness reservation. `slept`: whether this acquire
    /// slept already, in an earlier round; it counts once in the semaphore's waits (see
    /// `counters`).
    #[cold]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn take_contended(
        &self,
        found: Found,
        weight: u32,
        until: Until,
        h: &HolderRecord,
        token: Reservation,
        first: Refused,
        mut attempt: impl FnMut(u32, bool) -> Attempt,
        slept: &mut bool,
    ) -> Result<(), Contended> {
        let rec = self.rec(found);
        let generation = found.generation;
        let lane = lane_of(rec, h);
        let mut seen = match first {
            Refused::Full(w) | Refused::Frozen(w) | Refused::Underflow(w) => w,
            Refused::Removed => return Err(Contended::Removed),
            Refused::Contended => return Err(Contended::Failed(self.contended())),
        };
        if let Until::Now = until {
            let fair = fair_capacity(rec, rec.capacity.load(Relaxed), Reservation::NONE);
            return Err(Contended::Failed(Error::WouldBlock {
                weight,
                available: word::available(seen, fair),
            }));
        }
        // Spin briefly: a holder on another CPU may be about to release (see `SpinLuck`).
        if SpinLuck::spin() {
            for i in 0..SPINS {
                for _ in 0..(1 << i) {
                    std::hint::spin_loop();
                }
                let fair = fair_capacity(rec, rec.capacity.load(Relaxed), Reservation::NONE);
                match attempt(fair, false) {
                    Attempt::Taken { .. } => {
                        SpinLuck::spun(true);
                        note_since(h, weight);
                        return Ok(());
                    }
                    Attempt::Refused(Refused::Removed) => return Err(Contended::Removed),
                    Attempt::Failed(e) => return Err(Contended::Failed(e)),
                    Attempt::Moved => return Err(Contended::Moved),
                    Attempt::Refused(_) | Attempt::Busy => {}
                }
            }
            SpinLuck::spun(false);
        }
        // Sleep. Count ourselves as a waiter in the word so that releases wake us, and show
        // ourselves in the holder record so that `show` and `ps` list us.
        // No clock: the first observer stamps when it saw us waiting (see `holders::parties`).
        h.wait_since_ms.store(0, Relaxed);
        // Release: an observer that sees the weight sees the cleared stamp.
        h.wait_weight.store(weight, Release);
        let watching = self.inner.ns.waiting();
        let mut counted = false;
        let mut reserved = false;
        let result = loop {
            let mut poll = false;
            if !counted {
                // Count ourselves, and when the word is still too full for us, announce the
                // sleep in the same exchange and go to sleep on it straight away.
                // (A waiter for more than 1 reserves its weight first, below.)
                let full_under =
                    (weight == 1).then(|| fair_capacity(rec, rec.capacity.load(Relaxed), token));
                match lane.count_waiter_to_sleep(generation, weight, full_under) {
                    Ok((w, c)) => {
                        counted = c;
                        let full = full_under
                            .is_some_and(|cap| word::value(w) as u64 + weight as u64 > cap as u64);
                        if c && full && word::is_sleeping(w) {
                            // `w` is the word our exchange installed, announced and too full.
                            // (A lane found counted already announced nothing: it takes the
                            // usual way below.)
                            seen = w;
                            if !fits_now(rec, seen, weight, token) {
                                counters::note_sleep(&rec.counters, slept);
                                self.sleep(&watching, rec, seen, until);
                            }
                            continue;
                        }
                    }
                    Err(Refused::Removed) => break Err(Contended::Removed),
                    Err(Refused::Contended) => break Err(Contended::Failed(self.contended())),
                    Err(_) => {} // frozen: counted after the recount; poll meanwhile
                }
            }
            // Fairness: a waiter for more than 1 reserves its weight, so that a stream of small
            // acquires cannot starve it. One reservation at a time; the others queue behind it.
            // Only a counted waiter reserves: the fast path reads no reservation while the word
            // counts nobody (see `take`), so a reservation must never stand without a count.
            // (A waiter that cannot count itself, past `word::MAX_WAITERS`, gets no fairness.)
            if weight > 1 && !reserved && counted {
                reserved = rec
                    .reservation
                    .compare_exchange(Reservation::NONE.bits(), token.bits(), Relaxed, Relaxed)
                    .is_ok();
                if reserved {
                    failpoint::hit("wait:reserved");
                }
            }
            let capacity = match capacity_for(rec, weight) {
                Ok(capacity) => capacity,
                Err(e) => break Err(Contended::Failed(e)),
            };
            let fair = fair_capacity(rec, capacity, token);
            match attempt(fair, counted) {
                Attempt::Taken { uncounted } => {
                    if uncounted {
                        counted = false;
                    }
                    note_since(h, weight);
                    break Ok(());
                }
                Attempt::Refused(Refused::Removed) => break Err(Contended::Removed),
                Attempt::Refused(Refused::Contended) => {
                    break Err(Contended::Failed(self.contended()));
                }
                Attempt::Refused(Refused::Full(w) | Refused::Underflow(w) | Refused::Frozen(w)) => {
                    seen = w
                }
                Attempt::Busy => poll = true,
                Attempt::Failed(e) => break Err(Contended::Failed(e)),
                Attempt::Moved => break Err(Contended::Moved),
            }
            // The only clock read of a wait with a deadline: once per sleep. None without one.
            if let Until::Deadline(deadline, timeout) = until
                && Monotonic::now() >= deadline
            {
                counters::bump(&rec.counters.timeouts, 1);
                break Err(Contended::Failed(Error::Timeout {
                    weight,
                    timeout_ms: timeout.as_millis() as u64,
                }));
            }
            if poll || word::is_frozen(seen) || !counted {
                // A frozen word, a waiter that could not count itself, a record someone else
                // operates: nap, off the futex, so that every futex sleeper is a counted one
                // (see `word::wake_count`).
                nap(POLL_NAP, until);
                continue;
            }
            // Say that we sleep, in a compare-exchange against the word we sleep on: a release
            // in between fails it, and we look again instead.
            match protocol::announce_sleep(&rec.word, seen) {
                Ok(w) => seen = w,
                Err(Some(actual)) => {
                    seen = actual;
                    continue;
                }
                Err(None) => {
                    nap(POLL_NAP, until);
                    continue;
                }
            }
            if !fits_now(rec, seen, weight, token) {
                counters::note_sleep(&rec.counters, slept);
                self.sleep(&watching, rec, seen, until);
            }
        };
        drop(watching);
        if counted {
            self.uncount(&lane, generation);
        }
        if reserved {
            // SeqCst, and the flag cleared before the wake: see `protocol::clear_sleeping`.
            let _ = rec.reservation.compare_exchange(
                token.bits(),
                Reservation::NONE.bits(),
                SeqCst,
                Relaxed,
            );
            if result.is_err() {
                // What we held back is free for the others again.
                protocol::clear_sleeping(&rec.word);
                wait::wake(&rec.word, u32::MAX);
            }
        }
        h.wait_weight.store(0, Relaxed);
        result
    }

    /// Take `weight` on `at` into a record this thread does not own as a lane (an external
    /// holder's, an `FdPermit`'s) with `attempt(capacity)`, waiting as long as `until` allows,
    /// counted and shown in this thread's own record. One round: the caller re-creates a removed
    /// semaphore ([`Contended::Removed`]) or looks the record up again ([`Contended::Moved`]).
    /// `slept`: as for [`Self::take_contended`], kept by the caller across its rounds.
    pub(super) fn take_into(
        &self,
        (found, life): (Found, u64),
        weight: u32,
        until: Until,
        attempt: impl Fn(u32) -> Attempt,
        slept: &mut bool,
    ) -> Result<(), Contended> {
        let me = self
            .inner
            .ns
            .registration()
            .map_err(Contended::Failed)?
            .slot;
        with_lane(|lane| {
            let (h, _) = match self.holder(lane, found, life) {
                Ok(x) => x,
                Err(Error::Removed { .. }) => return Err(Contended::Removed),
                Err(e) => return Err(Contended::Failed(e)),
            };
            let rec = self.rec(found);
            let capacity = capacity_for(rec, weight).map_err(Contended::Failed)?;
            let first = match attempt(fair_capacity(rec, capacity, Reservation::NONE)) {
                Attempt::Taken { .. } => return Ok(()),
                Attempt::Failed(e) => return Err(Contended::Failed(e)),
                Attempt::Moved => return Err(Contended::Moved),
                Attempt::Refused(r) => r,
                Attempt::Busy => Refused::Full(rec.word.load(Relaxed)),
            };
            let token = Reservation::new(me, lane, weight);
            self.take_contended(
                found,
                weight,
                until,
                h,
                token,
                first,
                |fair, _| attempt(fair),
                slept,
            )
        })
    }

    /// One attempt to take `weight` now, never waiting, under the fair capacity left to
    /// `token`: a reservation made for this taker by someone who waits on its behalf (the async
    /// helper, see `future`), or [`Reservation::NONE`]. `Ok(None)`: not now.
    #[cfg(feature = "async")]
    pub(super) fn take_now_for(
        &self,
        weight: u32,
        token: Reservation,
    ) -> Result<Option<(u64, u32)>> {
        if token != Reservation::NONE {
            let at = self.current();
            let tried = with_lane(|lane| -> Result<Tried<()>> {
                let rec = self.rec(at.0);
                let capacity = capacity_for(rec, weight)?;
                match self.holder(lane, at.0, at.1) {
                    Ok((h, _)) => {
                        let fair = fair_capacity(rec, capacity, token);
                        Ok(take_once(rec, h, at.0.generation, weight, fair))
                    }
                    Err(Error::Removed { .. }) => Ok(Err(Refused::Removed)),
                    Err(e) => Err(e),
                }
            })?;
            match tried {
                Ok(()) => {
                    return Ok(Some((
                        super::pack(at.0, at.1),
                        sys::FORK_EPOCH.load(Relaxed),
                    )));
                }
                Err(Refused::Contended) => return Err(self.contended()),
                // Removed: the usual way below re-creates or says so.
                Err(Refused::Removed) => {}
                Err(_) => return Ok(None),
            }
        }
        match self.take(weight, Until::Now) {
            Ok(taken) => Ok(Some(taken)),
            Err(Error::WouldBlock { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stop counting a waiter that leaves without having been uncounted. A recount in progress
    /// is waited for, up to [`FROZEN_PATIENCE`]; past that the lane stays counted (its record says
    /// so, and the count is right again when it next takes weight through that record, or when
    /// the process dies).
    #[cold]
    pub(super) fn uncount(&self, lane: &Lane<'_, AtomicU64, KillPoints>, generation: u16) {
        let since = Monotonic::now();
        while let Err(Refused::Frozen(_)) = lane.uncount_waiter(generation) {
            if Monotonic::now() >= since.after(FROZEN_PATIENCE) {
                return;
            }
            frozen_pause();
        }
    }

    pub(super) fn contended(&self) -> Error {
        Error::corrupt(format!(
            "the state word of semaphore {:?} changed {} times in a row under one operation",
            self.inner.name,
            super::protocol::MAX_RETRIES
        ))
    }

    pub(super) fn removed(&self) -> Error {
        Error::Removed {
            name: self.inner.name.to_string(),
        }
    }
}

/// Why a contended acquire ended without the weight.
#[derive(Debug)]
pub(super) enum Contended {
    /// The semaphore was removed: the caller may create it again.
    Removed,
    /// The record to take into moved (see [`Attempt::Moved`]).
    Moved,
    /// Anything else.
    Failed(Error),
}

/// The capacity left to a taker whose own reservation is `mine` ([`Reservation::NONE`]: none):
/// the capacity, less what another waiter has reserved.
#[inline]
pub(super) fn fair_capacity(rec: &SemRecord, capacity: u32, mine: Reservation) -> u32 {
    Reservation::from_bits(rec.reservation.load(Relaxed)).fair(capacity, mine)
}

/// What one attempt that may be refused gives: `Err` with why it was refused.
pub(super) type Tried<T> = std::result::Result<T, Refused>;

/// The capacity of `rec` now, if `weight` is within it (the weight check of every acquire that
/// is not the fast path, which makes it by the word alone).
#[inline]
fn capacity_for(rec: &SemRecord, weight: u32) -> Result<u32> {
    let capacity = rec.capacity.load(Relaxed);
    check_weight(weight, capacity)?;
    Ok(capacity)
}

/// The one try-once step of every acquire that is not the fast path: take `weight` under
/// `fair` (see [`fair_capacity`]) through holder record `h` on `rec` in one attempt, uncounted,
/// and note when a holding began.
#[inline]
pub(super) fn take_once(
    rec: &SemRecord,
    h: &HolderRecord,
    generation: u16,
    weight: u32,
    fair: u32,
) -> Tried<()> {
    lane_of(rec, h)
        .try_take(generation, weight, fair, false)
        .map(|_| note_since(h, weight))
}

impl From<Tried<()>> for Attempt {
    /// An uncounted attempt's outcome.
    #[inline]
    fn from(tried: Tried<()>) -> Attempt {
        match tried {
            Ok(()) => Attempt::Taken { uncounted: false },
            Err(r) => Attempt::Refused(r),
        }
    }
}

/// How a waiter takes `weight` through its own lane: one attempt under the fair capacity, which
/// a counted waiter makes uncounting itself.
#[inline]
fn own_attempt<'a>(
    lane: &'a Lane<'a, AtomicU64, KillPoints>,
    generation: u16,
    weight: u32,
) -> impl FnMut(u32, bool) -> Attempt + 'a {
    move |fair, counted| match lane.try_take(generation, weight, fair, counted) {
        Ok(_) => Attempt::Taken { uncounted: counted },
        Err(r) => Attempt::Refused(r),
    }
}
