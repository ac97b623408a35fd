//! The extension module `shmsem._shmsem` behind the Python package `shmsem`.
//!
//! | file | job |
//! |---|---|
//! | `semaphore.rs` | `Semaphore`: open, acquire, `with`, release, info |
//! | `permit.rs` | `Permit`: the weight one acquire took, released once, by its own process |
//! | `wait.rs` | waiting in slices with the GIL released, so that Ctrl-C interrupts a wait |
//! | `info.rs` | `Info` and `Party`: snapshots of a semaphore |
//! | `errors.rs` | the library's errors as the exceptions of `shmsem/_errors.py` |
//! | `args.rs` | checks of Python arguments (scope names, weights, timeouts) |
//!
//! The exceptions are Python classes (`shmsem/_errors.py`), so that each can also be a builtin
//! (`shmsem.Timeout` is a `TimeoutError`, `shmsem.InvalidName` a `ValueError`).
#![deny(unsafe_op_in_unsafe_fn)]

mod args;
mod errors;
mod info;
mod permit;
mod semaphore;
mod wait;

use pyo3::prelude::*;

/// The module: its classes, and the largest capacity.
#[pymodule]
fn _shmsem(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<semaphore::Semaphore>()?;
    m.add_class::<permit::Permit>()?;
    m.add_class::<info::Info>()?;
    m.add_class::<info::Party>()?;
    m.add("MAX_CAPACITY", shmsem::Semaphore::MAX_CAPACITY)?;
    m.add("SLICE_SECONDS", wait::SLICE.as_secs_f64())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
