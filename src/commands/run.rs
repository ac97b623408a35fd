//! `shmsem run`: acquire, run a command as a child, release when it exits.

use std::{
    ffi::{OsStr, OsString},
    io::{self, Write},
    os::{
        fd::AsRawFd,
        unix::process::{CommandExt, ExitStatusExt},
    },
    process::{Command, ExitStatus},
};

use anyhow::Context;
use shmsem::{FdPermit, Options, Scope, Tree};

use super::open_for_take;
use crate::{cli::RunArgs, signals};

/// Exit status when the command exists but cannot be run (as `env` and `timeout` use).
const CANNOT_RUN: u8 = 126;
/// Exit status when the command is not found.
const NOT_FOUND: u8 = 127;

/// The command line `argv` as a [`Command`], and its program, once the signal handlers are
/// installed; `Err` with the exit status when a signal came first (the command is then not
/// started).
pub(super) fn prepare(argv: &[OsString]) -> anyhow::Result<Result<(Command, &OsStr), u8>> {
    signals::install().context("installing the signal handlers")?;
    if let Some(sig) = signals::pending() {
        return Ok(Err(signal_status(sig)));
    }
    let (program, rest) = argv
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("no command given after --"))?;
    let mut command = Command::new(program);
    command.args(rest);
    Ok(Ok((command, program)))
}

/// Hold the weight for as long as the command runs; return the command's exit status
/// (128 + the signal if a signal ended it).
///
/// The command holds the weight, not this process, as `flock(1)`'s lock belongs to the
/// descriptor the command inherits: the holding is an open file description ([`FdPermit`])
/// that the command inherits. When the command exits, this process gives the weight back at
/// once. If this process is killed first, the weight stays held until the command, and every
/// process that inherited the description from it, has exited (or closed it).
pub fn run(opts: Options, args: RunArgs, quiet: bool) -> anyhow::Result<u8> {
    let take = args.take;
    let scope = opts.scope_of();
    let timeout = take.wait.timeout();
    let sem = open_for_take(opts, &take, quiet)?;
    if scope == Scope::Cluster {
        return super::run_cluster::run(&sem, take.weight, timeout, &args.command);
    }
    let permit = sem.acquire_fd(take.weight, timeout)?;
    let (mut command, program) = match prepare(&args.command)? {
        Ok(prepared) => prepared,
        // Interrupted before the command started: do not start it.
        Err(status) => return Ok(status),
    };
    let fd = permit.descriptor().as_raw_fd();
    if scope == Scope::Tree {
        // The command joins this process's `self` tree, whose semaphore it holds.
        Tree::current()?.command(&mut command);
    }
    // SAFETY: the closure runs between fork and exec and only calls fcntl, which is
    // async-signal-safe; it allocates nothing.
    unsafe { command.pre_exec(move || FdPermit::inherit(fd)) };
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Ok(cannot_spawn(program, &e)),
    };
    signals::forward_to(child.id());
    // Only for display: `show` lists the command as the holder.
    let _ = permit.show_as(child.id());
    let status = child.wait()?;
    drop(permit);
    Ok(exit_status(status))
}

/// Report that `program` could not be started, and return the status that says so (127 not
/// found, 126 otherwise). Reported here rather than as an error: the status follows `env`'s
/// convention.
pub(super) fn cannot_spawn(program: &OsStr, e: &io::Error) -> u8 {
    let status = match e.kind() {
        io::ErrorKind::NotFound => NOT_FOUND,
        _ => CANNOT_RUN,
    };
    let _ = writeln!(io::stderr(), "shmsem: cannot run {program:?}: {e}");
    status
}

/// The exit status that passes `status` on.
pub(super) fn exit_status(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(sig)) => signal_status(sig),
        (None, None) => 1,
    }
}

/// `128 + sig`, as shells report a death by signal.
pub(super) fn signal_status(sig: i32) -> u8 {
    u8::try_from(128 + sig).unwrap_or(255)
}
