//! Helpers for the multi-process tests: a fresh directory per test, child processes that
//! re-execute this test binary in a named role, the line protocol they report on, and a witness
//! counter in shared memory that does not depend on shmsem.
//!
//! The parent side (the test functions) never calls the library: every call that depends on
//! `SHMSEM_DIR` or `SHMSEM_SELF` happens in a child process, whose environment the parent sets.
//! So the tests can run in parallel threads of one harness process without ever meeting.
//!
//! Submodules: [`roles`], child roles that test binaries of both suites run; [`mp`] and
//! [`life`], what the `multiprocess_*` and the `lifecycle_*` test binaries share; [`cli`],
//! running the built `shmsem` binary from the parent side; [`killpoint`], the parent side of
//! the kill-point tests; [`openmetrics`], a strict parser of `shmsem metrics`' output;
//! [`shared`], counters in a file every process maps; [`etcd`], a 3-member etcd cluster for the
//! cluster scope, on the loopback or in [`netns`] network namespaces that can be partitioned. Every child process is started by
//! [`child_command`], mostly through [`Spawn`], and seen through a [`Kid`].

#![allow(dead_code)] // each test binary that includes this module uses a different part of it

pub mod cli;
pub mod corruption;
pub mod etcd;
pub mod http;
mod kid;
pub mod killpoint;
pub mod life;
pub mod mp;
pub mod netns;
pub mod openmetrics;
pub mod roles;
pub mod shared;
mod spawn;
mod witness;

// Each test binary uses a different part of these.
#[allow(unused_imports)]
pub use {
    kid::{Kid, Reports},
    spawn::{Spawn, child_command, die_with_parent},
    witness::Witness,
};

use std::{
    fs,
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

/// The environment variable naming a child process's role. Absent in the test harness itself.
pub const ROLE_ENV: &str = "SHMSEM_TEST_ROLE";
/// Where a child keeps the test's own files (barriers, witness), outside `SHMSEM_DIR`.
pub const WORK_ENV: &str = "SHMSEM_TEST_WORK";
/// Prefix of a role's parameters in its environment: `MP_ARG_<KEY>`.
pub const ARG_PREFIX: &str = "MP_ARG_";
/// The name of the `#[test]` function that children run: ignored, so that the harness itself
/// never counts it as a test, and run in a child by [`CHILD_ARGS`].
pub const CHILD_TEST: &str = "child_role";
/// The arguments that make a re-executed test binary run [`CHILD_TEST`] and nothing else.
pub const CHILD_ARGS: [&str; 5] = [
    "--ignored",
    "--exact",
    CHILD_TEST,
    "--nocapture",
    "--test-threads=1",
];
/// Lines a child reports on start with this marker: `@@mp KEY VALUE`.
pub const MARK: &str = "@@mp ";

// ===== processes =====

/// Whether process `pid` is stopped (state `T` in `/proc/PID/stat`), as a kill point's `/stop`
/// leaves it.
pub fn is_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit(") ").next().is_some_and(|r| r.starts_with('T')))
}

/// What `/proc` says of one thread: its state letter and how often it was switched out.
#[derive(Debug, Clone, Copy)]
pub struct ThreadInfo {
    pub state: char,
    /// Voluntary and involuntary context switches: they do not change while it stays asleep.
    pub switches: u64,
}

/// The thread of child `pid` that runs its [`CHILD_TEST`] entry point (the test harness names the
/// thread after the test), or `None` if there is none (yet).
pub fn test_thread(pid: u32) -> Option<ThreadInfo> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    for task in tasks.flatten() {
        let dir = task.path();
        let comm = fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim_end() != CHILD_TEST {
            continue;
        }
        let stat = fs::read_to_string(dir.join("stat")).ok()?;
        let state = stat.rsplit(") ").next()?.chars().next()?;
        let status = fs::read_to_string(dir.join("status")).ok()?;
        let switches = status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .map(|l| {
                l.split_whitespace()
                    .last()
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .sum::<Option<u64>>()?;
        return Some(ThreadInfo { state, switches });
    }
    None
}

// ===== time =====

/// `CLOCK_MONOTONIC` in nanoseconds: comparable between processes, unlike `Instant`.
pub fn mono_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, exclusively borrowed timespec.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

// ===== per-test directory =====

/// A fresh directory under the system temporary directory (a [`tempfile::TempDir`]), removed
/// when dropped: `shm/` is the test's `SHMSEM_DIR`, `work/` holds its own files.
#[derive(Debug)]
pub struct TestDir {
    pub root: PathBuf,
    pub shm: PathBuf,
    pub work: PathBuf,
    _tmp: tempfile::TempDir,
}

impl TestDir {
    pub fn new(test: &str) -> TestDir {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("shmsem-{test}-"))
            .tempdir()
            .expect("creating the test's directory");
        let root = tmp.path().to_path_buf();
        let shm = root.join("shm");
        let work = root.join("work");
        fs::create_dir_all(&shm).expect("creating the test's SHMSEM_DIR");
        fs::create_dir_all(&work).expect("creating the test's work directory");
        TestDir {
            root,
            shm,
            work,
            _tmp: tmp,
        }
    }

    /// A file in the work directory.
    pub fn work_file(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    /// Create a signal file in the work directory (children poll for it).
    pub fn signal(&self, name: &str) {
        fs::write(self.work_file(name), b"go").expect("creating a signal file");
    }

    /// The names of the files in `SHMSEM_DIR`, sorted.
    pub fn shm_files(&self) -> Vec<String> {
        list_dir(&self.shm)
    }
}

/// The names of the entries of `dir`, sorted (hidden ones included).
pub fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("listing a directory")
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

// ===== child side =====

/// This child's role, or `None` in the test harness itself.
pub fn role() -> Option<String> {
    std::env::var(ROLE_ENV).ok()
}

/// The body of every test binary's `child_role` entry point, an ignored test that children run
/// (see [`CHILD_ARGS`]): run the role this process was started in. Run by hand, without a role,
/// it fails rather than pass without testing anything.
pub fn child_main(run: impl FnOnce(&str)) {
    let role = role().unwrap_or_else(|| {
        panic!(
            "{CHILD_TEST} is the entry point of child processes that other tests start: it runs \
             only with {ROLE_ENV} naming a role"
        )
    });
    run(&role);
}

/// A test binary's `child_role`: the ignored test its child processes run (see [`CHILD_ARGS`]),
/// which runs the role named in the environment through [`child_main`]. Each role is written
/// `"name" => expression`; or `dispatch PATH` hands every role's name to the function `PATH`.
#[macro_export]
macro_rules! child_roles {
    (dispatch $run:path) => {
        /// The entry point of every child process (see `common::child_main`).
        #[test]
        #[ignore = "entry point of the child processes that the other tests start"]
        fn child_role() {
            $crate::common::child_main($run);
        }
    };
    ($($name:literal => $run:expr),+ $(,)?) => {
        /// The entry point of every child process (see `common::child_main`).
        #[test]
        #[ignore = "entry point of the child processes that the other tests start"]
        fn child_role() {
            $crate::common::child_main(|role| match role {
                $($name => $run,)+
                other => panic!("unknown role {other:?}"),
            });
        }
    };
}

/// Report `key value` to the parent.
pub fn report(key: &str, value: impl std::fmt::Display) {
    // A leading newline keeps the marker off the harness's own `test child_role ... ` line.
    println!("\n{MARK}{key} {value}");
}

/// A role parameter, or `default`.
pub fn arg_or(key: &str, default: &str) -> String {
    std::env::var(format!("{ARG_PREFIX}{}", key.to_ascii_uppercase()))
        .unwrap_or_else(|_| default.to_owned())
}

/// A required role parameter.
pub fn arg(key: &str) -> String {
    std::env::var(format!("{ARG_PREFIX}{}", key.to_ascii_uppercase()))
        .unwrap_or_else(|_| panic!("role parameter {key} missing"))
}

pub fn arg_u32(key: &str, default: u32) -> u32 {
    arg_or(key, &default.to_string())
        .parse()
        .unwrap_or_else(|_| panic!("role parameter {key} is not a number"))
}

/// The test's work directory (outside `SHMSEM_DIR`).
pub fn work_dir() -> PathBuf {
    PathBuf::from(std::env::var_os(WORK_ENV).expect("SHMSEM_TEST_WORK set by the parent"))
}

/// Wait until `work/name` exists; panics after `timeout`, or as soon as the work directory is
/// gone (the test ended), so that a failed parent never leaves a child behind for long.
pub fn wait_for_signal(name: &str, timeout: Duration) {
    let dir = work_dir();
    let path = dir.join(name);
    let deadline = Instant::now() + timeout;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "signal {name} did not come within {timeout:?}"
        );
        assert!(
            dir.exists(),
            "the test's directory is gone: its parent ended"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

/// Create `work/name`.
pub fn send_signal(name: &str) {
    fs::write(work_dir().join(name), b"go").expect("creating a signal file");
}
