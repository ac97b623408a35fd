//! Multi-process tests, bad input: invalid names and namespaces, weight 0, weights above the
//! capacity, capacity 0 or too large, and exiting more than was entered each get the right
//! typed error and change nothing, as another process sees.
//!
//! Every child process re-executes this test binary (`current_exe`) running only the
//! [`child_role`] entry point (an ignored test, see `common::child_main`), with `SHMSEM_TEST_ROLE`
//! naming what it does. Each test has its own fresh `SHMSEM_DIR`, given to its children in
//! their environment, and the harness process never calls the library: the tests run in
//! parallel threads of one process, and `SHMSEM_DIR` (like `SHMSEM_SELF`) is process-global.
//!
//! Children report to the parent on stdout with `@@mp KEY VALUE` lines (see `common`); times
//! that are compared across processes are `CLOCK_MONOTONIC` nanoseconds.

mod common;

use std::time::{Duration, Instant};

use common::{
    Spawn, TestDir,
    mp::{CHILD_TIMEOUT, SIGNAL_TIMEOUT, observe, role_observe},
    report,
    roles::{holders_of, kind},
    wait_for_signal,
};
use shmsem::{Scope, Semaphore};

// =====================================================================================
// The child side
// =====================================================================================

crate::child_roles! {
    "bad_input" => role_bad_input(), "observe" => role_observe(),
}

/// Records failed expectations of [`role_bad_input`] and what the semaphore must look like.
struct Checker {
    failures: Vec<String>,
    value: u32,
    holders: String,
}

impl Checker {
    /// `got` must start with `want`, and the semaphore must still have the expected value and
    /// holders.
    fn check(&mut self, sem: &Semaphore, label: &str, got: String, want: &str) {
        report("check", format!("{label} -> {got}"));
        if !got.starts_with(want) {
            self.failures
                .push(format!("{label}: got {got}, want {want}"));
        }
        let value = sem.info().expect("info").value;
        let holders = holders_of(sem);
        if value != self.value || holders != self.holders {
            self.failures.push(format!(
                "{label}: value {value} holders {holders:?} afterwards, want value {} holders {:?}",
                self.value, self.holders
            ));
        }
    }

    /// The semaphore legitimately changed: this process now holds `weight` of it.
    fn now_holding(&mut self, weight: u32) {
        self.value = weight;
        self.holders = format!("{}:{weight}", std::process::id());
    }
}

/// Bad input: each call returns the right typed error and leaves the semaphore as it was.
fn role_bad_input() {
    let sem = Semaphore::options()
        .capacity(3)
        .open("bad")
        .expect("open bad");
    let permit = sem.acquire().expect("acquire 1");
    let mut c = Checker {
        failures: Vec::new(),
        value: 0,
        holders: String::new(),
    };
    c.now_holding(1);

    let long = "x".repeat(201);
    let bad_names = [
        "",
        ".",
        "..",
        "a/b",
        "../etc",
        "a b",
        "\u{e9}",
        "a\0b",
        "name\n",
        long.as_str(),
    ];
    for name in bad_names {
        let r = Semaphore::options().capacity(3).open(name);
        c.check(&sem, &format!("open {name:?}"), kind(&r), "InvalidName");
        let r = Semaphore::options().open_existing(name);
        c.check(
            &sem,
            &format!("open_existing {name:?}"),
            kind(&r),
            "InvalidName",
        );
        let r = Semaphore::open(name, Scope::Local);
        c.check(
            &sem,
            &format!("Semaphore::open {name:?}"),
            kind(&r),
            "InvalidName",
        );
        let r = Semaphore::options().namespace(name).open("fine");
        c.check(
            &sem,
            &format!("namespace {name:?}"),
            kind(&r),
            "InvalidName",
        );
    }
    // Positive control: the longest valid name works.
    let r = Semaphore::options().open(&"x".repeat(200));
    c.check(&sem, "open a 200-byte name", kind(&r), "ok");

    // Weight 0.
    let r = sem.acquire_weight(0);
    c.check(&sem, "acquire_weight(0)", kind(&r), "InvalidArgument");
    drop(r);
    let r = sem.try_acquire(0);
    c.check(&sem, "try_acquire(0)", kind(&r), "InvalidArgument");
    drop(r);
    let r = sem.acquire_timeout(0, Duration::from_millis(100));
    c.check(&sem, "acquire_timeout(0)", kind(&r), "InvalidArgument");
    drop(r);
    let r = sem.enter(0);
    c.check(&sem, "enter(0)", kind(&r), "InvalidArgument");

    // Weight above the capacity: refused at once, never waited for.
    let t = Instant::now();
    let r = sem.acquire_weight(4);
    c.check(
        &sem,
        "acquire_weight(4), capacity 3",
        format!("{r:?}"),
        "Err(WeightTooLarge { weight: 4, capacity: 3 })",
    );
    drop(r);
    let r = sem.try_acquire(4);
    c.check(
        &sem,
        "try_acquire(4), capacity 3",
        kind(&r),
        "WeightTooLarge",
    );
    drop(r);
    let r = sem.acquire_timeout(4, Duration::from_secs(3));
    c.check(
        &sem,
        "acquire_timeout(4), capacity 3",
        kind(&r),
        "WeightTooLarge",
    );
    drop(r);
    let r = sem.enter(4);
    c.check(&sem, "enter(4), capacity 3", kind(&r), "WeightTooLarge");
    let r = sem.acquire_weight(u32::MAX);
    c.check(&sem, "acquire_weight(u32::MAX)", kind(&r), "WeightTooLarge");
    drop(r);
    let took = t.elapsed();
    report("too_large_ms", took.as_millis());
    if took > Duration::from_secs(2) {
        c.failures.push(format!(
            "weight > capacity took {took:?}: it must be refused at once"
        ));
    }

    // Capacity 0 (and too large): refused, nothing created, the existing one untouched.
    let r = Semaphore::options().capacity(0).open("zero");
    c.check(&sem, "capacity 0, new name", kind(&r), "InvalidArgument");
    let r = Semaphore::options().open_existing("zero");
    c.check(&sem, "capacity 0 created nothing", kind(&r), "NotFound");
    let r = Semaphore::options().capacity(0).open("bad");
    c.check(
        &sem,
        "capacity 0, existing name",
        kind(&r),
        "InvalidArgument",
    );
    let r = Semaphore::options().capacity(u32::MAX).open("huge");
    c.check(&sem, "capacity u32::MAX", kind(&r), "InvalidArgument");
    if sem.capacity() != 3 {
        c.failures
            .push(format!("capacity changed to {}", sem.capacity()));
    }

    // Exit more than entered. The permit held is not "entered": it cannot be exited. Each step
    // enters or exits `weight`, must give what its `Debug` starts with, and leaves this process
    // holding the weight given, if any changed.
    let entered_steps = [
        (
            "exit",
            1,
            ", nothing entered",
            "Err(NotHeld { count: 1, held: 0 })",
            None,
        ),
        ("exit", 0, "", "Err(InvalidArgument", None),
        ("enter", 2, "", "Ok(())", Some(3)),
        (
            "exit",
            3,
            " after enter(2)",
            "Err(NotHeld { count: 3, held: 2 })",
            None,
        ),
        ("exit", 2, " after enter(2)", "Ok(())", Some(1)),
        (
            "exit",
            1,
            " after everything was exited",
            "Err(NotHeld { count: 1, held: 0 })",
            None,
        ),
    ];
    for (op, weight, when, want, holding) in entered_steps {
        let r = match op {
            "enter" => sem.enter(weight),
            _ => sem.exit(weight),
        };
        if let Some(held) = holding {
            c.now_holding(held);
        }
        c.check(
            &sem,
            &format!("{op}({weight}){when}"),
            format!("{r:?}"),
            want,
        );
    }

    // Everything still works after all that.
    let r = sem.try_acquire(2);
    c.now_holding(3);
    c.check(&sem, "try_acquire(2) fills it", kind(&r), "ok");
    drop(r);
    c.now_holding(1);
    c.check(&sem, "and gives it back", "ok".into(), "ok");

    report("failures", c.failures.len());
    for f in &c.failures {
        report("failure", f);
    }
    report("held", std::process::id());
    wait_for_signal("release", SIGNAL_TIMEOUT);
    drop(permit);
    assert!(
        c.failures.is_empty(),
        "bad input checks failed:\n{}",
        c.failures.join("\n")
    );
}

// =====================================================================================
// The parent side: the tests
// =====================================================================================

/// bad input gets the right typed error and changes nothing, as another process
/// sees.
#[test]
fn bad_input_gives_typed_errors_and_changes_nothing() {
    let dir = TestDir::new("bad");
    let mut b = Spawn::new(&dir, "bad_input").spawn();
    let failures = b.expect("failures", CHILD_TIMEOUT);
    if failures != "0" {
        dir.signal("release");
        let _ = b.finish(CHILD_TIMEOUT);
        panic!("bad input checks failed\n{}", b.transcript());
    }
    b.expect("held", CHILD_TIMEOUT);
    let o = observe(&dir, "bad");
    assert_eq!(o.req("capacity"), "3");
    assert_eq!(o.req("value"), "1");
    assert_eq!(o.req("holders"), format!("{}:1", b.pid()));
    dir.signal("release");
    b.success(CHILD_TIMEOUT);
    // Nothing was created for any invalid name or namespace: the one file of the namespace
    // used, its segment, is all there is.
    assert_eq!(dir.shm_files(), vec!["local.default".to_owned()]);
}
