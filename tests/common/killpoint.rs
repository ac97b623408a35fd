//! The parent side of the kill-point tests (`tests/killpoints.rs`): start a child with a kill
//! point armed (`SHMSEM_FAILPOINT`, never one inherited from the harness), see it die of SIGKILL
//! there, and run the CLI, armed or not, to reap and to show a semaphore.

use std::{
    os::unix::process::ExitStatusExt,
    path::Path,
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use super::{Kid, Spawn, TestDir};

/// The most any child may take: generous, for a loaded two-core machine.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

/// Start `role` in `dir` with role parameters `args` and, if given, the kill point `failpoint`
/// (never one inherited from the harness). Its stdin is a pipe, for [`Kid::send`].
pub fn spawn(
    dir: &TestDir,
    role: &str,
    label: &str,
    args: &[(&str, String)],
    failpoint: Option<&str>,
) -> Kid {
    let mut s = Spawn::new(dir, role)
        .label(label)
        .stdin_piped()
        .env_remove(shmsem::failpoint::ENV);
    for (k, v) in args {
        s = s.arg(k, v);
    }
    if let Some(fp) = failpoint {
        s = s.env(shmsem::failpoint::ENV, fp);
    }
    s.spawn()
}

/// Wait for `kid` to die of SIGKILL (by its own kill point `step`); fail otherwise.
pub fn expect_sigkilled(kid: &mut Kid, step: &str) {
    let s = kid.wait_exit(CHILD_TIMEOUT);
    if s.signal() != Some(libc::SIGKILL) {
        thread::sleep(Duration::from_millis(20));
        panic!(
            "{} armed with {step} did not die of SIGKILL ({s:?}): the step was never \
             reached\n{}",
            kid.label,
            kid.transcript()
        );
    }
}

/// SIGKILL `kid` and reap it.
pub fn sigkill(kid: &mut Kid) {
    let s = kid.sigkill();
    assert_eq!(s.signal(), Some(libc::SIGKILL), "{}: {s:?}", kid.label);
}

/// Run the CLI with `SHMSEM_DIR=shm` (and kill point `failpoint` if given).
pub fn cli(shm: &Path, args: &[&str], failpoint: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shmsem"));
    cmd.args(args)
        .env(shmsem::DIR_ENV, shm)
        .env_remove(shmsem::failpoint::ENV)
        .env_remove(shmsem::SELF_ENV)
        .stdin(Stdio::null());
    if let Some(fp) = failpoint {
        cmd.env(shmsem::failpoint::ENV, fp);
    }
    cmd.output().expect("running the shmsem CLI")
}

/// `shmsem reap --json`, clean: what came back as `name:pid:weight,...` or `-`.
pub fn cli_reap(shm: &Path) -> String {
    let out = cli(shm, &["reap", "--json"], None);
    assert!(
        out.status.success(),
        "shmsem reap failed: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "shmsem reap --json printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let list = v.as_array().expect("reap --json prints an array");
    let s: Vec<String> = list
        .iter()
        .map(|r| {
            format!(
                "{}:{}:{}",
                r["semaphore"].as_str().unwrap_or("?"),
                r["pid"],
                r["weight"]
            )
        })
        .collect();
    if s.is_empty() {
        "-".into()
    } else {
        s.join(",")
    }
}

/// `shmsem show NAME --json`: value and holders (`pid:weight,...` or `-`).
pub fn cli_show(shm: &Path, name: &str) -> (u64, String) {
    let out = cli(shm, &["show", name, "--json"], None);
    assert!(
        out.status.success(),
        "shmsem show failed: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("shmsem show --json prints JSON");
    let value = v["value"].as_u64().expect("value is a number");
    let mut hs: Vec<(u64, u64)> = v["holders"]
        .as_array()
        .expect("holders is an array")
        .iter()
        .map(|h| (h["pid"].as_u64().unwrap(), h["weight"].as_u64().unwrap()))
        .collect();
    hs.sort_unstable();
    let hs = if hs.is_empty() {
        "-".into()
    } else {
        hs.iter()
            .map(|(p, w)| format!("{p}:{w}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    (value, hs)
}
