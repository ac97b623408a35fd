//! Two corruption scenarios beyond single fields (see `tests/corruption.rs` for the harness):
//! a holder stopped in the middle of an operation beside a dead holder, and a state word frozen
//! under a live recounter. Each must still end in bounded time with `Ok` or a typed error.

mod common;

use std::{fs, mem::offset_of};

use common::{Spawn, TestDir};
use shmsem::internals::layout::{
    HOLDERS_OFFSET, HolderRecord, PROCS_OFFSET, ProcSlot, SEMS_OFFSET, SemRecord,
};

/// Namespaces, and so cases run at once.
use common::corruption::*;

crate::child_roles!(dispatch common::corruption::role);

/// Not a corruption: the state a live holder is in when it is stopped (SIGSTOP, a debugger)
/// between marking its record busy and its compare-exchange — here made by setting the busy flag
/// of the stopped holder's record — together with a dead holder on the same semaphore. The
/// reclaim at open then cannot finish (it waits for the live record, by design), but that must
/// not make the namespace impossible to open for everyone while the holder is stopped (DESIGN
/// §5: a stopped process is alive; DESIGN §1: a hostile writer can set that flag too). Expected: a
/// new process opens, acquires the free weight and lists; once the holder goes on, a reap gives
/// the dead holder's weight back.
#[test]
fn a_holder_stopped_mid_operation_does_not_make_the_namespace_unopenable() {
    let dir = TestDir::new("stopped");
    let (mut live, live_pid, dead_pid) = live_and_dead_holders(&dir, "stop");

    let seg = dir.shm.join("local.stop");
    let snap = fs::read(&seg).unwrap();
    let found = find_records(&snap, live_pid, dead_pid);
    let off = HOLDERS_OFFSET
        + found.live_record * size_of::<HolderRecord>()
        + offset_of!(HolderRecord, holding);
    let holding = u64_at(&snap, off);
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(live_pid as i32, libc::SIGSTOP) }, 0);
    write_field(
        &seg,
        off as u64,
        8,
        holding | shmsem::internals::protocol::holding::BUSY,
    );

    let probe = |label: &str| {
        Spawn::new(&dir, "probe")
            .label(label)
            .arg("ns", "stop")
            .spawn()
            .success(SETUP_TIMEOUT)
    };
    let r = probe("while L is stopped mid-operation");
    // The holder goes on and finishes its operation (its record is as before).
    write_field(&seg, off as u64, 8, holding);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(live_pid as i32, libc::SIGCONT) }, 0);
    let after = probe("after L went on");
    dir.signal("end");
    live.success(SETUP_TIMEOUT);

    assert_eq!(
        after.req("reap"),
        ".",
        "once L went on, reaping works: {:?}",
        after.0
    );
    assert_eq!(
        after.u64("reaped"),
        1,
        "D's weight comes back once L went on: {:?}",
        after.0
    );
    for step in ["open", "try", "list"] {
        assert_eq!(
            r.req(step),
            ".",
            "with a holder stopped mid-operation and a dead holder on the same semaphore, \
             {step} failed ({:?}; letters: {LEGEND})",
            r.0
        );
    }
}

/// Two fields at once: a state word frozen while its `recounter` names a live process (here the
/// live holder `L`, which is not recounting: a hostile writer, or a recounter that is stopped).
/// The victim holds weight 1 when this happens; its release must still end within the bound
/// (with `Ok` or a typed error), as every other step must.
#[test]
fn a_release_on_a_word_frozen_under_a_live_recounter_ends_in_bounded_time() {
    let dir = TestDir::new("frozen");
    let (mut live, live_pid, dead_pid, snaps) = setup(&dir, 1);
    let found = find_records(&snaps[0], live_pid, dead_pid);
    let sem = SEMS_OFFSET + found.sem * size_of::<SemRecord>();
    let state = u32_at(
        &snaps[0],
        PROCS_OFFSET + found.live_slot * size_of::<ProcSlot>() + offset_of!(ProcSlot, state),
    );
    let live_recounter = ((found.live_slot as u64 + 1) << 32) | u64::from(state >> 8);
    let word = u64_at(&snaps[0], sem + offset_of!(SemRecord, word));
    let mut f = field("sem.word+recounter", sem + offset_of!(SemRecord, word), 8);
    f.pre = Some((sem + offset_of!(SemRecord, recounter), 8, live_recounter));
    let (cell, bad) = run_victim(
        &dir,
        0,
        "hot",
        &f,
        word | shmsem::internals::word::FROZEN,
        0,
    );
    dir.signal("end");
    live.success(SETUP_TIMEOUT);
    println!(
        "outcome: {cell} (steps: {}; letters: {LEGEND})",
        STEPS.join(" ")
    );
    assert!(bad.is_none(), "{}", bad.unwrap());
}
