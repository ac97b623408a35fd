//! Bug 8: a SIGKILLed waiter's count stayed in the word forever.

use std::{
    os::unix::process::ExitStatusExt,
    time::{Duration, Instant},
};

use super::{
    common::{
        self, Kid, Spawn, TestDir, arg_u32,
        cli::{names, ok, run},
        mp::CHILD_TIMEOUT,
        report,
        roles::{kind, open_arg},
    },
    until_waiting, within,
};

/// Bug 8: wait for weight `weight` (default 1) of `name` (auto, `idle_ms`) for up to a minute;
/// reports `waiting` first. Killed while it waits.
pub fn role_waiter() {
    let sem = open_arg();
    report("waiting", std::process::id());
    let r = sem.acquire_timeout(arg_u32("weight", 1), Duration::from_secs(60));
    report("result", kind(&r));
}

// =====================================================================================
// Bug 8: a SIGKILLed waiter's count stayed in the word forever
// =====================================================================================

/// A holder holds `x` (auto, idle 100 ms); a waiter blocks on it and is SIGKILLed; the holder
/// releases and exits; after a `reap`, `ls` must stop listing `x` within 5 s (sweeps run on
/// `ls`).
#[test]
fn a_killed_waiter_does_not_keep_an_auto_semaphore_alive() {
    let dir = TestDir::new("xh-dead-waiter");
    let mut holder = common::mp::holder(&dir, "x", 1, 1, "release")
        .arg("idle_ms", 100)
        .spawn();
    holder.expect("held", CHILD_TIMEOUT);
    let mut waiter: Kid = Spawn::new(&dir, "waiter")
        .arg("name", "x")
        .arg("idle_ms", 100)
        .spawn();
    waiter.expect("waiting", CHILD_TIMEOUT);
    assert!(until_waiting(&dir, "x"), "the waiter never waited");
    let status = waiter.sigkill();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    dir.signal("release");
    holder.success(CHILD_TIMEOUT);
    ok(&dir, &["reap"]);
    let released = Instant::now();
    let gone = within(Duration::from_secs(5), || {
        !names(&dir).iter().any(|n| n == "x")
    });
    let summary = format!(
        "after the holder released and a reap, {:.1?} later: ls lists {:?}; show x: {}",
        released.elapsed(),
        names(&dir),
        show_or_error(&dir)
    );
    eprintln!("dead waiter: {summary}");
    assert!(
        gone,
        "the auto semaphore outlived its 100 ms idle period by seconds: {summary}"
    );
}

/// `show x --json` on one line if it exists, for the failure message.
fn show_or_error(dir: &TestDir) -> String {
    let r = run(dir, &["show", "x", "--json"]);
    if r.code == 0 {
        r.json().to_string()
    } else {
        r.stderr.trim().to_owned()
    }
}

// =====================================================================================
// A fairness reservation outlived its dead waiter on a semaphore created again
// =====================================================================================

/// A waiter for weight 2 of `r` (capacity 2, a holder holds 1) counts itself and is stopped
/// right there (`wait:counted/stop`); `r` is force-removed and created again; let go, the waiter
/// reserves its weight on the new `r`, though it counted itself on the old one, and dies right
/// after (`wait:reserved`). Its records name only the old `r`, so a reclaim that cleared only the
/// reservations of the semaphores a dead process's records name left it on the new one for good:
/// weight 2 of the idle, empty new `r` could never be taken again except by the fast path.
#[cfg(feature = "failpoints")]
#[test]
fn a_dead_waiters_reservation_on_a_semaphore_created_again_goes_with_it() {
    let dir = TestDir::new("xh-dead-reserver");
    ok(&dir, &["create", "r", "--capacity", "2", "--persistent"]);
    let mut holder = common::mp::holder(&dir, "r", 2, 1, "release").spawn();
    holder.expect("held", CHILD_TIMEOUT);
    let mut waiter: Kid = Spawn::new(&dir, "waiter")
        .arg("name", "r")
        .arg("cap", 2)
        .arg("weight", 2)
        .env(shmsem::failpoint::ENV, "wait:counted/stop,wait:reserved")
        .spawn();
    waiter.expect("waiting", CHILD_TIMEOUT);
    assert!(
        within(Duration::from_secs(10), || common::is_stopped(waiter.pid())),
        "the waiter never stopped at wait:counted"
    );
    ok(&dir, &["rm", "r", "--force"]);
    ok(&dir, &["create", "r", "--capacity", "2", "--persistent"]);
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(waiter.pid() as i32, libc::SIGCONT) };
    let status = waiter.wait_exit(CHILD_TIMEOUT);
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the waiter did not die at wait:reserved: {}",
        waiter.transcript()
    );
    dir.signal("release");
    holder.success(CHILD_TIMEOUT);
    ok(&dir, &["reap"]);
    let all = common::mp::attempts(&dir, "r", 2, 2, "try")
        .spawn()
        .success(CHILD_TIMEOUT);
    let show = run(&dir, &["show", "r", "--json"]);
    assert_eq!(
        all.req("result0"),
        "ok",
        "weight 2 of the empty new r was refused after the reserving waiter died and a reap: \
         {:?}; show: {}",
        all.get("detail0"),
        show.stdout.trim()
    );
}
