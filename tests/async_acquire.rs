//! Async acquires (README, *From async code*): the library's futures under tokio (multi-thread
//! and current-thread) and under a second executor (`futures-executor`), against the promise:
//! never over capacity, no OS thread per waiting future, cancellation leaves nothing behind,
//! owned permits release wherever they are dropped, a dead holder's weight reaches the futures,
//! and a future for more than 1 is not starved.
//!
//! Every test runs in child processes with their own `SHMSEM_DIR` (see `common`).

mod common;

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicUsize, Ordering::SeqCst},
    },
    time::{Duration, Instant},
};

use common::{Spawn, TestDir, arg, mp::CHILD_TIMEOUT, report};
use shmsem::{
    Error, Semaphore,
    internals::{state_of, word},
};

crate::child_roles! {
    "many_tasks" => role_many_tasks(),
    "cancel" => role_cancel(),
    "owned" => role_owned(),
    "hold" => role_hold(),
    "wait_tasks" => role_wait_tasks(),
    "executor" => role_executor(),
    "fair" => role_fair(),
    "mixed" => role_mixed(),
    "fork" => role_fork(),
    "handoff" => role_handoff(),
    "removed" => role_removed(),
    "moved" => role_moved(),
}

fn open(name: &str, capacity: u32) -> Semaphore {
    Semaphore::options()
        .capacity(capacity)
        .open(name)
        .expect("open")
}

/// Threads of this process now.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// Nothing counted, announced or reserved on `sem`'s word: what waiting left behind.
fn leftovers(sem: &Semaphore) -> String {
    let (w, reservation) = state_of(sem);
    let info = sem.info().expect("info");
    format!(
        "value={} counted={} heavy={} reservation={} waiters={}",
        word::value(w),
        word::waiters(w),
        word::is_heavy(w),
        reservation,
        info.waiters.len()
    )
}

fn multi_thread(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_time()
        .build()
        .expect("runtime")
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
}

/// 1,000 tasks on a 2-worker runtime take turns on a capacity-2 semaphore, each holding 1 ms:
/// a witness counts the holders, and a sampler the process's threads while they wait.
fn role_many_tasks() {
    let sem = open("many", 2);
    let before = threads();
    let rt = multi_thread(2);
    let inside = Arc::new(AtomicU32::new(0));
    let most = Arc::new(AtomicU32::new(0));
    let most_threads = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicU32::new(0));
    rt.block_on(async {
        let sampler = {
            let (most_threads, done) = (most_threads.clone(), done.clone());
            tokio::spawn(async move {
                while done.load(SeqCst) < 1000 {
                    most_threads.fetch_max(threads(), SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let (sem, inside, most, done) =
                    (sem.clone(), inside.clone(), most.clone(), done.clone());
                tokio::spawn(async move {
                    let permit = sem.acquire_owned_async(1).await.expect("acquire");
                    let now = inside.fetch_add(1, SeqCst) + 1;
                    most.fetch_max(now, SeqCst);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    inside.fetch_sub(1, SeqCst);
                    drop(permit);
                    done.fetch_add(1, SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        sampler.await.expect("sampler");
    });
    report("done", done.load(SeqCst));
    report("most", most.load(SeqCst));
    report("threads_before", before);
    report("threads_most", most_threads.load(SeqCst));
    report("after", settled(&sem));
}

/// [`leftovers`] once the helper has given up the count of the last future that took (it does
/// so in its next pass, without being waited for); at most 2 s.
fn settled(sem: &Semaphore) -> String {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let now = leftovers(sem);
        if now.starts_with("value=0 counted=0 heavy=false reservation=0 waiters=0")
            || Instant::now() > deadline
        {
            return now;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_thousand_tasks_on_two_workers_never_exceed_the_capacity_and_cost_no_thread_each() {
    let dir = TestDir::new("async-many");
    let r = Spawn::new(&dir, "many_tasks")
        .spawn()
        .success(CHILD_TIMEOUT);
    assert_eq!(r.req("done"), "1000");
    assert_eq!(
        r.req("most"),
        "2",
        "the witness saw more (or fewer) than 2 holders"
    );
    let (before, most) = (r.u64("threads_before"), r.u64("threads_most"));
    // 2 workers, at most 4 helpers, a watch thread, tokio's blocking pool unused.
    assert!(
        most <= before + 2 + 4 + 2,
        "{most} threads while 1,000 tasks waited (from {before})"
    );
    assert_eq!(
        r.req("after"),
        "value=0 counted=0 heavy=false reservation=0 waiters=0"
    );
}

/// 200 futures (weights 1 and 2) on a full semaphore, cancelled by a 5 ms timeout, on a
/// current-thread runtime and then on a multi-thread one: the word, the reservation and the
/// waiter list are exactly as before, right when the cancelled futures have been dropped.
fn role_cancel() {
    let sem = open("cancel", 3);
    let held = sem.acquire_weight(3).expect("hold all");
    let before = leftovers(&sem);
    report("before", &before);
    for (label, rt) in [("current", current_thread()), ("multi", multi_thread(2))] {
        let timeouts = rt.block_on(async {
            let tasks: Vec<_> = (0..200u32)
                .map(|i| {
                    let sem = sem.clone();
                    tokio::spawn(async move {
                        let weight = 1 + i % 2;
                        tokio::time::timeout(
                            Duration::from_millis(5),
                            sem.acquire_owned_async(weight),
                        )
                        .await
                        .is_err()
                    })
                })
                .collect();
            let mut timeouts = 0;
            for t in tasks {
                timeouts += u32::from(t.await.expect("task"));
            }
            timeouts
        });
        report(&format!("{label}_timeouts"), timeouts);
        report(&format!("{label}_after"), leftovers(&sem));
    }
    drop(held);
    // Nothing taken, nothing held back: all 3 can be taken at once.
    report("all", sem.try_acquire(3).map(|p| p.weight()).unwrap_or(0));
}

#[test]
fn futures_cancelled_by_a_timeout_leave_value_waiters_and_reservation_as_before() {
    let dir = TestDir::new("async-cancel");
    let r = Spawn::new(&dir, "cancel").spawn().success(CHILD_TIMEOUT);
    let before = r.req("before");
    assert_eq!(
        before,
        "value=3 counted=0 heavy=false reservation=0 waiters=0"
    );
    for label in ["current", "multi"] {
        assert_eq!(r.req(&format!("{label}_timeouts")), "200", "{label}");
        assert_eq!(r.req(&format!("{label}_after")), before, "{label}");
    }
    assert_eq!(r.req("all"), "3");
}

/// An owned permit is `Send + 'static`: moved into a spawned task and dropped there, returned
/// from `spawn_blocking`, forgotten and exited.
fn role_owned() {
    let sem = open("owned", 1);
    let rt = multi_thread(2);
    rt.block_on(async {
        let p = sem.acquire_owned_async(1).await.expect("acquire");
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            drop(p);
        })
        .await
        .expect("task");
    });
    report("after_task", sem.info().expect("info").value);
    let blocking = sem.clone();
    let p = rt
        .block_on(async { tokio::task::spawn_blocking(move || blocking.acquire_owned(1)).await })
        .expect("join")
        .expect("acquire");
    report("held_from_blocking", sem.info().expect("info").value);
    std::thread::spawn(move || drop(p)).join().expect("thread");
    report("after_thread", sem.info().expect("info").value);
    let p = sem.try_acquire_owned(1).expect("try");
    assert!(matches!(
        sem.try_acquire_owned(1),
        Err(Error::WouldBlock { .. })
    ));
    p.forget();
    report("forgotten", sem.info().expect("info").value);
    sem.exit(1).expect("exit what was forgotten");
    report("exited", sem.info().expect("info").value);
    let timed = sem.acquire_owned_timeout(1, Duration::from_millis(10));
    report("timed", timed.map(|p| p.weight()).unwrap_or(0));
}

#[test]
fn an_owned_permit_moved_into_a_task_or_thread_releases_where_it_is_dropped() {
    let dir = TestDir::new("async-owned");
    let r = Spawn::new(&dir, "owned").spawn().success(CHILD_TIMEOUT);
    assert_eq!(r.req("after_task"), "0");
    assert_eq!(r.req("held_from_blocking"), "1");
    assert_eq!(r.req("after_thread"), "0");
    assert_eq!(
        r.req("forgotten"),
        "1",
        "a forgotten permit keeps its weight"
    );
    assert_eq!(r.req("exited"), "0");
    assert_eq!(r.req("timed"), "1");
}

/// Hold weight 1 of `name` (capacity 1) until killed.
fn role_hold() {
    let sem = open(&arg("name"), 1);
    let _p = sem.acquire().expect("hold");
    report("held", std::process::id());
    std::thread::sleep(CHILD_TIMEOUT);
}

/// 10 tasks wait for `name`; report when all are counted waiting, then how many got it.
fn role_wait_tasks() {
    let sem = open(&arg("name"), 1);
    let rt = multi_thread(2);
    let got = Arc::new(AtomicU32::new(0));
    rt.block_on(async {
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (sem, got) = (sem.clone(), got.clone());
                tokio::spawn(async move {
                    let _p = sem.acquire_async(1).await.expect("acquire");
                    got.fetch_add(1, SeqCst);
                })
            })
            .collect();
        // The helper counts itself on the word once the futures registered.
        while word::waiters(state_of(&sem).0) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        report("waiting", got.load(SeqCst));
        let since = Instant::now();
        for t in tasks {
            t.await.expect("task");
        }
        report("us", since.elapsed().as_micros());
    });
    report("got", got.load(SeqCst));
}

#[test]
fn a_killed_holders_weight_reaches_the_waiting_tasks() {
    let dir = TestDir::new("async-kill");
    let mut holder = Spawn::new(&dir, "hold").arg("name", "dead").spawn();
    holder.expect("held", CHILD_TIMEOUT);
    let mut waiter = Spawn::new(&dir, "wait_tasks").arg("name", "dead").spawn();
    assert_eq!(waiter.expect("waiting", CHILD_TIMEOUT), "0");
    holder.sigkill();
    let r = waiter.success(CHILD_TIMEOUT);
    assert_eq!(r.req("got"), "10");
    // The reclaim target is well under a second; the bound is for a loaded machine.
    assert!(r.u64("us") < 10_000_000, "{} µs", r.req("us"));
    eprintln!(
        "the weight of a SIGKILLed holder reached 10 waiting tasks in turn {} µs after they all \
         waited (the kill included)",
        r.req("us")
    );
}

/// A second executor, `futures`': `block_on` on this thread, 20 futures in turn for a
/// capacity-1 semaphore that another thread holds for 50 ms first, and a `LocalPool` running
/// 20 more at once.
fn role_executor() {
    use futures::task::LocalSpawnExt;

    let sem = open("executor", 1);
    let held = sem.acquire_owned(1).expect("hold");
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        drop(held);
    });
    let inside = Arc::new(AtomicU32::new(0));
    let most = Arc::new(AtomicU32::new(0));
    futures::executor::block_on(async {
        for _ in 0..20 {
            let _p = sem.acquire_async(1).await.expect("acquire");
            most.fetch_max(inside.fetch_add(1, SeqCst) + 1, SeqCst);
            inside.fetch_sub(1, SeqCst);
        }
    });
    releaser.join().expect("releaser");
    let blocker = sem.acquire_owned(1).expect("hold again");
    let mut pool = futures::executor::LocalPool::new();
    let done = Arc::new(AtomicU32::new(0));
    for _ in 0..20 {
        let (sem, done, inside, most) = (sem.clone(), done.clone(), inside.clone(), most.clone());
        pool.spawner()
            .spawn_local(async move {
                let _p = sem.acquire_owned_async(1).await.expect("acquire");
                most.fetch_max(inside.fetch_add(1, SeqCst) + 1, SeqCst);
                inside.fetch_sub(1, SeqCst);
                done.fetch_add(1, SeqCst);
            })
            .expect("spawn");
    }
    pool.run_until_stalled(); // all 20 wait now
    // The helper counts itself in its next pass after they registered.
    let deadline = Instant::now() + Duration::from_secs(2);
    while word::waiters(state_of(&sem).0) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let waiting = word::waiters(state_of(&sem).0);
    drop(blocker);
    pool.run();
    report("waiting", waiting);
    report("most", most.load(SeqCst));
    report("pool_done", done.load(SeqCst));
    report("after", settled(&sem));
}

#[test]
fn futures_run_under_a_second_executor() {
    let dir = TestDir::new("async-executor");
    let r = Spawn::new(&dir, "executor").spawn().success(CHILD_TIMEOUT);
    assert_eq!(
        r.req("waiting"),
        "1",
        "the helper counts itself once for the 20"
    );
    assert_eq!(r.req("most"), "1");
    assert_eq!(r.req("pool_done"), "20");
    assert_eq!(
        r.req("after"),
        "value=0 counted=0 heavy=false reservation=0 waiters=0"
    );
}

/// Four threads take weight 1 of a capacity-2 semaphore in a tight stream for 3 s; a future
/// for 2 must still get it (the helper reserves for it, as a blocking waiter would).
fn role_fair() {
    let sem = open("fair", 2);
    let stop = Arc::new(AtomicU32::new(0));
    let streams: Vec<_> = (0..4)
        .map(|_| {
            let (sem, stop) = (sem.clone(), stop.clone());
            std::thread::spawn(move || {
                while stop.load(SeqCst) == 0 {
                    let _p = sem.acquire().expect("stream acquire");
                    std::thread::sleep(Duration::from_micros(200));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    let rt = current_thread();
    let since = Instant::now();
    let got = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(3), sem.acquire_async(2))
            .await
            .map(|p| p.map(|p| p.weight()))
    });
    report("ms", since.elapsed().as_millis());
    stop.store(1, SeqCst);
    for s in streams {
        s.join().expect("stream");
    }
    report("got", matches!(got, Ok(Ok(2))));
    report("after", settled(&sem));
}

#[test]
fn a_future_for_more_than_one_is_not_starved_by_a_stream_of_ones() {
    let dir = TestDir::new("async-fair");
    let r = Spawn::new(&dir, "fair").spawn().success(CHILD_TIMEOUT);
    assert_eq!(r.req("got"), "true", "starved for {} ms", r.req("ms"));
    assert_eq!(
        r.req("after"),
        "value=0 counted=0 heavy=false reservation=0 waiters=0"
    );
}

/// Blocking threads and futures wait on one capacity-1 semaphore together, 2,000 turns in
/// all: no wake is lost between them (the run finishes), and the witness never sees 2.
fn role_mixed() {
    let sem = open("mixed", 1);
    let inside = Arc::new(AtomicU32::new(0));
    let most = Arc::new(AtomicU32::new(0));
    let turn = {
        let (inside, most) = (inside.clone(), most.clone());
        move || {
            most.fetch_max(inside.fetch_add(1, SeqCst) + 1, SeqCst);
            std::hint::spin_loop();
            inside.fetch_sub(1, SeqCst);
        }
    };
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (sem, turn) = (sem.clone(), turn.clone());
            std::thread::spawn(move || {
                for _ in 0..500 {
                    let _p = sem.acquire().expect("blocking acquire");
                    turn();
                }
            })
        })
        .collect();
    let rt = multi_thread(2);
    rt.block_on(async {
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (sem, turn) = (sem.clone(), turn.clone());
                tokio::spawn(async move {
                    for _ in 0..100 {
                        let _p = sem.acquire_async(1).await.expect("async acquire");
                        turn();
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
    });
    for t in threads {
        t.join().expect("thread");
    }
    report("most", most.load(SeqCst));
    report("after", settled(&sem));
}

#[test]
fn blocking_and_async_waiters_share_a_semaphore_without_losing_a_wake() {
    let dir = TestDir::new("async-mixed");
    let r = Spawn::new(&dir, "mixed").spawn().success(CHILD_TIMEOUT);
    assert_eq!(r.req("most"), "1");
    assert_eq!(
        r.req("after"),
        "value=0 counted=0 heavy=false reservation=0 waiters=0"
    );
}

/// The fork rule: while this process's helper waits for a future, fork. The child holds
/// nothing its parent held (dropping its copy of the parent's owned permit gives nothing
/// back), and its own futures work (it starts helpers of its own: the parent's threads are not
/// in the child). The child reports through its exit status, one bit per broken rule.
fn role_fork() {
    let sem = open("forked", 2);
    let full = open("full", 1);
    let parents = futures::executor::block_on(sem.acquire_owned_async(1)).expect("acquire");
    let held = full.acquire_owned(1).expect("hold full");
    // A future of the parent waits on `full` through the helper.
    let waiting = {
        let full = full.clone();
        std::thread::spawn(move || futures::executor::block_on(full.acquire_owned_async(1)))
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    while word::waiters(state_of(&full).0) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    report("parent_waiting", word::waiters(state_of(&full).0));
    // SAFETY: the child only uses the library and its own new threads, then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let mut broken = 0;
        drop(parents); // the parent's weight: not the child's to give back
        if sem.info().map(|i| i.value).unwrap_or(0) != 1 {
            broken |= 1;
        }
        match futures::executor::block_on(sem.acquire_async(1)) {
            Ok(p) if sem.info().map(|i| i.value).unwrap_or(0) == 2 => drop(p),
            _ => broken |= 2,
        }
        let mine = open("child_full", 1);
        let hold = mine.acquire_owned(1).expect("child hold");
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(hold);
        });
        let rt = current_thread();
        let got = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), mine.acquire_async(1))
                .await
                .map(|p| p.is_ok())
        });
        if got != Ok(true) {
            broken |= 4;
        }
        let _ = releaser.join();
        // SAFETY: ends the forked child without running the parent's exit handlers.
        unsafe { libc::_exit(broken) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    report("child_exit", libc::WEXITSTATUS(status));
    report("parent_value", sem.info().expect("info").value);
    drop(held);
    let got = waiting.join().expect("waiting thread").map(|p| p.weight());
    report("parent_future", got.unwrap_or(0));
    drop(parents);
}

#[test]
fn a_forked_child_holds_nothing_of_its_parent_and_waits_with_helpers_of_its_own() {
    let dir = TestDir::new("async-fork");
    let r = Spawn::new(&dir, "fork").spawn().success(CHILD_TIMEOUT);
    assert_eq!(r.req("parent_waiting"), "1");
    assert_eq!(
        r.req("child_exit"),
        "0",
        "1: the child gave back its parent's weight; 2: its future failed; 4: its wait failed"
    );
    assert_eq!(
        r.req("parent_value"),
        "1",
        "the parent's permit still holds"
    );
    assert_eq!(
        r.req("parent_future"),
        "1",
        "the parent's helper still works"
    );
}

/// The ping-pong of the benchmarks: three capacity-1 semaphores, a blocking thread and a
/// future handing them round, every wait a real one; 5,000 rounds must finish.
fn role_handoff() {
    let sems: Vec<Semaphore> = (0..3).map(|i| open(&format!("l{i}"), 1)).collect();
    let mut held = vec![
        Some(sems[0].acquire_owned(1).expect("l0")),
        Some(sems[1].acquire_owned(1).expect("l1")),
        None,
    ];
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let peer = {
        let sems = sems.clone();
        std::thread::spawn(move || {
            let mut mine = [None, None, Some(sems[2].acquire_owned(1).expect("l2"))];
            ready_tx.send(()).expect("ready");
            for round in 0..5000usize {
                let i = round % 3;
                mine[i] = Some(sems[i].acquire_owned(1).expect("peer acquire"));
                mine[(i + 2) % 3] = None;
            }
        })
    };
    ready_rx.recv().expect("peer ready");
    let rt = current_thread();
    let since = Instant::now();
    rt.block_on(async {
        for round in 0..5000usize {
            let i = round % 3;
            held[i] = None;
            let j = (i + 2) % 3;
            match tokio::time::timeout(Duration::from_secs(5), sems[j].acquire_owned_async(1)).await
            {
                Ok(p) => held[j] = Some(p.expect("async acquire")),
                Err(_) => {
                    let states: Vec<String> = sems.iter().map(leftovers).collect();
                    panic!("round {round}: stuck waiting for l{j}: {states:?}");
                }
            }
        }
    });
    report("ms", since.elapsed().as_millis());
    drop(held);
    peer.join().expect("peer");
    report("done", true);
}

#[test]
fn a_future_and_a_blocking_thread_hand_permits_back_and_forth() {
    let dir = TestDir::new("async-handoff");
    let r = Spawn::new(&dir, "handoff").spawn().success(CHILD_TIMEOUT);
    assert_eq!(r.req("done"), "true");
}

/// Futures wait on an auto semaphore that is removed under them (forced, while held): they
/// find the removal in their next poll, create the semaphore again (as a blocking acquire
/// through a get-or-create handle does), and take turns on the new one; the old registration
/// is given up, and nothing is left counted.
fn role_removed() {
    let sem = open("removed", 1);
    let held = sem.acquire_owned(1).expect("hold");
    let rt = multi_thread(2);
    let got = rt.block_on(async {
        let tasks: Vec<_> = (0..3)
            .map(|_| {
                let sem = sem.clone();
                tokio::spawn(async move {
                    let p = sem
                        .acquire_owned_async(1)
                        .await
                        .expect("acquire after removal");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    drop(p);
                })
            })
            .collect();
        while word::waiters(state_of(&sem).0) == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        sem.remove(true).expect("forced removal");
        let mut got = 0;
        for t in tasks {
            if tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .is_ok()
            {
                got += 1;
            }
        }
        got
    });
    report("got", got);
    drop(held); // of the removed life: gives nothing to the new one
    report("after", settled(&sem));
}

#[test]
fn futures_waiting_on_a_removed_auto_semaphore_create_it_again_and_take_turns() {
    let dir = TestDir::new("async-removed");
    let r = Spawn::new(&dir, "removed").spawn().success(CHILD_TIMEOUT);
    assert_eq!(r.req("got"), "3");
    assert_eq!(
        r.req("after"),
        "value=0 counted=0 heavy=false reservation=0 waiters=0"
    );
}

/// Counts its wakes, and lets the polling thread sleep until the next one.
struct CountingWaker {
    wakes: AtomicU32,
    woken: std::sync::Mutex<bool>,
    cv: std::sync::Condvar,
}

impl std::task::Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, SeqCst);
        *self.woken.lock().unwrap() = true;
        self.cv.notify_one();
    }
}

/// A future waits on an auto semaphore that is removed under it (forced) and at once created
/// again, full, by another handle: it registers again on the new record instead of staying on
/// the old one, so it sleeps until the new one is released (a handful of wakes in 300 ms, not
/// the helper and the future waking each other over the old record without end), then takes it.
fn role_moved() {
    let sem = open("moved", 1);
    let held = sem.acquire_owned(1).expect("hold");
    let counter = Arc::new(CountingWaker {
        wakes: AtomicU32::new(0),
        woken: std::sync::Mutex::new(false),
        cv: std::sync::Condvar::new(),
    });
    let waker = std::task::Waker::from(counter.clone());
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(sem.acquire_owned_async(1));
    assert!(
        future.as_mut().poll(&mut cx).is_pending(),
        "the semaphore is held"
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while word::waiters(state_of(&sem).0) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    sem.remove(true).expect("forced removal");
    // Another handle creates it again at once and holds the new one.
    let other = open("moved", 1);
    let new_holder = other.acquire_owned(1).expect("the new semaphore");
    let counted_from = counter.wakes.load(SeqCst);
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        let mut woken = counter.woken.lock().unwrap();
        if !*woken {
            woken = counter
                .cv
                .wait_timeout(woken, Duration::from_millis(10))
                .unwrap()
                .0;
        }
        if std::mem::take(&mut *woken) {
            drop(woken);
            assert!(
                future.as_mut().poll(&mut cx).is_pending(),
                "the new one is held"
            );
        }
    }
    report("wakes", counter.wakes.load(SeqCst) - counted_from);
    drop(new_holder);
    let deadline = Instant::now() + Duration::from_secs(5);
    let taken = loop {
        if let std::task::Poll::Ready(r) = future.as_mut().poll(&mut cx) {
            break r.map(|p| p.weight()).unwrap_or(0);
        }
        if Instant::now() > deadline {
            break 0;
        }
        let woken = counter.woken.lock().unwrap();
        let _ = counter.cv.wait_timeout(woken, Duration::from_millis(10));
    };
    report("taken", taken);
    drop(held);
}

#[test]
fn a_future_on_a_semaphore_created_again_waits_on_the_new_record() {
    let dir = TestDir::new("async-moved");
    let r = Spawn::new(&dir, "moved").spawn().success(CHILD_TIMEOUT);
    assert!(
        r.u64("wakes") < 20,
        "{} wakes in 300 ms while the new semaphore was held",
        r.req("wakes")
    );
    assert_eq!(r.req("taken"), "1");
}
