//! The acquire, one transaction, and the release.
//!
//! Acquire(w): read the semaphore's whole prefix (`meta`, `h/`, `w/`) at revision R; if the
//! weight held plus w fits the capacity, less what an older waiter for more than 1 has reserved
//! (as the local scopes are fair to heavy waiters), commit one transaction: *if* no `h/` key was
//! modified after R, `meta` is the one read, and this process's member key exists, *then* put
//! the holder key under this process's lease and delete its waiter key. Else read again, or
//! wait (see `wait`). Between R and the commit only releases and lease expiries can have
//! changed `h/` without failing the compare, and they only lower the weight held: so at no
//! revision do the stored holdings exceed the capacity. The holding's fencing token is the
//! revision of the commit, which is its holder key's create revision.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};

use super::{
    client::Client,
    handle::{Handle, Holding},
    keys,
    lease::Lease,
    local_death, wait,
};
use crate::error::{Error, Result};

/// How often a waiter looks for dead holders of this host while one holds.
const LOCAL_LOOK: Duration = Duration::from_millis(100);

/// Cancels an acquire running in the background (an async future's, see `future`): it stops at
/// its next look, and takes its waiter key away as a timed-out acquire does.
#[derive(Debug, Default)]
pub struct Cancel {
    flag: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl Cancel {
    /// Cancel.
    pub fn cancel(&self) {
        self.flag.store(true, std::sync::atomic::Ordering::SeqCst);
        self.notify.notify_one();
    }

    /// Whether it was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Until it is cancelled.
    async fn cancelled(&self) {
        while !self.is_cancelled() {
            self.notify.notified().await;
        }
    }
}

/// How long an acquire may wait.
#[derive(Debug, Clone, Copy)]
pub enum Wait {
    /// Not at all: one look.
    Now,
    /// Until the instant, a timeout of the duration.
    Until(Instant, Duration),
    /// As long as it takes.
    Forever,
}

impl Wait {
    fn deadline(self) -> Option<Instant> {
        match self {
            Wait::Now => Some(Instant::now() + super::client::CALL_TIMEOUT),
            Wait::Until(at, _) => Some(at),
            Wait::Forever => None,
        }
    }
}

/// One read of a semaphore's prefix.
pub struct Snapshot {
    pub revision: i64,
    /// `meta` and its mod revision.
    pub meta: Option<(keys::Meta, i64)>,
    /// Holder keys: key, value, create revision.
    pub holders: Vec<(String, keys::Party, i64)>,
    /// Waiter keys: key, value, create revision.
    pub waiters: Vec<(String, keys::Party, i64)>,
}

impl Snapshot {
    pub fn held(&self) -> u64 {
        self.holders
            .iter()
            .map(|(_, p, _)| u64::from(p.weight))
            .sum()
    }
}

/// Read `prefix` whole.
pub async fn read(client: &Client, prefix: &str, deadline: Option<Instant>) -> Result<Snapshot> {
    let mut etcd = client.etcd.clone();
    let resp = client
        .call(
            deadline,
            etcd.get(prefix, Some(GetOptions::new().with_prefix())),
        )
        .await?;
    let revision = resp.header().map_or(0, |h| h.revision());
    let mut snap = Snapshot {
        revision,
        meta: None,
        holders: Vec::new(),
        waiters: Vec::new(),
    };
    let meta_key = keys::meta(prefix);
    let (h, w) = (keys::holders(prefix), keys::waiters(prefix));
    for kv in resp.kvs() {
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        if key == meta_key {
            snap.meta = keys::Meta::decode(kv.value()).map(|m| (m, kv.mod_revision()));
        } else if key.starts_with(&h) {
            let party = keys::Party::decode(kv.value());
            snap.holders.push((key, party, kv.create_revision()));
        } else if key.starts_with(&w) {
            let party = keys::Party::decode(kv.value());
            snap.waiters.push((key, party, kv.create_revision()));
        }
    }
    Ok(snap)
}

/// What an older waiter for more than 1 has reserved, for a taker whose own waiter key was
/// created at `mine` (`None`: it has none, so every waiter is older).
fn reserved(snap: &Snapshot, mine: Option<i64>) -> u64 {
    snap.waiters
        .iter()
        .filter(|(_, p, rev)| p.weight > 1 && mine.is_none_or(|m| *rev < m))
        .min_by_key(|(_, _, rev)| *rev)
        .map_or(0, |(_, p, _)| u64::from(p.weight))
}

impl Handle {
    /// Take `weight`; returns the holding's number.
    pub fn acquire(&self, weight: u32, wait: Wait) -> Result<u64> {
        if weight == 0 {
            return Err(Error::invalid("weight 0; ask for at least 1"));
        }
        let client = self.client()?;
        let id = self.next_permit();
        let outcome = client.run(self.acquire_async(&client, weight, wait, id, None));
        let (key, _, token, lease) = outcome?;
        self.holdings().insert(
            id,
            Holding {
                key,
                weight,
                token,
                lease,
                unguarded: false,
            },
        );
        Ok(id)
    }

    pub(super) async fn acquire_async(
        &self,
        client: &Arc<Client>,
        weight: u32,
        wait: Wait,
        id: u64,
        cancel: Option<&Cancel>,
    ) -> Result<(String, keys::Party, u64, Arc<Lease>)> {
        let deadline = wait.deadline();
        let timed_out = || match wait {
            Wait::Until(_, d) => Error::Timeout {
                weight,
                timeout_ms: d.as_millis() as u64,
            },
            _ => Error::unavailable("the cluster did not answer in time"),
        };
        let mut lease = client.lease(deadline).await.map_err(|e| match wait {
            Wait::Until(..) => timed_out(),
            _ => e,
        })?;
        let party = keys::Party {
            weight,
            pid: std::process::id(),
            host: super::lease::host_name(),
            since_ms: crate::sys::wall_ms(),
        };
        let mut key = keys::holder(&self.prefix, lease.id, id);
        // This acquire's waiter key and its create revision, once it waits.
        let mut waiting: Option<(String, i64)> = None;
        let mut last_reap: Option<Instant> = None;
        // Whether a commit's answer was lost: it may have put the holder key.
        let mut unsure = false;
        let result = loop {
            if deadline.is_some_and(|d| Instant::now() >= d) && !matches!(wait, Wait::Now) {
                break Err(timed_out());
            }
            if cancel.is_some_and(Cancel::is_cancelled) {
                break Err(Error::unavailable("the acquire was cancelled"));
            }
            if lease.is_lost() {
                // Its keys are gone or going: start again under a new lease.
                lease = match client.lease(deadline).await {
                    Ok(l) => l,
                    Err(e) => {
                        break Err(if matches!(wait, Wait::Until(..)) {
                            timed_out()
                        } else {
                            e
                        });
                    }
                };
                key = keys::holder(&self.prefix, lease.id, id);
                waiting = None;
            }
            let snap = match read(client, &self.prefix, deadline).await {
                Ok(s) => s,
                Err(e) => match wait {
                    Wait::Now => break Err(e),
                    _ => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            // An earlier commit whose answer was lost may have taken the weight already.
            if let Some((_, _, rev)) = snap.holders.iter().find(|(k, _, _)| *k == key) {
                break Ok((key.clone(), party.clone(), *rev as u64, lease.clone()));
            }
            let Some((meta, meta_rev)) = snap.meta else {
                match self.recreate {
                    Some(new) => {
                        let _ = super::admin::create(client, &self.prefix, new, deadline).await;
                        continue;
                    }
                    None => {
                        break Err(Error::Removed {
                            name: self.name.clone(),
                        });
                    }
                }
            };
            self.capacity
                .store(meta.capacity, std::sync::atomic::Ordering::Relaxed);
            if weight > meta.capacity {
                break Err(Error::WeightTooLarge {
                    weight,
                    capacity: meta.capacity,
                });
            }
            let held = snap.held();
            let mine = waiting.as_ref().map(|(_, rev)| *rev);
            if held + u64::from(weight) + reserved(&snap, mine) <= u64::from(meta.capacity) {
                let mut ops = vec![TxnOp::put(
                    key.as_str(),
                    party.encode(),
                    Some(PutOptions::new().with_lease(lease.id)),
                )];
                if let Some((w, _)) = &waiting {
                    ops.push(TxnOp::delete(w.as_str(), None));
                }
                let txn = Txn::new()
                    .when(vec![
                        Compare::mod_revision(
                            keys::holders(&self.prefix),
                            CompareOp::Less,
                            snap.revision + 1,
                        )
                        .with_prefix(),
                        Compare::mod_revision(keys::meta(&self.prefix), CompareOp::Equal, meta_rev),
                        Compare::version(keys::member(lease.id), CompareOp::Greater, 0),
                    ])
                    .and_then(ops);
                let mut etcd = client.etcd.clone();
                match client.call(deadline, etcd.txn(txn)).await {
                    Ok(r) if r.succeeded() => {
                        let token = r.header().map_or(0, |h| h.revision()) as u64;
                        break Ok((key.clone(), party.clone(), token, lease.clone()));
                    }
                    // Someone changed the holders or the record since R: read again.
                    Ok(_) => continue,
                    // Perhaps committed: the next read tells.
                    Err(_) => {
                        unsure = true;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                }
            }
            if matches!(wait, Wait::Now) {
                let available = u64::from(meta.capacity).saturating_sub(held);
                break Err(Error::WouldBlock {
                    weight,
                    available: available.min(u64::from(u32::MAX)) as u32,
                });
            }
            if waiting.is_none() {
                let w = keys::waiter(&self.prefix, lease.id, self.next_permit());
                let mut etcd = client.etcd.clone();
                let put = etcd.put(
                    w.as_str(),
                    party.encode(),
                    Some(PutOptions::new().with_lease(lease.id)),
                );
                if let Ok(r) = client.call(deadline, put).await {
                    waiting = Some((w, r.header().map_or(0, |h| h.revision())));
                }
                continue;
            }
            // Holders that died on this host give their weight back at once: while some holder
            // runs here, look for dead ones every LOCAL_LOOK (a death changes nothing in etcd
            // for a watch to see), else every REREAD.
            let here = snap.holders.iter().any(|(_, p, _)| p.host == party.host);
            let every = if here { LOCAL_LOOK } else { wait::REREAD };
            if last_reap.is_none_or(|t| t.elapsed() >= every) {
                last_reap = Some(Instant::now());
                if let Ok(n) = local_death::revoke_dead(client, deadline).await
                    && n > 0
                {
                    continue;
                }
            }
            let until = match deadline {
                Some(d) => d.min(Instant::now() + every),
                None => Instant::now() + every,
            };
            match cancel {
                Some(c) => {
                    tokio::select! {
                        () = wait::changed(client, &self.prefix, snap.revision + 1, until) => {}
                        () = c.cancelled() => {}
                    }
                }
                None => wait::changed(client, &self.prefix, snap.revision + 1, until).await,
            }
        };
        if let Some((w, _)) = waiting
            && result.is_err()
        {
            // A waiter that gives up takes its key away (its lease would, later).
            let mut etcd = client.etcd.clone();
            let _ = client.call(None, etcd.delete(w.as_str(), None)).await;
        }
        if result.is_err() && unsure {
            // A commit whose answer was lost would hold until the lease ends: delete the key.
            let mut etcd = client.etcd.clone();
            if client
                .call(None, etcd.delete(key.as_str(), None))
                .await
                .is_err()
            {
                delete_later(client, key, lease);
            }
        }
        result
    }

    /// Give holding `h` back: delete its key, retrying in the background if the cluster does
    /// not answer (until the lease is lost, which frees it anyway).
    pub fn give_back(&self, h: Holding) {
        // Holdings are of this fork epoch (a child forgets its parent's), whose client exists.
        let Ok(client) = self.client() else { return };
        let done = client.run(async {
            let mut etcd = client.etcd.clone();
            client.call(None, etcd.delete(h.key.as_str(), None)).await
        });
        if done.is_err() {
            delete_later(&client, h.key, h.lease);
        }
    }

    /// Rewrite holding `h` with weight `keep` (an `exit` of part of it): same key, so same token;
    /// only if the key still exists (else the holding was lost).
    pub fn shrink(&self, h: &Holding, keep: u32) -> Result<()> {
        let client = self.client()?;
        let party = keys::Party {
            weight: keep,
            pid: std::process::id(),
            host: super::lease::host_name(),
            since_ms: crate::sys::wall_ms(),
        };
        let txn = Txn::new()
            .when(vec![Compare::version(
                h.key.as_str(),
                CompareOp::Greater,
                0,
            )])
            .and_then(vec![TxnOp::put(
                h.key.as_str(),
                party.encode(),
                Some(PutOptions::new().with_lease(h.lease.id)),
            )]);
        let r = client.run(async {
            let mut etcd = client.etcd.clone();
            client.call(None, etcd.txn(txn)).await
        })?;
        if r.succeeded() {
            Ok(())
        } else {
            Err(Error::Lost {
                name: self.name.clone(),
                token: h.token,
            })
        }
    }
}

/// Delete `key` in the background, retrying until it is gone or `lease` is lost.
fn delete_later(client: &Arc<Client>, key: String, lease: Arc<Lease>) {
    let c = client.clone();
    client.spawn(async move {
        while !lease.is_lost() {
            let mut etcd = c.etcd.clone();
            if c.call(None, etcd.delete(key.as_str(), None)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}
