//! Whether the process behind a process slot lives: the one question a reclaimer asks before it
//! gives anything back, behind a trait so that the reclaimer can also be driven by a table.
//!
//! A probe of a slot answers one of:
//!
//! | answer | what was found | what the reclaimer may do |
//! |---|---|---|
//! | [`Probe::Operated`] | someone holds the slot's lock byte: its live engine process, or a process acting for its external holder (a CLI, a registering process, another reclaimer) | nothing: its records count as live, and a recount it runs is left to it |
//! | [`Probe::Dead`] | the byte was free and the slot's process is gone: an engine process (which holds its byte while it lives), or an external holder whose pid and start time name no running process | recount every semaphore its records name, then free its records and slot |
//! | [`Probe::Quiescent`] | the byte was free and the external holder lives, with nobody acting for it | free the slot if it holds nothing, else recount the semaphores of records left mid-operation; what it holds stays |
//! | [`Probe::Free`] | the byte was free and nobody is registered there (freed since the caller looked) | nothing |
//!
//! Every answer but `Operated` leaves the caller holding the slot's lock byte (taken with
//! [`super::lock_slot`]), which it gives back with [`super::unlock_slot`]: while it holds it,
//! nobody registers in the slot or acts for its holder.
//!
//! [`Os`] asks the kernel, as the engine does. The tests also have a table of the processes that
//! live, which they change at will ("slot 3's process is now dead"), so that the reclaimer can be
//! checked without real processes.

use std::sync::atomic::Ordering::{Acquire, Relaxed};

use super::{Ctx, ENGINE, EXTERNAL, kind, lock_offset};
use crate::{
    error::{Error, Result},
    sys::{self, Identity},
};

/// How a slot other than the caller's looks to a reclaimer (see the module's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Someone holds its lock byte: a live process, or a process acting for it.
    Operated,
    /// The caller took its lock byte; the holder is dead.
    Dead,
    /// The caller took its lock byte; the holder (external) is alive.
    Quiescent,
    /// The caller took its lock byte; nobody is registered there.
    Free,
}

/// Tells whether the processes registered in a namespace's process slots live.
///
/// A reclaimer takes one as a parameter: the engine passes [`Os`], the tests a table of the
/// processes they declare alive. Both decide the same way for what they can see, which one
/// suite of tests checks for both.
///
/// # Examples
///
/// The trait is internal to the crate, so this is not compiled; the module's tests run the same
/// steps.
///
/// ```text
/// let probe = Os.probe(ctx, slot)?;
/// match probe {
///     Probe::Operated => {}                       // someone is there: leave it
///     Probe::Dead => dead.push(slot),             // recount, then free (byte still held)
///     Probe::Quiescent | Probe::Free => unlock_slot(ctx, slot),
/// }
/// ```
pub trait Liveness {
    /// Probe `slot`, which is not the caller's own: take its lock byte if nobody holds it, and
    /// judge the process registered there. Every answer but [`Probe::Operated`] leaves the
    /// caller holding the byte.
    fn probe(&self, ctx: Ctx<'_>, slot: u32) -> Result<Probe>;

    /// Whether a process may be alive in `slot`, judged without taking anything: a recount
    /// claimed in the slot's name is then not taken over. Unknown counts as alive.
    fn may_live(&self, ctx: Ctx<'_>, slot: u32) -> bool;
}

/// The recorded identity of the process in `slot`.
fn recorded(s: &crate::segment::layout::ProcSlot) -> Identity {
    Identity {
        pid: s.pid.load(Relaxed),
        start_time: s.start_time.load(Relaxed),
    }
}

/// The kernel's view: an engine process lives while it holds its slot's lock byte (the kernel
/// drops the lock when the process dies, however it dies); an external holder lives while its
/// pid names a process with its start time (see `sys::liveness`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Os;

impl Liveness for Os {
    #[cold]
    fn probe(&self, ctx: Ctx<'_>, slot: u32) -> Result<Probe> {
        let s = ctx
            .seg
            .proc_slot(slot)
            .ok_or_else(|| Error::corrupt("slot out of bounds"))?;
        if !super::lock_slot(ctx, slot)? {
            return Ok(Probe::Operated);
        }
        // Acquire: the identity stored before the kind (Release) is seen with it.
        let st = s.state.load(Acquire);
        Ok(match kind(st) {
            ENGINE => Probe::Dead,
            EXTERNAL => match sys::liveness(recorded(s)) {
                sys::Liveness::Alive => Probe::Quiescent,
                sys::Liveness::Dead => Probe::Dead,
            },
            _ => Probe::Free,
        })
    }

    #[cold]
    fn may_live(&self, ctx: Ctx<'_>, slot: u32) -> bool {
        super::locked_here(ctx, slot) || sys::byte_locked(ctx.fd, lock_offset(slot)).unwrap_or(true)
    }
}

#[cfg(test)]
pub use self::declared::Declared;

#[cfg(test)]
mod declared {
    use std::{collections::HashSet, sync::Mutex, sync::atomic::Ordering::Acquire};

    use super::{Liveness, Probe, recorded};
    use crate::{
        error::{Error, Result},
        holders::{Ctx, ENGINE, EXTERNAL, kind, lock_offset, lock_slot, locked_here, unlock_slot},
        segment::Segment,
        sys::{self, Identity},
    };

    /// The processes a test declares alive, by pid and start time: every other process is dead.
    /// Lock bytes keep their part in who may change a slot (a byte someone else holds means the
    /// slot is operated), but an engine process is judged by the table, not by whether it holds
    /// its byte: a test records slots for processes that never ran.
    #[derive(Debug, Default)]
    pub struct Declared {
        alive: Mutex<HashSet<Identity>>,
    }

    impl Declared {
        /// Declare `who` alive.
        pub fn born(&self, who: Identity) {
            self.table().insert(who);
        }

        /// Declare `who` dead.
        pub fn died(&self, who: Identity) {
            self.table().remove(&who);
        }

        /// Declare dead the process recorded in `slot` of `seg` now.
        pub fn slot_died(&self, seg: &Segment, slot: u32) {
            if let Some(s) = seg.proc_slot(slot) {
                self.died(recorded(s));
            }
        }

        fn lives(&self, who: Identity) -> bool {
            self.table().contains(&who)
        }

        fn table(&self) -> std::sync::MutexGuard<'_, HashSet<Identity>> {
            self.alive
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }
    }

    impl Liveness for Declared {
        fn probe(&self, ctx: Ctx<'_>, slot: u32) -> Result<Probe> {
            let s = ctx
                .seg
                .proc_slot(slot)
                .ok_or_else(|| Error::corrupt("slot out of bounds"))?;
            if !lock_slot(ctx, slot)? {
                return Ok(Probe::Operated);
            }
            let st = s.state.load(Acquire);
            let lives = self.lives(recorded(s));
            Ok(match kind(st) {
                ENGINE if lives => {
                    // A live engine process would hold the byte: give it back.
                    unlock_slot(ctx, slot);
                    Probe::Operated
                }
                ENGINE => Probe::Dead,
                EXTERNAL if lives => Probe::Quiescent,
                EXTERNAL => Probe::Dead,
                _ => Probe::Free,
            })
        }

        fn may_live(&self, ctx: Ctx<'_>, slot: u32) -> bool {
            let engine_lives = ctx
                .seg
                .proc_slot(slot)
                .is_some_and(|s| kind(s.state.load(Acquire)) == ENGINE && self.lives(recorded(s)));
            engine_lives
                || locked_here(ctx, slot)
                || sys::byte_locked(ctx.fd, lock_offset(slot)).unwrap_or(true)
        }
    }
}

#[cfg(test)]
mod tests;
