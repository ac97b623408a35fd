//! The watcher: while processes wait on a namespace's semaphores, one of them watches the others
//! for deaths, and every other waiter sleeps with no timer (DESIGN §6).
//!
//! Each process that waits in a namespace has a *watch thread* for it (`shmsem-watch`), started
//! by its first waiting thread and kept for the life of the process:
//!
//! | state | the watch thread | until |
//! |---|---|---|
//! | idle | sleeps on this process's count of waiting threads | a thread of this process waits |
//! | queued | blocks on the namespace's watch lock byte ([`WATCH_LOCK`]) | it holds the lock: the watcher stopped watching, or died |
//! | watching | holds the lock, sleeps on the exit handles of every registered process (see `holders::watch`), and reclaims when one dies | no thread of this process has waited for [`LINGER`]; then it unlocks |
//!
//! The watcher lingers so that a process that waits again and again (a contended hand-off)
//! neither wakes its watch thread nor passes the role on each time: a waiting thread makes a
//! system call for its watch thread only when that thread is idle.
//!
//! So at most one process per namespace watches, the others' watch threads are blocked in the
//! kernel, and waiting threads sleep until a release, a reclaim or their own deadline wakes them.
//! The role passes on without a timer: when the watcher stops waiting its thread unlocks, and
//! when it dies the kernel drops its lock; either way the kernel hands the byte to a queued
//! thread, which looks at every slot first (a holder that died meanwhile is found dead at once).
//! A releaser killed between giving back and waking is a dead process like any other: the
//! reclaim recounts what it touched and wakes every waiter there.
//!
//! The lock is taken through a description of the segment file opened for it alone and closed in
//! forked children (see `sys::close_in_forked_children`), so a child never keeps a dead parent's
//! role. A process that cannot start a watch thread has its waiters fall back to sleeping at most
//! [`crate::semaphore`]'s bounded sleep and reclaiming themselves.

use std::{
    os::fd::{AsFd, BorrowedFd, OwnedFd},
    sync::{
        Arc,
        atomic::{
            AtomicBool, AtomicU32, AtomicU64,
            Ordering::{AcqRel, Acquire, Relaxed, Release},
        },
    },
    time::Duration,
};

use super::Namespace;
use crate::{
    holders::{WATCH_LOCK, watch::Deaths},
    sys,
    wait::{self, Monotonic},
};

/// How often the watcher looks at the slots for processes registered since it last looked (a
/// load when none was), and, when some registered process cannot be watched by exit handle, reclaims.
pub const WATCH_PERIOD: Duration = Duration::from_millis(50);

/// How long the watcher goes on watching after the last of its process's waiters left.
pub const LINGER: Duration = Duration::from_secs(1);

/// Whether waiting processes start watch threads (see [`watch_for_deaths`]).
static WATCHING: AtomicBool = AtomicBool::new(true);

/// Start watch threads (the default), or not: waiters then sleep at most the bounded sleep and
/// reclaim themselves, so no reclaim runs behind the caller's back. For models that must know
/// when reclaims happen (the `ops` fuzz target); not a stable interface.
pub fn watch_for_deaths(on: bool) {
    WATCHING.store(on, Relaxed);
}

/// In the low half of [`Watch::waiting`]: the watch thread is idle, asleep on the word.
const IDLE: u32 = 1 << 31;

/// A process's waiting threads in one namespace, and its watch thread.
#[derive(Debug, Default)]
pub struct Watch {
    /// `fork epoch << 32 | IDLE? | threads of this process waiting in the namespace`; an idle
    /// watch thread sets `IDLE` and sleeps on the low half while it is `IDLE` alone, and clears
    /// it when it wakes; a thread that starts waiting and finds `IDLE` wakes it. A count of
    /// another epoch is a parent's: 0 here.
    waiting: AtomicU64,
    /// `fork epoch + 1` of the process whose watch thread was started (0: none yet).
    started: AtomicU32,
    /// While this process's watch thread watches: `1 << 32 | Header::registrations` as of its
    /// last look at the slots; else 0. A thread that starts waiting and sees more registrations
    /// rings [`Self::bell`], so the watcher looks at the newcomers now rather than within
    /// [`WATCH_PERIOD`].
    watching: AtomicU64,
    /// Wakes the watch thread from its `poll`: `(fork epoch + 1) << 32 | descriptor` of this
    /// process's eventfd (0: none yet). Each process makes its own: a forked child's copy of
    /// the parent's is closed at the fork (see `sys::close_in_forked_children`), and its epoch
    /// is not the child's.
    bell: AtomicU64,
}

impl Watch {
    /// This process's doorbell, made by its first watch thread of fork epoch `epoch`.
    fn bell(&self, epoch: u32) -> Option<BorrowedFd<'_>> {
        let bits = self.bell.load(Acquire);
        if bits >> 32 != epoch as u64 + 1 {
            return None;
        }
        // SAFETY: a descriptor this process made in this fork epoch and never closes (a forked
        // child's copy is closed by the fork hook, but the child's epoch is another).
        Some(unsafe { BorrowedFd::borrow_raw(bits as u32 as i32) })
    }
}

/// The count of waiting threads in `waiting`, for fork epoch `epoch`.
fn waiting_of(bits: u64, epoch: u32) -> u32 {
    if (bits >> 32) as u32 == epoch {
        bits as u32 & !IDLE
    } else {
        0
    }
}

/// `waiting` for `epoch` with `count` threads, not idle.
fn waiting_word(epoch: u32, count: u32) -> u64 {
    (epoch as u64) << 32 | count as u64
}

/// A thread of this process waiting in a namespace; dropped when it stops waiting.
#[derive(Debug)]
pub struct Waiting<'a> {
    watch: &'a Watch,
    watched: bool,
}

impl Waiting<'_> {
    /// Whether a watch thread looks after this waiter: it may sleep with no timer. Otherwise it
    /// sleeps a bounded time and reclaims itself.
    pub fn watched(&self) -> bool {
        self.watched
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        // The guard lives on the thread that counted itself, in the same fork epoch (a fork
        // keeps only the forking thread, which is not waiting), so the count is ours and > 0.
        self.watch.waiting.fetch_sub(1, AcqRel);
    }
}

impl Namespace {
    /// Count the calling thread as waiting in this namespace until the guard drops, and make
    /// sure this process's watch thread runs.
    #[inline]
    pub fn waiting(self: &Arc<Self>) -> Waiting<'_> {
        let epoch = sys::FORK_EPOCH.load(Relaxed);
        let watch = &self.watch;
        let mut before = watch.waiting.fetch_add(1, AcqRel);
        if (before >> 32) as u32 != epoch {
            // A parent's count, inherited through a fork: this process's count starts at 1.
            before = watch
                .waiting
                .fetch_update(AcqRel, Acquire, |bits| {
                    Some(waiting_word(epoch, waiting_of(bits, epoch) + 1))
                })
                .unwrap_or_else(|bits| bits);
        }
        if before & IDLE as u64 != 0 {
            // The watch thread is idle, asleep on the count.
            wait::wake(&watch.waiting, u32::MAX);
        }
        let looked = watch.watching.load(Acquire);
        if looked >> 32 == 1
            && looked as u32 != self.seg.header().registrations.load(Acquire)
            && let Some(bell) = watch.bell(epoch)
        {
            // Someone registered since the watcher last looked: perhaps whoever we wait for.
            sys::ring(bell.as_fd());
        }
        let watched = WATCHING.load(Relaxed)
            && (watch.started.load(Acquire) == epoch + 1 || self.start_watch(epoch));
        Waiting { watch, watched }
    }

    /// Start this process's watch thread for the namespace, once per fork epoch. Whether it runs.
    #[cold]
    fn start_watch(self: &Arc<Self>, epoch: u32) -> bool {
        let was = self.watch.started.load(Acquire);
        if was == epoch + 1 {
            return true;
        }
        if self
            .watch
            .started
            .compare_exchange(was, epoch + 1, AcqRel, Acquire)
            .is_err()
        {
            return self.watch.started.load(Acquire) == epoch + 1;
        }
        let description = match sys::reopen(self.seg.file().as_fd()) {
            Ok(file) => OwnedFd::from(file),
            Err(_) => {
                self.watch.started.store(0, Relaxed);
                return false;
            }
        };
        if self.watch.bell(epoch).is_none() {
            match sys::doorbell() {
                Ok(bell) => {
                    sys::close_in_forked_children(bell.as_fd());
                    let fd = std::os::fd::IntoRawFd::into_raw_fd(bell);
                    self.watch
                        .bell
                        .store((epoch as u64 + 1) << 32 | fd as u32 as u64, Release);
                }
                Err(_) => {
                    self.watch.started.store(0, Relaxed);
                    return false;
                }
            }
        }
        // Closed in a forked child, so that only this process holds its watch lock; never
        // closed here (the registration keeps its number), for the same reason.
        sys::close_in_forked_children(description.as_fd());
        let ns = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("shmsem-watch".into())
            .spawn(move || ns.watch_thread(description, epoch));
        if spawned.is_err() {
            self.watch.started.store(0, Relaxed);
            return false;
        }
        true
    }

    /// The watch thread: idle, queued, watching, idle, … for the life of the process (or until
    /// it turns out to run in a forked child's copy of the state, which it never does: threads
    /// do not survive a fork).
    fn watch_thread(self: Arc<Self>, description: OwnedFd, epoch: u32) {
        let fd = description.as_fd();
        loop {
            // Idle: sleep while no thread of this process waits here.
            loop {
                let idle = waiting_word(epoch, IDLE);
                match self.watch.waiting.compare_exchange(
                    waiting_word(epoch, 0),
                    idle,
                    AcqRel,
                    Acquire,
                ) {
                    Ok(_) => {
                        wait::wait(&self.watch.waiting, idle as u32, None);
                    }
                    Err(bits) if bits == idle => {
                        wait::wait(&self.watch.waiting, idle as u32, None);
                    }
                    Err(_) => break, // someone waits
                }
            }
            self.watch.waiting.fetch_and(!(IDLE as u64), AcqRel);
            // Queued: the kernel hands the byte over when its holder unlocks or dies.
            if sys::lock_byte_wait(fd, WATCH_LOCK).is_err() {
                std::thread::sleep(WATCH_PERIOD);
                continue;
            }
            self.watch_while_waiting(epoch);
            let _ = sys::unlock_byte(fd, WATCH_LOCK);
        }
    }

    /// Watching: reclaim whenever a registered process dies, until no thread of this process
    /// has waited here for [`LINGER`].
    fn watch_while_waiting(&self, epoch: u32) {
        let Some(bell) = self.watch.bell(epoch) else {
            return;
        };
        let me = {
            let _inside = sys::enter_fork_gate();
            self.registration().ok().map(|r| r.slot)
        };
        let mut deaths = Deaths::default();
        // Whatever died while nobody watched is found by the first reclaim.
        let mut reclaim = true;
        let mut last_seen_waiting = Monotonic::now();
        loop {
            if waiting_of(self.watch.waiting.load(Acquire), epoch) > 0 {
                last_seen_waiting = Monotonic::now();
            } else if Monotonic::now() >= last_seen_waiting.after(LINGER) {
                break;
            }
            // Library locks are taken only inside the fork gate (see `sys::enter_fork_gate`).
            let inside = sys::enter_fork_gate();
            if reclaim {
                let _ = self.reclaim();
                // Look at every slot again: a process found dead may still be closing its
                // descriptors (its slot lock not dropped yet: the lock handed to us here may be
                // the first of its locks the kernel dropped), or the reclaim may have deferred.
                deaths.look_again();
            }
            let dead = deaths.refresh(&self.seg, me, false);
            drop(inside);
            if dead && !reclaim {
                // Died before we looked, since the last reclaim: reclaim now.
                reclaim = true;
                continue;
            }
            if let Some(seen) = deaths.seen() {
                self.watch.watching.store(1 << 32 | seen as u64, Release);
            }
            // Still dead right after a reclaim: try again after the sleep, every period until
            // its slot is free.
            reclaim = deaths.wait(bell, WATCH_PERIOD) || dead;
            sys::silence(bell);
        }
        self.watch.watching.store(0, Release);
    }
}
