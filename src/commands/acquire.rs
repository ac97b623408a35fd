//! `shmsem acquire`: take weight on behalf of a process and return.

use std::os::unix::process::parent_id;

use shmsem::Options;

use crate::cli::AcquireArgs;

use super::open_for_take;

/// Acquire for `--holder` (default: the parent process, the shell that runs us), creating the
/// semaphore with `--capacity` if it does not exist.
pub fn acquire(opts: Options, args: AcquireArgs, quiet: bool) -> anyhow::Result<()> {
    let take = args.take;
    let holder = args.holder.unwrap_or_else(parent_id);
    let sem = open_for_take(opts, &take, quiet)?;
    // No `--timeout` waits forever; `--timeout 0` (or `--nonblock`) tries once.
    sem.acquire_for(holder, take.weight, take.wait.timeout())?;
    Ok(())
}
