//! What a thread of a role process acts with: its witness owner, its handles, its randomness,
//! and how it puts grants in the witness and counts errors.

use std::{
    sync::{
        atomic::Ordering::SeqCst,
        mpsc::{SyncSender, TrySendError},
    },
    thread,
    time::Duration,
};

use shmsem::{Error, Options, Semaphore};

use crate::{
    common::roles::holder_list,
    config::{LOCK_PATIENCE_MS, NAMES, Rule, SPECS, ns, without},
    rng::Rng,
    witness::{Entered, GRANTS_BY_NAME, SEQ, Stat, Witness},
};

pub fn engine_view(sem: &Semaphore) -> String {
    match sem.info() {
        Ok(i) => format!(
            "engine now: value {} capacity {} holders [{}] waiters {}",
            i.value,
            i.capacity,
            holder_list(&i),
            i.waiters.len()
        ),
        Err(e) => format!("engine now: info failed: {e}"),
    }
}

/// Entered weight handed to the exiter thread.
pub struct Token {
    pub sem: Semaphore,
    pub n: usize,
    pub weight: u32,
    pub slot: Option<usize>,
}

/// One thread's view: its witness owner, its handles, its randomness.
pub struct Actor {
    pub w: &'static Witness,
    pub owner: usize,
    pub who: String,
    pub rng: Rng,
    pub handles: Vec<Option<Semaphore>>,
    /// Its bit in the removal brackets; 0 if it never removes a per-incarnation name.
    pub remover_bit: u64,
}

impl Actor {
    pub fn new(w: &'static Witness, owner: usize, who: String) -> Actor {
        Actor {
            w,
            owner,
            who: format!("{who} (pid {})", std::process::id()),
            rng: Rng::seeded(),
            handles: (0..NAMES).map(|_| None).collect(),
            remover_bit: 0,
        }
    }

    pub fn pause(&mut self, max_us: u64) {
        let us = self.rng.range(0, max_us);
        if us > 0 {
            thread::sleep(Duration::from_micros(us));
        }
    }

    fn options(&mut self, n: usize) -> Options {
        let s = &SPECS[n];
        let o = ns().capacity(self.rng.range(s.cap.0.into(), s.cap.1.into()) as u32);
        if s.persistent {
            o.persistent()
        } else if without("idle") {
            o.auto(Duration::from_secs(60))
        } else {
            o.auto(Duration::from_millis(self.rng.range(5, 50)))
        }
    }

    /// This thread's handle of name `n`, opened (get-or-create) if it has none.
    pub fn handle(&mut self, n: usize) -> Option<Semaphore> {
        if self.handles[n].is_none() {
            let opts = self.options(n);
            match opts.open(SPECS[n].name) {
                Ok(s) => self.handles[n] = Some(s),
                Err(e) => {
                    self.unexpected("open", n, &e);
                    return None;
                }
            }
        }
        self.handles[n].clone()
    }

    pub fn weight(&mut self, n: usize) -> u32 {
        match self.rng.below(20) {
            0..=11 => 1,
            12..=16 => 2,
            _ => self.rng.range(1, SPECS[n].cap.1.into()) as u32,
        }
    }

    /// The removal sequence word of a per-incarnation name (0 for the others).
    pub fn seq(&self, n: usize) -> u64 {
        match SPECS[n].rule {
            Rule::Strict => 0,
            Rule::PerIncarnation => self.w.get(SEQ + n),
        }
    }

    pub fn unexpected(&self, what: &str, n: usize, e: &Error) {
        self.w.bump(Stat::Errors);
        self.w.say(format_args!(
            "{}: {what} on {}: unexpected error: {e} ({e:?})",
            self.who, SPECS[n].name
        ));
    }

    /// An acquire-like call failed with `e`.
    pub fn failed(&mut self, n: usize, e: Error, what: &str) {
        match e {
            Error::Timeout { .. } => self.w.bump(Stat::Timeouts),
            Error::WouldBlock { .. } => {
                self.w.bump(Stat::WouldBlock);
                self.pause(300);
            }
            // A capacity lowered by another process.
            Error::WeightTooLarge { .. } => self.w.bump(Stat::TooLarge),
            // A lock of the namespace held past the caller's own deadline by another process
            // (perhaps one just killed, whose descriptors the test keeps for a moment). Without
            // a deadline the engine waits [`LOCK_PATIENCE_MS`], and that is unexpected here.
            Error::Busy { waited_ms, .. } if waited_ms < LOCK_PATIENCE_MS => {
                self.w.bump(Stat::Busy);
            }
            // Removed under us: open again next time (get-or-create).
            Error::Removed { .. } | Error::NotFound { .. } => {
                self.w.bump(Stat::Removed);
                self.handles[n] = None;
            }
            e => self.unexpected(what, n, &e),
        }
    }

    /// The engine granted `weight` of name `n` (the sequence word read before asking was
    /// `before`): put it in the witness and check.
    pub fn inside(
        &mut self,
        n: usize,
        before: u64,
        weight: u32,
        what: &str,
        sem: &Semaphore,
    ) -> Option<usize> {
        self.w.bump(Stat::Grants);
        self.w.cell(GRANTS_BY_NAME + n).fetch_add(1, SeqCst);
        let label = match SPECS[n].rule {
            Rule::Strict => None,
            Rule::PerIncarnation => {
                let after = self.w.get(SEQ + n);
                if after == before && after >> 32 == 0 {
                    Some(after as u32)
                } else {
                    self.w.bump(Stat::Unlabelled);
                    None
                }
            }
        };
        loop {
            match self.w.enter(self.owner, n, label, weight) {
                Entered::In { slot, inside } => {
                    let bound = u64::from(SPECS[n].cap.1);
                    if inside > bound {
                        let (stat, scope) = match label {
                            Some(l) => (Stat::VIncarnation, format!("incarnation {l} of")),
                            None => (Stat::VStrict, "all incarnations of".to_owned()),
                        };
                        self.w.violation(
                            stat,
                            format_args!(
                                "{}: {what} granted {weight} of {}; now {inside} inside {scope} \
                                 it, above its highest capacity {bound}; {}",
                                self.who,
                                SPECS[n].name,
                                engine_view(sem)
                            ),
                        );
                    }
                    return Some(slot);
                }
                Entered::Doomed => self.w.await_undoomed(self.owner),
                Entered::Full => {
                    self.w.bump(Stat::WitnessFull);
                    return None;
                }
            }
        }
    }

    /// Take a witness entry out, right before giving the weight back.
    pub fn out(&self, slot: Option<usize>) {
        if let Some(slot) = slot {
            self.w.leave(self.owner, slot);
        }
    }

    pub fn exit(&self, sem: &Semaphore, n: usize, weight: u32, stat: Stat) {
        match sem.exit(weight) {
            Ok(()) => self.w.bump(stat),
            Err(e) => self.unexpected("exit", n, &e),
        }
    }

    /// Give entered weight to the exiter thread, or exit it here if its queue is full.
    pub fn hand_over(&mut self, tx: &SyncSender<Token>, token: Token) {
        match tx.try_send(token) {
            Ok(()) => {}
            Err(TrySendError::Full(t) | TrySendError::Disconnected(t)) => {
                self.out(t.slot);
                self.exit(&t.sem, t.n, t.weight, Stat::SelfExits);
            }
        }
    }
}
