//! The kill loop: SIGKILLs at random, with the descriptors of the killed process copied into
//! the test first, the witness purged and the role started again; the `shmsem reap` runs; and
//! the orphans the test reaps as a child subreaper.

use std::{
    collections::HashSet,
    fs, io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::process::ExitStatusExt,
    },
    process::{ExitStatus, Stdio},
    sync::atomic::Ordering::SeqCst,
    thread,
    time::{Duration, Instant},
};

use shmsem::failpoint::STEPS;

use crate::{
    config::{FORKERS, STALL_LIMIT, WORKERS, without},
    procs::cli_command,
    rng::Rng,
    run::{Kind, Run},
    witness::{M_PID, M_READY, Stat, child_owner},
};

fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pidfd_open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Our own copy of descriptor `fd` of the process behind `pidfd`, sharing its open file
/// description (and so its OFD locks).
fn pidfd_getfd(pidfd: &OwnedFd, fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_getfd(2) takes a pidfd, a descriptor number in that process and flags, and
    // returns a new descriptor or -1.
    let copy = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if copy < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pidfd_getfd returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(copy as i32) })
}

fn pidfd_kill(pidfd: &OwnedFd) {
    // SAFETY: pidfd_send_signal(2) takes a pidfd, a signal number, a null siginfo and flags.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        );
    }
}

/// Wait until the process behind `pidfd` has exited; whether it did within `timeout`.
fn pidfd_wait(pidfd: &OwnedFd, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll(2) reads and writes the one valid pollfd we pass.
    let r = unsafe { libc::poll(&mut p, 1, timeout.as_millis().min(i32::MAX as u128) as i32) };
    r > 0
}

/// The parent pid of `pid`, from `/proc`.
fn ppid_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// The pids of this process's children (orphans adopted as subreaper included).
fn children() -> Vec<u32> {
    let mut out = Vec::new();
    let mut any = false;
    if let Ok(tasks) = fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Ok(s) = fs::read_to_string(t.path().join("children")) {
                any = true;
                out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    if !any {
        // No /proc/.../children (CONFIG_PROC_CHILDREN off): scan every process.
        let me = std::process::id();
        if let Ok(procs) = fs::read_dir("/proc") {
            for p in procs.flatten() {
                if let Ok(pid) = p.file_name().to_string_lossy().parse::<u32>()
                    && ppid_of(pid) == Some(me)
                {
                    out.push(pid);
                }
            }
        }
    }
    out
}

/// Counts of the run, on the parent side.
#[derive(Debug, Default)]
pub struct Kills {
    pub workers: u64,
    pub forkers: u64,
    pub fork_children: u64,
    pub reapers: u64,
    pub cli: u64,
    /// Of the workers and forkers: killed before they had recorded their lock descriptor.
    pub early: u64,
    /// Not counted in the total: reapers and `shmsem reap` runs that killed themselves at the
    /// kill point they were started with, by step.
    pub points: std::collections::BTreeMap<String, u64>,
}

impl Kills {
    /// The SIGKILLs the test sent.
    pub fn total(&self) -> u64 {
        self.workers + self.forkers + self.fork_children + self.reapers + self.cli
    }

    fn point(&mut self, point: &str) {
        let step = point.split('@').next().unwrap_or(point);
        *self.points.entry(step.to_owned()).or_default() += 1;
    }
}

/// A kill point for a process that puts nothing in the witness: one of the engine's steps whose
/// name starts with `prefix` (any step for `""`), at a random one of its first few visits. `None`
/// without the `failpoints` feature.
pub fn kill_point(rng: &mut Rng, prefix: &str) -> Option<String> {
    if !cfg!(feature = "failpoints") {
        return None;
    }
    let steps: Vec<&str> = STEPS
        .iter()
        .copied()
        .filter(|s| s.starts_with(prefix))
        .collect();
    assert!(!steps.is_empty(), "no kill point starts with {prefix:?}");
    Some(format!(
        "{}@{}",
        steps[rng.below(steps.len())],
        rng.range(1, 4)
    ))
}

impl Run {
    /// Copies of every descriptor of process `pid` (behind `pidfd`) that refers to a file in
    /// our `SHMSEM_DIR`: whichever open file description carries its liveness lock, the copy
    /// keeps it (OFD locks belong to the description), so to the engine the process stays alive
    /// until the copies are dropped. The last error of `pidfd_getfd`, if any.
    fn copy_descriptors(&self, pidfd: &OwnedFd, pid: u32) -> (Vec<OwnedFd>, Option<io::Error>) {
        let mut copies = Vec::new();
        let mut error = None;
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            return (copies, error);
        };
        for entry in fds.flatten() {
            let Ok(target) = fs::read_link(entry.path()) else {
                continue;
            };
            let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if !target.starts_with(&self.shm) {
                continue;
            }
            match pidfd_getfd(pidfd, fd) {
                // The number may have been reused meanwhile: keep only what is ours.
                Ok(copy) => {
                    if fs::read_link(format!("/proc/self/fd/{}", copy.as_raw_fd()))
                        .is_ok_and(|p| p.starts_with(&self.shm))
                    {
                        copies.push(copy);
                    }
                }
                Err(e) => error = Some(e),
            }
        }
        (copies, error)
    }

    /// The child of forker `j` (pid `forker`), if there is one: a pidfd of it, with copies of
    /// its descriptors into `SHMSEM_DIR` pushed to `keep`.
    fn fork_child(&mut self, j: usize, forker: u32, keep: &mut Vec<OwnedFd>) -> Option<OwnedFd> {
        let co = child_owner(j);
        let pid = self.w.meta(co, M_PID).load(SeqCst) as u32;
        if pid == 0 {
            return None;
        }
        let pidfd = pidfd_open(pid).ok()?;
        // Its parent must be the forker (the pid could have been reused after the child was
        // reaped); while the pidfd's process lives, /proc/PID is that process.
        if ppid_of(pid) != Some(forker) || pidfd_wait(&pidfd, Duration::ZERO) {
            return None;
        }
        let (copies, _) = self.copy_descriptors(&pidfd, pid);
        keep.extend(copies);
        Some(pidfd)
    }

    /// Kill role `r` (see the module docs for the order), and start a new one if `respawn`.
    fn kill(&mut self, r: usize, respawn: bool) {
        if let Ok(Some(status)) = self.roles[r].child.try_wait() {
            self.ended(r, status);
            if respawn {
                return;
            }
        }
        let kind = self.roles[r].kind;
        let owners = kind.owners();
        self.w.doom(&owners);
        let pid = self.roles[r].child.id();
        let mut keep = Vec::new();
        let mut early = false;
        if let Some(o) = kind.main_owner() {
            let ready = self.w.meta(o, M_READY).load(SeqCst) != 0;
            early = !ready;
            let pidfd = pidfd_open(pid).expect("pidfd_open of a role (needs Linux >= 5.3)");
            let (copies, error) = self.copy_descriptors(&pidfd, pid);
            if ready && copies.is_empty() && self.roles[r].child.try_wait().ok().flatten().is_none()
            {
                panic!(
                    "could not copy any descriptor of {kind:?} (pid {pid}) into SHMSEM_DIR: \
                     {error:?} (needs Linux >= 5.6 and ptrace rights over our children)"
                );
            }
            keep.extend(copies);
        }
        let child = match kind {
            Kind::Forker(j) => self.fork_child(j, pid, &mut keep),
            _ => None,
        };
        if let Some(c) = &child {
            pidfd_kill(c);
            self.kills.fork_children += 1;
        }
        let _ = self.roles[r].child.kill();
        let status = self.roles[r].child.wait().expect("waitpid");
        self.roles[r].reaped = true;
        if status.signal() == Some(libc::SIGKILL) {
            match kind {
                Kind::Worker(_) => self.kills.workers += 1,
                Kind::Forker(_) => self.kills.forkers += 1,
                Kind::Reaper(_) => self.kills.reapers += 1,
            }
            if early {
                self.kills.early += 1;
            }
        } else {
            self.crashes += 1;
            self.fail(format!("{kind:?} (pid {pid}) ended by itself: {status:?}"));
        }
        if let Some(c) = &child
            && !pidfd_wait(c, Duration::from_secs(20))
        {
            self.fail(format!("the fork child of {kind:?} did not die"));
        }
        if let Some(problem) = self.w.purge(&kind.owners(), true) {
            self.fail(problem);
        }
        // Now the engine may find them dead.
        drop(keep);
        if let Some(mut s) = self.roles[r].sleeper.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        if respawn {
            self.roles[r] = self.spawn(kind);
        }
    }

    /// Kill the fork child of forker `j` alone.
    fn kill_fork_child(&mut self, j: usize) {
        let r = WORKERS + j;
        assert_eq!(self.roles[r].kind, Kind::Forker(j));
        let forker = self.roles[r].child.id();
        let co = child_owner(j);
        self.w.doom(&[co]);
        let mut keep = Vec::new();
        if let Some(c) = self.fork_child(j, forker, &mut keep) {
            pidfd_kill(&c);
            self.kills.fork_children += 1;
            if !pidfd_wait(&c, Duration::from_secs(20)) {
                self.fail(format!("the fork child of forker {j} did not die"));
            }
        }
        // The next child of the forker keeps what it recorded.
        if let Some(problem) = self.w.purge(&[co], false) {
            self.fail(problem);
        }
        drop(keep);
    }

    /// Roles that ended without being killed: a failure, unless a reaper reached its kill
    /// point; start them again.
    fn check_exits(&mut self) {
        for r in 0..self.roles.len() {
            if let Ok(Some(status)) = self.roles[r].child.try_wait() {
                self.ended(r, status);
            }
        }
    }

    /// Role `r` ended by itself with `status`: start it again.
    fn ended(&mut self, r: usize, status: ExitStatus) {
        let kind = self.roles[r].kind;
        self.roles[r].reaped = true;
        match &self.roles[r].point {
            Some(p) if status.signal() == Some(libc::SIGKILL) => {
                let p = p.clone();
                self.kills.point(&p);
            }
            point => {
                let msg = format!("{kind:?} (kill point {point:?}) ended by itself: {status:?}");
                self.crashes += 1;
                self.fail(msg);
            }
        }
        if let Some(problem) = self.w.purge(&kind.owners(), true) {
            self.fail(problem);
        }
        if let Some(mut s) = self.roles[r].sleeper.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        self.roles[r] = self.spawn(kind);
    }

    fn known_pids(&self) -> HashSet<u32> {
        let mut known = HashSet::new();
        for r in &self.roles {
            known.insert(r.child.id());
            if let Some(s) = &r.sleeper {
                known.insert(s.id());
            }
        }
        if let Some((c, _)) = &self.cli {
            known.insert(c.id());
        }
        known
    }

    /// Reap adopted orphans (children of killed forkers); how many are still running.
    fn reap_orphans(&mut self, known: &HashSet<u32>) -> usize {
        let mut running = 0;
        for pid in children() {
            if known.contains(&pid) {
                continue;
            }
            let mut status = 0;
            // SAFETY: waitpid on a child of ours that no `Child` handle owns.
            let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
            if r == pid as libc::pid_t {
                self.orphans += 1;
            } else if r == 0 {
                running += 1;
            }
        }
        running
    }

    /// Now and then run `shmsem reap`, and SIGKILL some of the runs.
    fn cli_step(&mut self) {
        match self.cli.take() {
            None => {
                if self.rng.below(100) < 6 && !without("reap") {
                    let mut cmd = cli_command(&self.dir, &["reap"]);
                    cmd.stdout(Stdio::null()).stderr(Stdio::inherit());
                    // It puts nothing in the witness: it may die in the middle of a recount.
                    let point = if self.rng.coin() {
                        // The steps of a reclaimer.
                        kill_point(&mut self.rng, "reclaim:")
                    } else {
                        None
                    };
                    if let Some(p) = &point {
                        cmd.env(shmsem::failpoint::ENV, p);
                    }
                    self.cli = Some((cmd.spawn().expect("spawning shmsem reap"), point));
                }
            }
            Some((mut c, point)) => match c.try_wait().expect("try_wait") {
                Some(status) => {
                    self.cli_runs += 1;
                    match &point {
                        Some(p) if status.signal() == Some(libc::SIGKILL) => self.kills.point(p),
                        _ if status.success() => {}
                        _ => self.fail(format!("shmsem reap ({point:?}) failed: {status:?}")),
                    }
                }
                None => {
                    if self.rng.below(100) < 40 {
                        let _ = c.kill();
                        let status = c.wait().expect("wait");
                        if status.signal() == Some(libc::SIGKILL) {
                            self.kills.cli += 1;
                        } else {
                            self.cli_runs += 1;
                        }
                    } else {
                        self.cli = Some((c, point));
                    }
                }
            },
        }
    }

    /// Kill at random until `target` kills, the time limit, or a stall.
    pub fn storm(&mut self, target: u64, min_run: Duration, limit: Duration) {
        let started = Instant::now();
        let mut last_grants = 0;
        let mut last_progress = Instant::now();
        let mut round = 0u64;
        while self.kills.total() < target || started.elapsed() < min_run {
            round += 1;
            if started.elapsed() > limit {
                let msg = format!(
                    "the run took longer than {limit:?} ({} kills of {target})",
                    self.kills.total()
                );
                self.fail(msg);
                return;
            }
            thread::sleep(Duration::from_millis(self.rng.range(2, 12)));
            let grants = self.w.stat(Stat::Grants);
            if grants != last_grants {
                last_grants = grants;
                last_progress = Instant::now();
            } else if last_progress.elapsed() > STALL_LIMIT {
                let msg = format!(
                    "no acquire succeeded for {STALL_LIMIT:?} after {} kills: the namespace \
                     hangs or weight leaked",
                    self.kills.total()
                );
                self.fail(msg);
                return;
            }
            self.check_exits();
            if round % 16 == 0 {
                let known = self.known_pids();
                self.reap_orphans(&known);
            }
            self.cli_step();
            let pick = self.rng.below(self.roles.len() + FORKERS);
            if pick >= self.roles.len() {
                self.kill_fork_child(pick - self.roles.len());
            } else if self.roles[pick].born.elapsed() >= self.roles[pick].min_life {
                self.kill(pick, true);
            }
        }
    }

    /// Kill everything, and check that nothing is left: no process, no witness entry.
    pub fn stop_all(&mut self) {
        if let Some((mut c, _)) = self.cli.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for r in 0..self.roles.len() {
            self.kill(r, false);
        }
        let known = HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let running = self.reap_orphans(&known);
            if running == 0 {
                break;
            }
            if Instant::now() > deadline {
                let msg = format!("{running} processes outlived their parents");
                self.fail(msg);
                for pid in children() {
                    // SAFETY: kill(2) of a child of ours.
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                }
                thread::sleep(Duration::from_millis(100));
                self.reap_orphans(&known);
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let (entries, counters) = self.w.totals();
        if entries != 0 || counters != 0 {
            self.fail(format!(
                "the witness is not empty after every process died: entries {entries}, \
                 counters {counters}"
            ));
        }
    }
}
