//! Regression tests for the exclusion holes of DESIGN §3 (*Exclusion holes that cannot
//! happen*): bugs 1, 3, 4, 5, 6, 7 and 8, each replayed as it was found, asserting the fixed
//! behaviour.
//!
//! | bug | tests |
//! |---|---|
//! | 1 | [`a_non_forced_remove_never_removes_a_semaphore_while_a_permit_is_held`] |
//! | 3 | [`a_forked_child_can_neither_release_nor_retake_its_parents_entered_weight`], |
//! |   | [`a_forked_child_outliving_its_killed_parent_leaves_the_namespace_usable`] |
//! | 4 | [`acquiring_for_a_holder_never_hangs_while_other_processes_register`] |
//! | 5 | [`releasing_for_a_holder_is_not_blocked_by_a_waiting_acquire_for_the_same_holder`], |
//! |   | [`a_dead_holders_weight_comes_back_while_an_acquire_waits_on_its_behalf`] |
//! | 6 | [`an_old_permit_cannot_touch_a_semaphore_removed_and_recreated_32768_times`] |
//! | 7 | [`a_cli_killed_between_its_swap_and_its_record_store_is_repaired_by_reap`] |
//! | 8 | [`a_killed_waiter_does_not_keep_an_auto_semaphore_alive`] |
//!
//! As in the other multi-process tests, library users are child processes that re-execute this
//! test binary in a role (see `common`), the CLI is the built `shmsem` binary, every test has its
//! own `SHMSEM_DIR`, and kills are real SIGKILLs. The harness process never calls the library.
//! Races are looped a bounded number of times (or for a bounded time) so that every test ends
//! within about ten seconds whatever the engine does.

mod common;

use std::{
    io::Read,
    os::unix::process::ExitStatusExt,
    process::{Child, ExitStatus, Stdio},
    sync::atomic::Ordering::SeqCst,
    thread,
    time::{Duration, Instant},
};

use common::{
    Kid, Spawn, TestDir, Witness, arg, arg_u32,
    cli::{Sleeper, command, names, ok, parties, run, show},
    mp::{CHILD_TIMEOUT, SIGNAL_TIMEOUT},
    report, role,
    roles::{kind, open_arg, role_hold},
    work_dir,
};
use shmsem::{Error, Semaphore};

// =====================================================================================
// The child side
// =====================================================================================

/// The entry point of every child process. In the harness itself (no role) it does nothing.
#[test]
fn child_role() {
    let Some(role) = role() else { return };
    match role.as_str() {
        "cycler" => role_cycler(),
        "remover" => role_remover(),
        "forker" => role_forker(),
        "old_holder" => role_old_holder(),
        "recreator" => role_recreator(),
        "waiter" => role_waiter(),
        "actor" => role_actor(),
        "registrar" => role_registrar(),
        "hold" => role_hold(SIGNAL_TIMEOUT),
        "attempts" => common::mp::role_attempts(),
        other => panic!("unknown role {other:?}"),
    }
}

/// Whether the file `work/name` exists; `true` also once the work directory is gone (the test
/// ended), so that no child outlives its test for long.
fn signalled(name: &str) -> bool {
    let dir = work_dir();
    !dir.exists() || dir.join(name).exists()
}

/// Bug 1, a holder: acquire weight 1 of the auto semaphore `name` with a timeout, again and
/// again until `stop`. While holding it checks the witness (never two inside) and, just before
/// giving back, that its handle's semaphore is still the live one: a `Removed` there means a
/// non-forced remove succeeded while this permit was held.
fn role_cycler() {
    let sem = open_arg();
    let witness = Witness::open(&work_dir().join("witness"));
    let (mut ops, mut seen_two, mut removed_while_held, mut errors) = (0u64, 0u64, 0u64, 0u64);
    let deadline = Instant::now() + CHILD_TIMEOUT;
    report("started", std::process::id());
    while !signalled("stop") && Instant::now() < deadline {
        match sem.acquire_timeout(1, Duration::from_secs(2)) {
            Ok(permit) => {
                let inside = witness.inside().fetch_add(1, SeqCst) + 1;
                witness.max_inside().fetch_max(inside, SeqCst);
                witness.entries().fetch_add(1, SeqCst);
                if inside > 1 {
                    witness.violations().fetch_add(1, SeqCst);
                    seen_two += 1;
                }
                for _ in 0..300 {
                    std::hint::spin_loop();
                }
                witness.inside().fetch_sub(1, SeqCst);
                match sem.info() {
                    Ok(_) => {}
                    Err(Error::Removed { .. }) => removed_while_held += 1,
                    Err(e) => {
                        errors += 1;
                        report("error", format!("info while holding: {e:?}"));
                    }
                }
                drop(permit);
                ops += 1;
            }
            Err(e) => {
                errors += 1;
                report("error", format!("acquire: {e:?}"));
            }
        }
    }
    report("ops", ops);
    report("seen_two", seen_two);
    report("removed_while_held", removed_while_held);
    report("errors", errors);
}

/// Bug 1, the remover: `open_existing(name)?.remove(false)` again and again until `stop`,
/// counting successful removals and refusals.
fn role_remover() {
    let name = arg("name");
    let witness = Witness::open(&work_dir().join("witness"));
    let (mut removed, mut in_use, mut absent, mut errors) = (0u64, 0u64, 0u64, 0u64);
    // Informational only: someone may legitimately re-create and acquire between the removal and
    // this look.
    let mut inside_after = 0u64;
    let deadline = Instant::now() + CHILD_TIMEOUT;
    report("started", std::process::id());
    while !signalled("stop") && Instant::now() < deadline {
        match Semaphore::options().open_existing(&name) {
            Ok(sem) => match sem.remove(false) {
                Ok(()) => {
                    removed += 1;
                    if witness.inside().load(SeqCst) != 0 {
                        inside_after += 1;
                    }
                }
                Err(Error::InUse { .. }) => in_use += 1,
                Err(Error::NotFound { .. } | Error::Removed { .. }) => absent += 1,
                Err(e) => {
                    errors += 1;
                    report("error", format!("remove: {e:?}"));
                }
            },
            Err(Error::NotFound { .. }) => absent += 1,
            Err(e) => {
                errors += 1;
                report("error", format!("open_existing: {e:?}"));
            }
        }
    }
    report("removed", removed);
    report("in_use", in_use);
    report("absent", absent);
    report("inside_after", inside_after);
    report("errors", errors);
}

/// Write `key value` to stdout from a forked child, with one `write(2)` and no lock.
fn report_raw(key: &str, value: impl std::fmt::Display) {
    let line = format!("\n{}{key} {value}\n", common::MARK);
    // SAFETY: writing an initialised buffer of its own length to descriptor 1.
    unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
}

/// Bug 3: enter weight 1 of the persistent capacity-1 semaphore `name`, then `fork`. The child
/// only calls the library: the operations of `child_ops` (`exit`: `exit(1)`; `try`:
/// `try_acquire(1)`, forgotten if granted), each reported; then it reports `child_done` and
/// waits for the signal `child_go` before `_exit(0)`. The parent reports `child_pid`, waits for
/// `parent_go`, reaps its child and ends (its entered weight comes back when it dies).
fn role_forker() {
    let name = arg("name");
    let sem = Semaphore::options()
        .capacity(1)
        .persistent()
        .open(&name)
        .unwrap_or_else(|e| panic!("opening {name}: {e}"));
    sem.enter(1).expect("entering weight 1");
    report("entered", sem.info().expect("info").value);
    let ops = arg("child_ops");
    // SAFETY: the child only calls the library, formats, writes to stdout, sleeps and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        for op in ops.split(',') {
            match op {
                "exit" => report_raw("child_exit", kind(&sem.exit(1))),
                "try" => {
                    let r = sem.try_acquire(1);
                    report_raw("child_try", kind(&r));
                    if let Ok(p) = r {
                        p.forget();
                    }
                }
                other => report_raw("child_error", format!("unknown op {other}")),
            }
        }
        report_raw("child_value", sem.info().map_or(u32::MAX, |i| i.value));
        report_raw("child_done", std::process::id());
        let deadline = Instant::now() + SIGNAL_TIMEOUT;
        while !signalled("child_go") && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        // SAFETY: ends the forked child without running the parent's exit handlers.
        unsafe { libc::_exit(0) };
    }
    report("child_pid", pid);
    let deadline = Instant::now() + SIGNAL_TIMEOUT;
    while !signalled("parent_go") && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    report("child_reaped", status);
}

/// Bug 4, the actor: fork `holders` children that only wait for this thread to end (live
/// processes to act for), then, in each of `rounds` fresh namespaces `n{round}`: create `x`,
/// signal `ready{round}`, wait for `go{round}`, and `acquire_for` each child once (weight 1 of
/// plenty, timeout 5 s), 1 ms apart; then signal `acted{round}`.
fn role_actor() {
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
fn role_registrar() {
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

/// Bug 6, handle A: take weight 1 of the persistent semaphore `name`, report `held`, drop the
/// permit at the signal `drop`, and live on until the signal `exit` (a dead process's records
/// would be recounted, which would hide what its drop did).
fn role_old_holder() {
    let name = arg("name");
    let sem = Semaphore::options()
        .capacity(1)
        .persistent()
        .open(&name)
        .unwrap_or_else(|e| panic!("opening {name}: {e}"));
    let permit = sem.try_acquire(1).expect("the first holder takes weight 1");
    report("held", std::process::id());
    common::wait_for_signal("drop", SIGNAL_TIMEOUT);
    drop(permit);
    report("dropped", mono_ms());
    common::wait_for_signal("exit", SIGNAL_TIMEOUT);
}

fn mono_ms() -> u64 {
    common::mono_ns() / 1_000_000
}

/// Bug 6, process B: `remove(true)` and re-create the persistent semaphore `name` `cycles`
/// times, then take weight 1 of the new one and hold it until the signal `release`.
fn role_recreator() {
    let name = arg("name");
    let cycles = arg_u32("cycles", 32_768);
    let opts = Semaphore::options().capacity(1).persistent();
    let mut sem = opts
        .open(&name)
        .unwrap_or_else(|e| panic!("opening {name}: {e}"));
    let t = Instant::now();
    for i in 0..cycles {
        sem.remove(true)
            .unwrap_or_else(|e| panic!("cycle {i}: remove(true): {e}"));
        sem = opts
            .open(&name)
            .unwrap_or_else(|e| panic!("cycle {i}: re-creating {name}: {e}"));
    }
    report("cycled", cycles);
    report("cycle_ms", t.elapsed().as_millis());
    let r = sem.try_acquire(1);
    report("take", kind(&r));
    report("value", sem.info().map_or(u32::MAX, |i| i.value));
    common::wait_for_signal("release", SIGNAL_TIMEOUT);
    drop(r);
    report("released", mono_ms());
}

/// Bug 8: wait for weight 1 of `name` (auto, `idle_ms`) for up to a minute; reports `waiting`
/// first. Killed while it waits.
fn role_waiter() {
    let sem = open_arg();
    report("waiting", std::process::id());
    let r = sem.acquire_timeout(1, Duration::from_secs(60));
    report("result", kind(&r));
}

// =====================================================================================
// Parent-side helpers
// =====================================================================================

/// A CLI process started in the background, with a deadline.
struct Bg {
    child: Child,
    started: Instant,
    status: Option<ExitStatus>,
    elapsed: Duration,
}

impl Bg {
    fn spawn(dir: &TestDir, args: &[&str]) -> Bg {
        Bg::spawn_env(dir, args, None)
    }

    fn spawn_env(dir: &TestDir, args: &[&str], failpoint: Option<&str>) -> Bg {
        let mut c = command(dir, args);
        c.env_remove(shmsem::failpoint::ENV)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(fp) = failpoint {
            c.env(shmsem::failpoint::ENV, fp);
        }
        let child = c.spawn().expect("spawning shmsem");
        Bg {
            child,
            started: Instant::now(),
            status: None,
            elapsed: Duration::ZERO,
        }
    }

    /// Whether it has exited (recording when).
    fn poll(&mut self) -> bool {
        if self.status.is_some() {
            return true;
        }
        match self.child.try_wait().expect("try_wait") {
            Some(s) => {
                self.status = Some(s);
                self.elapsed = self.started.elapsed();
                true
            }
            None => false,
        }
    }

    /// Wait until it exits or `deadline`; `false` if it was still running then (it is then
    /// SIGKILLed and reaped).
    fn wait_until(&mut self, deadline: Instant) -> bool {
        loop {
            if self.poll() {
                return true;
            }
            if Instant::now() >= deadline {
                self.kill();
                return false;
            }
            thread::sleep(Duration::from_millis(1));
        }
    }

    fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn stderr(&mut self) -> String {
        let mut s = String::new();
        if self.status.is_some()
            && let Some(mut e) = self.child.stderr.take()
        {
            let _ = e.read_to_string(&mut s);
        }
        s
    }

    fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `show NAME --json` through the CLI: value, holders and waiters as `(pid, weight)` lists.
type Shown = (u64, Vec<(u64, u64)>, Vec<(u64, u64)>);

fn shown(dir: &TestDir, name: &str) -> Shown {
    let v = show(dir, name);
    (
        v["value"].as_u64().expect("value is a number"),
        parties(&v, "holders"),
        parties(&v, "waiters"),
    )
}

/// Poll `cond` every 10 ms for at most `limit`; whether it came true.
fn within(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// SIGKILL a process by pid if it still exists (a grandchild the test cannot reap itself).
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.0 > 0 {
            // SAFETY: sending a signal to a pid.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

// =====================================================================================
// Bug 1: a non-forced remove removed a held semaphore
// =====================================================================================

/// How long the holders and the remover race.
const REMOVE_RACE: Duration = Duration::from_secs(4);

/// Two processes loop `acquire_timeout` on a capacity-1 auto semaphore while a third loops
/// `open_existing(..).remove(false)`. The witness must never see two holders, and no holder may
/// find, while it holds its permit, that its semaphore was removed: every successful non-forced
/// removal happened while nobody held.
#[test]
fn a_non_forced_remove_never_removes_a_semaphore_while_a_permit_is_held() {
    let dir = TestDir::new("xh-remove");
    Witness::create(&dir.work_file("witness"));
    // Create it first, so the remover has something to remove from the start.
    ok(&dir, &["create", "rr"]);
    let cycler = |i: u32| {
        Spawn::new(&dir, "cycler")
            .label(format!("holder {i}"))
            .arg("name", "rr")
            .arg("cap", 1)
            .spawn()
    };
    let mut holders = [cycler(0), cycler(1)];
    let mut remover = Spawn::new(&dir, "remover").arg("name", "rr").spawn();
    for k in holders.iter_mut().chain([&mut remover]) {
        k.expect("started", CHILD_TIMEOUT);
    }
    thread::sleep(REMOVE_RACE);
    dir.signal("stop");
    let r = remover.success(CHILD_TIMEOUT);
    let hs: Vec<_> = holders
        .iter_mut()
        .map(|h| h.success(CHILD_TIMEOUT))
        .collect();
    let w = Witness::open(&dir.work_file("witness"));
    let ops: u64 = hs.iter().map(|h| h.u64("ops")).sum();
    let removed_while_held: u64 = hs.iter().map(|h| h.u64("removed_while_held")).sum();
    let seen_two: u64 = hs.iter().map(|h| h.u64("seen_two")).sum();
    let summary = format!(
        "{ops} grants, witness max inside {} ({} violations), {} successful removals ({} in use, \
         {} absent, {} with someone inside right after), {removed_while_held} permits found \
         their semaphore removed while held, holder errors {:?} (last: {:?}), remover errors {} \
         (last: {:?})",
        w.max_inside().load(SeqCst),
        w.violations().load(SeqCst),
        r.u64("removed"),
        r.u64("in_use"),
        r.u64("absent"),
        r.u64("inside_after"),
        hs.iter().map(|h| h.u64("errors")).collect::<Vec<_>>(),
        hs.iter().map(|h| h.get("error")).collect::<Vec<_>>(),
        r.u64("errors"),
        r.get("error"),
    );
    eprintln!("remove race: {summary}");
    assert!(
        ops > 100 && r.u64("removed") > 0,
        "the race did not run: {summary}"
    );
    assert_eq!(
        removed_while_held, 0,
        "a non-forced remove succeeded while a permit was held: {summary}"
    );
    assert_eq!(
        (w.violations().load(SeqCst), seen_two),
        (0, 0),
        "two holders of a capacity-1 semaphore at once: {summary}"
    );
}

// =====================================================================================
// Bug 3: after fork, the child could release its parent's entered weight
// =====================================================================================

/// The parent enters weight 1 of a capacity-1 semaphore and forks. The child's `exit(1)` must be
/// `NotHeld` and its `try_acquire(1)` `WouldBlock`; after the child has exited, the parent still
/// holds: value 1, held by the parent, and a third process's try is `WouldBlock`.
#[test]
fn a_forked_child_can_neither_release_nor_retake_its_parents_entered_weight() {
    let dir = TestDir::new("xh-fork");
    let mut parent = Spawn::new(&dir, "forker")
        .arg("name", "f")
        .arg("child_ops", "exit,try")
        .spawn();
    let child_pid: i32 = parent
        .expect("child_pid", CHILD_TIMEOUT)
        .parse()
        .expect("pid");
    let _reap_child = KillOnDrop(child_pid);
    let child_exit = parent.expect("child_exit", CHILD_TIMEOUT);
    let child_try = parent.expect("child_try", CHILD_TIMEOUT);
    let child_value = parent.expect("child_value", CHILD_TIMEOUT);
    parent.expect("child_done", CHILD_TIMEOUT);
    dir.signal("child_go");
    assert!(
        within(Duration::from_secs(10), || !alive(child_pid) || {
            // A zombie until the parent reaps it: look at its state.
            std::fs::read_to_string(format!("/proc/{child_pid}/stat"))
                .map_or(true, |s| s.contains(") Z "))
        }),
        "the forked child did not exit"
    );
    let (value, holders, _) = shown(&dir, "f");
    let third = common::mp::attempts(&dir, "f", 1, 1, "try")
        .spawn()
        .success(CHILD_TIMEOUT);
    let summary = format!(
        "child exit(1): {child_exit}, child try_acquire(1): {child_try} (value then \
         {child_value}); after the child exited: value {value}, holders {holders:?} (parent \
         {}), a third process's try: {}",
        parent.pid(),
        third.req("result0")
    );
    eprintln!("fork: {summary}");
    assert_eq!(
        child_exit, "NotHeld",
        "the child released its parent's entered weight: {summary}"
    );
    assert_eq!(
        child_try, "WouldBlock",
        "the child was granted while its parent holds: {summary}"
    );
    assert_eq!(
        (value, holders.as_slice()),
        (1, &[(u64::from(parent.pid()), 1)][..]),
        "the parent no longer holds alone: {summary}"
    );
    assert_eq!(
        third.req("result0"),
        "WouldBlock",
        "a third process was granted while the parent holds: {summary}"
    );
    dir.signal("parent_go");
    parent.success(CHILD_TIMEOUT);
}

/// The parent enters weight 1 of a capacity-1 semaphore and forks; the child tries `exit(1)`
/// and lives on. The parent is SIGKILLed while the child lives: a reap from another process must
/// work (no `Corrupt`), the value must come back to 0, and the semaphore must be usable by a
/// third process.
#[test]
fn a_forked_child_outliving_its_killed_parent_leaves_the_namespace_usable() {
    let dir = TestDir::new("xh-fork-kill");
    let mut parent = Spawn::new(&dir, "forker")
        .arg("name", "f")
        .arg("child_ops", "exit")
        .spawn();
    let child_pid: i32 = parent
        .expect("child_pid", CHILD_TIMEOUT)
        .parse()
        .expect("pid");
    let _kill_child = KillOnDrop(child_pid);
    let child_exit = parent.expect("child_exit", CHILD_TIMEOUT);
    parent.expect("child_done", CHILD_TIMEOUT);
    let status = parent.sigkill();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(alive(child_pid), "the forked child must outlive its parent");
    let reap = run(&dir, &["reap", "--json"]);
    let ls = run(&dir, &["ls", "--json"]);
    let show_f = run(&dir, &["show", "f", "--json"]);
    let third = common::mp::attempts(&dir, "f", 1, 1, "try")
        .spawn()
        .finish(CHILD_TIMEOUT)
        .1;
    let summary = format!(
        "child exit(1): {child_exit}; parent killed, child alive; reap: {} {}{}; ls: {} {}; \
         show: {} {}{}; a third process's try: {:?}",
        reap.code,
        reap.stdout.trim(),
        reap.stderr.trim(),
        ls.code,
        ls.stderr.trim(),
        show_f.code,
        show_f.stdout.trim(),
        show_f.stderr.trim(),
        third.get("detail0"),
    );
    eprintln!("fork, parent killed: {summary}");
    assert_eq!(reap.code, 0, "reap failed while the child lives: {summary}");
    assert_eq!(ls.code, 0, "ls failed while the child lives: {summary}");
    assert_eq!(
        show_f.code, 0,
        "show failed while the child lives: {summary}"
    );
    let v = show_f.json();
    assert_eq!(
        (v["value"].as_u64(), parties(&v, "holders")),
        (Some(0), vec![]),
        "the dead parent's weight did not come back: {summary}"
    );
    assert_eq!(
        third.get("result0"),
        Some("ok"),
        "a third process could not take the free weight: {summary}"
    );
    dir.signal("child_go");
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

/// Wait until `show` lists a waiter of `name`; whether it did within 10 s.
fn until_waiting(dir: &TestDir, name: &str) -> bool {
    within(Duration::from_secs(10), || !shown(dir, name).2.is_empty())
}

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
// Bug 6: the 16-bit generation wrapped
// =====================================================================================

/// Process A holds weight 1 of persistent `r` (capacity 1). Process B removes it with force and
/// creates it again 32,768 times (each cycle moves a 16-bit generation on by 2, so it comes back
/// to A's), then takes weight 1 of the new `r`. A drops its old permit and lives on: the new
/// value must stay 1, held by B, and a third process's try must be `WouldBlock`.
#[test]
fn an_old_permit_cannot_touch_a_semaphore_removed_and_recreated_32768_times() {
    let dir = TestDir::new("xh-wrap");
    let mut a = Spawn::new(&dir, "old_holder").arg("name", "r").spawn();
    a.expect("held", CHILD_TIMEOUT);
    let mut b = Spawn::new(&dir, "recreator")
        .arg("name", "r")
        .arg("cycles", 32_768)
        .spawn();
    let take = b.expect("take", CHILD_TIMEOUT);
    let cycle_ms = b.expect("cycle_ms", CHILD_TIMEOUT);
    assert_eq!(take, "ok", "B could not take the new semaphore");
    dir.signal("drop");
    a.expect("dropped", CHILD_TIMEOUT);
    // A lives on: nothing of it is reclaimed.
    let (value, holders, _) = shown(&dir, "r");
    let third = common::mp::attempts(&dir, "r", 1, 1, "try")
        .spawn()
        .success(CHILD_TIMEOUT);
    let summary = format!(
        "32768 cycles in {cycle_ms} ms; after A's old permit was dropped: value {value}, holders \
         {holders:?} (B = {}), a third process's try: {}",
        b.pid(),
        third.req("result0")
    );
    eprintln!("generation wrap: {summary}");
    assert_eq!(
        (value, holders.as_slice()),
        (1, &[(u64::from(b.pid()), 1)][..]),
        "A's old permit changed the new semaphore: {summary}"
    );
    assert_eq!(
        third.req("result0"),
        "WouldBlock",
        "a third process was granted while B holds: {summary}"
    );
    dir.signal("release");
    dir.signal("exit");
    b.success(CHILD_TIMEOUT);
    a.success(CHILD_TIMEOUT);
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
