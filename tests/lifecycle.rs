//! Lifecycle tests (issue 5): auto semaphores deleted after their idle period and the race of
//! that deletion with an acquire; run-time capacity and kind (`shmsem set`); weighted fairness;
//! owners and grants enforced by the OS; `ps` and `show` while a process waits; `shmsem watch`
//! in a real terminal (tmux).
//!
//! As in `tests/multiprocess.rs`, library users are child processes that re-execute this test
//! binary in a role (see `common`), and everything else goes through the built `shmsem` binary.
//! The harness process itself never calls the library: `SHMSEM_DIR` is read once per process,
//! and every test has its own fresh one.

mod common;

use std::{
    fs,
    os::unix::{
        fs::{MetadataExt, PermissionsExt},
        process::CommandExt,
    },
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::atomic::Ordering::SeqCst,
    thread,
    time::{Duration, Instant},
};

use common::{
    Kid, Spawn, TestDir, Witness, arg, arg_or, arg_u32, mono_ns, report, role, send_signal,
    wait_for_signal, work_dir,
};
use serde_json::{Value, json};
use shmsem::{Error, Scope, Semaphore};

const BIN: &str = env!("CARGO_BIN_EXE_shmsem");

/// How long any child may take before the parent kills it and fails: generous, for a loaded
/// two-core machine running other test binaries at the same time.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a child waits for a signal from its parent before giving up.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(60);

// =====================================================================================
// The child side
// =====================================================================================

/// The entry point of every child process. In the harness itself (no role) it does nothing.
#[test]
fn child_role() {
    let Some(role) = role() else { return };
    match role.as_str() {
        "hold" => role_hold(),
        "wait" => role_wait(),
        "cycler" => role_cycler(),
        "sweeper" => role_sweeper(),
        "churn" => role_churn(),
        "big" => role_big(),
        "poller" => role_poller(),
        other => panic!("unknown role {other:?}"),
    }
}

/// The semaphore named by the role's `name` (and `cap`, `idle_ms`) parameters, get-or-create.
fn open_arg() -> Semaphore {
    let name = arg("name");
    let mut opts = Semaphore::options().capacity(arg_u32("cap", 1));
    if let Ok(ms) = arg_or("idle_ms", "").parse::<u64>() {
        opts = opts.auto(Duration::from_millis(ms));
    }
    opts.open(&name)
        .unwrap_or_else(|e| panic!("opening {name}: {e}"))
}

/// Whether the test that started this child is still running (its work directory exists).
fn parent_alive() -> bool {
    work_dir().exists()
}

/// Take `weight` at once and hold it until the file `release` appears.
fn role_hold() {
    let sem = open_arg();
    let weight = arg_u32("weight", 1);
    let permit = sem
        .try_acquire(weight)
        .unwrap_or_else(|e| panic!("holder could not take weight {weight} at once: {e}"));
    report("held", std::process::id());
    wait_for_signal(&arg("release"), SIGNAL_TIMEOUT);
    drop(permit);
    report("released", mono_ns());
}

/// Optionally hold weight 1 of `also_global` in the global scope, namespace `ci`; then wait up
/// to `timeout_ms` for `weight`, report `acquired_ns` (or `failed`), and hold what it got until
/// the file `done` appears.
fn role_wait() {
    let _global = match arg_or("also_global", "").as_str() {
        "" => None,
        name => {
            let g = Semaphore::options()
                .scope(Scope::Global)
                .namespace("ci")
                .open(name)
                .expect("opening the global semaphore");
            g.enter(1).expect("holding the global semaphore");
            Some(g)
        }
    };
    let sem = open_arg();
    let weight = arg_u32("weight", 1);
    let timeout = Duration::from_millis(arg_u32("timeout_ms", 60_000).into());
    report("waiting_ns", mono_ns());
    let r = sem.acquire_timeout(weight, timeout);
    match &r {
        Ok(_) => report("acquired_ns", mono_ns()),
        Err(e) => report("failed", format!("{e:?}")),
    }
    report("value", sem.info().map_or(u32::MAX, |i| i.value));
    wait_for_signal(&arg("done"), SIGNAL_TIMEOUT);
    drop(r);
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
                let inside = witness.inside().fetch_add(1, SeqCst) + 1;
                witness.max_inside().fetch_max(inside, SeqCst);
                witness.entries().fetch_add(1, SeqCst);
                if inside > 1 {
                    witness.violations().fetch_add(1, SeqCst);
                }
                for _ in 0..200 {
                    std::hint::spin_loop();
                }
                witness.inside().fetch_sub(1, SeqCst);
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
        let infos = opts.list().expect("listing");
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
// The parent side: the CLI
// =====================================================================================

/// What one run of `shmsem` did.
#[derive(Debug)]
struct Run {
    #[allow(dead_code)] // read through `Debug`, in failure messages
    args: Vec<String>,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn new(args: &[&str], out: Output) -> Run {
        Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// Failed with `code` and one line on stderr starting `shmsem: `.
    fn failed(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "{self:?}");
        assert!(self.stderr.starts_with("shmsem: "), "{self:?}");
        assert_eq!(self.stderr.lines().count(), 1, "{self:?}");
        self
    }
}

/// `shmsem ARGS` with this test's `SHMSEM_DIR` (run with `bin`, a path to the binary).
fn command_with(bin: &Path, dir: &TestDir, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.args(args)
        .env(shmsem::DIR_ENV, &dir.shm)
        .env_remove(shmsem::SELF_ENV)
        .stdin(Stdio::null());
    c
}

fn command(dir: &TestDir, args: &[&str]) -> Command {
    command_with(Path::new(BIN), dir, args)
}

fn run(dir: &TestDir, args: &[&str]) -> Run {
    let out = command(dir, args).output().expect("running shmsem");
    Run::new(args, out)
}

fn ok(dir: &TestDir, args: &[&str]) -> Run {
    let r = run(dir, args);
    assert_eq!(r.code, 0, "{r:?}");
    r
}

/// `ls --json` (which sweeps): the array.
fn ls(dir: &TestDir, extra: &[&str]) -> Vec<Value> {
    let args = [&["ls", "--json"][..], extra].concat();
    match ok(dir, &args).json() {
        Value::Array(all) => all,
        other => panic!("ls --json is not an array: {other}"),
    }
}

/// The names `ls --json` lists.
fn names(dir: &TestDir) -> Vec<String> {
    ls(dir, &[])
        .iter()
        .map(|v| v["name"].as_str().expect("a name").to_owned())
        .collect()
}

fn show(dir: &TestDir, name: &str) -> Value {
    ok(dir, &["show", name, "--json"]).json()
}

/// The `(pid, weight)` of `show`'s holders or waiters.
fn parties(v: &Value, which: &str) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = v[which]
        .as_array()
        .unwrap_or_else(|| panic!("{which} is not an array in {v}"))
        .iter()
        .map(|p| (p["pid"].as_u64().unwrap(), p["weight"].as_u64().unwrap()))
        .collect();
    out.sort_unstable();
    out
}

/// A process that can hold weight for `--holder`: `sleep 60`, killed when dropped.
struct Sleeper(Child);

impl Sleeper {
    fn spawn() -> Sleeper {
        Sleeper(
            Command::new("sleep")
                .arg("60")
                .spawn()
                .expect("spawning sleep"),
        )
    }

    fn pid(&self) -> String {
        self.0.id().to_string()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Wait up to 20 s for `cond`.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out: {what}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// Sleep until `at`.
fn sleep_until(at: Instant) {
    thread::sleep(at.saturating_duration_since(Instant::now()));
}

// =====================================================================================
// Auto semaphores: deleted after their idle period, not before
// =====================================================================================

#[test]
fn an_idle_auto_semaphore_goes_after_its_idle_period_and_not_before() {
    let dir = TestDir::new("idle");
    ok(
        &dir,
        &["create", "idle", "--idle-ms", "300", "--capacity", "2"],
    );
    ok(&dir, &["create", "keep", "--persistent"]);
    ok(&dir, &["create", "busy", "--idle-ms", "300"]);
    let holder = Sleeper::spawn();
    ok(&dir, &["acquire", "busy", "--holder", &holder.pid()]);
    // Use it: an acquire and a release, which marks it used.
    ok(&dir, &["run", "idle", "--", "true"]);

    // The first sweep after the use starts the idle period.
    let t0 = Instant::now();
    assert_eq!(names(&dir), ["busy", "idle", "keep"]);
    sleep_until(t0 + Duration::from_millis(150));
    assert_eq!(names(&dir), ["busy", "idle", "keep"], "gone before 300 ms");
    let at_150 = t0.elapsed();
    // 300 ms after the first sweep, plus a margin for the process start.
    sleep_until(t0 + Duration::from_millis(150 + 300));
    let listed = names(&dir);
    let at_450 = t0.elapsed();
    assert_eq!(
        listed,
        ["busy", "keep"],
        "still there after its idle period"
    );
    eprintln!(
        "idle: present at {} ms, gone at {} ms after the sweep that started its 300 ms idle \
         period",
        at_150.as_millis(),
        at_450.as_millis()
    );

    // A held one stays however long it is held; once released, it goes one idle period after
    // the next sweep.
    sleep_until(t0 + Duration::from_millis(800));
    assert_eq!(names(&dir), ["busy", "keep"]);
    ok(&dir, &["release", "busy", "--holder", &holder.pid()]);
    let t1 = Instant::now();
    assert_eq!(names(&dir), ["busy", "keep"]);
    sleep_until(t1 + Duration::from_millis(450));
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

    // Back to auto: the idle period (still 200 ms) starts again with the next sweep.
    ok(&dir, &["set", "k", "--auto"]);
    let t = Instant::now();
    let v = &ls(&dir, &[])[0];
    assert_eq!(
        (v["kind"].as_str(), v["idle_ms"].as_u64()),
        (Some("auto"), Some(200))
    );
    sleep_until(t + Duration::from_millis(350));
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
    let mut churn: Vec<Kid> = (0..3)
        .map(|i| {
            Spawn::new(&dir, "churn")
                .label(format!("churn{i}"))
                .arg("name", "pool")
                .arg("cap", 4)
                .arg("hold_ms", 5)
                .spawn()
        })
        .collect();
    for c in &mut churn {
        c.expect("started", CHILD_TIMEOUT);
    }
    // The control: a taker without a reservation (trying once a millisecond) all but never
    // finds the 4 free while three processes take turns with 1 each.
    let control = Spawn::new(&dir, "poller")
        .arg("name", "pool")
        .arg("cap", 4)
        .arg("ms", 2000)
        .spawn()
        .success(CHILD_TIMEOUT);
    // A waiter for 4 reserves them: the small ones drain and it gets its turn, every time.
    let big = Spawn::new(&dir, "big")
        .arg("name", "pool")
        .arg("cap", 4)
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

// =====================================================================================
// Owners and grants, enforced by the OS
// =====================================================================================

/// What a file looks like from outside: name, size, modification and change times (ns), mode
/// and owner.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct FileState {
    name: String,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// The state of every file in `dir` whose name starts with `prefix`.
fn file_states(dir: &Path, prefix: &str) -> Vec<FileState> {
    let mut out: Vec<FileState> = fs::read_dir(dir)
        .expect("listing")
        .map(|e| e.expect("an entry"))
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| {
            let m = e.metadata().expect("stat");
            let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
            FileState {
                name: e.file_name().to_string_lossy().into_owned(),
                size: m.size(),
                mtime_ns: ns(m.mtime(), m.mtime_nsec()),
                ctime_ns: ns(m.ctime(), m.ctime_nsec()),
                mode: m.mode(),
                uid: m.uid(),
                gid: m.gid(),
            }
        })
        .collect();
    out.sort();
    out
}

/// The mode bits of `path`.
fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").mode() & 0o777
}

const NOBODY: u32 = 65534;
/// The group the namespace is created for: one `nobody` is not in.
const TEAM_GID: u32 = 4242;

#[test]
fn another_user_is_refused_until_their_group_is_granted() {
    let dir = TestDir::new("owner");

    // The mode asked for is the mode the files get, whatever the umask.
    let script =
        format!("umask 077; exec {BIN} --scope global --namespace um create s --mode 0644");
    let out = Command::new("sh")
        .args(["-c", &script])
        .env(shmsem::DIR_ENV, &dir.shm)
        .env_remove(shmsem::SELF_ENV)
        .output()
        .expect("running sh");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode_of(&dir.shm.join("global.um")), 0o644);
    assert_eq!(mode_of(&dir.shm.join("global.um.lock")), 0o644);
    let script = format!("umask 077; exec {BIN} --scope global --namespace um2 create s");
    let out = Command::new("sh")
        .args(["-c", &script])
        .env(shmsem::DIR_ENV, &dir.shm)
        .env_remove(shmsem::SELF_ENV)
        .output()
        .expect("running sh");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        mode_of(&dir.shm.join("global.um2")),
        0o666,
        "the global default"
    );
    let v = &ls(&dir, &["--scope", "global", "--namespace", "um"])[0];
    assert_eq!(v["mode"], "0644", "{v}");

    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    if uid != 0 {
        eprintln!(
            "SKIPPED the cross-user part of another_user_is_refused_until_their_group_is_granted: \
             it must switch to uid {NOBODY}, which only root may, and this runs as uid {uid}"
        );
        return;
    }

    // The other user runs a copy of the binary that it can surely execute, in a directory it
    // can traverse; the namespace's own files are the only obstacle.
    for d in [&dir.root, &dir.shm] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let bin: PathBuf = dir.root.join("shmsem");
    fs::copy(BIN, &bin).expect("copying the binary");
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).expect("chmod");
    let as_nobody = |args: &[&str]| {
        let full = team(args);
        let out = command_with(&bin, &dir, &full)
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .expect("running shmsem as nobody");
        Run::new(&full, out)
    };
    fn team<'a>(args: &[&'a str]) -> Vec<&'a str> {
        [&["--scope", "global", "--namespace", "team"][..], args].concat()
    }

    let v = ok(
        &dir,
        &team(&[
            "create",
            "s",
            "--capacity",
            "2",
            "--group",
            "4242",
            "--mode",
            "0660",
            "--json",
        ]),
    )
    .json();
    assert_eq!(
        (
            v["owner"].as_str(),
            v["uid"].as_u64(),
            v["gid"].as_u64(),
            v["mode"].as_str()
        ),
        (Some("root"), Some(0), Some(TEAM_GID.into()), Some("0660")),
        "{v}"
    );
    let segment = dir.shm.join("global.team");
    for f in [&segment, &dir.shm.join("global.team.lock")] {
        let m = fs::metadata(f).expect("stat");
        assert_eq!(
            (m.mode() & 0o777, m.uid(), m.gid()),
            (0o660, 0, TEAM_GID),
            "{f:?}"
        );
    }
    let holder = Sleeper::spawn();
    ok(&dir, &team(&["acquire", "s", "--holder", &holder.pid()]));
    let row = ok(&dir, &team(&["ls"])).stdout;
    assert!(row.contains("root:4242 0660"), "{row}");
    let before = ok(&dir, &team(&["show", "s", "--json"])).json();
    // (Only this namespace's files: `ps` below may open the world-writable ones of `um2`.)
    let files_before = file_states(&dir.shm, "global.team");
    assert_eq!(files_before.len(), 2);

    // Refused by the OS, every way in, and nothing changes.
    for args in [
        &["show", "s"][..],
        &["ls"],
        &["acquire", "s", "--timeout", "0", "--holder", &holder.pid()],
        &["run", "s", "--", "true"],
        &["release", "s", "--holder", &holder.pid()],
        &["set", "s", "--capacity", "5"],
        &["rm", "s", "--force"],
        &["create", "t"],
        &["reap"],
        &["grant", "--group", "65534"],
    ] {
        let r = as_nobody(args);
        r.failed(77);
        assert!(r.stderr.contains("permission denied"), "{r:?}");
    }
    // `ps` skips what it may not open.
    let r = as_nobody(&["ps", &holder.pid(), "--json"]);
    assert_eq!((r.code, r.json()), (0, json!([])), "{r:?}");
    assert_eq!(
        file_states(&dir.shm, "global.team"),
        files_before,
        "a refused process changed the files"
    );
    let after = ok(&dir, &team(&["show", "s", "--json"])).json();
    for key in ["capacity", "value", "holders", "waiters", "kind"] {
        assert_eq!(before[key], after[key], "{key}");
    }

    // Granted: the same user, in no new group, now gets in.
    ok(&dir, &team(&["grant", "--group", "65534"]));
    let r = as_nobody(&["run", "s", "--", "true"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = as_nobody(&["show", "s", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["value"], 1, "{r:?}");
    let r = as_nobody(&["acquire", "s", "--timeout", "0", "--holder", &holder.pid()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(ok(&dir, &team(&["show", "s", "--json"])).json()["value"], 2);
    // The grant does not make the files any more open to everyone else.
    assert_eq!(mode_of(&segment) & 0o007, 0);
}

// =====================================================================================
// Introspection while a process waits
// =====================================================================================

#[test]
fn ps_and_show_list_a_waiting_process_and_a_holder() {
    let dir = TestDir::new("ps");
    let mut holder = Spawn::new(&dir, "hold")
        .arg("name", "q")
        .arg("cap", 3)
        .arg("weight", 2)
        .arg("release", "release")
        .spawn();
    let holder_pid: u64 = holder.expect("held", CHILD_TIMEOUT).parse().unwrap();
    let mut waiter = Spawn::new(&dir, "wait")
        .arg("name", "q")
        .arg("cap", 3)
        .arg("weight", 2)
        .arg("also_global", "g")
        .arg("done", "done")
        .spawn();
    waiter.expect("waiting_ns", CHILD_TIMEOUT);
    let waiter_pid = u64::from(waiter.pid());
    let ps = |pid: u64| ok(&dir, &["ps", &pid.to_string(), "--json"]).json();

    let entry = |scope: &str, ns: &str, name: &str, weight: u64, state: &str| json!({"scope": scope, "namespace": ns, "name": name, "weight": weight, "state": state});
    let waiting = json!([
        entry("global", "ci", "g", 1, "held"),
        entry("local", "default", "q", 2, "waiting"),
    ]);
    eventually("ps lists the waiter as waiting", || {
        ps(waiter_pid) == waiting
    });
    assert_eq!(
        ps(holder_pid),
        json!([entry("local", "default", "q", 2, "held")])
    );
    let v = show(&dir, "q");
    assert_eq!(parties(&v, "waiters"), [(waiter_pid, 2)], "{v}");
    assert_eq!(parties(&v, "holders"), [(holder_pid, 2)], "{v}");
    let since = v["waiters"][0]["since_ms"].as_u64().expect("since_ms");
    assert!(since > 0, "{v}");
    let all = ls(&dir, &[]);
    assert_eq!(
        (all[0]["holders"].as_u64(), all[0]["waiters"].as_u64()),
        (Some(1), Some(1))
    );
    let text = ok(&dir, &["ps", &waiter_pid.to_string()]).stdout;
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["local", "default", "q", "2", "waiting"]),
        "{text}"
    );
    // `--scope` and `--namespace` do not narrow `ps`.
    assert_eq!(
        ok(
            &dir,
            &["--scope", "self", "ps", &waiter_pid.to_string(), "--json"]
        )
        .json(),
        waiting
    );

    // The holder lets go: the waiter now holds, and waits for nothing.
    dir.signal("release");
    waiter.expect("acquired_ns", CHILD_TIMEOUT);
    holder.success(CHILD_TIMEOUT);
    assert_eq!(
        ps(waiter_pid),
        json!([
            entry("global", "ci", "g", 1, "held"),
            entry("local", "default", "q", 2, "held"),
        ])
    );
    let v = show(&dir, "q");
    assert_eq!(parties(&v, "waiters"), []);
    assert_eq!(parties(&v, "holders"), [(waiter_pid, 2)]);
    assert_eq!(ps(holder_pid), json!([]));
    dir.signal("done");
    waiter.success(CHILD_TIMEOUT);
    // A process that holds nothing: an empty array, and no text at all.
    assert_eq!(ps(waiter_pid), json!([]));
    assert_eq!(ok(&dir, &["ps", "1"]).stdout, "");
}

// =====================================================================================
// `shmsem watch` in a real terminal
// =====================================================================================

/// A tmux server of our own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Tmux {
        let found = Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "tmux is required to test `shmsem watch` in a terminal and is not installed: \
             `apt-get install -y tmux` (.ci/run installs it)"
        );
        Tmux {
            socket: format!("shmsem-life-{}-{}", std::process::id(), mono_ns()),
        }
    }

    fn cmd(&self, args: &[&str]) -> Output {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .env("TERM", "xterm-256color")
            .env_remove(shmsem::SELF_ENV)
            .stdin(Stdio::null())
            .output()
            .expect("running tmux");
        assert!(out.status.success(), "tmux {args:?}: {out:?}");
        out
    }

    /// A detached 100×20 session running `script` in `sh`.
    fn session(&self, name: &str, script: &str) {
        self.cmd(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "100",
            "-y",
            "20",
            script,
        ]);
    }

    fn capture(&self, session: &str) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", session]).stdout)
            .into_owned()
    }

    fn display(&self, session: &str, format: &str) -> String {
        let out = self.cmd(&["display-message", "-p", "-t", session, format]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Poll the pane until `cond` holds; the screen then. Panics after 10 s.
    fn until(&self, session: &str, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.capture(session);
            if cond(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "timed out waiting for {what}; the screen:\n{screen}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// After `watch` ended in `session`: it left the alternate screen, showed the cursor, and
    /// put the tty modes back as the script's `stty -g` saw them before (`{tag}.before`) and
    /// after (`{tag}.after`); the status it exited with.
    fn assert_clean(&self, session: &str, dir: &TestDir, tag: &str) -> String {
        let screen = self.until(session, "watch to end", |s| s.contains("WATCH-ENDED"));
        assert_eq!(
            self.display(session, "#{alternate_on}"),
            "0",
            "still on the alternate screen:\n{screen}"
        );
        assert_eq!(
            self.display(session, "#{cursor_flag}"),
            "1",
            "the cursor is still hidden"
        );
        let read = |suffix: &str| {
            fs::read_to_string(dir.work_file(&format!("{tag}.{suffix}")))
                .unwrap_or_else(|e| panic!("{tag}.{suffix}: {e}"))
        };
        assert_eq!(
            read("before"),
            read("after"),
            "the tty modes were not restored"
        );
        assert!(
            !screen.contains("shmsem watch ·"),
            "the frame is left on screen:\n{screen}"
        );
        read("exit").trim().to_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A script for a tmux pane: save the tty modes, run `shmsem watch ARGS` (as its own `sh`, whose
/// pid goes to `{tag}.pid`), save its status and the tty modes again, and linger.
fn watch_script(dir: &TestDir, tag: &str, args: &str) -> String {
    format!(
        "stty -g > {w}/{tag}.before; \
         {env}={shm} sh -c 'echo $$ > {w}/{tag}.pid; exec {BIN} watch {args}'; \
         echo $? > {w}/{tag}.exit; stty -g > {w}/{tag}.after; echo WATCH-ENDED; sleep 60",
        w = dir.work.display(),
        env = shmsem::DIR_ENV,
        shm = dir.shm.display(),
    )
}

/// The line of semaphore `name` on a `watch` screen.
fn watch_line<'a>(screen: &'a str, name: &str) -> Option<&'a str> {
    screen.lines().find(|l| {
        l.trim_start_matches(['│', ' '])
            .starts_with(&format!("{name} "))
    })
}

#[test]
fn watch_shows_changes_live_and_leaves_the_terminal_clean() {
    let dir = TestDir::new("watch");
    let tmux = Tmux::new();
    ok(&dir, &["create", "w", "--capacity", "2"]);
    tmux.session("all", &watch_script(&dir, "all", ""));

    let screen = tmux.until("all", "the first frame", |s| {
        watch_line(s, "w").is_some_and(|l| l.contains(" 0/2 "))
    });
    assert!(
        screen.contains("shmsem watch · scope local · namespace default"),
        "{screen}"
    );
    assert!(
        screen.contains("1 semaphore · 0 holders · 0 waiters"),
        "{screen}"
    );
    assert_eq!(
        tmux.display("all", "#{alternate_on}"),
        "1",
        "watch draws on the alternate screen"
    );

    // An acquire shows within a refresh (500 ms): value, bar and holder.
    let holder = Sleeper::spawn();
    ok(&dir, &["acquire", "w", "--holder", &holder.pid()]);
    let t = Instant::now();
    let screen = tmux.until("all", "the acquire to show", |s| {
        watch_line(s, "w").is_some_and(|l| l.contains(" 1/2 "))
    });
    let seen_after = t.elapsed();
    let line = watch_line(&screen, "w").unwrap();
    assert!(line.contains('█') && line.contains('░'), "{screen}");
    let held = format!("{} ×1", holder.pid());
    assert!(
        screen
            .lines()
            .any(|l| l.contains("held") && l.contains(&held)),
        "{screen}"
    );
    eprintln!(
        "watch: an acquire showed after {} ms",
        seen_after.as_millis()
    );
    assert!(seen_after < Duration::from_millis(1500), "{seen_after:?}");

    // q quits with status 0, and the terminal is as it was.
    tmux.cmd(&["send-keys", "-t", "all", "q"]);
    assert_eq!(tmux.assert_clean("all", &dir, "all"), "0");

    // One semaphore, a faster refresh, and SIGTERM instead of a key: 128 + 15, and clean too.
    tmux.session("one", &watch_script(&dir, "one", "w --interval 100"));
    tmux.until("one", "the named semaphore", |s| {
        watch_line(s, "w").is_some_and(|l| l.contains(" 1/2 ")) && s.contains(&held)
    });
    ok(&dir, &["release", "w", "--holder", &holder.pid()]);
    tmux.until("one", "the release to show", |s| {
        watch_line(s, "w").is_some_and(|l| l.contains(" 0/2 "))
    });
    let pid = fs::read_to_string(dir.work_file("one.pid")).expect("the watch pid");
    let killed = Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()
        .expect("running kill");
    assert!(killed.success());
    assert_eq!(tmux.assert_clean("one", &dir, "one"), "143");
}
