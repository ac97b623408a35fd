//! Checks of the arguments Python passes: scope names, weights and capacities, timeouts.

use std::time::{Duration, Instant};

use pyo3::{exceptions::PyValueError, prelude::*};
use shmsem::Scope;

/// The scope named `name`: `"self"` (this process tree), `"local"` (this user) or `"global"`
/// (the machine). `"cluster"` is parsed too, but this package is built without the library's
/// feature `cluster`: opening one raises `shmsem.Error` saying so.
pub fn scope(name: &str) -> PyResult<Scope> {
    match name {
        "self" => Ok(Scope::Tree),
        "local" => Ok(Scope::Local),
        "global" => Ok(Scope::Global),
        "cluster" => Ok(Scope::Cluster),
        _ => Err(PyValueError::new_err(format!(
            "invalid scope {name:?}: use \"self\" (this process tree), \"local\" (this user) or \
             \"global\" (every user of the machine)"
        ))),
    }
}

/// The Python name of `scope`.
pub fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Tree => "self",
        Scope::Local => "local",
        Scope::Global => "global",
        Scope::Cluster => "cluster",
    }
}

/// `value` as a `u32`, or a `ValueError` naming `what`. Zero passes: the library refuses it
/// with its own message.
pub fn count(what: &str, value: i64) -> PyResult<u32> {
    u32::try_from(value).map_err(|_| {
        PyValueError::new_err(format!(
            "invalid {what} {value}: it must be an integer from 1 to {}",
            shmsem::Semaphore::MAX_CAPACITY
        ))
    })
}

/// How long an acquire may wait.
#[derive(Debug, Clone, Copy)]
pub enum Patience {
    /// Try once (`blocking=False`).
    Now,
    /// As long as it takes (`timeout=None`).
    Forever,
    /// Until `deadline`, `timeout` after the call began.
    Until {
        /// When to give up.
        deadline: Instant,
        /// The timeout as given, for the error message.
        timeout: Duration,
    },
}

/// The patience of `acquire(timeout=..., blocking=...)`, with `threading`'s rules: seconds as a
/// float, `None` for no limit, and no timeout with `blocking=False`.
pub fn patience(timeout: Option<f64>, blocking: bool) -> PyResult<Patience> {
    if !blocking {
        return match timeout {
            None => Ok(Patience::Now),
            Some(_) => Err(PyValueError::new_err(
                "can't specify a timeout for a non-blocking call; pass blocking=False or a \
                 timeout, not both",
            )),
        };
    }
    let Some(seconds) = timeout else {
        return Ok(Patience::Forever);
    };
    if seconds.is_nan() || seconds < 0.0 {
        return Err(PyValueError::new_err(format!(
            "invalid timeout {seconds}: it must be a number of seconds >= 0, or None to wait \
             as long as it takes"
        )));
    }
    // A timeout too long for a `Duration` or an `Instant` is no limit at all.
    let Ok(timeout) = Duration::try_from_secs_f64(seconds) else {
        return Ok(Patience::Forever);
    };
    Ok(match Instant::now().checked_add(timeout) {
        Some(deadline) => Patience::Until { deadline, timeout },
        None => Patience::Forever,
    })
}
