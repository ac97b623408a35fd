//! Multi-process tests, who shares what: a `Scope::Tree` semaphore is shared by the root's
//! descendants only and removed with the tree, the `local` scope is one per user whatever the
//! environment, processes racing to create one namespace end with one file (its segment, which
//! also carries its locks), and the permit of a SIGKILLed holder comes back to a blocked waiter
//! and to a later process.
//!
//! Every child process re-executes this test binary (`current_exe`) running only the
//! [`child_role`] entry point (an ignored test, see `common::child_main`), with `SHMSEM_TEST_ROLE`
//! naming what it does. Each test has its own fresh `SHMSEM_DIR`, given to its children in
//! their environment, and the harness process never calls the library: the tests run in
//! parallel threads of one process, and `SHMSEM_DIR` (like `SHMSEM_SELF`) is process-global.
//! The one exception, [`local_scope_is_one_per_user_whatever_xdg_runtime_dir`], must run its
//! children without `SHMSEM_DIR`, in the user's real directory: it uses a namespace no other run
//! can name and deletes its file at the end.
//!
//! Children report to the parent on stdout with `@@mp KEY VALUE` lines (see `common`); times
//! that are compared across processes are `CLOCK_MONOTONIC` nanoseconds.

mod common;

use std::{
    os::unix::{fs::DirBuilderExt, process::ExitStatusExt},
    path::PathBuf,
    process::Stdio,
    thread,
    time::{Duration, Instant},
};

use common::{
    Kid, Spawn, TestDir, arg, arg_u32, mono_ns,
    mp::{
        CHILD_TIMEOUT, SIGNAL_TIMEOUT, assert_all_back, attempts, role_attempts, role_observe,
        start_holder,
    },
    report,
    roles::{holders_of, kind, role_hold},
    send_signal, wait_for_signal, work_dir,
};
use shmsem::{Scope, Semaphore};

// =====================================================================================
// The child side
// =====================================================================================

crate::child_roles! {
    "hold" => role_hold(SIGNAL_TIMEOUT), "attempts" => role_attempts(), "observe" => role_observe(),
    "racer" => role_racer(), "tree_root" => role_tree_root(), "tree_child" => role_tree_child(),
    "tree_unrelated" => role_tree_unrelated(), "local_hold" => role_local_hold(),
}

/// One of several processes that open the same new namespace at the same moment.
fn role_racer() {
    let ns = arg("ns");
    let index = arg_u32("index", 0);
    let racers = arg_u32("racers", 2);
    let round = arg("round");
    report("ready", std::process::id());
    // The start barrier: spin (yielding, so the parent can run on a small machine).
    let go = work_dir().join(format!("go{round}"));
    let deadline = Instant::now() + SIGNAL_TIMEOUT;
    while !go.exists() {
        assert!(Instant::now() < deadline, "no start signal");
        assert!(work_dir().exists(), "the test's directory is gone");
        thread::yield_now();
    }
    let sem = Semaphore::options()
        .namespace(&ns)
        .capacity(1)
        .open("r")
        .expect("racer open");
    let got = sem.try_acquire(1);
    report("got", u8::from(got.is_ok()));
    report("got_detail", format!("{got:?}"));
    // A second semaphore whose capacity says who created it.
    let cap = Semaphore::options()
        .namespace(&ns)
        .capacity(10 + index)
        .open("cap")
        .expect("racer open cap");
    report("cap", cap.capacity());
    report("value", sem.info().expect("info").value);
    // Hold the outcome until every racer has tried: the try-acquires overlap.
    send_signal(&format!("done{round}-{index}"));
    for j in 0..racers {
        wait_for_signal(&format!("done{round}-{j}"), SIGNAL_TIMEOUT);
    }
    drop(got);
}

/// The root of a `self` tree: opens a tree-scoped semaphore, holds weight 1 of it, starts a
/// descendant that must see it (brought into the tree with `Tree::command`), and exits once the
/// descendant has checked (leaving it running).
fn role_tree_root() {
    assert!(std::env::var_os(shmsem::SELF_ENV).is_none());
    let sem = Semaphore::options()
        .scope(Scope::Tree)
        .capacity(3)
        .open("tree")
        .expect("root open");
    let tree = shmsem::Tree::current().expect("the root's tree");
    assert!(
        std::env::var_os(shmsem::SELF_ENV).is_none(),
        "the library never sets SHMSEM_SELF"
    );
    let published = tree.id();
    report("self", &published);
    assert!(
        published.starts_with(&format!("{}-", std::process::id())),
        "SHMSEM_SELF={published} does not name the root"
    );
    let permit = sem.acquire().expect("root acquire");
    report("root_value", sem.info().expect("info").value);
    // A grandchild of the harness: given SHMSEM_SELF, and inherits our stdout, so the parent
    // reads its reports too and sees the pipe close only when the whole tree is gone.
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = common::child_command(&exe, "tree_child");
    let child = tree
        .command(&mut cmd)
        .env("MP_ARG_ROOT_PID", std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning the tree child");
    report("child_spawned", child.id());
    wait_for_signal("gc-ready", SIGNAL_TIMEOUT);
    drop(permit);
    report("root_exits", mono_ns());
    // Not waited for: the descendant outlives the root.
    drop(child);
}

fn role_tree_child() {
    report("gc_pid", std::process::id());
    let root_pid: u32 = arg("root_pid").parse().expect("root pid");
    let inherited = std::env::var(shmsem::SELF_ENV).unwrap_or_default();
    report("gc_self", &inherited);
    let sem = Semaphore::options()
        .scope(Scope::Tree)
        .open_existing("tree")
        .expect("the tree's child sees the root's semaphore");
    let info = sem.info().expect("info");
    report("gc_capacity", info.capacity);
    report("gc_value", info.value);
    report("gc_holders", holders_of(&sem));
    assert_eq!(info.capacity, 3);
    assert_eq!(info.value, 1, "the root holds 1");
    assert_eq!(holders_of(&sem), format!("{root_pid}:1"));
    let permit = sem.acquire().expect("child acquire");
    report("gc_value_after", sem.info().expect("info").value);
    send_signal("gc-ready");
    wait_for_signal("tree-end", SIGNAL_TIMEOUT);
    drop(permit);
    report("gc_exits", mono_ns());
}

/// Started by the harness, not by the tree: must not see the tree's semaphore.
fn role_tree_unrelated() {
    let r = Semaphore::options()
        .scope(Scope::Tree)
        .open_existing("tree")
        .map(|s| s.capacity());
    report("unrelated_existing", kind(&r));
    report("unrelated_detail", format!("{r:?}"));
    report(
        "unrelated_self",
        shmsem::Tree::current().expect("its own tree").id(),
    );
    // Get-or-create in its own tree: a different semaphore, with its own capacity.
    let own = Semaphore::options()
        .scope(Scope::Tree)
        .capacity(1)
        .open("tree")
        .expect("unrelated open");
    let info = own.info().expect("info");
    report("unrelated_capacity", info.capacity);
    report("unrelated_value", info.value);
}

/// Hold weight 1 of the `local` semaphore named by the `name` and `ns` parameters until the
/// `release` signal, then remove it (forced, so that nothing of it is left whatever happened).
fn role_local_hold() {
    report(
        "xdg_runtime_dir",
        std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "-".into()),
    );
    assert!(std::env::var_os(shmsem::DIR_ENV).is_none());
    let sem = common::roles::open_arg();
    let permit = sem
        .try_acquire(1)
        .unwrap_or_else(|e| panic!("the holder could not take its new semaphore: {e}"));
    report("held", std::process::id());
    wait_for_signal(&arg("release"), SIGNAL_TIMEOUT);
    drop(permit);
    sem.remove(true).expect("removing the semaphore");
    report("removed", mono_ns());
}

// =====================================================================================
// The parent side: the tests
// =====================================================================================

/// `Scope::Tree`: descendants of the root see its semaphore, an unrelated process
/// does not, and the files go once the whole tree has exited.
#[test]
fn tree_scope_is_shared_by_descendants_only_and_removed_with_the_tree() {
    let dir = TestDir::new("tree");
    let self_files = |d: &TestDir| -> Vec<String> {
        d.shm_files()
            .into_iter()
            .filter(|f| f.starts_with("self."))
            .collect()
    };
    let mut root = Spawn::new(&dir, "tree_root").spawn();
    let root_pid = root.pid();
    let published = root.expect("self", CHILD_TIMEOUT);
    assert!(
        published.starts_with(&format!("{root_pid}-")),
        "{published}"
    );
    // The descendant's reports come through the root's stdout, which it inherited.
    let gc_pid = root.expect("gc_pid", CHILD_TIMEOUT);
    assert_eq!(root.expect("gc_self", CHILD_TIMEOUT), published);
    assert_eq!(root.expect("gc_capacity", CHILD_TIMEOUT), "3");
    assert_eq!(root.expect("gc_value", CHILD_TIMEOUT), "1");
    assert_eq!(root.expect("gc_value_after", CHILD_TIMEOUT), "2");
    let status = root.wait_exit(CHILD_TIMEOUT);
    assert!(status.success(), "root failed\n{}", root.transcript());

    // The root is gone, its descendant lives: the tree's file stays (one file: the segment).
    let expected = vec![format!("self.{published}.default")];
    assert_eq!(self_files(&dir), expected, "while the tree's child lives");

    // A process the harness starts is in no tree: it does not see the semaphore.
    let u = Spawn::new(&dir, "tree_unrelated")
        .spawn()
        .success(CHILD_TIMEOUT);
    assert_eq!(u.req("unrelated_existing"), "NotFound", "{:?}", u.0);
    let u_self = u.req("unrelated_self");
    assert_ne!(u_self, published);
    assert!(!u_self.is_empty());
    assert_eq!(
        u.req("unrelated_capacity"),
        "1",
        "its own tree, its own semaphore"
    );
    assert_eq!(u.req("unrelated_value"), "0");
    // Its own tree's file went with it; its sweep left the live tree's alone.
    assert_eq!(self_files(&dir), expected, "after the unrelated process");

    // End the tree: its last process exits, and the file goes.
    dir.signal("tree-end");
    root.wait_output_closed(CHILD_TIMEOUT);
    let r = root.reports();
    assert!(
        r.get("gc_exits").is_some(),
        "the tree's child did not finish\n{}",
        root.transcript()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !self_files(&dir).is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        self_files(&dir),
        Vec::<String>::new(),
        "the tree (root {root_pid}, child {gc_pid}) has exited but its file remains"
    );
    assert_eq!(
        dir.shm_files(),
        Vec::<String>::new(),
        "nothing else left behind"
    );
}

/// processes racing to create one namespace end with one file, the segment, which
/// they all use.
#[test]
fn racing_creators_end_with_one_segment() {
    let rounds: u32 = std::env::var("MP_RACE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let racers: u32 = 2;
    let dir = TestDir::new("race");
    let t = Instant::now();
    let mut caps = [0u32; 2];
    for round in 0..rounds {
        let ns = format!("race{round}");
        let mut kids: Vec<Kid> = (0..racers)
            .map(|i| {
                Spawn::new(&dir, "racer")
                    .label(format!("racer {i} round {round}"))
                    .arg("ns", &ns)
                    .arg("index", i)
                    .arg("racers", racers)
                    .arg("round", round)
                    .spawn()
            })
            .collect();
        for k in &mut kids {
            k.expect("ready", CHILD_TIMEOUT);
        }
        dir.signal(&format!("go{round}"));
        let reports: Vec<_> = kids.iter_mut().map(|k| k.success(CHILD_TIMEOUT)).collect();
        let got: u64 = reports.iter().map(|r| r.u64("got")).sum();
        assert_eq!(
            got, 1,
            "round {round}: {got} racers got the one permit: {reports:?}"
        );
        let cap = reports[0].req("cap");
        assert!(
            reports.iter().all(|r| r.req("cap") == cap),
            "round {round}: racers saw different semaphores: {reports:?}"
        );
        let cap: u32 = cap.parse().unwrap();
        assert!(
            (10..10 + racers).contains(&cap),
            "round {round}: capacity {cap}"
        );
        caps[(cap - 10) as usize] += 1;
        let files = dir.shm_files();
        let segment = format!("local.{ns}");
        assert_eq!(
            files,
            vec![segment.clone()],
            "round {round}: one segment, nothing else"
        );
        let len = std::fs::metadata(dir.shm.join(&segment)).unwrap().len();
        assert_eq!(len, shmsem::internals::layout::SEGMENT_SIZE as u64);
        // Keep the disk use of the test small.
        std::fs::remove_file(dir.shm.join(&segment)).unwrap();
    }
    eprintln!(
        "{rounds} creation races in {:?}; creator of the second semaphore: racer 0 {} times, \
         racer 1 {} times",
        t.elapsed(),
        caps[0],
        caps[1]
    );
}

/// a permit held by a process that is SIGKILLed comes back to a waiter already
/// blocked.
#[test]
fn sigkilled_holders_permit_comes_back_to_a_blocked_waiter() {
    let dir = TestDir::new("kill-blocked");
    let mut h = start_holder(&dir, "k", 2, 2, "never");
    let mut w = attempts(&dir, "k", 2, 2, "5000").spawn();
    w.expect("start0", CHILD_TIMEOUT);
    // Let the waiter go to sleep on the futex.
    thread::sleep(Duration::from_millis(150));
    let killed_at = mono_ns();
    let status = h.sigkill();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    let r = w.success(CHILD_TIMEOUT);
    assert_eq!(r.req("result0"), "ok", "{:?}", r.0);
    let latency_ms = (r.u64("end0") - killed_at) as f64 / 1e6;
    eprintln!("holder SIGKILLed: blocked waiter got weight 2 after {latency_ms:.1} ms");
    assert_eq!(r.req("value0"), "2");
    assert_eq!(
        r.req("holders0"),
        format!("{}:2", w.pid()),
        "the dead holder is gone"
    );
    assert_all_back(&dir, "k");
}

/// a permit held by a process that was SIGKILLed comes back to a process that
/// opens later.
#[test]
fn sigkilled_holders_permit_comes_back_to_a_later_process() {
    let dir = TestDir::new("kill-later");
    let mut h = start_holder(&dir, "k", 2, 2, "never");
    let status = h.sigkill();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    let killed_at = mono_ns();
    let mut w = attempts(&dir, "k", 2, 2, "5000").spawn();
    let r = w.success(CHILD_TIMEOUT);
    assert_eq!(r.req("result0"), "ok", "{:?}", r.0);
    eprintln!(
        "holder SIGKILLed: a later process found value {} on open and got weight 2 in {} us \
         ({:.1} ms after the kill, process start included)",
        r.req("open_value"),
        r.req("elapsed_us0"),
        (r.u64("end0") - killed_at) as f64 / 1e6
    );
    assert_eq!(r.req("value0"), "2");
    assert_eq!(
        r.req("holders0"),
        format!("{}:2", w.pid()),
        "the dead holder is gone"
    );
    // Reclaim runs on open (DESIGN §3): the dead holder's weight is back before any wait.
    assert_eq!(
        r.req("open_value"),
        "0",
        "the dead holder's weight was not reclaimed on open"
    );
}

/// Deletes the files it names when dropped, whether the test passed or not.
struct RemoveFiles(Vec<PathBuf>);

impl Drop for RemoveFiles {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// Issue 9, bug 10: the `local` scope is one per user, decided by the uid alone. A process with
/// `XDG_RUNTIME_DIR` (a login shell) and one without (cron, `sudo -u`, a service) meet on the
/// same semaphore: while the first holds a capacity-1 semaphore, the second's try gets
/// `WouldBlock`.
///
/// Without `SHMSEM_DIR` the children use the user's real per-user directory, so the namespace
/// is unique to this run (pid and a nanosecond stamp) and its file there is deleted at the end; a stand-in `XDG_RUNTIME_DIR` in the test's own directory keeps anything an old build
/// would put there out of the user's real one.
#[test]
fn local_scope_is_one_per_user_whatever_xdg_runtime_dir() {
    let dir = TestDir::new("local-xdg");
    let xdg = dir.root.join("xdg");
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&xdg)
        .expect("creating the stand-in XDG_RUNTIME_DIR");
    let xdg_str = xdg.to_str().expect("a UTF-8 temporary directory");
    let ns = format!("test-xdg-{}-{}", std::process::id(), mono_ns());
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let user_dir = PathBuf::from(format!("/dev/shm/shmsem.user.{uid}"));
    let _cleanup = RemoveFiles(vec![user_dir.join(format!("local.{ns}"))]);

    let mut h = Spawn::new(&dir, "local_hold")
        .label("holder with XDG_RUNTIME_DIR")
        .env_remove(shmsem::DIR_ENV)
        .env("XDG_RUNTIME_DIR", xdg_str)
        .arg("ns", &ns)
        .arg("name", "one")
        .arg("cap", 1)
        .arg("release", "release")
        .spawn();
    let holder_pid = h.expect("held", CHILD_TIMEOUT);
    let t = attempts(&dir, "one", 1, 1, "try")
        .label("try without XDG_RUNTIME_DIR")
        .env_remove(shmsem::DIR_ENV)
        .env_remove("XDG_RUNTIME_DIR")
        .arg("ns", &ns)
        .spawn()
        .success(CHILD_TIMEOUT);
    dir.signal("release");
    let hr = h.success(CHILD_TIMEOUT);
    assert_eq!(
        hr.req("xdg_runtime_dir"),
        xdg_str,
        "the holder runs with the stand-in XDG_RUNTIME_DIR"
    );
    assert_eq!(
        t.req("result0"),
        "WouldBlock",
        "a process without XDG_RUNTIME_DIR was granted the capacity-1 `local` semaphore that a \
         process of the same user with XDG_RUNTIME_DIR held: two `local` scopes for one user\n\
         holder: {:?}\ntry: {:?}",
        hr.0,
        t.0
    );
    assert_eq!(
        t.req("holders0"),
        format!("{holder_pid}:1"),
        "the other process sees the holder"
    );
    assert!(
        !xdg.join("shmsem").exists(),
        "nothing is created under XDG_RUNTIME_DIR"
    );
}
