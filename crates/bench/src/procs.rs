//! Helper processes, seen from the parent: starting them (the current executable again, with a
//! role in the environment), talking to them line by line with timeouts, and making sure none
//! outlives the benchmark.
//!
//! Every [`Helper`] is killed and reaped when dropped, so an early return on error leaves no
//! process behind. A helper also dies with its parent (`PR_SET_PDEATHSIG`, set in
//! `roles::requested`), in case the parent itself is killed.
//!
//! Shared by `shmsem bench` and the criterion benches (included with `#[path]`).

use std::{
    io::{Read, Write},
    os::{fd::AsRawFd, unix::fs::DirBuilderExt},
    path::PathBuf,
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering::Relaxed},
        mpsc::{self, RecvTimeoutError},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

/// The environment variable that makes a process a helper, naming its role.
pub const ROLE_ENV: &str = "SHMSEM_BENCH_ROLE";
/// The parent's pid, so that a helper can tell whether its parent is already gone.
pub const PARENT_ENV: &str = "SHMSEM_BENCH_PARENT";

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for every process on the machine.
pub fn mono_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// This process's CPU time (`CLOCK_PROCESS_CPUTIME_ID`, user and system) in nanoseconds.
pub fn cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// The time of `clock`, one that exists on every Linux, in nanoseconds.
#[inline]
fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable `timespec`; the callers pass only clocks that always
    // exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sleep until `mono_ns() >= at`.
pub fn sleep_until_ns(at: u64) {
    loop {
        let now = mono_ns();
        if now >= at {
            return;
        }
        std::thread::sleep(Duration::from_nanos(at - now));
    }
}

/// Send SIGKILL to `pid`. The caller must not have reaped it yet (so the pid is still ours).
pub fn sigkill(pid: libc::pid_t) {
    // SAFETY: plain system call; `pid` is a child of ours that has not been reaped, so it cannot
    // name an unrelated process.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// This executable, as a path that stays valid while this process runs: `/proc/PID/exe`, which
/// opens the very file this process runs even after a rebuild replaced it on disk (helpers
/// started from `current_exe()` would fail, or run a different build); `current_exe()` where
/// there is no `/proc`.
pub fn this_exe() -> std::io::Result<PathBuf> {
    let proc_exe = PathBuf::from(format!("/proc/{}/exe", std::process::id()));
    if proc_exe.exists() {
        return Ok(proc_exe);
    }
    std::env::current_exe()
}

/// A running helper process: its stdin to send commands, its stdout to read replies.
#[derive(Debug)]
pub struct Helper {
    child: Child,
    stdin: Option<ChildStdin>,
    out: ChildStdout,
    buf: Vec<u8>,
    what: String,
    reaped: bool,
}

impl Helper {
    /// Start the current executable with `args` and `envs`, plus [`PARENT_ENV`]. `what` names it
    /// in error messages.
    pub fn spawn(args: &[&str], envs: &[(&str, String)], what: String) -> anyhow::Result<Helper> {
        let exe = this_exe().context("finding the current executable")?;
        let mut child = Command::new(&exe)
            .args(args)
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .env(PARENT_ENV, std::process::id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {what} ({})", exe.display()))?;
        let (Some(stdin), Some(out)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("starting {what}: no pipes");
        };
        Ok(Helper {
            child,
            stdin: Some(stdin),
            out,
            buf: Vec::new(),
            what,
            reaped: false,
        })
    }

    /// The helper's pid.
    pub fn pid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    /// Send one line.
    pub fn send(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .with_context(|| format!("{} has no stdin", self.what))?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .with_context(|| format!("writing to {}", self.what))
    }

    /// Read one line (without its newline), waiting at most `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                return Ok(String::from_utf8_lossy(&line[..end]).into_owned());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("{} did not answer within {timeout:?}", self.what);
            }
            let mut pfd = libc::pollfd {
                fd: self.out.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = (left.as_millis() + 1).min(i32::MAX as u128) as libc::c_int;
            // SAFETY: `pfd` is one valid `pollfd` on a descriptor we own, for the whole call.
            let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
            if ready == -1 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(e).with_context(|| format!("waiting for {}", self.what));
            }
            if ready == 0 {
                continue;
            }
            let mut chunk = [0u8; 256];
            let n = self
                .out
                .read(&mut chunk)
                .with_context(|| format!("reading from {}", self.what))?;
            if n == 0 {
                bail!("{} exited unexpectedly", self.what);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Read one line and check that it is `want`.
    pub fn expect(&mut self, want: &str, timeout: Duration) -> anyhow::Result<()> {
        let got = self.recv(timeout)?;
        if got != want {
            bail!("{} said {got:?}, expected {want:?}", self.what);
        }
        Ok(())
    }

    /// Kill (SIGKILL) and reap. Idempotent.
    pub fn kill(&mut self) {
        if self.reaped {
            return;
        }
        self.stdin = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.reaped = true;
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Run `body` while a watchdog thread looks after the helpers it depends on. If one of `pids`
/// exits, or `body` is still running after `limit`, the watchdog kills `pids`, raises the flag
/// passed to `body`, and calls `unblock` every 10 ms until `body` returns (for kernel
/// semaphores, whose waits do not end when the other side dies); the result is then an error
/// that says why.
pub fn watchdog<T>(
    limit: Duration,
    pids: &[libc::pid_t],
    unblock: &(dyn Fn() + Sync),
    body: impl FnOnce(&AtomicBool) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let fired = AtomicBool::new(false);
    let flag = &fired;
    let (done, wait_done) = mpsc::channel::<()>();
    let (result, reason) = std::thread::scope(|s| {
        let guard = s.spawn(move || {
            let deadline = Instant::now() + limit;
            let reason = loop {
                match wait_done.recv_timeout(Duration::from_millis(100)) {
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return None,
                    Err(RecvTimeoutError::Timeout) => {}
                }
                if let Some(pid) = pids.iter().find(|&&pid| has_exited(pid)) {
                    break format!("helper process {pid} exited");
                }
                if Instant::now() >= deadline {
                    break format!("the helpers made no progress within {limit:?}");
                }
            };
            flag.store(true, Relaxed);
            for &pid in pids {
                sigkill(pid);
            }
            while let Err(RecvTimeoutError::Timeout) =
                wait_done.recv_timeout(Duration::from_millis(10))
            {
                unblock();
            }
            Some(reason)
        });
        let result = body(flag);
        drop(done);
        (result, guard.join())
    });
    match reason {
        Ok(None) => result,
        Ok(Some(reason)) => bail!("{reason}; stopped"),
        Err(_) => bail!("the watchdog thread panicked"),
    }
}

/// Whether child `pid` (not yet reaped) has exited. It stays a zombie for its `Helper` to reap.
fn has_exited(pid: libc::pid_t) -> bool {
    // SAFETY: an all-zero `siginfo_t` is a valid value of this plain C struct.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is valid and writable; `WNOWAIT` leaves the child unreaped, so its pid stays
    // ours.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: after a successful `waitid`, `si_pid` is the field it sets (0 if nothing exited).
    r == 0 && unsafe { info.si_pid() } != 0
}

/// The run's own `SHMSEM_DIR`: a fresh directory, removed on drop.
#[derive(Debug)]
pub struct Workspace {
    dir: PathBuf,
}

impl Workspace {
    /// Create it under `/dev/shm` (where shmsem's own files live by default) or else the
    /// temporary directory, and point `SHMSEM_DIR` at it. Call it before any thread exists.
    pub fn create() -> anyhow::Result<Workspace> {
        let base = match PathBuf::from("/dev/shm") {
            shm if shm.is_dir() => shm,
            _ => std::env::temp_dir(),
        };
        let stamp = mono_ns();
        let mut last_error = None;
        for attempt in 0..16u64 {
            let dir = base.join(format!(
                "shmsem-bench.{}.{:x}",
                std::process::id(),
                stamp.wrapping_add(attempt)
            ));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {
                    // SAFETY: `set_var` is unsound only while another thread reads the
                    // environment; callers create the workspace before they start any thread
                    // (`bench::run` first thing, the criterion benches first thing in `main`).
                    unsafe { std::env::set_var(shmsem::DIR_ENV, &dir) };
                    return Ok(Workspace { dir });
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| std::io::Error::other("no attempt")))
            .with_context(|| format!("creating a temporary directory in {}", base.display()))
    }
}

impl Workspace {
    /// The directory.
    pub fn path(&self) -> &std::path::Path {
        &self.dir
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
