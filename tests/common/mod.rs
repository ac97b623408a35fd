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
//! the kill-point tests.

#![allow(dead_code)] // each test binary that includes this module uses a different part of it

pub mod cli;
pub mod corruption;
pub mod killpoint;
pub mod life;
pub mod mp;
pub mod roles;

use std::{
    collections::HashMap,
    fs,
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering::SeqCst},
        mpsc::{self, Receiver, RecvTimeoutError},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

/// The environment variable naming a child process's role. Absent in the test harness itself.
pub const ROLE_ENV: &str = "SHMSEM_TEST_ROLE";
/// Where a child keeps the test's own files (barriers, witness), outside `SHMSEM_DIR`.
pub const WORK_ENV: &str = "SHMSEM_TEST_WORK";
/// Prefix of a role's parameters in its environment: `MP_ARG_<KEY>`.
pub const ARG_PREFIX: &str = "MP_ARG_";
/// The name of the `#[test]` function that children run.
pub const CHILD_TEST: &str = "child_role";
/// Lines a child reports on start with this marker: `@@mp KEY VALUE`.
pub const MARK: &str = "@@mp ";

// ===== processes =====

/// Whether process `pid` is stopped (state `T` in `/proc/PID/stat`), as a kill point's `/stop`
/// leaves it.
pub fn is_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit(") ").next().is_some_and(|r| r.starts_with('T')))
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

/// A fresh directory under the system temporary directory, removed when dropped:
/// `shm/` is the test's `SHMSEM_DIR`, `work/` holds its own files.
#[derive(Debug)]
pub struct TestDir {
    pub root: PathBuf,
    pub shm: PathBuf,
    pub work: PathBuf,
}

impl TestDir {
    pub fn new(test: &str) -> TestDir {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "shmsem-mp-{test}-{}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, SeqCst),
            mono_ns()
        ));
        let shm = root.join("shm");
        let work = root.join("work");
        fs::create_dir_all(&shm).expect("creating the test's SHMSEM_DIR");
        fs::create_dir_all(&work).expect("creating the test's work directory");
        TestDir { root, shm, work }
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

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
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

// ===== child processes, parent side =====

/// Reports of one child: `KEY VALUE` pairs in the order printed.
#[derive(Debug, Clone, Default)]
pub struct Reports(pub Vec<(String, String)>);

impl Reports {
    /// The last value reported under `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn req(&self, key: &str) -> &str {
        self.get(key)
            .unwrap_or_else(|| panic!("no report {key:?} in {:?}", self.0))
    }

    pub fn u64(&self, key: &str) -> u64 {
        let v = self.req(key);
        v.parse()
            .unwrap_or_else(|_| panic!("report {key:?} = {v:?} is not a number"))
    }

    pub fn as_map(&self) -> HashMap<String, String> {
        self.0.iter().cloned().collect()
    }
}

/// A child process running this test binary in a role.
#[derive(Debug)]
pub struct Kid {
    pub label: String,
    child: Child,
    lines: Receiver<(String, String)>,
    seen: Vec<(String, String)>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

/// How to start a child.
#[derive(Debug)]
pub struct Spawn<'a> {
    dir: &'a TestDir,
    role: String,
    label: String,
    args: Vec<(String, String)>,
    /// Environment changes after the defaults, in order: set (`Some`) or remove (`None`).
    env: Vec<(String, Option<String>)>,
    stdin: bool,
    /// Run the child as this uid and gid (needs root), from a copy of this test binary that
    /// any user may execute.
    user: Option<(u32, u32)>,
}

impl<'a> Spawn<'a> {
    pub fn new(dir: &'a TestDir, role: &str) -> Spawn<'a> {
        Spawn {
            dir,
            role: role.to_owned(),
            label: role.to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: false,
            user: None,
        }
    }

    /// Run the child as `uid` and `gid` (only root may), from a copy of this test binary in the
    /// test's directory (made 0755, like the test's directories), so that nothing but the files
    /// under test stands in that user's way.
    pub fn user(mut self, uid: u32, gid: u32) -> Self {
        self.user = Some((uid, gid));
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn arg(mut self, key: &str, value: impl ToString) -> Self {
        self.args.push((key.to_owned(), value.to_string()));
        self
    }

    /// Set an environment variable of the child (beyond the role's parameters).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), Some(value.to_owned())));
        self
    }

    /// Remove an environment variable the child would otherwise inherit.
    pub fn env_remove(mut self, key: &str) -> Self {
        self.env.push((key.to_owned(), None));
        self
    }

    /// Give the child a pipe on stdin, written with [`Kid::send`] (otherwise stdin is null).
    pub fn stdin_piped(mut self) -> Self {
        self.stdin = true;
        self
    }

    pub fn spawn(self) -> Kid {
        let mut exe = std::env::current_exe().expect("current_exe");
        if self.user.is_some() {
            use std::os::unix::fs::PermissionsExt;
            let copy = self.dir.root.join("test-binary");
            if !copy.exists() {
                fs::copy(&exe, &copy).expect("copying the test binary");
                fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).expect("chmod");
                // Whatever the umask: the child must reach SHMSEM_DIR and its work directory
                // (and can write neither, unless a test says so).
                for d in [&self.dir.root, &self.dir.shm, &self.dir.work] {
                    fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod");
                }
            }
            exe = copy;
        }
        let mut cmd = Command::new(exe);
        if let Some((uid, gid)) = self.user {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid).gid(gid);
        }
        cmd.args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
            .env(ROLE_ENV, &self.role)
            .env(shmsem::DIR_ENV, &self.dir.shm)
            .env(WORK_ENV, &self.dir.work)
            .stdin(if self.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // A child of the harness belongs to no `self` tree unless it makes itself the root of
        // one; only its own descendants inherit that.
        cmd.env_remove(shmsem::SELF_ENV);
        for (k, v) in &self.args {
            cmd.env(format!("{ARG_PREFIX}{}", k.to_ascii_uppercase()), v);
        }
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", self.label));
        let (tx, lines) = mpsc::channel();
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out_pipe = child.stdout.take().expect("piped stdout");
        let err_pipe = child.stderr.take().expect("piped stderr");
        let out_buf = stdout.clone();
        let out_reader = thread::spawn(move || {
            for line in BufReader::new(out_pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find(MARK) {
                    let rest = &line[at + MARK.len()..];
                    let (k, v) = rest.split_once(' ').unwrap_or((rest, ""));
                    let _ = tx.send((k.to_owned(), v.trim().to_owned()));
                }
                let mut b = out_buf.lock().unwrap();
                b.push_str(&line);
                b.push('\n');
            }
        });
        let err_buf = stderr.clone();
        let err_reader = thread::spawn(move || {
            let mut s = String::new();
            let mut pipe = err_pipe;
            let _ = pipe.read_to_string(&mut s);
            err_buf.lock().unwrap().push_str(&s);
        });
        Kid {
            label: self.label,
            child,
            lines,
            seen: Vec::new(),
            stdout,
            stderr,
            readers: vec![out_reader, err_reader],
            status: None,
        }
    }
}

impl Kid {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the child printed so far, for failure messages.
    pub fn transcript(&self) -> String {
        format!(
            "--- {} (pid {}) status {:?}\n--- stdout:\n{}--- stderr:\n{}",
            self.label,
            self.child.id(),
            self.status,
            self.stdout.lock().unwrap(),
            self.stderr.lock().unwrap()
        )
    }

    /// Wait until the child reports `key`; its value. Panics after `timeout` or if the child's
    /// output ends first.
    pub fn expect(&mut self, key: &str, timeout: Duration) -> String {
        match self.next_report(key, timeout) {
            Ok(v) => v,
            Err(RecvTimeoutError::Timeout) => {
                panic!(
                    "{} did not report {key:?} within {timeout:?}\n{}",
                    self.label,
                    self.transcript()
                )
            }
            Err(RecvTimeoutError::Disconnected) => {
                // Let the readers finish so the transcript is complete.
                thread::sleep(Duration::from_millis(50));
                panic!(
                    "{} ended without reporting {key:?}\n{}",
                    self.label,
                    self.transcript()
                )
            }
        }
    }

    /// Wait at most `timeout` for the child to report `key`: its value, or `None` if it has not
    /// by then or its output ended first.
    pub fn wait_for(&mut self, key: &str, timeout: Duration) -> Option<String> {
        self.next_report(key, timeout).ok()
    }

    fn next_report(&mut self, key: &str, timeout: Duration) -> Result<String, RecvTimeoutError> {
        if let Some((_, v)) = self.seen.iter().find(|(k, _)| k == key) {
            return Ok(v.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (k, v) = self.lines.recv_timeout(left)?;
            let hit = k == key;
            self.seen.push((k, v.clone()));
            if hit {
                return Ok(v);
            }
        }
    }

    /// Write `line` to the child's stdin (see [`Spawn::stdin_piped`]).
    pub fn send(&mut self, line: &str) {
        let stdin = self
            .child
            .stdin
            .as_mut()
            .unwrap_or_else(|| panic!("{}: stdin is not piped", self.label));
        writeln!(stdin, "{line}").expect("writing to a child");
        stdin.flush().expect("flushing a child's stdin");
    }

    /// Wait for the child to exit (killing it after `timeout`), then for its output to end.
    pub fn finish(&mut self, timeout: Duration) -> (ExitStatus, Reports) {
        let status = self.wait_exit(timeout);
        self.join_readers(Instant::now() + Duration::from_secs(5));
        (status, self.reports())
    }

    /// Wait for the child itself to exit (killing it after `timeout`); its output may stay open
    /// in descendants that inherited it.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                self.status = Some(s);
                return s;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let s = self.child.wait().expect("wait");
                self.status = Some(s);
                panic!(
                    "{} did not exit within {timeout:?}; killed\n{}",
                    self.label,
                    self.transcript()
                );
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Everything reported so far (after [`finish`](Self::finish): everything).
    pub fn reports(&mut self) -> Reports {
        while let Ok(kv) = self.lines.try_recv() {
            self.seen.push(kv);
        }
        Reports(self.seen.clone())
    }

    /// Wait for the child to exit; it must exit 0. Its reports.
    pub fn success(&mut self, timeout: Duration) -> Reports {
        let (status, reports) = self.finish(timeout);
        assert!(
            status.success(),
            "{} failed: {status:?}\n{}",
            self.label,
            self.transcript()
        );
        reports
    }

    /// SIGKILL the child (`Child::kill` sends SIGKILL on Unix) and reap it.
    pub fn sigkill(&mut self) -> ExitStatus {
        self.child.kill().expect("kill");
        let status = self.child.wait().expect("wait");
        self.status = Some(status);
        status
    }

    /// Wait until the child's stdout is closed by every process holding it (the child and any
    /// descendants that inherited it), at most until `deadline`.
    pub fn wait_output_closed(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        self.join_readers(deadline);
        assert!(
            self.readers.is_empty(),
            "{}: output still open after {timeout:?}\n{}",
            self.label,
            self.transcript()
        );
    }

    fn join_readers(&mut self, deadline: Instant) {
        while !self.readers.is_empty() && Instant::now() < deadline {
            if self.readers.iter().all(JoinHandle::is_finished) {
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                break;
            }
            thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        if self.status.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ===== child side =====

/// This child's role, or `None` in the test harness itself.
pub fn role() -> Option<String> {
    std::env::var(ROLE_ENV).ok()
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

// ===== a witness independent of shmsem =====

/// Counters in a small file that every process maps for itself with `memmap2`: how many
/// processes are inside the section now, the most ever seen inside at once, how many entries
/// saw more than allowed, and how many entries there were.
#[derive(Debug)]
pub struct Witness {
    map: memmap2::MmapRaw,
}

impl Witness {
    const LEN: usize = 4096;

    /// Create the file (parent side, before the children start).
    pub fn create(path: &Path) {
        let f = fs::File::create(path).expect("creating the witness");
        f.set_len(Self::LEN as u64).expect("sizing the witness");
    }

    pub fn open(path: &Path) -> Witness {
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .expect("opening the witness");
        let map = memmap2::MmapOptions::new()
            .len(Self::LEN)
            .map_raw(&f)
            .expect("mapping the witness");
        Witness { map }
    }

    fn at(&self, index: usize) -> &AtomicU32 {
        assert!(index < 16);
        // SAFETY: the mapping is 4096 bytes, page-aligned, shared, alive as long as `self`;
        // index < 16 keeps the 4-byte, 4-aligned counter in bounds; it is only accessed
        // atomically, by every process.
        unsafe { &*self.map.as_mut_ptr().add(index * 4).cast::<AtomicU32>() }
    }

    pub fn inside(&self) -> &AtomicU32 {
        self.at(0)
    }
    pub fn max_inside(&self) -> &AtomicU32 {
        self.at(1)
    }
    pub fn violations(&self) -> &AtomicU32 {
        self.at(2)
    }
    pub fn entries(&self) -> &AtomicU32 {
        self.at(3)
    }
}
