//! The worker operations of an [`Actor`]: acquires, enters, removals, capacity changes,
//! re-opens, lists, reaps, infos, exits across threads and `acquire_for`.

use std::{
    sync::{
        atomic::Ordering::SeqCst,
        mpsc::{Receiver, SyncSender},
    },
    thread,
    time::Duration,
};

use shmsem::{Error, Info};

use crate::{
    actor::{Actor, Token},
    common::roles::holder_list,
    config::{MAX_CAP, NAMES, Rule, SPECS, ns, without},
    witness::{SEQ, Stat},
};

impl Actor {
    // ----- worker operations -----

    pub fn op_loop(&mut self, tx: &SyncSender<Token>) -> ! {
        loop {
            let n = self.rng.below(NAMES);
            match self.rng.below(100) {
                0..=44 => self.acquire_hold(n, tx),
                45..=53 if !without("enter") => self.enter_op(n, tx),
                54..=59 if !without("remove") => self.remove(n, false),
                60..=64 if SPECS[n].rule == Rule::PerIncarnation && !without("remove") => {
                    self.remove(n, !without("force"))
                }
                60..=69 if !without("capacity") => self.set_capacity(n),
                70..=75 => self.reopen(n),
                76..=80 => self.list(),
                81..=83 if !without("reap") => self.reap(),
                84..=92 => self.info(n),
                _ => self.pause(3000),
            }
            self.pause(300);
        }
    }

    fn acquire_hold(&mut self, n: usize, tx: &SyncSender<Token>) {
        let Some(sem) = self.handle(n) else { return };
        let weight = self.weight(n);
        let before = self.seq(n);
        let mode = self.rng.below(10);
        let got = match mode {
            0..=1 => sem.acquire_weight(weight),
            2..=6 => {
                let t = Duration::from_micros(self.rng.range(0, 5000));
                sem.acquire_timeout(weight, t)
            }
            _ => sem.try_acquire(weight),
        };
        let permit = match got {
            Ok(p) => p,
            Err(e) => return self.failed(n, e, "acquire"),
        };
        self.w.bump(match mode {
            0..=1 => Stat::Blocking,
            2..=6 => Stat::Timed,
            _ => Stat::Try,
        });
        let slot = self.inside(n, before, weight, "acquire", &sem);
        self.pause(2000);
        match self.rng.below(20) {
            14..=16 if !without("enter") => {
                permit.forget();
                self.out(slot);
                self.exit(&sem, n, weight, Stat::SelfExits);
            }
            17.. if !without("enter") => {
                permit.forget();
                let token = Token {
                    sem: sem.clone(),
                    n,
                    weight,
                    slot,
                };
                self.hand_over(tx, token);
            }
            _ => {
                self.out(slot);
                drop(permit);
            }
        }
    }

    fn enter_op(&mut self, n: usize, tx: &SyncSender<Token>) {
        let Some(sem) = self.handle(n) else { return };
        let weight = self.weight(n);
        let before = self.seq(n);
        if let Err(e) = sem.enter(weight) {
            return self.failed(n, e, "enter");
        }
        self.w.bump(Stat::Enters);
        let slot = self.inside(n, before, weight, "enter", &sem);
        self.pause(1000);
        if self.rng.below(4) == 0 {
            self.out(slot);
            self.exit(&sem, n, weight, Stat::SelfExits);
        } else {
            self.hand_over(
                tx,
                Token {
                    sem,
                    n,
                    weight,
                    slot,
                },
            );
        }
    }

    fn remove(&mut self, n: usize, force: bool) {
        let Some(sem) = self.handle(n) else { return };
        let bracket = SPECS[n].rule == Rule::PerIncarnation;
        if bracket {
            // Only op threads remove per-incarnation names; others never get here for them.
            assert_ne!(
                self.remover_bit, 0,
                "{} removes without a bracket",
                self.who
            );
            self.w.cell(SEQ + n).fetch_add(self.remover_bit, SeqCst);
        }
        let r = sem.remove(force);
        if bracket {
            // Clear the bit and count a finished removal, in one step.
            self.w
                .cell(SEQ + n)
                .fetch_add(1u64.wrapping_sub(self.remover_bit), SeqCst);
        }
        match r {
            Ok(()) => {
                self.w.bump(if force {
                    Stat::ForceRemoves
                } else {
                    Stat::Removes
                });
                self.handles[n] = None;
            }
            Err(Error::InUse { .. }) => self.w.bump(Stat::RemovesInUse),
            Err(Error::NotFound { .. } | Error::Removed { .. }) => {
                self.w.bump(Stat::RemovesGone);
                self.handles[n] = None;
            }
            Err(e) => self.unexpected(if force { "remove(true)" } else { "remove" }, n, &e),
        }
    }

    fn set_capacity(&mut self, n: usize) {
        let (lo, hi) = SPECS[n].cap;
        if lo == hi {
            return self.info(n);
        }
        let Some(sem) = self.handle(n) else { return };
        let c = self.rng.range(lo.into(), hi.into()) as u32;
        match sem.set_capacity(c) {
            Ok(()) => self.w.bump(Stat::Capacity),
            Err(Error::Removed { .. } | Error::NotFound { .. }) => {
                self.w.bump(Stat::Removed);
                self.handles[n] = None;
            }
            Err(e) => self.unexpected("set_capacity", n, &e),
        }
    }

    /// Removal, capacity changes and idle sweeps, about every millisecond: what the op threads
    /// do, denser, to race every other operation.
    pub fn churn_loop(&mut self) -> ! {
        loop {
            let n = self.rng.below(NAMES);
            match self.rng.below(10) {
                0..=5 if !without("remove") => {
                    let force = SPECS[n].rule == Rule::PerIncarnation
                        && !without("force")
                        && self.rng.coin();
                    self.remove(n, force);
                }
                6..=7 if !without("capacity") => self.set_capacity(n),
                _ => self.list(),
            }
            self.pause(2000);
        }
    }

    /// Drop this thread's handle and open the name again (get-or-create); a re-creation if it
    /// did not exist.
    fn reopen(&mut self, n: usize) {
        match ns().open_existing(SPECS[n].name) {
            Ok(_) => {}
            Err(Error::NotFound { .. }) => self.w.bump(Stat::Recreations),
            Err(e) => self.unexpected("open_existing", n, &e),
        }
        self.handles[n] = None;
        if self.handle(n).is_some() {
            self.w.bump(Stat::Reopens);
        }
    }

    pub fn check_value(&self, info: &Info, what: &str) {
        if info.value > MAX_CAP {
            self.w.violation(
                Stat::VValue,
                format_args!(
                    "{}: {what} shows {} with value {} above every capacity ({MAX_CAP}); \
                     capacity {} holders [{}]",
                    self.who,
                    info.name,
                    info.value,
                    info.capacity,
                    holder_list(info)
                ),
            );
        }
    }

    pub fn list(&mut self) {
        match ns().to_namespace().and_then(|n| n.list()) {
            Ok(infos) => {
                self.w.bump(Stat::Lists);
                for i in &infos {
                    self.check_value(i, "list");
                }
            }
            Err(e) => self.unexpected("list", 0, &e),
        }
    }

    pub fn reap(&mut self) {
        match ns().to_namespace().and_then(|n| n.reap()) {
            Ok(r) => {
                self.w.bump(Stat::Reaps);
                self.w
                    .add(Stat::Reclaimed, r.iter().map(|r| r.weight).sum());
            }
            Err(e) => self.unexpected("reap", 0, &e),
        }
    }

    fn info(&mut self, n: usize) {
        let Some(sem) = self.handle(n) else { return };
        match sem.info() {
            Ok(i) => {
                self.w.bump(Stat::Infos);
                self.check_value(&i, "info");
            }
            Err(Error::Removed { .. } | Error::NotFound { .. }) => {
                self.w.bump(Stat::Removed);
                self.handles[n] = None;
            }
            Err(e) => self.unexpected("info", n, &e),
        }
    }

    /// Acquire and give back without the witness (the reaper, which may die at a kill point):
    /// the witness then holds less than the engine granted, which can hide nothing it checks.
    pub fn unwitnessed(&mut self, n: usize) {
        let Some(sem) = self.handle(n) else { return };
        let weight = self.weight(n);
        let t = Duration::from_micros(self.rng.range(0, 5000));
        match sem.acquire_timeout(weight, t) {
            Ok(p) => {
                self.w.bump(Stat::Unwitnessed);
                self.pause(2000);
                if self.rng.coin() {
                    drop(p);
                } else {
                    p.forget();
                    self.exit(&sem, n, weight, Stat::SelfExits);
                }
            }
            Err(e) => self.failed(n, e, "acquire"),
        }
    }

    pub fn exit_loop(&mut self, rx: Receiver<Token>) {
        for t in rx {
            self.pause(2000);
            self.out(t.slot);
            self.exit(&t.sem, t.n, t.weight, Stat::CrossExits);
        }
    }

    /// Acquire and release on behalf of process `holder`.
    pub fn external_loop(&mut self, holder: u32) -> ! {
        while without("external") {
            thread::sleep(Duration::from_secs(1));
        }
        loop {
            let n = self.rng.below(NAMES);
            if let Some(sem) = self.handle(n) {
                let weight = self.weight(n);
                let before = self.seq(n);
                let timeout = match self.rng.below(4) {
                    0 => Duration::ZERO,
                    _ => Duration::from_micros(self.rng.range(500, 5000)),
                };
                match sem.acquire_for(holder, weight, Some(timeout)) {
                    Ok(()) => {
                        self.w.bump(Stat::External);
                        let slot = self.inside(n, before, weight, "acquire_for", &sem);
                        self.pause(3000);
                        self.out(slot);
                        match sem.release_for(holder, weight) {
                            Ok(()) => self.w.bump(Stat::ExternalReleases),
                            // Force-removed meanwhile: nothing to give back to.
                            Err(
                                Error::NotHeld { .. }
                                | Error::Removed { .. }
                                | Error::NotFound { .. },
                            ) if SPECS[n].rule == Rule::PerIncarnation => {
                                self.w.bump(Stat::Removed);
                                self.handles[n] = None;
                            }
                            Err(e) => self.unexpected("release_for", n, &e),
                        }
                    }
                    Err(e) => self.failed(n, e, "acquire_for"),
                }
            }
            self.pause(1000);
        }
    }
}
