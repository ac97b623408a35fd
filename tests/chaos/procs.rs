//! The processes the test starts, seen from the test: their directory, their commands, and the
//! short-lived ones it reads reports from.

use std::{
    fs,
    io::{self, BufRead, BufReader},
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc::{self, Receiver},
    thread,
    time::{Duration, Instant},
};

use crate::config::{CHILD_TEST, INDEX_ENV, MARK, NS, ROLE_ENV, WITNESS_ENV};

/// A fresh directory under the system temporary directory, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let p = std::env::temp_dir().join(format!("shmsem-chaos-{}-{nanos}", std::process::id()));
        fs::create_dir_all(p.join("shm")).expect("creating the test directory");
        TempDir(p)
    }
    pub fn shm(&self) -> PathBuf {
        self.0.join("shm")
    }
    pub fn witness(&self) -> PathBuf {
        self.0.join("witness")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Make `cmd`'s process die with this thread (`PR_SET_PDEATHSIG`), so that nothing outlives the
/// test however it ends.
pub fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe calls
    // (prctl, getppid, _exit) without allocating.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() as u32 != parent {
                libc::_exit(0);
            }
            Ok(())
        });
    }
}

/// A child process running this test binary in `role`.
pub fn role_command(dir: &TempDir, role: &str, index: usize) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(ROLE_ENV, role)
        .env(INDEX_ENV, index.to_string())
        .env(shmsem::DIR_ENV, dir.shm())
        .env(WITNESS_ENV, dir.witness())
        .env_remove(shmsem::SELF_ENV)
        .env_remove(shmsem::failpoint::ENV)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    die_with_parent(&mut cmd);
    cmd
}

pub fn cli_command(dir: &TempDir, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shmsem"));
    cmd.args(["--namespace", NS])
        .args(args)
        .env(shmsem::DIR_ENV, dir.shm())
        .env_remove(shmsem::SELF_ENV)
        .env_remove(shmsem::failpoint::ENV)
        .stdin(Stdio::null());
    die_with_parent(&mut cmd);
    cmd
}

/// A short-lived child whose marked stdout lines come through a channel.
pub struct Kid {
    child: Child,
    lines: Receiver<(String, String)>,
    seen: Vec<(String, String)>,
    reaped: bool,
}

impl Kid {
    pub fn spawn(mut cmd: Command) -> Kid {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning a child");
        let out = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find(MARK) {
                    let rest = &line[at + MARK.len()..];
                    let (k, v) = rest.split_once(' ').unwrap_or((rest, ""));
                    let _ = tx.send((k.to_owned(), v.trim().to_owned()));
                }
            }
        });
        Kid {
            child,
            lines,
            seen: Vec::new(),
            reaped: false,
        }
    }

    /// Wait at most `timeout` for report `key`.
    pub fn expect(&mut self, key: &str, timeout: Duration) -> Option<String> {
        if let Some((_, v)) = self.seen.iter().find(|(k, _)| k == key) {
            return Some(v.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (k, v) = self.lines.recv_timeout(left).ok()?;
            self.seen.push((k.clone(), v.clone()));
            if k == key {
                return Some(v);
            }
        }
    }

    /// Wait for the child to exit (SIGKILL after `timeout`) and for its output to end.
    pub fn finish(&mut self, timeout: Duration) -> (Option<ExitStatus>, Vec<(String, String)>) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break Some(s);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            thread::sleep(Duration::from_millis(2));
        };
        self.reaped = true;
        while let Ok(kv) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(kv);
        }
        (status, self.seen.clone())
    }

    pub fn sigkill(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        let s = self.child.wait().expect("wait");
        self.reaped = true;
        s
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
