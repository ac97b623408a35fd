//! The guard that holds weight until dropped.

use std::fmt;

use super::{Semaphore, unpack};
use crate::namespace::fast;
use crate::sys;

/// Weight held until dropped.
///
/// Dropping it gives the weight back and wakes waiters. In a child created by `fork`, dropping
/// the parent's permit does nothing: the weight belongs to the parent.
///
/// Three words: the handle, the life of the semaphore the weight was taken from (record index
/// and incarnation, packed), and the weight with the fork epoch it was taken in. Dropping it on
/// the thread that acquired it goes straight to that thread's holder record (see `fast`).
#[must_use = "the weight is given back as soon as the permit is dropped"]
pub struct Permit<'a> {
    sem: &'a Semaphore,
    /// The life taken from, packed as in `super::pack`.
    found: u64,
    weight: u32,
    /// The fork epoch it was taken in.
    epoch: u32,
}

impl<'a> Permit<'a> {
    #[inline]
    pub(super) fn new(sem: &'a Semaphore, weight: u32, (found, epoch): (u64, u32)) -> Permit<'a> {
        Permit {
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

    /// The fencing token of a cluster-scope holding: the etcd revision that created its holder
    /// key, larger for every later holding of the cluster. A resource that remembers the largest
    /// token it has seen and refuses smaller ones cannot be acted on by a holder whose holding
    /// was lost. `None` for the local scopes, whose holders cannot outlive their holding.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("shmsem-doc-token-{}", std::process::id()));
    /// # // SAFETY: set before this example starts any thread.
    /// # unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
    /// let sem = shmsem::Semaphore::options().open("tokens")?;
    /// let permit = sem.acquire()?;
    /// assert_eq!(permit.token(), None); // a local scope
    /// permit.check()?;                  // and never lost
    /// # Ok::<(), shmsem::Error>(())
    /// ```
    pub fn token(&self) -> Option<u64> {
        cluster_token(self.sem, self.found)
    }

    /// Whether the holding still stands: `Ok` for the local scopes always; for the cluster
    /// scope, [`Error::Lost`](crate::Error::Lost) once this process's lease is known or presumed
    /// lapsed (its keep-alives unacknowledged for nearly its time to live), after which another
    /// process may hold the weight. See [`Permit::token`] for making that harmless.
    pub fn check(&self) -> crate::Result<()> {
        cluster_check(self.sem, self.found)
    }

    /// For a cluster-scope holding, a receiver that changes to `true` when the holding is lost
    /// (see [`Permit::check`]); call `borrow()` to look, or wait on it in an async runtime.
    /// `None` for the local scopes.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("shmsem-doc-lost-{}", std::process::id()));
    /// # // SAFETY: set before this example starts any thread.
    /// # unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
    /// let sem = shmsem::Semaphore::options().open("lost-rx")?;
    /// let permit = sem.acquire()?;
    /// assert!(permit.lost().is_none()); // local holdings cannot be lost
    /// // For a cluster permit: `while !*rx.borrow() { rx.changed().await?; }` in async code.
    /// # Ok::<(), shmsem::Error>(())
    /// ```
    #[cfg(feature = "cluster")]
    pub fn lost(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
        cluster_lost(self.sem, self.found)
    }

    /// For a cluster-scope holding, run `callback` (once, on the cluster client's thread) when
    /// the holding is lost; `false` for the local scopes, whose holdings cannot be lost.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("shmsem-doc-onlost-{}", std::process::id()));
    /// # // SAFETY: set before this example starts any thread.
    /// # unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
    /// let sem = shmsem::Semaphore::options().open("lost-cb")?;
    /// let permit = sem.acquire()?;
    /// let registered = permit.on_lost(|| eprintln!("stop: the holding was lost"));
    /// assert!(!registered); // a local scope: nothing to watch
    /// # Ok::<(), shmsem::Error>(())
    /// ```
    pub fn on_lost(&self, callback: impl FnOnce() + Send + 'static) -> bool {
        cluster_on_lost(self.sem, self.found, Box::new(callback))
    }

    /// Keep the weight held without a guard, as [`Semaphore::enter`] does; give it back with
    /// [`Semaphore::exit`]. In a child created by `fork`, forgetting the parent's permit does
    /// nothing: the weight stays the parent's, and the child cannot `exit` it.
    pub fn forget(self) {
        keep(self.sem, self.found, self.weight, self.epoch);
        std::mem::forget(self);
    }

    /// The same weight, held by a guard that owns a handle to the semaphore instead of
    /// borrowing it: `Send + 'static`, so it can be returned from a thread or moved into a task.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("shmsem-doc-into-owned-{}", std::process::id()));
    /// # // SAFETY: set before this example starts any thread.
    /// # unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
    /// let sem = shmsem::Semaphore::options().capacity(2).open("into-owned")?;
    /// let owned = sem.acquire_weight(2)?.into_owned();
    /// std::thread::spawn(move || drop(owned)).join().unwrap();
    /// assert_eq!(sem.info()?.value, 0);
    /// # Ok::<(), shmsem::Error>(())
    /// ```
    pub fn into_owned(self) -> super::OwnedPermit {
        let this = std::mem::ManuallyDrop::new(self);
        super::OwnedPermit::new(this.sem.clone(), this.weight, (this.found, this.epoch))
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("semaphore", &self.sem.name())
            .field("weight", &self.weight)
            .finish()
    }
}

impl Drop for Permit<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        give_back(self.sem, self.found, self.weight, self.epoch);
    }
}

/// Give back `weight` taken from the life packed in `found` in fork epoch `epoch`: what dropping
/// a [`Permit`] or an [`OwnedPermit`](super::OwnedPermit) does.
///
/// This thread's own record for the life the weight was taken from: no lookup. While the weight
/// is held, some record of this process names its generation, so the generation is this
/// permit's life (see `table`). The entry is of this process (a forked child starts with none),
/// the permit perhaps of its parent: then the epochs differ, and `drop_slow` gives nothing back.
#[inline(always)]
pub(super) fn give_back(sem: &Semaphore, found: u64, weight: u32, epoch: u32) {
    if let Some(hit) = fast::get(sem.inner.serial, found)
        && hit.epoch == epoch
        && Semaphore::give_fast(&hit, weight)
    {
        return;
    }
    drop_slow(sem, found, weight, epoch);
}

/// The fencing token of holding `found` of `sem`: `None` unless it is a cluster one.
pub(super) fn cluster_token(sem: &Semaphore, found: u64) -> Option<u64> {
    sem.as_cluster().and_then(|c| c.token(found))
}

/// Whether holding `found` of `sem` stands: always for the local scopes.
pub(super) fn cluster_check(sem: &Semaphore, found: u64) -> crate::Result<()> {
    sem.as_cluster().map_or(Ok(()), |c| c.check(found))
}

/// The lost-notification of cluster holding `found` of `sem`.
#[cfg(feature = "cluster")]
pub(super) fn cluster_lost(
    sem: &Semaphore,
    found: u64,
) -> Option<tokio::sync::watch::Receiver<bool>> {
    sem.as_cluster().and_then(|c| c.lost(found))
}

/// Run `callback` when cluster holding `found` of `sem` is lost; `false` for the local scopes.
pub(super) fn cluster_on_lost(
    sem: &Semaphore,
    found: u64,
    callback: Box<dyn FnOnce() + Send>,
) -> bool {
    sem.as_cluster().is_some_and(|c| c.on_lost(found, callback))
}

/// Keep `weight` taken from the life packed in `found` in fork epoch `epoch` held without a
/// guard: what [`Permit::forget`] does. Nothing in a forked child (the weight is the parent's).
pub(super) fn keep(sem: &Semaphore, found: u64, weight: u32, epoch: u32) {
    if let Some(c) = sem.as_cluster() {
        c.forget(found, epoch);
        return;
    }
    if epoch == sys::FORK_EPOCH.load(std::sync::atomic::Ordering::Relaxed) {
        sem.add_unguarded(weight, unpack(found).0.generation);
    }
}

/// Give back `weight` taken from the life packed in `found` in fork epoch `epoch`: through
/// another thread's lane, or after the single attempt failed, or not at all in a forked child.
/// (The permit's fields by value: the fast path never has to put the permit in memory.)
#[cold]
#[inline(never)]
fn drop_slow(sem: &Semaphore, found: u64, weight: u32, epoch: u32) {
    if epoch != sys::FORK_EPOCH.load(std::sync::atomic::Ordering::Relaxed) {
        return; // a forked child: the parent holds this weight
    }
    if let Some(c) = sem.as_cluster() {
        c.release(found);
        return;
    }
    let (at, life) = unpack(found);
    // An error here means the segment was corrupted under us; a destructor cannot report it,
    // and the weight comes back when this process exits.
    let _ = match fast::get(sem.inner.serial, found) {
        Some(hit) => sem.give_slow(hit.rec(), at.generation, hit.holder(), weight),
        None => sem.give(at, life, weight),
    };
}
