//! A cluster-scope semaphore as one handle sees it: where it lives, and the holdings this
//! process took through the handle (a permit names one by a number, see `Permit`).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU32, AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use super::{client::Client, keys, lease::Lease};
use crate::{
    Info,
    error::{Error, Result},
    sys,
};

/// One holding: a holder key of this process.
pub struct Holding {
    pub key: String,
    pub weight: u32,
    /// The fencing token: the holder key's create revision.
    pub token: u64,
    pub lease: Arc<Lease>,
    /// Taken with `enter` (or a forgotten permit): given back by `exit`.
    pub unguarded: bool,
}

/// A cluster-scope semaphore.
pub struct Handle {
    /// The client of the fork epoch it was got in (see [`Handle::client`]).
    client: Mutex<(u32, Arc<Client>)>,
    pub ns: String,
    pub name: String,
    /// `/shmsem/NS/NAME/`.
    pub prefix: String,
    /// The capacity as last read.
    pub capacity: AtomicU32,
    /// What to create the semaphore with again if it is removed: for get-or-create handles of
    /// auto semaphores, as locally.
    pub recreate: Option<keys::Meta>,
    /// The holdings, and the fork epoch they were taken in: a forked child holds nothing of its
    /// parent's.
    holdings: Mutex<Holdings>,
    next: AtomicU64,
}

/// The holdings of one fork epoch.
pub struct Holdings {
    epoch: u32,
    map: HashMap<u64, Holding>,
}

impl std::ops::Deref for Holdings {
    type Target = HashMap<u64, Holding>;
    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl std::ops::DerefMut for Holdings {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.map
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Handle {
    pub fn new(
        client: Arc<Client>,
        ns: &str,
        name: &str,
        capacity: u32,
        recreate: Option<keys::Meta>,
    ) -> Handle {
        Handle {
            client: Mutex::new((sys::FORK_EPOCH.load(Relaxed), client)),
            ns: ns.to_owned(),
            name: name.to_owned(),
            prefix: keys::semaphore(ns, name),
            capacity: AtomicU32::new(capacity),
            recreate,
            holdings: Mutex::new(Holdings {
                epoch: sys::FORK_EPOCH.load(Relaxed),
                map: HashMap::new(),
            }),
            next: AtomicU64::new(1),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// This process's client for the handle's cluster: in a forked child, not the parent's
    /// (whose runtime's threads do not exist there) but one of its own, connected anew.
    pub fn client(&self) -> Result<Arc<Client>> {
        let epoch = sys::FORK_EPOCH.load(Relaxed);
        let mut c = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        if c.0 != epoch {
            let fresh = Client::get(Some(&c.1.endpoints))?;
            // The parent's client is the parent's: never dropped here (see `Client::get`).
            let old = std::mem::replace(&mut *c, (epoch, fresh));
            std::mem::forget(old);
        }
        Ok(c.1.clone())
    }

    pub fn namespace(&self) -> &str {
        &self.ns
    }

    pub fn capacity(&self) -> u32 {
        self.capacity.load(Relaxed)
    }

    /// The holdings, in this process (a forked child starts with none: its parent's are the
    /// parent's).
    pub fn holdings(&self) -> MutexGuard<'_, Holdings> {
        let mut h = self.holdings.lock().unwrap_or_else(PoisonError::into_inner);
        let epoch = sys::FORK_EPOCH.load(Relaxed);
        if h.epoch != epoch {
            // Forget, never release: the keys are the parent's, under the parent's lease.
            std::mem::forget(std::mem::take(&mut h.map));
            h.epoch = epoch;
        }
        h
    }

    /// A number for a new holding.
    pub fn next_permit(&self) -> u64 {
        self.next.fetch_add(1, Relaxed)
    }

    /// Take `weight`: at once (`now`), within `timeout`, or as long as it takes. Returns the
    /// holding's number and the fork epoch, as a permit keeps them.
    pub fn take(&self, weight: u32, timeout: Option<Duration>, now: bool) -> Result<(u64, u32)> {
        let wait = if now {
            super::acquire::Wait::Now
        } else {
            match timeout {
                Some(d) => super::acquire::Wait::Until(Instant::now() + d, d),
                None => super::acquire::Wait::Forever,
            }
        };
        let id = self.acquire(weight, wait)?;
        Ok((id, sys::FORK_EPOCH.load(Relaxed)))
    }

    /// Give back holding `id` (a permit's drop).
    pub fn release(&self, id: u64) {
        let taken = self.holdings().remove(&id);
        if let Some(h) = taken {
            self.give_back(h);
        }
    }

    /// Keep holding `id` without a guard (a permit's `forget`), for `exit`.
    pub fn forget(&self, id: u64, epoch: u32) {
        if epoch != sys::FORK_EPOCH.load(Relaxed) {
            return;
        }
        if let Some(h) = self.holdings().get_mut(&id) {
            h.unguarded = true;
        }
    }

    pub fn token(&self, id: u64) -> Option<u64> {
        self.holdings().get(&id).map(|h| h.token)
    }

    pub fn check(&self, id: u64) -> Result<()> {
        match self.holdings().get(&id) {
            Some(h) if h.lease.is_lost() => Err(Error::Lost {
                name: self.name.clone(),
                token: h.token,
            }),
            _ => Ok(()),
        }
    }

    pub fn lost(&self, id: u64) -> Option<tokio::sync::watch::Receiver<bool>> {
        self.holdings().get(&id).map(|h| h.lease.subscribe())
    }

    pub fn on_lost(&self, id: u64, f: Box<dyn FnOnce() + Send>) -> bool {
        let lease = self.holdings().get(&id).map(|h| h.lease.clone());
        match lease {
            Some(l) => {
                l.on_lost(f);
                true
            }
            None => false,
        }
    }

    /// `enter`: take `weight` as long as it takes, unguarded.
    pub fn enter(&self, weight: u32) -> Result<()> {
        let id = self.acquire(weight, super::acquire::Wait::Forever)?;
        if let Some(h) = self.holdings().get_mut(&id) {
            h.unguarded = true;
        }
        Ok(())
    }

    /// `exit`: give back `count` of the unguarded weight; [`Error::NotHeld`] if there is less.
    /// A holding given back in part is rewritten with the weight left (same key, same token).
    pub fn exit(&self, count: u32) -> Result<()> {
        let mut all = self.holdings();
        let held: u64 = all
            .values()
            .filter(|h| h.unguarded)
            .map(|h| u64::from(h.weight))
            .sum();
        if held < u64::from(count) {
            return Err(Error::NotHeld { count, held });
        }
        let mut left = count;
        let mut ids: Vec<u64> = all
            .iter()
            .filter(|(_, h)| h.unguarded)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        let mut whole = Vec::new();
        let mut part = None;
        for id in ids.into_iter().rev() {
            if left == 0 {
                break;
            }
            let w = all[&id].weight;
            if w <= left {
                left -= w;
                whole.push(all.remove(&id).unwrap_or_else(|| unreachable!()));
            } else {
                part = Some((id, w - left));
                left = 0;
            }
        }
        if let Some((id, keep)) = part {
            let h = all.get_mut(&id).unwrap_or_else(|| unreachable!());
            self.shrink(h, keep)?;
            h.weight = keep;
        }
        drop(all);
        for h in whole {
            self.give_back(h);
        }
        Ok(())
    }

    pub fn unsupported(&self, what: &str) -> Error {
        Error::unsupported(format!(
            "{what} in the cluster scope (semaphore {:?}); hold through a permit, `enter` or \
             `shmsem run` instead",
            self.name
        ))
    }

    pub fn info(&self) -> Result<Info> {
        super::admin::info(self)
    }
}
