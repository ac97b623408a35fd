//! Bug 11: a process found dead in the middle of a reclaim lost what it held elsewhere.

use shmsem::Semaphore;

use super::{
    common::{self, arg, mp::SIGNAL_TIMEOUT, report},
    open_persistent,
};

/// Hold weight 1 of each of the persistent capacity-2 semaphores named in `names`
/// (comma-separated), report `held`, and keep them until the signal `release` (or death).
pub fn role_hold_each() {
    let sems: Vec<Semaphore> = arg("names")
        .split(',')
        .map(|name| open_persistent(name, 2))
        .collect();
    let permits: Vec<_> = sems
        .iter()
        .map(|s| s.try_acquire(1).expect("weight 1 is free"))
        .collect();
    report("held", std::process::id());
    common::wait_for_signal("release", SIGNAL_TIMEOUT);
    drop(permits);
}

/// The test needs the kill points (the `failpoints` feature).
#[cfg(feature = "failpoints")]
mod late {
    use std::{os::unix::process::ExitStatusExt, time::Duration};

    use super::super::{
        Bg,
        common::{self, Spawn, TestDir, mp::CHILD_TIMEOUT},
        shown, within,
    };

    // =====================================================================================
    // Bug 11: a process found dead in the middle of a reclaim lost what it held elsewhere
    // =====================================================================================

    /// `D1` holds `a`; `D2` holds `a` and `b`. `D1` is SIGKILLed, and a `shmsem reap` stops
    /// (SIGSTOP at the `reclaim:frozen` kill point) once it has frozen `a`, the only semaphore the
    /// dead `D1` touched. Then `D2` is SIGKILLed and the reap goes on: recounting `a`, it finds `D2`
    /// dead too. It used to free every record of both, `D2`'s record of `b` included, without
    /// recounting `b`: `b` kept weight 1 that nobody held, for good. Now every semaphore a dead
    /// process touched is recounted before its records go, however late its death was found.
    #[test]
    fn a_process_found_dead_during_a_reclaim_gets_every_semaphore_it_held_recounted() {
        let dir = TestDir::new("xh-late-dead");
        let holding = |label: &str, names: &str| {
            let mut kid = Spawn::new(&dir, "hold_each")
                .label(label)
                .arg("names", names)
                .spawn();
            kid.expect("held", CHILD_TIMEOUT);
            kid
        };
        let mut d1 = holding("D1", "a");
        let mut d2 = holding("D2", "a,b");
        assert_eq!(d1.sigkill().signal(), Some(libc::SIGKILL));
        let mut reap = Bg::spawn_env(&dir, &["reap"], Some("reclaim:frozen/stop"));
        let pid = reap.child.id();
        assert!(
            within(Duration::from_secs(10), || common::is_stopped(pid)),
            "the reap never stopped at reclaim:frozen"
        );
        assert_eq!(d2.sigkill().signal(), Some(libc::SIGKILL));
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(pid as i32, libc::SIGCONT) };
        assert!(
            reap.wait_until(std::time::Instant::now() + CHILD_TIMEOUT),
            "the reap did not finish"
        );
        let reaped = format!("reap exit {:?}: {}", reap.code(), reap.stderr().trim());
        let (a, a_holders, _) = shown(&dir, "a");
        let (b, b_holders, _) = shown(&dir, "b");
        let summary = format!(
            "{reaped}; after it: a value {a} holders {a_holders:?}, b value {b} holders \
             {b_holders:?}"
        );
        eprintln!("late dead: {summary}");
        assert_eq!(
            (a, b),
            (0, 0),
            "weight of dead holders stayed behind: {summary}"
        );
    }
}
