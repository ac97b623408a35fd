//! `Permit`: the weight one acquire took.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

use pyo3::{prelude::*, types::PyAny};

use crate::errors;

/// Weight held by this process until `release()` (or the end of a `with` block, or the end of
/// the process, even by `SIGKILL`). Not released when garbage-collected: like
/// `threading.Semaphore`, holding ends only when the program says so.
///
/// Released twice, or in a forked child (a child holds nothing its parent held), `release()`
/// raises `shmsem.NotHeld` and changes nothing.
#[derive(Debug)]
#[pyclass(module = "shmsem", frozen)]
pub struct Permit {
    sem: shmsem::Semaphore,
    weight: u32,
    /// The process that took the weight.
    pid: u32,
    released: AtomicBool,
}

impl Permit {
    /// A permit for `weight`, just taken from `sem` by this process (unguarded, as `enter`).
    pub fn new(sem: shmsem::Semaphore, weight: u32) -> Permit {
        Permit {
            sem,
            weight,
            pid: std::process::id(),
            released: AtomicBool::new(false),
        }
    }
}

#[pymethods]
impl Permit {
    /// Give the weight back. Raises `shmsem.NotHeld` if it was released already, or if this
    /// process is not the one that acquired it (a forked child); nothing changes then.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        let me = std::process::id();
        if me != self.pid {
            return Err(errors::new(
                py,
                "NotHeld",
                format!(
                    "cannot release this permit (weight {} of {:?}) in process {me}: process {} \
                     acquired it, and a forked child holds nothing its parent held",
                    self.weight,
                    self.sem.name(),
                    self.pid
                ),
            ));
        }
        if self.released.swap(true, SeqCst) {
            return Err(errors::new(
                py,
                "NotHeld",
                format!(
                    "this permit (weight {} of {:?}) was released already; release each permit \
                     once",
                    self.weight,
                    self.sem.name()
                ),
            ));
        }
        self.sem.exit(self.weight).map_err(|err| {
            self.released.store(false, SeqCst);
            errors::to_py(py, err)
        })
    }

    /// The weight this permit holds (or held).
    #[getter]
    fn weight(&self) -> u32 {
        self.weight
    }

    /// Whether `release()` has given the weight back.
    #[getter]
    fn released(&self) -> bool {
        self.released.load(SeqCst)
    }

    /// The id of the process that acquired it.
    #[getter]
    fn pid(&self) -> u32 {
        self.pid
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Release at the end of the `with` block; an exception of the block goes on.
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _traceback: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        self.release(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "<shmsem.Permit {:?} weight={} pid={}{}>",
            self.sem.name(),
            self.weight,
            self.pid,
            if self.released.load(SeqCst) {
                " released"
            } else {
                ""
            }
        )
    }
}
