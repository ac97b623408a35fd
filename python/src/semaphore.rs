//! `Semaphore`: a named counting semaphore, opened (or created) by name.

use pyo3::{
    prelude::*,
    types::{PyAny, PyTuple},
};

use crate::{args, errors, info::Info, permit::Permit, wait};

/// A named counting semaphore shared between processes, opened by name and created on first
/// use. `with s:` holds weight 1; `s.acquire()` returns a `Permit`.
#[derive(Debug)]
#[pyclass(module = "shmsem", frozen)]
pub struct Semaphore {
    sem: shmsem::Semaphore,
}

#[pymethods]
impl Semaphore {
    /// Open `name` in `scope`, creating it with `capacity` if it does not exist (an existing
    /// semaphore keeps its capacity).
    #[new]
    #[pyo3(signature = (name, scope = "local", namespace = None, capacity = 1))]
    fn new(
        py: Python<'_>,
        name: &str,
        scope: &str,
        namespace: Option<&str>,
        capacity: i64,
    ) -> PyResult<Semaphore> {
        let mut options = shmsem::Semaphore::options()
            .scope(args::scope(scope)?)
            .capacity(args::count("capacity", capacity)?);
        if let Some(namespace) = namespace {
            options = options.namespace(namespace);
        }
        // Opening may wait for the namespace's table lock: not with the GIL held.
        let sem = py
            .detach(|| options.open(name))
            .map_err(|err| errors::to_py(py, err))?;
        Ok(Semaphore { sem })
    }

    /// Take `weight`, waiting at most `timeout` seconds (`None`: as long as it takes), or not at
    /// all with `blocking=False`. Raises `shmsem.Timeout` or `shmsem.WouldBlock` when it cannot.
    #[pyo3(signature = (weight = 1, timeout = None, blocking = true))]
    fn acquire(
        &self,
        py: Python<'_>,
        weight: i64,
        timeout: Option<f64>,
        blocking: bool,
    ) -> PyResult<Permit> {
        let weight = args::count("weight", weight)?;
        wait::take(py, &self.sem, weight, args::patience(timeout, blocking)?)?;
        Ok(Permit::new(self.sem.clone(), weight))
    }

    /// Give back `n` of the weight this process acquired and did not release through a permit
    /// (as `threading.Semaphore.release(n)`). Raises `shmsem.NotHeld` if it holds less.
    #[pyo3(signature = (n = 1))]
    fn release(&self, py: Python<'_>, n: i64) -> PyResult<()> {
        let n = args::count("release count", n)?;
        self.sem.exit(n).map_err(|err| errors::to_py(py, err))
    }

    /// Capacity, value, kind, holders and waiters now.
    fn info(&self, py: Python<'_>) -> PyResult<Info> {
        py.detach(|| self.sem.info())
            .map(Info::from)
            .map_err(|err| errors::to_py(py, err))
    }

    /// The name.
    #[getter]
    fn name(&self) -> &str {
        self.sem.name()
    }

    /// `"self"`, `"local"` or `"global"`.
    #[getter]
    fn scope(&self) -> &'static str {
        args::scope_name(self.sem.scope())
    }

    /// The namespace.
    #[getter]
    fn namespace(&self) -> &str {
        self.sem.namespace()
    }

    /// The capacity now.
    #[getter]
    fn capacity(&self) -> u32 {
        self.sem.capacity()
    }

    /// Take weight 1, waiting as long as it takes.
    fn __enter__(&self, py: Python<'_>) -> PyResult<()> {
        wait::take(py, &self.sem, 1, args::Patience::Forever)
    }

    /// Give weight 1 back; an exception of the block goes on.
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _traceback: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        self.sem.exit(1).map_err(|err| errors::to_py(py, err))?;
        Ok(false)
    }

    /// Pickled as its name, scope, namespace and capacity: unpickling opens it again (for
    /// `multiprocessing` with the spawn or forkserver start methods).
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let this = slf.get();
        let args = (
            this.sem.name(),
            args::scope_name(this.sem.scope()),
            this.sem.namespace(),
            this.sem.capacity(),
        );
        Ok((slf.get_type().into_any(), args.into_pyobject(slf.py())?))
    }

    fn __repr__(&self) -> String {
        format!(
            "shmsem.Semaphore({:?}, scope={:?}, namespace={:?}, capacity={})",
            self.sem.name(),
            args::scope_name(self.sem.scope()),
            self.sem.namespace(),
            self.sem.capacity()
        )
    }
}
