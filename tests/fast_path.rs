//! The fast path's per-thread memory (README, *Performance*): a thread keeps every semaphore it
//! uses on the fast path, however it alternates between them, and the fast path grants exactly
//! what the slow path would.
//!
//! Each test runs a child process (this test binary again, in a role, with its own
//! `SHMSEM_DIR`) that opens its handles before any other thread of it exists, so their serials
//! are consecutive. `shmsem::internals::on_fast_path` says whether the calling thread's next
//! uncontended acquire through a handle goes straight to the words.

mod common;

use common::{Spawn, TestDir, mp::CHILD_TIMEOUT, report};
use shmsem::{Error, Semaphore, internals::on_fast_path};

crate::child_roles! {
    "alternate" => role_alternate(), "exclusion" => role_exclusion(),
}

/// `n` handles on semaphores `s0`, `s1`, … of capacity `capacity`.
fn handles(n: usize, capacity: u32) -> Vec<Semaphore> {
    (0..n)
        .map(|i| {
            Semaphore::options()
                .capacity(capacity)
                .open(&format!("s{i}"))
                .expect("open")
        })
        .collect()
}

/// Use six handles in turn, three rounds, then two handles op by op; report every acquire after
/// which the handle just used was not on the fast path.
fn role_alternate() {
    let sems = handles(6, 2);
    let mut misses = Vec::new();
    for round in 0..3 {
        for (i, sem) in sems.iter().enumerate() {
            drop(sem.acquire().expect("acquire"));
            if !on_fast_path(sem) {
                misses.push(format!("round {round} s{i}"));
            }
        }
    }
    // Two handles opened one after the other, used alternately: both stay remembered.
    for step in 0..100 {
        drop(sems[0].acquire().expect("acquire s0"));
        drop(sems[1].acquire().expect("acquire s1"));
        if !(on_fast_path(&sems[0]) && on_fast_path(&sems[1])) {
            misses.push(format!("alternating, step {step}"));
            break;
        }
    }
    report("misses", format!("[{}]", misses.join(", ")));
    report("values", values(&sems));
}

/// The weight each of `sems` holds now.
fn values(sems: &[Semaphore]) -> String {
    let v: Vec<String> = sems
        .iter()
        .map(|s| s.info().expect("info").value.to_string())
        .collect();
    v.join(" ")
}

/// Capacity-1 semaphores held through the fast path: a second acquire of each is refused while
/// the thread alternates between them, a permit dropped on another thread gives its weight
/// back, and the fast path goes on granting afterwards.
fn role_exclusion() {
    let sems = handles(3, 1);
    // Warm every handle up: all on the fast path.
    for sem in &sems {
        drop(sem.acquire().expect("warm-up"));
    }
    let mut wrong = Vec::new();
    for round in 0..50 {
        let held: Vec<_> = sems.iter().map(|s| s.acquire().expect("acquire")).collect();
        for (i, sem) in sems.iter().enumerate() {
            match sem.try_acquire(1) {
                Err(Error::WouldBlock { .. }) => {}
                Ok(_) => wrong.push(format!("round {round}: s{i} granted twice")),
                Err(e) => wrong.push(format!("round {round}: s{i}: {e}")),
            }
        }
        if round % 2 == 0 {
            drop(held);
        } else {
            // Given back through another thread's lane.
            std::thread::scope(|t| {
                t.spawn(move || drop(held));
            });
        }
        if values(&sems) != "0 0 0" {
            wrong.push(format!(
                "round {round}: values {} after the release",
                values(&sems)
            ));
        }
    }
    for (i, sem) in sems.iter().enumerate() {
        drop(sem.acquire().expect("acquire"));
        if !on_fast_path(sem) {
            wrong.push(format!("s{i} is off the fast path at the end"));
        }
    }
    report("wrong", format!("[{}]", wrong.join(", ")));
}

/// A thread that uses six semaphores in turn, and one that alternates between two op by op,
/// keeps each on the fast path: after every acquire, the handle just used is remembered. (A
/// thread used to remember one semaphore, and one that came back to a handle after using
/// another stayed on the slow path for good: the `scale10k` benchmark ran at 1.6–1.7× its
/// baseline with the same instructions.)
#[test]
fn a_thread_keeps_every_semaphore_it_alternates_between_on_the_fast_path() {
    let dir = TestDir::new("fast-alternate");
    let reports = Spawn::new(&dir, "alternate").spawn().success(CHILD_TIMEOUT);
    assert_eq!(reports.req("misses"), "[]");
    assert_eq!(reports.req("values"), "0 0 0 0 0 0", "weight left held");
}

/// The fast path never grants past the capacity while a thread moves between remembered
/// semaphores, and weight it took comes back whether the permit is dropped on the thread that
/// took it or on another.
#[test]
fn the_fast_path_grants_exactly_what_the_slow_path_would() {
    let dir = TestDir::new("fast-exclusion");
    let reports = Spawn::new(&dir, "exclusion").spawn().success(CHILD_TIMEOUT);
    assert_eq!(reports.req("wrong"), "[]");
}
