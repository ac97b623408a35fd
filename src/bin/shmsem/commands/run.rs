//! `shmsem run`: acquire, run a command as a child, release when it exits.

use std::{
    io::{self, Write},
    os::unix::process::ExitStatusExt,
    process::{Command, ExitStatus},
    time::Duration,
};

use anyhow::Context;
use shmsem::Options;

use crate::{cli::RunArgs, signals};

/// Exit status when the command exists but cannot be run (as `env` and `timeout` use).
const CANNOT_RUN: u8 = 126;
/// Exit status when the command is not found.
const NOT_FOUND: u8 = 127;

/// Hold the weight for as long as the command runs; return the command's exit status
/// (128 + the signal if a signal ended it). This process is the holder: if it is killed, the
/// weight comes back even while the child still runs.
pub fn run(opts: Options, args: RunArgs) -> anyhow::Result<u8> {
    let take = args.take;
    let sem = opts.capacity(take.capacity).open(&take.name)?;
    let _permit = match take.timeout {
        None => sem.acquire_weight(take.weight)?,
        Some(0) => sem.try_acquire(take.weight)?,
        Some(ms) => sem.acquire_timeout(take.weight, Duration::from_millis(ms))?,
    };
    signals::install().context("installing the signal handlers")?;
    if let Some(sig) = signals::pending() {
        // Interrupted before the command started: do not start it.
        return Ok(signal_status(sig));
    }
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("no command given after --"))?;
    let mut child = match Command::new(program).args(rest).spawn() {
        Ok(child) => child,
        Err(e) => {
            let status = match e.kind() {
                io::ErrorKind::NotFound => NOT_FOUND,
                _ => CANNOT_RUN,
            };
            // Reported here rather than as an error: the status follows `env`'s convention.
            let _ = writeln!(io::stderr(), "shmsem: cannot run {program:?}: {e}");
            return Ok(status);
        }
    };
    signals::forward_to(child.id());
    let status = child.wait()?;
    Ok(exit_status(status))
}

/// The exit status that passes `status` on.
fn exit_status(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(sig)) => signal_status(sig),
        (None, None) => 1,
    }
}

/// `128 + sig`, as shells report a death by signal.
fn signal_status(sig: i32) -> u8 {
    u8::try_from(128 + sig).unwrap_or(255)
}
