//! Waiting for a change: a watch on the semaphore's prefix from revision R+1, so that nothing
//! committed after the read the waiter judged by goes unseen. It ends at the first event, at
//! the deadline given (the caller re-reads at least every [`REREAD`] whatever happens), or after
//! a watch error or a compaction (the caller then reads again, which is all a waiter needs).

use std::time::{Duration, Instant};

use etcd_client::WatchOptions;

use super::client::Client;

/// The longest a waiter goes without reading the semaphore again.
pub const REREAD: Duration = Duration::from_secs(1);

/// Wait until something under `prefix` changes at or after revision `from`, or until `until`.
pub async fn changed(client: &Client, prefix: &str, from: i64, until: Instant) {
    let mut etcd = client.etcd.clone();
    let watching = async {
        let options = WatchOptions::new().with_prefix().with_start_revision(from);
        let Ok(mut stream) = etcd.watch(prefix, Some(options)).await else {
            // No watch: a short pause, then the caller reads again.
            tokio::time::sleep(Duration::from_millis(100)).await;
            return;
        };
        loop {
            match stream.message().await {
                Ok(Some(r)) if r.canceled() || r.compact_revision() > 0 => return,
                Ok(Some(r)) if !r.events().is_empty() => return,
                // The creation notice, or a progress notice: keep waiting.
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    return;
                }
            }
        }
    };
    let _ = tokio::time::timeout_at(until.into(), watching).await;
}
