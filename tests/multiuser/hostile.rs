//! The hostile side: this test binary re-executed as another user in the role `lock`, holding
//! an OFD write lock on a byte range of a file that user can open ([`World::lock_bytes`]) until
//! the test lets go ([`Locker`]).

use std::{
    fs,
    io::{self, BufRead, BufReader, Read, Write},
    os::{fd::AsRawFd, unix::fs::OpenOptionsExt},
    path::Path,
    process::{Child, ChildStdin, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

use crate::{
    common,
    users::{User, World},
};

/// The prefix of a role's report lines on stdout.
const REPORT: &str = "SHX ";

/// Report on a line of its own (the harness has printed `test child_role ... ` without a newline).
pub fn say(message: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "\n{REPORT}{message}");
    let _ = out.flush();
}

/// Open `SHX_PATH` read-write (never following a link), unlink it if `SHX_UNLINK` is 1, take an
/// OFD write lock on `SHX_LEN` bytes from `SHX_START` without waiting, report `ready`, and hold
/// it until stdin closes. A failure is reported as `open-failed ERRNO`, `unlink-failed ERRNO` or
/// `lock-failed ERRNO`.
pub fn role_lock() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"));
    let path = var("SHX_PATH");
    let start: i64 = var("SHX_START").parse().expect("SHX_START");
    let len: i64 = var("SHX_LEN").parse().expect("SHX_LEN");
    let errno = |e: &io::Error| e.raw_os_error().unwrap_or(0);
    let file = match fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) => return say(&format!("open-failed {}", errno(&e))),
    };
    if var("SHX_UNLINK") == "1"
        && let Err(e) = fs::remove_file(&path)
    {
        return say(&format!("unlink-failed {}", errno(&e)));
    }
    // SAFETY: all-zero bytes are a valid `flock`.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start as libc::off_t;
    fl.l_len = len as libc::off_t;
    // SAFETY: `file` is open for the call and `fl` is a valid, exclusively borrowed `flock`.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) } != 0 {
        return say(&format!(
            "lock-failed {}",
            errno(&io::Error::last_os_error())
        ));
    }
    say("ready");
    let _ = io::stdin().read_to_end(&mut Vec::new());
    drop(file);
}

impl World {
    /// Hold an OFD write lock on `len` bytes from `start` of `path`, as `who`, in a child; with
    /// `unlink`, the child unlinks the path after opening it. `Err` with the child's report when
    /// it could not (`open-failed 13`: `EACCES`).
    pub fn lock_bytes(
        &self,
        who: &User,
        path: &Path,
        start: u64,
        len: u64,
        unlink: bool,
    ) -> Result<Locker, String> {
        let mut child = self
            .command(who, &self.test_exe.clone(), &common::CHILD_ARGS)
            .env(common::ROLE_ENV, "lock")
            .env("SHX_PATH", path)
            .env("SHX_START", start.to_string())
            .env("SHX_LEN", len.to_string())
            .env("SHX_UNLINK", if unlink { "1" } else { "0" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the lock role");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some((_, report)) = line.split_once(REPORT) {
                    let _ = tx.send(report.to_owned());
                }
            }
        });
        let locker = Locker {
            pid: child.id(),
            stdin: child.stdin.take(),
            child,
        };
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(r) if r == "ready" => Ok(locker),
            Ok(r) => Err(r),
            Err(_) => Err("no report".into()),
        }
    }
}

/// An OFD lock held by a child of another user. Dropping it lets go.
#[derive(Debug)]
pub struct Locker {
    pub pid: u32,
    stdin: Option<ChildStdin>,
    child: Child,
}

impl Drop for Locker {
    fn drop(&mut self) {
        self.stdin.take();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
