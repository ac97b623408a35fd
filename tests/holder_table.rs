//! A thread that has used more semaphores than the holder table has room for, across its
//! threads, keeps working: when the table is full, a thread frees its own idle records and
//! claims again. (One test in this binary: it sets `SHMSEM_DIR` for the whole process.)

use std::thread;

use shmsem::{Error, Semaphore};

/// Records in the holder table (`shmsem::internals::layout::MAX_HOLDERS`).
const TABLE: usize = shmsem::internals::layout::MAX_HOLDERS as usize;

#[test]
fn threads_beyond_the_holder_table_free_their_idle_records() {
    let dir = std::env::temp_dir().join(format!("shmsem-holder-table-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // SAFETY: the only test of this binary sets it before any thread or library call.
    unsafe { std::env::set_var("SHMSEM_DIR", &dir) };

    // Two threads, each using 9,000 semaphores once: 18,000 records wanted, 16,384 in the table.
    let per_thread = 9_000;
    assert!(2 * per_thread > TABLE);
    let sems: Vec<Semaphore> = (0..per_thread)
        .map(|i| {
            Semaphore::options()
                .capacity(2)
                .persistent()
                .open(&format!("s{i}"))
        })
        .collect::<Result<_, _>>()
        .expect("opening 9,000 semaphores");
    let outcome = thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| -> Result<(), Error> {
                    for sem in &sems {
                        drop(sem.try_acquire(1)?);
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker panicked"))
            .collect::<Result<Vec<()>, Error>>()
    });
    let result = outcome.map(|_| ());
    // Every semaphore is back to 0 and still usable from this thread.
    let values: Vec<u32> = sems.iter().map(|s| s.info().unwrap().value).collect();
    let held = sems[0].try_acquire(2);
    std::fs::remove_dir_all(&dir).ok();
    result.expect("a thread ran out of holder records");
    assert!(values.iter().all(|&v| v == 0), "weight left held");
    assert!(held.is_ok());
}
