//! Bugs 4, 5 and 7: acting for a holder (`acquire_for`, `--holder`).

#[cfg(feature = "failpoints")]
use std::os::unix::process::ExitStatusExt;
use std::{
    thread,
    time::{Duration, Instant},
};

use shmsem::Semaphore;

use super::{
    Bg,
    common::{
        self, Spawn, TestDir, arg_u32,
        cli::{Sleeper, ok, run},
        mp::{CHILD_TIMEOUT, SIGNAL_TIMEOUT},
        report, work_dir,
    },
    report_raw, shown, signalled, until_waiting, within,
};

/// Bug 4, the actor: fork `holders` children that only wait for this thread to end (live
/// processes to act for), then, in each of `rounds` fresh namespaces `n{round}`: create `x`,
/// signal `ready{round}`, wait for `go{round}`, and `acquire_for` each child once (weight 1 of
/// plenty, timeout 5 s), 1 ms apart; then signal `acted{round}`.
pub fn role_actor() {
    let rounds = arg_u32("rounds", 4);
    let holders = arg_u32("holders", 300);
    let me = std::process::id() as i32;
    let mut pids = Vec::new();
    for _ in 0..holders {
        // SAFETY: the child only calls prctl, getppid, pause and _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY: plain system calls.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != me {
                    libc::_exit(0);
                }
                loop {
                    libc::pause();
                }
            }
        }
        pids.push(pid as u32);
    }
    let (mut calls, mut errors, mut slowest) = (0u64, 0u64, Duration::ZERO);
    for round in 0..rounds {
        let ns = format!("n{round}");
        let sem = Semaphore::options()
            .namespace(&ns)
            .capacity(1 << 20)
            .persistent()
            .open("x")
            .unwrap_or_else(|e| panic!("opening x in {ns}: {e}"));
        common::send_signal(&format!("ready{round}"));
        let deadline = Instant::now() + SIGNAL_TIMEOUT;
        while !signalled(&format!("go{round}")) && !signalled("abort") {
            assert!(Instant::now() < deadline, "no go{round} from the registrar");
            thread::sleep(Duration::from_millis(1));
        }
        if signalled("abort") {
            break;
        }
        for &pid in &pids {
            let t = Instant::now();
            // Capacity is ample: with a timeout, only a hang or a real failure is an error.
            let r = sem.acquire_for(pid, 1, Some(Duration::from_secs(5)));
            slowest = slowest.max(t.elapsed());
            calls += 1;
            if let Err(e) = r {
                errors += 1;
                report("error", format!("round {round}, acquire_for({pid}): {e:?}"));
            }
            let pause = Instant::now();
            while pause.elapsed() < Duration::from_millis(1) {
                std::hint::spin_loop();
            }
        }
        common::send_signal(&format!("acted{round}"));
    }
    report("calls", calls);
    report("errors", errors);
    report("slowest_ms", slowest.as_millis());
}

/// Bug 4, the registrar: in each round's namespace, once the actor is `ready{round}`, open `x`,
/// signal `go{round}`, and until `acted{round}` (at most 600 times) fork a child that registers
/// in the namespace through `set_persistent(true)` (registration, then the table lock) and
/// `_exit`s; each child must be done within `HANG`, or it is reported hung and killed.
pub fn role_registrar() {
    let rounds = arg_u32("rounds", 4);
    let (mut children, mut failures, mut hung, mut slowest) = (0u64, 0u64, 0u64, Duration::ZERO);
    'rounds: for round in 0..rounds {
        common::wait_for_signal(&format!("ready{round}"), SIGNAL_TIMEOUT);
        let ns = format!("n{round}");
        let sem = Semaphore::options()
            .namespace(&ns)
            .open_existing("x")
            .unwrap_or_else(|e| panic!("opening x in {ns}: {e}"));
        common::send_signal(&format!("go{round}"));
        let acted = work_dir().join(format!("acted{round}"));
        for _ in 0..600 {
            if acted.exists() {
                break;
            }
            // SAFETY: the child only calls the library and `_exit`s.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                let code = match sem.set_persistent(true) {
                    Ok(()) => 0,
                    Err(e) => {
                        report_raw("error", format!("child: {e:?}"));
                        1
                    }
                };
                // SAFETY: ends the forked child without running the parent's exit handlers.
                unsafe { libc::_exit(code) };
            }
            children += 1;
            let t = Instant::now();
            let mut status = 0;
            loop {
                // SAFETY: waiting for our own child without blocking.
                let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                if r == pid {
                    break;
                }
                if t.elapsed() > HANG {
                    hung += 1;
                    report("error", format!("round {round}: child {pid} hung"));
                    // SAFETY: killing and reaping our own child.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                        libc::waitpid(pid, &mut status, 0);
                    }
                    common::send_signal("abort");
                    break 'rounds;
                }
                thread::sleep(Duration::from_micros(20));
            }
            slowest = slowest.max(t.elapsed());
            if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
                failures += 1;
            }
        }
    }
    report("children", children);
    report("failures", failures);
    report("hung", hung);
    report("slowest_ms", slowest.as_millis());
}

// =====================================================================================
// Bug 4: acquire --holder took a blocking lock under the table lock
// =====================================================================================

/// How long any one operation may take before it counts as hung.
const HANG: Duration = Duration::from_secs(10);
/// Rounds of the race, each in a fresh namespace.
const REGISTER_ROUNDS: u32 = 4;
/// External holders per round: each `acquire_for` of a new one takes a new process slot.
const REGISTER_HOLDERS: u32 = 300;

/// `acquire_for` (what `shmsem acquire --holder P` runs) creates an external process slot under
/// the table lock, in the lowest free slot; engine processes register, without the table lock,
/// into the next free slot, which in a namespace whose slots were never freed is the same one.
/// One process (the actor) calls `acquire_for` on behalf of [`REGISTER_HOLDERS`] different live
/// processes, one every millisecond, while another (the registrar) forks child after child,
/// each of which registers in the namespace (`set_persistent`, which then takes the table lock) and
/// exits. [`REGISTER_ROUNDS`] rounds, each in a fresh namespace. Every `acquire_for` must
/// succeed and every child must finish within [`HANG`]; a hang (on the old code, the actor waits
/// for the slot lock of a child that waits for the table lock) fails the test, and the stuck
/// child is killed.
#[test]
fn acquiring_for_a_holder_never_hangs_while_other_processes_register() {
    let dir = TestDir::new("xh-register");
    let mut actor = Spawn::new(&dir, "actor")
        .arg("rounds", REGISTER_ROUNDS)
        .arg("holders", REGISTER_HOLDERS)
        .spawn();
    let mut registrar = Spawn::new(&dir, "registrar")
        .arg("rounds", REGISTER_ROUNDS)
        .spawn();
    let r = registrar.success(CHILD_TIMEOUT);
    let a = actor.success(CHILD_TIMEOUT);
    let summary = format!(
        "{REGISTER_ROUNDS} rounds: {} acquire_for calls ({} failed, slowest {} ms), {} children \
         registered ({} failed, {} hung, slowest {} ms); first errors: actor {:?}, registrar {:?}",
        a.u64("calls"),
        a.u64("errors"),
        a.u64("slowest_ms"),
        r.u64("children"),
        r.u64("failures"),
        r.u64("hung"),
        r.u64("slowest_ms"),
        a.get("error"),
        r.get("error"),
    );
    eprintln!("register race: {summary}");
    assert_eq!(
        r.u64("hung"),
        0,
        "a registering process hung (killed after {HANG:?}): {summary}"
    );
    assert_eq!(
        (a.u64("errors"), r.u64("failures")),
        (0, 0),
        "acquire_for failed for a live holder with plenty of capacity, or a child could not \
         register: {summary}"
    );
    assert!(
        a.u64("slowest_ms") < HANG.as_millis() as u64,
        "an acquire_for hung: {summary}"
    );
    assert_eq!(
        a.u64("calls"),
        u64::from(REGISTER_ROUNDS * REGISTER_HOLDERS),
        "{summary}"
    );
    assert!(r.u64("children") >= 40, "the race did not run: {summary}");
}

// =====================================================================================
// Bug 5: a waiting acquire --holder held the holder's slot lock for its whole wait
// =====================================================================================

/// `acquire x --capacity 1 --holder P`, then `acquire x --holder P --timeout 6000` in the
/// background, which waits. Meanwhile `release x --holder P` must return at once with exit 0 (not
/// when the waiter gives up), and the waiter then gets the weight for P.
#[test]
fn releasing_for_a_holder_is_not_blocked_by_a_waiting_acquire_for_the_same_holder() {
    let dir = TestDir::new("xh-release-wait");
    let holder = Sleeper::spawn();
    let p = holder.pid();
    ok(&dir, &["acquire", "x", "--capacity", "1", "--holder", &p]);
    let mut waiter = Bg::spawn(&dir, &["acquire", "x", "--holder", &p, "--timeout", "6000"]);
    assert!(until_waiting(&dir, "x"), "the second acquire never waited");
    let mut release = Bg::spawn(&dir, &["release", "x", "--holder", &p]);
    let release_done = release.wait_until(Instant::now() + HANG);
    let release_took = release.elapsed;
    let release_err = release.stderr();
    let waiter_done = waiter.wait_until(Instant::now() + HANG);
    let waiter_err = waiter.stderr();
    let (value, holders, waiters) = shown(&dir, "x");
    let summary = format!(
        "release for P: {:?} after {release_took:.1?} {release_err:?}; the waiting acquire for \
         P: {:?} after {:.1?} {waiter_err:?}; then value {value}, holders {holders:?}, waiters \
         {waiters:?} (P = {p})",
        release.status, waiter.status, waiter.elapsed
    );
    eprintln!("release while waiting: {summary}");
    assert!(release_done, "the release hung: {summary}");
    assert_eq!(release.code(), Some(0), "the release failed: {summary}");
    assert!(
        release_took < Duration::from_millis(2500),
        "the release waited for the waiting acquire: {summary}"
    );
    assert!(waiter_done, "the waiting acquire hung: {summary}");
    assert_eq!(
        waiter.code(),
        Some(0),
        "the waiting acquire did not get the released weight: {summary}"
    );
    assert!(
        waiter.elapsed < Duration::from_millis(5000),
        "the waiting acquire got the weight only late: {summary}"
    );
    assert_eq!(
        (value, holders),
        (1, vec![(u64::from(holder.0.id()), 1)]),
        "{summary}"
    );
}

/// `acquire x --capacity 1 --holder P`, then `acquire x --holder P --timeout 8000` in the
/// background, which waits; P is killed. P's weight must come back (reap, then value 0 and no
/// holder) within 4 s, long before the waiting acquire gives up.
#[test]
fn a_dead_holders_weight_comes_back_while_an_acquire_waits_on_its_behalf() {
    let dir = TestDir::new("xh-dead-holder-wait");
    let mut holder = Sleeper::spawn();
    let p = holder.pid();
    ok(&dir, &["acquire", "x", "--capacity", "1", "--holder", &p]);
    let mut waiter = Bg::spawn(&dir, &["acquire", "x", "--holder", &p, "--timeout", "8000"]);
    assert!(until_waiting(&dir, "x"), "the second acquire never waited");
    holder.0.kill().expect("killing P");
    holder.0.wait().expect("reaping P");
    let killed = Instant::now();
    let mut last = None;
    let back = within(Duration::from_secs(4), || {
        let r = run(&dir, &["reap"]);
        let s = shown(&dir, "x");
        let done = r.code == 0 && s.0 == 0 && s.1.is_empty();
        last = Some((r.code, s));
        done
    });
    let took = killed.elapsed();
    let waiter_done = waiter.wait_until(Instant::now() + HANG);
    let summary = format!(
        "P ({p}) killed while an acquire for it waited; after {took:.1?}: (reap exit, (value, \
         holders, waiters)) = {last:?}; the waiting acquire: {:?} after {:.1?}",
        waiter.status, waiter.elapsed
    );
    eprintln!("dead holder, waiting acquire: {summary}");
    assert!(
        back,
        "the dead holder's weight did not come back: {summary}"
    );
    assert!(waiter_done, "the waiting acquire hung: {summary}");
    let (value, holders, _) = shown(&dir, "x");
    assert_eq!(
        (value, holders),
        (0, vec![]),
        "weight held for a dead holder after everything ended: {summary}"
    );
}

// =====================================================================================
// Bug 7: an acting CLI killed mid-operation was never repaired
// =====================================================================================

/// Run the CLI armed with the kill point `step`; it must die of SIGKILL there.
#[cfg(feature = "failpoints")]
fn killed_at(dir: &TestDir, args: &[&str], step: &str) {
    let what = format!("shmsem {}", args.join(" "));
    let mut c = Bg::spawn_env(dir, args, Some(step));
    assert!(c.wait_until(Instant::now() + HANG), "{what} hung");
    let status = c.status.expect("exited");
    let err = c.stderr();
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "{what} armed with {step} did not die there: {status:?} {err}"
    );
}

/// `reap`, then `show`: value, and the sum of the listed holders' weights.
#[cfg(feature = "failpoints")]
fn reaped_value_and_holders(dir: &TestDir, name: &str) -> (u64, u64, Vec<(u64, u64)>) {
    let r = run(dir, &["reap"]);
    assert_eq!(r.code, 0, "{r:?}");
    let (value, holders, _) = shown(dir, name);
    (value, holders.iter().map(|h| h.1).sum(), holders)
}

/// P holds 1 of `a` and 1 of `r` (capacity 3 each) through the CLI. `acquire a --holder P`
/// killed at `acquire:swapped` (the word has the weight, P's record not), and
/// `release r --holder P` killed at `release:swapped` (the word gave back, the record not): after
/// each, a `reap` must leave the value equal to the sum of the listed holders' weights.
#[cfg(feature = "failpoints")]
#[test]
fn a_cli_killed_between_its_swap_and_its_record_store_is_repaired_by_reap() {
    let dir = TestDir::new("xh-acting-killed");
    let holder = Sleeper::spawn();
    let p = holder.pid();
    for name in ["a", "r"] {
        ok(&dir, &["acquire", name, "--capacity", "3", "--holder", &p]);
    }
    killed_at(&dir, &["acquire", "a", "--holder", &p], "acquire:swapped");
    let after_acquire = reaped_value_and_holders(&dir, "a");
    killed_at(&dir, &["release", "r", "--holder", &p], "release:swapped");
    let after_release = reaped_value_and_holders(&dir, "r");
    let summary = format!(
        "(value, holders' sum, holders) after a reap: acquire killed at acquire:swapped \
         {after_acquire:?}; release killed at release:swapped {after_release:?} (P = {p})"
    );
    eprintln!("acting CLI killed: {summary}");
    assert_eq!(
        after_acquire.0, after_acquire.1,
        "value and holders disagree after the killed acquire and a reap: {summary}"
    );
    assert_eq!(
        after_release.0, after_release.1,
        "value and holders disagree after the killed release and a reap: {summary}"
    );
}
