//! The guard that owns its handle: weight held until dropped, on any thread, for as long as
//! the program likes (`Send + 'static`).

use std::{fmt, time::Duration};

use super::{
    Semaphore, Until,
    permit::{self, give_back, keep},
};
use crate::error::Result;

/// Weight held until dropped, with a handle of its own to the semaphore: unlike [`Permit`],
/// which borrows its [`Semaphore`], it is `Send + 'static`, so it can be returned from
/// `spawn_blocking`, stored beside its semaphore, or moved into a task or thread that outlives
/// the scope that acquired it.
///
/// Dropping it gives the weight back and wakes waiters, on whichever thread it is dropped. In
/// a child created by `fork`, dropping the parent's permit does nothing: the weight belongs to
/// the parent. It costs one reference count more than a [`Permit`] (the handle's clone).
///
/// # Examples
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("shmsem-doc-owned-{}", std::process::id()));
/// # // SAFETY: set before this example starts any thread.
/// # unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
/// use shmsem::{OwnedPermit, Semaphore};
///
/// let sem = Semaphore::options().capacity(2).open("owned-example")?;
/// let p: OwnedPermit = sem.acquire_owned(2)?;
/// assert_eq!(p.weight(), 2);
/// let worker = std::thread::spawn(move || {
///     // work while holding 2
///     drop(p) // gives the 2 back
/// });
/// worker.join().unwrap();
/// assert_eq!(sem.info()?.value, 0);
/// # Ok::<(), shmsem::Error>(())
/// ```
///
/// [`Permit`]: super::Permit
#[must_use = "the weight is given back as soon as the permit is dropped"]
pub struct OwnedPermit {
    sem: Semaphore,
    /// The life taken from, packed as in `super::pack`.
    found: u64,
    weight: u32,
    /// The fork epoch it was taken in.
    epoch: u32,
}

impl OwnedPermit {
    #[inline]
    pub(super) fn new(sem: Semaphore, weight: u32, (found, epoch): (u64, u32)) -> OwnedPermit {
        OwnedPermit {
            sem,
            found,
            weight,
            epoch,
        }
    }

    /// The weight held.
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// The semaphore the weight is held on.
    pub fn semaphore(&self) -> &Semaphore {
        &self.sem
    }

    /// The fencing token of a cluster-scope holding; `None` for the local scopes (see
    /// [`Permit::token`](super::Permit::token)).
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("shmsem-doc-owned-token-{}", std::process::id()));
    /// # // SAFETY: set before this example starts any thread.
    /// # unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
    /// let sem = shmsem::Semaphore::options().open("owned-tokens")?;
    /// let permit = sem.acquire_owned(1)?;
    /// assert_eq!(permit.token(), None); // a local scope
    /// permit.check()?;                  // and never lost
    /// # Ok::<(), shmsem::Error>(())
    /// ```
    pub fn token(&self) -> Option<u64> {
        permit::cluster_token(&self.sem, self.found)
    }

    /// Whether the holding still stands (see [`Permit::check`](super::Permit::check)).
    pub fn check(&self) -> Result<()> {
        permit::cluster_check(&self.sem, self.found)
    }

    /// For a cluster-scope holding, a receiver that changes to `true` when the holding is lost
    /// (see [`Permit::lost`](super::Permit::lost)); `None` for the local scopes.
    #[cfg(feature = "cluster")]
    pub fn lost(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
        permit::cluster_lost(&self.sem, self.found)
    }

    /// For a cluster-scope holding, run `callback` once when the holding is lost; `false` for
    /// the local scopes (see [`Permit::on_lost`](super::Permit::on_lost)).
    pub fn on_lost(&self, callback: impl FnOnce() + Send + 'static) -> bool {
        permit::cluster_on_lost(&self.sem, self.found, Box::new(callback))
    }

    /// Keep the weight held without a guard, as [`Semaphore::enter`] does; give it back with
    /// [`Semaphore::exit`]. In a child created by `fork`, forgetting the parent's permit does
    /// nothing: the weight stays the parent's, and the child cannot `exit` it.
    pub fn forget(mut self) {
        keep(&self.sem, self.found, self.weight, self.epoch);
        // Dropped with nothing left to give back; the handle goes as usual.
        self.weight = 0;
    }
}

impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit")
            .field("semaphore", &self.sem.name())
            .field("weight", &self.weight)
            .finish()
    }
}

impl Drop for OwnedPermit {
    #[inline]
    fn drop(&mut self) {
        if self.weight != 0 {
            give_back(&self.sem, self.found, self.weight, self.epoch);
        }
    }
}

impl Semaphore {
    /// Wait as long as it takes for `weight`, held by an [`OwnedPermit`].
    #[inline]
    pub fn acquire_owned(&self, weight: u32) -> Result<OwnedPermit> {
        self.take(weight, Until::Forever)
            .map(|taken| OwnedPermit::new(self.clone(), weight, taken))
    }

    /// Wait at most `timeout` for `weight`, held by an [`OwnedPermit`]; [`Error::Timeout`] when
    /// it elapses.
    ///
    /// [`Error::Timeout`]: crate::Error::Timeout
    #[inline]
    pub fn acquire_owned_timeout(&self, weight: u32, timeout: Duration) -> Result<OwnedPermit> {
        self.take(weight, Until::Timeout(timeout))
            .map(|taken| OwnedPermit::new(self.clone(), weight, taken))
    }

    /// Take `weight`, held by an [`OwnedPermit`], only if it is available now;
    /// [`Error::WouldBlock`] otherwise.
    ///
    /// [`Error::WouldBlock`]: crate::Error::WouldBlock
    #[inline]
    pub fn try_acquire_owned(&self, weight: u32) -> Result<OwnedPermit> {
        self.try_acquire(weight).map(super::Permit::into_owned)
    }
}
