//! Learning of deaths from the kernel: an exit handle (`sys::exit_handle`) for every process
//! registered in a namespace, slept on all at once, so that the watcher of the namespace (see
//! `namespace::watch`) wakes as soon as one of them dies, rather than looking every so often.
//!
//! A handle is opened by pid and then checked against the slot's pid and start time: a process
//! that died before the open (its pid perhaps taken by another) is found dead at once. Slots
//! that cannot be watched this way — a process of another pid namespace, more processes than
//! [`MAX_WATCHED`], a kernel without exit handles — are *uncovered*: the watcher then reclaims at every
//! period instead, as every waiter used to.

use std::{
    collections::HashMap,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
    sync::atomic::Ordering::Acquire,
    time::Duration,
};

use super::{ENGINE, EXTERNAL, kind, slot_generation};
use crate::{
    segment::{Segment, layout::MAX_PROCESSES},
    sys::{self, ExitHandle, Identity, Liveness},
};

/// Most processes watched by exit handle (each is a descriptor of the watching process).
pub const MAX_WATCHED: usize = 256;

/// What a slot held when its exit handle was opened: a new registration in the slot is a new process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Occupant {
    generation: u32,
    who: Identity,
}

/// The exit handles of the processes registered in one namespace.
#[derive(Debug, Default)]
pub struct Deaths {
    /// Slot → its occupant and the handle that says when it exits.
    watched: HashMap<u32, (Occupant, OwnedFd)>,
    /// Some registered process is not watched by exit handle.
    uncovered: bool,
    /// Some process was found dead while the set was refreshed.
    found_dead: bool,
    /// `Header::registrations` when the set was last refreshed (`None`: never).
    seen: Option<u32>,
}

impl Deaths {
    /// Bring the set up to date with the slots of `seg` (all but `me`), if any slot was taken
    /// since the last time (or `force`). Cheap when nothing changed: one load. Whether the caller
    /// should reclaim now: a registered process was found dead.
    pub fn refresh(&mut self, seg: &Segment, me: Option<u32>, force: bool) -> bool {
        // Acquire: pairs with the Release bump after a slot is filled.
        let registrations = seg.header().registrations.load(Acquire);
        if !force && self.seen == Some(registrations) {
            return std::mem::take(&mut self.found_dead);
        }
        self.seen = Some(registrations);
        let pidns = sys::pid_namespace();
        let mut live: HashMap<u32, Occupant> = HashMap::new();
        let mut uncovered = false;
        for slot in 0..MAX_PROCESSES {
            if Some(slot) == me {
                continue;
            }
            let Some(s) = seg.proc_slot(slot) else { break };
            let state = s.state.load(Acquire);
            if !matches!(kind(state), ENGINE | EXTERNAL) {
                continue;
            }
            if s.pidns.load(Acquire) != pidns {
                uncovered = true; // its pid means nothing here
                continue;
            }
            let occupant = Occupant {
                generation: slot_generation(state),
                who: Identity {
                    pid: s.pid.load(Acquire),
                    start_time: s.start_time.load(Acquire),
                },
            };
            live.insert(slot, occupant);
        }
        self.watched
            .retain(|slot, (o, _)| live.get(slot) == Some(o));
        for (slot, occupant) in live {
            if self.watched.contains_key(&slot) {
                continue;
            }
            if self.watched.len() >= MAX_WATCHED {
                uncovered = true;
                continue;
            }
            match sys::exit_handle(occupant.who.pid) {
                ExitHandle::Open(fd) => {
                    // Opened by pid: make sure it is still the process the slot recorded.
                    if sys::liveness(occupant.who) == Liveness::Dead {
                        self.found_dead = true;
                    } else {
                        self.watched.insert(slot, (occupant, fd));
                    }
                }
                ExitHandle::Gone => self.found_dead = true,
                ExitHandle::Unavailable => uncovered = true,
            }
        }
        self.uncovered = uncovered;
        std::mem::take(&mut self.found_dead)
    }

    /// Make the next [`Self::refresh`] look at every slot, changed or not.
    pub fn look_again(&mut self) {
        self.seen = None;
    }

    /// `Header::registrations` as of the last refresh.
    pub fn seen(&self) -> Option<u32> {
        self.seen
    }

    /// Sleep until a watched process dies, `kick` is readable, or `period` passes. Whether the
    /// caller should reclaim now: someone died, or some process is uncovered.
    pub fn wait(&mut self, kick: BorrowedFd<'_>, period: Duration) -> bool {
        let mut fds: Vec<_> = self.watched.values().map(|(_, fd)| fd.as_fd()).collect();
        fds.push(kick);
        // An error (which poll does not give for valid descriptors) counts as a death: the
        // reclaim that follows decides by the locks anyway.
        let ready = sys::poll_readable(&fds, period).unwrap_or(Some(0));
        let died = ready.is_some_and(|i| i < fds.len() - 1);
        if died {
            // A readable exit handle stays readable: forget it, and look at the slots again after the
            // reclaim (which frees the dead one's slot).
            self.watched.clear();
            self.seen = None;
        }
        died || self.uncovered
    }
}
