//! Multi-process tests: several processes share semaphores through the library.
//!
//! Every child process re-executes this test binary (`current_exe`) running only the
//! [`child_role`] test, with `SHMSEM_TEST_ROLE` naming what it does; that test returns at once
//! in the harness itself. Each test has its own fresh `SHMSEM_DIR`, given to its children in
//! their environment, and the harness process never calls the library: the tests run in
//! parallel threads of one process, and `SHMSEM_DIR` (like `SHMSEM_SELF`) is process-global.
//!
//! Children report to the parent on stdout with `@@mp KEY VALUE` lines (see `common`); times
//! that are compared across processes are `CLOCK_MONOTONIC` nanoseconds.

mod common;

use std::{
    os::unix::process::ExitStatusExt,
    process::{Command, Stdio},
    sync::atomic::Ordering::SeqCst,
    thread,
    time::{Duration, Instant},
};

use common::{
    Kid, Spawn, TestDir, Witness, arg, arg_or, arg_u32, mono_ns, report, role, send_signal,
    wait_for_signal, work_dir,
};
use shmsem::{Error, Scope, Semaphore};

/// How long any child may take before the parent kills it and fails: generous, for a loaded
/// two-core machine running other test binaries at the same time.
const CHILD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a child waits for a signal from its parent before giving up.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(30);

// =====================================================================================
// The child side
// =====================================================================================

/// The entry point of every child process. In the harness itself (no role) it does nothing.
#[test]
fn child_role() {
    let Some(role) = role() else { return };
    match role.as_str() {
        "hold" => role_hold(),
        "attempts" => role_attempts(),
        "crowd" => role_crowd(),
        "observe" => role_observe(),
        "racer" => role_racer(),
        "tree_root" => role_tree_root(),
        "tree_child" => role_tree_child(),
        "tree_unrelated" => role_tree_unrelated(),
        "bad_input" => role_bad_input(),
        other => panic!("unknown role {other:?}"),
    }
}

/// The semaphore named by the role's `name` (and `ns`, `cap`) parameters, get-or-create.
fn open_arg() -> Semaphore {
    let name = arg("name");
    Semaphore::options()
        .namespace(arg_or("ns", shmsem::DEFAULT_NAMESPACE))
        .capacity(arg_u32("cap", 1))
        .open(&name)
        .unwrap_or_else(|e| panic!("opening {name}: {e}"))
}

/// A stable, short name for an outcome.
fn kind<T>(r: &Result<T, Error>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(Error::Timeout { .. }) => "Timeout".into(),
        Err(Error::WouldBlock { .. }) => "WouldBlock".into(),
        Err(Error::InvalidName { .. }) => "InvalidName".into(),
        Err(Error::InvalidArgument { .. }) => "InvalidArgument".into(),
        Err(Error::WeightTooLarge { .. }) => "WeightTooLarge".into(),
        Err(Error::NotHeld { .. }) => "NotHeld".into(),
        Err(Error::NotFound { .. }) => "NotFound".into(),
        Err(e) => format!("other:{e:?}"),
    }
}

/// `pid:weight` of every holder, sorted by pid, comma-separated.
fn holders_of(sem: &Semaphore) -> String {
    let info = sem.info().expect("info");
    let mut hs: Vec<(u32, u64)> = info.holders.iter().map(|p| (p.pid, p.weight)).collect();
    hs.sort_unstable();
    hs.iter()
        .map(|(p, w)| format!("{p}:{w}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Take `weight` at once (it must be free), report `held`, hold until the `release` signal,
/// report the time just before giving it back as `release_ns`.
fn role_hold() {
    let sem = open_arg();
    let weight = arg_u32("weight", 1);
    let permit = sem
        .try_acquire(weight)
        .unwrap_or_else(|e| panic!("holder could not take weight {weight} at once: {e}"));
    report("value", sem.info().expect("info").value);
    report("held", std::process::id());
    wait_for_signal(&arg("release"), SIGNAL_TIMEOUT);
    report("release_ns", mono_ns());
    drop(permit);
    report("released", mono_ns());
}

/// A sequence of acquire attempts (`attempts`: comma-separated `try`, `forever` or a timeout in
/// ms), each reported as `start{i}`, `end{i}` (ns), `elapsed_us{i}`, `result{i}`, `detail{i}`,
/// and the semaphore's `value{i}` and `holders{i}` right after. Permits won stay held until the
/// role ends.
fn role_attempts() {
    let sem = open_arg();
    report("open_value", sem.info().expect("info").value);
    let weight = arg_u32("weight", 1);
    let mut won = Vec::new();
    for (i, attempt) in arg("attempts").split(',').enumerate() {
        let start = mono_ns();
        report(&format!("start{i}"), start);
        let t = Instant::now();
        let r = match attempt {
            "try" => sem.try_acquire(weight),
            "forever" => sem.acquire_weight(weight),
            ms => sem.acquire_timeout(weight, Duration::from_millis(ms.parse().expect("ms"))),
        };
        let elapsed = t.elapsed();
        let end = mono_ns();
        report(&format!("end{i}"), end);
        report(&format!("elapsed_us{i}"), elapsed.as_micros());
        report(&format!("result{i}"), kind(&r));
        report(&format!("detail{i}"), format!("{r:?}"));
        report(&format!("value{i}"), sem.info().expect("info").value);
        report(&format!("holders{i}"), holders_of(&sem));
        if let Ok(p) = r {
            won.push(p);
        }
    }
    drop(won);
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
        let inside = witness.inside().fetch_add(1, SeqCst) + 1;
        witness.max_inside().fetch_max(inside, SeqCst);
        witness.entries().fetch_add(1, SeqCst);
        if inside > cap {
            witness.violations().fetch_add(1, SeqCst);
        }
        if i % 3 == 0 {
            thread::sleep(Duration::from_millis(1));
        } else {
            let until = Instant::now() + Duration::from_micros(20);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
        }
        witness.inside().fetch_sub(1, SeqCst);
        drop(permit);
    }
    report("done", iters);
}

/// Open an existing semaphore and report what it looks like.
fn role_observe() {
    let name = arg("name");
    let sem = Semaphore::options()
        .namespace(arg_or("ns", shmsem::DEFAULT_NAMESPACE))
        .open_existing(&name)
        .unwrap_or_else(|e| panic!("observer opening {name}: {e}"));
    let info = sem.info().expect("info");
    report("capacity", info.capacity);
    report("value", info.value);
    report("holders", holders_of(&sem));
    report("waiters", info.waiters.len());
}

/// One of several processes that open the same new namespace at the same moment.
fn role_racer() {
    let ns = arg("ns");
    let index = arg_u32("index", 0);
    let racers = arg_u32("racers", 2);
    let round = arg("round");
    report("ready", std::process::id());
    // The start barrier: spin (yielding, so the parent can run on a small machine).
    let go = work_dir().join(format!("go{round}"));
    let deadline = Instant::now() + SIGNAL_TIMEOUT;
    while !go.exists() {
        assert!(Instant::now() < deadline, "no start signal");
        assert!(work_dir().exists(), "the test's directory is gone");
        thread::yield_now();
    }
    let sem = Semaphore::options()
        .namespace(&ns)
        .capacity(1)
        .open("r")
        .expect("racer open");
    let got = sem.try_acquire(1);
    report("got", u8::from(got.is_ok()));
    report("got_detail", format!("{got:?}"));
    // A second semaphore whose capacity says who created it.
    let cap = Semaphore::options()
        .namespace(&ns)
        .capacity(10 + index)
        .open("cap")
        .expect("racer open cap");
    report("cap", cap.capacity());
    report("value", sem.info().expect("info").value);
    // Hold the outcome until every racer has tried: the try-acquires overlap.
    send_signal(&format!("done{round}-{index}"));
    for j in 0..racers {
        wait_for_signal(&format!("done{round}-{j}"), SIGNAL_TIMEOUT);
    }
    drop(got);
}

/// The root of a `self` tree: opens a tree-scoped semaphore, holds weight 1 of it, starts a
/// descendant that must see it, and exits once the descendant has checked (leaving it running).
fn role_tree_root() {
    assert!(std::env::var_os(shmsem::SELF_ENV).is_none());
    let sem = Semaphore::options()
        .scope(Scope::Tree)
        .capacity(3)
        .open("tree")
        .expect("root open");
    let published = std::env::var(shmsem::SELF_ENV).expect("the root publishes SHMSEM_SELF");
    report("self", &published);
    assert!(
        published.starts_with(&format!("{}-", std::process::id())),
        "SHMSEM_SELF={published} does not name the root"
    );
    let permit = sem.acquire().expect("root acquire");
    report("root_value", sem.info().expect("info").value);
    // A grandchild of the harness: inherits SHMSEM_SELF, and our stdout, so the parent reads
    // its reports too and sees the pipe close only when the whole tree is gone.
    let exe = std::env::current_exe().expect("current_exe");
    let child = Command::new(exe)
        .args([
            "--exact",
            common::CHILD_TEST,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(common::ROLE_ENV, "tree_child")
        .env("MP_ARG_ROOT_PID", std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning the tree child");
    report("child_spawned", child.id());
    wait_for_signal("gc-ready", SIGNAL_TIMEOUT);
    drop(permit);
    report("root_exits", mono_ns());
    // Not waited for: the descendant outlives the root.
    drop(child);
}

fn role_tree_child() {
    report("gc_pid", std::process::id());
    let root_pid: u32 = arg("root_pid").parse().expect("root pid");
    let inherited = std::env::var(shmsem::SELF_ENV).unwrap_or_default();
    report("gc_self", &inherited);
    let sem = Semaphore::options()
        .scope(Scope::Tree)
        .open_existing("tree")
        .expect("the tree's child sees the root's semaphore");
    let info = sem.info().expect("info");
    report("gc_capacity", info.capacity);
    report("gc_value", info.value);
    report("gc_holders", holders_of(&sem));
    assert_eq!(info.capacity, 3);
    assert_eq!(info.value, 1, "the root holds 1");
    assert_eq!(holders_of(&sem), format!("{root_pid}:1"));
    let permit = sem.acquire().expect("child acquire");
    report("gc_value_after", sem.info().expect("info").value);
    send_signal("gc-ready");
    wait_for_signal("tree-end", SIGNAL_TIMEOUT);
    drop(permit);
    report("gc_exits", mono_ns());
}

/// Started by the harness, not by the tree: must not see the tree's semaphore.
fn role_tree_unrelated() {
    let r = Semaphore::options()
        .scope(Scope::Tree)
        .open_existing("tree")
        .map(|s| s.capacity());
    report("unrelated_existing", kind(&r));
    report("unrelated_detail", format!("{r:?}"));
    report(
        "unrelated_self",
        std::env::var(shmsem::SELF_ENV).unwrap_or_default(),
    );
    // Get-or-create in its own tree: a different semaphore, with its own capacity.
    let own = Semaphore::options()
        .scope(Scope::Tree)
        .capacity(1)
        .open("tree")
        .expect("unrelated open");
    let info = own.info().expect("info");
    report("unrelated_capacity", info.capacity);
    report("unrelated_value", info.value);
}

/// Records failed expectations of [`role_bad_input`] and what the semaphore must look like.
struct Checker {
    failures: Vec<String>,
    value: u32,
    holders: String,
}

impl Checker {
    /// `got` must start with `want`, and the semaphore must still have the expected value and
    /// holders.
    fn check(&mut self, sem: &Semaphore, label: &str, got: String, want: &str) {
        report("check", format!("{label} -> {got}"));
        if !got.starts_with(want) {
            self.failures
                .push(format!("{label}: got {got}, want {want}"));
        }
        let value = sem.info().expect("info").value;
        let holders = holders_of(sem);
        if value != self.value || holders != self.holders {
            self.failures.push(format!(
                "{label}: value {value} holders {holders:?} afterwards, want value {} holders {:?}",
                self.value, self.holders
            ));
        }
    }

    /// The semaphore legitimately changed: this process now holds `weight` of it.
    fn now_holding(&mut self, weight: u32) {
        self.value = weight;
        self.holders = format!("{}:{weight}", std::process::id());
    }
}

/// Bad input: each call returns the right typed error and leaves the semaphore as it was.
fn role_bad_input() {
    let sem = Semaphore::options()
        .capacity(3)
        .open("bad")
        .expect("open bad");
    let permit = sem.acquire().expect("acquire 1");
    let mut c = Checker {
        failures: Vec::new(),
        value: 0,
        holders: String::new(),
    };
    c.now_holding(1);

    let long = "x".repeat(201);
    let bad_names = [
        "",
        ".",
        "..",
        "a/b",
        "../etc",
        "a b",
        "\u{e9}",
        "a\0b",
        "name\n",
        long.as_str(),
    ];
    for name in bad_names {
        let r = Semaphore::options().capacity(3).open(name);
        c.check(&sem, &format!("open {name:?}"), kind(&r), "InvalidName");
        let r = Semaphore::options().open_existing(name);
        c.check(
            &sem,
            &format!("open_existing {name:?}"),
            kind(&r),
            "InvalidName",
        );
        let r = Semaphore::open(name, Scope::Local);
        c.check(
            &sem,
            &format!("Semaphore::open {name:?}"),
            kind(&r),
            "InvalidName",
        );
        let r = Semaphore::options().namespace(name).open("fine");
        c.check(
            &sem,
            &format!("namespace {name:?}"),
            kind(&r),
            "InvalidName",
        );
    }
    // Positive control: the longest valid name works.
    let r = Semaphore::options().open(&"x".repeat(200));
    c.check(&sem, "open a 200-byte name", kind(&r), "ok");

    // Weight 0.
    let r = sem.acquire_weight(0);
    c.check(&sem, "acquire_weight(0)", kind(&r), "InvalidArgument");
    drop(r);
    let r = sem.try_acquire(0);
    c.check(&sem, "try_acquire(0)", kind(&r), "InvalidArgument");
    drop(r);
    let r = sem.acquire_timeout(0, Duration::from_millis(100));
    c.check(&sem, "acquire_timeout(0)", kind(&r), "InvalidArgument");
    drop(r);
    let r = sem.enter(0);
    c.check(&sem, "enter(0)", kind(&r), "InvalidArgument");

    // Weight above the capacity: refused at once, never waited for.
    let t = Instant::now();
    let r = sem.acquire_weight(4);
    c.check(
        &sem,
        "acquire_weight(4), capacity 3",
        format!("{r:?}"),
        "Err(WeightTooLarge { weight: 4, capacity: 3 })",
    );
    drop(r);
    let r = sem.try_acquire(4);
    c.check(
        &sem,
        "try_acquire(4), capacity 3",
        kind(&r),
        "WeightTooLarge",
    );
    drop(r);
    let r = sem.acquire_timeout(4, Duration::from_secs(3));
    c.check(
        &sem,
        "acquire_timeout(4), capacity 3",
        kind(&r),
        "WeightTooLarge",
    );
    drop(r);
    let r = sem.enter(4);
    c.check(&sem, "enter(4), capacity 3", kind(&r), "WeightTooLarge");
    let r = sem.acquire_weight(u32::MAX);
    c.check(&sem, "acquire_weight(u32::MAX)", kind(&r), "WeightTooLarge");
    drop(r);
    let took = t.elapsed();
    report("too_large_ms", took.as_millis());
    if took > Duration::from_secs(2) {
        c.failures.push(format!(
            "weight > capacity took {took:?}: it must be refused at once"
        ));
    }

    // Capacity 0 (and too large): refused, nothing created, the existing one untouched.
    let r = Semaphore::options().capacity(0).open("zero");
    c.check(&sem, "capacity 0, new name", kind(&r), "InvalidArgument");
    let r = Semaphore::options().open_existing("zero");
    c.check(&sem, "capacity 0 created nothing", kind(&r), "NotFound");
    let r = Semaphore::options().capacity(0).open("bad");
    c.check(
        &sem,
        "capacity 0, existing name",
        kind(&r),
        "InvalidArgument",
    );
    let r = Semaphore::options().capacity(u32::MAX).open("huge");
    c.check(&sem, "capacity u32::MAX", kind(&r), "InvalidArgument");
    if sem.capacity() != 3 {
        c.failures
            .push(format!("capacity changed to {}", sem.capacity()));
    }

    // Exit more than entered. The permit held is not "entered": it cannot be exited.
    let r = sem.exit(1);
    c.check(
        &sem,
        "exit(1), nothing entered",
        format!("{r:?}"),
        "Err(NotHeld { count: 1, held: 0 })",
    );
    let r = sem.exit(0);
    c.check(&sem, "exit(0)", kind(&r), "InvalidArgument");
    let r = sem.enter(2);
    c.now_holding(3);
    c.check(&sem, "enter(2)", kind(&r), "ok");
    let r = sem.exit(3);
    c.check(
        &sem,
        "exit(3) after enter(2)",
        format!("{r:?}"),
        "Err(NotHeld { count: 3, held: 2 })",
    );
    let r = sem.exit(2);
    c.now_holding(1);
    c.check(&sem, "exit(2) after enter(2)", kind(&r), "ok");
    let r = sem.exit(1);
    c.check(
        &sem,
        "exit(1) after everything was exited",
        format!("{r:?}"),
        "Err(NotHeld { count: 1, held: 0 })",
    );

    // Everything still works after all that.
    let r = sem.try_acquire(2);
    c.now_holding(3);
    c.check(&sem, "try_acquire(2) fills it", kind(&r), "ok");
    drop(r);
    c.now_holding(1);
    c.check(&sem, "and gives it back", "ok".into(), "ok");

    report("failures", c.failures.len());
    for f in &c.failures {
        report("failure", f);
    }
    report("held", std::process::id());
    wait_for_signal("release", SIGNAL_TIMEOUT);
    drop(permit);
    assert!(
        c.failures.is_empty(),
        "bad input checks failed:\n{}",
        c.failures.join("\n")
    );
}

// =====================================================================================
// The parent side: the tests
// =====================================================================================

fn holder<'a>(dir: &'a TestDir, name: &str, cap: u32, weight: u32, release: &str) -> Spawn<'a> {
    Spawn::new(dir, "hold")
        .label(format!("holder {name} w{weight}"))
        .arg("name", name)
        .arg("cap", cap)
        .arg("weight", weight)
        .arg("release", release)
}

fn attempts<'a>(dir: &'a TestDir, name: &str, cap: u32, weight: u32, list: &str) -> Spawn<'a> {
    Spawn::new(dir, "attempts")
        .label(format!("attempts {name} w{weight} [{list}]"))
        .arg("name", name)
        .arg("cap", cap)
        .arg("weight", weight)
        .arg("attempts", list)
}

fn observe(dir: &TestDir, name: &str) -> common::Reports {
    Spawn::new(dir, "observe")
        .arg("name", name)
        .spawn()
        .success(CHILD_TIMEOUT)
}

/// Start a holder and wait until it holds.
fn start_holder(dir: &TestDir, name: &str, cap: u32, weight: u32, release: &str) -> Kid {
    let mut kid = holder(dir, name, cap, weight, release).spawn();
    kid.expect("held", CHILD_TIMEOUT);
    kid
}

/// Requirement 1: capacity 2 admits exactly 2 of 3 processes at once.
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
    let o = observe(&dir, "two");
    assert_eq!(o.req("capacity"), "2");
    assert_eq!(o.req("value"), "0", "all weight came back");
    assert_eq!(o.req("holders"), "");
}

/// Requirement 2: a timed acquire on a full semaphore times out, never before its deadline.
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

/// Requirement 3: `try_acquire` on a full semaphore returns `WouldBlock` at once.
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

/// Requirement 4: weights 3 + 2 fit capacity 5 at once; a further weight 1 waits until one of
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
    let o = observe(&dir, "five");
    assert_eq!(o.req("value"), "0");
}

/// Requirement 5: a release wakes a waiter blocked in another process (the futex is shared),
/// promptly.
///
/// The waiter also wakes every 50 ms on its own to look for dead holders, so a slow wake alone
/// would not prove a futex wake. The release is timed ~215 ms after the waiter started
/// waiting, that is ~15 ms after one of its 50 ms wake-ups: a waiter that only polls would
/// acquire tens of ms after the release (35 to 55 ms when tried with a private futex), a futex
/// wake within a millisecond or two.
#[test]
fn release_wakes_a_waiter_in_another_process() {
    const ROUNDS: usize = 5;
    let dir = TestDir::new("wake");
    let mut latencies_us = Vec::new();
    for round in 0..ROUNDS {
        let name = format!("wake{round}");
        let release = format!("release{round}");
        let mut h = start_holder(&dir, &name, 1, 1, &release);
        let mut w = attempts(&dir, &name, 1, 1, "10000").spawn();
        let start: u64 = w.expect("start0", CHILD_TIMEOUT).parse().unwrap();
        let target = start + 215_000_000;
        while mono_ns() < target {
            thread::sleep(Duration::from_micros(200));
        }
        dir.signal(&release);
        let wr = w.success(CHILD_TIMEOUT);
        let hr = h.success(CHILD_TIMEOUT);
        assert_eq!(wr.req("result0"), "ok", "{:?}", wr.0);
        let released = hr.u64("release_ns");
        let acquired = wr.u64("end0");
        assert!(acquired >= released, "acquired before the release");
        let latency = (acquired - released) / 1000;
        eprintln!(
            "round {round}: waiter slept {} ms, woken {latency} us after the release",
            (released - start) / 1_000_000
        );
        assert!(latency < 2_000_000, "woken {latency} us after the release");
        latencies_us.push(latency);
    }
    let mut sorted = latencies_us.clone();
    sorted.sort_unstable();
    let fast = latencies_us.iter().filter(|&&l| l < 45_000).count();
    let median = sorted[ROUNDS / 2];
    eprintln!("wake latencies (us): {latencies_us:?}, median {median}");
    assert!(
        fast >= 4,
        "only {fast} of {ROUNDS} wakes under 45 ms: {latencies_us:?} us"
    );
    assert!(
        median < 10_000,
        "median wake latency {median} us: looks like polling, not a futex wake ({latencies_us:?})"
    );
}

/// Requirement 6: `Scope::Tree`: descendants of the root see its semaphore, an unrelated process
/// does not, and the files go once the whole tree has exited.
#[test]
fn tree_scope_is_shared_by_descendants_only_and_removed_with_the_tree() {
    let dir = TestDir::new("tree");
    let self_files = |d: &TestDir| -> Vec<String> {
        d.shm_files()
            .into_iter()
            .filter(|f| f.starts_with("self."))
            .collect()
    };
    let mut root = Spawn::new(&dir, "tree_root").spawn();
    let root_pid = root.pid();
    let published = root.expect("self", CHILD_TIMEOUT);
    assert!(
        published.starts_with(&format!("{root_pid}-")),
        "{published}"
    );
    // The descendant's reports come through the root's stdout, which it inherited.
    let gc_pid = root.expect("gc_pid", CHILD_TIMEOUT);
    assert_eq!(root.expect("gc_self", CHILD_TIMEOUT), published);
    assert_eq!(root.expect("gc_capacity", CHILD_TIMEOUT), "3");
    assert_eq!(root.expect("gc_value", CHILD_TIMEOUT), "1");
    assert_eq!(root.expect("gc_value_after", CHILD_TIMEOUT), "2");
    let status = root.wait_exit(CHILD_TIMEOUT);
    assert!(status.success(), "root failed\n{}", root.transcript());

    // The root is gone, its descendant lives: the tree's files stay.
    let expected = vec![
        format!("self.{published}.default"),
        format!("self.{published}.default.lock"),
    ];
    assert_eq!(self_files(&dir), expected, "while the tree's child lives");

    // A process the harness starts is in no tree: it does not see the semaphore.
    let u = Spawn::new(&dir, "tree_unrelated")
        .spawn()
        .success(CHILD_TIMEOUT);
    assert_eq!(u.req("unrelated_existing"), "NotFound", "{:?}", u.0);
    let u_self = u.req("unrelated_self");
    assert_ne!(u_self, published);
    assert!(!u_self.is_empty());
    assert_eq!(
        u.req("unrelated_capacity"),
        "1",
        "its own tree, its own semaphore"
    );
    assert_eq!(u.req("unrelated_value"), "0");
    // Its own tree's files went with it; its sweep left the live tree's alone.
    assert_eq!(self_files(&dir), expected, "after the unrelated process");

    // End the tree: its last process exits, and the files go.
    dir.signal("tree-end");
    root.wait_output_closed(CHILD_TIMEOUT);
    let r = root.reports();
    assert!(
        r.get("gc_exits").is_some(),
        "the tree's child did not finish\n{}",
        root.transcript()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !self_files(&dir).is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        self_files(&dir),
        Vec::<String>::new(),
        "the tree (root {root_pid}, child {gc_pid}) has exited but its files remain"
    );
    assert_eq!(
        dir.shm_files(),
        Vec::<String>::new(),
        "nothing else left behind"
    );
}

/// Requirement 7: processes racing to create one namespace end with one segment, which they all
/// use.
#[test]
fn racing_creators_end_with_one_segment() {
    let rounds: u32 = std::env::var("MP_RACE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let racers: u32 = 2;
    let dir = TestDir::new("race");
    let t = Instant::now();
    let mut caps = [0u32; 2];
    for round in 0..rounds {
        let ns = format!("race{round}");
        let mut kids: Vec<Kid> = (0..racers)
            .map(|i| {
                Spawn::new(&dir, "racer")
                    .label(format!("racer {i} round {round}"))
                    .arg("ns", &ns)
                    .arg("index", i)
                    .arg("racers", racers)
                    .arg("round", round)
                    .spawn()
            })
            .collect();
        for k in &mut kids {
            k.expect("ready", CHILD_TIMEOUT);
        }
        dir.signal(&format!("go{round}"));
        let reports: Vec<_> = kids.iter_mut().map(|k| k.success(CHILD_TIMEOUT)).collect();
        let got: u64 = reports.iter().map(|r| r.u64("got")).sum();
        assert_eq!(
            got, 1,
            "round {round}: {got} racers got the one permit: {reports:?}"
        );
        let cap = reports[0].req("cap");
        assert!(
            reports.iter().all(|r| r.req("cap") == cap),
            "round {round}: racers saw different semaphores: {reports:?}"
        );
        let cap: u32 = cap.parse().unwrap();
        assert!(
            (10..10 + racers).contains(&cap),
            "round {round}: capacity {cap}"
        );
        caps[(cap - 10) as usize] += 1;
        let files = dir.shm_files();
        let segment = format!("local.{ns}");
        assert_eq!(
            files,
            vec![segment.clone(), format!("{segment}.lock")],
            "round {round}: one segment and its lock file, nothing else"
        );
        let len = std::fs::metadata(dir.shm.join(&segment)).unwrap().len();
        assert_eq!(len, shmsem::internals::layout::SEGMENT_SIZE as u64);
        // Keep the disk use of the test small.
        std::fs::remove_file(dir.shm.join(&segment)).unwrap();
        std::fs::remove_file(dir.shm.join(format!("{segment}.lock"))).unwrap();
    }
    eprintln!(
        "{rounds} creation races in {:?}; creator of the second semaphore: racer 0 {} times, \
         racer 1 {} times",
        t.elapsed(),
        caps[0],
        caps[1]
    );
}

/// Requirement 8a: a permit held by a process that is SIGKILLed comes back to a waiter already
/// blocked.
#[test]
fn sigkilled_holders_permit_comes_back_to_a_blocked_waiter() {
    let dir = TestDir::new("kill-blocked");
    let mut h = start_holder(&dir, "k", 2, 2, "never");
    let mut w = attempts(&dir, "k", 2, 2, "5000").spawn();
    w.expect("start0", CHILD_TIMEOUT);
    // Let the waiter go to sleep on the futex.
    thread::sleep(Duration::from_millis(150));
    let killed_at = mono_ns();
    let status = h.sigkill();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    let r = w.success(CHILD_TIMEOUT);
    assert_eq!(r.req("result0"), "ok", "{:?}", r.0);
    let latency_ms = (r.u64("end0") - killed_at) as f64 / 1e6;
    eprintln!("holder SIGKILLed: blocked waiter got weight 2 after {latency_ms:.1} ms");
    assert_eq!(r.req("value0"), "2");
    assert_eq!(
        r.req("holders0"),
        format!("{}:2", w.pid()),
        "the dead holder is gone"
    );
    let o = observe(&dir, "k");
    assert_eq!(o.req("value"), "0");
    assert_eq!(o.req("holders"), "");
}

/// Requirement 8b: a permit held by a process that was SIGKILLed comes back to a process that
/// opens later.
#[test]
fn sigkilled_holders_permit_comes_back_to_a_later_process() {
    let dir = TestDir::new("kill-later");
    let mut h = start_holder(&dir, "k", 2, 2, "never");
    let status = h.sigkill();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    let killed_at = mono_ns();
    let mut w = attempts(&dir, "k", 2, 2, "5000").spawn();
    let r = w.success(CHILD_TIMEOUT);
    assert_eq!(r.req("result0"), "ok", "{:?}", r.0);
    eprintln!(
        "holder SIGKILLed: a later process found value {} on open and got weight 2 in {} us \
         ({:.1} ms after the kill, process start included)",
        r.req("open_value"),
        r.req("elapsed_us0"),
        (r.u64("end0") - killed_at) as f64 / 1e6
    );
    assert_eq!(r.req("value0"), "2");
    assert_eq!(
        r.req("holders0"),
        format!("{}:2", w.pid()),
        "the dead holder is gone"
    );
    // Reclaim runs on open (SPEC §5.3): the dead holder's weight is back before any wait.
    assert_eq!(
        r.req("open_value"),
        "0",
        "the dead holder's weight was not reclaimed on open"
    );
}

/// Requirement 9: bad input gets the right typed error and changes nothing, as another process
/// sees.
#[test]
fn bad_input_gives_typed_errors_and_changes_nothing() {
    let dir = TestDir::new("bad");
    let mut b = Spawn::new(&dir, "bad_input").spawn();
    let failures = b.expect("failures", CHILD_TIMEOUT);
    if failures != "0" {
        dir.signal("release");
        let _ = b.finish(CHILD_TIMEOUT);
        panic!("bad input checks failed\n{}", b.transcript());
    }
    b.expect("held", CHILD_TIMEOUT);
    let o = observe(&dir, "bad");
    assert_eq!(o.req("capacity"), "3");
    assert_eq!(o.req("value"), "1");
    assert_eq!(o.req("holders"), format!("{}:1", b.pid()));
    dir.signal("release");
    b.success(CHILD_TIMEOUT);
    // Nothing was created for any invalid name or namespace.
    assert_eq!(
        dir.shm_files(),
        vec!["local.default".to_owned(), "local.default.lock".to_owned()]
    );
}
