//! Child roles that test binaries of both suites run, and what they report with.
//!
//! A role is a function a child process runs (see [`super::role`]); each test binary's own
//! `child_role` test names the roles its tests start.

use std::time::Duration;

use shmsem::{Error, Info, Semaphore};

use super::{arg, arg_or, arg_u32, mono_ns, report, wait_for_signal};

/// The semaphore named by the role's `name` parameter, get-or-create: in namespace `ns` (default
/// `default`), with capacity `cap` (default 1), and auto with idle period `idle_ms` if given.
pub fn open_arg() -> Semaphore {
    let name = arg("name");
    let mut opts = Semaphore::options()
        .namespace(arg_or("ns", shmsem::DEFAULT_NAMESPACE))
        .capacity(arg_u32("cap", 1));
    if let Ok(ms) = arg_or("idle_ms", "").parse::<u64>() {
        opts = opts.auto(Duration::from_millis(ms));
    }
    opts.open(&name)
        .unwrap_or_else(|e| panic!("opening {name}: {e}"))
}

/// A stable, short name for an outcome.
pub fn kind<T>(r: &Result<T, Error>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(Error::Timeout { .. }) => "Timeout".into(),
        Err(Error::WouldBlock { .. }) => "WouldBlock".into(),
        Err(Error::InvalidName { .. }) => "InvalidName".into(),
        Err(Error::InvalidArgument { .. }) => "InvalidArgument".into(),
        Err(Error::WeightTooLarge { .. }) => "WeightTooLarge".into(),
        Err(Error::NotHeld { .. }) => "NotHeld".into(),
        Err(Error::NotFound { .. }) => "NotFound".into(),
        Err(e) => format!("other:{e:?}"),
    }
}

/// `pid:weight` of every holder in `info`, sorted by pid, comma-separated; empty for none.
pub fn holder_list(info: &Info) -> String {
    let mut hs: Vec<(u32, u64)> = info.holders.iter().map(|p| (p.pid, p.weight)).collect();
    hs.sort_unstable();
    hs.iter()
        .map(|(p, w)| format!("{p}:{w}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// [`holder_list`] of `sem` now.
pub fn holders_of(sem: &Semaphore) -> String {
    holder_list(&sem.info().expect("info"))
}

/// Take `weight` at once (it must be free), report the `value` and `held`, hold until the
/// signal file named by the `release` parameter appears (at most `signal_timeout`), report the
/// time just before giving it back as `release_ns`, and after as `released`.
pub fn role_hold(signal_timeout: Duration) {
    let sem = open_arg();
    let weight = arg_u32("weight", 1);
    let permit = sem
        .try_acquire(weight)
        .unwrap_or_else(|e| panic!("holder could not take weight {weight} at once: {e}"));
    report("value", sem.info().expect("info").value);
    report("held", std::process::id());
    wait_for_signal(&arg("release"), signal_timeout);
    report("release_ns", mono_ns());
    drop(permit);
    report("released", mono_ns());
}
