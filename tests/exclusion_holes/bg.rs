//! [`Bg`]: a CLI process started in the background, with a deadline.

use std::{
    io::Read,
    process::{Child, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use super::common::{TestDir, cli::command};

/// A CLI process started in the background, with a deadline.
pub struct Bg {
    pub child: Child,
    started: Instant,
    pub status: Option<ExitStatus>,
    pub elapsed: Duration,
}

impl Bg {
    pub fn spawn(dir: &TestDir, args: &[&str]) -> Bg {
        Bg::spawn_env(dir, args, None)
    }

    pub fn spawn_env(dir: &TestDir, args: &[&str], failpoint: Option<&str>) -> Bg {
        let mut c = command(dir, args);
        c.env_remove(shmsem::failpoint::ENV)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(fp) = failpoint {
            c.env(shmsem::failpoint::ENV, fp);
        }
        let child = c.spawn().expect("spawning shmsem");
        Bg {
            child,
            started: Instant::now(),
            status: None,
            elapsed: Duration::ZERO,
        }
    }

    /// Whether it has exited (recording when).
    pub fn poll(&mut self) -> bool {
        if self.status.is_some() {
            return true;
        }
        match self.child.try_wait().expect("try_wait") {
            Some(s) => {
                self.status = Some(s);
                self.elapsed = self.started.elapsed();
                true
            }
            None => false,
        }
    }

    /// Wait until it exits or `deadline`; `false` if it was still running then (it is then
    /// SIGKILLed and reaped).
    pub fn wait_until(&mut self, deadline: Instant) -> bool {
        loop {
            if self.poll() {
                return true;
            }
            if Instant::now() >= deadline {
                self.kill();
                return false;
            }
            thread::sleep(Duration::from_millis(1));
        }
    }

    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    pub fn stderr(&mut self) -> String {
        let mut s = String::new();
        if self.status.is_some()
            && let Some(mut e) = self.child.stderr.take()
        {
            let _ = e.read_to_string(&mut s);
        }
        s
    }

    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        self.kill();
    }
}
