//! The samples behind a semaphore's plot: once a second, the value, capacity, holders and
//! waiters of every semaphore of the server's own scope and namespace, the last
//! [`KEPT`] of each kept in memory. Nothing is written anywhere; a restart starts afresh.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::Duration,
};

use serde_json::{Value, json};
use shmsem::Info;

use super::{
    Shared,
    place::{Place, blocking},
};

/// Samples kept per semaphore: ten minutes at one a second.
pub const KEPT: usize = 600;
/// Time between two samples.
const PERIOD: Duration = Duration::from_secs(1);

/// One moment of one semaphore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    t_ms: u64,
    value: u32,
    capacity: u32,
    holders: usize,
    waiters: usize,
}

/// The samples of the server's own namespace, by semaphore name.
#[derive(Debug, Default)]
pub struct History {
    by_name: Mutex<HashMap<String, VecDeque<Sample>>>,
}

impl History {
    /// Add one sample of each semaphore in `infos`, taken at `t_ms`; forget the semaphores that
    /// are no longer there.
    fn record(&self, t_ms: u64, infos: &[Info]) {
        let Ok(mut by_name) = self.by_name.lock() else {
            return;
        };
        by_name.retain(|name, _| infos.iter().any(|i| &i.name == name));
        for info in infos {
            let samples = by_name.entry(info.name.clone()).or_default();
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

    /// The samples of `name`, oldest first, as the history route's JSON array; empty unless
    /// `sampled` (the request is about the server's own place: no other is sampled).
    pub fn samples(&self, sampled: bool, name: &str) -> Value {
        let Ok(by_name) = self.by_name.lock() else {
            return json!([]);
        };
        let Some(samples) = by_name.get(name).filter(|_| sampled) else {
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

/// Sample the server's own namespace once a second, for ever (the server aborts the task when it
/// stops). A failed list (the file removed or damaged) records nothing that second.
pub async fn sample_forever(state: Shared) {
    let place = Place {
        scope: state.scope,
        namespace: state.namespace.clone(),
    };
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Ok(ns) = place.namespace() else { return };
        if let Ok(infos) = blocking(move || ns.list()).await {
            state.history.record(shmsem_cli::output::now_ms(), &infos);
        }
    }
}
