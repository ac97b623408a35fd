//! Lifecycle tests, idle deletion: auto semaphores deleted after their idle period
//! and not before, `shmsem set` switching the kind both ways, and the race of an idle
//! semaphore's deletion with acquires through open handles.
//!
//! As in the `multiprocess_*` tests, library users are child processes that re-execute this
//! test binary in a role (see `common`), and everything else goes through the built `shmsem`
//! binary. The harness process itself never calls the library: `SHMSEM_DIR` is read once per
//! process, and every test has its own fresh one.

mod common;

use std::{
    sync::atomic::Ordering::SeqCst,
    thread,
    time::{Duration, Instant},
};

use common::{
    Kid, Spawn, TestDir, Witness, arg, arg_u32,
    cli::{Sleeper, ls, names, ok, run, show, sleep_until},
    life::{CHILD_TIMEOUT, parent_alive},
    report,
    roles::open_arg,
    send_signal, work_dir,
};
use shmsem::Semaphore;

// =====================================================================================
// The child side
// =====================================================================================

crate::child_roles! {
    "cycler" => role_cycler(), "sweeper" => role_sweeper(),
}

/// Acquire and release weight 1 through one handle of an auto semaphore until the file `stop`
/// appears, counting every acquire that fails and every moment the witness saw two inside.
/// Every few rounds it pauses briefly, so that sweeps find the semaphore unused and delete it.
fn role_cycler() {
    let sem = open_arg();
    let witness = Witness::open(&work_dir().join("witness"));
    let stop = work_dir().join("stop");
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let (mut ops, mut failures) = (0u64, 0u64);
    report("started", std::process::id());
    while !stop.exists() && parent_alive() && Instant::now() < deadline {
        match sem.acquire_timeout(1, Duration::from_secs(10)) {
            Ok(permit) => {
                witness.enter(1);
                for _ in 0..200 {
                    std::hint::spin_loop();
                }
                witness.leave();
                drop(permit);
                ops += 1;
            }
            Err(e) => {
                failures += 1;
                report("error", format!("{e:?}"));
            }
        }
        if ops % 4 == 0 {
            thread::sleep(Duration::from_micros(300));
        }
    }
    report("ops", ops);
    report("failures", failures);
}

/// List the namespace (each list sweeps idle auto semaphores first) until `name` has been seen
/// to go away `rounds` times, or `secs` have passed; then create the file `stop`. Reports how
/// often `name` was listed more than once, or with its value above its capacity.
fn role_sweeper() {
    let name = arg("name");
    let rounds = u64::from(arg_u32("rounds", 200));
    let deadline = Instant::now() + Duration::from_secs(arg_u32("secs", 30).into());
    let opts = Semaphore::options();
    let (mut deletions, mut lists, mut most, mut over) = (0u64, 0u64, 0usize, 0u64);
    let mut present = false;
    while deletions < rounds && Instant::now() < deadline && parent_alive() {
        let infos = opts.to_namespace().and_then(|n| n.list()).expect("listing");
        let mine: Vec<_> = infos.iter().filter(|i| i.name == name).collect();
        most = most.max(mine.len());
        over += mine.iter().filter(|i| i.value > i.capacity).count() as u64;
        if present && mine.is_empty() {
            deletions += 1;
        }
        present = !mine.is_empty();
        lists += 1;
    }
    report("lists", lists);
    report("deletions", deletions);
    report("most_listed", most);
    report("over_capacity", over);
    send_signal("stop");
}

// =====================================================================================
// Auto semaphores: deleted after their idle period, not before
// =====================================================================================

/// The idle period of the auto semaphores of [`an_idle_auto_semaphore_goes_after_its_idle_period_and_not_before`]:
/// long, because what shows that a semaphore is not gone too early (two `ls` processes right
/// after the sweep that starts the period) must run within it, on a loaded machine too.
const IDLE: Duration = Duration::from_secs(2);
/// Beyond an idle period, for the millisecond granularity of the times the sweep compares.
const PAST: Duration = Duration::from_millis(50);

#[test]
fn an_idle_auto_semaphore_goes_after_its_idle_period_and_not_before() {
    let dir = TestDir::new("idle");
    let idle_ms = IDLE.as_millis().to_string();
    ok(
        &dir,
        &["create", "idle", "--idle-ms", &idle_ms, "--capacity", "2"],
    );
    ok(&dir, &["create", "keep", "--persistent"]);
    ok(&dir, &["create", "busy", "--idle-ms", &idle_ms]);
    let holder = Sleeper::spawn();
    ok(&dir, &["acquire", "busy", "--holder", &holder.pid()]);
    // Use it: an acquire and a release, which marks it used.
    ok(&dir, &["run", "idle", "--", "true"]);

    // The first sweep after the use starts the idle period: it runs between `before` and `after`.
    let before = Instant::now();
    assert_eq!(names(&dir), ["busy", "idle", "keep"]);
    let after = Instant::now();
    let listed = names(&dir);
    let at_check = before.elapsed();
    assert_eq!(
        listed,
        ["busy", "idle", "keep"],
        "gone at most {at_check:?} after the sweep that started its {IDLE:?} idle period"
    );
    // Every sweep from here on runs a whole idle period after the first.
    sleep_until(after + IDLE + PAST);
    let listed = names(&dir);
    assert_eq!(
        listed,
        ["busy", "keep"],
        "still there after its idle period"
    );
    eprintln!(
        "idle: present {} ms, gone {} ms after the sweep that started its {} ms idle period",
        at_check.as_millis(),
        before.elapsed().as_millis(),
        IDLE.as_millis()
    );

    // A held one stays however long it is held (here past its idle period); once released, it
    // goes one idle period after the next sweep.
    assert_eq!(names(&dir), ["busy", "keep"]);
    ok(&dir, &["release", "busy", "--holder", &holder.pid()]);
    assert_eq!(names(&dir), ["busy", "keep"]);
    let after = Instant::now();
    sleep_until(after + IDLE + PAST);
    assert_eq!(names(&dir), ["keep"]);

    // The persistent one never goes.
    thread::sleep(Duration::from_millis(400));
    let all = ls(&dir, &[]);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(
        (all[0]["name"].as_str(), all[0]["kind"].as_str()),
        (Some("keep"), Some("persistent"))
    );
    // A deleted auto semaphore is created again by its next use.
    ok(&dir, &["run", "idle", "--", "true"]);
    assert_eq!(names(&dir), ["idle", "keep"]);
}

#[test]
fn set_switches_the_kind_both_ways() {
    let dir = TestDir::new("kind");
    ok(&dir, &["create", "k", "--idle-ms", "200"]);
    ok(&dir, &["set", "k", "--persistent"]);
    assert_eq!(ls(&dir, &[])[0]["kind"], "persistent");
    thread::sleep(Duration::from_millis(300));
    assert_eq!(names(&dir), ["k"], "a persistent semaphore went away");
    thread::sleep(Duration::from_millis(300));
    assert_eq!(names(&dir), ["k"], "a persistent semaphore went away");

    // Back to auto: the idle period (still 200 ms) starts again with the next sweep, which runs
    // before `after`.
    ok(&dir, &["set", "k", "--auto"]);
    let v = &ls(&dir, &[])[0];
    let after = Instant::now();
    assert_eq!(
        (v["kind"].as_str(), v["idle_ms"].as_u64()),
        (Some("auto"), Some(200))
    );
    sleep_until(after + Duration::from_millis(200) + PAST);
    assert_eq!(names(&dir), Vec::<String>::new());

    // Capacity and kind together; no change at all is a usage error; an absent name is 1.
    ok(&dir, &["create", "both", "--capacity", "2"]);
    ok(&dir, &["set", "both", "--capacity", "5", "--persistent"]);
    let v = show(&dir, "both");
    assert_eq!(
        (v["capacity"].as_u64(), v["kind"].as_str()),
        (Some(5), Some("persistent"))
    );
    run(&dir, &["set", "both"]).failed(2);
    run(&dir, &["set", "both", "--auto", "--persistent"]).failed(2);
    run(&dir, &["set", "both", "--capacity", "0"]).failed(2);
    run(&dir, &["set", "absent", "--capacity", "2"]).failed(1);
    assert_eq!(show(&dir, "both")["capacity"], 5);
}

// =====================================================================================
// The deletion of an idle semaphore races an acquire through an open handle
// =====================================================================================

#[test]
fn deleting_an_idle_semaphore_never_fails_or_doubles_an_acquire() {
    const ROUNDS: u32 = 200;
    let dir = TestDir::new("race");
    Witness::create(&dir.work_file("witness"));
    // Two processes, one handle each, acquire and release an auto semaphore with no idle
    // period (capacity 1), while a third lists (and so sweeps) as fast as it can: every pause
    // of the two is a chance to delete it under their open handles.
    let cyclers: Vec<Kid> = (0..2)
        .map(|i| {
            Spawn::new(&dir, "cycler")
                .label(format!("cycler{i}"))
                .arg("name", "racy")
                .arg("idle_ms", 0)
                .spawn()
        })
        .collect();
    let mut cyclers = cyclers;
    for c in &mut cyclers {
        c.expect("started", CHILD_TIMEOUT);
    }
    let start = Instant::now();
    let mut sweeper = Spawn::new(&dir, "sweeper")
        .arg("name", "racy")
        .arg("rounds", ROUNDS)
        .arg("secs", 40)
        .spawn();
    // Meanwhile the CLI lists too, from fresh processes: never two records for the name, never
    // more than the capacity.
    let mut cli_lists = 0;
    while !dir.work_file("stop").exists() {
        for v in ls(&dir, &[]) {
            assert!(
                v["value"].as_u64() <= v["capacity"].as_u64(),
                "value above capacity: {v}"
            );
        }
        let listed = ls(&dir, &[]);
        let racy = listed.iter().filter(|v| v["name"] == "racy").count();
        assert!(racy <= 1, "the name is listed {racy} times: {listed:?}");
        cli_lists += 2;
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the sweeper did not finish"
        );
    }
    let s = sweeper.success(CHILD_TIMEOUT);
    let took = start.elapsed();
    let mut ops = 0;
    for c in &mut cyclers {
        let r = c.success(CHILD_TIMEOUT);
        assert_eq!(
            r.u64("failures"),
            0,
            "an acquire failed\n{}",
            c.transcript()
        );
        ops += r.u64("ops");
    }
    let witness = Witness::open(&dir.work_file("witness"));
    let (max_inside, violations, entries) = (
        witness.max_inside().load(SeqCst),
        witness.violations().load(SeqCst),
        witness.entries().load(SeqCst),
    );
    eprintln!(
        "race: {} deletions under open handles in {:.1} s; {ops} acquires, {} library lists, \
         {cli_lists} CLI lists; at most {max_inside} inside",
        s.u64("deletions"),
        took.as_secs_f64(),
        s.u64("lists")
    );
    assert_eq!(s.u64("most_listed"), 1, "the name was listed twice");
    assert_eq!(s.u64("over_capacity"), 0);
    assert_eq!(violations, 0, "two processes held capacity 1 at once");
    assert_eq!(max_inside, 1);
    assert_eq!(u64::from(entries), ops);
    assert!(
        s.u64("deletions") >= u64::from(ROUNDS),
        "only {} deletions raced the acquires; the test proves little",
        s.u64("deletions")
    );
}
