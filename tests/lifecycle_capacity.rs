//! Lifecycle tests, run-time capacity and fairness: raising the capacity with
//! `shmsem set` wakes a waiter in another process, lowering it revokes nothing and blocks new
//! acquires, and a large waiter is not starved by a stream of small acquires.
//!
//! As in the `multiprocess_*` tests, library users are child processes that re-execute this
//! test binary in a role (see `common`), and everything else goes through the built `shmsem`
//! binary. The harness process itself never calls the library: `SHMSEM_DIR` is read once per
//! process, and every test has its own fresh one.

mod common;

use std::{
    thread,
    time::{Duration, Instant},
};

use common::{
    Kid, Spawn, TestDir, arg_u32,
    cli::{Sleeper, eventually, ok, parties, run, show},
    life::{CHILD_TIMEOUT, SIGNAL_TIMEOUT, parent_alive, role_wait},
    mono_ns, report,
    roles::{open_arg, role_hold},
    work_dir,
};
use shmsem::Error;

// =====================================================================================
// The child side
// =====================================================================================

crate::child_roles! {
    "hold" => role_hold(SIGNAL_TIMEOUT), "wait" => role_wait(), "churn" => role_churn(),
    "big" => role_big(), "poller" => role_poller(),
}

/// Take weight 1, hold it `hold_ms`, give it back, again and again until the file `stop`.
fn role_churn() {
    let sem = open_arg();
    let hold = Duration::from_millis(arg_u32("hold_ms", 5).into());
    let stop = work_dir().join("stop");
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let (mut ops, mut failures) = (0u64, 0u64);
    while !stop.exists() && parent_alive() && Instant::now() < deadline {
        match sem.acquire_timeout(1, Duration::from_secs(20)) {
            Ok(permit) => {
                thread::sleep(hold);
                drop(permit);
                ops += 1;
                if ops == 3 {
                    report("started", std::process::id());
                }
            }
            Err(e) => {
                failures += 1;
                report("error", format!("{e:?}"));
            }
        }
    }
    report("ops", ops);
    report("failures", failures);
}

/// `rounds` times: wait (up to 20 s) for the whole capacity, `weight`, and hold it briefly.
/// Reports each wait in microseconds, and the value seen while holding.
fn role_big() {
    let sem = open_arg();
    let weight = arg_u32("weight", 4);
    let rounds = arg_u32("rounds", 5);
    let mut worst = 0u128;
    for i in 0..rounds {
        thread::sleep(Duration::from_millis(30)); // let the small ones fill up again
        let t = Instant::now();
        let permit = sem
            .acquire_timeout(weight, Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("round {i}: the large waiter failed: {e}"));
        let waited = t.elapsed().as_micros();
        worst = worst.max(waited);
        report(&format!("waited_us{i}"), waited);
        report(&format!("value{i}"), sem.info().expect("info").value);
        thread::sleep(Duration::from_millis(5));
        drop(permit);
    }
    report("worst_us", worst);
}

/// The control for `role_big`: a taker with no reservation, trying for `weight` every
/// millisecond for `ms`. Reports how many tries there were and how many succeeded.
fn role_poller() {
    let sem = open_arg();
    let weight = arg_u32("weight", 4);
    let until = Instant::now() + Duration::from_millis(arg_u32("ms", 2000).into());
    let (mut tries, mut got) = (0u64, 0u64);
    while Instant::now() < until {
        tries += 1;
        match sem.try_acquire(weight) {
            Ok(permit) => {
                got += 1;
                drop(permit);
            }
            Err(Error::WouldBlock { .. }) => {}
            Err(e) => panic!("try_acquire: {e}"),
        }
        thread::sleep(Duration::from_millis(1));
    }
    report("tries", tries);
    report("got", got);
}

// =====================================================================================
// Run-time capacity
// =====================================================================================

#[test]
fn raising_the_capacity_wakes_a_waiter_in_another_process() {
    let dir = TestDir::new("raise");
    let mut holder = Spawn::new(&dir, "hold")
        .arg("name", "grow")
        .arg("release", "never")
        .spawn();
    let holder_pid = holder.expect("held", CHILD_TIMEOUT);
    let mut waiter = Spawn::new(&dir, "wait")
        .arg("name", "grow")
        .arg("timeout_ms", 30_000)
        .arg("done", "done")
        .spawn();
    waiter.expect("waiting_ns", CHILD_TIMEOUT);
    let waiter_pid = u64::from(waiter.pid());
    eventually("the waiter shows as waiting", || {
        parties(&show(&dir, "grow"), "waiters") == [(waiter_pid, 1)]
    });
    // Still waiting a while later: the capacity really is the obstacle.
    thread::sleep(Duration::from_millis(200));
    assert_eq!(parties(&show(&dir, "grow"), "waiters"), [(waiter_pid, 1)]);

    let before = mono_ns();
    ok(&dir, &["set", "grow", "--capacity", "2"]);
    let after = mono_ns();
    let acquired: u64 = waiter
        .expect("acquired_ns", Duration::from_secs(10))
        .parse()
        .unwrap();
    let latency_ms = acquired.saturating_sub(before) as f64 / 1e6;
    eprintln!(
        "raise: the waiter acquired {latency_ms:.1} ms after `set` started (set itself took \
         {:.1} ms); its timeout was 30 s",
        (after - before) as f64 / 1e6
    );
    assert!(acquired > before);
    assert!(latency_ms < 2_000.0, "{latency_ms} ms");
    // The holder never released: both hold now.
    let v = show(&dir, "grow");
    assert_eq!(
        (v["capacity"].as_u64(), v["value"].as_u64()),
        (Some(2), Some(2))
    );
    let holders: Vec<u64> = parties(&v, "holders").iter().map(|p| p.0).collect();
    let mut want = vec![holder_pid.parse::<u64>().unwrap(), waiter_pid];
    want.sort_unstable();
    assert_eq!(holders, want);
    assert!(holder.reports().get("released").is_none());
    dir.signal("done");
    waiter.success(CHILD_TIMEOUT);
}

#[test]
fn lowering_the_capacity_revokes_nothing_and_blocks_new_acquires() {
    let dir = TestDir::new("lower");
    let (h1, h2, h3) = (Sleeper::spawn(), Sleeper::spawn(), Sleeper::spawn());
    ok(&dir, &["create", "shrink", "--capacity", "3"]);
    ok(&dir, &["acquire", "shrink", "--holder", &h1.pid()]);
    ok(&dir, &["acquire", "shrink", "--holder", &h2.pid()]);
    ok(&dir, &["set", "shrink", "--capacity", "1"]);

    let v = show(&dir, "shrink");
    assert_eq!(
        (v["capacity"].as_u64(), v["value"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(parties(&v, "holders").len(), 2, "{v}");
    let try_once = || {
        run(
            &dir,
            &["acquire", "shrink", "--timeout", "0", "--holder", &h3.pid()],
        )
    };
    try_once().failed(75);
    let text = ok(&dir, &["ls"]).stdout;
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("shrink"))
        .expect("a row")
        .split_whitespace()
        .collect();
    assert_eq!(row[2..4], ["1", "2"], "{text}");

    // Value 1 is not below capacity 1: still blocked.
    ok(&dir, &["release", "shrink", "--holder", &h1.pid()]);
    try_once().failed(75);
    run(
        &dir,
        &[
            "acquire",
            "shrink",
            "--timeout",
            "100",
            "--holder",
            &h3.pid(),
        ],
    )
    .failed(75);
    assert_eq!(show(&dir, "shrink")["value"], 1);
    // Value 0: room again, for exactly one.
    ok(&dir, &["release", "shrink", "--holder", &h2.pid()]);
    ok(
        &dir,
        &["acquire", "shrink", "--timeout", "0", "--holder", &h3.pid()],
    );
    run(
        &dir,
        &["acquire", "shrink", "--timeout", "0", "--holder", &h1.pid()],
    )
    .failed(75);
    let v = show(&dir, "shrink");
    assert_eq!(parties(&v, "holders"), [(h3.0.id().into(), 1)]);
}

// =====================================================================================
// Weighted fairness
// =====================================================================================

#[test]
fn a_large_waiter_is_not_starved_by_a_stream_of_small_acquires() {
    let dir = TestDir::new("fair");
    // Every child works on `pool`, capacity 4.
    let on_pool = |role: &str| Spawn::new(&dir, role).arg("name", "pool").arg("cap", 4);
    let mut churn: Vec<Kid> = (0..3)
        .map(|i| {
            on_pool("churn")
                .label(format!("churn{i}"))
                .arg("hold_ms", 5)
                .spawn()
        })
        .collect();
    for c in &mut churn {
        c.expect("started", CHILD_TIMEOUT);
    }
    // The control: a taker without a reservation (trying once a millisecond) all but never
    // finds the 4 free while three processes take turns with 1 each.
    let control = on_pool("poller")
        .arg("ms", 2000)
        .spawn()
        .success(CHILD_TIMEOUT);
    // A waiter for 4 reserves them: the small ones drain and it gets its turn, every time.
    let big = on_pool("big")
        .arg("rounds", 5)
        .spawn()
        .success(CHILD_TIMEOUT);
    dir.signal("stop");
    let mut small_ops = 0;
    for c in &mut churn {
        let r = c.success(CHILD_TIMEOUT);
        assert_eq!(r.u64("failures"), 0, "{}", c.transcript());
        small_ops += r.u64("ops");
    }
    let waits: Vec<u64> = (0..5).map(|i| big.u64(&format!("waited_us{i}"))).collect();
    eprintln!(
        "fairness: with its reservation the weight-4 waiter waited {:?} ms (worst {:.1} ms) \
         against 3 processes cycling weight 1 ({small_ops} small acquires in all); without one, \
         {} of {} tries in 2 s found the 4 free",
        waits.iter().map(|us| us / 1000).collect::<Vec<_>>(),
        big.u64("worst_us") as f64 / 1e3,
        control.u64("got"),
        control.u64("tries")
    );
    for i in 0..5 {
        assert_eq!(big.u64(&format!("value{i}")), 4);
    }
    assert!(
        big.u64("worst_us") < 3_000_000,
        "the weight-4 waiter waited {} µs",
        big.u64("worst_us")
    );
    assert!(
        small_ops > 100,
        "the small acquires hardly ran: {small_ops}"
    );
}
