//! Reading what etcd recorded, for the checker: the full history of every key under `/shmsem/`
//! (a watch from revision 1 with `prev_kv`, after the test), and, during the test, one watcher
//! per member that stamps the time each holder key's deletion is first received.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use etcd_client::{Client, ConnectOptions, EventType, WatchOptions};

use super::checker::{Change, Event, Seen, holder_semaphore};
use crate::common::mono_ns;

/// Everything the library writes, and the end marker below, start with this.
const WATCHED: &str = "/shmsem";
/// Written once the test is over: the full history is read up to this key's put.
const END: &str = "/shmsem-checker/end";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn options() -> ConnectOptions {
    ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(1))
        .with_timeout(Duration::from_secs(5))
}

/// The full history of the keys under `/shmsem/`, in revision order, read with a watch from
/// revision 1 with `prev_kv` up to a marker written now. Panics if it cannot be read whole
/// within `timeout` (the cluster must have a quorum) or if etcd compacted part of it.
pub fn full_history(endpoints: &[String], timeout: Duration) -> Vec<Event> {
    runtime().block_on(async {
        tokio::time::timeout(timeout, read_history(endpoints))
            .await
            .unwrap_or_else(|_| panic!("reading the history took more than {timeout:?}"))
    })
}

async fn read_history(endpoints: &[String]) -> Vec<Event> {
    let mut client = Client::connect(endpoints, Some(options()))
        .await
        .expect("connecting to etcd to read the history");
    let end = client
        .put(END, "end", None)
        .await
        .expect("writing the end marker")
        .header()
        .expect("a response header")
        .revision();
    let opts = WatchOptions::new()
        .with_prefix()
        .with_start_revision(1)
        .with_prev_key();
    let mut stream = client
        .watch(WATCHED, Some(opts))
        .await
        .expect("watching from revision 1");
    let mut events = Vec::new();
    loop {
        let resp = stream
            .message()
            .await
            .expect("reading the history")
            .expect("the history's watch ended early");
        assert!(
            !resp.canceled(),
            "the history watch was cancelled (compacted at revision {}): {}",
            resp.compact_revision(),
            resp.cancel_reason()
        );
        for ev in resp.events() {
            let kv = ev.kv().expect("an event's key");
            let revision = kv.mod_revision();
            if revision >= end {
                return events;
            }
            let key = kv.key_str().expect("a UTF-8 key").to_owned();
            let change = match ev.event_type() {
                EventType::Put => Change::Put {
                    value: kv.value_str().unwrap_or("").to_owned(),
                    create_revision: kv.create_revision(),
                },
                EventType::Delete => Change::Delete,
            };
            events.push(Event {
                revision,
                key,
                change,
            });
        }
    }
}

/// One watcher thread per member, each connected to that member alone, recording when each
/// holder key's deletion was first received (by any of them).
#[derive(Debug)]
pub struct Watchers {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<HashMap<String, Vec<Seen>>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Watchers {
    pub fn start(endpoints: &[String]) -> Watchers {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let threads = endpoints
            .iter()
            .map(|e| {
                let (e, stop, seen) = (e.clone(), stop.clone(), seen.clone());
                thread::spawn(move || runtime().block_on(watch_member(e, stop, seen)))
            })
            .collect();
        Watchers {
            stop,
            seen,
            threads,
        }
    }

    /// Stop the watchers and return the deletions they saw, per holder key.
    pub fn finish(mut self) -> HashMap<String, Vec<Seen>> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.join().expect("a watcher thread panicked");
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Drop for Watchers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Watch from revision 1, and after any error, silence (no answer to a progress request within
/// 2 s, as when the member is stopped) or the member's death, again from the next revision.
async fn watch_member(
    endpoint: String,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<HashMap<String, Vec<Seen>>>>,
) {
    let mut next = 1;
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut client) = Client::connect([&endpoint], Some(options())).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(next)
            .with_prev_key();
        let Ok(Ok(mut stream)) =
            tokio::time::timeout(Duration::from_secs(2), client.watch(WATCHED, Some(opts))).await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut heard = Instant::now();
        let mut asked = Instant::now();
        while !stop.load(Ordering::Relaxed) && heard.elapsed() < Duration::from_secs(2) {
            if asked.elapsed() >= Duration::from_millis(500) {
                asked = Instant::now();
                if stream.request_progress().await.is_err() {
                    break;
                }
            }
            let msg = tokio::time::timeout(Duration::from_millis(100), stream.message()).await;
            let resp = match msg {
                Err(_) => continue,
                Ok(Ok(Some(resp))) => resp,
                Ok(_) => break,
            };
            if resp.canceled() {
                break;
            }
            heard = Instant::now();
            let at_ns = mono_ns();
            for ev in resp.events() {
                let Some(kv) = ev.kv() else { continue };
                next = next.max(kv.mod_revision() + 1);
                let (EventType::Delete, Some(prev), Ok(key)) =
                    (ev.event_type(), ev.prev_kv(), kv.key_str())
                else {
                    continue;
                };
                if holder_semaphore(key).is_none() {
                    continue;
                }
                let token = prev.create_revision();
                let mut seen = seen.lock().unwrap();
                let list = seen.entry(key.to_owned()).or_default();
                match list.iter_mut().find(|s| s.token == token) {
                    Some(s) => s.at_ns = s.at_ns.min(at_ns),
                    None => list.push(Seen { token, at_ns }),
                }
            }
        }
    }
}
