//! The Jepsen-style test of the cluster scope, and the tests of its harness: the 3-member etcd
//! cluster of `common::etcd` (kill, restart, stop, leader, partitions).

mod common;

use std::time::Duration;

use common::etcd::Cluster;

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

#[path = "cluster_jepsen/checker.rs"]
mod checker;
#[path = "cluster_jepsen/history.rs"]
mod history;
