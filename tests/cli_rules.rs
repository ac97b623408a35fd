//! End-to-end tests of the command line's contract for users of `flock(1)` and GNU parallel's
//! `sem` (README, *In a shell*): capacity mismatches warn, `create --new`, `shmsem tree` and
//! `--scope self`, durations with units, `shmsem wait`, the short flags, completions and the man
//! page, and out-of-range numbers as usage errors.
//!
//! Every test has its own `SHMSEM_DIR`; timing is checked only with generous one-sided bounds.

mod common;

use std::{
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use common::{
    TestDir,
    cli::{BIN, Run, Sleeper, command, eventually, names, ok, run, show},
};

/// `shmsem ARGS` that must succeed without a word on stderr.
fn quiet_ok(dir: &TestDir, args: &[&str]) -> Run {
    let r = ok(dir, args);
    assert_eq!(r.stderr, "", "{r:?}");
    r
}

/// `shmsem ARGS` that must be a usage error (exit 2, one line) mentioning `what`.
fn usage(dir: &TestDir, args: &[&str], what: &str) {
    let r = run(dir, args);
    r.failed(2);
    assert!(r.stderr.contains(what), "{what:?} not in {r:?}");
}

/// `shmsem ARGS` and how long it took.
fn timed(dir: &TestDir, args: &[&str]) -> (Run, Duration) {
    let start = Instant::now();
    let r = run(dir, args);
    (r, start.elapsed())
}

// ===== 1. capacity mismatch =====

#[test]
fn a_different_capacity_warns_and_changes_nothing() {
    let dir = TestDir::new("rules-mismatch");
    quiet_ok(&dir, &["create", "a", "--capacity", "2"]);
    let holder = Sleeper::spawn();
    let cases: [&[&str]; 4] = [
        &["create", "a", "--capacity", "3"],
        &["run", "a", "--capacity", "3", "--", "true"],
        &["acquire", "a", "--capacity", "3", "--holder", &holder.pid()],
        &["run", "a", "--capacity", "3", "--", "sh", "-c", "exit 4"],
    ];
    for (i, args) in cases.iter().enumerate() {
        let r = run(&dir, args);
        assert_eq!(r.code, if i == 3 { 4 } else { 0 }, "{r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
        for part in [
            "shmsem: warning: ",
            "capacity 2",
            "--capacity 3",
            "shmsem set a --capacity 3",
        ] {
            assert!(r.stderr.contains(part), "{part:?} not in {r:?}");
        }
        assert_eq!(show(&dir, "a")["capacity"], 2);
    }
    ok(&dir, &["release", "a", "--holder", &holder.pid()]);

    // No warning: the same capacity, no --capacity at all, or -q/--quiet (before or after).
    quiet_ok(&dir, &["create", "a", "--capacity", "2"]);
    quiet_ok(&dir, &["create", "a"]);
    quiet_ok(&dir, &["run", "a", "--", "true"]);
    quiet_ok(&dir, &["-q", "create", "a", "--capacity", "5"]);
    quiet_ok(
        &dir,
        &["run", "a", "--capacity", "5", "--quiet", "--", "true"],
    );
    assert_eq!(show(&dir, "a")["capacity"], 2);
    // A new semaphore gets the given capacity, or 1.
    quiet_ok(&dir, &["run", "b", "--capacity", "4", "--", "true"]);
    quiet_ok(&dir, &["create", "c", "--persistent"]);
    assert_eq!(show(&dir, "c")["capacity"], 1);
}

// ===== 2. create --new =====

#[test]
fn create_new_fails_with_status_1_when_the_name_exists() {
    let dir = TestDir::new("rules-new");
    let r = quiet_ok(
        &dir,
        &["create", "n", "--new", "--capacity", "2", "--persistent"],
    );
    assert!(r.stdout.starts_with('n'), "{r:?}");
    let r = run(&dir, &["create", "n", "--new", "--capacity", "3"]);
    r.failed(1);
    assert!(r.stderr.contains("already exists"), "{r:?}");
    assert_eq!(show(&dir, "n")["capacity"], 2);
    ok(&dir, &["rm", "n"]);
    quiet_ok(&dir, &["create", "n", "--new"]);
}

// ===== 3. shmsem tree and --scope self =====

#[test]
fn runs_in_one_tree_exclude_each_other() {
    let dir = TestDir::new("rules-tree");
    let script = format!("for i in 1 2; do {BIN} --scope self run m -- sleep 1 & done; wait");
    let (r, took) = timed(&dir, &["tree", "--", "sh", "-c", &script]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{r:?}");
    assert!(took >= Duration::from_secs(2), "took {took:?}: {r:?}");
}

#[test]
fn tree_names_itself_and_passes_the_status_on() {
    let dir = TestDir::new("rules-tree-status");
    let child = command(&dir, &["tree", "--", "sh", "-c", "echo $SHMSEM_SELF"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawning shmsem tree");
    let pid = child.id();
    let out = child.wait_with_output().expect("waiting for shmsem tree");
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(seen.starts_with(&format!("{pid}-")), "{seen:?}");
    // A tree inside a tree is a new one, rooted at the inner `shmsem tree`.
    let r = ok(
        &dir,
        &[
            "tree",
            "--",
            BIN,
            "tree",
            "--",
            "sh",
            "-c",
            "echo $SHMSEM_SELF",
        ],
    );
    assert!(!r.stdout.trim().is_empty(), "{r:?}");

    assert_eq!(run(&dir, &["tree", "--", "sh", "-c", "exit 7"]).code, 7);
    assert_eq!(
        run(&dir, &["tree", "--", "sh", "-c", "kill -TERM $$"]).code,
        143
    );
    assert_eq!(run(&dir, &["tree", "--", "no-such-command-here"]).code, 127);
    usage(&dir, &["tree"], "CMD");
}

#[test]
fn tree_forwards_sigterm_to_its_command() {
    let dir = TestDir::new("rules-tree-signal");
    let mut child = command(&dir, &["tree", "--", "sleep", "30"])
        .spawn()
        .expect("spawning shmsem tree");
    // Let it start the command and install its handlers.
    thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("waiting for shmsem tree");
    assert_eq!(status.code(), Some(143), "{status:?}");
    assert!(start.elapsed() < Duration::from_secs(20));
}

#[test]
fn scope_self_outside_a_tree_is_bad_usage() {
    let dir = TestDir::new("rules-self");
    for args in [
        &["--scope", "self", "ls"][..],
        &["--scope", "self", "create", "x"],
        &["run", "x", "--scope", "self", "--", "true"],
        &["--scope", "self", "wait", "x"],
    ] {
        usage(&dir, args, "shmsem tree");
    }
    assert!(names(&dir).is_empty());
    // A deliberate SHMSEM_SELF (as `shmsem tree` sets) is a tree.
    let r = command(&dir, &["--scope", "self", "ls"])
        .env(shmsem::SELF_ENV, format!("{}-1", std::process::id()))
        .output()
        .expect("running shmsem");
    assert_eq!(r.status.code(), Some(0), "{r:?}");
}

// ===== 4. durations =====

#[test]
fn durations_take_units_and_refuse_anything_else() {
    let dir = TestDir::new("rules-durations");
    let holder = Sleeper::spawn();
    ok(&dir, &["acquire", "d", "--holder", &holder.pid()]);
    let (r, took) = timed(
        &dir,
        &[
            "acquire",
            "d",
            "--timeout",
            "1.5s",
            "--holder",
            &holder.pid(),
        ],
    );
    r.failed(75);
    assert!(took >= Duration::from_millis(1400), "took {took:?}");
    for t in ["0", "10", "250ms", "0.1s"] {
        run(&dir, &["run", "d", "-w", t, "--", "true"]).failed(75);
    }
    for bad in [
        "2x",
        "-1",
        "",
        "1.",
        "NaN",
        "s",
        "1e3",
        "99999999999999999999h",
        "1000000h",
    ] {
        for cmd in [
            &["run", "d", "--timeout", bad, "--", "true"][..],
            &["acquire", "d", "--timeout", bad],
            &["wait", "d", "--timeout", bad],
            &["watch", "--interval", bad],
        ] {
            usage(&dir, cmd, "--");
        }
    }
    usage(&dir, &["watch", "--interval", "50ms"], "out of range");
    assert_eq!(show(&dir, "d")["value"], 1);
}

// ===== 5. shmsem wait =====

#[test]
fn wait_returns_once_nothing_is_held() {
    let dir = TestDir::new("rules-wait");
    run(&dir, &["wait", "w"]).failed(1);
    quiet_ok(&dir, &["create", "w", "--capacity", "2", "--persistent"]);
    quiet_ok(&dir, &["wait", "w"]);
    let mut holder = Sleeper::spawn();
    ok(&dir, &["acquire", "w", "--holder", &holder.pid()]);
    let (r, took) = timed(&dir, &["wait", "w", "-w", "300ms"]);
    r.failed(75);
    assert!(took >= Duration::from_millis(290), "took {took:?}");
    run(&dir, &["wait", "w", "-n"]).failed(75);
    // Waiting takes nothing: the second unit is still free.
    ok(&dir, &["run", "w", "-n", "--", "true"]);

    let waiter = command(&dir, &["wait", "w", "--timeout", "1m"])
        .spawn()
        .expect("spawning shmsem wait");
    thread::sleep(Duration::from_millis(300));
    ok(&dir, &["release", "w", "--holder", &holder.pid()]);
    let out = waiter.wait_with_output().expect("waiting for shmsem wait");
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // A holder that dies counts as released.
    ok(&dir, &["acquire", "w", "--holder", &holder.pid()]);
    holder.kill();
    eventually("wait sees the dead holder's weight come back", || {
        run(&dir, &["reap"]);
        run(&dir, &["wait", "w", "-n"]).code == 0
    });
}

// ===== 6. short flags =====

#[test]
fn short_flags_work_as_in_flock() {
    let dir = TestDir::new("rules-short");
    let holder = Sleeper::spawn();
    ok(&dir, &["acquire", "s", "-n", "--holder", &holder.pid()]);
    run(&dir, &["acquire", "s", "-n", "--holder", &holder.pid()]).failed(75);
    run(&dir, &["run", "s", "-n", "--", "true"]).failed(75);
    run(&dir, &["run", "s", "-w", "100", "--", "true"]).failed(75);
    usage(
        &dir,
        &["run", "s", "-n", "-w", "5", "--", "true"],
        "cannot be used with",
    );
    let r = run(
        &dir,
        &["-q", "run", "s", "-n", "--capacity", "9", "--", "true"],
    );
    r.failed(75);
    assert!(!r.stderr.contains("warning"), "{r:?}");
}

// ===== 7. completions and man page =====

#[test]
fn completions_and_the_man_page_come_from_the_command_line() {
    let dir = TestDir::new("rules-docs");
    for shell in ["bash", "zsh", "fish"] {
        let r = quiet_ok(&dir, &["completions", shell]);
        assert!(r.stdout.contains("shmsem"), "{shell}: {r:?}");
        assert!(r.stdout.contains("--timeout"), "{shell}: {r:?}");
    }
    usage(&dir, &["completions", "tcsh"], "tcsh");
    let r = quiet_ok(&dir, &["man"]);
    assert!(r.stdout.contains(".TH shmsem 1"), "{}", r.stdout);
    for sub in ["tree", "wait", "completions"] {
        assert!(r.stdout.contains(sub), "{sub} not in the man page");
    }
    // Installable with a plain redirection, as the README says.
    let page = dir.work_file("shmsem.1");
    let status = Command::new(BIN)
        .arg("man")
        .stdout(std::fs::File::create(&page).expect("creating the page"))
        .status()
        .expect("running shmsem man");
    assert!(status.success());
    assert!(std::fs::metadata(&page).expect("the page").len() > 1000);
}

// ===== 8. numbers out of range =====

#[test]
fn numbers_out_of_range_are_usage_errors_before_anything_is_touched() {
    let dir = TestDir::new("rules-range");
    let max = shmsem::Semaphore::MAX_CAPACITY;
    let over = (max + 1).to_string();
    let cases: [(&[&str], &str); 12] = [
        (&["create", "big", "--capacity", "4294967295"], "--capacity"),
        (&["create", "big", "--capacity", &over], "--capacity"),
        (&["create", "big", "--capacity", "0"], "--capacity"),
        (
            &["run", "big", "--capacity", &over, "--", "true"],
            "--capacity",
        ),
        (&["run", "big", "--weight", "0", "--", "true"], "--weight"),
        (&["acquire", "big", "--weight", &over], "--weight"),
        (&["release", "big", "--count", "0"], "--count"),
        (&["create", "big", "--idle-ms", "4294967296"], "--idle-ms"),
        (&["create", "big", "--mode", "01000"], "--mode"),
        (&["acquire", "big", "--holder", "0"], "--holder"),
        (&["release", "big", "--holder", "0"], "--holder"),
        (&["ps", "0"], "PID"),
    ];
    for (args, what) in cases {
        usage(&dir, args, what);
    }
    assert!(names(&dir).is_empty(), "nothing was created");
    quiet_ok(&dir, &["create", "big", "--capacity", &max.to_string()]);
    usage(&dir, &["set", "big", "--capacity", &over], "--capacity");
    assert_eq!(show(&dir, "big")["capacity"], u64::from(max));
}
