//! Multi-process tests, capacity and waiting: capacity 2 admits exactly 2 of 3 processes, timed
//! acquires never return early, `try_acquire` on a full semaphore returns at once, weights add
//! up to the capacity, and a release wakes a waiter blocked in another process.
//!
//! Every child process re-executes this test binary (`current_exe`) running only the
//! [`child_role`] entry point (an ignored test, see `common::child_main`), with `SHMSEM_TEST_ROLE`
//! naming what it does. Each test has its own fresh `SHMSEM_DIR`, given to its children in
//! their environment, and the harness process never calls the library: the tests run in
//! parallel threads of one process, and `SHMSEM_DIR` (like `SHMSEM_SELF`) is process-global.
//!
//! Children report to the parent on stdout with `@@mp KEY VALUE` lines (see `common`); times
//! that are compared across processes are `CLOCK_MONOTONIC` nanoseconds.

mod common;

use std::{
    sync::atomic::Ordering::SeqCst,
    thread,
    time::{Duration, Instant},
};

use common::{
    Kid, Spawn, TestDir, Witness, arg_u32,
    cli::eventually,
    mp::{
        CHILD_TIMEOUT, SIGNAL_TIMEOUT, assert_all_back, attempts, observe, role_attempts,
        role_observe, start_holder,
    },
    report,
    roles::{open_arg, role_hold},
    wait_for_signal, work_dir,
};
use shmsem::Error;

// =====================================================================================
// The child side
// =====================================================================================

crate::child_roles! {
    "hold" => role_hold(SIGNAL_TIMEOUT), "attempts" => role_attempts(), "crowd" => role_crowd(),
    "observe" => role_observe(),
}

/// Enter a capacity-limited section `iters` times, counting who is inside on the witness.
fn role_crowd() {
    let sem = open_arg();
    let witness = Witness::open(&work_dir().join("witness"));
    let iters = arg_u32("iters", 100);
    report("ready", std::process::id());
    wait_for_signal("go", SIGNAL_TIMEOUT);
    let cap = sem.capacity();
    for i in 0..iters {
        // All three ways in: blocking, timed, and trying until it works.
        let permit = match i % 3 {
            0 => sem.acquire().expect("acquire"),
            1 => sem
                .acquire_timeout(1, Duration::from_secs(20))
                .expect("acquire_timeout"),
            _ => {
                let deadline = Instant::now() + Duration::from_secs(20);
                loop {
                    match sem.try_acquire(1) {
                        Ok(p) => break p,
                        Err(Error::WouldBlock { .. }) if Instant::now() < deadline => {
                            thread::yield_now()
                        }
                        Err(e) => panic!("try_acquire: {e}"),
                    }
                }
            }
        };
        witness.enter(cap);
        if i % 3 == 0 {
            thread::sleep(Duration::from_millis(1));
        } else {
            let until = Instant::now() + Duration::from_micros(20);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
        }
        witness.leave();
        drop(permit);
    }
    report("done", iters);
}

// =====================================================================================
// The parent side: the tests
// =====================================================================================

/// capacity 2 admits exactly 2 of 3 processes at once.
#[test]
fn capacity_two_admits_exactly_two_of_three_processes() {
    const ITERS: u32 = 300;
    let dir = TestDir::new("cap2");
    let witness_path = dir.work_file("witness");
    Witness::create(&witness_path);
    let mut kids: Vec<Kid> = (0..3)
        .map(|i| {
            Spawn::new(&dir, "crowd")
                .label(format!("crowd {i}"))
                .arg("name", "two")
                .arg("cap", 2)
                .arg("iters", ITERS)
                .spawn()
        })
        .collect();
    for k in &mut kids {
        k.expect("ready", CHILD_TIMEOUT);
    }
    let t = Instant::now();
    dir.signal("go");
    for k in &mut kids {
        k.success(Duration::from_secs(60));
    }
    let took = t.elapsed();
    let w = Witness::open(&witness_path);
    let (max, violations, entries, inside) = (
        w.max_inside().load(SeqCst),
        w.violations().load(SeqCst),
        w.entries().load(SeqCst),
        w.inside().load(SeqCst),
    );
    eprintln!("capacity 2 of 3: {entries} entries in {took:?}, most inside at once {max}");
    assert_eq!(violations, 0, "more than 2 processes were inside at once");
    assert_eq!(max, 2, "most processes inside at once");
    assert_eq!(entries, 3 * ITERS);
    assert_eq!(inside, 0);
    let o = assert_all_back(&dir, "two");
    assert_eq!(o.req("capacity"), "2");
}

/// a timed acquire on a full semaphore times out, never before its deadline.
#[test]
fn timed_acquire_on_full_semaphore_times_out_not_early() {
    let dir = TestDir::new("timeout");
    let mut h = start_holder(&dir, "full", 1, 1, "release");
    let hpid = h.pid();
    let r = attempts(&dir, "full", 1, 1, "300,120,1")
        .spawn()
        .success(CHILD_TIMEOUT);
    for (i, ms) in [300u64, 120, 1].into_iter().enumerate() {
        assert_eq!(r.req(&format!("result{i}")), "Timeout", "{:?}", r.0);
        assert!(
            r.req(&format!("detail{i}"))
                .contains(&format!("timeout_ms: {ms}")),
            "{:?}",
            r.0
        );
        let elapsed_us = r.u64(&format!("elapsed_us{i}"));
        let span_ns = r.u64(&format!("end{i}")) - r.u64(&format!("start{i}"));
        eprintln!("timeout {ms} ms returned after {elapsed_us} us");
        assert!(
            elapsed_us >= ms * 1000,
            "a {ms} ms timeout returned after {elapsed_us} us: early"
        );
        assert!(span_ns >= ms * 1_000_000);
        assert!(
            elapsed_us < 5_000_000,
            "a {ms} ms timeout took {elapsed_us} us"
        );
        assert_eq!(r.req(&format!("value{i}")), "1");
        assert_eq!(r.req(&format!("holders{i}")), format!("{hpid}:1"));
    }
    dir.signal("release");
    h.success(CHILD_TIMEOUT);
}

/// `try_acquire` on a full semaphore returns `WouldBlock` at once.
#[test]
fn try_acquire_on_full_semaphore_would_block_at_once() {
    let dir = TestDir::new("try");
    let mut h = start_holder(&dir, "full", 1, 1, "release");
    let list = vec!["try"; 20].join(",");
    let r = attempts(&dir, "full", 1, 1, &list)
        .spawn()
        .success(CHILD_TIMEOUT);
    let mut worst = 0;
    for i in 0..20 {
        assert_eq!(r.req(&format!("result{i}")), "WouldBlock", "{:?}", r.0);
        assert!(
            r.req(&format!("detail{i}")).contains("available: 0"),
            "{:?}",
            r.0
        );
        worst = worst.max(r.u64(&format!("elapsed_us{i}")));
    }
    eprintln!("try_acquire on full: slowest of 20 took {worst} us");
    // The holder holds for as long as this takes; "at once" is well under any wait.
    assert!(worst < 100_000, "a try_acquire took {worst} us");
    dir.signal("release");
    h.success(CHILD_TIMEOUT);
    // Once the holder is gone the same call succeeds.
    let r = attempts(&dir, "full", 1, 1, "try")
        .spawn()
        .success(CHILD_TIMEOUT);
    assert_eq!(r.req("result0"), "ok", "{:?}", r.0);
}

/// weights 3 + 2 fit capacity 5 at once; a further weight 1 waits until one of
/// them is released.
#[test]
fn weights_three_and_two_fill_capacity_five_and_one_more_waits() {
    let dir = TestDir::new("weights");
    let mut a = start_holder(&dir, "five", 5, 3, "release-a");
    // The holder takes its weight with try_acquire: 2 is free beside the 3 at once.
    let mut b = start_holder(&dir, "five", 5, 2, "release-b");
    assert_eq!(b.expect("value", CHILD_TIMEOUT), "5");
    let (apid, bpid) = (a.pid(), b.pid());
    let mut c = attempts(&dir, "five", 5, 1, "300,10000").spawn();
    assert_eq!(c.expect("result0", CHILD_TIMEOUT), "Timeout");
    let elapsed = c.expect("elapsed_us0", CHILD_TIMEOUT);
    assert!(elapsed.parse::<u64>().unwrap() >= 300_000, "{elapsed} us");
    assert_eq!(c.expect("value0", CHILD_TIMEOUT), "5");
    let mut both = [(apid, 3), (bpid, 2)];
    both.sort_unstable();
    assert_eq!(
        c.expect("holders0", CHILD_TIMEOUT),
        format!("{}:{},{}:{}", both[0].0, both[0].1, both[1].0, both[1].1)
    );
    // Release A's 3 once C is asleep again: the waiting weight 1 gets in while B still holds 2.
    c.expect("start1", CHILD_TIMEOUT);
    thread::sleep(Duration::from_millis(100));
    dir.signal("release-a");
    let cr = c.success(CHILD_TIMEOUT);
    let ar = a.success(CHILD_TIMEOUT);
    assert_eq!(cr.req("result1"), "ok", "{:?}", cr.0);
    assert!(
        cr.u64("end1") >= ar.u64("release_ns"),
        "the weight 1 was granted before anything was released"
    );
    assert!(
        cr.u64("elapsed_us1") >= 100_000,
        "weight 1 did not wait: {:?}",
        cr.0
    );
    let cpid = c.pid();
    let mut two = [(bpid, 2), (cpid, 1)];
    two.sort_unstable();
    assert_eq!(cr.req("value1"), "3");
    assert_eq!(
        cr.req("holders1"),
        format!("{}:{},{}:{}", two[0].0, two[0].1, two[1].0, two[1].1)
    );
    eprintln!(
        "weight 1 granted {} us after A released",
        (cr.u64("end1") - ar.u64("release_ns")) / 1000
    );
    dir.signal("release-b");
    b.success(CHILD_TIMEOUT);
    assert_all_back(&dir, "five");
}

/// A waiter blocked with no deadline sleeps with no timer: while it waits, its thread does not
/// run at all (its context switches stay the same over a second, many times any period of the
/// library's), it does not return before the release, and the release in another process wakes
/// it (a futex wake: nothing else could).
#[test]
fn release_wakes_a_waiter_in_another_process() {
    const ROUNDS: usize = 3;
    /// Many times any period of the library's (the watcher's, a bounded sleep's).
    const ASLEEP: Duration = Duration::from_secs(1);
    let dir = TestDir::new("wake");
    for round in 0..ROUNDS {
        let name = format!("wake{round}");
        let release = format!("release{round}");
        let mut h = start_holder(&dir, &name, 1, 1, &release);
        let mut w = attempts(&dir, &name, 1, 1, "forever").spawn();
        let start: u64 = w.expect("start0", CHILD_TIMEOUT).parse().unwrap();
        eventually("the waiter is listed", || {
            observe(&dir, &name).u64("waiters") == 1
        });
        let pid = w.pid();
        eventually("the waiting thread sleeps", || {
            common::test_thread(pid).is_some_and(|t| t.state == 'S')
        });
        let before = common::test_thread(pid).expect("the waiting thread");
        thread::sleep(ASLEEP);
        let after = common::test_thread(pid).expect("the waiting thread");
        assert_eq!(
            (after.state, after.switches),
            ('S', before.switches),
            "the waiting thread ran while nothing was released (context switches {} then {}, \
             {ASLEEP:?} apart): it polls",
            before.switches,
            after.switches
        );
        assert!(
            w.reports().get("end0").is_none() && w.alive(),
            "the waiter returned before the release: {:?}",
            w.reports()
        );
        dir.signal(&release);
        let wr = w.success(CHILD_TIMEOUT);
        let hr = h.success(CHILD_TIMEOUT);
        assert_eq!(wr.req("result0"), "ok", "{:?}", wr.0);
        let released = hr.u64("release_ns");
        let acquired = wr.u64("end0");
        assert!(acquired >= released, "acquired before the release");
        eprintln!(
            "round {round}: waiter slept {} ms, woken {} us after the release",
            (released - start) / 1_000_000,
            (acquired - released) / 1000
        );
    }
}
