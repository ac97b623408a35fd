//! Statistics of a semaphore: how often acquires waited and timed out, how much weight reclaims
//! gave back from dead holders, and how many futex wakes releases issued. They are kept in the
//! segment, per semaphore (`SemRecord::counters`, in the record's cold name line), so that every
//! process sees the same numbers, and they are written only on slow paths: the uncontended
//! acquire and the release that wakes nobody never touch them.
//!
//! # Memory ordering
//!
//! Every counter is bumped with a `Relaxed` `fetch_add` and read with a `Relaxed` load. That is
//! enough: each counter is a monotonic statistic on its own, the read-modify-write alone makes
//! concurrent increments from any number of processes add up exactly, and no other data is
//! published through a counter or read because of one, so there is no happens-before to build.
//! Two counters read one after the other may be a moment apart, as any two readings of a live
//! system are.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::Semaphore;
use crate::{error::Result, segment::layout::SemCounters};

/// What happened to a semaphore since it was created (its current life: a semaphore removed
/// and created again starts from zero).
///
/// Counters are statistics, not part of the protocol: they wrap at `u64::MAX`, a process built
/// before they existed does not count, and a corrupted segment can make them any number.
///
/// `#[non_exhaustive]`: more counters may come, so it is read, never built, outside this crate.
/// It is not a field of [`Info`](crate::Info), which users may build with a struct literal;
/// get it with [`Semaphore::counters`] or, for a whole namespace, with
/// [`Namespace::list_with_counters`](crate::Namespace::list_with_counters).
///
/// # Examples
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("shmsem-doc-counters-{}", std::process::id()));
/// # // SAFETY: set before this example starts any thread.
/// # unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
/// use std::time::Duration;
/// use shmsem::Semaphore;
///
/// let sem = Semaphore::options().persistent().open("counted")?;
/// let _held = sem.acquire()?;
/// // The only permit is held: a timed acquire waits, then times out.
/// assert!(sem.acquire_timeout(1, Duration::from_millis(20)).is_err());
/// let c = sem.counters()?;
/// assert_eq!((c.waits, c.timeouts, c.reclaimed_weight), (1, 1, 0));
/// # Ok::<(), shmsem::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Acquires that had to wait: each acquire that went to sleep on the semaphore at least once
    /// counts 1 (however often it woke before it got the weight or gave up). An acquire that
    /// was refused at once (`try_acquire`, `--timeout 0`) or that took the weight while spinning
    /// does not count.
    pub waits: u64,
    /// Timed acquires that gave up when their timeout passed.
    pub timeouts: u64,
    /// Weight that reclaims gave back from dead holders.
    pub reclaimed_weight: u64,
    /// Futex wakes issued by releases (those that had waiters to wake) and by capacity changes.
    pub wakes: u64,
}

impl Counters {
    /// The counters of one record, as they are now.
    pub(crate) fn read(c: &SemCounters) -> Counters {
        Counters {
            waits: c.waits.load(Relaxed),
            timeouts: c.timeouts.load(Relaxed),
            reclaimed_weight: c.reclaimed_weight.load(Relaxed),
            wakes: c.wakes.load(Relaxed),
        }
    }
}

/// Add `n` to `counter`. Relaxed: see the module's memory-ordering note. Wraps at `u64::MAX`.
#[inline]
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Relaxed);
}

/// Zero every counter: the record starts a new life. Relaxed: the inserter publishes the whole
/// record with its `Release` store of the slot state afterwards.
pub(crate) fn reset(c: &SemCounters) {
    for counter in [&c.waits, &c.timeouts, &c.reclaimed_weight, &c.wakes] {
        counter.store(0, Relaxed);
    }
}

/// Count the wait of an acquire that is about to sleep, once per acquire: `slept` says whether
/// this acquire slept already.
#[inline]
pub(super) fn note_sleep(c: &SemCounters, slept: &mut bool) {
    if !*slept {
        *slept = true;
        bump(&c.waits, 1);
    }
}

impl Semaphore {
    /// The semaphore's statistics now; see [`Counters`]. [`Error::Removed`](crate::Error) once
    /// it has been removed.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("shmsem-doc-semctr-{}", std::process::id()));
    /// # // SAFETY: set before this example starts any thread.
    /// # unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
    /// let sem = shmsem::Semaphore::options().capacity(2).persistent().open("quiet")?;
    /// // Uncontended use counts nothing.
    /// drop(sem.acquire()?);
    /// assert_eq!(sem.counters()?, shmsem::Counters::default());
    /// # Ok::<(), shmsem::Error>(())
    /// ```
    pub fn counters(&self) -> Result<Counters> {
        if self.as_cluster().is_some() {
            // The cluster scope keeps no statistics: they would cost a write per acquire.
            return Ok(Counters::default());
        }
        let rec = self.live_rec(self.found())?;
        Ok(Counters::read(&rec.counters))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zeroed() -> SemCounters {
        SemCounters {
            waits: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            reclaimed_weight: AtomicU64::new(0),
            wakes: AtomicU64::new(0),
        }
    }

    #[test]
    fn a_wait_counts_once_however_often_it_sleeps() {
        let c = zeroed();
        let mut slept = false;
        for _ in 0..3 {
            note_sleep(&c, &mut slept);
        }
        assert_eq!(Counters::read(&c).waits, 1);
        note_sleep(&c, &mut false);
        assert_eq!(Counters::read(&c).waits, 2);
    }

    #[test]
    fn a_corrupted_counter_is_just_a_number_and_wraps() {
        let c = zeroed();
        c.reclaimed_weight.store(u64::MAX, Relaxed);
        bump(&c.reclaimed_weight, 3);
        assert_eq!(Counters::read(&c).reclaimed_weight, 2);
        reset(&c);
        assert_eq!(Counters::read(&c), Counters::default());
    }
}
