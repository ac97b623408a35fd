//! Bug 3: after fork, the child could release its parent's entered weight.

use std::{
    os::unix::process::ExitStatusExt,
    thread,
    time::{Duration, Instant},
};

use super::{
    Others,
    common::{
        self, Kid, Spawn, TestDir, arg,
        cli::{parties, run},
        mp::{CHILD_TIMEOUT, SIGNAL_TIMEOUT},
        report,
        roles::kind,
    },
    open_persistent, report_raw, signalled, within,
};

/// Bug 3: enter weight 1 of the persistent capacity-1 semaphore `name`, then `fork`. The child
/// only calls the library: the operations of `child_ops` (`exit`: `exit(1)`; `try`:
/// `try_acquire(1)`, forgotten if granted), each reported; then it reports `child_done` and
/// waits for the signal `child_go` before `_exit(0)`. The parent reports `child_pid`, waits for
/// `parent_go`, reaps its child and ends (its entered weight comes back when it dies).
pub fn role_forker() {
    let sem = open_persistent(&arg("name"), 1);
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

/// Take two guarded permits of weight 1 of the persistent capacity-3 semaphore `name`, then
/// `fork`. The child takes weight 1 of its own and gives it back (so the handle is on its
/// thread's fast path), drops its copy of the parent's first permit, forgets its copy of the
/// second and tries to `exit(1)`; it reports the value after each step (`child_own_value`,
/// `child_dropped`, `child_exit` with `child_exited`). The parent reports `child_status` and
/// the value (`parent_value`) after the child ended, and still holds both.
pub fn role_permit_forker() {
    let sem = open_persistent(&arg("name"), 3);
    let first = sem.acquire().expect("taking weight 1");
    let second = sem.acquire().expect("taking weight 1 more");
    // SAFETY: the child only calls the library, formats, writes to stdout and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let value = || sem.info().map_or(u32::MAX, |i| i.value);
        let own = sem.try_acquire(1);
        report_raw("child_own", kind(&own));
        drop(own);
        report_raw("child_own_value", value());
        drop(first);
        report_raw("child_dropped", value());
        second.forget();
        report_raw("child_exit", kind(&sem.exit(1)));
        report_raw("child_exited", value());
        // SAFETY: ends the forked child without running the parent's exit handlers.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    report("child_status", status);
    report("parent_value", sem.info().expect("info").value);
    drop((first, second));
}

/// The parent holds two guarded permits of weight 1 (capacity 3) and forks. The child takes and
/// gives back weight 1 of its own on the same handle, which puts the handle on its thread's fast
/// path, then drops its copy of the parent's first permit, forgets its copy of the second and
/// exits weight 1: none of that may give anything back (value 2 throughout), and the parent must
/// still hold both after the child ended.
#[test]
fn a_forked_child_on_the_fast_path_cannot_give_back_its_parents_permits() {
    let dir = TestDir::new("xh-fork-permit");
    let mut parent = Spawn::new(&dir, "permit_forker").arg("name", "p").spawn();
    let own = parent.expect("child_own", CHILD_TIMEOUT);
    let own_value = parent.expect("child_own_value", CHILD_TIMEOUT);
    let dropped = parent.expect("child_dropped", CHILD_TIMEOUT);
    let exit = parent.expect("child_exit", CHILD_TIMEOUT);
    let exited = parent.expect("child_exited", CHILD_TIMEOUT);
    let status = parent.expect("child_status", CHILD_TIMEOUT);
    let parent_value = parent.expect("parent_value", CHILD_TIMEOUT);
    parent.success(CHILD_TIMEOUT);
    let summary = format!(
        "child's own try: {own} (value after giving it back {own_value}); value after the \
         child dropped its copy of the first permit: {dropped}; its exit(1) after forgetting \
         the second: {exit} (value {exited}); child status {status}; value the parent sees \
         after: {parent_value}"
    );
    eprintln!("fork, permits: {summary}");
    assert_eq!((own.as_str(), own_value.as_str()), ("ok", "2"), "{summary}");
    assert_eq!(
        dropped, "2",
        "the child gave back its parent's permit: {summary}"
    );
    assert_eq!(
        (exit.as_str(), exited.as_str()),
        ("NotHeld", "2"),
        "the child exited its parent's forgotten permit: {summary}"
    );
    assert_eq!(parent_value, "2", "the parent's weight is gone: {summary}");
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

/// Start a `forker` on `f` whose child runs `child_ops`: it, the pid of its child, and a guard
/// that kills that child.
fn forker(dir: &TestDir, child_ops: &str) -> (Kid, i32, KillOnDrop) {
    let mut parent = Spawn::new(dir, "forker")
        .arg("name", "f")
        .arg("child_ops", child_ops)
        .spawn();
    let child_pid: i32 = parent
        .expect("child_pid", CHILD_TIMEOUT)
        .parse()
        .expect("pid");
    (parent, child_pid, KillOnDrop(child_pid))
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
    let (mut parent, child_pid, _reap_child) = forker(&dir, "exit,try");
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
    let others = Others::look(&dir, "f");
    let summary = format!(
        "child exit(1): {child_exit}, child try_acquire(1): {child_try} (value then \
         {child_value}); after the child exited (parent {}): {others}",
        parent.pid(),
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
    others.assert_held_alone_by(parent.pid(), "the parent", &summary);
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
    let (mut parent, child_pid, _kill_child) = forker(&dir, "exit");
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
