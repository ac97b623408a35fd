//! The namespace's locks as this process takes them: the table lock (bounded by a deadline, or
//! by [`LOCK_PATIENCE`]), and the lock byte of a process slot this process acts for.

use std::time::Duration;

use super::{Namespace, lock};
use crate::{
    error::{Error, Result},
    holders::{self, Ctx, TABLE_LOCK},
    sys,
    wait::Monotonic,
};

/// How long a call without a deadline of its own waits for a lock of the namespace before it
/// reports who holds it ([`Error::Busy`]). Locks are held for microseconds by live processes;
/// a wait this long means the holder is stopped, stuck or hostile.
pub(crate) const LOCK_PATIENCE: Duration = Duration::from_secs(5);

impl Namespace {
    /// Run `f` holding the table lock, waiting for it at most [`LOCK_PATIENCE`].
    pub fn with_table_lock<T>(&self, f: impl FnOnce(Ctx<'_>) -> Result<T>) -> Result<T> {
        self.with_table_lock_until(None, f)
    }

    /// Run `f` holding the table lock, waiting for it until `deadline` (or at most
    /// [`LOCK_PATIENCE`] without one). No lock of the engine is ever waited for without a bound:
    /// a process stopped (or a hostile one) holding it makes this fail with [`Error::Busy`],
    /// naming the holder when the system tells, instead of hanging.
    pub fn with_table_lock_until<T>(
        &self,
        deadline: Option<Monotonic>,
        f: impl FnOnce(Ctx<'_>) -> Result<T>,
    ) -> Result<T> {
        let _threads = lock(&self.table);
        let ctx = self.ctx()?;
        let start = Monotonic::now();
        let deadline = deadline.unwrap_or_else(|| start.after(LOCK_PATIENCE));
        let mut nap = Duration::from_micros(20);
        loop {
            if sys::try_lock_byte(ctx.fd, TABLE_LOCK)
                .map_err(|e| Error::io("taking the table lock", e))?
            {
                break;
            }
            let now = Monotonic::now();
            if now >= deadline {
                return Err(Error::Busy {
                    what: "namespace's table lock",
                    holder: sys::lock_holder(ctx.fd, TABLE_LOCK),
                    waited_ms: (now.0.saturating_sub(start.0)) / 1_000_000,
                });
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(2));
        }
        let out = f(ctx);
        let _ = sys::unlock_byte(ctx.fd, TABLE_LOCK);
        out
    }

    /// Run `f` holding the table lock if it is free now; `None` if someone holds it.
    pub fn try_table_lock<T>(&self, f: impl FnOnce(Ctx<'_>) -> T) -> Result<Option<T>> {
        let _threads = lock(&self.table);
        let ctx = self.ctx()?;
        if !sys::try_lock_byte(ctx.fd, TABLE_LOCK)
            .map_err(|e| Error::io("taking the table lock", e))?
        {
            return Ok(None);
        }
        let out = f(ctx);
        let _ = sys::unlock_byte(ctx.fd, TABLE_LOCK);
        Ok(Some(out))
    }

    /// Run `f` holding the lock byte of process slot `slot` (acting for an external holder),
    /// waiting at most until `deadline`.
    pub fn with_slot_lock<T>(
        &self,
        slot: u32,
        deadline: Option<Monotonic>,
        f: impl FnOnce(Ctx<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let ctx = self.ctx()?;
        // `lock_slot` also keeps this process's other threads (a reclaimer) off the slot.
        loop {
            if holders::lock_slot(ctx, slot)? {
                break;
            }
            if deadline.is_some_and(|d| Monotonic::now() >= d) {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        lock(&self.acting).push(slot);
        let out = f(ctx);
        lock(&self.acting).retain(|&s| s != slot);
        holders::unlock_slot(ctx, slot);
        out.map(Some)
    }
}
