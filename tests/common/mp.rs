//! What the `multiprocess_*` test binaries share: their time limits, the `attempts` and
//! `observe` roles, and the parent-side helpers that start a holder, an attempter or an observer.

use std::time::{Duration, Instant};

use shmsem::Semaphore;

use super::{
    Kid, Reports, Spawn, TestDir, arg, arg_or, arg_u32, mono_ns, report,
    roles::{holders_of, kind, open_arg},
};

/// How long any child may take before the parent kills it and fails: generous, for a loaded
/// two-core machine running other test binaries at the same time.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a child waits for a signal from its parent before giving up.
pub const SIGNAL_TIMEOUT: Duration = Duration::from_secs(30);

// ===== child side =====

/// A sequence of acquire attempts (`attempts`: comma-separated `try`, `forever` or a timeout in
/// ms), each reported as `start{i}`, `end{i}` (ns), `elapsed_us{i}`, `result{i}`, `detail{i}`,
/// and the semaphore's `value{i}` and `holders{i}` right after. Permits won stay held until the
/// role ends.
pub fn role_attempts() {
    let sem = open_arg();
    report("open_value", sem.info().expect("info").value);
    let weight = arg_u32("weight", 1);
    let mut won = Vec::new();
    for (i, attempt) in arg("attempts").split(',').enumerate() {
        let start = mono_ns();
        report(&format!("start{i}"), start);
        let t = Instant::now();
        let r = match attempt {
            "try" => sem.try_acquire(weight),
            "forever" => sem.acquire_weight(weight),
            ms => sem.acquire_timeout(weight, Duration::from_millis(ms.parse().expect("ms"))),
        };
        let elapsed = t.elapsed();
        let end = mono_ns();
        report(&format!("end{i}"), end);
        report(&format!("elapsed_us{i}"), elapsed.as_micros());
        report(&format!("result{i}"), kind(&r));
        report(&format!("detail{i}"), format!("{r:?}"));
        report(&format!("value{i}"), sem.info().expect("info").value);
        report(&format!("holders{i}"), holders_of(&sem));
        if let Ok(p) = r {
            won.push(p);
        }
    }
    drop(won);
}

/// Open an existing semaphore and report what it looks like.
pub fn role_observe() {
    let name = arg("name");
    let sem = Semaphore::options()
        .namespace(arg_or("ns", shmsem::DEFAULT_NAMESPACE))
        .open_existing(&name)
        .unwrap_or_else(|e| panic!("observer opening {name}: {e}"));
    let info = sem.info().expect("info");
    report("capacity", info.capacity);
    report("value", info.value);
    report("holders", holders_of(&sem));
    report("waiters", info.waiters.len());
}

// ===== parent side =====

/// A child in `role` that takes weight `weight` of `name` (capacity `cap`), `label` in messages.
fn weighted<'a>(
    dir: &'a TestDir,
    role: &str,
    label: String,
    name: &str,
    cap: u32,
    weight: u32,
) -> Spawn<'a> {
    Spawn::new(dir, role)
        .label(label)
        .arg("name", name)
        .arg("cap", cap)
        .arg("weight", weight)
}

pub fn holder<'a>(dir: &'a TestDir, name: &str, cap: u32, weight: u32, release: &str) -> Spawn<'a> {
    let label = format!("holder {name} w{weight}");
    weighted(dir, "hold", label, name, cap, weight).arg("release", release)
}

pub fn attempts<'a>(dir: &'a TestDir, name: &str, cap: u32, weight: u32, list: &str) -> Spawn<'a> {
    let label = format!("attempts {name} w{weight} [{list}]");
    weighted(dir, "attempts", label, name, cap, weight).arg("attempts", list)
}

pub fn observe(dir: &TestDir, name: &str) -> Reports {
    Spawn::new(dir, "observe")
        .arg("name", name)
        .spawn()
        .success(CHILD_TIMEOUT)
}

/// Assert, from another process, that all the weight of `name` came back: value 0 and no
/// holders. Returns what the observer saw.
pub fn assert_all_back(dir: &TestDir, name: &str) -> Reports {
    let o = observe(dir, name);
    assert_eq!(o.req("value"), "0", "not all weight came back: {:?}", o.0);
    assert_eq!(o.req("holders"), "", "holders are left: {:?}", o.0);
    o
}

/// Start a holder and wait until it holds.
pub fn start_holder(dir: &TestDir, name: &str, cap: u32, weight: u32, release: &str) -> Kid {
    let mut kid = holder(dir, name, cap, weight, release).spawn();
    kid.expect("held", CHILD_TIMEOUT);
    kid
}
