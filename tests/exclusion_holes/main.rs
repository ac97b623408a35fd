//! Regression tests for the exclusion holes of DESIGN §3 (*Exclusion holes that cannot
//! happen*): bugs 1, 3 to 11, each replayed as it was found, asserting the fixed behaviour.
//!
//! | bug | tests |
//! |---|---|
//! | 1 | [`removal::a_non_forced_remove_never_removes_a_semaphore_while_a_permit_is_held`] |
//! | 3 | [`fork::a_forked_child_can_neither_release_nor_retake_its_parents_entered_weight`], |
//! |   | [`fork::a_forked_child_outliving_its_killed_parent_leaves_the_namespace_usable`] |
//! | 4 | [`acting::acquiring_for_a_holder_never_hangs_while_other_processes_register`] |
//! | 5 | [`acting::releasing_for_a_holder_is_not_blocked_by_a_waiting_acquire_for_the_same_holder`], |
//! |   | [`acting::a_dead_holders_weight_comes_back_while_an_acquire_waits_on_its_behalf`] |
//! | 6 | [`lives::an_old_permit_cannot_touch_a_semaphore_removed_and_recreated_32768_times`] |
//! | 7 | [`acting::a_cli_killed_between_its_swap_and_its_record_store_is_repaired_by_reap`] |
//! | 8 | [`waiters::a_killed_waiter_does_not_keep_an_auto_semaphore_alive`] |
//! | 9 | [`fork::a_forked_child_on_the_fast_path_cannot_give_back_its_parents_permits`] |
//! | 10 | `waiters::a_dead_waiters_reservation_on_a_semaphore_created_again_goes_with_it` (kill points) |
//! | 11 | `reclaim::late::a_process_found_dead_during_a_reclaim_gets_every_semaphore_it_held_recounted` (kill points) |
//!
//! As in the other multi-process tests, library users are child processes that re-execute this
//! test binary in a role (see `common`), the CLI is the built `shmsem` binary, every test has its
//! own `SHMSEM_DIR`, and kills are real SIGKILLs. The harness process never calls the library.
//! Races are looped a bounded number of times (or for a bounded time) so that every test ends
//! within about ten seconds whatever the engine does.

#[path = "../common/mod.rs"]
mod common;

mod acting;
mod bg;
mod fork;
mod lives;
mod reclaim;
mod removal;
mod waiters;

use std::{
    fmt, thread,
    time::{Duration, Instant},
};

use shmsem::Semaphore;

use bg::Bg;
use common::{
    TestDir,
    cli::{parties, show},
    mp::{CHILD_TIMEOUT, SIGNAL_TIMEOUT},
    roles::role_hold,
    work_dir,
};

// =====================================================================================
// The child side
// =====================================================================================

crate::child_roles! {
    "cycler" => removal::role_cycler(), "remover" => removal::role_remover(),
    "forker" => fork::role_forker(), "permit_forker" => fork::role_permit_forker(),
    "hold_each" => reclaim::role_hold_each(), "old_holder" => lives::role_old_holder(),
    "recreator" => lives::role_recreator(), "waiter" => waiters::role_waiter(),
    "actor" => acting::role_actor(), "registrar" => acting::role_registrar(),
    "hold" => role_hold(SIGNAL_TIMEOUT), "attempts" => common::mp::role_attempts(),
}

/// The persistent semaphore `name` with capacity `capacity`, get-or-create.
fn open_persistent(name: &str, capacity: u32) -> Semaphore {
    Semaphore::options()
        .capacity(capacity)
        .persistent()
        .open(name)
        .unwrap_or_else(|e| panic!("opening {name}: {e}"))
}

/// Whether the file `work/name` exists; `true` also once the work directory is gone (the test
/// ended), so that no child outlives its test for long.
fn signalled(name: &str) -> bool {
    let dir = work_dir();
    !dir.exists() || dir.join(name).exists()
}

/// Write `key value` to stdout from a forked child, with one `write(2)` and no lock.
fn report_raw(key: &str, value: impl std::fmt::Display) {
    let line = format!("\n{}{key} {value}\n", common::MARK);
    // SAFETY: writing an initialised buffer of its own length to descriptor 1.
    unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
}

// =====================================================================================
// Parent-side helpers
// =====================================================================================

/// `show NAME --json` through the CLI: value, holders and waiters as `(pid, weight)` lists.
type Shown = (u64, Vec<(u64, u64)>, Vec<(u64, u64)>);

fn shown(dir: &TestDir, name: &str) -> Shown {
    let v = show(dir, name);
    (
        v["value"].as_u64().expect("value is a number"),
        parties(&v, "holders"),
        parties(&v, "waiters"),
    )
}

/// What other processes see of a capacity-1 semaphore: `show`'s value and holders, and what a
/// third process's `try_acquire(1)` got.
struct Others {
    value: u64,
    holders: Vec<(u64, u64)>,
    third: String,
}

impl Others {
    fn look(dir: &TestDir, name: &str) -> Others {
        let (value, holders, _) = shown(dir, name);
        let third = common::mp::attempts(dir, name, 1, 1, "try")
            .spawn()
            .success(CHILD_TIMEOUT);
        Others {
            value,
            holders,
            third: third.req("result0").to_owned(),
        }
    }

    /// Assert that process `pid`, `who` in the messages, alone holds weight 1 and that the third
    /// process was refused.
    fn assert_held_alone_by(&self, pid: u32, who: &str, summary: &str) {
        assert_eq!(
            (self.value, self.holders.as_slice()),
            (1, &[(u64::from(pid), 1)][..]),
            "{who} no longer holds alone: {summary}"
        );
        assert_eq!(
            self.third, "WouldBlock",
            "a third process was granted while {who} holds: {summary}"
        );
    }
}

impl fmt::Display for Others {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "value {}, holders {:?}, a third process's try: {}",
            self.value, self.holders, self.third
        )
    }
}

/// Poll `cond` every 10 ms for at most `limit`; whether it came true.
fn within(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Wait until `show` lists a waiter of `name`; whether it did within 10 s.
fn until_waiting(dir: &TestDir, name: &str) -> bool {
    within(Duration::from_secs(10), || !shown(dir, name).2.is_empty())
}
