//! Item 5, `--holder`: acting for another user's process is refused, and acts that fail or
//! finish leave the process table (read here straight from the segment) as it was.

use std::{
    fs, io,
    mem::{offset_of, size_of},
    os::{fd::AsRawFd, unix::fs::FileExt},
    path::Path,
    thread,
    time::Duration,
};

use shmsem::internals::layout::{MAX_PROCESSES, PROCS_OFFSET, ProcSlot};

use crate::{
    NO_PERMISSION, TIMED_OUT,
    commands::{Out, create_for_ops, create_ops, kill, poll, shown},
    users::{Company, World},
};

/// Process slot kinds (`src/holders/mod.rs`): an engine process, an external holder.
const ENGINE: u32 = 1;
const EXTERNAL: u32 = 2;

// ===== the process table, read from the segment =====

/// What a namespace's process table holds now, read from its file (as root).
#[derive(Debug, PartialEq, Eq)]
struct Slots {
    /// Pids of the external slots (`--holder` processes).
    external: Vec<u32>,
    /// Engine slots whose process lives (holds its lock byte).
    live_engine: usize,
}

fn slots(path: &Path) -> Slots {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    let stride = size_of::<ProcSlot>();
    let mut table = vec![0u8; stride * MAX_PROCESSES as usize];
    file.read_exact_at(&mut table, PROCS_OFFSET as u64)
        .expect("reading the process table");
    let u32_at = |at: usize| u32::from_ne_bytes(table[at..at + 4].try_into().expect("4 bytes"));
    let mut out = Slots {
        external: Vec::new(),
        live_engine: 0,
    };
    for slot in 0..MAX_PROCESSES as usize {
        let base = slot * stride;
        let state = u32_at(base + offset_of!(ProcSlot, state));
        match state & 0xFF {
            EXTERNAL => out.external.push(u32_at(base + offset_of!(ProcSlot, pid))),
            ENGINE if byte_locked(&file, 1 + slot as u64) => out.live_engine += 1,
            _ => {}
        }
    }
    out.external.sort_unstable();
    out
}

/// Whether some open file description holds a lock on byte `offset` of `file`.
fn byte_locked(file: &fs::File, offset: u64) -> bool {
    // SAFETY: all-zero bytes are a valid `flock`.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = offset as libc::off_t;
    fl.l_len = 1;
    // SAFETY: `file` is open for the call and `fl` is a valid, exclusively borrowed `flock`.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
    assert_eq!(r, 0, "F_OFD_GETLK: {}", io::Error::last_os_error());
    fl.l_type != libc::F_UNLCK as libc::c_short
}

// =====================================================================================
// Item 5: --holder
// =====================================================================================

/// Item 5, whose process: carol (ops, she may use the namespace) can neither release nor
/// acquire in the name of alice's process, nor of init; bob cannot either; the refusals leave
/// alice's weight alone. Root may act for anyone's process, in a namespace of root's (root uses
/// no other user's file: exit 77 in alice's).
#[test]
fn acting_for_another_users_process_is_refused() {
    let w = World::new(Company::Shared);
    let (a, b, c, r) = (&w.alice, &w.bob, &w.carol, &w.root);
    let ns = w.ns("act");
    create_ops(&w, &ns, "m");
    let s0 = w.sleeper(a);
    let s0s = s0.to_string();
    let acquire = |holder| ["acquire", "m", "--holder", holder, "--timeout", "0"];
    w.run_in(a, &ns, &acquire(&s0s)).ok();
    assert_eq!(shown(&w, a, &ns, "m"), (1, vec![s0], vec![]));

    for (who, args) in [
        (c, &["release", "m", "--holder", &s0s][..]),
        (c, &acquire(&s0s)),
        (c, &acquire("1")),
        (c, &["acquire", "n", "--holder", &s0s, "--timeout", "0"]),
        (b, &["release", "m", "--holder", &s0s]),
        (b, &acquire(&s0s)),
        (r, &["release", "m", "--holder", &s0s]),
    ] {
        w.run_in(who, &ns, args).status(NO_PERMISSION);
    }
    assert_eq!(
        shown(&w, a, &ns, "m"),
        (1, vec![s0], vec![]),
        "refused acts must leave alice's weight alone"
    );
    assert_eq!(slots(&w.seg(&ns)).external, vec![s0]);
    w.run_in(a, &ns, &["release", "m", "--holder", &s0s]).ok();
    assert_eq!(shown(&w, a, &ns, "m"), (0, vec![], vec![]));
    assert_eq!(
        slots(&w.seg(&ns)).external,
        Vec::<u32>::new(),
        "a holder that holds nothing keeps no slot"
    );

    // Root acts for alice's process, and for init, in root's own namespace shared with ops;
    // carol cannot release what root acquired for alice's process.
    let nr = w.ns("svc");
    create_for_ops(&w, r, &nr, "m", &["--capacity", "2"]);
    for pid in [s0s.as_str(), "1"] {
        w.run_in(r, &nr, &acquire(pid)).ok();
    }
    w.run_in(c, &nr, &["release", "m", "--holder", &s0s])
        .status(NO_PERMISSION);
    let (value, mut holders, _) = shown(&w, r, &nr, "m");
    holders.sort_unstable();
    assert_eq!((value, holders), (2, vec![1, s0]));
    for pid in [s0s.as_str(), "1"] {
        w.run_in(r, &nr, &["release", "m", "--holder", pid]).ok();
    }
    assert_eq!(slots(&w.seg(&nr)).external, Vec::<u32>::new());
}

/// Item 5, the slots: an `acquire --holder` that fails, a release to zero and a killed waiting
/// `acquire --holder` leave no process slot and no phantom waiter. 2,000 failing calls (`--timeout
/// 0` on a full semaphore, for 40 live processes of alice's own, each in turn) leave the process
/// table exactly as it was: no external slot, the same live processes.
#[test]
fn failed_and_finished_acts_for_a_holder_leave_the_process_table_as_it_was() {
    const CALLS: usize = 2_000;
    const SLEEPERS: usize = 40;
    let w = World::new(Company::Shared);
    let a = &w.alice;
    let ns = w.ns("slots");
    let seg = w.seg(&ns);
    create_ops(&w, &ns, "m");
    let sleepers: Vec<String> = (0..SLEEPERS).map(|_| w.sleeper(a).to_string()).collect();

    // A release to zero frees the slot at once.
    let s0 = &sleepers[0];
    let act = |args: &[&str]| w.run_in(a, &ns, args);
    act(&["acquire", "m", "--holder", s0, "--timeout", "0"]).ok();
    assert_eq!(slots(&seg).external.len(), 1);
    act(&["release", "m", "--holder", s0]).ok();
    assert_eq!(slots(&seg).external, Vec::<u32>::new());

    // Full: alice's own holder.
    let _holder = w.hold(a, &ns, "m");
    let before = slots(&seg);
    assert_eq!(before.external, Vec::<u32>::new());

    let codes: Vec<Vec<Out>> = thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|k| {
                let (w, sleepers, ns) = (&w, &sleepers, &ns);
                scope.spawn(move || {
                    (0..CALLS / 2)
                        .filter_map(|i| {
                            let holder = &sleepers[(2 * i + k) % SLEEPERS];
                            let out = w.run_in(
                                a,
                                ns,
                                &["acquire", "m", "--holder", holder, "--timeout", "0"],
                            );
                            (out.code != Some(TIMED_OUT)).then_some(out)
                        })
                        .collect()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|h| h.join().expect("a worker"))
            .collect()
    });
    let unexpected: Vec<&Out> = codes.iter().flatten().collect();
    assert!(
        unexpected.is_empty(),
        "{} of {CALLS} acquire --holder --timeout 0 on a full semaphore did not exit 75; first: {}",
        unexpected.len(),
        unexpected[0]
    );
    assert_eq!(
        slots(&seg),
        before,
        "{CALLS} failed acts for {SLEEPERS} live processes changed the process table"
    );
    assert_eq!(shown(&w, a, &ns, "m").2, Vec::<u32>::new(), "no waiters");

    // A killed waiting act leaves no phantom waiter and no slot.
    let s1 = &sleepers[1];
    let waiter = w.background(
        w.global(a, &ns, &["acquire", "m", "--holder", s1]),
        "a waiting acquire",
    );
    poll(Duration::from_secs(10), Duration::from_millis(20), || {
        let waiting = shown(&w, a, &ns, "m").2.contains(&waiter);
        waiting
            .then_some(())
            .ok_or("the waiting acquire --holder never showed as a waiter")
    });
    kill(waiter);
    poll(Duration::from_secs(5), Duration::from_millis(50), || {
        let (value, _, waiters) = shown(&w, a, &ns, "m");
        let table = slots(&seg);
        if waiters.is_empty() && table.external.is_empty() && value == 1 {
            return Ok(());
        }
        Err(format!(
            "after the waiting acquire --holder was killed: value {value}, waiters {waiters:?}, \
             external slots {:?}",
            table.external
        ))
    });
}
