//! An acquire in the background on the cluster client's runtime: what an async future on a
//! cluster-scope handle waits for (see `semaphore::future`). The future polls a channel; no
//! thread of its own waits.
//!
//! Cancellation: dropping the [`Spawned`] cancels the acquire, which stops at its next look and
//! takes its waiter key away, as a timed-out acquire does; a holding that was committed all the
//! same is given back (by the task if nobody listens any more, else by the drop).

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use tokio::sync::oneshot;

use super::{
    acquire::{Cancel, Wait},
    handle::Holding,
};
use crate::{
    error::{Error, Result},
    semaphore::Semaphore,
};

/// An acquire running in the background; its outcome, a holding's number, once done.
pub struct Spawned {
    sem: Semaphore,
    rx: oneshot::Receiver<Result<u64>>,
    cancel: Arc<Cancel>,
}

impl std::fmt::Debug for Spawned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spawned")
            .field("semaphore", &self.sem.name())
            .finish()
    }
}

impl Spawned {
    /// Start acquiring `weight` of cluster handle `sem`, waiting as long as it takes.
    pub fn start(sem: &Semaphore, weight: u32) -> Result<Spawned> {
        let Some(h) = sem.as_cluster() else {
            return Err(Error::invalid("not a cluster-scope semaphore"));
        };
        if weight == 0 {
            return Err(Error::invalid("weight 0; ask for at least 1"));
        }
        let client = h.client()?;
        let id = h.next_permit();
        let (tx, rx) = oneshot::channel();
        let cancel = Arc::new(Cancel::default());
        let (task_sem, task_cancel, task_client) = (sem.clone(), cancel.clone(), client.clone());
        client.spawn(async move {
            let Some(h) = task_sem.as_cluster() else {
                return;
            };
            let outcome = h
                .acquire_async(&task_client, weight, Wait::Forever, id, Some(&task_cancel))
                .await;
            let (key, _, token, lease) = match outcome {
                Ok(taken) => taken,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            h.holdings().insert(
                id,
                Holding {
                    key: key.clone(),
                    weight,
                    token,
                    lease,
                    unguarded: false,
                },
            );
            if task_cancel.is_cancelled() || tx.send(Ok(id)).is_err() {
                // Nobody waits for it any more: give it back here, on the runtime.
                h.holdings().remove(&id);
                let mut etcd = task_client.etcd.clone();
                let _ = task_client
                    .call(None, etcd.delete(key.as_str(), None))
                    .await;
            }
        });
        Ok(Spawned {
            sem: sem.clone(),
            rx,
            cancel,
        })
    }

    /// The outcome, once the acquire is done: the holding's number.
    pub fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<u64>> {
        std::pin::Pin::new(&mut self.rx).poll(cx).map(|r| {
            r.unwrap_or_else(|_| {
                Err(Error::unavailable(
                    "the cluster client stopped before the acquire ended",
                ))
            })
        })
    }
}

use std::future::Future as _;

impl Drop for Spawned {
    fn drop(&mut self) {
        self.cancel.cancel();
        // Committed and sent, but never received: the future was dropped in between.
        if let Ok(Ok(id)) = self.rx.try_recv()
            && let Some(h) = self.sem.as_cluster()
        {
            h.release(id);
        }
    }
}
