//! `Options::create_new`: exactly one of several racing creators wins, the others are told the
//! semaphore already exists, and the winner's capacity is the one the semaphore has.
//!
//! One test in this binary: `SHMSEM_DIR` is read once per process.

use std::{sync::Barrier, thread};

use shmsem::{Error, Semaphore};

#[test]
fn create_new_creates_once_and_reports_the_rest() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // SAFETY: set before this test starts any thread of its own, and the only test of this
    // binary, so no other thread reads the environment meanwhile.
    unsafe { std::env::set_var(shmsem::DIR_ENV, dir.path()) };

    const RACERS: u32 = 8;
    let barrier = Barrier::new(RACERS as usize);
    let results: Vec<_> = thread::scope(|s| {
        let handles: Vec<_> = (1..=RACERS)
            .map(|capacity| {
                let barrier = &barrier;
                s.spawn(move || {
                    let opts = Semaphore::options().capacity(capacity);
                    barrier.wait();
                    opts.create_new("race").map(|sem| sem.capacity())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won: Vec<u32> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    assert_eq!(won.len(), 1, "{results:?}");
    for r in &results {
        match r {
            Ok(_) => {}
            Err(Error::AlreadyExists { name }) => assert_eq!(name, "race"),
            Err(other) => panic!("expected AlreadyExists, got {other:?}"),
        }
    }
    let sem = Semaphore::options()
        .open_existing("race")
        .expect("it exists");
    assert_eq!(sem.capacity(), won[0]);
    let shown = Semaphore::options()
        .create_new("race")
        .unwrap_err()
        .to_string();
    assert_eq!(shown, "semaphore \"race\" already exists");

    // A removed one can be created again.
    sem.remove(false).expect("removing it");
    assert_eq!(
        Semaphore::options()
            .capacity(2)
            .create_new("race")
            .map(|s| s.capacity())
            .ok(),
        Some(2)
    );
}
