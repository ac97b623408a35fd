//! `shmsem run --scope cluster`: hold the weight under this process's lease while the command
//! runs, give the command its fencing token, and stop it when the holding is lost.
//!
//! Unlike the local scopes, the holding cannot be handed to the command (a lease is kept alive
//! by this process), so:
//!
//! * the command gets the holding's fencing token in `SHMSEM_TOKEN`, to pass to a resource that
//!   checks tokens;
//! * when the holding is lost (the lease lapsed: this process was paused or cut off from the
//!   cluster for longer than the lease's time to live), the command is sent SIGTERM, then
//!   SIGKILL [`GRACE`] later if it is still running, and a line on stderr says so; the exit
//!   status is then the command's (143 after SIGTERM);
//! * if this process dies, the command is sent SIGTERM at once (`PR_SET_PDEATHSIG`): its
//!   holding ends with this process's lease, so the command must not go on as if it held.

use std::{
    ffi::OsString,
    io::{self, Write},
    os::unix::process::CommandExt,
    thread,
    time::{Duration, Instant},
};

use shmsem::{Error, Semaphore};

use super::run::{cannot_spawn, exit_status, prepare};
use crate::signals;

/// How long a command whose holding was lost has between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);
/// How often the holding and the command are looked at.
const POLL: Duration = Duration::from_millis(20);
/// The variable that gives the command its fencing token.
pub const TOKEN_ENV: &str = "SHMSEM_TOKEN";

/// Run `argv` while holding `weight` of `sem`; the command's exit status.
pub fn run(
    sem: &Semaphore,
    weight: u32,
    timeout: Option<Duration>,
    argv: &[OsString],
) -> anyhow::Result<u8> {
    let permit = match timeout {
        None => sem.acquire_weight(weight)?,
        Some(t) if t.is_zero() => sem.try_acquire(weight)?,
        Some(t) => sem.acquire_timeout(weight, t)?,
    };
    let (mut command, program) = match prepare(argv)? {
        Ok(prepared) => prepared,
        Err(status) => return Ok(status),
    };
    let token = permit.token().unwrap_or(0);
    command.env(TOKEN_ENV, token.to_string());
    // SAFETY: the closure runs between fork and exec and only calls prctl, which is
    // async-signal-safe; it allocates nothing.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Ok(cannot_spawn(program, &e)),
    };
    signals::forward_to(child.id());
    let mut terminated: Option<Instant> = None;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        match (terminated, permit.check()) {
            (None, Err(Error::Lost { .. })) => {
                let _ = writeln!(
                    io::stderr(),
                    "shmsem: the holding of {:?} (token {token}) was lost: this process's lease \
                     lapsed; stopping the command (SIGTERM, then SIGKILL after {} s)",
                    sem.name(),
                    GRACE.as_secs()
                );
                // SAFETY: kill(2) on our own child, which has not been waited for yet.
                unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
                terminated = Some(Instant::now());
            }
            (Some(at), _) if at.elapsed() >= GRACE => {
                let _ = child.kill();
                break child.wait()?;
            }
            _ => {}
        }
        thread::sleep(POLL);
    };
    drop(permit);
    Ok(exit_status(status))
}
