//! What the `lifecycle_*` test binaries share: their time limits and the `wait` role.

use std::time::Duration;

use shmsem::{Scope, Semaphore};

use super::{arg, arg_or, arg_u32, mono_ns, report, roles::open_arg, wait_for_signal, work_dir};

/// How long any child may take before the parent kills it and fails: generous, for a loaded
/// two-core machine running other test binaries at the same time.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a child waits for a signal from its parent before giving up.
pub const SIGNAL_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether the test that started this child is still running (its work directory exists).
pub fn parent_alive() -> bool {
    work_dir().exists()
}

/// Optionally hold weight 1 of `also_global` in the global scope, namespace `ci`; then wait up
/// to `timeout_ms` for `weight`, report `acquired_ns` (or `failed`), and hold what it got until
/// the file `done` appears.
pub fn role_wait() {
    let _global = match arg_or("also_global", "").as_str() {
        "" => None,
        name => {
            let g = Semaphore::options()
                .scope(Scope::Global)
                .namespace("ci")
                .open(name)
                .expect("opening the global semaphore");
            g.enter(1).expect("holding the global semaphore");
            Some(g)
        }
    };
    let sem = open_arg();
    let weight = arg_u32("weight", 1);
    let timeout = Duration::from_millis(arg_u32("timeout_ms", 60_000).into());
    report("waiting_ns", mono_ns());
    let r = sem.acquire_timeout(weight, timeout);
    match &r {
        Ok(_) => report("acquired_ns", mono_ns()),
        Err(e) => report("failed", format!("{e:?}")),
    }
    report("value", sem.info().map_or(u32::MAX, |i| i.value));
    wait_for_signal(&arg("done"), SIGNAL_TIMEOUT);
    drop(r);
}
