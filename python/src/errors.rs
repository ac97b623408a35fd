//! The library's errors as Python exceptions.
//!
//! Every error is a `shmsem.Error`; where a builtin fits, the class is also that builtin (the
//! classes and their bases are in `shmsem/_errors.py`):
//!
//! | library | Python | also a |
//! |---|---|---|
//! | `Timeout` | `Timeout` | `TimeoutError` |
//! | `WouldBlock` | `WouldBlock` | |
//! | `InvalidName` | `InvalidName` | `ValueError` |
//! | `InvalidArgument` | `InvalidArgument` | `ValueError` |
//! | `WeightTooLarge` | `WeightTooLarge` (an `InvalidArgument`) | `ValueError` |
//! | `NotHeld` | `NotHeld` | `RuntimeError` (as `threading`'s over-release) |
//! | `PermissionDenied` | `PermissionDenied` | `PermissionError` |
//! | `NotFound`, `NoNamespace` | `NotFound` | `FileNotFoundError` |
//! | `AlreadyExists` | `AlreadyExists` | `FileExistsError` |
//! | `Removed` | `Removed` | |
//! | `Busy`, `InUse` | `Busy` | |
//! | `TableFull` | `TableFull` | |
//! | `Corrupt`, `Incompatible` | `Corrupt` | |
//! | `Io`, anything else | `Error`, caused by (`__cause__`) an `OSError` with the errno | |

use pyo3::{
    exceptions::{PyOSError, PyRuntimeError},
    prelude::*,
    types::PyType,
};
use shmsem::Error;

/// The module that defines the exception classes.
const MODULE: &str = "shmsem._errors";

/// `err` as the exception of its class, with the library's message.
pub fn to_py(py: Python<'_>, err: Error) -> PyErr {
    let class = match &err {
        Error::Timeout { .. } => "Timeout",
        Error::WouldBlock { .. } => "WouldBlock",
        Error::InvalidName { .. } => "InvalidName",
        Error::InvalidArgument { .. } => "InvalidArgument",
        Error::WeightTooLarge { .. } => "WeightTooLarge",
        Error::NotHeld { .. } => "NotHeld",
        Error::PermissionDenied { .. } => "PermissionDenied",
        Error::NotFound { .. } | Error::NoNamespace { .. } => "NotFound",
        Error::AlreadyExists { .. } => "AlreadyExists",
        Error::Removed { .. } => "Removed",
        Error::Busy { .. } | Error::InUse { .. } => "Busy",
        Error::TableFull { .. } => "TableFull",
        Error::Corrupt { .. } | Error::Incompatible { .. } => "Corrupt",
        _ => "Error",
    };
    let exception = new(py, class, message(&err));
    if let Error::Io { source, .. } = &err {
        let cause = match source.raw_os_error() {
            Some(errno) => PyOSError::new_err((errno, source.to_string())),
            None => PyOSError::new_err(source.to_string()),
        };
        exception.set_cause(py, Some(cause));
    }
    exception
}

/// The library's message, except where it names a Rust method that Python spells otherwise.
fn message(err: &Error) -> String {
    match err {
        Error::Timeout { weight, timeout_ms } => format!(
            "timed out after {} s waiting for weight {weight}; wait longer, or find who holds \
             it (Semaphore.info() lists the holders)",
            *timeout_ms as f64 / 1000.0
        ),
        Error::WouldBlock { weight, available } => format!(
            "would block: weight {weight} asked, {available} available; wait with a timeout \
             (acquire(timeout=...)) instead of trying once"
        ),
        Error::WeightTooLarge { weight, capacity } => format!(
            "weight {weight} is larger than the capacity {capacity} and could never be \
             granted; ask for at most {capacity}"
        ),
        _ => err.to_string(),
    }
}

/// A new exception of the class `class` of `shmsem._errors`, with `message`.
pub fn new(py: Python<'_>, class: &str, message: String) -> PyErr {
    match py
        .import(MODULE)
        .and_then(|m| m.getattr(class))
        .and_then(|c| Ok(c.cast_into::<PyType>()?))
    {
        Ok(class) => PyErr::from_type(class, message),
        // Only if the package's own Python files are missing or broken.
        Err(broken) => {
            let err = PyRuntimeError::new_err(format!(
                "{message} (and the exception class {MODULE}.{class} could not be loaded: \
                 reinstall the package)"
            ));
            err.set_cause(py, Some(broken));
            err
        }
    }
}
