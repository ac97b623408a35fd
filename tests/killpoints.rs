//! Deterministic crash injection: a process is SIGKILLed at every kill point of
//! [`shmsem::failpoint::STEPS`] (acquire, release, registration, record claim and every stage
//! of reclaim, the reclaimer itself included), then a fresh process reaps, and the semaphore must
//! have lost no permit and duplicated none (DESIGN §3).
//!
//! Needs the `failpoints` feature (`cargo test --release --all-features`); without it this file
//! compiles to nothing.
//!
//! Every scenario runs in a fresh `SHMSEM_DIR` on one semaphore of capacity [`CAPACITY`]:
//!
//! 1. a live holder `L` takes weight 1 and keeps it until the end, so the recount has a live
//!    record to count;
//! 2. the crash: a *victim* armed with `SHMSEM_FAILPOINT=STEP@N` acquires, releases or opens and
//!    must die of SIGKILL at the step (a step never reached fails the test: the victim then exits
//!    normally). For `reclaim:*` steps a holder `D` takes weight 2 and is SIGKILLed by the test,
//!    then one reaper (even runs) or two reapers in a row (odd runs: the second through the CLI)
//!    armed with the step run reap and die there;
//! 3. a clean reap by a fresh process (library `Options::reap()` or `shmsem reap --json`,
//!    alternating);
//! 4. a fresh checker: `value` must equal the sum of the holders' weights and be exactly what
//!    the live holder holds (1), the holders must be exactly `L`, the remaining
//!    `CAPACITY - 1` must be free at once (no permit lost) and one more must be refused with
//!    `WouldBlock` (no permit duplicated);
//! 5. `L` gives its weight back, and `shmsem show --json` must then show value 0 and no holder.
//!
//! Odd runs of `acquire:*` and `release:*` warm the victim up first (a held weight 1, or an
//! acquire and release of 1), so the kill happens at the step's second visit (`@2`) with a
//! record that already has history.
//!
//! A second test, [`a_dead_reclaimer_does_not_strand_a_release`], checks liveness after a dead
//! reclaimer: a live holder's release must finish on its own, without an outside reap.
//!
//! Children re-execute this test binary (`--ignored --exact child_role`) in a role, and report on stdout,
//! through `common`'s harness; the parent tells a holder to release on its stdin. The harness
//! process never calls the library (the tests run as threads of one process and `SHMSEM_DIR` is
//! process-wide), it only reads the `STEPS` constant.

#![cfg(feature = "failpoints")]

mod common;

use std::{
    os::unix::process::ExitStatusExt,
    time::{Duration, Instant},
};

use common::{
    TestDir, arg,
    killpoint::{CHILD_TIMEOUT, cli, cli_reap, cli_show, expect_sigkilled, sigkill, spawn},
    report,
    roles::{holder_list, kind},
};
use shmsem::Semaphore;

/// The semaphore every scenario uses.
const SEM: &str = "kp";
/// Its capacity.
const CAPACITY: u32 = 4;
/// Runs per step.
const REPEATS: u32 = 5;

// =====================================================================================
// Child side
// =====================================================================================

crate::child_roles! {
    "hold" => role_hold(), "victim" => role_victim(), "reaper" => role_reaper(),
    "check" => role_check(),
}

/// A required numeric role parameter.
fn arg_u32(key: &str) -> u32 {
    arg(key)
        .parse()
        .unwrap_or_else(|_| panic!("role parameter {key} is not a number"))
}

fn open() -> Semaphore {
    Semaphore::options()
        .capacity(CAPACITY)
        .open(SEM)
        .unwrap_or_else(|e| panic!("opening {SEM}: {e}"))
}

/// Block until the parent writes a line (or closes our stdin).
fn wait_parent() -> String {
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    line.trim().to_owned()
}

/// `pid:weight` of every holder, sorted, comma-separated; `-` for none.
fn holders_of(info: &shmsem::Info) -> String {
    let hs = holder_list(info);
    if hs.is_empty() { "-".into() } else { hs }
}

/// Take `weight` (it must be free), report `held`, hold until the parent says `release`, give
/// it back and report how that went.
fn role_hold() {
    let sem = open();
    let weight = arg_u32("weight");
    let permit = sem
        .try_acquire(weight)
        .unwrap_or_else(|e| panic!("holder could not take weight {weight} at once: {e}"));
    report("held", std::process::id());
    let cmd = wait_parent();
    assert_eq!(cmd, "release", "holder told {cmd:?}");
    // Forget + exit rather than drop, so an error in the release is seen.
    permit.forget();
    match sem.exit(weight) {
        Ok(()) => report("released", "ok"),
        Err(e) => report("released", format!("error:{e:?}")),
    }
}

/// Do the operation `op` with the kill point armed; reaching the step kills us. Survival is
/// reported, and the parent fails the test on it.
fn role_victim() {
    let op = arg("op");
    let warm = arg_u32("warm") == 1;
    match op.as_str() {
        "acquire" => {
            let sem = open();
            if warm {
                sem.try_acquire(1).expect("warm-up acquire").forget();
            }
            let p = sem.acquire_weight(2).expect("acquire 2");
            report("survived", format!("holding {}", p.weight()));
        }
        "release" => {
            let sem = open();
            if warm {
                drop(sem.try_acquire(1).expect("warm-up acquire"));
            }
            let p = sem.acquire_weight(2).expect("acquire 2");
            drop(p);
            report("survived", "released");
        }
        "register" => {
            let _sem = open();
            report("survived", "opened");
        }
        "claim" => {
            let sem = open();
            let p = sem.acquire_weight(2).expect("acquire 2");
            report("survived", format!("holding {}", p.weight()));
        }
        "wait" => {
            // The live holder holds 1: the whole capacity is not there, so this waits.
            let sem = open();
            let p = sem.acquire_weight(CAPACITY).expect("acquire all");
            report("survived", format!("holding {}", p.weight()));
        }
        other => panic!("unknown victim op {other:?}"),
    }
}

/// Reap through the library and report what came back: `name:pid:weight,...` or `-`.
fn role_reaper() {
    let got = shmsem::Namespace::default().reap();
    match got {
        Ok(list) => {
            let s: Vec<String> = list
                .iter()
                .map(|r| format!("{}:{}:{}", r.semaphore, r.pid, r.weight))
                .collect();
            report(
                "reaped",
                if s.is_empty() {
                    "-".into()
                } else {
                    s.join(",")
                },
            );
        }
        Err(e) => report("reaped", format!("error:{e:?}")),
    }
}

/// The conservation check: value and holders, then the remaining capacity at once, then one
/// more.
fn role_check() {
    let sem = open();
    let info = sem.info().expect("info");
    report("value", info.value);
    report("capacity", info.capacity);
    report(
        "holder_sum",
        info.holders.iter().map(|p| p.weight).sum::<u64>(),
    );
    report("holders", holders_of(&info));
    report("waiters", info.waiters.len());
    let rest = arg_u32("rest");
    match sem.try_acquire(rest) {
        Ok(p) => {
            report("rest", "ok");
            let more = sem.try_acquire(1);
            report("one_more", kind(&more));
            drop(more);
            report("value_full", sem.info().expect("info").value);
            p.forget();
            match sem.exit(rest) {
                Ok(()) => report("gave_back", "ok"),
                Err(e) => report("gave_back", format!("error:{e:?}")),
            }
        }
        Err(e) => report("rest", format!("error:{e:?}")),
    }
    report("value_after", sem.info().expect("info").value);
}

// =====================================================================================
// Parent side
// =====================================================================================

/// What one scenario run showed.
struct Outcome {
    armed: String,
    reaped: String,
    value: String,
    holders: String,
    one_more: String,
    final_value: u64,
}

/// One run of `step`: crash, reap, check. Panics on any broken invariant.
fn scenario(step: &str, run: u32) -> Outcome {
    let dir = TestDir::new(&format!("kp-{}-{run}", step.replace(':', "-")));
    let shm = &dir.shm;
    let ctx = format!("[{step} run {run}]");
    let (family, _) = step.split_once(':').expect("steps are family:stage");
    let odd = run % 2 == 1;

    // 1. The live holder.
    let mut live = spawn(&dir, "hold", "live holder", &[("weight", "1".into())], None);
    let live_pid: u32 = live.expect("held", CHILD_TIMEOUT).parse().expect("pid");
    assert_eq!(live_pid, live.pid());

    // 2. The crash.
    let armed = match family {
        "acquire" | "release" | "register" | "claim" | "wait" => {
            let warm = odd && matches!(family, "acquire" | "release");
            let armed = format!("{step}@{}", if warm { 2 } else { 1 });
            let mut victim = spawn(
                &dir,
                "victim",
                &format!("victim {ctx}"),
                &[("op", family.into()), ("warm", u32::from(warm).to_string())],
                Some(&armed),
            );
            expect_sigkilled(&mut victim, &armed);
            armed
        }
        "reclaim" => {
            let mut dead = spawn(
                &dir,
                "hold",
                &format!("dead holder {ctx}"),
                &[("weight", "2".into())],
                None,
            );
            dead.expect("held", CHILD_TIMEOUT);
            sigkill(&mut dead);
            let armed = format!("{step}@1");
            let mut reaper = spawn(
                &dir,
                "reaper",
                &format!("armed reaper {ctx}"),
                &[],
                Some(&armed),
            );
            expect_sigkilled(&mut reaper, &armed);
            if odd {
                // A second reclaimer killed at the same step, through the CLI: the recount
                // must be restartable from any state a dead recounter left.
                let out = cli(shm, &["reap"], Some(&armed));
                assert_eq!(
                    out.status.signal(),
                    Some(libc::SIGKILL),
                    "{ctx} `shmsem reap` armed with {armed} did not die of SIGKILL \
                     ({:?}): the step was never reached\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
                format!("{armed} x2")
            } else {
                armed
            }
        }
        other => panic!("{ctx} no scenario for kill point family {other:?}: add one"),
    };

    // 3. A clean reap by a fresh process.
    let reaped = if odd {
        let mut r = spawn(&dir, "reaper", &format!("reaper {ctx}"), &[], None);
        let reaped = r.expect("reaped", CHILD_TIMEOUT);
        r.success(CHILD_TIMEOUT);
        reaped
    } else {
        cli_reap(shm)
    };
    assert!(!reaped.contains("error"), "{ctx} reap failed: {reaped}");

    // 4. The conservation check by a fresh process.
    let rest = CAPACITY - 1;
    let mut check = spawn(
        &dir,
        "check",
        &format!("checker {ctx}"),
        &[("rest", rest.to_string())],
        None,
    );
    let value: u64 = check.expect("value", CHILD_TIMEOUT).parse().expect("value");
    let holder_sum: u64 = check
        .expect("holder_sum", CHILD_TIMEOUT)
        .parse()
        .expect("sum");
    let holders = check.expect("holders", CHILD_TIMEOUT);
    let rest_result = check.expect("rest", CHILD_TIMEOUT);
    let one_more = if rest_result == "ok" {
        check.expect("one_more", CHILD_TIMEOUT)
    } else {
        "-".into()
    };
    let value_full = if rest_result == "ok" {
        check.expect("value_full", CHILD_TIMEOUT)
    } else {
        "-".into()
    };
    let gave_back = if rest_result == "ok" {
        check.expect("gave_back", CHILD_TIMEOUT)
    } else {
        "-".into()
    };
    let value_after = check.expect("value_after", CHILD_TIMEOUT);
    check.success(CHILD_TIMEOUT);
    let summary = format!(
        "{ctx} armed {armed}; reaped {reaped}; value {value}, holders {holders} (live holder \
         {live_pid}:1); remaining {rest}: {rest_result}; one more: {one_more}"
    );
    assert_eq!(
        value, holder_sum,
        "value is not the sum of the holders' weights: {summary}"
    );
    assert_eq!(
        holders,
        format!("{live_pid}:1"),
        "the holders are not exactly the live holder: {summary}"
    );
    assert_eq!(
        value, 1,
        "value is not what the live holder holds: {summary}"
    );
    assert_eq!(
        rest_result, "ok",
        "the remaining capacity is not available (a permit was lost): {summary}"
    );
    assert_eq!(
        one_more, "WouldBlock",
        "more than the capacity was granted (a permit was duplicated): {summary}"
    );
    assert_eq!(
        value_full,
        CAPACITY.to_string(),
        "value with everything held: {summary}"
    );
    assert_eq!(gave_back, "ok", "{summary}");
    assert_eq!(value_after, "1", "value after giving back: {summary}");

    // 5. The live holder gives back; the semaphore is then empty.
    live.send("release");
    let released = live.expect("released", CHILD_TIMEOUT);
    live.success(CHILD_TIMEOUT);
    assert_eq!(
        released, "ok",
        "the live holder's release failed: {summary}"
    );
    let (final_value, final_holders) = cli_show(shm, SEM);
    assert_eq!(
        (final_value, final_holders.as_str()),
        (0, "-"),
        "after every live holder gave back: {summary}"
    );

    Outcome {
        armed,
        reaped,
        value: value.to_string(),
        holders,
        one_more,
        final_value,
    }
}

/// Every kill point, [`REPEATS`] times: a crash there loses and duplicates nothing once reaped.
#[test]
fn every_kill_point_loses_and_duplicates_nothing() {
    let started = Instant::now();
    let mut table = Vec::new();
    for step in shmsem::failpoint::STEPS {
        let t = Instant::now();
        for run in 0..REPEATS {
            let o = scenario(step, run);
            eprintln!(
                "killpoint {step:<18} run {run}: armed {:<22} reaped {:<16} value {} holders {} \
                 one-more {} final value {}",
                o.armed, o.reaped, o.value, o.holders, o.one_more, o.final_value
            );
        }
        table.push((step, t.elapsed()));
    }
    eprintln!(
        "killpoints: {} steps x {REPEATS} runs, each: victim died of SIGKILL at the step, value \
         after reap = live holders' weight (1 of {CAPACITY}), remaining {} granted, one more \
         WouldBlock; total {:.1?}",
        shmsem::failpoint::STEPS.len(),
        CAPACITY - 1,
        started.elapsed()
    );
    for (step, t) in table {
        eprintln!("  {step:<18} ok ({REPEATS} runs, {t:.1?})");
    }
}

/// A reclaimer killed in the middle of a recount leaves the word frozen. A live holder that then
/// gives its weight back must not be stranded until some other process happens to reap: every
/// loop is bounded (DESIGN §1), and the release path must repair or outwait the dead recounter
/// by itself. For every `reclaim:*` step: a dead holder, a reaper killed at the step, then the
/// live holder releases and must be done within a generous bound. A release that is not done
/// by then is recorded, an outside `shmsem reap` is run to show what it was waiting for, and the
/// test fails at the end with every stranded step listed.
#[test]
fn a_dead_reclaimer_does_not_strand_a_release() {
    const BOUND: Duration = Duration::from_secs(5);
    let mut stranded = Vec::new();
    for step in shmsem::failpoint::STEPS
        .iter()
        .filter(|s| s.starts_with("reclaim:"))
    {
        let dir = TestDir::new(&format!("strand-{}", step.replace(':', "-")));
        let shm = &dir.shm;
        let mut live = spawn(&dir, "hold", "live holder", &[("weight", "1".into())], None);
        live.expect("held", CHILD_TIMEOUT);
        let mut dead = spawn(&dir, "hold", "dead holder", &[("weight", "2".into())], None);
        dead.expect("held", CHILD_TIMEOUT);
        sigkill(&mut dead);
        let armed = format!("{step}@1");
        let mut reaper = spawn(&dir, "reaper", "armed reaper", &[], Some(&armed));
        expect_sigkilled(&mut reaper, &armed);
        let t = Instant::now();
        live.send("release");
        let on_its_own = live.wait_for("released", BOUND).is_some();
        let note = if on_its_own {
            format!("done in {:.1?}", t.elapsed())
        } else {
            let reaped = cli_reap(shm);
            let released = live.expect("released", CHILD_TIMEOUT);
            let note = format!(
                "STRANDED: not done after {BOUND:?}; an outside `shmsem reap` (reaped {reaped}) \
                 let it finish ({released}) after {:.1?}",
                t.elapsed()
            );
            stranded.push(format!("{step}: {note}"));
            note
        };
        let released = live.expect("released", CHILD_TIMEOUT);
        live.success(CHILD_TIMEOUT);
        assert_eq!(released, "ok", "[{step}] the live holder's release failed");
        let reaped = cli_reap(shm);
        let (value, holders) = cli_show(shm, SEM);
        eprintln!(
            "strand {step:<18}: release after a reaper died at {armed}: {note}; then reaped \
             {reaped}, value {value}, holders {holders}"
        );
        assert_eq!(
            (value, holders.as_str()),
            (0, "-"),
            "[{step}] after the release"
        );
    }
    assert!(
        stranded.is_empty(),
        "a release was stranded by a dead reclaimer's frozen word (it waits in \
         Semaphore::give_on's frozen_pause loop, which never reclaims):\n  {}",
        stranded.join("\n  ")
    );
}
