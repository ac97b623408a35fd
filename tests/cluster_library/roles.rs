//! The child processes of the cluster scope's library tests, one role each (see `main.rs`).

use std::{
    thread,
    time::{Duration, Instant},
};

use shmsem::{Error, Namespace, Scope, Semaphore};

use crate::{
    LONG,
    common::{self, arg, arg_or, arg_u32, report},
};

fn sem() -> Semaphore {
    Semaphore::options()
        .scope(Scope::Cluster)
        .namespace(arg("ns"))
        .capacity(arg_u32("cap", 1))
        .open(&arg_or("name", "s"))
        .expect("opening the cluster semaphore")
}

pub fn outcome<T>(r: &Result<T, Error>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(Error::Timeout { .. }) => "timeout".into(),
        Err(Error::WouldBlock { available, .. }) => format!("wouldblock:{available}"),
        Err(Error::NotHeld { held, .. }) => format!("notheld:{held}"),
        Err(Error::Lost { .. }) => "lost".into(),
        Err(Error::Unavailable { .. }) => "unavailable".into(),
        Err(Error::InUse { value, .. }) => format!("inuse:{value}"),
        Err(Error::NotFound { .. }) => "notfound".into(),
        Err(Error::AlreadyExists { .. }) => "exists".into(),
        Err(Error::WeightTooLarge { .. }) => "toolarge".into(),
        Err(Error::Removed { .. }) => "removed".into(),
        Err(e) => format!("error:{e}"),
    }
}

/// Hold `w` until the signal `release`, reporting the token; on losing the holding, create the
/// signal `lost-LABEL`; after the signal, report what `check` says.
fn hold() {
    let sem = sem();
    let permit = sem.acquire_weight(arg_u32("w", 1)).expect("acquire");
    report(
        "token",
        permit.token().expect("a cluster permit has a token"),
    );
    let label = arg_or("label", "holder");
    permit.on_lost(move || common::send_signal(&format!("lost-{label}")));
    report("held", permit.weight());
    common::wait_for_signal(&arg_or("release", "release"), LONG);
    report("check", outcome(&permit.check()));
    drop(permit);
    report("released", 1);
    common::wait_for_signal(&arg_or("exit", "exit"), LONG);
}

/// One timed acquire of `w` within `ms`, reporting its outcome, time and token.
fn timed() {
    let sem = sem();
    report("opened", 1);
    if let Ok(after) = std::env::var("MP_ARG_AFTER") {
        common::wait_for_signal(&after, LONG);
    }
    let started = Instant::now();
    let r = sem.acquire_timeout(
        arg_u32("w", 1),
        Duration::from_millis(arg_u32("ms", 1000).into()),
    );
    report("elapsed_ms", started.elapsed().as_millis());
    if let Ok(p) = &r {
        report("token", p.token().expect("token"));
    }
    report("outcome", outcome(&r));
}

fn try_once() {
    let sem = sem();
    report("try", outcome(&sem.try_acquire(arg_u32("w", 1))));
}

/// Enter 2, exit 1, exit 2 (NotHeld: 1 left), exit 1.
fn enter_exit() {
    let sem = sem();
    sem.enter(2).expect("enter");
    report("entered", 2);
    common::wait_for_signal("exit1", LONG);
    report("exit1", outcome(&sem.exit(1)));
    report("exit2", outcome(&sem.exit(2)));
    common::wait_for_signal("exit-rest", LONG);
    report("exit-rest", outcome(&sem.exit(1)));
    report("exit-more", outcome(&sem.exit(1)));
    let _ = sem.with(|| report("with", 1));
}

/// The admin calls on one semaphore, in order, each reported.
fn admin() {
    let o = Semaphore::options()
        .scope(Scope::Cluster)
        .namespace(arg("ns"));
    report("existing", outcome(&o.open_existing("a")));
    let a = o
        .clone()
        .capacity(2)
        .persistent()
        .create_new("a")
        .expect("create_new");
    report("again", outcome(&o.create_new("a")));
    report("capacity", a.capacity());
    report("toolarge", outcome(&a.try_acquire(3)));
    let p = a.acquire_weight(2).expect("acquire 2");
    let info = a.info().expect("info");
    let h = &info.holders[0];
    report("value", info.value);
    report("kind", info.kind.as_str());
    report("holder_pid", h.pid);
    report("holder_weight", h.weight);
    report("holder_host", h.host.clone().unwrap_or_default());
    report("holder_token_matches", h.token == p.token());
    report("holder_since_ok", h.since_ms > 0);
    report("scope", info.scope);
    report("rm_held", outcome(&a.remove(false)));
    a.set_capacity(3).expect("set_capacity");
    report("capacity_after", a.info().expect("info").capacity);
    a.set_persistent(false).expect("set_persistent");
    report("kind_after", a.info().expect("info").kind.as_str());
    let ns = o.to_namespace().expect("namespace");
    let list = ns.list().expect("list");
    report(
        "listed",
        list.iter()
            .map(|i| format!("{}={}/{}", i.name, i.value, i.capacity))
            .collect::<Vec<_>>()
            .join(","),
    );
    drop(p);
    a.remove(false).expect("remove");
    report("after_rm", outcome(&o.open_existing("a")));
    report("info_removed", outcome(&a.info()));
    let b = o.clone().persistent().open("b").expect("open b");
    let _held = b.acquire().expect("acquire b");
    report("rm_force", outcome(&b.remove(true)));
    report("listed_after", ns.list().expect("list").len());
}

/// Reap what a killed holder of this host held, as the namespace's `reap` reports it.
fn reap() {
    let ns = Namespace::new(Scope::Cluster, arg("ns")).expect("namespace");
    let got = ns.reap().expect("reap");
    report(
        "reaped",
        got.iter()
            .map(|r| format!("{}:{}:{}", r.semaphore, r.pid, r.weight))
            .collect::<Vec<_>>()
            .join(","),
    );
}

/// Open with the endpoints given, timing the failure.
fn unreachable() {
    let started = Instant::now();
    let r = Semaphore::options()
        .scope(Scope::Cluster)
        .cluster([arg("endpoint")])
        .open("x");
    report("elapsed_ms", started.elapsed().as_millis());
    report("open", outcome(&r));
    let r = Semaphore::options()
        .scope(Scope::Cluster)
        .cluster(Vec::<String>::new())
        .open("x");
    report("none", outcome(&r));
}

/// Acquire `w` `rounds` times, counting the weight inside the witness while holding.
fn contend() {
    let sem = sem();
    let cap = arg_u32("cap", 1);
    let w = arg_u32("w", 1);
    let witness = common::Witness::open(&common::work_dir().join("witness"));
    for _ in 0..arg_u32("rounds", 10) {
        let p = sem
            .acquire_timeout(w, Duration::from_secs(30))
            .expect("acquire");
        for _ in 0..w {
            witness.enter(cap);
        }
        thread::sleep(Duration::from_millis(5));
        for _ in 0..w {
            witness.leave();
        }
        drop(p);
    }
}

/// Hold 1 of 2, fork: the child holds nothing of the parent's (its `exit` is NotHeld, dropping
/// its copy of the parent's permit gives nothing back) and takes and gives back weight of its own
/// through the same handle, on a client of its own; the parent's holding is intact after.
fn fork() {
    use std::io::Write;
    let sem = sem();
    let permit = sem.acquire().expect("acquire");
    report("parent_token", permit.token().unwrap());
    // SAFETY: fork(2); the child only uses the library and exits with _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        report("child_exit", outcome(&sem.exit(1)));
        let own = sem.try_acquire(1);
        report("child_try", outcome(&own));
        report(
            "child_token_larger",
            own.as_ref().ok().and_then(|p| p.token()) > permit.token(),
        );
        drop(own);
        report("child_full", outcome(&sem.try_acquire(1)));
        drop(permit); // the parent's: gives nothing back here
        report("child_value", sem.info().map(|i| i.value).unwrap_or(99));
        std::io::stdout().flush().ok();
        // SAFETY: ends the forked child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waitpid on our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    report("child_status", status);
    report("parent_check", outcome(&permit.check()));
    report("parent_value", sem.info().expect("info").value);
    drop(permit);
    report("after_value", sem.info().expect("info").value);
}

/// Play `role` (see `child_role` in `main.rs`).
/// The async API on a capacity-1 cluster semaphore, on a current-thread tokio runtime: an owned
/// permit with a token; a second future cancelled by a runtime timeout, which leaves no waiter
/// key; a third that waits and gets the weight when the first is dropped in another task.
fn asynchronous() {
    let sem = sem();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let first = sem.acquire_owned_async(1).await.expect("first");
        report("token", first.token().is_some());
        let second =
            tokio::time::timeout(Duration::from_millis(300), sem.acquire_owned_async(1)).await;
        report("second_timed_out", second.is_err());
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut waiters = usize::MAX;
        while Instant::now() < deadline {
            waiters = sem.info().expect("info").waiters.len();
            if waiters == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        report("waiters_after_cancel", waiters);
        let third = {
            let sem = sem.clone();
            tokio::spawn(async move { sem.acquire_owned_async(1).await.map(|p| p.weight()) })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        tokio::spawn(async move { drop(first) })
            .await
            .expect("dropping task");
        let third = tokio::time::timeout(Duration::from_secs(10), third).await;
        report("third", matches!(third, Ok(Ok(Ok(1)))));
    });
    report("value", sem.info().expect("info").value);
}

pub fn run(role: &str) {
    match role {
        "fork" => fork(),
        "contend" => contend(),
        "hold" => hold(),
        "timed" => timed(),
        "try" => try_once(),
        "enter_exit" => enter_exit(),
        "admin" => admin(),
        "reap" => reap(),
        "unreachable" => unreachable(),
        "async" => asynchronous(),
        other => panic!("unknown role {other:?}"),
    }
}
