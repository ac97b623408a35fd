//! Starting child processes: [`child_command`], the one place every child of every test binary
//! is started from, and [`Spawn`], the parent side's way to describe a child in a role.

use std::{
    fs, io,
    os::unix::process::CommandExt,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use super::{ARG_PREFIX, CHILD_ARGS, Kid, ROLE_ENV, TestDir, WORK_ENV};

/// The command that re-executes the test binary `exe` (this one, or a copy of it) in `role`: it
/// runs the binary's `child_role` entry point and nothing else. Every child process of every test
/// binary starts from here.
pub fn child_command(exe: &Path, role: &str) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args(CHILD_ARGS).env(ROLE_ENV, role);
    cmd
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

/// How to start a child.
#[derive(Debug)]
pub struct Spawn<'a> {
    dir: &'a TestDir,
    role: String,
    pub(super) label: String,
    args: Vec<(String, String)>,
    /// Environment changes after the defaults, in order: set (`Some`) or remove (`None`).
    env: Vec<(String, Option<String>)>,
    stdin: bool,
    /// Let the child write to the harness's stderr instead of a pipe read into the transcript.
    inherit_stderr: bool,
    /// Kill the child when the thread that started it ends.
    die_with_parent: bool,
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
            inherit_stderr: false,
            die_with_parent: false,
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
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        let value = value.as_ref().to_string_lossy().into_owned();
        self.env.push((key.to_owned(), Some(value)));
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

    /// Let the child's stderr go to the harness's own, as it comes.
    pub fn inherit_stderr(mut self) -> Self {
        self.inherit_stderr = true;
        self
    }

    /// Kill the child with the thread that starts it (see [`die_with_parent`]).
    pub fn die_with_parent(mut self) -> Self {
        self.die_with_parent = true;
        self
    }

    /// The command, for a caller that starts and keeps the process itself (stdout and stderr
    /// are left to it).
    pub fn command(&self) -> Command {
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
        let mut cmd = child_command(&exe, &self.role);
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid);
        }
        cmd.env(shmsem::DIR_ENV, &self.dir.shm)
            .env(WORK_ENV, &self.dir.work)
            .stdin(if self.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            });
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
        if self.die_with_parent {
            die_with_parent(&mut cmd);
        }
        cmd
    }

    /// Start the child and wait (at most `timeout`) until it reports `key`.
    pub fn spawn_until(self, key: &str, timeout: Duration) -> Kid {
        let mut kid = self.spawn();
        kid.expect(key, timeout);
        kid
    }

    pub fn spawn(self) -> Kid {
        let mut cmd = self.command();
        cmd.stdout(Stdio::piped()).stderr(if self.inherit_stderr {
            Stdio::inherit()
        } else {
            Stdio::piped()
        });
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", self.label));
        Kid::start(self.label, child)
    }
}
