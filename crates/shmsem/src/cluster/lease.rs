//! Liveness: one etcd lease per process and cluster, kept alive by a background task, and the
//! deadline past which this process presumes it lost.
//!
//! The lease is renewed every third of its time to live. This process counts it as lost at
//! (the send time of the last acknowledged keep-alive + the TTL the cluster granted − a
//! margin), whatever the task manages to do: the server only ever extends a lease from when
//! it receives a keep-alive, so up to that moment the server cannot have expired it (barring a
//! pause of this process longer than the margin, which only a fencing token can cover). Once
//! lost, the holdings under it report [`Error::Lost`](crate::Error::Lost), the callbacks run,
//! the lease is revoked if the cluster can be reached, and later acquires take a new lease.

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering::SeqCst},
    },
    time::{Duration, Instant},
};

use tokio::sync::watch;

use super::{
    client::{CALL_TIMEOUT, Client},
    keys,
};
use crate::{error::Result, sys};

/// The variable that overrides the host name a process records in its member key.
pub const HOST_ENV: &str = "SHMSEM_CLUSTER_HOST";

/// A callback run when the lease is lost.
pub type Callback = Box<dyn FnOnce() + Send>;

/// One granted lease.
pub struct Lease {
    pub id: i64,
    /// When it counts as lost, in ns after [`Lease::base`].
    lost_at: AtomicU64,
    base: Instant,
    lost: AtomicBool,
    notify: watch::Sender<bool>,
    callbacks: Mutex<Vec<Callback>>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("id", &self.id).finish()
    }
}

/// How much earlier than the server could expire it this process presumes its lease lost.
fn margin(ttl: Duration) -> Duration {
    (ttl / 10).max(Duration::from_millis(250))
}

/// Who this process is, for its member key.
pub fn me() -> keys::Member {
    let who = sys::current();
    keys::Member {
        host: host_name(),
        pid: who.pid,
        start: who.start_time,
        boot: boot_id(),
        pidns: sys::pid_namespace(),
    }
}

/// This machine's host name: `SHMSEM_CLUSTER_HOST` if set (a container that shares its
/// kernel's host name may name itself), else the kernel's.
pub fn host_name() -> String {
    if let Ok(name) = std::env::var(HOST_ENV)
        && !name.is_empty()
    {
        return name;
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// The kernel's boot id: two processes with the same pid and start time are the same only
/// within one boot.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

impl Lease {
    /// Grant a lease, write this process's member key under it, and start keeping it alive.
    pub async fn grant(client: &Arc<Client>, deadline: Option<Instant>) -> Result<Arc<Lease>> {
        let mut etcd = client.etcd.clone();
        let sent = Instant::now();
        let granted = client
            .call(deadline, etcd.lease_grant(client.ttl, None))
            .await?;
        let ttl = Duration::from_secs(granted.ttl().max(1) as u64);
        let (notify, _) = watch::channel(false);
        let base = Instant::now();
        let lease = Arc::new(Lease {
            id: granted.id(),
            lost_at: AtomicU64::new(0),
            base,
            lost: AtomicBool::new(false),
            notify,
            callbacks: Mutex::new(Vec::new()),
        });
        lease.extend(sent, ttl);
        let put = etcd.put(
            keys::member(lease.id),
            me().encode(),
            Some(etcd_client::PutOptions::new().with_lease(lease.id)),
        );
        if let Err(e) = client.call(deadline, put).await {
            let _ = client.call(None, etcd.lease_revoke(lease.id)).await;
            return Err(e);
        }
        let task = lease.clone();
        client.spawn(async move { task.keep_alive(etcd, ttl).await });
        Ok(lease)
    }

    fn extend(&self, sent: Instant, ttl: Duration) {
        let at = (sent + ttl).saturating_duration_since(self.base);
        let at = at.saturating_sub(margin(ttl)).as_nanos() as u64;
        self.lost_at.fetch_max(at, SeqCst);
    }

    fn deadline(&self) -> Instant {
        self.base + Duration::from_nanos(self.lost_at.load(SeqCst))
    }

    /// Whether the lease is known or presumed lost.
    pub fn is_lost(&self) -> bool {
        self.lost.load(SeqCst) || Instant::now() >= self.deadline()
    }

    /// A receiver that turns `true` when the lease is lost.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.notify.subscribe()
    }

    /// Run `f` when the lease is lost (at once if it is).
    pub fn on_lost(&self, f: Callback) {
        let mut callbacks = self
            .callbacks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.lost.load(SeqCst) {
            drop(callbacks);
            f();
        } else {
            callbacks.push(f);
        }
    }

    fn mark_lost(&self) {
        if self.lost.swap(true, SeqCst) {
            return;
        }
        self.notify.send_replace(true);
        let callbacks = std::mem::take(
            &mut *self
                .callbacks
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for f in callbacks {
            f();
        }
    }

    /// The keep-alive task: renew every TTL/3 until the lease is lost, then say so and revoke it
    /// if the cluster answers.
    async fn keep_alive(self: Arc<Self>, mut etcd: etcd_client::Client, ttl: Duration) {
        let period = ttl / 3;
        let mut stream = None;
        loop {
            let now = Instant::now();
            let deadline = self.deadline();
            if now >= deadline {
                break;
            }
            let limit = deadline - now;
            if stream.is_none() {
                stream =
                    tokio::time::timeout(limit.min(CALL_TIMEOUT), etcd.lease_keep_alive(self.id))
                        .await
                        .ok()
                        .and_then(Result::ok);
                if stream.is_none() {
                    tokio::time::sleep(Duration::from_millis(100).min(limit)).await;
                    continue;
                }
            }
            let Some((keeper, responses)) = stream.as_mut() else {
                continue;
            };
            let sent = Instant::now();
            let answer =
                tokio::time::timeout(limit.min(period.max(Duration::from_millis(200))), async {
                    keeper.keep_alive().await?;
                    responses.message().await
                })
                .await;
            match answer {
                Ok(Ok(Some(r))) if r.ttl() > 0 => {
                    self.extend(sent, Duration::from_secs(r.ttl() as u64));
                    let next = (sent + period).min(self.deadline());
                    tokio::time::sleep_until(next.into()).await;
                }
                // The server says the lease is gone.
                Ok(Ok(Some(_))) => break,
                // The stream broke or did not answer in time: open another.
                _ => stream = None,
            }
        }
        self.mark_lost();
        let _ = tokio::time::timeout(CALL_TIMEOUT, etcd.lease_revoke(self.id)).await;
    }
}
