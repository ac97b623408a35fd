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

/// Keep `weight` taken from the life packed in `found` in fork epoch `epoch` held without a
/// guard: what [`Permit::forget`] does. Nothing in a forked child (the weight is the parent's).
pub(super) fn keep(sem: &Semaphore, found: u64, weight: u32, epoch: u32) {
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
    let (at, life) = unpack(found);
    // An error here means the segment was corrupted under us; a destructor cannot report it,
    // and the weight comes back when this process exits.
    let _ = match fast::get(sem.inner.serial, found) {
        Some(hit) => sem.give_slow(hit.rec(), at.generation, hit.holder(), weight),
        None => sem.give(at, life, weight),
    };
}
