//! Bug 8: a SIGKILLed waiter's count stayed in the word forever.

use std::{
    os::unix::process::ExitStatusExt,
    time::{Duration, Instant},
};

use super::{
    common::{
        self, Kid, Spawn, TestDir,
        cli::{names, ok, run},
        mp::CHILD_TIMEOUT,
        report,
        roles::{kind, open_arg},
    },
    until_waiting, within,
};

/// Bug 8: wait for weight 1 of `name` (auto, `idle_ms`) for up to a minute; reports `waiting`
/// first. Killed while it waits.
pub fn role_waiter() {
    let sem = open_arg();
    report("waiting", std::process::id());
    let r = sem.acquire_timeout(1, Duration::from_secs(60));
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
