//! `shmsem acquire`: take weight on behalf of a process and return.

use std::{os::unix::process::parent_id, time::Duration};

use shmsem::Options;

use crate::cli::AcquireArgs;

use super::with_lock_timeout;

/// Acquire for `--holder` (default: the parent process, the shell that runs us), creating the
/// semaphore with `--capacity` if it does not exist.
pub fn acquire(opts: Options, args: AcquireArgs) -> anyhow::Result<()> {
    let take = args.take;
    let holder = args.holder.unwrap_or_else(parent_id);
    let sem = with_lock_timeout(opts.capacity(take.capacity), take.timeout).open(&take.name)?;
    // No `--timeout` waits forever; `--timeout 0` tries once.
    sem.acquire_for(holder, take.weight, take.timeout.map(Duration::from_millis))?;
    Ok(())
}
