//! A stopped process is alive (DESIGN §3): a holder that
//! is SIGSTOPped keeps its permit however long it stays stopped and however often anyone
//! reaps; once it is continued and gives the permit back, the waiter gets it.
//!
//! One semaphore of capacity 1. The holder `H` takes it and is SIGSTOPped for [`STOP`]. Meanwhile
//! a waiter `W` waits with a timeout of [`WAIT`] (so its own bounded sleeps reclaim every ~50 ms
//! too), a reaper `R` runs `Options::reap()` every [`REAP_EVERY`] and samples `info()`, and the
//! test runs `shmsem reap --json` and `shmsem show --json`. Every reap must return nothing, every
//! sample must list `H` holding 1 with value 1, and `W` must not get the permit while `H` is
//! stopped. Then `H` is continued and releases, and `W` must get the permit, after `H` began its
//! release (`CLOCK_MONOTONIC` of both, compared).
//!
//! Children re-execute this test binary in a role through `common`'s harness; the harness
//! process never calls the library.

mod common;

use std::{
    io::BufRead,
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    thread,
    time::{Duration, Instant},
};

use common::{Kid, Spawn, TestDir, mono_ns, report, roles::kind};
use shmsem::Semaphore;

const SEM: &str = "stopped";
/// How long the holder stays stopped.
const STOP: Duration = Duration::from_secs(3);
/// The waiter's timeout.
const WAIT: Duration = Duration::from_secs(5);
/// How often the reaper reaps.
const REAP_EVERY: Duration = Duration::from_millis(200);
/// The most any child may take: generous, for a loaded two-core machine.
const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

// =====================================================================================
// Child side
// =====================================================================================

crate::child_roles! {
    "holder" => role_holder(), "waiter" => role_waiter(), "reaper" => role_reaper(),
}

fn open() -> Semaphore {
    Semaphore::options()
        .capacity(1)
        .open(SEM)
        .unwrap_or_else(|e| panic!("opening {SEM}: {e}"))
}

/// Lines the parent writes to our stdin, as they come.
fn parent_lines() -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line.trim().to_owned()).is_err() {
                break;
            }
        }
    });
    rx
}

/// Take the permit, hold it until told to release, report when the release began.
fn role_holder() {
    let sem = open();
    let permit = sem
        .try_acquire(1)
        .expect("the holder takes the free permit");
    report("held", std::process::id());
    let cmd = parent_lines().recv().expect("a command from the parent");
    assert_eq!(cmd, "release", "holder told {cmd:?}");
    report("release_ns", mono_ns());
    permit.forget();
    match sem.exit(1) {
        Ok(()) => report("released", "ok"),
        Err(e) => report("released", format!("error:{e:?}")),
    }
}

/// Wait for the permit with a timeout; report the outcome and when it came.
fn role_waiter() {
    let sem = open();
    let start = Instant::now();
    report("waiting", mono_ns());
    let r = sem.acquire_timeout(1, WAIT);
    let end = mono_ns();
    report("end_ns", end);
    report("waited_ms", start.elapsed().as_millis());
    report("result", kind(&r));
}

/// Reap and sample until told to stop: `sample` lines of
/// `reaped=… value=… holders=pid:w,… waiters=pid,…`.
fn role_reaper() {
    let sem = open();
    let stop = parent_lines();
    let mut n = 0;
    loop {
        let reaped = match shmsem::Namespace::default().reap() {
            Ok(list) if list.is_empty() => "-".to_owned(),
            Ok(list) => list
                .iter()
                .map(|r| format!("{}:{}:{}", r.semaphore, r.pid, r.weight))
                .collect::<Vec<_>>()
                .join(","),
            Err(e) => format!("error:{e:?}"),
        };
        let info = sem.info().expect("info");
        let holders: Vec<String> = info
            .holders
            .iter()
            .map(|p| format!("{}:{}", p.pid, p.weight))
            .collect();
        let waiters: Vec<String> = info.waiters.iter().map(|p| p.pid.to_string()).collect();
        report(
            "sample",
            format!(
                "reaped={reaped} value={} holders={} waiters={}",
                info.value,
                holders.join(","),
                waiters.join(",")
            ),
        );
        n += 1;
        match stop.recv_timeout(REAP_EVERY) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => break,
        }
    }
    report("samples", n);
}

// =====================================================================================
// Parent side
// =====================================================================================

/// A child of this test binary in `role`, with a pipe on its stdin.
fn spawn(dir: &TestDir, role: &str) -> Kid {
    Spawn::new(dir, role)
        .env_remove(shmsem::failpoint::ENV)
        .stdin_piped()
        .spawn()
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a pid of our own child and a valid signal number.
    let r = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(
        r,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

fn cli(dir: &TestDir, args: &[&str]) -> serde_json::Value {
    common::cli::ok(dir, args).json()
}

#[test]
fn a_stopped_holder_keeps_its_permit() {
    let dir = TestDir::new("held");

    let mut holder = spawn(&dir, "holder");
    let h: u32 = holder.expect("held", CHILD_TIMEOUT).parse().expect("pid");
    assert_eq!(h, holder.pid());

    signal(h, libc::SIGSTOP);
    let stopped_at = Instant::now();
    while !common::is_stopped(h) {
        assert!(
            stopped_at.elapsed() < Duration::from_secs(5),
            "holder {h} did not stop"
        );
        thread::sleep(Duration::from_millis(1));
    }

    let mut waiter = spawn(&dir, "waiter");
    let mut reaper = spawn(&dir, "reaper");
    waiter.expect("waiting", CHILD_TIMEOUT);

    // From outside: the CLI sees the stopped holder, and reaps nothing.
    thread::sleep(Duration::from_millis(500));
    let shown = cli(&dir, &["show", SEM, "--json"]);
    let reaped = cli(&dir, &["reap", "--json"]);
    assert_eq!(shown["value"], 1, "shmsem show while stopped: {shown}");
    assert_eq!(
        shown["holders"],
        serde_json::json!([{"pid": h, "weight": 1, "since_ms": shown["holders"][0]["since_ms"]}]),
        "shmsem show while stopped must list the stopped holder: {shown}"
    );
    assert_eq!(
        reaped,
        serde_json::json!([]),
        "shmsem reap took something from a stopped holder"
    );

    // The stop lasts STOP; the reaper stops sampling before the holder is continued.
    thread::sleep(STOP.saturating_sub(stopped_at.elapsed()));
    reaper.send("stop");
    reaper.success(CHILD_TIMEOUT);
    let stop_len = stopped_at.elapsed();
    assert!(common::is_stopped(h), "the holder must still be stopped");
    let waiter_reports = waiter.reports();
    assert!(
        waiter_reports.get("result").is_none(),
        "the waiter finished while the holder was stopped: {waiter_reports:?}"
    );
    assert!(
        waiter.alive(),
        "the waiter exited while the holder was stopped"
    );

    // Continue and release: the waiter gets the permit.
    signal(h, libc::SIGCONT);
    holder.send("release");
    let release_ns: u64 = holder
        .expect("release_ns", CHILD_TIMEOUT)
        .parse()
        .expect("ns");
    assert_eq!(
        holder.expect("released", CHILD_TIMEOUT),
        "ok",
        "the holder's release"
    );
    holder.success(CHILD_TIMEOUT);
    let result = waiter.expect("result", CHILD_TIMEOUT);
    let end_ns: u64 = waiter.expect("end_ns", CHILD_TIMEOUT).parse().expect("ns");
    let waited_ms: u64 = waiter
        .expect("waited_ms", CHILD_TIMEOUT)
        .parse()
        .expect("ms");
    waiter.success(CHILD_TIMEOUT);
    assert_eq!(
        result, "ok",
        "the waiter did not get the permit after the release"
    );
    assert!(
        end_ns >= release_ns,
        "the waiter got the permit {} ns before the holder began to release it",
        release_ns - end_ns
    );

    // Every reaper sample, all taken while the holder was stopped.
    let samples = reaper.reports().all("sample");
    let expect_prefix = format!("reaped=- value=1 holders={h}:1 waiters=");
    for s in &samples {
        assert!(
            s.starts_with(&expect_prefix),
            "a reap while the holder was stopped saw {s:?}, expected {expect_prefix}…"
        );
    }
    let with_waiter = samples
        .iter()
        .filter(|s| {
            s.rsplit_once("waiters=")
                .is_some_and(|(_, w)| w.split(',').any(|p| p == waiter.pid().to_string()))
        })
        .count();
    assert!(
        samples.len() >= 5,
        "only {} reaps in {stop_len:?}",
        samples.len()
    );
    assert!(
        with_waiter > 0,
        "no sample listed the waiter {}: {samples:?}",
        waiter.pid()
    );

    let after = cli(&dir, &["show", SEM, "--json"]);
    assert_eq!(after["value"], 0, "after the waiter gave back: {after}");
    assert_eq!(after["holders"], serde_json::json!([]), "{after}");

    println!(
        "stopped: holder {h} stopped {stop_len:.1?}; {} reaps by the reaper (every {REAP_EVERY:?}) \
         + 1 `shmsem reap`, all empty, all listing {h}:1 with value 1 ({with_waiter} also \
         listing the waiter); waiter got the permit after {waited_ms} ms, {:.1} ms after the \
         release began",
        samples.len(),
        (end_ns - release_ns) as f64 / 1e6
    );
}
