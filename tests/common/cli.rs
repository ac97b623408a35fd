//! The built `shmsem` binary, run from the parent side with a test's `SHMSEM_DIR`; and what the
//! tests that drive it need around it: a stand-in holder process, polling, sleeping to a moment.

use std::{
    path::Path,
    process::{Child, Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use super::TestDir;

/// The `shmsem` binary of this build.
pub const BIN: &str = env!("CARGO_BIN_EXE_shmsem");

/// What one run of `shmsem` did.
#[derive(Debug)]
pub struct Run {
    /// The arguments (read through `Debug`, in failure messages).
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn new(args: &[&str], out: Output) -> Run {
        Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// Failed with `code` and one line on stderr starting `shmsem: `.
    pub fn failed(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "{self:?}");
        assert!(self.stderr.starts_with("shmsem: "), "{self:?}");
        assert_eq!(self.stderr.lines().count(), 1, "{self:?}");
        self
    }
}

/// `shmsem ARGS` with this test's `SHMSEM_DIR` (run with `bin`, a path to the binary).
pub fn command_with(bin: &Path, dir: &TestDir, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.args(args)
        .env(shmsem::DIR_ENV, &dir.shm)
        .env_remove(shmsem::SELF_ENV)
        .stdin(Stdio::null());
    c
}

pub fn command(dir: &TestDir, args: &[&str]) -> Command {
    command_with(Path::new(BIN), dir, args)
}

pub fn run(dir: &TestDir, args: &[&str]) -> Run {
    let out = command(dir, args).output().expect("running shmsem");
    Run::new(args, out)
}

pub fn ok(dir: &TestDir, args: &[&str]) -> Run {
    let r = run(dir, args);
    assert_eq!(r.code, 0, "{r:?}");
    r
}

/// `ls --json` (which sweeps): the array.
pub fn ls(dir: &TestDir, extra: &[&str]) -> Vec<Value> {
    let args = [&["ls", "--json"][..], extra].concat();
    match ok(dir, &args).json() {
        Value::Array(all) => all,
        other => panic!("ls --json is not an array: {other}"),
    }
}

/// The names `ls --json` lists.
pub fn names(dir: &TestDir) -> Vec<String> {
    ls(dir, &[])
        .iter()
        .map(|v| v["name"].as_str().expect("a name").to_owned())
        .collect()
}

pub fn show(dir: &TestDir, name: &str) -> Value {
    ok(dir, &["show", name, "--json"]).json()
}

/// The `(pid, weight)` of `show`'s holders or waiters.
pub fn parties(v: &Value, which: &str) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = v[which]
        .as_array()
        .unwrap_or_else(|| panic!("{which} is not an array in {v}"))
        .iter()
        .map(|p| (p["pid"].as_u64().unwrap(), p["weight"].as_u64().unwrap()))
        .collect();
    out.sort_unstable();
    out
}

/// A process that can hold weight for `--holder`: `sleep 60`, killed when dropped.
pub struct Sleeper(pub Child);

impl Sleeper {
    pub fn spawn() -> Sleeper {
        Sleeper(
            Command::new("sleep")
                .arg("60")
                .spawn()
                .expect("spawning sleep"),
        )
    }

    pub fn pid(&self) -> String {
        self.0.id().to_string()
    }

    /// SIGKILL it and wait until it is gone.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Wait up to 20 s for `cond`.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out: {what}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// Sleep until `at`.
pub fn sleep_until(at: Instant) {
    thread::sleep(at.saturating_duration_since(Instant::now()));
}
