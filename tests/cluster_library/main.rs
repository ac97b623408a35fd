//! The cluster scope's library across processes, against a 3-member etcd cluster on the
//! loopback (`common::etcd`): capacity and weights, try, timed and blocking acquires, Enter/Exit,
//! fencing tokens, info and the namespace's list, set, remove and reap, a SIGKILLed holder's
//! weight coming back (at once on the same host, within the lease's TTL plus an election timeout
//! from another), a holder paused past its lease learning that it lost the holding, and the
//! typed errors of an unreachable cluster and of one without quorum.
//!
//! One etcd cluster serves the whole binary (started on first use, by a thread that lives as
//! long as the harness, so its members die with it); each test uses its own namespace. The tests
//! that kill etcd members start a cluster of their own.

#[path = "../common/mod.rs"]
mod common;
mod roles;

use std::{
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use common::{Kid, Spawn, TestDir, etcd::Cluster};

/// The lease TTL the children use, in seconds (etcd's smallest, with the harness's election
/// timeout of 1 s, is 1.5 s).
const TTL_S: u64 = 2;
pub const LONG: Duration = Duration::from_secs(60);

/// The shared cluster's endpoints, comma-separated.
fn endpoints() -> String {
    common::etcd::shared_endpoints()
}

fn spawn_on(dir: &TestDir, endpoints: &str, role: &str, ns: &str, args: &[(&str, &str)]) -> Kid {
    let mut s = Spawn::new(dir, role)
        .env("SHMSEM_CLUSTER", endpoints)
        .env("SHMSEM_CLUSTER_TTL", TTL_S.to_string())
        .arg("ns", ns);
    for (k, v) in args {
        s = s.arg(k, v);
        if *k == "label" {
            s = s.label(*v);
        }
    }
    s.spawn()
}

fn spawn(dir: &TestDir, role: &str, ns: &str, args: &[(&str, &str)]) -> Kid {
    spawn_on(dir, &endpoints(), role, ns, args)
}

child_roles!(dispatch roles::run);

// ===== the tests =====

/// Weights against a capacity across processes: a holder of 2 of 3 leaves 1; a try of 2 would
/// block (1 available), a timed acquire of 2 times out no earlier than asked, a try of 1 gets
/// it; once the holder releases, a waiter for 2 gets it, with a larger token.
#[test]
fn weights_try_timed_and_blocking_across_processes() {
    let dir = TestDir::new("cl-weights");
    let ns = "weights";
    let mut a = spawn(
        &dir,
        "hold",
        ns,
        &[("cap", "3"), ("w", "2"), ("label", "a")],
    );
    let token_a: u64 = a.expect("token", LONG).parse().unwrap();
    a.expect("held", LONG);
    let mut t = spawn(&dir, "try", ns, &[("cap", "3"), ("w", "2")]);
    assert_eq!(t.expect("try", LONG), "wouldblock:1");
    let mut timed = spawn(
        &dir,
        "timed",
        ns,
        &[("cap", "3"), ("w", "2"), ("ms", "400")],
    );
    assert_eq!(timed.expect("outcome", LONG), "timeout");
    let elapsed: u64 = timed.reports().u64("elapsed_ms");
    assert!(
        elapsed >= 400,
        "a 400 ms timeout returned after {elapsed} ms"
    );
    let mut one = spawn(&dir, "try", ns, &[("cap", "3"), ("w", "1")]);
    assert_eq!(one.expect("try", LONG), "ok");
    let mut waiter = spawn(
        &dir,
        "timed",
        ns,
        &[("cap", "3"), ("w", "2"), ("ms", "30000")],
    );
    thread::sleep(Duration::from_millis(300));
    dir.signal("release");
    assert_eq!(a.expect("check", LONG), "ok");
    assert_eq!(waiter.expect("outcome", LONG), "ok");
    let token_w: u64 = waiter.reports().u64("token");
    assert!(token_w > token_a, "tokens grow: {token_a} then {token_w}");
    dir.signal("exit");
    a.success(LONG);
}

/// Fairness for weights above 1, as locally: while a waiter for 2 of 2 waits behind a holder
/// of 1, a try for the 1 that is free would block (the waiter reserved it); once the holder
/// releases, the waiter gets its 2.
#[test]
fn a_heavy_waiter_is_not_starved_by_light_ones() {
    let dir = TestDir::new("cl-fair");
    let ns = "fair";
    let mut a = spawn(&dir, "hold", ns, &[("cap", "2")]);
    a.expect("held", LONG);
    let mut heavy = spawn(
        &dir,
        "timed",
        ns,
        &[("cap", "2"), ("w", "2"), ("ms", "30000")],
    );
    heavy.expect("opened", LONG);
    // The heavy waiter's key is written once it has found the semaphore too full.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut t = spawn(&dir, "try", ns, &[("cap", "2")]);
        if t.expect("try", LONG) == "wouldblock:1" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a try kept taking the weight reserved for the waiter"
        );
        thread::sleep(Duration::from_millis(100));
    }
    dir.signal("release");
    assert_eq!(heavy.expect("outcome", LONG), "ok");
    dir.signal("exit");
    a.success(LONG);
}

/// Enter/Exit across processes: what one process entered, another cannot take; exit gives it
/// back in parts; exiting more than entered is NotHeld and changes nothing.
#[test]
fn enter_and_exit_across_processes() {
    let dir = TestDir::new("cl-enter");
    let ns = "enter";
    let mut e = spawn(&dir, "enter_exit", ns, &[("cap", "2")]);
    e.expect("entered", LONG);
    assert_eq!(
        spawn(&dir, "try", ns, &[("cap", "2")]).expect("try", LONG),
        "wouldblock:0"
    );
    dir.signal("exit1");
    assert_eq!(e.expect("exit1", LONG), "ok");
    assert_eq!(e.expect("exit2", LONG), "notheld:1");
    assert_eq!(
        spawn(&dir, "try", ns, &[("cap", "2"), ("w", "2")]).expect("try", LONG),
        "wouldblock:1"
    );
    dir.signal("exit-rest");
    assert_eq!(e.expect("exit-rest", LONG), "ok");
    assert_eq!(e.expect("exit-more", LONG), "notheld:0");
    e.expect("with", LONG);
    e.success(LONG);
}

/// Never over-granted: 4 processes acquire weights 1 and 2 on capacity 3 many times, each
/// holding briefly; the witness (independent of shmsem) never sees more than 3 inside.
#[test]
fn never_over_granted_under_contention() {
    let dir = TestDir::new("cl-witness");
    let witness = dir.work_file("witness");
    common::Witness::create(&witness);
    let kids: Vec<Kid> = (0..4)
        .map(|i| {
            let w = if i % 2 == 0 { "1" } else { "2" };
            spawn(
                &dir,
                "contend",
                "witness",
                &[("cap", "3"), ("w", w), ("rounds", "15")],
            )
        })
        .collect();
    for mut k in kids {
        k.success(LONG);
    }
    let w = common::Witness::open(&witness);
    let violations = w.violations().load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(violations, 0, "more than the capacity was inside at once");
    let entries = w.entries().load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        entries, 90,
        "2 × 15 × 1 + 2 × 15 × 2 units of weight entered"
    );
}

/// A SIGKILLed holder on this host: its death is proven (pid and start time), its lease
/// revoked, and a waiter gets the weight well before the lease's TTL could have expired it.
/// `reap` names what it held.
#[test]
fn killed_holder_on_this_host_comes_back_at_once() {
    let dir = TestDir::new("cl-kill-here");
    let ns = "killhere";
    // A longer TTL here, so that "before the TTL" is unmistakable.
    let mut a = Spawn::new(&dir, "hold")
        .env("SHMSEM_CLUSTER", endpoints())
        .env("SHMSEM_CLUSTER_TTL", "10")
        .arg("ns", ns)
        .arg("cap", "2")
        .arg("w", "2")
        .spawn();
    a.expect("held", LONG);
    let pid = a.pid();
    a.sigkill();
    let mut r = spawn(&dir, "reap", ns, &[]);
    assert_eq!(r.expect("reaped", LONG), format!("s:{pid}:2"));
    let mut b = spawn(
        &dir,
        "timed",
        ns,
        &[("cap", "2"), ("w", "2"), ("ms", "30000")],
    );
    assert_eq!(b.expect("outcome", LONG), "ok");
    let elapsed = b.reports().u64("elapsed_ms");
    assert!(
        elapsed < 8_000,
        "took {elapsed} ms: the lease was not revoked at once"
    );
}

/// A SIGKILLed holder of another host (its member key names another host, so nothing here can
/// prove its death) comes back when its lease expires: within the TTL plus an election timeout
/// (and some slack for a loaded machine) after the kill, not before it was killed.
#[test]
fn killed_holder_of_another_host_comes_back_within_the_ttl() {
    let dir = TestDir::new("cl-kill-remote");
    let ns = "killremote";
    let mut a = Spawn::new(&dir, "hold")
        .env("SHMSEM_CLUSTER", endpoints())
        .env("SHMSEM_CLUSTER_TTL", TTL_S.to_string())
        .env("SHMSEM_CLUSTER_HOST", "elsewhere.example")
        .arg("ns", ns)
        .spawn();
    a.expect("held", LONG);
    let mut b = spawn(&dir, "timed", ns, &[("ms", "30000")]);
    thread::sleep(Duration::from_millis(500));
    let killed = Instant::now();
    a.sigkill();
    assert_eq!(b.expect("outcome", LONG), "ok");
    let after_kill = killed.elapsed();
    let bound = Duration::from_secs(TTL_S)
        + Duration::from_millis(common::etcd::ELECTION_MS)
        + Duration::from_secs(3);
    assert!(
        after_kill <= bound,
        "came back {after_kill:?} after the kill, bound {bound:?}"
    );
    assert!(
        b.reports().u64("elapsed_ms") >= 500,
        "the waiter got it while the holder lived"
    );
}

/// A holder stopped (SIGSTOP) for longer than its lease loses the holding: meanwhile another
/// process gets the weight with a larger token, and once continued, the holder's `check` says
/// Lost and its `on_lost` callback has run.
#[test]
fn a_paused_holder_learns_it_lost_the_holding() {
    let dir = TestDir::new("cl-lost");
    let ns = "lost";
    let mut a = spawn(&dir, "hold", ns, &[("label", "a")]);
    let token_a: u64 = a.expect("token", LONG).parse().unwrap();
    a.expect("held", LONG);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(a.pid() as i32, libc::SIGSTOP) };
    let mut b = spawn(&dir, "timed", ns, &[("ms", "30000")]);
    assert_eq!(b.expect("outcome", LONG), "ok");
    assert!(b.reports().u64("token") > token_a);
    // SAFETY: as above.
    unsafe { libc::kill(a.pid() as i32, libc::SIGCONT) };
    let lost = dir.work_file("lost-a");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lost.exists() {
        assert!(
            Instant::now() < deadline,
            "on_lost never ran\n{}",
            a.transcript()
        );
        thread::sleep(Duration::from_millis(20));
    }
    dir.signal("release");
    assert_eq!(a.expect("check", LONG), "lost");
    dir.signal("exit");
    a.success(LONG);
}

/// A forked child holds nothing of its parent's and uses the cluster on a client of its own.
#[test]
fn a_forked_child_holds_nothing_of_its_parents() {
    let dir = TestDir::new("cl-fork");
    let r = spawn(&dir, "fork", "fork", &[("cap", "2")]).success(LONG);
    assert_eq!(r.req("child_exit"), "notheld:0");
    assert_eq!(r.req("child_try"), "ok");
    assert_eq!(r.req("child_token_larger"), "true");
    assert_eq!(
        r.req("child_full"),
        "ok",
        "the parent holds 1 of 2, the child's own went back"
    );
    assert_eq!(r.req("child_value"), "1");
    assert_eq!(r.req("child_status"), "0");
    assert_eq!(r.req("parent_check"), "ok");
    assert_eq!(r.req("parent_value"), "1");
    assert_eq!(r.req("after_value"), "0");
}

/// create_new, open_existing, info (holders with pid, host, since and token), the namespace's
/// list, set_capacity, set_persistent, remove (refused while held, forced), from one process
/// while the cluster serves others.
#[test]
fn admin_calls() {
    let dir = TestDir::new("cl-admin");
    let mut k = spawn(&dir, "admin", "admin", &[]);
    let r = k.success(LONG);
    assert_eq!(r.req("existing"), "notfound");
    assert_eq!(r.req("again"), "exists");
    assert_eq!(r.req("capacity"), "2");
    assert_eq!(r.req("toolarge"), "toolarge");
    assert_eq!(r.req("value"), "2");
    assert_eq!(r.req("kind"), "persistent");
    assert_eq!(r.u64("holder_pid"), u64::from(k.pid()));
    assert_eq!(r.req("holder_weight"), "2");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(r.req("holder_host"), host.trim());
    assert_eq!(r.req("holder_token_matches"), "true");
    assert_eq!(r.req("holder_since_ok"), "true");
    assert_eq!(r.req("scope"), "cluster");
    assert_eq!(r.req("rm_held"), "inuse:2");
    assert_eq!(r.req("capacity_after"), "3");
    assert_eq!(r.req("kind_after"), "auto");
    assert_eq!(r.req("listed"), "a=2/3");
    assert_eq!(r.req("after_rm"), "notfound");
    assert_eq!(r.req("info_removed"), "removed");
    assert_eq!(r.req("rm_force"), "ok");
    assert_eq!(r.req("listed_after"), "0");
}

/// An endpoint where nothing listens: a typed error (Unavailable) within the call deadline, not
/// a hang; no endpoints at all: InvalidArgument.
#[test]
fn unreachable_cluster_is_a_typed_error() {
    let dir = TestDir::new("cl-unreachable");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut k = spawn_on(&dir, "", "unreachable", "x", &[("endpoint", &endpoint)]);
    let r = k.success(LONG);
    assert_eq!(r.req("open"), "unavailable");
    assert!(
        r.u64("elapsed_ms") < 15_000,
        "took {} ms",
        r.u64("elapsed_ms")
    );
    assert!(
        r.req("none").starts_with("error:invalid argument"),
        "{}",
        r.req("none")
    );
}

/// Two of three members killed: no quorum. A timed acquire times out (Timeout, no earlier than
/// asked, not long after), and the holder's weight is never granted twice; with the members
/// back, the acquire succeeds.
#[test]
fn without_quorum_acquires_time_out() {
    let dir = TestDir::new("cl-quorum");
    let (tx, rx) = mpsc::channel::<()>();
    let (etx, erx) = mpsc::channel();
    // The cluster lives on a thread of its own (its members die with the thread that started
    // them), driven by messages.
    let driver = thread::spawn(move || {
        let cluster = Cluster::start();
        etx.send(cluster.endpoints().join(",")).unwrap();
        rx.recv().unwrap();
        let leader = cluster.wait_leader(Duration::from_secs(10));
        let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
        cluster.kill(others[0]);
        cluster.kill(leader);
        etx.send(String::new()).unwrap();
        rx.recv().unwrap();
        cluster.restart(others[0]);
        cluster.restart(leader);
        cluster.wait_healthy(Duration::from_secs(30));
        etx.send(String::new()).unwrap();
        rx.recv().ok();
    });
    let eps = erx.recv().expect("cluster started");
    let ns = "quorum";
    let mut a = spawn_on(&dir, &eps, "hold", ns, &[]);
    a.expect("held", LONG);
    let mut b = spawn_on(
        &dir,
        &eps,
        "timed",
        ns,
        &[("ms", "1500"), ("after", "no-quorum")],
    );
    b.expect("opened", LONG);
    tx.send(()).unwrap();
    erx.recv().unwrap();
    dir.signal("no-quorum");
    assert_eq!(b.expect("outcome", LONG), "timeout");
    let elapsed = b.reports().u64("elapsed_ms");
    assert!(
        (1500..15_000).contains(&elapsed),
        "a 1.5 s acquire without quorum took {elapsed} ms"
    );
    tx.send(()).unwrap();
    erx.recv().unwrap();
    dir.signal("release");
    let mut c = spawn_on(&dir, &eps, "timed", ns, &[("ms", "30000")]);
    assert_eq!(c.expect("outcome", LONG), "ok");
    dir.signal("exit");
    a.try_finish(LONG);
    tx.send(()).ok();
    driver.join().unwrap();
}

/// The async API on a cluster semaphore (feature `async`): futures wait on the cluster
/// client's runtime, a future cancelled by a runtime timeout leaves no waiter key behind, and
/// an owned permit dropped in another task releases.
#[test]
fn async_acquires_on_a_cluster_semaphore() {
    let dir = TestDir::new("cl-async");
    let mut kid = spawn(&dir, "async", "async", &[("cap", "1")]);
    let r = kid.success(LONG);
    assert_eq!(r.req("token"), "true");
    assert_eq!(r.req("second_timed_out"), "true");
    assert_eq!(r.req("waiters_after_cancel"), "0");
    assert_eq!(r.req("third"), "true");
    assert_eq!(r.req("value"), "0");
}
