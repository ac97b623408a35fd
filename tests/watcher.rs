//! Waiting that costs nothing while idle (DESIGN §6, the watcher): a blocked waiter sleeps with
//! no timer, one process per namespace watches for deaths, and the role passes on when the
//! watcher dies.
//!
//! Library users are child processes re-executing this test binary in a role (see `common`),
//! each test has its own `SHMSEM_DIR`, and kills are real SIGKILLs. After a kill, nothing but the
//! children touches the namespace: a CLI call opens it, and every open reclaims, which would do
//! the watcher's job for it.

mod common;

use std::{thread, time::Duration};

use common::{
    Kid, Spawn, TestDir,
    cli::{eventually, ok},
    life::{CHILD_TIMEOUT, SIGNAL_TIMEOUT, role_wait},
    report,
    roles::{open_arg, role_hold},
    wait_for_signal,
};
use shmsem::Semaphore;

/// How long a waiter may take to get weight that was freed (a release, or a holder's death):
/// the figures are milliseconds; this is for a loaded machine.
const PROMPTLY: Duration = Duration::from_secs(10);

crate::child_roles! {
    "hold" => role_hold(SIGNAL_TIMEOUT), "wait" => role_wait(),
    "hold_then_wait" => role_hold_then_wait(), "release_and_stay" => role_release_and_stay(),
    "forking_watcher" => role_forking_watcher(),
}

/// Take weight 1 of `name` at once, report `held`, then wait (up to 60 s) for weight 1 of
/// `then`, in the same namespace.
fn role_hold_then_wait() {
    let sem = open_arg();
    let _held = sem.try_acquire(1).expect("the first semaphore is free");
    report("held", std::process::id());
    let then = Semaphore::options()
        .namespace(common::arg("ns"))
        .open(&common::arg("then"))
        .expect("opening the second semaphore");
    let r = then.acquire_timeout(1, Duration::from_secs(60));
    report("second", if r.is_ok() { "ok" } else { "failed" });
    wait_for_signal("done", SIGNAL_TIMEOUT);
}

/// Take weight 1 of `name` at once, report `held`; when the file `release` appears, give it
/// back (reporting `release_ns` just before and `released` after), then stay alive until `done`: whoever gets the weight
/// was woken by the release, not by this process's death.
fn role_release_and_stay() {
    let sem = open_arg();
    let permit = sem.try_acquire(1).expect("the semaphore is free");
    report("held", std::process::id());
    wait_for_signal(&common::arg("release"), SIGNAL_TIMEOUT);
    report("release_ns", common::mono_ns());
    drop(permit);
    report("released", common::mono_ns());
    wait_for_signal("done", SIGNAL_TIMEOUT);
}

/// Hold `name` and wait for it on a second thread, so that this process watches the namespace;
/// at the signal `fork`, fork `forks` times, 20 ms apart. Each child reaps the namespace (which
/// takes the library's locks) and `_exit`s; a child still running 5 s later is SIGKILLed and
/// counted in `hung`.
fn role_forking_watcher() {
    let sem = open_arg();
    let held = sem.try_acquire(1).expect("the semaphore is free");
    let waiter = {
        let sem = sem.clone();
        thread::spawn(move || {
            let _ = sem.acquire_timeout(1, Duration::from_secs(120));
        })
    };
    report("waiting", std::process::id());
    wait_for_signal("fork", SIGNAL_TIMEOUT);
    let forks = common::arg_u32("forks", 30);
    let reaper =
        shmsem::Namespace::new(shmsem::Scope::Local, common::arg("ns")).expect("namespace");
    let mut hung = 0;
    for _ in 0..forks {
        // SAFETY: the child only calls the library and `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = if reaper.reap().is_ok() { 0 } else { 1 };
            // SAFETY: ends the forked child without running the parent's exit handlers.
            unsafe { libc::_exit(code) };
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut status = 0;
        // SAFETY: polling our own child.
        while unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == 0 {
            if std::time::Instant::now() >= deadline {
                hung += 1;
                // SAFETY: killing and reaping our own child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                break;
            }
            thread::sleep(Duration::from_millis(1));
        }
        thread::sleep(Duration::from_millis(20));
    }
    report("hung", hung);
    drop(held);
    waiter.join().expect("the waiting thread");
}

/// A child in `role`, `label` in messages, on `name` in namespace `w`.
fn on_w<'a>(dir: &'a TestDir, role: &str, label: &str, name: &str) -> Spawn<'a> {
    Spawn::new(dir, role)
        .label(label)
        .arg("ns", "w")
        .arg("name", name)
}

/// A waiter for `name` in namespace `w`, waiting at most `timeout`.
fn waiter(dir: &TestDir, label: &str, name: &str, timeout: Duration) -> Kid {
    on_w(dir, "wait", label, name)
        .arg("timeout_ms", timeout.as_millis())
        .arg("done", "done")
        .spawn()
}

/// The waiters `show` lists for `name` (opening the namespace from the CLI: only before kills).
fn waiters_of(dir: &TestDir, name: &str) -> usize {
    show_in(dir, name)["waiters"].as_array().map_or(0, Vec::len)
}

fn show_in(dir: &TestDir, name: &str) -> serde_json::Value {
    ok(dir, &["--namespace", "w", "show", name, "--json"]).json()
}

/// A process holding weight 1 of `t` until the signal `release-t`.
fn holding_t(dir: &TestDir) -> Kid {
    on_w(dir, "hold", "t holder", "t")
        .arg("release", "release-t")
        .spawn_until("held", CHILD_TIMEOUT)
}

/// A waiter on `name`, blocked. The first waiter of the namespace is the watcher; with a watcher
/// there already, it is not.
fn blocked_on(dir: &TestDir, name: &str) -> Kid {
    let label = format!("{name} waiter");
    let mut kid = waiter(dir, &label, name, Duration::from_secs(60));
    kid.expect("waiting_ns", CHILD_TIMEOUT);
    eventually(&format!("the {label} is blocked"), || {
        waiters_of(dir, name) == 1
    });
    kid
}

/// Let every waiter and holder go (`done`, `release-t`), and expect each of `kids` to succeed.
fn let_go(dir: &TestDir, kids: &mut [&mut Kid]) {
    dir.signal("done");
    dir.signal("release-t");
    for kid in kids {
        kid.success(CHILD_TIMEOUT);
    }
}

/// The scene of the release tests, in order: `t` held until `release-t`, `s` held by
/// `s_holder` (a role that reports `held` and gives `s` back at `release-s`), the watcher blocked
/// on `t`, and a waiter blocked on `s` that is not the watcher, given long enough for any bounded
/// sleep it might still take to show.
struct Scene {
    t_holder: Kid,
    s_holder: Kid,
    watcher: Kid,
    s_waiter: Kid,
}

impl Scene {
    fn set(dir: &TestDir, s_holder: Spawn) -> Scene {
        let t_holder = holding_t(dir);
        let s_holder = s_holder
            .arg("release", "release-s")
            .spawn_until("held", CHILD_TIMEOUT);
        // The first waiter of the namespace: the watcher.
        let watcher = blocked_on(dir, "t");
        let s_waiter = blocked_on(dir, "s");
        thread::sleep(Duration::from_millis(300));
        Scene {
            t_holder,
            s_holder,
            watcher,
            s_waiter,
        }
    }
}

/// A waiter on `s` that is not the watcher (another process, waiting on `t` since before, is)
/// sleeps with no timer, so only a release can wake it: the release in a third process does,
/// at once.
#[test]
fn a_waiter_that_is_not_the_watcher_is_woken_by_a_release_in_another_process() {
    let dir = TestDir::new("watch-release");
    let Scene {
        mut t_holder,
        mut s_holder,
        mut watcher,
        s_waiter: mut w,
    } = Scene::set(&dir, on_w(&dir, "release_and_stay", "s holder", "s"));

    dir.signal("release-s");
    // Stamped just before the release: the waiter may well have the weight before the holder
    // stamps anything after it.
    let release = s_holder.expect("release_ns", CHILD_TIMEOUT);
    let acquired = w.expect("acquired_ns", PROMPTLY);
    let waited = acquired.parse::<u64>().unwrap() - release.parse::<u64>().unwrap();
    assert!(
        waited < PROMPTLY.as_nanos() as u64,
        "woken {waited} ns after the release began"
    );
    let_go(
        &dir,
        &mut [&mut t_holder, &mut s_holder, &mut watcher, &mut w],
    );
}

/// The watcher dies (SIGKILL) while it holds `s`, for which another process waits with no timer:
/// the kernel hands the watch lock to the waiter's watch thread, which reclaims the dead
/// watcher's weight, and the waiter gets `s`. (The watcher's slot lock may outlive its watch
/// lock by a moment as the dying process closes its descriptors: the new watcher must look
/// again rather than conclude from its first reclaim.)
#[test]
fn killing_the_watcher_hands_the_role_on_and_its_weight_comes_back() {
    for round in 0..3 {
        let dir = TestDir::new(&format!("watch-kill-{round}"));
        let mut t_holder = holding_t(&dir);
        // Holds s, then waits on t: the first waiter, so the watcher.
        let mut first = on_w(&dir, "hold_then_wait", "watcher", "s")
            .arg("then", "t")
            .spawn_until("held", CHILD_TIMEOUT);
        eventually("the watcher is blocked on t", || waiters_of(&dir, "t") == 1);
        let mut w = blocked_on(&dir, "s");

        first.sigkill();
        // No CLI from here on: its open would reclaim in the watcher's place.
        let got = w.wait_for("acquired_ns", PROMPTLY);
        assert!(
            got.is_some(),
            "round {round}: the waiter did not get s within {PROMPTLY:?}: {:?}",
            w.reports()
        );
        let_go(&dir, &mut [&mut t_holder, &mut w]);
    }
}

/// 100 processes blocked on a held semaphore sleep: in 2 s they make fewer than 200 context
/// switches in all, every thread counted (one of them runs the watch thread, which looks at the
/// slots every `WATCH_PERIOD`); waiters that each woke every 25 ms made about 8,000.
#[test]
fn a_hundred_blocked_waiters_barely_run() {
    let dir = TestDir::new("watch-idle");
    let mut holder = on_w(&dir, "hold", "holder", "s")
        .arg("release", "release")
        .spawn_until("held", CHILD_TIMEOUT);
    let mut waiters: Vec<Kid> = (0..100)
        .map(|i| waiter(&dir, &format!("waiter {i}"), "s", Duration::from_secs(120)))
        .collect();
    for w in &mut waiters {
        w.expect("waiting_ns", CHILD_TIMEOUT);
    }
    eventually("all 100 are blocked", || waiters_of(&dir, "s") == 100);
    // Let the last of them settle into their sleeps.
    thread::sleep(Duration::from_millis(500));
    let pids: Vec<u32> = waiters.iter().map(Kid::pid).collect();
    let before = switches(&pids);
    thread::sleep(Duration::from_secs(2));
    let after = switches(&pids);
    let made = after - before;
    assert!(
        made < 200,
        "100 blocked waiters made {made} context switches in 2 s"
    );

    dir.signal("release");
    holder.success(CHILD_TIMEOUT);
    // Each gets the semaphore in turn (and keeps it until `done`): only the first can now.
    dir.signal("done");
    for w in &mut waiters {
        w.sigkill();
    }
}

/// Voluntary and involuntary context switches of every thread of `pids`, summed.
fn switches(pids: &[u32]) -> u64 {
    let mut total = 0;
    for pid in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            panic!("waiter {pid} is gone");
        };
        for task in tasks.flatten() {
            let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
                continue; // a thread that just ended
            };
            total += status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    total
}

/// A process whose watch thread reclaims again and again forks: every child can use the library.
/// A dead holder's weight cannot be recounted while a stopped process (SIGSTOP at a kill point)
/// sits in the middle of an acquire on the same semaphore, so the watcher retries every period,
/// each time waiting about 50 ms for the stopped acquire inside its reclaim. A fork in that
/// window used to copy the reclaim's lock into the child, locked forever: its reap hung.
#[cfg(feature = "failpoints")]
#[test]
fn a_fork_while_the_watcher_reclaims_leaves_the_child_every_lock_free() {
    let dir = TestDir::new("watch-fork");
    let z_holder = |label| {
        on_w(&dir, "hold", label, "z")
            .arg("cap", 3)
            .arg("release", "never")
    };
    let mut dead = z_holder("dead holder").spawn_until("held", CHILD_TIMEOUT);
    let mut stopped = z_holder("stopped acquirer")
        .env(shmsem::failpoint::ENV, "acquire:marked/stop")
        .spawn();
    eventually("the acquirer is stopped mid-acquire", || {
        common::is_stopped(stopped.pid())
    });
    dead.sigkill();
    let mut forker = on_w(&dir, "forking_watcher", "forking watcher", "y")
        .arg("forks", 30)
        .spawn_until("waiting", CHILD_TIMEOUT);
    thread::sleep(Duration::from_millis(300));
    dir.signal("fork");
    let hung = forker.expect("hung", Duration::from_secs(300));
    forker.success(CHILD_TIMEOUT);
    stopped.sigkill();
    assert_eq!(hung, "0", "forked children hung in the library");
}

/// A releaser SIGKILLed between crediting the word and waking (the `release:swapped` kill
/// point) strands nobody: the waiter on `s`, asleep with no timer and not the watcher (a waiter
/// on `t` is), gets the weight once the watcher has reclaimed the dead releaser, which wakes every
/// waiter on what it touched.
#[cfg(feature = "failpoints")]
#[test]
fn a_releaser_killed_between_crediting_and_waking_strands_no_sleeper() {
    let dir = TestDir::new("watch-dead-releaser");
    let dying =
        on_w(&dir, "hold", "dying releaser", "s").env(shmsem::failpoint::ENV, "release:swapped");
    let Scene {
        mut t_holder,
        s_holder: mut releaser,
        mut watcher,
        s_waiter: mut w,
    } = Scene::set(&dir, dying);

    dir.signal("release-s");
    let status = releaser.wait_exit(CHILD_TIMEOUT);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL),
        "the releaser did not die at release:swapped: {}",
        releaser.transcript()
    );
    // No CLI from here on: its open would reclaim in the watcher's place.
    let got = w.wait_for("acquired_ns", PROMPTLY);
    assert!(
        got.is_some(),
        "the s waiter was stranded after its releaser died mid-release: {:?}",
        w.reports()
    );
    let_go(&dir, &mut [&mut t_holder, &mut watcher, &mut w]);
}
