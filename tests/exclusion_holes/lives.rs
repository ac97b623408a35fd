//! Bug 6: the 16-bit generation wrapped.

use std::time::Instant;

use shmsem::Semaphore;

use super::{
    Others,
    common::{
        self, Spawn, TestDir, arg, arg_u32,
        mp::{CHILD_TIMEOUT, SIGNAL_TIMEOUT},
        report,
        roles::kind,
    },
    open_persistent,
};

/// Bug 6, handle A: take weight 1 of the persistent semaphore `name`, report `held`, drop the
/// permit at the signal `drop`, and live on until the signal `exit` (a dead process's records
/// would be recounted, which would hide what its drop did).
pub fn role_old_holder() {
    let sem = open_persistent(&arg("name"), 1);
    let permit = sem.try_acquire(1).expect("the first holder takes weight 1");
    report("held", std::process::id());
    common::wait_for_signal("drop", SIGNAL_TIMEOUT);
    drop(permit);
    report("dropped", mono_ms());
    common::wait_for_signal("exit", SIGNAL_TIMEOUT);
}

fn mono_ms() -> u64 {
    common::mono_ns() / 1_000_000
}

/// Bug 6, process B: `remove(true)` and re-create the persistent semaphore `name` `cycles`
/// times, then take weight 1 of the new one and hold it until the signal `release`.
pub fn role_recreator() {
    let name = arg("name");
    let cycles = arg_u32("cycles", 32_768);
    let opts = Semaphore::options().capacity(1).persistent();
    let mut sem = opts
        .open(&name)
        .unwrap_or_else(|e| panic!("opening {name}: {e}"));
    let t = Instant::now();
    for i in 0..cycles {
        sem.remove(true)
            .unwrap_or_else(|e| panic!("cycle {i}: remove(true): {e}"));
        sem = opts
            .open(&name)
            .unwrap_or_else(|e| panic!("cycle {i}: re-creating {name}: {e}"));
    }
    report("cycled", cycles);
    report("cycle_ms", t.elapsed().as_millis());
    let r = sem.try_acquire(1);
    report("take", kind(&r));
    report("value", sem.info().map_or(u32::MAX, |i| i.value));
    common::wait_for_signal("release", SIGNAL_TIMEOUT);
    drop(r);
    report("released", mono_ms());
}

// =====================================================================================
// Bug 6: the 16-bit generation wrapped
// =====================================================================================

/// Process A holds weight 1 of persistent `r` (capacity 1). Process B removes it with force and
/// creates it again 32,768 times (each cycle moves a 16-bit generation on by 2, so it comes back
/// to A's), then takes weight 1 of the new `r`. A drops its old permit and lives on: the new
/// value must stay 1, held by B, and a third process's try must be `WouldBlock`.
#[test]
fn an_old_permit_cannot_touch_a_semaphore_removed_and_recreated_32768_times() {
    let dir = TestDir::new("xh-wrap");
    let mut a = Spawn::new(&dir, "old_holder").arg("name", "r").spawn();
    a.expect("held", CHILD_TIMEOUT);
    let mut b = Spawn::new(&dir, "recreator")
        .arg("name", "r")
        .arg("cycles", 32_768)
        .spawn();
    let take = b.expect("take", CHILD_TIMEOUT);
    let cycle_ms = b.expect("cycle_ms", CHILD_TIMEOUT);
    assert_eq!(take, "ok", "B could not take the new semaphore");
    dir.signal("drop");
    a.expect("dropped", CHILD_TIMEOUT);
    // A lives on: nothing of it is reclaimed.
    let others = Others::look(&dir, "r");
    let summary = format!(
        "32768 cycles in {cycle_ms} ms; after A's old permit was dropped (B = {}): {others}",
        b.pid()
    );
    eprintln!("generation wrap: {summary}");
    others.assert_held_alone_by(b.pid(), "B", &summary);
    dir.signal("release");
    dir.signal("exit");
    b.success(CHILD_TIMEOUT);
    a.success(CHILD_TIMEOUT);
}
