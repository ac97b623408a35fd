//! How a waiter sleeps: whether to spin first (a credit learnt per thread), the last look after
//! announcing the sleep, the sleep itself (no timer when the watcher looks after it), and the
//! naps of a waiter that cannot sleep on the futex.

use std::{sync::atomic::Ordering::SeqCst, time::Duration};

use super::{BOUNDED_SLEEP, Semaphore, Until};
use crate::{
    namespace::Waiting,
    protocol::{keys::Reservation, word},
    segment::layout::SemRecord,
    wait::{self, Monotonic, Waited},
};

impl Semaphore {
    /// Sleep on `rec`'s word, announced as `seen`: until woken with no timer when the watcher
    /// looks after us, else a bounded time, reclaiming ourselves.
    #[inline]
    pub(super) fn sleep(&self, watching: &Waiting<'_>, rec: &SemRecord, seen: u64, until: Until) {
        if watching.watched() {
            // The watcher reclaims from the dead and wakes us: no timer.
            wait::wait(&rec.word, word::futex(seen), until.deadline());
        } else {
            // Nobody watches for us: a bounded sleep, and reclaim ourselves.
            let nap_end = Monotonic::now().after(BOUNDED_SLEEP);
            let wake_at = until.deadline().map_or(nap_end, |d| d.min(nap_end));
            // Reclaim when the nap ended the sleep, not the caller's deadline.
            if wait::wait(&rec.word, word::futex(seen), Some(wake_at)) == Waited::TimedOut
                && wake_at == nap_end
            {
                self.inner.ns.reclaim_every(BOUNDED_SLEEP);
            }
        }
    }
}

/// Whether this thread's waits are worth a spin before sleeping, learnt from its last ones.
///
/// A spin pays when the holder runs on another CPU and releases within the spin (a contended
/// hand-off between processes on different CPUs: `contended4` runs at about twice the
/// throughput with it than without). It is pure loss when the holder cannot run meanwhile (both
/// on one CPU: `pingpong_same_cpu` runs about 8% slower with it). So each thread keeps a small
/// credit: a spin that took the weight earns two, one that did not costs one, and a thread with
/// none spins only on every [`SPIN_PROBE`]-th wait, to notice when spinning pays again.
pub(super) struct SpinLuck;

/// The most credit a thread saves.
const SPIN_CREDIT_MAX: u32 = 8;
/// A thread out of credit still spins on every this many waits.
const SPIN_PROBE: u32 = 32;

thread_local! {
    /// `credit << 8 | waits since the last spin`.
    static SPIN_LUCK: std::cell::Cell<u32> = const { std::cell::Cell::new(SPIN_CREDIT_MAX << 8) };
}

impl SpinLuck {
    /// Whether to spin before this wait.
    pub(super) fn spin() -> bool {
        SPIN_LUCK.with(|c| {
            let v = c.get();
            let (credit, waits) = (v >> 8, v & 0xFF);
            if credit > 0 || waits + 1 >= SPIN_PROBE {
                c.set(credit << 8);
                true
            } else {
                c.set(credit << 8 | (waits + 1));
                false
            }
        })
    }

    /// The spin took the weight, or did not.
    pub(super) fn spun(took: bool) {
        SPIN_LUCK.with(|c| {
            let credit = c.get() >> 8;
            let credit = if took {
                (credit + 2).min(SPIN_CREDIT_MAX)
            } else {
                credit.saturating_sub(1)
            };
            c.set(credit << 8);
        })
    }
}

/// Whether `weight` fits now in the word `seen` that a waiter announced its sleep on, judged by
/// the capacity and reservation read again after the announcement (`SeqCst`, the other half of
/// `protocol::clear_sleeping`): a change of either without a change of the value must not leave
/// the waiter asleep.
pub(super) fn fits_now(rec: &SemRecord, seen: u64, weight: u32, token: Reservation) -> bool {
    let capacity = rec.capacity.load(SeqCst);
    let fair = Reservation::from_bits(rec.reservation.load(SeqCst)).fair(capacity, token);
    word::value(seen) as u64 + weight as u64 <= fair as u64
}

/// How long a waiter that cannot sleep on the futex naps before it looks again.
pub(super) const POLL_NAP: Duration = Duration::from_millis(2);

/// Sleep [`POLL_NAP`], or less if `until`'s deadline comes first.
pub(super) fn nap(d: Duration, until: Until) {
    let d = match until.deadline() {
        Some(deadline) => {
            let left = deadline.0.saturating_sub(Monotonic::now().0);
            d.min(Duration::from_nanos(left))
        }
        None => d,
    };
    std::thread::sleep(d);
}
