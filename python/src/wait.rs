//! Taking weight, with the GIL released while waiting and Ctrl-C honoured.
//!
//! The library's waits cannot be interrupted from outside, and Python runs signal handlers
//! (`KeyboardInterrupt` for Ctrl-C) only on the main thread while it holds the GIL. So a
//! blocking acquire first tries once with the GIL held (the uncontended path costs no GIL
//! switch), then waits in slices of at most [`SLICE`] with the GIL released
//! (`Semaphore::acquire_timeout`, each slice computed from one absolute deadline, so a timeout is
//! never stretched), and between slices takes the GIL back and runs the pending handlers
//! (`Python::check_signals`). When a handler raises, nothing is held: a slice that had just
//! succeeded gives its weight back first. The cost: a waiter leaves the queue for an instant
//! between slices, and `info()` shows its `since` as the start of the current slice.

use std::time::{Duration, Instant};

use pyo3::prelude::*;
use shmsem::{Error, Semaphore};

use crate::{args::Patience, errors};

/// The longest one wait lasts without looking at signals: Ctrl-C is seen within this.
pub const SLICE: Duration = Duration::from_millis(50);

/// Take `weight` from `sem` for this process (unguarded, as `Semaphore::enter` does: release it
/// with `Semaphore::exit`), waiting as `patience` says.
pub fn take(py: Python<'_>, sem: &Semaphore, weight: u32, patience: Patience) -> PyResult<()> {
    let until = match (sem.try_acquire(weight), patience) {
        (Ok(permit), _) => {
            permit.forget();
            return Ok(());
        }
        (Err(Error::WouldBlock { .. }), Patience::Forever) => None,
        (Err(Error::WouldBlock { .. }), Patience::Until { deadline, timeout }) => {
            Some((deadline, timeout))
        }
        (Err(err), _) => return Err(errors::to_py(py, err)),
    };
    loop {
        let slice = match until {
            None => SLICE,
            Some((deadline, _)) => deadline
                .saturating_duration_since(Instant::now())
                .min(SLICE),
        };
        let taken = py.detach(|| match sem.acquire_timeout(weight, slice) {
            Ok(permit) => {
                permit.forget();
                Ok(true)
            }
            Err(Error::Timeout { .. }) => Ok(false),
            Err(err) => Err(err),
        });
        match taken {
            Ok(true) => {
                if let Err(interrupted) = py.check_signals() {
                    // Give back what the last slice took before raising.
                    if let Err(err) = sem.exit(weight) {
                        let err = errors::to_py(py, err);
                        interrupted.set_cause(py, Some(err));
                    }
                    return Err(interrupted);
                }
                return Ok(());
            }
            Ok(false) => {
                py.check_signals()?;
                if let Some((deadline, timeout)) = until
                    && Instant::now() >= deadline
                {
                    let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
                    return Err(errors::to_py(py, Error::Timeout { weight, timeout_ms }));
                }
            }
            Err(err) => return Err(errors::to_py(py, err)),
        }
    }
}
