//! Two threads hand three capacity-1 semaphores round, as `shmsem bench`'s `pingpong_*`
//! scenarios do between two processes, with shmsem or with POSIX semaphores: every hand-off is a
//! sleep and a wake. For instruction counts of the waiting paths:
//!
//! ```text
//! cargo build --release --example pingpong
//! valgrind --tool=callgrind target/release/examples/pingpong shmsem 20000
//! valgrind --tool=callgrind target/release/examples/pingpong shmsem 40000
//! ```
//!
//! The difference of the two totals over 20,000 is the instructions per round trip (the same for
//! `posix`). The time per round trip it prints is only indicative: `shmsem bench` measures it
//! properly (pinned, paired, with an A/A control).

use std::{sync::mpsc, thread, time::Instant};

use shmsem::{Permit, Semaphore};

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "shmsem".into());
    let rounds: u64 = std::env::args()
        .nth(2)
        .map_or(100_000, |n| n.parse().expect("a number of rounds"));
    let ns = match which.as_str() {
        "shmsem" => shmsem(rounds),
        "posix" => posix(rounds),
        other => panic!("shmsem or posix, not {other}"),
    };
    println!("{which}: {ns:.0} ns per round trip");
}

/// The main thread releases semaphore `i` and takes `i + 2`; the peer takes `i` and releases
/// `i + 2`: each round trip is two hand-offs.
fn shmsem(rounds: u64) -> f64 {
    let dir = std::env::temp_dir().join(format!("shmsem-pingpong-{}", std::process::id()));
    // SAFETY: set before this program starts any thread.
    unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
    let open = || -> Vec<Semaphore> {
        (0..3)
            .map(|i| {
                Semaphore::options()
                    .namespace("pingpong")
                    .capacity(1)
                    .open(&format!("l{i}"))
                    .expect("opening a semaphore")
            })
            .collect()
    };
    let (mine, theirs) = (open(), open());
    let mut held: Vec<Option<Permit<'_>>> = vec![
        Some(mine[0].acquire().expect("acquire")),
        Some(mine[1].acquire().expect("acquire")),
        None,
    ];
    let (ready, started) = mpsc::channel();
    let ns = thread::scope(|s| {
        s.spawn(|| {
            let mut peer: Vec<Option<Permit<'_>>> =
                vec![None, None, Some(theirs[2].acquire().expect("acquire"))];
            ready.send(()).expect("the main thread waits");
            for round in 0..rounds {
                let i = (round % 3) as usize;
                peer[i] = Some(theirs[i].acquire().expect("acquire"));
                peer[(i + 2) % 3] = None;
            }
        });
        started.recv().expect("the peer starts");
        let t = Instant::now();
        for round in 0..rounds {
            let i = (round % 3) as usize;
            held[i] = None;
            held[(i + 2) % 3] = Some(mine[(i + 2) % 3].acquire().expect("acquire"));
        }
        let ns = t.elapsed().as_nanos() as f64 / rounds as f64;
        held.clear();
        ns
    });
    std::fs::remove_dir_all(&dir).ok();
    ns
}

/// The same with named POSIX semaphores.
fn posix(rounds: u64) -> f64 {
    struct Sem(*mut libc::sem_t);
    // SAFETY: a POSIX semaphore is made to be used from several threads at once.
    unsafe impl Sync for Sem {}
    impl Sem {
        fn wait(&self) {
            // SAFETY: an open semaphore, closed only at the end.
            while unsafe { libc::sem_wait(self.0) } != 0 {}
        }
        fn post(&self) {
            // SAFETY: as above.
            unsafe { libc::sem_post(self.0) };
        }
    }
    let names: Vec<std::ffi::CString> = (0..3)
        .map(|i| std::ffi::CString::new(format!("/pingpong-{}-{i}", std::process::id())).unwrap())
        .collect();
    let sems: Vec<Sem> = names
        .iter()
        .map(|name| {
            // SAFETY: a NUL-terminated name that outlives the call; mode and initial value are
            // the two variadic arguments `O_CREAT` requires.
            let s = unsafe { libc::sem_open(name.as_ptr(), libc::O_CREAT, 0o600, 1) };
            assert!(s != libc::SEM_FAILED, "sem_open failed");
            Sem(s)
        })
        .collect();
    sems[0].wait();
    sems[1].wait();
    let (ready, started) = mpsc::channel();
    let ns = thread::scope(|s| {
        s.spawn(|| {
            sems[2].wait();
            ready.send(()).expect("the main thread waits");
            for round in 0..rounds {
                let i = (round % 3) as usize;
                sems[i].wait();
                sems[(i + 2) % 3].post();
            }
        });
        started.recv().expect("the peer starts");
        let t = Instant::now();
        for round in 0..rounds {
            let i = (round % 3) as usize;
            sems[i].post();
            sems[(i + 2) % 3].wait();
        }
        let ns = t.elapsed().as_nanos() as f64 / rounds as f64;
        for s in &sems {
            s.post();
        }
        ns
    });
    for name in &names {
        // SAFETY: the NUL-terminated names created above.
        unsafe { libc::sem_unlink(name.as_ptr()) };
    }
    ns
}
