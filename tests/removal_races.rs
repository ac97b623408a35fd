//! Regression tests for two of the exclusion holes of DESIGN §3 (bugs 2 and 11): what a removal or a killed `shmsem run` must not
//! do to the semaphore that comes after it (README, *In a shell*; DESIGN §3).
//!
//! | bug | test |
//! |---|---|
//! | 2 | [`a_recount_never_writes_into_a_semaphore_removed_and_created_again_under_it`] |
//! | 11 | [`killing_shmsem_run_leaves_the_weight_with_its_command`] |
//! | entered weight of a removed life | [`exit_never_gives_entered_weight_back_to_a_later_life`] |
//!
//! The CLI is the built `shmsem` binary, every test has its own `SHMSEM_DIR`, kills are real
//! SIGKILLs. The reclaimer is held still at a kill point armed with `/stop` (SIGSTOP), so the
//! race is met every time rather than by chance.

mod common;

use std::{
    process::{Child, Stdio},
    thread,
    time::{Duration, Instant},
};

use common::{
    Spawn, TestDir,
    cli::{Sleeper, command, eventually, ok, parties, run, show},
    mp::CHILD_TIMEOUT,
    report,
};
use shmsem::{Error, Semaphore};

crate::child_roles! {
    "enter_remove_exit" => role_enter_remove_exit(),
}

/// One handle enters weight 1 of auto semaphore `e`; another handle removes `e` with force; the
/// first handle then acquires the new `e` (re-created through it) and calls `exit(1)`.
fn role_enter_remove_exit() {
    let sem = Semaphore::options().capacity(1).open("e").expect("open");
    sem.enter(1).expect("enter");
    let other = Semaphore::options().open_existing("e").expect("open again");
    other.remove(true).expect("remove with force");
    let permit = sem.try_acquire(1).expect("the new e is free");
    let exit = sem.exit(1);
    report(
        "exit",
        match &exit {
            Ok(()) => "ok".to_owned(),
            Err(Error::NotHeld { .. }) => "NotHeld".to_owned(),
            Err(e) => format!("{e:?}"),
        },
    );
    report("value", sem.info().expect("info").value);
    report(
        "third",
        match sem.try_acquire(1) {
            Ok(_) => "GRANTED".to_owned(),
            Err(Error::WouldBlock { .. }) => "WouldBlock".to_owned(),
            Err(e) => format!("{e:?}"),
        },
    );
    drop(permit);
}

/// The `/proc` state letter of `pid` (`T` when stopped), or `None` once it is gone.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

/// Send `sig` to `pid`.
fn signal(pid: u32, sig: i32) {
    // SAFETY: kill has no memory effects.
    let r = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(r, 0, "kill({pid}, {sig}) failed");
}

/// Wait up to 10 s for `child` to exit; kill it and fail otherwise.
fn finish(mut child: Child, what: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("waiting") {
            return status;
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within 10 s");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Value and holders `(pid, weight)` of `name`.
fn value_and_holders(dir: &TestDir, name: &str) -> (u64, Vec<(u64, u64)>) {
    let v = show(dir, name);
    (v["value"].as_u64().expect("value"), parties(&v, "holders"))
}

/// A holder of `r` dies; a reclaimer freezes `r` and is stopped just before it publishes the
/// recount (`reclaim:cleared`). Meanwhile `r` is removed with `--force`, created again and
/// acquired by a live holder. When the reclaimer goes on, its publication must find another
/// generation and leave the new `r` alone: value 1, held by the new holder, nothing more free.
/// (Before the fix the reclaimer's unfreeze wrote the old recount, 0, into the new semaphore.)
#[test]
fn a_recount_never_writes_into_a_semaphore_removed_and_created_again_under_it() {
    let dir = TestDir::new("rr-recount");
    ok(&dir, &["create", "r", "--capacity", "1", "--persistent"]);
    let mut victim = Sleeper::spawn();
    ok(&dir, &["acquire", "r", "--holder", &victim.pid()]);
    victim.0.kill().expect("killing the victim");
    victim.0.wait().expect("reaping the victim");

    let reaper = command(&dir, &["reap"])
        .env(shmsem::failpoint::ENV, "reclaim:cleared/stop")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning the reaper");
    let reaper_pid = reaper.id();
    eventually("the reaper stops at reclaim:cleared", || {
        proc_state(reaper_pid) == Some('T')
    });

    ok(&dir, &["rm", "r", "--force"]);
    ok(&dir, &["create", "r", "--capacity", "1", "--persistent"]);
    let holder = Sleeper::spawn();
    ok(&dir, &["acquire", "r", "--holder", &holder.pid()]);

    signal(reaper_pid, libc::SIGCONT);
    let status = finish(reaper, "the stopped reaper");
    assert!(status.success(), "the reaper failed: {status:?}");

    let holder_pid: u64 = holder.pid().parse().expect("pid");
    assert_eq!(
        value_and_holders(&dir, "r"),
        (1, vec![(holder_pid, 1)]),
        "the old recount reached the new semaphore"
    );
    let other = Sleeper::spawn();
    let try_more = run(
        &dir,
        &["acquire", "r", "--holder", &other.pid(), "--timeout", "0"],
    );
    assert_eq!(
        try_more.code, 75,
        "a second holder was admitted on capacity 1: {try_more:?}"
    );
}

/// `shmsem run r -- sleep 30` is killed with SIGKILL while its command runs. The command still
/// holds `r`: another `run r --timeout 0` is refused (exit 75), and a reap gives nothing back.
/// Once the command exits, the weight comes back.
#[test]
fn killing_shmsem_run_leaves_the_weight_with_its_command() {
    let dir = TestDir::new("rr-run");
    let mut runner = command(&dir, &["run", "r", "--capacity", "1", "--", "sleep", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning shmsem run");
    eventually("the command runs holding r", || {
        run(&dir, &["show", "r", "--json"]).code == 0 && value_and_holders(&dir, "r").0 == 1
    });
    let mut command_pid = 0;
    eventually("the command is started", || {
        let children = format!("/proc/{0}/task/{0}/children", runner.id());
        let found = std::fs::read_to_string(children).unwrap_or_default();
        command_pid = found
            .split_whitespace()
            .next()
            .map_or(0, |p| p.parse().unwrap_or(0));
        command_pid != 0
            && std::fs::read_to_string(format!("/proc/{command_pid}/comm"))
                .is_ok_and(|c| c.trim() == "sleep")
    });
    runner.kill().expect("killing shmsem run");
    runner.wait().expect("reaping shmsem run");
    assert!(
        proc_state(command_pid).is_some(),
        "the command died with run"
    );

    let second = run(&dir, &["run", "r", "--timeout", "0", "--", "true"]);
    assert_eq!(
        second.code, 75,
        "a second command ran while the first still held r: {second:?}"
    );
    ok(&dir, &["reap"]);
    assert_eq!(
        value_and_holders(&dir, "r"),
        (1, vec![(u64::from(command_pid), 1)]),
        "reap took the command's weight, or the holder shown is not the command"
    );

    signal(command_pid, libc::SIGKILL);
    eventually(
        "the command is gone",
        || !matches!(proc_state(command_pid), Some(c) if c != 'Z'),
    );
    eventually("the weight comes back once the command is gone", || {
        run(&dir, &["run", "r", "--timeout", "0", "--", "true"]).code == 0
    });
    assert_eq!(value_and_holders(&dir, "r"), (0, vec![]));
}

/// Weight entered on a semaphore that is then removed with `--force` is gone with it: `exit`
/// on the handle, which has since re-created the semaphore and holds a permit on the new one,
/// is `NotHeld` and leaves the new one held (value 1, a further try refused).
#[test]
fn exit_never_gives_entered_weight_back_to_a_later_life() {
    let dir = TestDir::new("rr-exit");
    let mut kid = Spawn::new(&dir, "enter_remove_exit").spawn();
    assert_eq!(kid.expect("exit", CHILD_TIMEOUT), "NotHeld");
    assert_eq!(kid.expect("value", CHILD_TIMEOUT), "1");
    assert_eq!(kid.expect("third", CHILD_TIMEOUT), "WouldBlock");
    kid.success(CHILD_TIMEOUT);
}
