//! The lifecycle chaos test (DESIGN §3): several processes do every operation of the
//! library at random on a few semaphores of one namespace, while the test SIGKILLs them at random
//! times and starts them again, for at least [`MIN_RUN`] and [`MIN_KILLS`] kills
//! (`SHMSEM_CHAOS_KILLS` raises it for a soak). A witness that does not depend on shmsem checks
//! that no more than the capacity is ever granted; at the end, with everything stopped and
//! reaped, every value must equal what the live holders hold.
//!
//! # Roles
//!
//! Every role is this test binary run again with `SHMSEM_CHAOS_ROLE` set (as in `storm.rs`), in
//! a private temporary `SHMSEM_DIR`, namespace [`NS`]:
//!
//! * **worker** (×[`WORKERS`]): [`OP_THREADS`] threads that pick at random: acquire with a
//!   weight (blocking, timed, try) and hold a little, then give back by dropping the permit, by
//!   `forget` + `exit` on the same thread, or by handing the entered weight to the *exiter*
//!   thread, which `exit`s it (enter/exit across threads); `enter`; `remove(false)`;
//!   `remove(true)` (on the names that allow it); `set_capacity` up and down; re-opening
//!   (get-or-create, so re-creation after a removal or an idle sweep); `list` (which sweeps idle
//!   auto semaphores); `reap`; `info`. A *churn* thread removes, changes capacities and sweeps
//!   about every millisecond, to race all that. One more thread acquires and releases with
//!   `acquire_for`/`release_for` on behalf of a `sleep` process the test started for that worker.
//! * **forker** (×[`FORKERS`], single-threaded): takes a guarded permit and entered weight,
//!   forks, and waits for the child. The child must hold nothing of its parent's: its `exit` of
//!   the parent's entered weight must be `NotHeld`, dropping its copy of the parent's permit must
//!   give nothing back, and `info` must still show the parent's holdings and a value at least as
//!   high; then it acquires a little on its own and `_exit`s. The forker checks its holdings again
//!   after the child ended (possibly SIGKILLed).
//! * **reaper**: `reap`, `list`, `info`, and acquires that it does not show the witness (which
//!   can hide nothing the witness checks). Since it puts nothing in the witness, it may die by
//!   itself: with the `failpoints` feature, most reapers are started with a random kill point
//!   (`SHMSEM_FAILPOINT=STEP@N`, any step of the engine: mid-recount, mid-acquire, mid-release,
//!   counted as a waiter, mid-registration). Besides, the test itself runs the CLI's `shmsem
//!   reap` now and then, half of them with a recount kill point, and SIGKILLs some of them too.
//!
//! Every few milliseconds the test SIGKILLs one of them at random (a worker, a forker together
//! with its child, a fork child alone, the reaper, or a running `shmsem reap`), at any point of
//! its life including registration, and starts a new one.
//!
//! # The names and what the witness checks
//!
//! Capacity changes revoke nothing and `remove(true)` starts a new semaphore while the old
//! holders still hold, so the rules are chosen so that each violation is a real bug:
//!
//! | name | kind | capacity | removal | witness rule |
//! |---|---|---|---|---|
//! | `mutex` | auto, idle 5–50 ms | 1 | `remove(false)`, idle sweep | strict, ≤ 1 |
//! | `fixed` | auto, idle 5–50 ms | 3 | `remove(false)`, idle sweep | strict, ≤ 3 |
//! | `flex` | auto, idle 5–50 ms | 2..=6, `set_capacity` | `remove(false)`, idle sweep | strict, ≤ 6 |
//! | `keep` | persistent | 4 | `remove(false)` | strict, ≤ 4 |
//! | `force` | persistent | 2 | `remove(true)`, `remove(false)` | per incarnation, ≤ 2 |
//! | `forceflex` | persistent | 1..=4, `set_capacity` | `remove(true)`, `remove(false)` | per incarnation, ≤ 4 |
//!
//! * **Strict** names are never force-removed: a removal or an idle sweep only happens while
//!   nothing is held, so at every moment the weight inside under the name, over all its
//!   incarnations, is at most the highest capacity the name can ever have. Creation and
//!   `set_capacity` stay within the bounds, so lowering the capacity under holders is legal.
//! * **Per-incarnation** names are persistent (no idle sweep) and every removal of them is
//!   bracketed in the witness: a remover sets its bit in the name's sequence word before
//!   `remove` and, in one `fetch_add`, clears it and counts one more finished removal after. An
//!   acquirer reads the word before it asks and after it got the weight; if both reads are equal
//!   and no removal was in progress, no removal happened while it acquired, so the grant came
//!   from incarnation *number of finished removals*, and its weight goes to that incarnation's
//!   bucket. Otherwise the grant is counted as unlabelled and checked by the final accounting
//!   only. Each bucket must stay at most the highest capacity.
//! * `info` and `list` must never show a value above the highest capacity of any name
//!   ([`MAX_CAP`]).
//! * The fork checks above.
//!
//! Unexpected errors (anything but timeouts, would-block, weight-too-large after a capacity
//! change, in-use, removed and not-found where a removal explains them, and `Busy` from a call
//! whose own deadline ran out while another process held a lock) are counted and fail the test
//! too.
//!
//! # The witness and SIGKILL
//!
//! A file outside `SHMSEM_DIR` that every process maps (`memmap2`). A process adds a weight
//! right after the engine granted it and takes it away right before giving it back, so with a
//! correct engine the witness never holds more than the engine has granted. Updates run under a
//! spin lock in the file: an *entry* in the process's own table (name, incarnation, weight) and
//! the counter it belongs to change together, and the adder checks the counter it produced.
//! Entries belong to the process, not the thread, so the exiter can take away what another thread
//! of its process put in.
//!
//! A killed process leaves its entries behind, and they must go before the engine can give its
//! weight to anyone else, or a correct engine would raise false alarms. The engine decides the
//! death of one of its processes by an OFD lock the process holds on its slot's byte (DESIGN
//! §5), and an OFD lock belongs to the open file description. So, as in `storm.rs`, the test
//! copies the process's descriptors into itself (`pidfd_getfd`) before the SIGKILL: all of those
//! that refer to a file in `SHMSEM_DIR`, whichever of them carries the lock. To the engine the
//! process stays alive until the test drops the copies. In order, to kill a process the test:
//!
//! 1. marks its witness owner *doomed* (under the lock): from then on it can add no entry;
//! 2. copies its descriptors into `SHMSEM_DIR` (a process that has entries has registered, so
//!    the description that carries its lock is among them); for a forker, also its child's,
//!    found by the pid the child recorded (checked to be the forker's child);
//! 3. SIGKILLs, and waits until the process is dead (`waitpid`, or a pidfd for a fork child);
//! 4. *purges* the owner: under the lock (taken over from the dead process if it died holding
//!    it), deletes its entries, recomputes every counter from all the entries, and closes any
//!    removal bracket it left open (as a finished removal, which can only split an incarnation's
//!    grants into two buckets, never merge two incarnations);
//! 5. drops the copies: now the engine may reclaim; then kills that worker's `sleep` process,
//!    whose externally held weight the engine reclaims after that.
//!
//! `acquire_for` weight is counted as the acting worker's; its holder lives until step 5, so the
//! engine keeps that weight until the witness has dropped it. The forker's child of a killed
//! forker gets `PR_SET_PDEATHSIG`; the test is a child subreaper and reaps every orphan, and every
//! process it starts dies with it (`PR_SET_PDEATHSIG`), so nothing outlives the test.
//!
//! # The final accounting
//!
//! After the last kill every role is SIGKILLed the same way and every `sleep` killed, and the
//! witness must be empty. Then, in fresh processes: `shmsem reap` (the CLI) and a reap; every
//! semaphore must have value 0 and no holders and no waiters (also as `shmsem ls --json` shows
//! them). Two processes then hold weights on every name: each value must equal the sum of the
//! holders' weights in `info` and the sum of what the holders took. One of them exits, the other
//! is SIGKILLed; after a reap every value is 0 again. Finally, after their idle period, the auto
//! semaphores must be swept: one that stays was left with a waiter count or reservation.
//!
//! # Running
//!
//! ```text
//! cargo test --release --all-features --test chaos -- --nocapture
//! SHMSEM_CHAOS_KILLS=100000 cargo test --release --all-features --test chaos -- --nocapture
//! ```
//!
//! The counts (kills, grants, removals, re-creations, violations, errors) go to stderr at the
//! end, with the first violations and errors as they happen. A run fails after
//! `SHMSEM_CHAOS_SECS` seconds (default: 300, or a quarter of a second per kill for a soak,
//! whichever is more), or when no grant happens for [`STALL_LIMIT`]. To narrow a failure down,
//! `SHMSEM_CHAOS_WITHOUT=fork,external,...` turns operations off (see [`WITHOUT_ENV`]).

#[path = "../common/mod.rs"]
mod common;
mod config;
mod rng;
mod witness;

// =====================================================================================
// Child side
// =====================================================================================

mod actor;
mod fork;
mod ops;
mod roles;

// =====================================================================================
// Parent side
// =====================================================================================

mod accounting;
mod kill;
mod procs;
mod run;

use std::{io, time::Instant};

use config::{MIN_RUN, kill_target, time_limit};
// The module docs link to these.
#[cfg(doc)]
use config::{FORKERS, MAX_CAP, MIN_KILLS, NS, OP_THREADS, STALL_LIMIT, WITHOUT_ENV, WORKERS};
use roles::{role_audit, role_forker, role_hold, role_idle, role_reaper, role_worker};
use run::Run;
use witness::Stat;

crate::child_roles! {
    "worker" => role_worker(), "forker" => role_forker(), "reaper" => role_reaper(),
    "audit" => role_audit(), "idle" => role_idle(), "hold" => role_hold(),
}

/// The chaos run: kill, purge, let go, respawn, until enough kills; then stop everything, reap
/// and account.
#[test]
fn lifecycle_chaos_never_over_grants_and_loses_nothing() {
    let target = kill_target();
    let limit = time_limit(target);
    // Orphans (children of killed forkers) come to us, to be reaped.
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes an integer.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
    assert_eq!(
        r,
        0,
        "PR_SET_CHILD_SUBREAPER: {}",
        io::Error::last_os_error()
    );

    let started = Instant::now();
    let mut run = Run::new();
    run.start();
    run.storm(target, MIN_RUN, limit);
    let kills = run.kills.total();
    run.stop_all();
    run.final_accounting();
    run.report(started.elapsed());

    let violations = run.violations();
    let errors = run.w.stat(Stat::Errors);
    let grants = run.w.stat(Stat::Grants);
    assert_eq!(violations, 0, "the witness saw violations (see above)");
    assert_eq!(errors, 0, "unexpected errors (see above)");
    assert!(
        run.failures.is_empty(),
        "{} failures:\n{}",
        run.failures.len(),
        run.failures.join("\n")
    );
    assert!(kills >= target, "only {kills} kills");
    assert!(grants > kills, "too few grants ({grants}) to mean anything");
}
