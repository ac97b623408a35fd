//! Bug 1: a non-forced remove removed a held semaphore.

use std::{
    sync::atomic::Ordering::SeqCst,
    thread,
    time::{Duration, Instant},
};

use shmsem::{Error, Semaphore};

use super::{
    common::{
        Spawn, TestDir, Witness, arg, cli::ok, mp::CHILD_TIMEOUT, report, roles::open_arg, work_dir,
    },
    signalled,
};

/// Bug 1, a holder: acquire weight 1 of the auto semaphore `name` with a timeout, again and
/// again until `stop`. While holding it checks the witness (never two inside) and, just before
/// giving back, that its handle's semaphore is still the live one: a `Removed` there means a
/// non-forced remove succeeded while this permit was held.
pub fn role_cycler() {
    let sem = open_arg();
    let witness = Witness::open(&work_dir().join("witness"));
    let (mut ops, mut seen_two, mut removed_while_held, mut errors) = (0u64, 0u64, 0u64, 0u64);
    let deadline = Instant::now() + CHILD_TIMEOUT;
    report("started", std::process::id());
    while !signalled("stop") && Instant::now() < deadline {
        match sem.acquire_timeout(1, Duration::from_secs(2)) {
            Ok(permit) => {
                if witness.enter(1) > 1 {
                    seen_two += 1;
                }
                for _ in 0..300 {
                    std::hint::spin_loop();
                }
                witness.leave();
                match sem.info() {
                    Ok(_) => {}
                    Err(Error::Removed { .. }) => removed_while_held += 1,
                    Err(e) => count_error(&mut errors, "info while holding", &e),
                }
                drop(permit);
                ops += 1;
            }
            Err(e) => count_error(&mut errors, "acquire", &e),
        }
    }
    report_counts(&[
        ("ops", ops),
        ("seen_two", seen_two),
        ("removed_while_held", removed_while_held),
        ("errors", errors),
    ]);
}

/// Bug 1, the remover: `open_existing(name)?.remove(false)` again and again until `stop`,
/// counting successful removals and refusals.
pub fn role_remover() {
    let name = arg("name");
    let witness = Witness::open(&work_dir().join("witness"));
    let (mut removed, mut in_use, mut absent, mut errors) = (0u64, 0u64, 0u64, 0u64);
    // Informational only: someone may legitimately re-create and acquire between the removal and
    // this look.
    let mut inside_after = 0u64;
    let deadline = Instant::now() + CHILD_TIMEOUT;
    report("started", std::process::id());
    while !signalled("stop") && Instant::now() < deadline {
        match Semaphore::options().open_existing(&name) {
            Ok(sem) => match sem.remove(false) {
                Ok(()) => {
                    removed += 1;
                    if witness.inside().load(SeqCst) != 0 {
                        inside_after += 1;
                    }
                }
                Err(Error::InUse { .. }) => in_use += 1,
                Err(Error::NotFound { .. } | Error::Removed { .. }) => absent += 1,
                Err(e) => count_error(&mut errors, "remove", &e),
            },
            Err(Error::NotFound { .. }) => absent += 1,
            Err(e) => count_error(&mut errors, "open_existing", &e),
        }
    }
    report_counts(&[
        ("removed", removed),
        ("in_use", in_use),
        ("absent", absent),
        ("inside_after", inside_after),
        ("errors", errors),
    ]);
}

/// Count an unexpected error of `what` and report it as `error`.
fn count_error(errors: &mut u64, what: &str, e: &Error) {
    *errors += 1;
    report("error", format!("{what}: {e:?}"));
}

/// Report each count under its key.
fn report_counts(counts: &[(&str, u64)]) {
    for (key, n) in counts {
        report(key, n);
    }
}

// =====================================================================================
// Bug 1: a non-forced remove removed a held semaphore
// =====================================================================================

/// How long the holders and the remover race.
const REMOVE_RACE: Duration = Duration::from_secs(4);

/// Two processes loop `acquire_timeout` on a capacity-1 auto semaphore while a third loops
/// `open_existing(..).remove(false)`. The witness must never see two holders, and no holder may
/// find, while it holds its permit, that its semaphore was removed: every successful non-forced
/// removal happened while nobody held.
#[test]
fn a_non_forced_remove_never_removes_a_semaphore_while_a_permit_is_held() {
    let dir = TestDir::new("xh-remove");
    Witness::create(&dir.work_file("witness"));
    // Create it first, so the remover has something to remove from the start.
    ok(&dir, &["create", "rr"]);
    let cycler = |i: u32| {
        Spawn::new(&dir, "cycler")
            .label(format!("holder {i}"))
            .arg("name", "rr")
            .arg("cap", 1)
            .spawn()
    };
    let mut holders = [cycler(0), cycler(1)];
    let mut remover = Spawn::new(&dir, "remover").arg("name", "rr").spawn();
    for k in holders.iter_mut().chain([&mut remover]) {
        k.expect("started", CHILD_TIMEOUT);
    }
    thread::sleep(REMOVE_RACE);
    dir.signal("stop");
    let r = remover.success(CHILD_TIMEOUT);
    let hs: Vec<_> = holders
        .iter_mut()
        .map(|h| h.success(CHILD_TIMEOUT))
        .collect();
    let w = Witness::open(&dir.work_file("witness"));
    let ops: u64 = hs.iter().map(|h| h.u64("ops")).sum();
    let removed_while_held: u64 = hs.iter().map(|h| h.u64("removed_while_held")).sum();
    let seen_two: u64 = hs.iter().map(|h| h.u64("seen_two")).sum();
    let summary = format!(
        "{ops} grants, witness max inside {} ({} violations), {} successful removals ({} in use, \
         {} absent, {} with someone inside right after), {removed_while_held} permits found \
         their semaphore removed while held, holder errors {:?} (last: {:?}), remover errors {} \
         (last: {:?})",
        w.max_inside().load(SeqCst),
        w.violations().load(SeqCst),
        r.u64("removed"),
        r.u64("in_use"),
        r.u64("absent"),
        r.u64("inside_after"),
        hs.iter().map(|h| h.u64("errors")).collect::<Vec<_>>(),
        hs.iter().map(|h| h.get("error")).collect::<Vec<_>>(),
        r.u64("errors"),
        r.get("error"),
    );
    eprintln!("remove race: {summary}");
    assert!(
        ops > 100 && r.u64("removed") > 0,
        "the race did not run: {summary}"
    );
    assert_eq!(
        removed_while_held, 0,
        "a non-forced remove succeeded while a permit was held: {summary}"
    );
    assert_eq!(
        (w.violations().load(SeqCst), seen_two),
        (0, 0),
        "two holders of a capacity-1 semaphore at once: {summary}"
    );
}
