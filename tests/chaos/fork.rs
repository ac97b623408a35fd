//! The forker's rounds: hold, fork, let the child check that it holds nothing of its parent's,
//! wait for it, give back.

use std::{
    io,
    os::unix::process::ExitStatusExt,
    panic::{AssertUnwindSafe, catch_unwind},
    process::ExitStatus,
    sync::atomic::Ordering::SeqCst,
    time::Duration,
};

use shmsem::{Error, Permit, Semaphore};

use crate::{
    actor::{Actor, engine_view},
    common::roles::holder_list,
    config::{NAMES, Rule, SPECS, without},
    rng::Rng,
    witness::{M_PID, Stat, child_owner},
};

impl Actor {
    // ----- fork -----

    /// What process `pid` holds, as `info` shows, must be `expect` on every strict name, and the
    /// value at least that.
    fn check_holdings(&mut self, pid: u32, expect: &[u64; NAMES], when: &str) {
        for (n, &expected) in expect.iter().enumerate() {
            if SPECS[n].rule != Rule::Strict {
                continue;
            }
            let Some(sem) = self.handle(n) else { continue };
            let info = match sem.info() {
                Ok(i) => i,
                Err(Error::Removed { .. } | Error::NotFound { .. }) if expected == 0 => {
                    self.handles[n] = None;
                    continue;
                }
                Err(e) => {
                    self.unexpected(when, n, &e);
                    continue;
                }
            };
            let held: u64 = info
                .holders
                .iter()
                .filter(|p| p.pid == pid)
                .map(|p| p.weight)
                .sum();
            if held != expected || u64::from(info.value) < expected {
                self.w.violation(
                    Stat::VFork,
                    format_args!(
                        "{}: {when}: forker {pid} holds {expected} of {}, but info shows it \
                         holding {held} and a value of {} (holders [{}])",
                        self.who,
                        SPECS[n].name,
                        info.value,
                        holder_list(&info)
                    ),
                );
            }
        }
    }

    /// One round of the forker: hold, fork, let the child try, wait for it, give back.
    pub fn fork_round(&mut self, j: usize) {
        let co = child_owner(j);
        let me = std::process::id();
        let mut expect = [0u64; NAMES];
        // A guarded permit.
        let n1 = self.rng.below(NAMES);
        let sem1 = self.handle(n1);
        let mut hold = None;
        if let Some(sem1) = &sem1 {
            let w1 = self.weight(n1);
            hold = self.acquire_briefly(n1, sem1, w1, "acquire before fork");
            if hold.is_some() {
                expect[n1] += u64::from(w1);
            }
        }
        // Entered weight.
        let n2 = self.rng.below(NAMES);
        let sem2 = self.handle(n2);
        let mut entered = None;
        if let Some(sem2) = &sem2 {
            let w2 = self.weight(n2);
            let before = self.seq(n2);
            let got = if self.rng.below(4) == 0 {
                sem2.enter(w2)
            } else {
                let t = Duration::from_micros(self.rng.range(0, 3000));
                sem2.acquire_timeout(w2, t).map(Permit::forget)
            };
            match got {
                Ok(()) => {
                    let slot = self.inside(n2, before, w2, "enter before fork", sem2);
                    expect[n2] += u64::from(w2);
                    entered = Some((w2, slot));
                }
                Err(e) => self.failed(n2, e, "enter before fork"),
            }
        }
        self.check_holdings(me, &expect, "before fork");
        if without("fork") {
            self.pause(2000);
        } else {
            self.w.bump(Stat::Forks);
            // SAFETY: fork(2) has no preconditions; this process is single-threaded apart from
            // libtest's main thread, which only waits for this test, so the child may run Rust
            // code (glibc keeps malloc usable after fork).
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                let entered_child = match (&sem2, entered) {
                    (Some(s), Some((w2, _))) => Some((s, w2)),
                    _ => None,
                };
                self.fork_child(co, me, hold, entered_child, &expect);
            }
            self.wait_fork_child(co, pid);
            self.check_holdings(me, &expect, "after its fork child ended");
        }
        if let Some((p, slot)) = hold {
            self.out(slot);
            drop(p);
        }
        if let (Some(sem2), Some((w2, slot))) = (&sem2, entered) {
            self.out(slot);
            self.exit(sem2, n2, w2, Stat::SelfExits);
        }
    }

    /// Wait for the fork child `pid` (what `fork` returned) of fork-child owner `co`, recorded
    /// as its pid meanwhile; count how it ended.
    fn wait_fork_child(&mut self, co: usize, pid: i32) {
        if pid < 0 {
            self.w.bump(Stat::Errors);
            self.w.say(format_args!(
                "{}: fork: {}",
                self.who,
                io::Error::last_os_error()
            ));
            return;
        }
        self.w.meta(co, M_PID).store(pid as u64, SeqCst);
        let status = wait_pid(pid);
        match (status.code(), status.signal()) {
            (Some(0), _) => {}
            (_, Some(libc::SIGKILL)) => self.w.bump(Stat::ForkChildKilled),
            _ => {
                self.w.bump(Stat::Errors);
                self.w.say(format_args!(
                    "{}: fork child {pid} ended with {status:?}",
                    self.who
                ));
            }
        }
        self.w.meta(co, M_PID).store(0, SeqCst);
    }

    /// The child side of a fork: never returns.
    fn fork_child(
        &mut self,
        co: usize,
        forker: u32,
        hold: Option<(Permit<'_>, Option<usize>)>,
        entered: Option<(&Semaphore, u32)>,
        expect: &[u64; NAMES],
    ) -> ! {
        let me = std::process::id();
        self.w.meta(co, M_PID).store(u64::from(me), SeqCst);
        // SAFETY: prctl(PR_SET_PDEATHSIG) and getppid take and return integers only.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() as u32 != forker {
                libc::_exit(0);
            }
        }
        self.owner = co;
        self.rng = Rng::seeded();
        self.who = format!("fork child (pid {me}) of forker {forker}");
        let body = catch_unwind(AssertUnwindSafe(|| {
            self.fork_child_body(forker, hold, entered, expect)
        }));
        let code = match body {
            Ok(()) => 0,
            Err(_) => 101,
        };
        self.w.leave_all(co);
        // SAFETY: _exit ends the child without running the parent's destructors or atexit
        // handlers.
        unsafe { libc::_exit(code) }
    }

    fn fork_child_body(
        &mut self,
        forker: u32,
        hold: Option<(Permit<'_>, Option<usize>)>,
        entered: Option<(&Semaphore, u32)>,
        expect: &[u64; NAMES],
    ) {
        // The parent's entered weight is not the child's to give back.
        if let Some((sem, w2)) = entered {
            match sem.exit(w2) {
                Err(Error::NotHeld { .. }) => self.w.bump(Stat::ForkChecks),
                Ok(()) => self.w.violation(
                    Stat::VFork,
                    format_args!(
                        "{}: exit({w2}) of {} returned Ok in the child: it gave back weight \
                         its parent entered; {}",
                        self.who,
                        sem.name(),
                        engine_view(sem)
                    ),
                ),
                Err(e) => {
                    let n = SPECS.iter().position(|s| s.name == sem.name()).unwrap_or(0);
                    self.unexpected("exit of the parent's weight in a fork child", n, &e);
                }
            }
        }
        // Nor is its guard: dropping the child's copy gives nothing back. (Its witness entry
        // is the parent's.)
        drop(hold);
        self.check_holdings(forker, expect, "in its fork child");
        for _ in 0..self.rng.range(1, 3) {
            let n = self.rng.below(NAMES);
            let Some(sem) = self.handle(n) else { continue };
            let weight = self.weight(n);
            if let Some((p, slot)) =
                self.acquire_briefly(n, &sem, weight, "acquire in a fork child")
            {
                self.w.bump(Stat::ChildGrants);
                self.pause(1000);
                self.out(slot);
                drop(p);
            }
        }
        self.check_holdings(forker, expect, "in its fork child, after its own acquires");
    }

    /// Take `weight` of name `n` at once or within up to 3 ms, at random, and put it in the
    /// witness: the permit and its witness entry, or `None` if it was not granted.
    fn acquire_briefly<'s>(
        &mut self,
        n: usize,
        sem: &'s Semaphore,
        weight: u32,
        what: &str,
    ) -> Option<(Permit<'s>, Option<usize>)> {
        let before = self.seq(n);
        let got = if self.rng.coin() {
            sem.try_acquire(weight)
        } else {
            sem.acquire_timeout(weight, Duration::from_micros(self.rng.range(0, 3000)))
        };
        match got {
            Ok(p) => Some((p, self.inside(n, before, weight, what, sem))),
            Err(e) => {
                self.failed(n, e, what);
                None
            }
        }
    }
}

fn wait_pid(pid: i32) -> ExitStatus {
    let mut status = 0;
    loop {
        // SAFETY: waitpid writes the status of our child `pid` into `status`.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return ExitStatus::from_raw(status);
        }
        let e = io::Error::last_os_error();
        assert_eq!(e.kind(), io::ErrorKind::Interrupted, "waitpid({pid}): {e}");
    }
}
