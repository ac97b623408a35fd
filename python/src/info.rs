//! `Info` and `Party`: snapshots of a semaphore, for `Semaphore.info()`.

use pyo3::prelude::*;

use crate::args;

/// One holder or waiter: a process, the weight it holds (or waits for), and since when.
#[pyclass(module = "shmsem", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct Party {
    /// The process id.
    pub pid: u32,
    /// The weight held, or waited for.
    pub weight: u64,
    /// When it began, in seconds since the epoch (as `time.time()`).
    pub since: f64,
}

impl From<&shmsem::Party> for Party {
    fn from(p: &shmsem::Party) -> Party {
        Party {
            pid: p.pid,
            weight: p.weight,
            // Milliseconds to seconds: exact enough for a timestamp.
            since: p.since_ms as f64 / 1000.0,
        }
    }
}

#[pymethods]
impl Party {
    fn __repr__(&self) -> String {
        format!(
            "Party(pid={}, weight={}, since={:.3})",
            self.pid, self.weight, self.since
        )
    }
}

/// A snapshot of a semaphore: capacity, value (the weight held), kind, holders and waiters.
#[derive(Debug)]
#[pyclass(module = "shmsem", frozen, get_all)]
pub struct Info {
    /// The semaphore's name.
    pub name: String,
    /// `"self"`, `"local"` or `"global"`.
    pub scope: &'static str,
    /// The namespace.
    pub namespace: String,
    /// `"auto"` (removed after an idle period) or `"persistent"`.
    pub kind: &'static str,
    /// The most weight that may be held at once.
    pub capacity: u32,
    /// The weight held now.
    pub value: u32,
    /// What an acquire could get now: `capacity - value`, or 0.
    pub available: u32,
    /// The processes holding weight, one each.
    pub holders: Vec<Party>,
    /// The processes waiting for weight.
    pub waiters: Vec<Party>,
}

impl From<shmsem::Info> for Info {
    fn from(info: shmsem::Info) -> Info {
        Info {
            available: info.available(),
            scope: args::scope_name(info.scope),
            kind: info.kind.as_str(),
            capacity: info.capacity,
            value: info.value,
            holders: info.holders.iter().map(Party::from).collect(),
            waiters: info.waiters.iter().map(Party::from).collect(),
            name: info.name,
            namespace: info.namespace,
        }
    }
}

#[pymethods]
impl Info {
    fn __repr__(&self) -> String {
        format!(
            "Info(name={:?}, scope={:?}, namespace={:?}, kind={:?}, capacity={}, value={}, \
             holders={}, waiters={})",
            self.name,
            self.scope,
            self.namespace,
            self.kind,
            self.capacity,
            self.value,
            self.holders.len(),
            self.waiters.len()
        )
    }
}
