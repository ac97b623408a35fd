//! Opening, looking and changing: get-or-create, `info`, the namespace's list, `set_capacity`
//! and `set_persistent` (a compare-and-set on `meta`), removal, and reaping (holders proven
//! dead on this host, and auto semaphores idle past their period).

use std::{
    collections::BTreeMap,
    sync::{Arc, atomic::Ordering::Relaxed},
    time::{Duration, Instant},
};

use etcd_client::{Compare, CompareOp, DeleteOptions, GetOptions, Txn, TxnOp};

use super::{
    Open,
    acquire::{Snapshot, read},
    client::{CALL_TIMEOUT, Client},
    handle::Handle,
    keys, local_death,
};
use crate::{
    Info, Kind, Owner, Party, Reclaimed, Semaphore,
    error::{Error, Result},
    scope::{Scope, validate_name},
    semaphore::Options,
    sys,
};

/// Open `name` as `opts` say.
pub fn open(opts: &Options, name: &str, how: Open) -> Result<Semaphore> {
    validate_name(name)?;
    let ns = opts.namespace_of();
    validate_name(ns)?;
    let (capacity, persistent, idle_ms) = opts.creation_of();
    if how != Open::Existing && (capacity == 0 || capacity > Semaphore::MAX_CAPACITY) {
        return Err(Error::invalid(format!(
            "capacity {capacity} is outside 1..={}",
            Semaphore::MAX_CAPACITY
        )));
    }
    let client = Client::get(opts.cluster_endpoints())?;
    // The open's own reads and writes: within the lock timeout, if one is given, but never less
    // than a second (a try-acquire, timeout 0, still has to open).
    let patience = opts
        .lock_wait_of()
        .map_or(CALL_TIMEOUT, |t| t.max(Duration::from_secs(1)));
    let deadline = Some(Instant::now() + patience);
    let prefix = keys::semaphore(ns, name);
    let new = keys::Meta {
        capacity,
        persistent,
        idle_ms,
        idle_since_ms: 0,
    };
    let existing = client.run(read_meta(&client, &prefix, deadline))?;
    let meta = match (existing, how) {
        (Some(_), Open::CreateNew) => {
            return Err(Error::AlreadyExists {
                name: name.to_owned(),
            });
        }
        (Some(m), _) => m,
        (None, Open::Existing) => {
            return Err(Error::NotFound {
                name: name.to_owned(),
            });
        }
        (None, _) => {
            let created = client.run(create(&client, &prefix, new, deadline))?;
            if !created && how == Open::CreateNew {
                return Err(Error::AlreadyExists {
                    name: name.to_owned(),
                });
            }
            if created {
                new
            } else {
                client
                    .run(read_meta(&client, &prefix, deadline))?
                    .unwrap_or(new)
            }
        }
    };
    // Only auto semaphores come back by themselves, through get-or-create handles.
    let recreate = (how != Open::Existing && !meta.persistent).then_some(new);
    Ok(Semaphore::cluster(Handle::new(
        client,
        ns,
        name,
        meta.capacity,
        recreate,
    )))
}

/// Create the record under `prefix` if there is none; whether this call created it.
/// The record (`meta`) of the semaphore under `prefix`, if it exists and can be read.
async fn read_meta(
    client: &Client,
    prefix: &str,
    deadline: Option<Instant>,
) -> Result<Option<keys::Meta>> {
    let mut etcd = client.etcd.clone();
    let r = client
        .call(deadline, etcd.get(keys::meta(prefix), None))
        .await?;
    Ok(r.kvs()
        .first()
        .and_then(|kv| keys::Meta::decode(kv.value())))
}

pub async fn create(
    client: &Client,
    prefix: &str,
    meta: keys::Meta,
    deadline: Option<Instant>,
) -> Result<bool> {
    let key = keys::meta(prefix);
    let txn = Txn::new()
        .when(vec![Compare::create_revision(
            key.as_str(),
            CompareOp::Equal,
            0,
        )])
        .and_then(vec![TxnOp::put(key.as_str(), meta.encode(), None)]);
    let mut etcd = client.etcd.clone();
    Ok(client.call(deadline, etcd.txn(txn)).await?.succeeded())
}

fn owner() -> Owner {
    Owner {
        uid: u32::MAX,
        gid: u32::MAX,
        // Access to a cluster is etcd's users and roles, not a file's owner.
        user: Some("-".to_owned()),
        group: Some("-".to_owned()),
        mode: 0,
    }
}

fn info_of(ns: &str, name: &str, snap: &Snapshot, meta: keys::Meta) -> Info {
    let party = |(_, p, rev): &(String, keys::Party, i64), token: bool| Party {
        pid: p.pid,
        weight: u64::from(p.weight),
        since_ms: p.since_ms,
        host: Some(p.host.clone()),
        token: token.then_some(*rev as u64),
    };
    let mut holders: Vec<Party> = snap.holders.iter().map(|h| party(h, true)).collect();
    holders.sort_by_key(|p| p.token);
    let mut waiters: Vec<(i64, Party)> = snap
        .waiters
        .iter()
        .map(|w| (w.2, party(w, false)))
        .collect();
    waiters.sort_by_key(|(rev, _)| *rev);
    Info {
        name: name.to_owned(),
        scope: Scope::Cluster,
        namespace: ns.to_owned(),
        kind: if meta.persistent {
            Kind::Persistent
        } else {
            Kind::Auto
        },
        idle_ms: meta.idle_ms,
        capacity: meta.capacity,
        value: snap.held().min(u64::from(u32::MAX)) as u32,
        owner: owner(),
        holders,
        waiters: waiters.into_iter().map(|(_, p)| p).collect(),
    }
}

/// A handle's semaphore now.
pub fn info(h: &Handle) -> Result<Info> {
    let client = h.client()?;
    let snap = client.run(read(&client, &h.prefix, None))?;
    let Some((meta, _)) = snap.meta else {
        return Err(Error::Removed {
            name: h.name.clone(),
        });
    };
    h.capacity.store(meta.capacity, Relaxed);
    Ok(info_of(&h.ns, &h.name, &snap, meta))
}

/// Every semaphore of namespace `ns`, sorted by name, after the idle sweep.
pub fn list(endpoints: Option<&[String]>, ns: &str) -> Result<Vec<Info>> {
    validate_name(ns)?;
    let client = Client::get(endpoints)?;
    client.run(async {
        sweep(&client, ns).await?;
        let mut out = Vec::new();
        for (name, snap) in read_namespace(&client, ns).await? {
            if let Some((meta, _)) = snap.meta {
                out.push(info_of(ns, &name, &snap, meta));
            }
        }
        Ok(out)
    })
}

/// Every semaphore of `ns` as snapshots, by name (one read, one revision).
async fn read_namespace(client: &Client, ns: &str) -> Result<BTreeMap<String, Snapshot>> {
    let prefix = keys::namespace(ns);
    let mut etcd = client.etcd.clone();
    let resp = client
        .call(
            None,
            etcd.get(prefix.as_str(), Some(GetOptions::new().with_prefix())),
        )
        .await?;
    let revision = resp.header().map_or(0, |h| h.revision());
    let mut all: BTreeMap<String, Snapshot> = BTreeMap::new();
    for kv in resp.kvs() {
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        let Some(part) = key.strip_prefix(&prefix).and_then(keys::part) else {
            continue;
        };
        let name = match part {
            keys::Part::Meta(n) | keys::Part::Holder(n, _) | keys::Part::Waiter(n, _) => n,
        };
        let snap = all.entry(name.to_owned()).or_insert_with(|| Snapshot {
            revision,
            meta: None,
            holders: Vec::new(),
            waiters: Vec::new(),
        });
        match part {
            keys::Part::Meta(_) => {
                snap.meta = keys::Meta::decode(kv.value()).map(|m| (m, kv.mod_revision()));
            }
            keys::Part::Holder(..) => {
                snap.holders.push((
                    key.clone(),
                    keys::Party::decode(kv.value()),
                    kv.create_revision(),
                ));
            }
            keys::Part::Waiter(..) => {
                snap.waiters.push((
                    key.clone(),
                    keys::Party::decode(kv.value()),
                    kv.create_revision(),
                ));
            }
        }
    }
    Ok(all)
}

/// Remove the auto semaphores of `ns` that have been idle (no holder, no waiter) for their
/// idle period: the first sweep that finds one idle notes when, a later one removes it if it is
/// still idle and unchanged. Both steps are transactions that compare `meta` and find `h/` and
/// `w/` empty.
async fn sweep(client: &Client, ns: &str) -> Result<()> {
    let now = sys::wall_ms();
    for (name, snap) in read_namespace(client, ns).await? {
        let Some((meta, rev)) = snap.meta else {
            continue;
        };
        if meta.persistent || !snap.holders.is_empty() || !snap.waiters.is_empty() {
            continue;
        }
        let prefix = keys::semaphore(ns, &name);
        let idle = [
            Compare::mod_revision(keys::meta(&prefix), CompareOp::Equal, rev),
            Compare::create_revision(keys::holders(&prefix), CompareOp::Equal, 0).with_prefix(),
            Compare::create_revision(keys::waiters(&prefix), CompareOp::Equal, 0).with_prefix(),
        ];
        let op = if meta.idle_since_ms == 0 {
            let marked = keys::Meta {
                idle_since_ms: now.max(1),
                ..meta
            };
            TxnOp::put(keys::meta(&prefix), marked.encode(), None)
        } else if now.saturating_sub(meta.idle_since_ms) >= u64::from(meta.idle_ms) {
            TxnOp::delete(prefix.as_str(), Some(DeleteOptions::new().with_prefix()))
        } else {
            continue;
        };
        let mut etcd = client.etcd.clone();
        let txn = Txn::new().when(idle.to_vec()).and_then(vec![op]);
        client.call(None, etcd.txn(txn)).await?;
    }
    Ok(())
}

impl Handle {
    /// Change `meta` by `f`, compare-and-set, retried while others change it too.
    fn change(&self, f: impl Fn(keys::Meta) -> keys::Meta + Sync) -> Result<()> {
        let client = self.client()?;
        let key = keys::meta(&self.prefix);
        client.run(async {
            for _ in 0..64 {
                let mut etcd = client.etcd.clone();
                let r = client.call(None, etcd.get(key.as_str(), None)).await?;
                let Some((meta, rev)) = r
                    .kvs()
                    .first()
                    .and_then(|kv| keys::Meta::decode(kv.value()).map(|m| (m, kv.mod_revision())))
                else {
                    return Err(Error::Removed {
                        name: self.name.clone(),
                    });
                };
                let new = f(meta);
                let txn = Txn::new()
                    .when(vec![Compare::mod_revision(
                        key.as_str(),
                        CompareOp::Equal,
                        rev,
                    )])
                    .and_then(vec![TxnOp::put(key.as_str(), new.encode(), None)]);
                if client.call(None, etcd.txn(txn)).await?.succeeded() {
                    self.capacity.store(new.capacity, Relaxed);
                    return Ok(());
                }
            }
            Err(Error::unavailable(
                "the semaphore's record kept changing under 64 attempts",
            ))
        })
    }

    pub fn set_capacity(&self, capacity: u32) -> Result<()> {
        self.change(|m| keys::Meta { capacity, ..m })
    }

    pub fn set_persistent(&self, persistent: bool) -> Result<()> {
        self.change(|m| keys::Meta {
            persistent,
            idle_since_ms: 0,
            ..m
        })
    }

    /// Remove the semaphore: its record, holders and waiters, in one transaction that, without
    /// `force`, finds no holder.
    pub fn remove(&self, force: bool) -> Result<()> {
        let client = self.client()?;
        client.run(async {
            let snap = read(&client, &self.prefix, None).await?;
            let Some((_, rev)) = snap.meta else {
                return Err(Error::NotFound {
                    name: self.name.clone(),
                });
            };
            let mut when = vec![Compare::mod_revision(
                keys::meta(&self.prefix),
                CompareOp::Equal,
                rev,
            )];
            if !force {
                if !snap.holders.is_empty() {
                    return Err(Error::InUse {
                        name: self.name.clone(),
                        value: snap.held().min(u64::from(u32::MAX)) as u32,
                    });
                }
                when.push(
                    Compare::create_revision(keys::holders(&self.prefix), CompareOp::Equal, 0)
                        .with_prefix(),
                );
            }
            let txn = Txn::new().when(when).and_then(vec![TxnOp::delete(
                self.prefix.as_str(),
                Some(DeleteOptions::new().with_prefix()),
            )]);
            let mut etcd = client.etcd.clone();
            if client.call(None, etcd.txn(txn)).await?.succeeded() {
                Ok(())
            } else {
                Err(Error::Busy {
                    what: "semaphore's record (it changed while being removed)",
                    holder: None,
                    waited_ms: 0,
                })
            }
        })
    }
}

/// Revoke the leases of members proven dead on this host, reporting what they held in `ns`;
/// then sweep idle auto semaphores.
pub fn reap(endpoints: Option<&[String]>, ns: &str) -> Result<Vec<Reclaimed>> {
    validate_name(ns)?;
    let client: Arc<Client> = Client::get(endpoints)?;
    client.run(async {
        let deadline = Some(Instant::now() + Duration::from_secs(10));
        let dead = local_death::dead_here(&client, deadline).await?;
        let mut out = Vec::new();
        if !dead.is_empty() {
            let all = read_namespace(&client, ns).await?;
            for (id, m) in &dead {
                let member = format!("/{}/", keys::hex(*id));
                for (name, snap) in &all {
                    let weight: u64 = snap
                        .holders
                        .iter()
                        .filter(|(k, _, _)| k.contains(&member))
                        .map(|(_, p, _)| u64::from(p.weight))
                        .sum();
                    if weight > 0 {
                        out.push(Reclaimed {
                            semaphore: name.clone(),
                            pid: m.pid,
                            weight,
                        });
                    }
                }
                let mut etcd = client.etcd.clone();
                client.call(deadline, etcd.lease_revoke(*id)).await?;
            }
        }
        sweep(&client, ns).await?;
        Ok(out)
    })
}
