//! The Jepsen-style test of the cluster scope, and the tests of its harness: the 3-member etcd
//! cluster of `common::etcd` (kill, restart, stop, leader, partitions) and the history checker.
//!
//! [`jepsen_cluster_semaphore`]: client processes acquire and release weights 1–3 on a
//! cluster semaphore of capacity 4 while members are killed and restarted, the leader is
//! stopped, a holding client is stopped past its lease, the leader is isolated and a link is
//! cut; then the checker replays the holder keys' history from etcd and checks every client's
//! beliefs (see `cluster_jepsen/checker.rs`). It prints the operations, the faults and the
//! violations, and fails unless there are none.

mod common;

#[path = "cluster_jepsen/checker.rs"]
mod checker;
#[path = "cluster_jepsen/client.rs"]
mod client;
#[path = "cluster_jepsen/faults.rs"]
mod faults;
#[path = "cluster_jepsen/history.rs"]
mod history;

use std::{collections::HashMap, time::Duration};

use checker::{Change, Verdict, check_beliefs, check_capacity, parse_log};
use common::{Kid, Spawn, TestDir, etcd::Cluster};
use faults::{Faults, TTL_S};
use history::{Watchers, full_history};

child_roles! { "client" => client::run() }

/// Clients in the Jepsen-style test.
const CLIENTS: u32 = 5;
/// How much later than the observed deletion of its holder key a client may still believe it
/// holds: none is expected (a client presumes its lease lost a margin before the server can
/// expire it, and the deletion is received after it happens); this covers only scheduling.
const SLACK_NS: u64 = 100_000_000;

/// Kill the leader: the others elect a new one; restart it on its data: all healthy again. Stop
/// a member: the other two stay healthy; continue it: it answers again.
#[test]
fn etcd_cluster_survives_kill_restart_and_stop() {
    let cluster = Cluster::start();
    assert_eq!(cluster.endpoints().len(), 3);
    let leader = cluster.wait_leader(Duration::from_secs(10));
    cluster.kill(leader);
    assert!(cluster.pid(leader).is_none());
    assert!(!cluster.healthy(leader, Duration::from_millis(300)));
    let next = cluster.wait_leader(Duration::from_secs(10));
    assert_ne!(next, leader, "a killed member cannot lead");
    cluster.restart(leader);
    cluster.wait_healthy(Duration::from_secs(20));
    let other = (next + 1) % 3;
    cluster.stop(other);
    assert!(!cluster.healthy(other, Duration::from_millis(300)));
    cluster.wait_healthy(Duration::from_secs(20));
    cluster.cont(other);
    cluster.wait_healthy(Duration::from_secs(20));
    assert!(cluster.healthy(other, Duration::from_secs(2)));
}

/// Isolate one member from the other two: it loses its leadership (or never had it) and its
/// health, while the majority keeps a leader; heal: it is healthy again.
#[test]
fn etcd_partition_isolates_a_member() {
    let cluster = Cluster::start_partitionable();
    let leader = cluster.wait_leader(Duration::from_secs(10));
    cluster.isolate(leader);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let now = cluster.leader();
        if now.is_some_and(|l| l != leader) && !cluster.healthy(leader, Duration::from_millis(500))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the isolated member {leader} stayed healthy or no other leader was elected\n{}",
            cluster.log_tails(20)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    cluster.heal();
    cluster.wait_healthy(Duration::from_secs(20));
    assert!(cluster.healthy(leader, Duration::from_secs(2)));
}

/// The checker on a real etcd: holder keys written directly (no library), one transaction
/// over-granting, one key under a lease that lapses while its "client" still believes it holds.
/// The watchers see the lapse, the full history is read back, and the checker flags both.
#[test]
fn checker_flags_an_over_grant_and_a_lapsed_belief_read_from_etcd() {
    use etcd_client::{Client, PutOptions};
    let cluster = Cluster::start();
    let endpoints = cluster.endpoints();
    let watchers = Watchers::start(&endpoints);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (lapsed, lapsed_key) = rt.block_on(async {
        let mut c = Client::connect(&endpoints, None).await.unwrap();
        c.put("/shmsem/t/s/meta", r#"{"capacity":4}"#, None)
            .await
            .unwrap();
        c.put("/shmsem/t/s/h/a/1", r#"{"weight":3}"#, None)
            .await
            .unwrap();
        c.put("/shmsem/t/s/h/b/1", "2", None).await.unwrap();
        c.delete("/shmsem/t/s/h/a/1", None).await.unwrap();
        let lease = c.lease_grant(2, None).await.unwrap().id();
        let key = "/shmsem/t/s/h/c/1";
        let put = c
            .put(key, "1", Some(PutOptions::new().with_lease(lease)))
            .await
            .unwrap();
        (put.header().unwrap().revision(), key)
    });
    // The "client" believes it holds the lapsing key now and 5 s later, past its 2 s lease.
    let early = common::mono_ns();
    std::thread::sleep(Duration::from_secs(5));
    let late = common::mono_ns();
    let seen = watchers.finish();
    assert!(
        seen.contains_key(lapsed_key),
        "the watchers did not see the lease expire: {seen:?}"
    );
    let events = full_history(&endpoints, Duration::from_secs(20));
    assert!(
        events
            .iter()
            .any(|e| e.key == lapsed_key && e.change == Change::Delete)
    );
    let mut v = Verdict::default();
    let capacity = HashMap::from([("/shmsem/t/s/".to_owned(), 4)]);
    check_capacity(&events, &capacity, &mut v);
    let log = format!("{early} held {lapsed}\n{late} held {lapsed}\n");
    check_beliefs(&events, &seen, &parse_log("c", &log), SLACK_NS, &mut v);
    assert_eq!(v.violations.len(), 2, "{:#?}", v.violations);
    assert!(v.violations[0].contains("holds 5 > capacity 4"));
    assert!(v.violations[1].contains(&format!("client c at {late} ns")));
    assert_eq!(v.peak["/shmsem/t/s/"], 5);
}

/// See the module's documentation.
#[test]
fn jepsen_cluster_semaphore() {
    let cluster = Cluster::start_partitionable();
    let endpoints = cluster.endpoints();
    let watchers = Watchers::start(&endpoints);
    let dir = TestDir::new("jepsen");
    let mut kids: Vec<Kid> = (0..CLIENTS)
        .map(|i| {
            Spawn::new(&dir, "client")
                .label(format!("client {i}"))
                .arg("index", i)
                .arg("endpoints", endpoints.join(","))
                .env("SHMSEM_CLUSTER_TTL", TTL_S.to_string())
                .die_with_parent()
                .spawn_until("ready", Duration::from_secs(40))
        })
        .collect();

    let mut f = Faults::new();
    let s = Duration::from_secs;
    f.settle(s(4));
    f.kill_restart_leader(&cluster, s(3));
    f.settle(s(2));
    f.stop_leader(&cluster, s(3));
    f.settle(s(2));
    let stopped_log = dir.work_file("client-0.log");
    let stopped = f.stop_holder(kids[0].pid(), &stopped_log);
    f.settle(s(2));
    f.isolate_leader(&cluster, s(5));
    f.settle(s(2));
    f.cut_link(&cluster, s(4));
    f.settle(s(2));
    f.kill_follower(&cluster, s(3));
    f.settle(s(3));

    dir.signal("stop");
    let mut counts = Vec::new();
    for kid in &mut kids {
        let (status, reports) = kid.finish(Duration::from_secs(30));
        assert!(
            status.success(),
            "{} failed:\n{}",
            kid.label,
            kid.transcript()
        );
        counts.push(reports.req("counts").to_owned());
    }
    // Let the watchers receive the last releases.
    std::thread::sleep(Duration::from_secs(1));
    let seen = watchers.finish();
    let events = full_history(&endpoints, Duration::from_secs(30));
    let mut beliefs = Vec::new();
    for i in 0..CLIENTS {
        let log = std::fs::read_to_string(dir.work_file(&format!("client-{i}.log")))
            .expect("a client's log");
        beliefs.extend(parse_log(&format!("{i}"), &log));
    }
    let sem = format!("/shmsem/{}/{}/", client::NAMESPACE, client::NAME);
    let capacity = HashMap::from([(sem.clone(), u64::from(client::CAPACITY))]);
    let mut v = Verdict::default();
    check_capacity(&events, &capacity, &mut v);
    check_beliefs(&events, &seen, &beliefs, SLACK_NS, &mut v);

    let total = |field: &str| -> u64 {
        counts
            .iter()
            .flat_map(|c| c.split_whitespace())
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| *k == field)
            .map(|(_, n)| n.parse::<u64>().unwrap())
            .sum()
    };
    println!(
        "== jepsen: {CLIENTS} clients on {sem} (capacity {})",
        client::CAPACITY
    );
    for (i, c) in counts.iter().enumerate() {
        println!("client {i}: {c}");
    }
    println!(
        "operations: {} acquires attempted, {} granted, {} timed out, {} would block, {} \
         unavailable, {} checks, {} lost, {} released, {} errors",
        total("attempts"),
        total("granted"),
        total("timeouts"),
        total("would_block"),
        total("unavailable"),
        total("checks"),
        total("lost"),
        total("released"),
        total("errors")
    );
    println!(
        "history: {} revisions with holder changes, {} puts, {} deletes, peak held {:?}; {} \
         beliefs checked, {} excused as superseded",
        v.revisions, v.puts, v.deletes, v.peak, v.beliefs, v.superseded
    );
    println!("faults ({}):", f.log.len());
    for l in &f.log {
        println!("  {l}");
    }
    println!("violations: {}", v.violations.len());
    for l in &v.violations {
        println!("  {l}");
    }
    assert!(v.violations.is_empty(), "violations: {:#?}", v.violations);

    // The run tested something: grants throughout, and the stopped holder's lease lapsed while
    // it stood, after which it believed nothing more (checked above).
    assert!(total("granted") >= 50, "too few grants: {counts:?}");
    assert_eq!(total("errors"), 0, "unexpected errors: {counts:?}");
    let stopped = stopped.expect("client 0 never held a permit to be stopped with");
    let key = events
        .iter()
        .find_map(|e| match e.change {
            Change::Put {
                create_revision, ..
            } if create_revision == stopped.token => Some(e.key.clone()),
            _ => None,
        })
        .expect("the stopped client's token in the history");
    let gone = seen
        .get(&key)
        .and_then(|s| s.iter().find(|s| s.token == stopped.token))
        .map(|s| s.at_ns)
        .expect("the stopped client's holder key was never seen deleted");
    assert!(
        (stopped.stopped_ns..stopped.continued_ns).contains(&gone),
        "the stopped client's holder key was deleted {} ms after the stop, not while it stood \
         ({} ms)",
        (gone - stopped.stopped_ns) / 1_000_000,
        (stopped.continued_ns - stopped.stopped_ns) / 1_000_000
    );
    println!(
        "the client stopped with token {} lost its holding {} ms into its stop",
        stopped.token,
        (gone - stopped.stopped_ns) / 1_000_000
    );
}
