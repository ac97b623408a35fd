//! The server's watch over every namespace: twice a second it lists every semaphore it may open,
//! publishes the `ls --json` array to the event streams when it changed, and once a second
//! keeps a sample of each semaphore for its plot (the last [`KEPT`], in memory only; a restart
//! starts afresh).

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::Duration,
};

use serde_json::{Value, json};
use shmsem::Info;

use super::{Shared, api::all_infos, place::blocking};
use shmsem_cli::output;

/// Samples kept per semaphore: ten minutes at one a second.
pub const KEPT: usize = 600;
/// Time between two looks at the namespaces (the event streams' delay).
const PERIOD: Duration = Duration::from_millis(500);
/// A sample is kept every this many looks: once a second.
const SAMPLE_EVERY: u64 = 2;

/// One moment of one semaphore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    t_ms: u64,
    value: u32,
    capacity: u32,
    holders: usize,
    waiters: usize,
}

/// A semaphore's key: scope, namespace, name.
type Key = (String, String, String);

/// The samples of every semaphore seen.
#[derive(Debug, Default)]
pub struct History {
    by_key: Mutex<HashMap<Key, VecDeque<Sample>>>,
}

fn key(scope: &str, namespace: &str, name: &str) -> Key {
    (scope.to_owned(), namespace.to_owned(), name.to_owned())
}

impl History {
    /// Add one sample of each semaphore in `infos`, taken at `t_ms`; forget those gone.
    fn record(&self, t_ms: u64, infos: &[Info]) {
        let Ok(mut by_key) = self.by_key.lock() else {
            return;
        };
        let keys: Vec<Key> = infos
            .iter()
            .map(|i| key(i.scope.as_str(), &i.namespace, &i.name))
            .collect();
        by_key.retain(|k, _| keys.contains(k));
        for (info, k) in infos.iter().zip(keys) {
            let samples = by_key.entry(k).or_default();
            if samples.len() == KEPT {
                samples.pop_front();
            }
            samples.push_back(Sample {
                t_ms,
                value: info.value,
                capacity: info.capacity,
                holders: info.holders.len(),
                waiters: info.waiters.len(),
            });
        }
    }

    /// The samples of one semaphore, oldest first, as a JSON array (empty if none yet).
    pub fn samples(&self, scope: &str, namespace: &str, name: &str) -> Value {
        let Ok(by_key) = self.by_key.lock() else {
            return json!([]);
        };
        let Some(samples) = by_key.get(&key(scope, namespace, name)) else {
            return json!([]);
        };
        samples
            .iter()
            .map(|s| {
                json!({
                    "t_ms": s.t_ms,
                    "value": s.value,
                    "capacity": s.capacity,
                    "holders": s.holders,
                    "waiters": s.waiters,
                })
            })
            .collect()
    }
}

/// Look at every namespace twice a second, for ever (the server aborts the task when it
/// stops): publish the list when it changed, and sample once a second. A failed look records
/// and publishes nothing.
pub async fn watch_forever(state: Shared) {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for n in 0u64.. {
        tick.tick().await;
        let Ok(infos) = blocking(all_infos).await else {
            continue;
        };
        let list: Value = infos.iter().map(output::summary_json).collect();
        let list = list.to_string();
        state.list.send_if_modified(|old| {
            let changed = *old != list;
            if changed {
                *old = list;
            }
            changed
        });
        if n % SAMPLE_EVERY == 0 {
            state.history.record(output::now_ms(), &infos);
        }
    }
}
