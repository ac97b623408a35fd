//! The per-process cluster client: a private tokio runtime (one worker thread) around an etcd
//! connection, as the `postgres` crate wraps `tokio-postgres`, shared by every handle on the same
//! endpoints. The blocking API runs each call on it with a deadline; a forked child never uses
//! its parent's: it starts its own (see [`Client::get`]).

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex, MutexGuard, PoisonError, atomic::Ordering::Relaxed},
    time::{Duration, Instant},
};

use etcd_client::ConnectOptions;
use tokio::runtime::Runtime;

use super::lease::Lease;
use crate::{
    error::{Error, Result},
    sys,
};

/// The variable that names the cluster's endpoints when [`crate::Options::cluster`] does not.
pub const CLUSTER_ENV: &str = "SHMSEM_CLUSTER";
/// The variable that sets the lease's time to live, in whole seconds (default 5; etcd raises
/// values below its minimum, which follows its election timeout).
pub const TTL_ENV: &str = "SHMSEM_CLUSTER_TTL";
/// The longest one etcd call may take before it counts as unanswered.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);
const DEFAULT_TTL: i64 = 5;

/// A connection to one cluster, with this process's lease on it.
pub struct Client {
    rt: Runtime,
    pub etcd: etcd_client::Client,
    pub endpoints: Vec<String>,
    /// The lease holdings are taken under now; replaced when it is lost.
    lease: tokio::sync::Mutex<Option<Arc<Lease>>>,
    pub ttl: i64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

struct Clients {
    epoch: u32,
    by_endpoints: HashMap<Vec<String>, Arc<Client>>,
}

static CLIENTS: Mutex<Option<Clients>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The endpoints to use: those given, else `SHMSEM_CLUSTER`'s.
pub fn endpoints(given: Option<&[String]>) -> Result<Vec<String>> {
    let list: Vec<String> = match given {
        Some(list) => list.to_vec(),
        None => std::env::var(CLUSTER_ENV)
            .unwrap_or_default()
            .split(',')
            .map(str::to_owned)
            .collect(),
    };
    let list: Vec<String> = list
        .into_iter()
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty())
        .collect();
    if list.is_empty() {
        return Err(Error::invalid(format!(
            "no cluster endpoints: give them with `Options::cluster` or in {CLUSTER_ENV} \
             (comma-separated URLs such as http://127.0.0.1:2379)"
        )));
    }
    Ok(list)
}

impl Client {
    /// The client of this process for `endpoints`, connected on first use. In a forked child,
    /// the parent's clients are left alone (their runtime's threads do not exist here) and a
    /// new one is made.
    pub fn get(given: Option<&[String]>) -> Result<Arc<Client>> {
        let endpoints = endpoints(given)?;
        let epoch = sys::FORK_EPOCH.load(Relaxed);
        let mut all = lock(&CLIENTS);
        if all.as_ref().is_some_and(|c| c.epoch != epoch)
            && let Some(old) = all.take()
        {
            // The parent's runtimes cannot be shut down here (their threads are the parent's):
            // forget them, and everything they hold.
            std::mem::forget(old);
        }
        let clients = all.get_or_insert_with(|| Clients {
            epoch,
            by_endpoints: HashMap::new(),
        });
        if let Some(c) = clients.by_endpoints.get(&endpoints) {
            return Ok(c.clone());
        }
        let client = Arc::new(Client::connect(endpoints.clone())?);
        clients.by_endpoints.insert(endpoints, client.clone());
        Ok(client)
    }

    fn connect(endpoints: Vec<String>) -> Result<Client> {
        sys::install_fork_hook();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("shmsem-cluster")
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the cluster client's runtime", e))?;
        let options = ConnectOptions::new()
            .with_connect_timeout(CALL_TIMEOUT)
            .with_timeout(CALL_TIMEOUT)
            .with_keep_alive(Duration::from_secs(1), CALL_TIMEOUT);
        let eps = endpoints.clone();
        let etcd = run_on(&rt, async move {
            tokio::time::timeout(
                CALL_TIMEOUT,
                etcd_client::Client::connect(eps, Some(options)),
            )
            .await
        })
        .map_err(|_| unanswered(&endpoints, CALL_TIMEOUT))?
        .map_err(|e| etcd_error(&endpoints, e))?;
        let ttl = std::env::var(TTL_ENV)
            .ok()
            .and_then(|t| t.parse::<i64>().ok())
            .filter(|t| (1..=3600).contains(t))
            .unwrap_or(DEFAULT_TTL);
        Ok(Client {
            rt,
            etcd,
            endpoints,
            lease: tokio::sync::Mutex::new(None),
            ttl,
        })
    }

    /// Run `f` on the runtime and wait for it, from any thread (also one inside another
    /// runtime).
    pub fn run<T: Send>(&self, f: impl Future<Output = T> + Send) -> T {
        run_on(&self.rt, f)
    }

    /// Start `f` on the runtime in the background.
    pub fn spawn(&self, f: impl Future<Output = ()> + Send + 'static) {
        self.rt.spawn(f);
    }

    /// One etcd call with a deadline: at most [`CALL_TIMEOUT`], and never past `deadline`.
    pub async fn call<T>(
        &self,
        deadline: Option<Instant>,
        f: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        let limit = match deadline {
            Some(d) => d
                .saturating_duration_since(Instant::now())
                .min(CALL_TIMEOUT),
            None => CALL_TIMEOUT,
        };
        match tokio::time::timeout(limit, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(etcd_error(&self.endpoints, e)),
            Err(_) => Err(unanswered(&self.endpoints, limit)),
        }
    }

    /// The lease to take holdings under: the current one, or a new one (with its member key and
    /// keep-alive task) if there is none or it was lost.
    pub async fn lease(self: &Arc<Self>, deadline: Option<Instant>) -> Result<Arc<Lease>> {
        let mut current = self.lease.lock().await;
        if let Some(l) = current.as_ref()
            && !l.is_lost()
        {
            return Ok(l.clone());
        }
        let lease = Lease::grant(self, deadline).await?;
        *current = Some(lease.clone());
        Ok(lease)
    }
}

fn run_on<T: Send>(rt: &Runtime, f: impl Future<Output = T> + Send) -> T {
    if tokio::runtime::Handle::try_current().is_ok() {
        // Blocking inside another runtime's thread is not allowed: block a scoped thread.
        std::thread::scope(|s| {
            s.spawn(|| rt.block_on(f))
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    } else {
        rt.block_on(f)
    }
}

/// No answer within `limit`.
pub fn unanswered(endpoints: &[String], limit: Duration) -> Error {
    Error::unavailable(format!(
        "no answer from {} within {} ms (members down, no quorum, or a wrong address)",
        endpoints.join(","),
        limit.as_millis()
    ))
}

/// An error etcd or the connection reported.
pub fn etcd_error(endpoints: &[String], e: etcd_client::Error) -> Error {
    Error::unavailable(format!("{}: {e}", endpoints.join(",")))
}
